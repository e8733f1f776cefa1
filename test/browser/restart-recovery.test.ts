// The web app in Chromium across a restart of its server: three members (host,
// remixer, listener) hear the room, the server process stops (SIGTERM, then
// SIGKILL) and starts again on the same address with the same data and secret.
// Without a reload, every page says plainly that it is reconnecting while the
// server is away (never "Playing"), then gets its document, its live channel and
// its sound back by itself. A reload of a page that was playing brings the sound
// back without pressing "Start audio". Runs on the embedded SFU, and on mediasoup
// too where MEDIASOUP_WORKER_BIN is set (test/support/sfu-adapters.ts).
// Screenshots go under the OS temp dir (printed).
import { expect } from 'chai';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort } from '../support/redis.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';
import { SFU_ADAPTERS, adapterEnv, adapterLogLine, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { until, connected } from '../support/web-app-page.ts';

interface Hooks {
  state(): { mix: { stems: Record<string, { gainDb: number }> } } | null;
  connection(): { sync: string; synced: boolean; socket: string };
  audio(): { state: string; error: string | null };
  audioStats(): Promise<{ packetsReceived: number; totalAudioEnergy: number }>;
}
type HookWindow = Window & { remixroom?: Hooks };


const packets = (page: Page) => page.evaluate(async () => (await (window as HookWindow).remixroom!.audioStats()).packetsReceived);
const audioState = (page: Page) => page.evaluate(() => (window as HookWindow).remixroom?.audio() ?? { state: 'none', error: null });
const audioText = (page: Page) => page.locator('.audio-status').textContent();
const gainOf = (page: Page, stem: string) => page.evaluate((s) => (window as HookWindow).remixroom!.state()!.mix.stems[s]!.gainDb, stem);

/** The page plays the room's mix: state 'playing', and packets arrive (more than `after`, twice over). */
async function hears(page: Page, label: string, timeoutMs = 40_000): Promise<number> {
  const first = await until(`${label}: packets of the live mix`, timeoutMs, async () => {
    const a = await audioState(page);
    const n = await packets(page);
    if (a.state === 'playing' && n > 10) return n;
    throw new Error(`audio ${a.state}${a.error ? `: ${a.error}` : ''}, ${n} packets`);
  });
  return until(`${label}: packets still arriving`, 10_000, async () => {
    const n = await packets(page);
    return n > first ? n : null;
  });
}

for (const sfu of SFU_ADAPTERS) {
  describe(adapterTitle('restart recovery in Chromium: the pages get the document, the live channel and the sound back by themselves', sfu), function () {
    this.timeout(240_000);
    let dataDir: { path: string; remove(): Promise<void> };
    let port = 0;
    const env: Record<string, string> = {};
    let server: ServerProcess | null = null;
    let browser: LaunchedBrowser | null = null;
    let url = '';
    let shots = '';
    const pages: Record<'host' | 'remixer' | 'listener', Page> = {} as never;
    const pageErrors: string[] = [];

    async function startServer(): Promise<void> {
      server = spawnServer(env);
      await server.waitFor(/Remixroom is running/, 60_000);
      // The server falls back to the embedded SFU when mediasoup's worker does not start: not what this run is for.
      await server.waitFor(adapterLogLine(sfu), 1000);
    }

    async function stopServer(signal: 'SIGTERM' | 'SIGKILL'): Promise<void> {
      const s = server!;
      s.child.kill(signal);
      const { code } = await s.exited;
      if (signal === 'SIGTERM') expect(code, s.output()).to.equal(0);
      server = null;
    }

    before(async function () {
      await requireSfuAdapter(sfu, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      [dataDir] = await Promise.all([demoDataDir(), buildClient()]);
      port = await freePort();
      Object.assign(env, {
        PORT: String(port),
        DATA_DIR: dataDir.path,
        TOKEN_SECRET: crypto.randomBytes(32).toString('hex'),
        ROOM_SAVE_DEBOUNCE_MS: '100',
        LOG_LEVEL: 'info',
        ...adapterEnv(sfu),
      });
      url = `http://127.0.0.1:${port}`;
      await startServer();
      shots = await fsp.mkdtemp(path.join(os.tmpdir(), `remixroom-restart-shots-${sfu}-`));
      console.log(`        ↳ screenshots: ${shots}`);
      browser = await launchChromium();
      for (const label of ['host', 'remixer', 'listener'] as const) {
        const p = await browser.context.newPage();
        p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
        pages[label] = p;
      }
      const { host, remixer, listener } = pages;
      await host.goto(`${url}/`);
      const first = host.locator('.release-card').first();
      await first.waitFor({ timeout: 10_000 });
      await first.getByLabel('Your name').fill('Ana');
      await first.getByRole('button', { name: 'Open a room' }).click();
      await host.waitForURL(/\/r\/[\w-]+$/, { timeout: 10_000 });
      await connected(host);
      const joinUrl = await host.locator('#share-link').inputValue();
      await remixer.goto(joinUrl);
      await remixer.getByLabel(/display name/).fill('Ben');
      await remixer.getByRole('button', { name: 'Join' }).click();
      await connected(remixer);
      await host.getByRole('button', { name: 'Make a listen-only link' }).click();
      await listener.goto(await host.locator('#listener-link').inputValue({ timeout: 5000 }));
      await listener.getByLabel(/display name/).fill('Cleo');
      await listener.getByRole('button', { name: 'Join' }).click();
      await connected(listener);
      await host.getByRole('button', { name: 'Play the room' }).click();
      for (const p of [host, remixer, listener]) await p.getByRole('button', { name: /Start audio/ }).click();
      for (const [label, p] of Object.entries(pages)) await hears(p, label);
    });

    // Each test starts with the server up, whatever the one before left.
    beforeEach(async () => {
      if (!server) await startServer();
    });

    after(async () => {
      await browser?.close();
      if (server) {
        server.child.kill('SIGKILL');
        await server.exited;
      }
      await dataDir?.remove();
    });

    async function restartAndRecover(signal: 'SIGTERM' | 'SIGKILL', gain: number): Promise<void> {
      const { host, remixer, listener } = pages;
      await stopServer(signal);
      // The server is away: every page says it is reconnecting, none says "Playing".
      for (const [label, p] of Object.entries(pages)) {
        await p.waitForFunction(() => document.querySelector<HTMLElement>('.conn')?.dataset['ok'] === 'false', undefined, { timeout: 15_000 });
        await until(`${label}: the audio to say it is reconnecting`, 15_000, async () => {
          const a = await audioState(p);
          if (a.state === 'rejoining') return a;
          throw new Error(`audio ${a.state}${a.error ? `: ${a.error}` : ''}; it says “${await audioText(p)}”`);
        });
        const text = (await audioText(p)) ?? '';
        expect(text, `${label} while the server is away`).not.to.match(/Playing/);
        expect(text, `${label} while the server is away`).to.match(/Reconnecting/);
        expect(await p.locator('.conn').textContent(), label).to.match(/reconnecting/);
      }
      // No packets arrive while the server is away (the status above is the truth).
      const down = await packets(listener);
      await new Promise((r) => setTimeout(r, 1500));
      expect(await packets(listener)).to.equal(down);
      await remixer.screenshot({ path: path.join(shots, `${signal}-1-down-remixer.png`), fullPage: true });
      // Well past the single retry the old client made.
      await new Promise((r) => setTimeout(r, 3000));
      await startServer();
      const backAtMs = Date.now();
      for (const [label, p] of Object.entries(pages)) {
        await connected(p, 60_000);
        await hears(p, label, 60_000);
        expect(await audioText(p), label).to.match(/Playing/);
      }
      // A figure for the reader, not a limit (speed belongs to bench/).
      console.log(`        ↳ after ${signal}: all three pages connected and hearing the mix ${Date.now() - backAtMs} ms after the server listened again`);
      // The document syncs again: the host's fader arrives on the others.
      await host.locator('#stem-bass-gainDb').focus();
      await host.keyboard.press(gain === -60 ? 'Home' : 'End');
      for (const p of [remixer, listener]) await until('the host’s fader on the other pages', 15_000, async () => (await gainOf(p, 'bass')) === gain);
      // And the live channel: chat goes through.
      await remixer.locator('#chat-text').fill(`back after ${signal}`);
      await remixer.locator('.chat-form button[type=submit]').click();
      await listener.locator('.chat-log li', { hasText: `back after ${signal}` }).waitFor({ timeout: 10_000 });
      await remixer.screenshot({ path: path.join(shots, `${signal}-2-recovered-remixer.png`), fullPage: true });
    }

    it('SIGTERM: the pages say they are reconnecting while the server is away, then sound, document and channel come back without a reload', async () => {
      await restartAndRecover('SIGTERM', -60);
    });

    it('SIGKILL (no goodbye from the server): the same, from a dropped transport', async () => {
      await restartAndRecover('SIGKILL', 6);
    });

    it('a reload of a page that was playing brings the sound back without pressing "Start audio"', async () => {
      const { listener } = pages;
      await listener.reload();
      await connected(listener);
      await hears(listener, 'listener after a reload');
      expect(await audioText(listener)).to.match(/Playing/);
      await listener.screenshot({ path: path.join(shots, 'reload-listener.png'), fullPage: true });
    });

    it('a page whose audio was stopped stays silent after a reload', async () => {
      const { remixer } = pages;
      await remixer.getByRole('button', { name: /Stop audio/ }).click();
      await until('the audio off', 10_000, async () => (await audioState(remixer)).state === 'off');
      await remixer.reload();
      await connected(remixer);
      await new Promise((r) => setTimeout(r, 1500));
      expect((await audioState(remixer)).state).to.equal('off');
      expect(await remixer.getByRole('button', { name: /Start audio/ }).isVisible()).to.equal(true);
    });

    it('where the browser wants a gesture before sound, the page says "Tap anywhere", and one tap brings the sound back', async () => {
      // Chromium under automation counts the page as activated whatever its autoplay policy (seen here:
      // play() allowed even with --autoplay-policy=user-gesture-required), so this tab imitates the policy:
      // play() refuses with NotAllowedError until the first real (trusted) click on the page.
      // The tab had the room's sound on: its sessionStorage (the membership and the remembered sound) as after a reload.
      const stored = await pages.listener.evaluate(() => Object.fromEntries(Object.keys(sessionStorage).filter((k) => k.startsWith('remixroom.')).map((k) => [k, sessionStorage.getItem(k)!])));
      expect(Object.values(stored)).to.include('on');
      const page = await browser!.context.newPage();
      try {
        page.on('pageerror', (err) => pageErrors.push(`strict: ${err.message}`));
        await page.addInitScript((entries: Record<string, string>) => {
          for (const [k, v] of Object.entries(entries)) sessionStorage.setItem(k, v);
          const play = HTMLMediaElement.prototype.play;
          let tapped = false;
          addEventListener('click', (e) => void (tapped ||= e.isTrusted), true);
          HTMLMediaElement.prototype.play = function (this: HTMLMediaElement) {
            return tapped ? play.call(this) : Promise.reject(new DOMException('play() needs a user gesture', 'NotAllowedError'));
          };
        }, stored);
        await page.goto(pages.listener.url());
        await connected(page);
        await until('the page to ask for a tap', 20_000, async () => {
          const a = await audioState(page);
          if (a.state === 'blocked') return a;
          throw new Error(`audio ${a.state}${a.error ? `: ${a.error}` : ''}`);
        });
        expect(await audioText(page)).to.equal('Tap anywhere to bring the sound back.');
        expect(await page.getByRole('button', { name: /Start audio/ }).isVisible()).to.equal(true);
        await page.screenshot({ path: path.join(shots, 'tap-to-resume.png'), fullPage: true });
        // One tap on the page (not on the button) is enough.
        await page.locator('h1').first().click();
        await hears(page, 'the tab after a tap');
        expect(await audioText(page)).to.match(/Playing/);
      } finally {
        await page.close();
      }
    });

    it('no page threw an uncaught error', () => {
      expect(pageErrors).to.deep.equal([]);
    });
  });
}
