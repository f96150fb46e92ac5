import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { hydrated } from './hydrated.mjs';

const shots = 'screenshots';

function tally(args, input) {
  return execFileSync(process.env.TALLY_BIN, args, {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
    input,
  }).toString().trim().split('\n');
}

test('staff grant, correct, edit a plan and replay a webhook', async ({ page, request }) => {
  tally(['admin', 'create', '--email', 'boss@example.com', '--role', 'admin'], 'a-long-password\n');
  const keyLines = tally(['keys', 'create', '--mode', 'test', '--scope', 'admin']);
  const headers = { Authorization: `Bearer ${keyLines[keyLines.length - 1]}` };
  const c = await request.post('/v1/customers', { headers, data: { external_id: 'console-target', name: 'Console Target' } });
  const customer = (await c.json()).id;

  await page.goto('/admin/signin');
  await page.getByLabel('Email').fill('boss@example.com');
  await page.getByLabel('Password').fill('a-long-password');
  await page.getByTestId('admin-sign-in').click();
  await expect(page.getByText('Outstanding liability').first()).toBeVisible();
  await page.screenshot({ path: `${shots}/admin-overview.png`, fullPage: true });

  await page.goto('/admin/customers?q=console');
  await page.getByRole('link', { name: 'Console Target' }).click();
  await page.getByTestId('grant-amount').fill('12.50');
  await page.getByTestId('grant-reason').fill('launch promotion');
  // The page refreshes itself after the action (with JavaScript).
  await page.getByTestId('grant').click();
  await expect(page.getByTestId('admin-available')).toHaveText('$12.50');
  await page.getByTestId('correct-amount').fill('-2.50');
  await page.getByTestId('correct-reason').fill('duplicate grant');
  await page.getByTestId('correct').click();
  await expect(page.getByTestId('admin-available')).toHaveText('$10.00');
  await expect(page.getByTestId('admin-audit')).toContainText('duplicate grant');
  await expect(page.getByTestId('admin-ledger')).toContainText('adjustment');
  await page.screenshot({ path: `${shots}/admin-customer.png`, fullPage: true });
  const bal = await request.get(`/v1/customers/${customer}/balance`, { headers });
  expect((await bal.json()).available).toBe('10.000000000');

  // The plan editor: a form, a preview of what changes, then a save with a reason.
  await page.goto('/admin/plans');
  await page.getByTestId('plan-editor-standard').locator('summary').click();
  await page.getByTestId('low-balance-standard').fill('3');
  await page.getByTestId('tier-from-1').fill('2000000');
  await page.getByTestId('tier-discount-1').fill('10');
  await page.getByTestId('preview-standard').click();
  const changes = page.getByTestId('plan-changes');
  await expect(changes).toContainText('low_balance_threshold');
  await expect(changes).toContainText('tiers');
  await expect(changes.locator('tbody tr')).toHaveCount(2);
  await page.screenshot({ path: `${shots}/admin-plan-editor.png`, fullPage: true });
  await page.getByTestId('plan-reason-standard').fill('warn earlier');
  await Promise.all([page.waitForResponse(/admin_edit_plan/), page.getByTestId('plan-save-standard').click()]);
  await expect(page.getByTestId('plan-saved')).toBeVisible();
  await page.goto('/admin/plans');
  await expect(page.getByTestId('plan-terms-standard').locator('pre')).toContainText('"low_balance_threshold": "3.000000000"');
  await expect(page.getByTestId('plan-history-standard')).toContainText('History (2 versions)');
  await expect(page.getByTestId('low-balance-standard')).toHaveValue('3.00');
  await page.screenshot({ path: `${shots}/admin-plans.png`, fullPage: true });

  // A paid simulated checkout puts a real, signed event in the inbox.
  const s = await request.post(`/v1/customers/${customer}/checkout_sessions`, { headers, data: { amount: '5.00' } });
  const url = (await s.json()).url;
  const p2 = await page.context().newPage();
  await p2.goto(url);
  await p2.getByTestId('simulated-pay').click();
  await expect(p2.getByTestId('checkout-result')).toBeVisible();
  await page.goto('/admin/webhooks');
  const row = page.getByTestId('webhooks').locator('tbody tr').first();
  await expect(row).toContainText('checkout.session.completed');
  await row.getByPlaceholder('reason').fill('check idempotency');
  await Promise.all([page.waitForResponse(/admin_replay/), row.getByTestId('replay').click()]);
  await page.reload();
  await expect(page.getByTestId('webhooks')).toContainText('checkout.session.completed');
  await page.screenshot({ path: `${shots}/admin-webhooks.png`, fullPage: true });
  // Replaying the processed payment event changed nothing.
  await expect(async () => {
    const b = await request.get(`/v1/customers/${customer}/balance`, { headers });
    expect((await b.json()).available).toBe('15.000000000');
  }).toPass({ timeout: 10_000 });

  // A list price: edit, preview old against new, save with a reason.
  await page.goto('/admin/prices');
  // Editing a price opens in place: only a hydrated page does that.
  await hydrated(page);
  await page.getByTestId('edit-price-o3').click();
  await page.getByTestId('rate-input').fill('3');
  await page.getByTestId('price-preview').click();
  await expect(page.getByTestId('price-preview-text')).toContainText('$0.036 at today\'s price and $0.046 at the new one');
  await page.getByTestId('price-reason').fill('provider price change');
  await Promise.all([page.waitForResponse(/admin_edit_price/), page.getByTestId('price-save').click()]);
  await expect(page.getByTestId('price-history')).toContainText('provider price change');
  await page.screenshot({ path: `${shots}/admin-prices.png`, fullPage: true });

  // An API key: its secret is shown once.
  await page.goto('/admin/keys');
  await hydrated(page);
  await page.getByTestId('key-name').fill('console e2e');
  await page.getByTestId('key-reason').fill('new backend');
  await page.getByTestId('key-create').click();
  await expect(page.getByTestId('new-secret')).toContainText('sk_test_');
  await page.screenshot({ path: `${shots}/admin-keys.png`, fullPage: true });

  // One charged request ($0.30), refunded in part from the customer's page.
  const u = await request.post('/v1/usage', { headers, data: { customer, model: 'claude-sonnet-4-5', input_tokens: 100000, output_tokens: 0, request_id: 'console-refund' } });
  expect(u.status()).toBe(201);
  const event = (await u.json()).id;
  await page.goto(`/admin/customers/${customer}`);
  const refund = page.getByTestId(`refund-${event}`);
  const usageRow = page.getByTestId("admin-usage").locator("tr", { has: refund });
  await usageRow.getByPlaceholder('all').fill('0.10');
  await usageRow.getByPlaceholder('reason').fill('answer cut off');
  await Promise.all([page.waitForResponse(/admin_refund_usage/), refund.click()]);
  await expect(page.getByTestId('admin-usage')).toContainText('refunded $0.10 (answer cut off)');
  await page.screenshot({ path: `${shots}/admin-refund.png`, fullPage: true });
  const got = await request.get(`/v1/usage/${event}`, { headers });
  expect((await got.json()).refunded_amount).toBe('0.100000000');
});
