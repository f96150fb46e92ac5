import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { hydrated } from './hydrated.mjs';

const shots = 'screenshots';

function adminKey() {
  const out = execFileSync(process.env.TALLY_BIN, ['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'e2e-proxy'], {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
  }).toString().trim().split('\n');
  return out[out.length - 1];
}

// A customer creates a key in the portal, calls the proxy with it (test mode: the
// simulated provider), sees its spend and the conversation's cost, then revokes it.
test('a customer creates, uses, and revokes a proxy key in the portal', async ({ page, request }) => {
  const headers = { Authorization: `Bearer ${adminKey()}` };
  const c = await request.post('/v1/customers', { headers, data: { external_id: 'proxy-keys-e2e', name: 'Proxy keys' } });
  expect(c.status()).toBe(201);
  const id = (await c.json()).id;
  await request.post(`/v1/customers/${id}/grants`, { headers, data: { amount: '5', reason: 'e2e' } });
  const link = await (await request.post(`/v1/customers/${id}/portal_sessions`, { headers, data: {} })).json();

  await page.goto(link.url);
  await page.getByRole('link', { name: 'API keys' }).click();
  await expect(page).toHaveURL(/\/portal\/keys$/);
  // The new key's secret is shown once, in place, by the hydrated page.
  await hydrated(page);
  await page.getByTestId('key-name').fill('notebook');
  await page.getByTestId('key-limit').fill('2.50');
  await page.getByTestId('create-key').click();
  const secret = (await page.getByTestId('new-key-secret').textContent()).trim();
  expect(secret).toMatch(/^ck_test_[0-9a-f]{56}$/);
  await expect(page.getByTestId('keys').locator('tbody tr')).toHaveCount(1);
  await expect(page.getByTestId('keys')).toContainText('$2.50 a month');

  const call = () => request.post('/proxy/anthropic/v1/messages', {
    headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01', 'tally-conversation': 'support-chat-1' },
    data: { model: 'claude-sonnet-4-5', max_tokens: 200, messages: [{ role: 'user', content: 'Hello from the browser test' }] },
  });
  const r = await call();
  expect(r.status()).toBe(200);
  const answer = await r.json();
  expect(answer.content[0].text).toContain('simulated');
  expect(r.headers()['tally-cost']).toMatch(/^0\.\d{9}$/);

  await page.reload();
  // What the call was charged now counts against the key.
  // The key's spend is rounded for people, with the exact charge beside it for the hover
  // and screen readers.
  const cost = r.headers()['tally-cost'].replace(/0+$/, '');
  await expect(page.getByTestId('key-spent')).toContainText(`exactly $${cost}`);
  await expect(page.getByTestId('key-spend-chart').locator('svg')).toBeVisible();
  await expect(page.getByTestId('key-spend-chart').locator('svg')).toHaveAttribute('aria-label', 'Spend by day, stacked by key');
  await expect(page.getByTestId('conversations')).toContainText('support-chat-1');
  // One conversation: its bar is the costliest's, full width.
  await expect(page.getByTestId('conversation-bar')).toHaveAttribute('style', /^width: 100%;?$/);
  await page.screenshot({ path: `${shots}/portal-keys.png`, fullPage: true });

  await page.getByTestId('revoke-key').click();
  await expect(page.getByTestId('keys')).toContainText('revoked');
  expect((await call()).status()).toBe(401);
});
