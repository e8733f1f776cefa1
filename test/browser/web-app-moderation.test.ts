// The web app in Chromium, for a host's moderation: locking the room to new people
// (a new fan's join page says so; unlocked, it lets them in again), and clearing a
// prompt from the history, which then disappears from another member's page.
// Screenshots go under the OS temp dir (printed).
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { connected, openRoomAsHost } from '../support/web-app-page.ts';

interface Hooks {
  connection(): { sync: string; synced: boolean; socket: string };
}
type HookWindow = Window & { remixroom?: Hooks };

describe('web app in Chromium: a host locks the room and clears a prompt', function () {
  this.timeout(120_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let host: Page;
  let guest: Page;
  let joinUrl = '';
  let shots = '';
  const pageErrors: string[] = [];

  const open = async (label: string) => {
    const p = await browser!.context.newPage();
    p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
    return p;
  };

  async function prompt(page: Page, text: string): Promise<void> {
    await page.locator('#prompt-text').fill(text);
    await page.getByRole('button', { name: 'Send prompt' }).click();
    await page.locator('.history li', { hasText: text }).waitFor({ timeout: 10_000 });
  }

  before(async function () {
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    const [server] = await Promise.all([startTestServer(), buildClient()]);
    t = server;
    shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-moderation-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    browser = await launchChromium();
    host = await open('host');
    guest = await open('guest');
    await openRoomAsHost(host, t.url, 'Ana');
    joinUrl = await host.locator('#share-link').inputValue();
    await guest.goto(joinUrl);
    await guest.locator('#join-name').fill('Bo');
    await guest.getByRole('button', { name: 'Join' }).click();
    await connected(guest);
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it("locks the room: a new fan's join page says so, the people in stay; unlocked, the fan can join", async () => {
    await host.locator('#room-locked').check();
    await host.locator('#room-locked-hint', { hasText: 'Locked' }).waitFor({ timeout: 10_000 });
    await host.locator('.moderation').screenshot({ path: path.join(shots, 'host-moderation-locked.png') });

    const fan = await open('fan');
    await fan.goto(joinUrl);
    const problem = fan.locator('.entry-problem');
    await problem.waitFor({ timeout: 10_000 });
    expect(await problem.locator('h1').textContent()).to.equal('The host has locked this room to new people');
    expect(await fan.locator('#join-name').count()).to.equal(0);
    await fan.screenshot({ path: path.join(shots, 'fan-locked-out.png'), fullPage: true });

    // Bo, already in, stays and can chat.
    await guest.locator('#chat-text').fill('still in while it is locked');
    await guest.locator('.chat-form button[type=submit]').click();
    await host.locator('.chat-log li', { hasText: 'still in while it is locked' }).waitFor({ timeout: 10_000 });

    await host.locator('#room-locked').uncheck();
    await host.locator('#room-locked-hint', { hasText: 'Open' }).waitFor({ timeout: 10_000 });
    await fan.goto('about:blank');
    await fan.goto(joinUrl);
    await fan.locator('#join-name').fill('Cy');
    await fan.getByRole('button', { name: 'Join' }).click();
    await connected(fan);
    await fan.close();
  });

  it('clears a prompt from the history, and it disappears from the other page', async () => {
    await prompt(guest, 'stormy blue sea');
    await prompt(guest, 'golden slow glow');
    await guest.locator('.history li', { hasText: 'stormy blue sea' }).waitFor({ timeout: 10_000 });
    await host.locator('.clear-prompts li', { hasText: 'stormy blue sea' }).waitFor({ timeout: 10_000 });
    await host.locator('.moderation').screenshot({ path: path.join(shots, 'host-clear-list.png') });
    await host.getByRole('button', { name: 'Clear “stormy blue sea” from Bo for everyone' }).click();
    await guest.locator('.history li', { hasText: 'stormy blue sea' }).waitFor({ state: 'detached', timeout: 10_000 });
    await host.locator('.clear-prompts li', { hasText: 'stormy blue sea' }).waitFor({ state: 'detached', timeout: 10_000 });
    // The other prompt stays, on both pages.
    expect(await guest.locator('.history li', { hasText: 'golden slow glow' }).count()).to.equal(1);
    expect(await host.locator('.history li', { hasText: 'stormy blue sea' }).count()).to.equal(0);
    await guest.screenshot({ path: path.join(shots, 'guest-history-after-clear.png'), fullPage: true });
  });

  it('no page threw an uncaught error', () => {
    expect(pageErrors).to.deep.equal([]);
  });
});
