import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';

const shots = 'screenshots';

function adminKey() {
  const out = execFileSync(process.env.TALLY_BIN, ['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'e2e'], {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
  }).toString().trim().split('\n');
  return out[out.length - 1];
}

async function customerWithCheckout(request, key, externalId, amount) {
  const headers = { Authorization: `Bearer ${key}` };
  const c = await request.post('/v1/customers', { headers, data: { external_id: externalId, email: `${externalId}@example.com` } });
  expect(c.status()).toBe(201);
  const customer = (await c.json()).id;
  const s = await request.post(`/v1/customers/${customer}/checkout_sessions`, { headers, data: { amount } });
  expect(s.status()).toBe(201);
  return { customer, url: (await s.json()).url, headers };
}

for (const js of [true, false]) {
  test.describe(js ? 'with JavaScript' : 'without JavaScript', () => {
    test.use({ javaScriptEnabled: js });

    test('buying credits through the simulated checkout raises the balance', async ({ page, request }) => {
      const key = adminKey();
      const { customer, url, headers } = await customerWithCheckout(request, key, `buyer-${js}`, '25.00');
      expect(url).toContain('/checkout/simulated/');
      await page.goto(url);
      await expect(page.getByRole('alert')).toContainText('SIMULATED CHECKOUT');
      await expect(page.getByTestId('checkout-amount')).toHaveText('$25.00');
      await page.screenshot({ path: `${shots}/simulated-checkout${js ? '' : '-no-js'}.png`, fullPage: true });
      await page.getByTestId('simulated-pay').click();
      await expect(page.getByTestId('checkout-result')).toHaveText(/Payment received, credits added|Payment processing/);
      await page.screenshot({ path: `${shots}/checkout-complete${js ? '' : '-no-js'}.png`, fullPage: true });
      await expect(async () => {
        const b = await request.get(`/v1/customers/${customer}/balance`, { headers });
        expect((await b.json()).available).toBe('25.000000000');
      }).toPass({ timeout: 10_000 });
    });
  });
}
