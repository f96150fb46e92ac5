import { test, expect } from '@playwright/test';
import { execFileSync } from 'node:child_process';

const shots = 'screenshots';
const database = (process.env.TALLY_E2E_DATABASE_URL || '').startsWith('postgres') ? 'postgres' : 'sqlite';

// The ledger's state and its check are for staff: sign a viewer in first.
async function signInStaff(page, email) {
  execFileSync(process.env.TALLY_BIN, ['admin', 'create', '--email', email, '--role', 'viewer'], {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
    input: 'a-long-password\n',
  });
  await page.goto('/admin/signin');
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('a-long-password');
  await page.getByTestId('admin-sign-in').click();
  await expect(page.getByText('Outstanding liability').first()).toBeVisible();
}

test('visitors are sent to sign in; the ledger is for staff', async ({ page }) => {
  await page.goto('/');
  await expect(page.getByTestId('sign-in-hint')).toContainText('sign in to your portal');
  await expect(page.getByTestId('database')).toHaveCount(0);
});

test('the portal renders on the server and hydrates', async ({ page }) => {
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await signInStaff(page, 'viewer-js@example.com');
  await page.goto('/');
  await expect(page.getByRole('heading', { name: 'Ledger' })).toBeVisible();
  await expect(page.getByTestId('database')).toHaveText(database);

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
    await signInStaff(page, 'viewer-nojs@example.com');
    await page.goto('/');
    await expect(page.getByTestId('database')).toHaveText(database);
    await page.getByTestId('verify').click();
    // The form posted to the server function, which redirected back to the page.
    await expect(page).toHaveURL(/\/\??$/);
    await expect(page.getByRole('heading', { name: 'Ledger' })).toBeVisible();
    await page.screenshot({ path: `${shots}/overview-no-js.png`, fullPage: true });
  });
});
