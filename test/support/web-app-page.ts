// What the browser tests share: waiting for a condition, and for the web app's page
// to be in its room (the document synced, the socket up, the room's state read),
// through the hooks the room page exposes as `window.remixroom` (client/src/room-view.ts).
import type { Page } from 'playwright-core';

/** Polls `probe` (every 100 ms) until it answers something truthy; its last error is in the timeout's message. */
export async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Waits until the page's document is synced, its socket connected and its room state read. */
export async function connected(page: Page, timeout = 30_000): Promise<void> {
  await page.waitForFunction(
    () => {
      const c = window.remixroom?.connection();
      return c?.sync === 'connected' && c.synced && c.socket === 'connected' && window.remixroom?.state() !== null;
    },
    undefined,
    { timeout },
  );
}

/**
 * Opens a room from the web app's front page as its host (the first release's card, the host's
 * name), waits until the page is in the room, and answers the room's id.
 */
export async function openRoomAsHost(page: Page, baseUrl: string, name: string): Promise<string> {
  await page.goto(`${baseUrl}/`);
  const first = page.locator('.release-card').first();
  await first.waitFor({ timeout: 10_000 });
  await first.getByLabel('Your name').fill(name);
  await first.getByRole('button', { name: 'Open a room' }).click();
  await page.waitForURL(/\/r\/[\w-]+$/, { timeout: 10_000 });
  await connected(page);
  return /\/r\/([\w-]+)/.exec(page.url())![1]!;
}
