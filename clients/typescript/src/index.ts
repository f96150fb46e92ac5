// The typed client of Tally's /v1 API: openapi-fetch over the `paths` that scripts/clients
// generates into schema.d.ts from `tally openapi`. Every path, parameter, body and answer
// (errors included: `{"error": {type, code, message, param}}`) is checked by tsc.
import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./schema.js";

export type { components, operations, paths } from "./schema.js";

export type TallyClient = Client<paths>;

/** A client of the Tally at `baseUrl` (e.g. `http://127.0.0.1:3000`) with an API key. */
export function createTallyClient(baseUrl: string, apiKey: string): TallyClient {
  return createClient<paths>({ baseUrl, headers: { Authorization: `Bearer ${apiKey}` } });
}
