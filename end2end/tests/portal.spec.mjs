import { test, expect } from '@playwright/test';

const shots = 'screenshots';

test('the portal renders on the server and hydrates', async ({ page }) => {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Ledger' })).toBeVisible();
  await expect(page.getByTestId('database')).toHaveText('sqlite');

  // The toggle only works once the wasm bundle has hydrated the page.
  const toggle = page.getByTestId('toggle-invariants');
  await expect(async () => {
    await toggle.click();
    await expect(page.getByTestId('invariants')).toBeVisible({ timeout: 500 });
  }).toPass({ timeout: 20_000 });
  await expect(toggle).toHaveText('Hide the invariants');

  // A server function through the hydrated action form, without a page load.
  await page.getByTestId('verify').click();
  await expect(page.getByTestId('verify-report')).toContainText('ledger is clean');
  await page.screenshot({ path: `${shots}/overview.png`, fullPage: true });
  expect(errors).toEqual([]);
});

test.describe('without JavaScript', () => {
  test.use({ javaScriptEnabled: false });

  test('the page and its form still work', async ({ page }) => {
    await page.goto('/');
    await expect(page.getByTestId('database')).toHaveText('sqlite');
    await page.getByTestId('verify').click();
    // The form posted to the server function, which redirected back to the page.
    await expect(page).toHaveURL(/\/\??$/);
    await expect(page.getByRole('heading', { name: 'Ledger' })).toBeVisible();
    await page.screenshot({ path: `${shots}/overview-no-js.png`, fullPage: true });
  });
});
