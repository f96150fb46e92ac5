import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { hydrated } from './hydrated.mjs';

const shots = 'screenshots';

function adminKey() {
  const out = execFileSync(process.env.TALLY_BIN, ['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'e2e'], {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
  }).toString().trim().split('\n');
  return out[out.length - 1];
}

async function customerWithUsage(request, key, externalId) {
  const headers = { Authorization: `Bearer ${key}` };
  const c = await request.post('/v1/customers', { headers, data: { external_id: externalId, email: `${externalId}@example.com`, name: externalId } });
  expect(c.status()).toBe(201);
  const id = (await c.json()).id;
  await request.post(`/v1/customers/${id}/grants`, { headers, data: { amount: '10', reason: 'e2e' } });
  const models = ['claude-sonnet-4-5', 'gpt-5', 'claude-sonnet-4-5'];
  for (let i = 0; i < models.length; i++) {
    const r = await request.post('/v1/usage', { headers, data: { customer: id, model: models[i], input_tokens: 1204, output_tokens: 350, request_id: `${externalId}-req-${i}` } });
    expect(r.status()).toBe(201);
  }
  const link = await request.post(`/v1/customers/${id}/portal_sessions`, { headers, data: {} });
  return { id, headers, link: (await link.json()).url };
}

for (const js of [true, false]) {
  test.describe(js ? 'portal with JavaScript' : 'portal without JavaScript', () => {
    // A zone far from UTC, so a time shown in the browser's zone is visibly not UTC.
    test.use({ javaScriptEnabled: js, acceptDownloads: true, timezoneId: 'Asia/Tokyo', locale: 'en-GB' });

    test('sign in by link, see and filter usage, export CSV, buy credits', async ({ page, request }) => {
      const suffix = js ? 'js' : 'nojs';
      const key = adminKey();
      const { id, headers, link } = await customerWithUsage(request, key, `portal-${suffix}`);

      await page.goto(link);
      await expect(page).toHaveURL(/\/portal$/);
      await expect(page.getByTestId('available')).toHaveText('$9.98, exactly $9.977271');
      await expect(page.getByTestId('spend-chart').locator('svg')).toBeVisible();
      await page.screenshot({ path: `${shots}/portal-overview-${suffix}.png`, fullPage: true });
      let after = { api: '24.977271000', shown: '$24.98, exactly $24.977271' };
      if (js) {
        // Usage recorded elsewhere shows up on the open page without a reload.
        const r = await request.post('/v1/usage', { headers, data: { customer: id, model: 'gpt-5', input_tokens: 1000000, output_tokens: 0, request_id: `portal-${suffix}-live` } });
        expect(r.status()).toBe(201);
        await expect(page.getByTestId('available')).toHaveText('$8.73, exactly $8.727271', { timeout: 15_000 });
        after = { api: '23.727271000', shown: '$23.73, exactly $23.727271' };
      }

      await page.getByRole('link', { name: 'Usage' }).click();
      await expect(page.getByTestId('usage-table').locator('tbody tr')).toHaveCount(js ? 4 : 3);
      await page.getByTestId('model-filter').selectOption('gpt-5');
      await page.getByTestId('apply-filters').click();
      await expect(page.getByTestId('usage-table').locator('tbody tr')).toHaveCount(js ? 2 : 1);
      await expect(page).toHaveURL(/model=gpt-5/);
      await page.screenshot({ path: `${shots}/portal-usage-${suffix}.png`, fullPage: true });

      const download = page.waitForEvent('download');
      await page.getByTestId('csv').click();
      const csv = readFileSync(await (await download).path()).toString().trim().split('\n');
      expect(csv[0]).toContain('request_id');
      expect(csv.length).toBe(js ? 3 : 2);
      expect(csv.some((l) => l.includes(`portal-${suffix}-req-1,gpt-5,succeeded,1204,350`))).toBe(true);

      await page.getByTestId('usage-table').locator('tbody a').last().click();
      await expect(page.getByTestId('explanation')).toContainText('1,204 input tokens at $1.25 per million = $0.001505');
      await page.screenshot({ path: `${shots}/portal-usage-detail-${suffix}.png`, fullPage: true });

      await page.getByRole('link', { name: 'Billing' }).click();
      await page.getByTestId('custom-amount').fill('15.00');
      await page.getByTestId('buy-custom').click();
      await expect(page.getByRole('alert')).toContainText('SIMULATED CHECKOUT');
      await page.getByTestId('simulated-pay').click();
      await expect(page.getByTestId('checkout-result')).toHaveText(/Payment received, credits added|Payment processing/);
      await expect(async () => {
        const b = await request.get(`/v1/customers/${id}/balance`, { headers });
        expect((await b.json()).available).toBe(after.api);
      }).toPass({ timeout: 10_000 });
      await page.goto('/portal/billing');
      await expect(page.getByTestId('billing-available')).toHaveText(after.shown);
      await expect(page.getByTestId('history')).toContainText('topup');
      await page.screenshot({ path: `${shots}/portal-billing-${suffix}.png`, fullPage: true });

      // Times: in the browser's zone once hydrated, labelled UTC without JavaScript.
      const firstTime = page.getByTestId('topups').locator('time').first();
      if (js) await expect(firstTime).not.toContainText('UTC');
      else await expect(firstTime).toContainText('UTC');
      // The receipt of the top-up.
      await page.getByTestId('receipt-link').first().click();
      await expect(page.getByTestId('receipt-amount')).toHaveText('$15.00');
      await page.screenshot({ path: `${shots}/portal-receipt-${suffix}.png`, fullPage: true });
      await page.goto('/portal/billing');
      if (js) await hydrated(page);

      // Paying saved the card: auto top-up can be switched on.
      const auto = page.getByTestId('auto-topup-form');
      await auto.getByLabel('Top up automatically').check();
      await auto.getByLabel('When available falls below').fill('5');
      await auto.getByLabel('Buy (USD)').fill('10');
      await auto.getByLabel('At most per month').fill('50');
      await auto.getByRole('button', { name: 'Save auto top-up' }).click();
      if (js) await expect(page.getByText('Auto top-up saved.')).toBeVisible();
      await page.goto('/portal/billing');
      await expect(page.getByTestId('auto-topup-form').getByLabel('Top up automatically')).toBeChecked();
      await expect(page.getByTestId('auto-topup-form').getByLabel('When available falls below')).toHaveValue('5.00');
      await page.screenshot({ path: `${shots}/portal-billing-auto-${suffix}.png`, fullPage: true });

      await page.getByTestId('sign-out').click();
      await page.goto('/portal');
      await expect(page.getByText('Please sign in')).toBeVisible();
    });
  });
}
