import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';

const shots = 'screenshots';

function adminKey() {
  const out = execFileSync(process.env.TALLY_BIN, ['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'e2e'], {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
  }).toString().trim().split('\n');
  return out[out.length - 1];
}

// Two plans sold as subscriptions. Both tests share the database: the second finds them made.
async function subscriptionPlans(request, headers) {
  const plans = [
    { id: 'pro', name: 'Pro', terms: { recurring_fee: '20.00', included_credits: '15.00' } },
    { id: 'max', name: 'Max', terms: { recurring_fee: '50.00', included_credits: '40.00' } },
  ];
  for (const plan of plans) {
    const r = await request.post('/v1/plans', { headers, data: plan });
    expect([201, 409]).toContain(r.status());
  }
}

async function customerWithPortal(request, headers, externalId) {
  const c = await request.post('/v1/customers', { headers, data: { external_id: externalId, email: `${externalId}@example.com`, name: externalId } });
  expect(c.status()).toBe(201);
  const id = (await c.json()).id;
  const link = await request.post(`/v1/customers/${id}/portal_sessions`, { headers, data: {} });
  return { id, link: (await link.json()).url };
}

// Reloads until `check` passes: webhooks (the simulated gateway's too) are processed after
// they are answered, so a page may show the state of a moment ago.
async function eventually(page, check) {
  await expect(async () => {
    await page.reload();
    await check();
  }).toPass({ timeout: 15_000 });
}

for (const js of [true, false]) {
  test.describe(js ? 'subscriptions with JavaScript' : 'subscriptions without JavaScript', () => {
    test.use({ javaScriptEnabled: js });

    test('subscribe through the simulated checkout, cancel and resume, fall past due, pay', async ({ page, request }) => {
      const suffix = js ? 'js' : 'nojs';
      const headers = { Authorization: `Bearer ${adminKey()}` };
      await subscriptionPlans(request, headers);
      const { id, link } = await customerWithPortal(request, headers, `subscriber-${suffix}`);

      await page.goto(link);
      await expect(page).toHaveURL(/\/portal$/);
      await page.getByRole('link', { name: 'Billing' }).click();
      await expect(page.getByTestId('plan-offers')).toContainText('Pro');
      await page.getByTestId('subscribe-pro').click();

      // The simulated checkout of the first month.
      await expect(page.getByTestId('checkout-subscription')).toHaveText('Subscribe to Pro — $20.00 per month (simulated)');
      await expect(page.getByTestId('checkout-amount')).toHaveText('$20.00');
      await page.screenshot({ path: `${shots}/subscription-checkout-${suffix}.png`, fullPage: true });
      await page.getByTestId('simulated-pay').click();
      await expect(page).toHaveURL(/\/portal\/billing/);

      // The paid first invoice makes the subscription active and brings the plan's credits.
      await eventually(page, async () => {
        await expect(page.getByTestId('plan-status')).toHaveText('active', { timeout: 1_000 });
        await expect(page.getByTestId('billing-available')).toHaveText('$15.00', { timeout: 1_000 });
      });
      await expect(page.getByTestId('plan-name')).toHaveText('Pro');
      await expect(page.getByTestId('plan-fee')).toContainText('$20.00');
      await expect(page.getByTestId('invoices')).toContainText('paid');
      await page.screenshot({ path: `${shots}/subscription-active-${suffix}.png`, fullPage: true });
      const s = await request.get(`/v1/customers/${id}/subscription`, { headers });
      expect(s.status()).toBe(200);
      const subscription = await s.json();
      expect(subscription.status).toBe('active');

      // An upgrade's preview says what it costs now; keeping the plan leaves it.
      await page.getByTestId('change-plan-select').selectOption('max');
      await page.getByTestId('change-plan-preview').click();
      await expect(page).toHaveURL(/change=max/);
      await expect(page.getByTestId('change-preview-terms')).toContainText('You pay');
      await page.screenshot({ path: `${shots}/subscription-change-${suffix}.png`, fullPage: true });
      await page.getByTestId('keep-plan').click();
      await expect(page.getByTestId('change-preview')).toHaveCount(0);
      await expect(page.getByTestId('plan-name')).toHaveText('Pro');

      // Cancelling keeps the plan to the period's end; resuming takes it back.
      await page.getByTestId('cancel-subscription').click();
      await expect(page.getByTestId('plan-cancels')).toBeVisible();
      await page.getByTestId('resume-subscription').click();
      await expect(page.getByTestId('plan-cancels')).toHaveCount(0);
      await expect(page.getByTestId('cancel-subscription')).toBeVisible();

      // A failed renewal: the banner on the overview and the billing page.
      const advanced = await request.post(`/v1/test_helpers/subscriptions/${subscription.id}/advance`, { headers, data: { fail: true } });
      expect(advanced.ok()).toBe(true);
      await page.goto('/portal');
      await eventually(page, async () => {
        await expect(page.locator('.past-due-banner')).toContainText('Your renewal payment failed', { timeout: 1_000 });
      });
      await expect(page.getByTestId('past-due-banner')).toContainText(/update your card to keep using the service/i);
      await page.screenshot({ path: `${shots}/subscription-past-due-${suffix}.png`, fullPage: true });
      await page.getByRole('link', { name: 'Billing' }).click();
      await expect(page.getByTestId('past-due-banner')).toBeVisible();
      await expect(page.getByTestId('plan-status')).toHaveText('past due');

      // The simulated gateway pays the open invoice at once.
      await page.getByTestId('pay-open-invoice').click();
      await eventually(page, async () => {
        await expect(page.getByTestId('plan-status')).toHaveText('active', { timeout: 1_000 });
        await expect(page.getByTestId('past-due-banner')).toHaveCount(0);
      });
    });
  });
}
