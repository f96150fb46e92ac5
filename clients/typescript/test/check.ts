// The TypeScript client against a running Tally (clients_check in scripts/lib.sh starts one
// on a scratch SQLite file): customer, grant, usage, balance, and a 404's error envelope.
// Compiled by tsc (strict) first, so a document change that breaks this use fails the check.
// Usage: node dist/test/check.js BASE_URL ADMIN_API_KEY
import assert from "node:assert/strict";
import { createTallyClient, type components } from "../src/index.js";

const [baseUrl, apiKey] = process.argv.slice(2);
if (!baseUrl || !apiKey) throw new Error("usage: check.js BASE_URL ADMIN_API_KEY");
const tally = createTallyClient(baseUrl, apiKey);

/** Money is a decimal string with exactly 9 places: compared in integer nano-units, never as a float. */
function nanos(amount: string): bigint {
  const m = /^(-?)(\d+)\.(\d{9})$/.exec(amount);
  if (!m) throw new Error(`not a 9-place decimal: ${JSON.stringify(amount)}`);
  const n = BigInt(m[2]!) * 1_000_000_000n + BigInt(m[3]!);
  return m[1] ? -n : n;
}

async function balance(id: string): Promise<components["schemas"]["BalanceView"]> {
  const { data, error, response } = await tally.GET("/v1/customers/{id}/balance", { params: { path: { id } } });
  assert.equal(response.status, 200, JSON.stringify(error));
  assert.ok(data);
  return data;
}

const customer = await tally.POST("/v1/customers", {
  body: { external_id: "clients-check-ts", email: "ts@example.com" },
});
assert.equal(customer.response.status, 201, JSON.stringify(customer.error));
assert.ok(customer.data);
const id = customer.data.id;
assert.equal(customer.data.object, "customer");
assert.equal(customer.data.email, "ts@example.com");

const grant = await tally.POST("/v1/customers/{id}/grants", {
  params: { path: { id } },
  body: { amount: "10.00", reason: "welcome" },
});
assert.equal(grant.response.status, 201, JSON.stringify(grant.error));
assert.equal(grant.data?.amount, "10.000000000");

const before = await balance(id);
assert.equal(before.available, "10.000000000");

const usage = await tally.POST("/v1/usage", {
  body: {
    customer: id,
    model: "claude-sonnet-4-5",
    input_tokens: 1200,
    output_tokens: 350,
    request_id: "clients-check-ts-1",
  },
});
assert.equal(usage.response.status, 201, JSON.stringify(usage.error));
assert.ok(usage.data);
const cost = nanos(usage.data.cost);
assert.ok(cost > 0n, `usage cost ${usage.data.cost}`);

const after = await balance(id);
assert.equal(nanos(after.available), nanos(before.available) - cost);
assert.equal(usage.data.balance, after.available);

// An unknown customer: 404 and the error envelope, typed as the document's ErrorBody.
const missing = await tally.GET("/v1/customers/{id}", { params: { path: { id: "cus_unknown" } } });
assert.equal(missing.response.status, 404);
assert.equal(missing.data, undefined);
assert.ok(missing.error);
const err: components["schemas"]["ErrorObject"] = missing.error.error;
assert.equal(err.type, "not_found");
assert.equal(err.code, "resource_missing");
assert.equal(typeof err.message, "string");
assert.ok(err.message.length > 0);
assert.ok(err.param === undefined || err.param === null, `param ${String(err.param)}`);
assert.deepEqual(
  Object.keys(err).filter((k) => !["type", "code", "message", "param"].includes(k)),
  [],
);

console.log(
  `typescript client: customer ${id}, grant 10.000000000, usage cost ${usage.data.cost}, ` +
    `balance ${before.available} -> ${after.available}, unknown customer 404 ${err.type}/${err.code}`,
);
