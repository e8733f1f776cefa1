// The room's layout and words as a fan meets them, in real Chromium against a
// real server: on a 390×844 phone the visuals and the mixer come first (the first
// fader within 900 px of the top), nothing fixed covers a control at any scroll
// position, every control is at least 24×24 px and the page never scrolls
// sideways; faders move in musical steps from the keyboard; the join page
// explains a bad, expired or used-up link and an unknown room before anyone types
// a name; a chat message refused by moderation says why next to the box.
// Screenshots of the join page and the room at desktop (1280×800) and phone size
// are saved under the OS temp dir (the path is printed) for a person to look at.
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { TokenSigner } from '../../server/auth/tokens.ts';
import { rot13 } from '../../shared/moderation-defaults.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { api } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { connected } from '../support/web-app-page.ts';

const PHONE = { width: 390, height: 844 };
const DESKTOP = { width: 1280, height: 800 };

type HookWindow = Window & { remixroom?: { connection(): { sync: string; synced: boolean; socket: string }; state(): unknown } };

interface Box {
  what: string;
  x: number;
  y: number;
  width: number;
  height: number;
}

/** Every visible control on the page, with its box in the viewport now. */
function visibleControls(page: Page): Promise<Box[]> {
  return page.evaluate(() => {
    const out: { what: string; x: number; y: number; width: number; height: number }[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('button, input, select, textarea, summary, a.button')) {
      const r = el.getBoundingClientRect();
      const style = getComputedStyle(el);
      if (r.width === 0 || r.height === 0 || style.visibility === 'hidden' || el.closest('[hidden]') || el.closest('.visually-hidden')) continue;
      if (el.closest('details:not([open])') && !(el.tagName === 'SUMMARY' && el.parentElement?.closest('details') === el.closest('details'))) continue;
      const name = el.id ? `#${el.id}` : (el.getAttribute('aria-label') ?? el.textContent?.trim().slice(0, 30) ?? '');
      out.push({ what: `${el.tagName.toLowerCase()}${el instanceof HTMLInputElement ? `[${el.type}]` : ''} ${name}`, x: r.x, y: r.y, width: r.width, height: r.height });
    }
    return out;
  });
}

/** Elements that stay put (or stick) while the page scrolls, with their boxes now. */
function pinnedElements(page: Page): Promise<Box[]> {
  return page.evaluate(() => {
    const out: { what: string; x: number; y: number; width: number; height: number }[] = [];
    for (const el of document.querySelectorAll<HTMLElement>('body *')) {
      const pos = getComputedStyle(el).position;
      if (pos !== 'fixed' && pos !== 'sticky') continue;
      const r = el.getBoundingClientRect();
      if (r.width === 0 || r.height === 0) continue;
      out.push({ what: `${el.tagName.toLowerCase()}.${el.className} (${pos})`, x: r.x, y: r.y, width: r.width, height: r.height });
    }
    return out;
  });
}

const overlap = (a: Box, b: Box) => a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height;

describe('web app layout and words: the mixer first on a phone, nothing covered, 24 px targets, musical fader steps, the join page and refusals in plain words', function () {
  this.timeout(120_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let shots = '';
  let roomId = '';
  let hostToken = '';
  let joinUrl = '';
  const pageErrors: string[] = [];

  before(async function () {
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    const [server] = await Promise.all([startTestServer(), buildClient()]);
    t = server;
    shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-layout-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  afterEach(() => {
    expect(pageErrors, 'no errors in the pages').to.deep.equal([]);
  });

  async function page(size: { width: number; height: number }, label: string): Promise<Page> {
    const p = await browser!.context.newPage();
    p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
    await p.setViewportSize(size);
    return p;
  }

  /** Opens a room from the landing page, as a fan would: the page ends in the room, connected. */
  async function openRoom(p: Page, name: string): Promise<void> {
    await p.goto(t.url);
    const first = p.locator('.release-card').first();
    await first.getByLabel('Your name').fill(name);
    await first.getByRole('button', { name: 'Open a room' }).click();
    await p.waitForURL(/\/r\/[A-Za-z0-9_-]+$/, { timeout: 10_000 });
    await connected(p);
  }

  it('on a 390×844 phone the visuals and the mixer come first: the first fader within 900 px of the top, no sideways scrolling', async () => {
    const host = await page(PHONE, 'host');
    await openRoom(host, 'Ana');
    roomId = new URL(host.url()).pathname.split('/').pop()!;
    const membership = await host.evaluate((id) => JSON.parse(sessionStorage.getItem(`remixroom.member.${id}`) ?? 'null') as { token: string; joinUrl: string } | null, roomId);
    hostToken = membership?.token ?? '';
    joinUrl = membership?.joinUrl ?? '';
    expect(joinUrl, 'the host’s join link').to.match(/#invite=/);
    const fader = await host.evaluate(() => {
      const el = document.querySelector('.mixer input[type=range]')!;
      return { id: el.id, top: el.getBoundingClientRect().top + scrollY };
    });
    const whole = await host.evaluate(() => ({ height: document.documentElement.scrollHeight, width: document.documentElement.scrollWidth }));
    await host.screenshot({ path: path.join(shots, 'room-phone.png'), fullPage: true });
    await host.screenshot({ path: path.join(shots, 'room-phone-first-screen.png') });
    for (let i = 1; i * 800 < (await host.evaluate(() => document.documentElement.scrollHeight)); i++) {
      await host.evaluate((y) => window.scrollTo(0, y), i * 800);
      await host.screenshot({ path: path.join(shots, `room-phone-screen-${i}.png`) });
    }
    await host.evaluate(() => window.scrollTo(0, 0));
    console.log(`        ↳ phone: first fader (${fader.id}) at ${Math.round(fader.top)} px; page ${whole.height} px tall`);
    expect(fader.top, 'the first fader’s top').to.be.below(900);
    const wide = await host.evaluate((w) => [...document.querySelectorAll<HTMLElement>('body *')].filter((el) => el.getBoundingClientRect().right > w + 0.5).map((el) => `${el.tagName.toLowerCase()}.${el.className} ${Math.round(el.getBoundingClientRect().left)}-${Math.round(el.getBoundingClientRect().right)}`).slice(0, 8), PHONE.width);
    expect(whole.width, `no sideways scrolling (wider: ${wide.join(', ')})`).to.be.at.most(PHONE.width);
    // The mixer comes before clips, prompts and chat.
    const order = await host.evaluate(() => ['.mixer-panel', '.prompts', '.chat', '.saves', '.share'].map((s) => Math.round(document.querySelector(s)!.getBoundingClientRect().top + scrollY)));
    expect(order[0]).to.be.below(Math.min(...order.slice(1)));
    await host.close();
  });

  it('on a phone and on a desktop nothing fixed covers a control at any scroll position, and every visible control is at least 24×24 px', async () => {
    for (const [size, label] of [
      [PHONE, 'phone'],
      [DESKTOP, 'desktop'],
    ] as const) {
      const p = await page(size, label);
      await openRoom(p, 'Bo');
      const height = await p.evaluate(() => document.documentElement.scrollHeight);
      const small: string[] = [];
      const covered: string[] = [];
      let controlsSeen = 0;
      for (let y = 0; y < height; y += Math.floor(size.height / 2)) {
        await p.evaluate((to) => window.scrollTo(0, to), y);
        const [controls, pinned] = await Promise.all([visibleControls(p), pinnedElements(p)]);
        controlsSeen = Math.max(controlsSeen, controls.length);
        for (const c of controls) {
          if (c.width < 24 || c.height < 24) small.push(`${c.what} ${Math.round(c.width)}×${Math.round(c.height)}`);
          for (const f of pinned) if (overlap(c, f)) covered.push(`${c.what} under ${f.what} at scroll ${y}`);
        }
      }
      expect(controlsSeen, `${label}: controls found`).to.be.greaterThan(40);
      expect([...new Set(small)], `${label}: controls smaller than 24×24 px`).to.deep.equal([]);
      expect([...new Set(covered)], `${label}: controls covered by something fixed`).to.deep.equal([]);
      await p.evaluate(() => window.scrollTo(0, 0));
      if (label === 'desktop') await p.screenshot({ path: path.join(shots, 'room-desktop.png'), fullPage: true });
      await p.close();
    }
  });

  it('the tempo moves 0.01× per arrow key and 0.05× with Shift; a level 0.5 dB, and 3 dB with Shift', async () => {
    const p = await page(DESKTOP, 'keys');
    await openRoom(p, 'Cy');
    const shows = (sel: string, value: string) => p.waitForFunction(([s, v]) => document.querySelector<HTMLInputElement>(s!)?.dataset['value'] === v, [sel, value] as const, { timeout: 10_000 });
    await p.locator('#master-tempo').focus();
    await p.keyboard.press('ArrowRight');
    await shows('#master-tempo', '1.01');
    expect(await p.locator('output[for="master-tempo"]').textContent()).to.equal('1.01×');
    await p.keyboard.press('Shift+ArrowRight');
    await shows('#master-tempo', '1.06');
    await p.keyboard.press('Shift+ArrowLeft');
    await p.keyboard.press('ArrowLeft');
    await shows('#master-tempo', '1');
    await p.locator('#stem-drums-gainDb').focus();
    await p.keyboard.press('ArrowRight');
    await shows('#stem-drums-gainDb', '0.5');
    await p.keyboard.press('Shift+ArrowLeft');
    await shows('#stem-drums-gainDb', '-2.5');
    await p.close();
  });

  it('the join page explains a bad, expired or used-up link and an unknown room before anyone types a name', async () => {
    const p = await page(DESKTOP, 'join');
    const problem = async (url: string, title: string) => {
      await p.goto('about:blank');
      await p.goto(url);
      await p.getByRole('heading', { name: title }).waitFor({ timeout: 10_000 });
      expect(await p.locator('#join-name').count(), `${title}: no name to type`).to.equal(0);
      return (await p.locator('.entry-problem').textContent()) ?? '';
    };
    expect(await problem(`${t.url}/r/${roomId}#invite=not-a-real-link`, 'This join link does not work')).to.include('Open the whole link the host sent you');
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    const expired = signer.sign({ kind: 'invite', room: roomId, sub: 'inv_old', name: 'invite', role: 'remixer', ttlSec: -10 });
    expect(await problem(`${t.url}/r/${roomId}#invite=${expired}`, 'This join link has expired')).to.include('Ask the host to send you a new one');
    const once = await api<{ invite: string; joinUrl: string }>(t.url, 'POST', `/api/rooms/${roomId}/tokens`, { role: 'remixer', maxUses: 1 }, hostToken);
    expect((await api(t.url, 'POST', `/api/rooms/${roomId}/join`, { invite: once.body.invite, name: 'First' })).status).to.equal(201);
    await problem(once.body.joinUrl, 'This join link is used up');
    expect(await problem(`${t.url}/r/nosuchroom1234#invite=${expired}`, 'This room does not exist')).to.include('no room at this address');
    await problem(`${t.url}/r/nosuchroom1234`, 'This room does not exist');
    await p.screenshot({ path: path.join(shots, 'join-unknown-room-desktop.png') });
    // A browser that has never been in the room (this one has: it would come back as that member).
    await p.evaluate((id) => localStorage.removeItem(`remixroom.members.${id}`), roomId);
    await problem(`${t.url}/r/${roomId}`, 'You need a join link');
    // A good link: the form, with what the room is.
    await p.goto('about:blank');
    await p.goto(joinUrl);
    await p.locator('#join-name').waitFor({ timeout: 10_000 });
    expect(await p.locator('h1').textContent()).to.match(/^Join the room: /);
    await p.screenshot({ path: path.join(shots, 'join-desktop.png') });
    await p.setViewportSize(PHONE);
    await p.screenshot({ path: path.join(shots, 'join-phone.png') });
    await p.close();
  });

  it('a chat message refused by moderation stays in the box and says why next to it', async () => {
    const p = await page(DESKTOP, 'chat');
    await openRoom(p, 'Dee');
    const text = `this is ${rot13('fuvg')}`;
    await p.getByLabel('Message', { exact: true }).fill(text);
    await p.getByLabel('Message', { exact: true }).press('Enter');
    const reason = p.locator('.chat-form .chat-result');
    await reason.filter({ hasText: 'Not sent' }).waitFor({ timeout: 10_000 });
    expect(await reason.textContent()).to.equal('Not sent. This message has a word this room does not allow. Change it and send it again.');
    expect(await p.getByLabel('Message', { exact: true }).inputValue(), 'the message stays to be changed').to.equal(text);
    // A fine message goes, and the reason goes with it.
    await p.getByLabel('Message', { exact: true }).fill('lovely bass');
    await p.getByLabel('Message', { exact: true }).press('Enter');
    await p.locator('.chat-log li', { hasText: 'lovely bass' }).waitFor({ timeout: 10_000 });
    expect(await reason.textContent()).to.equal('');
    await p.close();
  });
});
