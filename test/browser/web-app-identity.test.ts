// The web app in Chromium, for what stays a fan's own: a reload keeps the member
// (same name and role, no new join), its clips (listed under "My clips and
// purchases" with a working link) and the room's chat; the host who opens the
// room's plain address in a new tab of the same browser is the host again (no join
// link needed), and can make a private host link for another device; a join link
// opened again offers to go back in as that member; after the
// room ends, the page still lists what the member made. Screenshots go under the
// OS temp dir (printed).
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { connected, openRoomAsHost } from '../support/web-app-page.ts';

interface Hooks {
  role(): string;
  connection(): { sync: string; synced: boolean; socket: string };
}
type HookWindow = Window & { remixroom?: Hooks };

/** The member this tab is in the room (its user id and name), as the page keeps it. */
const tabMember = (page: Page, roomId: string) =>
  page.evaluate((id) => JSON.parse(sessionStorage.getItem(`remixroom.member.${id}`) ?? '{}') as { userId?: string; name?: string }, roomId);

describe('web app in Chromium: a fan keeps who they are, their clips and the chat', function () {
  this.timeout(180_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let host: Page;
  let roomId = '';
  let clipId = '';
  let userId = '';
  let shots = '';
  const pageErrors: string[] = [];

  before(async function () {
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    const [server] = await Promise.all([startTestServer(), buildClient()]);
    t = server;
    shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-identity-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    browser = await launchChromium();
    host = await browser.context.newPage();
    host.on('pageerror', (err) => pageErrors.push(`host: ${err.message}`));
    host.on('dialog', (d) => void d.accept());
    roomId = await openRoomAsHost(host, t.url, 'Ana');
    userId = (await tabMember(host, roomId)).userId!;
    expect(userId).to.match(/^u_/);
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  afterEach(() => {
    expect(pageErrors, pageErrors.join('\n')).to.deep.equal([]);
  });

  it('a reload keeps the member, its clip (listed with a working link) and the chat', async () => {
    await host.locator('button.play').click();
    // A clip is at least 8 s of the room: let it record 10.
    await new Promise((r) => setTimeout(r, 10_500));
    await host.getByLabel('Length', { exact: true }).selectOption('10');
    await host.locator('.clips').getByRole('button', { name: 'Save the last 10 seconds' }).click();
    const card = host.locator('.clip-card').first();
    await card.waitFor({ timeout: 10_000 });
    clipId = (await card.getAttribute('data-clip'))!;
    await host.locator('#chat-text').fill('see you after the reload');
    await host.locator('.chat-form button[type=submit]').click();
    await host.locator('.chat-log li', { hasText: 'see you after the reload' }).waitFor({ timeout: 10_000 });
    // Listed at once (queued), before the reload.
    await host.locator(`.my-things li[data-clip="${clipId}"]`).waitFor({ timeout: 10_000 });

    await host.reload();
    await connected(host);
    expect(await host.locator('.me').textContent()).to.include('You are Ana');
    expect(await host.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('host');
    expect((await tabMember(host, roomId)).userId).to.equal(userId);
    await host.locator('.chat-log li', { hasText: 'see you after the reload' }).waitFor({ timeout: 10_000 });
    const mine = host.locator(`.my-things li[data-clip="${clipId}"]`);
    await mine.waitFor({ timeout: 10_000 });
    // Its links once rendered (the panel reads the list again when the render ends; Refresh as a person would, too).
    const link = mine.locator('a[data-file="video"]');
    for (let i = 0; i < 60 && !(await link.count()); i++) {
      await new Promise((r) => setTimeout(r, 1000));
      if (i % 10 === 9) await host.locator('.my-things').getByRole('button', { name: 'Refresh' }).click();
    }
    const href = await link.getAttribute('href');
    expect(href).to.match(/^\/api\/clips\/[0-9a-f]{16}\/files\//);
    const file = await host.request.get(`${t.url}${href}`);
    expect(file.status()).to.equal(200);
    expect((await file.body()).byteLength).to.be.greaterThan(10_000);
    await host.locator('.my-things').scrollIntoViewIfNeeded();
    await host.locator('.my-things').screenshot({ path: path.join(shots, '1-my-things-after-reload.png') });
    await host.locator('.social').screenshot({ path: path.join(shots, '2-chat-after-reload.png') });
  });

  it('the host who opens the room’s plain address in a new tab is the host again, and can make a private host link', async () => {
    const tab = await browser!.context.newPage();
    tab.on('pageerror', (err) => pageErrors.push(`new tab: ${err.message}`));
    await tab.goto(`${t.url}/r/${roomId}`);
    await connected(tab);
    expect(await tab.locator('#join-name').count()).to.equal(0);
    expect(await tab.locator('.me').textContent()).to.include('You are Ana');
    expect(await tab.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('host');
    expect((await tabMember(tab, roomId)).userId).to.equal(userId);
    await tab.locator('.host-panel').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await tab.getByRole('button', { name: 'End the room for everyone' }).isVisible()).to.equal(true);
    // One person in the room, not two: the same member in both tabs.
    await tab.locator('.people li').first().waitFor({ timeout: 10_000 });
    expect(await tab.locator('#people-title').textContent()).to.equal('People here (1)');
    await tab.getByRole('button', { name: 'Make a private host link for another device' }).click();
    await tab.locator('#host-link').waitFor({ timeout: 10_000 });
    expect(await tab.locator('#host-link').inputValue()).to.match(new RegExp(`/r/${roomId}#invite=`));
    expect(await tab.locator('.host-link .warning').textContent()).to.include('Do not share this link');
    await tab.locator('.host-return').screenshot({ path: path.join(shots, '3-host-link.png') });
    await tab.screenshot({ path: path.join(shots, '4-new-tab-host.png'), fullPage: true });
    await tab.close();
  });

  it('a join link opened where this browser has been a member offers to go back in as that member (or join as someone new)', async () => {
    const tab = await browser!.context.newPage();
    tab.on('pageerror', (err) => pageErrors.push(`join-link tab: ${err.message}`));
    await tab.goto(await host.locator('#share-link').inputValue());
    const back = tab.getByRole('button', { name: 'Go back in as Ana' });
    await back.waitFor({ timeout: 10_000 });
    expect(await tab.locator('#join-name').count()).to.equal(1);
    await tab.locator('.panel.narrow').screenshot({ path: path.join(shots, '6-join-link-come-back.png') });
    await back.click();
    await connected(tab);
    expect(await tab.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('host');
    expect((await tabMember(tab, roomId)).userId).to.equal(userId);
    expect(tab.url()).to.not.include('#invite=');
    await tab.close();
  });

  it('after the room ends, the page still lists the member’s clip', async () => {
    await host.getByRole('button', { name: 'End the room for everyone' }).click();
    await host.locator('.ended h1', { hasText: 'The room is over' }).waitFor({ timeout: 10_000 });
    await host.locator(`.my-things li[data-clip="${clipId}"] a[data-file="video"]`).waitFor({ timeout: 10_000 });
    // And again from the room's address, later.
    await host.goto(`${t.url}/r/${roomId}`);
    await host.locator(`.my-things li[data-clip="${clipId}"] a[data-file="video"]`).waitFor({ timeout: 10_000 });
    await host.screenshot({ path: path.join(shots, '5-ended-my-things.png'), fullPage: true });
  });
});
