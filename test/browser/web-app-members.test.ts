// The web app in Chromium, for what a member's standing does to the page: a
// member keeps its room past its token's life (the page refreshes the token and
// hands it to both open connections, or comes back after they were ended), a
// promoted co-host gets the host panel (but nothing over the room's creator), and
// a removed member is told so and is out. Member tokens live 12 s here, so that
// expiry happens within the test. Screenshots go under the OS temp dir (printed).
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

const TOKEN_TTL_SEC = 12;

interface Hooks {
  role(): string;
  connection(): { sync: string; synced: boolean; socket: string };
}
type HookWindow = Window & { remixroom?: Hooks };

const storedToken = (page: Page, roomId: string) => page.evaluate((id) => (JSON.parse(sessionStorage.getItem(`remixroom.member.${id}`) ?? '{}') as { token?: string }).token ?? '', roomId);

describe('web app in Chromium: token refresh, co-hosts, removal', function () {
  this.timeout(150_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let host: Page;
  let guest: Page;
  let roomId = '';
  let shots = '';
  const pageErrors: string[] = [];

  before(async function () {
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    const [server] = await Promise.all([startTestServer({ memberTokenTtlSec: TOKEN_TTL_SEC }), buildClient()]);
    t = server;
    shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-members-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    browser = await launchChromium();
    const open = async (label: string) => {
      const p = await browser!.context.newPage();
      p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
      return p;
    };
    host = await open('host');
    guest = await open('guest');
    roomId = await openRoomAsHost(host, t.url, 'Ana');
    const joinUrl = await host.locator('#share-link').inputValue();
    await guest.goto(joinUrl);
    await guest.locator('#join-name').fill('Bo');
    await guest.getByRole('button', { name: 'Join' }).click();
    await connected(guest);
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  it("keeps the member in the room past its token's life: a fresh token reaches both open connections, nothing reconnects", async () => {
    const first = await storedToken(guest, roomId);
    const connects = await guest.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/socket.io/')).length);
    await new Promise((r) => setTimeout(r, (TOKEN_TTL_SEC + 6) * 1000));
    await connected(guest, 1000);
    expect(await storedToken(guest, roomId)).to.not.equal(first);
    // Chat still goes through (the socket.io session was renewed, not ended).
    await guest.locator('#chat-text').fill('still here after my token expired');
    await guest.locator('.chat-form button[type=submit]').click();
    await host.locator('.chat-log li', { hasText: 'still here after my token expired' }).waitFor({ timeout: 10_000 });
    expect(await guest.evaluate(() => performance.getEntriesByType('resource').filter((e) => e.name.includes('/socket.io/')).length)).to.equal(connects);
  });

  it('comes back by itself when the token ran out anyway (refresh failing for a while), and still works', async () => {
    // The page cannot refresh its token for longer than the token lives: the server ends both connections.
    await guest.route('**/members/me/token', (route) => route.abort());
    await guest.waitForFunction(() => (window as HookWindow).remixroom!.connection().socket !== 'connected', undefined, { timeout: (TOKEN_TTL_SEC + 10) * 1000 });
    await guest.unroute('**/members/me/token');
    await connected(guest, 30_000);
    await guest.locator('#chat-text').fill('back again');
    await guest.locator('.chat-form button[type=submit]').click();
    await host.locator('.chat-log li', { hasText: 'back again' }).waitFor({ timeout: 10_000 });
  });

  it('a member the host makes a host gets the host panel at once, without power over the creator', async () => {
    expect(await guest.locator('.host-panel').isVisible()).to.equal(false);
    const bo = host.locator('.people li', { hasText: 'Bo' });
    await bo.locator('select').selectOption('host');
    await guest.locator('.host-panel').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await guest.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('host');
    // A co-host cannot end the room, and has no controls over the creator.
    expect(await guest.getByRole('button', { name: 'End the room for everyone' }).isVisible()).to.equal(false);
    const ana = guest.locator('.people li', { hasText: 'Ana' });
    expect(await ana.locator('select').count()).to.equal(0);
    expect(await ana.textContent()).to.include('opened the room');
    // It can make a link that lets two people in.
    await guest.locator('#link-role').selectOption('listener');
    await guest.locator('#link-uses').fill('2');
    await guest.getByRole('button', { name: 'Make a link' }).click();
    await guest.locator('.links input[readonly]').waitFor({ timeout: 10_000 });
    expect(await guest.locator('.links label', { hasText: 'for 2 people' }).count()).to.equal(1);
    await guest.screenshot({ path: path.join(shots, 'co-host-panel.png'), fullPage: true });
  });

  it('a removed member is told so, and is out of the room', async () => {
    host.once('dialog', (d) => void d.accept());
    await host.locator('.people li', { hasText: 'Bo' }).getByRole('button', { name: 'Remove Bo from the room' }).click();
    await guest.locator('.ended').waitFor({ timeout: 10_000 });
    expect(await guest.locator('.ended h1').textContent()).to.equal('You are out of the room');
    expect(await guest.locator('.ended [role=alert]').textContent()).to.match(/removed you/);
    await guest.screenshot({ path: path.join(shots, 'removed.png'), fullPage: true });
    await host.waitForFunction(() => ![...document.querySelectorAll('.people li')].some((li) => li.textContent?.includes('Bo')), undefined, { timeout: 10_000 });
  });

  it('no page threw an uncaught error', () => {
    expect(pageErrors).to.deep.equal([]);
  });
});
