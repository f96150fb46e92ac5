import { expect } from '@playwright/test';

// Waits until the wasm bundle has hydrated the current page (frontend/src/lib.rs marks
// <html data-hydrated>). A form used before that posts natively, which is correct but
// shows the no-JavaScript answer: tests that look for the in-place answer wait first.
export async function hydrated(page) {
  await expect(page.locator('html[data-hydrated]')).toBeAttached({ timeout: 20_000 });
}
