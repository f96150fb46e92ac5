// Every page a customer or a member of staff sees, on the demo's 60 days of data, at a
// phone's width (390 px) and a laptop's (1280 px): axe-core finds no WCAG 2.1 A or AA
// violation, the page never scrolls sideways (a wide table scrolls inside its card), and a
// screenshot of each is saved as screenshots/look-<page>-<width>.png.
import { test, expect } from '@playwright/test';
import AxeBuilder from '@axe-core/playwright';
import { execFileSync } from 'node:child_process';
import { hydrated } from './hydrated.mjs';

const widths = {
  phone: { width: 390, height: 844 },
  laptop: { width: 1280, height: 800 },
};

function tally(args, input) {
  return execFileSync(process.env.TALLY_BIN, args, {
    env: { ...process.env, DATABASE_URL: process.env.TALLY_E2E_DATABASE_URL },
    input,
  }).toString().trim().split('\n');
}

function adminHeaders() {
  const lines = tally(['keys', 'create', '--mode', 'test', '--scope', 'admin', '--name', 'look']);
  return { Authorization: `Bearer ${lines[lines.length - 1]}` };
}

/** The demo's first customer (`tally demo` seeds the server the tests run against). */
async function ada(request, headers) {
  const r = await request.get('/v1/customers?external_id=ada', { headers });
  expect(r.status()).toBe(200);
  const found = (await r.json()).data;
  expect(found.length, 'the demo seeded Ada').toBe(1);
  return found[0].id;
}

/** Sideways scrolling, axe, then the screenshot. */
async function look(page, shot) {
  await hydrated(page);
  const sideways = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  expect(sideways, `${shot} scrolls sideways by ${sideways} px`).toBeLessThanOrEqual(0);
  const axe = await new AxeBuilder({ page })
    .withTags(['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'])
    .analyze();
  const found = axe.violations.map(
    (v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`,
  );
  expect(found, `axe on ${shot}`).toEqual([]);
  await page.screenshot({ path: `screenshots/look-${shot}.png`, fullPage: true });
}

for (const [width, viewport] of Object.entries(widths)) {
  test(`the portal on a ${width}`, async ({ browser, request }) => {
    const headers = adminHeaders();
    const id = await ada(request, headers);
    const link = await request.post(`/v1/customers/${id}/portal_sessions`, { headers, data: {} });
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto('/');
    await look(page, `home-${width}`);
    await page.goto('/portal/signin');
    await look(page, `portal-signin-${width}`);

    await page.goto((await link.json()).url);
    await expect(page).toHaveURL(/\/portal$/);
    // Sixty days of usage: the month's chart has a bar on most days, and the quarter's
    // table reaches back past the month.
    await expect(page.getByTestId('spend-chart').locator('svg')).toBeVisible();
    await look(page, `portal-overview-${width}`);
    await page.getByTestId('range-90').click();
    await expect(page.getByRole('heading', { name: 'Spend, last 90 days, by model' })).toBeVisible();
    await page.getByTestId('spend-table').locator('summary').click();
    await expect(page.getByTestId('spend-table').locator('tbody tr').nth(40)).toBeAttached();
    await look(page, `portal-overview-90-${width}`);

    await page.goto('/portal/usage');
    await expect(page.getByTestId('usage-table').locator('tbody tr')).toHaveCount(50);
    await look(page, `portal-usage-${width}`);
    await page.getByTestId('usage-table').locator('tbody tr a').first().click();
    await expect(page.getByTestId('explanation')).toBeVisible();
    await look(page, `portal-usage-detail-${width}`);
    await page.goto('/portal/billing');
    await look(page, `portal-billing-${width}`);
    // The demo sent some of today's requests through the proxy under two keys.
    await page.goto('/portal/keys');
    await expect(page.getByTestId('key-spend-chart').locator('svg')).toBeVisible();
    await expect(page.getByTestId('conversation-row')).toHaveCount(3);
    await look(page, `portal-keys-${width}`);
    await context.close();
  });

  test(`the console on a ${width}`, async ({ browser, request }) => {
    const email = `look-${width}@example.com`;
    tally(['admin', 'create', '--email', email, '--role', 'admin'], 'a-long-password\n');
    const id = await ada(request, adminHeaders());
    const context = await browser.newContext({ viewport });
    const page = await context.newPage();
    await page.goto('/admin/signin');
    await look(page, `admin-signin-${width}`);
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('a-long-password');
    await page.getByTestId('admin-sign-in').click();
    await expect(page.getByText('Outstanding liability').first()).toBeVisible();
    await look(page, `admin-overview-${width}`);
    const pages = [
      'customers', `customers/${id}`, 'plans', 'prices', 'topups', 'subscriptions', 'reprice',
      'keys', 'webhooks', 'notifications', 'reconciliation', 'proxy',
    ];
    for (const path of pages) {
      await page.goto(`/admin/${path}`);
      await look(page, `admin-${path.replace('/', '-')}-${width}`);
    }
    // The plan editor open, with a previewed change.
    await page.goto('/admin/plans?plan=standard&form=1&markup_percent=12.5&tier_from=1000000&tier_discount=5');
    await expect(page.getByTestId('plan-changes')).toBeVisible();
    await look(page, `admin-plan-editor-${width}`);
    await context.close();
  });
}
