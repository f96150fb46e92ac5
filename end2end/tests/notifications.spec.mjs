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

function adminHeaders() {
  const lines = tally(['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'e2e-notify']);
  return { Authorization: `Bearer ${lines[lines.length - 1]}` };
}

for (const js of [true, false]) {
  test.describe(js ? 'alerts with JavaScript' : 'alerts without JavaScript', () => {
    test.use({ javaScriptEnabled: js });

    test('a customer sets a monthly budget and chooses their emails', async ({ page, request }) => {
      const headers = adminHeaders();
      const name = `alerts-${js ? 'js' : 'nojs'}`;
      const c = await request.post('/v1/customers', { headers, data: { external_id: name, email: `${name}@example.com`, name } });
      expect(c.status()).toBe(201);
      const id = (await c.json()).id;
      const link = await request.post(`/v1/customers/${id}/portal_sessions`, { headers, data: {} });
      await page.goto((await link.json()).url);
      await page.getByRole('link', { name: 'Billing' }).click();
      if (js) await hydrated(page);
      await page.getByRole('textbox', { name: /Budget/ }).fill('25.00');
      await page.getByLabel(/Stop new requests/).check();
      await page.getByLabel('Receipts of top-ups').uncheck();
      await page.getByTestId('save-alerts').click();
      if (js) {
        await expect(page.getByText('Alerts saved.')).toBeVisible();
      }
      await page.goto('/portal/billing');
      await expect(page.getByRole('textbox', { name: /Budget/ })).toHaveValue('25.00');
      await expect(page.getByLabel(/Stop new requests/)).toBeChecked();
      await expect(page.getByLabel('Receipts of top-ups')).not.toBeChecked();
      await expect(page.getByLabel('Balance low')).toBeChecked();
      if (js) {
        await page.screenshot({ path: `${shots}/portal-alerts.png`, fullPage: true });
      }
    });
  });
}

test('staff see the outbox, create an endpoint, and a reset link is kept while email is off', async ({ page, request }) => {
  tally(['admin', 'create', '--email', 'notify-boss@example.com', '--role', 'admin'], 'a-long-password\n');
  const headers = adminHeaders();
  const c = await request.post('/v1/customers', { headers, data: { external_id: 'outbox', email: 'outbox@example.com' } });
  const id = (await c.json()).id;
  // Usage into debt: balance.depleted goes into the outbox.
  const u = await request.post('/v1/usage', { headers, data: { customer: id, model: 'claude-sonnet-4-5', input_tokens: 1000, output_tokens: 10, request_id: 'outbox-1' } });
  expect(u.status()).toBe(201);

  await page.goto('/portal/signin');
  await page.getByRole('link', { name: 'Forgot your password?' }).click();
  await page.getByLabel('Email').fill('outbox@example.com');
  await page.getByTestId('send-reset').click();
  await expect(page.getByTestId('reset-sent')).toBeVisible();

  await page.goto('/admin/signin');
  await page.getByLabel('Email').fill('notify-boss@example.com');
  await page.getByLabel('Password').fill('a-long-password');
  await page.getByTestId('admin-sign-in').click();
  await expect(page.getByText('Outstanding liability').first()).toBeVisible();
  await page.getByRole('link', { name: 'Notifications' }).click();
  await expect(page.getByTestId('email-off')).toBeVisible();
  await expect(page.getByTestId('outbox')).toContainText('balance.depleted');
  await expect(page.getByTestId('emails')).toContainText('Reset your password');
  await expect(page.getByTestId('emails')).toContainText('off');

  await page.getByLabel('URL').fill('http://127.0.0.1:9/hooks');
  await page.getByLabel('Reason').last().fill('the app team asked');
  await page.getByTestId('create-endpoint').click();
  await expect(page.getByTestId('endpoint-secret')).toContainText('whsec_');
  await page.reload();
  await expect(page.getByTestId('endpoints')).toContainText('http://127.0.0.1:9/hooks');
  await page.screenshot({ path: `${shots}/admin-notifications.png`, fullPage: true });
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('asking for a reset link still confirms it', async ({ page }) => {
    await page.goto('/admin/forgot');
    await page.getByLabel('Email').fill('nobody-nojs@example.com');
    await page.getByTestId('send-reset').click();
    await expect(page.getByTestId('reset-sent')).toBeVisible();
    await expect(page).toHaveURL(/\/admin\/forgot\?sent=1$/);
  });
});
