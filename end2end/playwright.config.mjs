// Playwright drives Debian's Chromium (never a downloaded browser) against a real
// `tally serve` on a free port with a fresh SQLite database, or with the (fresh)
// PostgreSQL database that TALLY_E2E_DATABASE_URL names (scripts/test runs both).
import { defineConfig } from '@playwright/test';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import net from 'node:net';

async function freePort() {
  return await new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

const port = process.env.TALLY_E2E_PORT || String(await freePort());
process.env.TALLY_E2E_PORT = port;
const target = process.env.CARGO_TARGET_DIR || resolve('..', 'target');
// The config is evaluated again in each worker: keep one port and one database.
const dataDir = process.env.TALLY_E2E_DATA_DIR || mkdtempSync(join(tmpdir(), 'tally-e2e-'));
process.env.TALLY_E2E_DATA_DIR = dataDir;
const baseURL = `http://127.0.0.1:${port}`;
// Tests reach the same database through the CLI (keys create).
process.env.TALLY_E2E_DATABASE_URL ||= `sqlite://${dataDir}/e2e.db`;
process.env.TALLY_BIN = `${target}/debug/tally`;

export default defineConfig({
  testDir: './tests',
  timeout: 60_000,
  workers: 1,
  reporter: [['list']],
  outputDir: './test-results',
  use: {
    baseURL,
    screenshot: 'only-on-failure',
    launchOptions: {
      executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: {
    command: `${target}/debug/tally demo && exec ${target}/debug/tally serve`,
    url: `${baseURL}/readyz`,
    timeout: 60_000,
    reuseExistingServer: false,
    stdout: 'pipe',
    stderr: 'pipe',
    env: {
      ...process.env,
      DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL,
      TALLY_ADDR: `127.0.0.1:${port}`,
    },
  },
});
