// The fan's web app in real Chromium against a real server: the landing page
// opens a room, a second member joins through the join link, both move the same
// faders, a listener is shown why it cannot, "Start audio" receives the live mix,
// chat and prompts reach the other member, and the host's locks show up at once.
// A member saves a clip from the page (progress, preview, downloads that ffprobe
// accepts), buys the full version (a declined card says why; the test card
// reaches the full-version downloads), and saves a picture and a loop of the visuals.
// Screenshots of the landing page, the room, the mixer and the clips are saved under the OS
// temp dir (the path is printed) for a person to look at.
import { expect } from 'chai';
import qrcode from 'qrcode-generator';
import fsp from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { until, connected } from '../support/web-app-page.ts';

interface Hooks {
  role(): string;
  state(): { mix: { stems: Record<string, { gainDb: number }> }; rules: { editableStems: string[] }; visual: { prompt: string | null } } | null;
  connection(): { sync: string; synced: boolean; socket: string };
  audio(): { state: string; error: string | null };
  audioStats(): Promise<{ packetsReceived: number; totalAudioEnergy: number }>;
  visuals(): { paramsKey: string; framesDrawn: number; status: string };
}
type HookWindow = Window & { remixroom?: Hooks };

/**
 * A TCP proxy in front of the server, so that a page's connection can really drop
 * (every socket cut, new ones refused for a while) without touching the server.
 */
async function startDropProxy(target: URL): Promise<{ url: string; drop(forMs: number): void; close(): Promise<void> }> {
  const open = new Set<net.Socket>();
  let blockedUntil = 0;
  const server = net.createServer((client) => {
    if (Date.now() < blockedUntil) return void client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      open.add(a);
      a.on('close', () => {
        open.delete(a);
        b.destroy();
      });
      a.on('error', () => b.destroy());
      a.pipe(b);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    drop(forMs) {
      blockedUntil = Date.now() + forMs;
      for (const s of open) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of open) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Waits until the page's room is connected and synced (both channels). */

/** Waits until the control `sel` on `page` shows `value` (its data-value); says what it shows instead when it does not. */
async function controlShows(page: Page, sel: string, value: string, others: Page[] = []): Promise<void> {
  try {
    await page.waitForFunction(([s, v]) => document.querySelector<HTMLInputElement>(s!)?.dataset['value'] === v, [sel, value] as const, { timeout: 10_000 });
  } catch (err) {
    const seen = await Promise.all(
      [page, ...others].map((p) =>
        p.evaluate((s) => ({ shows: document.querySelector<HTMLInputElement>(s)?.dataset['value'], notice: document.querySelector('.notice')?.textContent, conn: document.querySelector('.conn')?.textContent }), sel),
      ),
    );
    throw new Error(`${sel} never showed ${value}: ${JSON.stringify(seen)} (${(err as Error).message.split('\n')[0]})`);
  }
}

const gainOf = (page: Page, stem: string) => page.evaluate((s) => (window as HookWindow).remixroom!.state()!.mix.stems[s]!.gainDb, stem);

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('web app in Chromium: landing, join link, shared mixer, listener locks, live audio, chat, prompts, host rules', adapter), function () {
    this.timeout(150_000);
    let t: TestServer;
    let browser: LaunchedBrowser | null = null;
    let host: Page;
    let remixer: Page;
    let listener: Page;
    let joinUrl = '';
    let roomId = '';
    let shots = '';
    let proxy: Awaited<ReturnType<typeof startDropProxy>> | null = null;
    const pageErrors: string[] = [];

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      // Always built from the sources under test (a second or two), so a stale build cannot pass.
      // Small, quick renders: the clip tests render a clip, a loop and the full-length version.
      const [server] = await Promise.all([startTestServer({ renderVideo: { width: 320, height: 180, fps: 10 }, sandboxSettleMs: 200 }, { adapter }), buildClient()]);
      t = server;
      // The remixer's page reaches the server through this proxy, so that its connection can be cut.
      proxy = await startDropProxy(new URL(t.url));
      shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-web-app-shots-'));
      console.log(`        ↳ screenshots: ${shots}`);
      browser = await launchChromium();
      const open = async (label: string) => {
        const p = await browser!.context.newPage();
        p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
        return p;
      };
      host = await open('host');
      remixer = await open('remixer');
      listener = await open('listener');
    });

    after(async () => {
      await browser?.close();
      await proxy?.close();
      await t?.close();
    });

    it('serves the app: the page uncached, hashed assets cached for good, the join path, and nothing outside client/dist', async () => {
      const page = await fetch(`${t.url}/`);
      expect(page.status).to.equal(200);
      expect(page.headers.get('content-type')).to.match(/^text\/html/);
      expect(page.headers.get('cache-control')).to.equal('no-cache');
      expect(page.headers.get('content-security-policy')).to.include("default-src 'self'");
      const html = await page.text();
      const script = /src="(\/assets\/app-[\w]+\.js)"/.exec(html)?.[1];
      expect(script, 'the page names its script').to.be.a('string');
      const asset = await fetch(`${t.url}${script}`);
      expect(asset.status).to.equal(200);
      expect(asset.headers.get('content-type')).to.match(/^text\/javascript/);
      expect(asset.headers.get('cache-control')).to.include('immutable');
      expect(asset.headers.get('content-encoding'), 'compressed at build time').to.be.oneOf(['br', 'gzip']);
      expect(asset.headers.get('vary')).to.equal('accept-encoding');
      const text = await asset.text();
      const br = await fetch(`${t.url}${script}`, { headers: { 'accept-encoding': 'br' } });
      expect(br.headers.get('content-encoding')).to.equal('br');
      expect(await br.text()).to.equal(text);
      const plain = await fetch(`${t.url}${script}`, { headers: { 'accept-encoding': 'identity' } });
      expect(plain.headers.get('content-encoding')).to.equal(null);
      expect(await plain.text()).to.equal(text);
      const join = await fetch(`${t.url}/r/abcdefgh12`);
      expect(join.status).to.equal(200);
      expect(await join.text()).to.equal(html);
      for (const bad of ['/assets/..%2f..%2fpackage.json', '/assets/%2e%2e%2fbuild.ts', '/assets/..%5cbuild.ts', '/r/..%2f..%2fpackage.json', '/client/build.ts', '/package.json', '/assets/', '/r/x']) {
        const r = await fetch(`${t.url}${bad}`);
        expect(r.status, bad).to.equal(404);
        const body = await r.text();
        expect(body, bad).not.to.include('"dependencies"');
        expect(body, bad).not.to.include('esbuild');
      }
      // The API keeps answering JSON, not the page.
      const api = await fetch(`${t.url}/api/nope`);
      expect(api.status).to.equal(404);
      expect(((await api.json()) as { error: { code: string } }).error.code).to.equal('not_found');
    });

    it('the landing page lists the demo release first and opens a room, whose opener is the host with a share link', async () => {
      await host.goto(`${t.url}/`);
      const first = host.locator('.release-card').first();
      await first.waitFor({ timeout: 10_000 });
      expect(await first.getAttribute('data-release')).to.equal('remixroom-demo');
      expect(await first.locator('h3').textContent()).to.equal('Night Bus Glow');
      await host.screenshot({ path: path.join(shots, '1-landing.png'), fullPage: true });
      await first.getByLabel('Your name').fill('Ana');
      await first.getByRole('button', { name: 'Open a room' }).click();
      await host.waitForURL(/\/r\/[\w-]+$/, { timeout: 10_000 });
      await connected(host);
      expect(await host.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('host');
      joinUrl = await host.locator('#share-link').inputValue();
      roomId = /\/r\/([\w-]+)/.exec(host.url())![1]!;
      expect(joinUrl).to.match(new RegExp(`/r/${roomId}#invite=`));
      expect(await host.locator('.conn').textContent()).to.include('Room: connected');
      // The QR code for phones encodes exactly the join link: every module drawn matches the encoder's.
      await host.getByText('Show a QR code for phones').click();
      const drawn = await host.evaluate(() => {
        const c = document.querySelector('canvas.qr') as HTMLCanvasElement;
        const px = c.getContext('2d')!.getImageData(0, 0, c.width, c.height).data;
        return { side: c.width, dark: Array.from({ length: c.width * c.height }, (_, i) => px[i * 4]! < 128) };
      });
      const expected = qrcode(0, 'M');
      expected.addData(joinUrl);
      expected.make();
      const modules = expected.getModuleCount();
      const cell = drawn.side / (modules + 8);
      expect(Number.isInteger(cell), `canvas ${drawn.side}px for ${modules} modules`).to.equal(true);
      let mismatches = 0;
      for (let r = 0; r < modules; r++) {
        for (let c = 0; c < modules; c++) {
          const y = Math.floor((r + 4 + 0.5) * cell);
          const x = Math.floor((c + 4 + 0.5) * cell);
          if (drawn.dark[y * drawn.side + x] !== expected.isDark(r, c)) mismatches++;
        }
      }
      expect(mismatches).to.equal(0);
    });

    it('a second member opens the join link, gives a name and is in the room as a remixer; both see each other', async () => {
      await remixer.goto(joinUrl.replace(t.url, proxy!.url));
      await remixer.getByLabel(/display name/).fill('Ben');
      await remixer.getByRole('button', { name: 'Join' }).click();
      await connected(remixer);
      expect(await remixer.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('remixer');
      expect(remixer.url(), 'the invite leaves the address bar').not.to.include('invite=');
      await host.locator('.people li', { hasText: 'Ben' }).waitFor({ timeout: 10_000 });
      await remixer.locator('.people li', { hasText: 'Ana' }).waitFor({ timeout: 10_000 });
      expect(await remixer.locator('.people li', { hasText: 'Ana' }).textContent()).to.include('host');
    });

    it('A moves a fader and B’s fader moves with it (and back)', async () => {
      const fader = '#stem-drums-gainDb';
      expect(await remixer.locator(fader).getAttribute('data-value')).to.equal('0');
      await host.locator(fader).focus();
      await host.keyboard.press('Home');
      await controlShows(host, fader, '-60');
      await controlShows(remixer, fader, '-60', [host]);
      // The fader's input holds the level itself (its bottom).
      expect(await remixer.locator(fader).inputValue()).to.equal('-60');
      expect(await remixer.locator(`output[for="stem-drums-gainDb"]`).textContent()).to.equal('-60.0 dB');
      expect(await gainOf(remixer, 'drums')).to.equal(-60);
      // And the other way: B moves the master tempo to its top, A sees it.
      await remixer.locator('#master-tempo').focus();
      await remixer.keyboard.press('End');
      await controlShows(host, '#master-tempo', '1.25', [remixer]);
      await host.locator(fader).dblclick();
      await controlShows(remixer, fader, '0', [host]);
      await remixer.locator('#master-tempo').dblclick();
      await controlShows(host, '#master-tempo', '1', [remixer]);
      // While A holds a fader, B sees who is moving it (awareness); once A lets go, the note goes.
      const pan = (await host.locator('#stem-harmony-pan').boundingBox())!;
      await host.mouse.move(pan.x + pan.width / 2, pan.y + pan.height / 2);
      await host.mouse.down();
      await host.mouse.move(pan.x + pan.width * 0.75, pan.y + pan.height / 2, { steps: 4 });
      const note = remixer.locator('#stem-harmony-pan ~ .held-by');
      await remixer.locator('#stem-harmony-pan ~ .held-by', { hasText: 'Ana is moving this' }).waitFor({ timeout: 10_000 });
      expect(Number(await remixer.locator('#stem-harmony-pan').getAttribute('data-value'))).to.be.greaterThan(0.2);
      await host.mouse.up();
      await remixer.waitForFunction(() => document.querySelector('#stem-harmony-pan ~ .held-by')?.textContent === '', undefined, { timeout: 10_000 });
      expect(await note.textContent()).to.equal('');
    });

    it('a listener joining by a listen-only link cannot move anything, is told why, and a forced move is refused in words and snaps back', async () => {
      await host.getByRole('button', { name: 'Make a listen-only link' }).click();
      const link = await host.locator('#listener-link').inputValue({ timeout: 5000 });
      await listener.goto(link);
      await listener.getByLabel(/display name/).fill('Cleo');
      await listener.getByRole('button', { name: 'Join' }).click();
      await connected(listener);
      expect(await listener.evaluate(() => (window as HookWindow).remixroom!.role())).to.equal('listener');
      for (const sel of ['#stem-drums-gainDb', '#stem-bass-pan', '#master-tempo', '#master-reverbMix', '.play', '#excerpt']) {
        expect(await listener.locator(sel).isDisabled(), sel).to.equal(true);
      }
      const reason = listener.locator('.mixer-lock');
      expect(await reason.isVisible()).to.equal(true);
      expect(await reason.textContent()).to.include('You are listening: you can hear the mix, chat and react, but not change the mix');
      // Screen readers hear the reason with each control.
      const describedBy = (await listener.locator('#stem-drums-gainDb').getAttribute('aria-describedby')) ?? '';
      expect(describedBy.split(' ')).to.include(await reason.getAttribute('id'));
      expect(await listener.locator('#transport-lock').isVisible()).to.equal(true);
      // A stale or tampered page still writes: the server refuses, the page says why and shows the room's value.
      await listener.evaluate(() => {
        const el = document.querySelector<HTMLInputElement>('#stem-bass-gainDb')!;
        el.disabled = false;
        el.value = '100';
        el.dispatchEvent(new Event('input', { bubbles: true }));
        el.dispatchEvent(new Event('change', { bubbles: true }));
      });
      const notice = listener.locator('.notice');
      await notice.waitFor({ state: 'visible', timeout: 5000 });
      expect(await notice.textContent()).to.equal('Your change was undone. You are listening: you can hear the mix, chat and react, but not change the mix.');
      // Said by the mixer too, where the fan is looking (the notice is at the top of the page, not over it).
      expect(await listener.locator('.mixer-panel .mix-result').textContent()).to.equal('Your change was undone. You are listening: you can hear the mix, chat and react, but not change the mix.');
      await controlShows(listener, '#stem-bass-gainDb', '0');
      expect(await gainOf(host, 'bass')).to.equal(0);
      await listener.setViewportSize({ width: 390, height: 844 });
      await listener.screenshot({ path: path.join(shots, '4-room-listener-phone.png'), fullPage: true });
    });

    it('"Start audio" joins the live stream and the page receives the mix; B hears A mute and unmute it', async () => {
      await host.getByRole('button', { name: 'Play the room' }).click();
      await remixer.waitForFunction(() => document.querySelector('.play')?.getAttribute('aria-pressed') === 'true', undefined, { timeout: 10_000 });
      await remixer.getByRole('button', { name: /Start audio/ }).click();
      const stats = await until('packets of the live mix', 25_000, async () => {
        const s = await remixer.evaluate(() => (window as HookWindow).remixroom!.audioStats());
        if (s.packetsReceived > 20) return s;
        const a = await remixer.evaluate(() => (window as HookWindow).remixroom!.audio());
        throw new Error(`audio ${a.state}${a.error ? `: ${a.error}` : ''}, ${s.packetsReceived} packets`);
      });
      expect(await remixer.evaluate(() => (window as HookWindow).remixroom!.audio().state)).to.equal('playing');
      expect(await remixer.locator('.audio-status').textContent()).to.include('Playing');
      const later = await until('audio energy', 10_000, async () => {
        const s = await remixer.evaluate(() => (window as HookWindow).remixroom!.audioStats());
        return s.packetsReceived > stats.packetsReceived && s.totalAudioEnergy > 0 ? s : null;
      });
      console.log(`        ↳ audio: ${JSON.stringify(later)}`);
      // B hears A's moves: A mutes every stem on its page and the level B's page hears falls to silence; unmuting brings it back.
      const level = async () => {
        let peak = 0;
        for (let i = 0; i < 10; i++) {
          peak = Math.max(peak, await remixer.evaluate(() => (window as HookWindow).remixroom!.audioLevel()));
          await new Promise((r) => setTimeout(r, 100));
        }
        return peak;
      };
      const playing = await until('B to hear the mix', 15_000, async () => {
        const l = await level();
        return l > 0.01 ? l : null;
      });
      const mutes = host.locator('input[data-control$=".mute"]');
      const muteAll = async (checked: boolean) => {
        for (let i = 0; i < (await mutes.count()); i++) await mutes.nth(i).setChecked(checked);
      };
      await muteAll(true);
      const quiet = await until('B to hear the mix go silent', 20_000, async () => {
        const l = await level();
        return l < playing / 20 ? { l } : null;
      });
      await muteAll(false);
      const back = await until('B to hear the mix again', 20_000, async () => {
        const l = await level();
        return l > playing / 4 ? l : null;
      });
      console.log(`        ↳ heard (page analyser, peak of 1 s): playing ${playing.toFixed(3)}, all muted by A ${quiet.l.toFixed(4)}, unmuted ${back.toFixed(3)}`);
    });

    it('the transport is shared: a loop set by A shows on B, and clearing it frees the excerpt', async () => {
      await host.getByRole('button', { name: 'Loop from here' }).click();
      await remixer.locator('.loop-text', { hasText: 'Looping' }).waitFor({ timeout: 10_000 });
      const loop = await remixer.evaluate(() => (window as HookWindow).remixroom!.state() as unknown as { arrangement: { loopStartSec: number; loopEndSec: number } });
      expect(loop.arrangement.loopEndSec - loop.arrangement.loopStartSec).to.be.within(0.25, 4 + 1e-9); // seconds in floating point: 4.000000000000002 happens
      await host.getByRole('button', { name: 'Clear loop' }).click();
      await remixer.locator('.loop-text', { hasText: 'No loop' }).waitFor({ timeout: 10_000 });
    });

    it('a chat message and a reaction reach the other member', async () => {
      await remixer.getByLabel('Message', { exact: true }).fill('hello from Ben');
      await remixer.getByLabel('Message', { exact: true }).press('Enter');
      await host.locator('.chat-log li', { hasText: 'hello from Ben' }).waitFor({ timeout: 5000 });
      expect(await host.locator('.chat-log li', { hasText: 'hello from Ben' }).textContent()).to.include('Ben');
      await host.getByRole('button', { name: 'React with 🔥' }).click();
      await remixer.locator('.reaction-feed li', { hasText: 'Ana' }).waitFor({ timeout: 5000 });
    });

    it('a prompt changes the visuals both members see, says what it did, and enters the history', async () => {
      await remixer.waitForFunction(() => ((window as HookWindow).remixroom?.visuals().framesDrawn ?? 0) > 0, undefined, { timeout: 15_000 });
      const before = await remixer.evaluate(() => (window as HookWindow).remixroom!.visuals());
      await host.getByLabel('Describe what the visuals should become').fill('stormy ocean at night with slow ripples');
      await host.getByRole('button', { name: 'Send prompt' }).click();
      await host.locator('.prompt-result', { hasText: '→' }).waitFor({ timeout: 5000 });
      const after = await until('the new visuals on the other page', 5000, async () => {
        const v = await remixer.evaluate(() => (window as HookWindow).remixroom!.visuals());
        return v.paramsKey !== before.paramsKey && v.framesDrawn > before.framesDrawn + 2 ? v : null;
      });
      expect(after.paramsKey).to.not.equal('null');
      expect(await remixer.locator('.visual-caption').textContent()).to.include('stormy ocean');
      expect(await remixer.locator('.history li').first().textContent()).to.include('stormy ocean at night');
      await remixer.screenshot({ path: path.join(shots, '2-room.png'), fullPage: true });
    });

    it('with prompts queued, B’s prompt waits in the host’s approval queue and applies once the host approves it', async () => {
      await host.locator('#prompt-policy').selectOption('queued');
      await remixer.locator('#prompt-hint', { hasText: 'wait for the host' }).waitFor({ timeout: 10_000 });
      const before = await remixer.evaluate(() => (window as HookWindow).remixroom!.visuals().paramsKey);
      await remixer.getByLabel('Describe what the visuals should become').fill('golden sunset glow');
      await remixer.getByRole('button', { name: 'Send prompt' }).click();
      await remixer.locator('.prompt-result', { hasText: 'waiting for the host' }).waitFor({ timeout: 10_000 });
      const queued = host.locator('.queue li', { hasText: 'golden sunset glow' });
      await queued.waitFor({ timeout: 10_000 });
      expect(await queued.textContent()).to.include('Ben');
      expect(await remixer.evaluate(() => (window as HookWindow).remixroom!.visuals().paramsKey), 'nothing changes before approval').to.equal(before);
      await queued.getByRole('button', { name: /^Approve/ }).click();
      await remixer.locator('.visual-caption', { hasText: 'golden sunset glow' }).waitFor({ timeout: 10_000 });
      await host.locator('.queue-panel').waitFor({ state: 'hidden', timeout: 10_000 });
      await host.locator('#prompt-policy').selectOption('open');
    });

    it('the host locks a stem and the other member’s controls show it locked, with the reason; opening it again frees them', async () => {
      await host.locator('#open-drums').uncheck();
      await remixer.waitForFunction(() => document.querySelector<HTMLInputElement>('#stem-drums-gainDb')?.disabled === true, undefined, { timeout: 10_000 });
      expect(await remixer.locator('.strip[data-stem="drums"] .lock-reason').textContent()).to.equal('🔒 The host has locked the drums.');
      expect(await remixer.locator('.strip[data-stem="drums"] input[type=checkbox]').first().isDisabled()).to.equal(true);
      expect(await remixer.locator('#stem-bass-gainDb').isDisabled()).to.equal(false);
      expect(await host.locator('#stem-drums-gainDb').isDisabled(), 'the host may still move it').to.equal(false);
      expect(await remixer.evaluate(() => (window as HookWindow).remixroom!.state()!.rules.editableStems)).to.deep.equal(['bass', 'harmony', 'lead']);
      await remixer.locator('.mixer-panel').screenshot({ path: path.join(shots, '3-mixer-locked-drums.png') });
      await host.locator('#open-drums').check();
      await remixer.waitForFunction(() => document.querySelector<HTMLInputElement>('#stem-drums-gainDb')?.disabled === false, undefined, { timeout: 10_000 });
    });

    it('the host narrows a range: B’s control is held to the new limit and the live value is clamped; a limit outside the control’s range is refused', async () => {
      const tempoOf = (page: Page) => page.evaluate(() => ((window as HookWindow).remixroom!.state() as unknown as { mix: { master: { tempo: number } } }).mix.master.tempo);
      const rulesOf = (page: Page) => page.evaluate(() => ((window as HookWindow).remixroom!.state() as unknown as { rules: { masterRanges: Record<string, { min: number; max: number }> } }).rules.masterRanges);
      // B pushes the tempo slider to its top.
      const toTop = () =>
        remixer.locator('input[data-control="master.tempo"]').evaluate((el: HTMLInputElement) => {
          el.value = el.max;
          el.dispatchEvent(new Event('input', { bubbles: true }));
          el.dispatchEvent(new Event('change', { bubbles: true }));
        });
      await toTop();
      await until('the tempo at the top of its range', 10_000, async () => ((await tempoOf(host)) > 1.2 ? true : null));
      await host.locator('#limit-control').selectOption('masterRanges.tempo');
      await host.getByLabel('Lowest').fill('0.9');
      await host.getByLabel('Highest').fill('1.1');
      await host.getByRole('button', { name: 'Set limit' }).click();
      await until('B to see the limit', 10_000, async () => ((await rulesOf(remixer))['tempo']?.max === 1.1 ? true : null));
      // The live value was clamped for everyone, and B's slider now tops out at the limit.
      await until('the tempo clamped', 10_000, async () => (Math.abs((await tempoOf(remixer)) - 1.1) < 1e-9 ? true : null));
      await toTop();
      await new Promise((r) => setTimeout(r, 500));
      expect(await tempoOf(host)).to.be.at.most(1.1 + 1e-9);
      expect(await host.locator('li[data-limit="masterRanges.tempo"]').textContent()).to.include('0.9 to 1.1');
      // The form refuses what is outside the control's range before writing anything.
      await host.getByLabel('Highest').fill('5');
      await host.getByRole('button', { name: 'Set limit' }).click();
      expect(await host.locator('.limits-box [role="alert"]').textContent()).to.match(/at most/);
      expect((await rulesOf(remixer))['tempo']?.max).to.equal(1.1);
      // Removing the limit gives the control its range back.
      await host.getByRole('button', { name: 'Remove the limit on Tempo (master)' }).click();
      await until('the limit gone', 10_000, async () => ((await rulesOf(remixer))['tempo'] === undefined ? true : null));
      await toTop();
      await until('the full range again', 10_000, async () => ((await tempoOf(host)) > 1.2 ? true : null));
    });

    it('the remixer’s connection drops: the page says so, reconnects by itself, catches up with what changed meanwhile, and the audio resumes', async () => {
      const before = await remixer.evaluate(() => (window as HookWindow).remixroom!.audioStats());
      expect(before.packetsReceived).to.be.greaterThan(0);
      proxy!.drop(2000);
      await remixer.waitForFunction(() => document.querySelector<HTMLElement>('.conn')?.dataset['ok'] === 'false', undefined, { timeout: 10_000 });
      expect(await remixer.locator('.conn').textContent()).to.match(/reconnecting|offline/);
      // While the remixer is away, the host moves the bass.
      await host.locator('#stem-bass-gainDb').focus();
      await host.keyboard.press('Home');
      await until('the host’s change to be in the room', 5000, async () => (await gainOf(host, 'bass')) === -60);
      await connected(remixer);
      await controlShows(remixer, '#stem-bass-gainDb', '-60', [host]);
      const resumed = await until('the audio to resume', 25_000, async () => {
        const a = await remixer.evaluate(() => (window as HookWindow).remixroom!.audio());
        const s = await remixer.evaluate(() => (window as HookWindow).remixroom!.audioStats());
        return a.state === 'playing' && s.packetsReceived > 10 ? s : null;
      });
      console.log(`        ↳ after the drop: ${JSON.stringify(resumed)}`);
    });

    // ---- clips, purchases and downloads of the visuals (need a native ffmpeg on the server's machine)
    let native: NativeFfmpeg | null = null;
    let clipId = '';
    let ffprobe = '';

    /** ffprobe's streams and duration of a file, or its complaint. */
    const probe = async (file: string) => {
      const r = await runCapture(ffprobe, ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height:format=duration,format_name', '-of', 'json', file]);
      if (r.code !== 0) throw new Error(`ffprobe refused ${file}: ${r.stderr}`);
      return JSON.parse(r.stdout) as { streams: { codec_type: string; codec_name: string; width?: number; height?: number }[]; format: { duration: string; format_name: string } };
    };

    /** Downloads through the page (a click on the link, as a person would) into the screenshot folder. */
    const download = async (page: Page, link: ReturnType<Page['locator']>, name: string) => {
      const [dl] = await Promise.all([page.waitForEvent('download', { timeout: 20_000 }), link.click()]);
      const file = path.join(shots, name);
      await dl.saveAs(file);
      return file;
    };

    /** Clips need ffmpeg (and the test ffprobe): missing in CI fails, elsewhere skips the test. */
    const needFfmpeg = async (ctx: Mocha.Context) => {
      native ??= await findNativeFfmpeg();
      requireComponent('ffmpeg', native !== null && native.ffprobe !== null, ctx);
      ffprobe = native!.ffprobe!;
    };

    it('A commits a clip from the page, sees its progress, previews it and downloads an MP4 (and the audio and manifest) that ffprobe accepts', async function () {
      await needFfmpeg(this);
      const panel = host.locator('.clips');
      expect(await panel.getByRole('button', { name: 'Save the last 30 seconds' }).isEnabled()).to.equal(true);
      // Every status the clip shows, as it shows it.
      await host.evaluate(() => {
        const seen: string[] = [];
        (window as unknown as { clipStatuses: string[] }).clipStatuses = seen;
        new MutationObserver(() => {
          for (const el of document.querySelectorAll('.clip-card .render-status')) if (el.textContent && seen.at(-1) !== el.textContent) seen.push(el.textContent);
        }).observe(document.querySelector('.clips')!, { subtree: true, childList: true, characterData: true });
      });
      await host.getByLabel('Length', { exact: true }).selectOption('10');
      await panel.getByRole('button', { name: 'Save the last 10 seconds' }).click();
      const card = panel.locator('.clip-card').first();
      await card.waitFor({ timeout: 10_000 });
      clipId = (await card.getAttribute('data-clip'))!;
      expect(clipId).to.match(/^[0-9a-f]{16}$/);
      try {
        await card.locator('a[data-file="video"]').waitFor({ timeout: 60_000 });
      } catch (err) {
        throw new Error(`the clip never finished: ${await card.textContent()} (${(err as Error).message.split('\n')[0]})`);
      }
      const statuses = await host.evaluate(() => (window as unknown as { clipStatuses: string[] }).clipStatuses);
      console.log(`        ↳ clip statuses: ${JSON.stringify(statuses)}`);
      expect(statuses.some((x) => /waiting its turn|Making your clip… \d+%/.test(x)), 'progress was shown before the end').to.equal(true);
      expect(statuses.at(-1)).to.match(/^Your clip is ready \(0:(0\d|10)\)\.$/);
      expect(await card.getAttribute('data-status')).to.equal('done');
      // The preview plays the same-origin MP4 (the page's CSP allows it).
      const preview = await host.waitForFunction(
        () => {
          const v = document.querySelector<HTMLVideoElement>('.clip-card video');
          return v && (v.readyState >= 1 || v.error) ? { readyState: v.readyState, error: v.error?.message ?? v.error?.code ?? null, duration: v.duration } : null;
        },
        undefined,
        { timeout: 15_000 },
      );
      console.log(`        ↳ preview: ${JSON.stringify(await preview.jsonValue())}`);
      // The three downloads, each through a click on its button.
      const video = await download(host, card.getByRole('link', { name: /video \(MP4\)/ }), 'clip.mp4');
      const probed = await probe(video);
      expect(probed.format.format_name).to.include('mp4');
      expect(probed.streams.map((x) => `${x.codec_type}:${x.codec_name}`).sort()).to.deep.equal(['audio:aac', 'video:h264']);
      expect(Number(probed.format.duration)).to.be.within(1, 11);
      const audio = await probe(await download(host, card.getByRole('link', { name: /audio \(M4A\)/ }), 'clip.m4a'));
      expect(audio.streams.map((x) => x.codec_name)).to.deep.equal(['aac']);
      const manifest = JSON.parse(await fsp.readFile(await download(host, card.getByRole('link', { name: /manifest/ }), 'clip-manifest.json'), 'utf8')) as Record<string, unknown>;
      expect(JSON.stringify(manifest)).to.include(roomId);
      await host.setViewportSize({ width: 390, height: 844 });
      await panel.scrollIntoViewIfNeeded();
      await panel.screenshot({ path: path.join(shots, '5-clip-dialog-phone.png') });
      await host.setViewportSize({ width: 1280, height: 720 });
    });

    it('the clip’s vertical version for phones: one button, progress, and an MP4 that ffprobe reads as 1080x1920 H.264 with AAC, within the size target', async function () {
      await needFfmpeg(this);
      const card = host.locator(`.clip-card[data-clip="${clipId}"]`);
      await card.getByRole('button', { name: 'Make a vertical version for phones' }).click();
      const vertical = card.locator('.vertical');
      try {
        await vertical.locator('a[data-file="video"]').waitFor({ timeout: 120_000 });
      } catch (err) {
        throw new Error(`the vertical version never finished: ${await vertical.textContent()} (${(err as Error).message.split('\n')[0]})`);
      }
      expect(await vertical.getByRole('status').textContent()).to.equal('The vertical version (1080×1920) is ready.');
      const file = await download(host, vertical.getByRole('link', { name: /video \(MP4\)/ }), 'clip-vertical.mp4');
      const probed = await probe(file);
      expect(probed.streams.map((x) => `${x.codec_type}:${x.codec_name}`).sort()).to.deep.equal(['audio:aac', 'video:h264']);
      expect(probed.streams.find((x) => x.codec_type === 'video')).to.include({ width: 1080, height: 1920 });
      // The sharing target (under 10 MB for 30 s), per second of the clip.
      const seconds = Number(probed.format.duration);
      expect((await fsp.stat(file)).size / seconds, 'bytes a second').to.be.below(10e6 / 30);
      await vertical.screenshot({ path: path.join(shots, '5b-clip-vertical.png') });
    });

    it('buying the full version with a declined card says why, and nothing is bought', async function () {
      await needFfmpeg(this);
      const card = host.locator(`.clip-card[data-clip="${clipId}"]`);
      const buy = card.getByRole('button', { name: /^Buy the full version \(.+\)$/ });
      const release = (await (await fetch(`${t.url}/api/releases/remixroom-demo`)).json()) as { rules: { purchase: { priceCents: number } } };
      expect(await buy.textContent(), 'the release’s price').to.include((release.rules.purchase.priceCents / 100).toFixed(2));
      // Keyboard only: the button opens the form and puts the focus in the card field; Enter pays.
      await buy.focus();
      await host.keyboard.press('Enter');
      const field = card.getByLabel('Card number');
      await host.waitForFunction(() => document.activeElement?.getAttribute('autocomplete') === 'cc-number', undefined, { timeout: 5000 });
      expect(await card.locator('.sandbox').textContent()).to.include('Test card: 4242 4242 4242 4242');
      await host.keyboard.type('4000 0000 0000 0002');
      await host.keyboard.press('Enter');
      const error = card.locator('.purchase .error');
      await error.filter({ hasText: 'Payment declined' }).waitFor({ timeout: 20_000 });
      expect(await error.textContent()).to.equal('Payment declined: the card was declined. Nothing was charged; you can try another card.');
      expect(await card.locator('.purchase').getAttribute('data-order')).to.equal('declined');
      expect(await field.isEnabled(), 'another card can be tried').to.equal(true);
      expect(await card.locator('.full-version a').count()).to.equal(0);
    });

    it('buying with the test card 4242… pays, renders the full version with progress, and offers its downloads', async function () {
      await needFfmpeg(this);
      const card = host.locator(`.clip-card[data-clip="${clipId}"]`);
      await card.getByLabel('Card number').fill('4242 4242 4242 4242');
      await card.getByRole('button', { name: /^Pay / }).click();
      await card.locator('.order-status', { hasText: /Waiting for the payment|Rendering your full version/ }).waitFor({ timeout: 20_000 });
      expect(await card.locator('.purchase .error').textContent()).to.equal('');
      const link = card.locator('.full-version a[data-file="video"]');
      try {
        await link.waitFor({ timeout: 100_000 });
      } catch (err) {
        throw new Error(`the full version never arrived: ${await card.locator('.purchase').textContent()} (${(err as Error).message.split('\n')[0]})`);
      }
      expect(await card.locator('.purchase').getAttribute('data-order')).to.equal('fulfilled');
      expect(await card.locator('.order-status').textContent()).to.match(/^Your full version is ready \(1:\d\d\)\.$/);
      const full = await probe(await download(host, link, 'full.mp4'));
      expect(full.streams.map((x) => `${x.codec_type}:${x.codec_name}`).sort()).to.deep.equal(['audio:aac', 'video:h264']);
      expect(Number(full.format.duration), 'the whole piece, not the free clip').to.be.greaterThan(30);
      expect(await card.locator('.full-version a').count()).to.equal(3);
      expect(await card.getByRole('button', { name: /^Buy the full version/ }).isHidden(), 'bought: no second offer').to.equal(true);
      await card.scrollIntoViewIfNeeded();
      await card.screenshot({ path: path.join(shots, '6-clip-bought.png') });
    });

    it('the visuals can be saved as a picture (PNG) and as a loop (MP4 and GIF), with progress', async function () {
      await needFfmpeg(this);
      const saves = host.locator('.visual-saves');
      const png = await fsp.readFile(await download(host, saves.getByRole('button', { name: /Save picture/ }), 'visuals.png'));
      expect(png.subarray(0, 8).toString('hex')).to.equal('89504e470d0a1a0a');
      await saves.getByLabel('Loop length').selectOption('2');
      await saves.getByRole('button', { name: /Save loop/ }).click();
      const loop = saves.locator('.loop-card').first();
      await loop.waitFor({ timeout: 10_000 });
      try {
        await loop.locator('a[data-file="gif"]').waitFor({ timeout: 60_000 });
      } catch (err) {
        throw new Error(`the loop never finished: ${await loop.textContent()} (${(err as Error).message.split('\n')[0]})`);
      }
      expect(await loop.locator('.render-status').textContent()).to.match(/^Your loop is ready/);
      const gif = await fsp.readFile(await download(host, loop.getByRole('link', { name: /gif/i }), 'loop.gif'));
      expect(gif.subarray(0, 4).toString('latin1')).to.equal('GIF8');
      const mp4 = await probe(await download(host, loop.getByRole('link', { name: /video \(MP4\)/ }), 'loop.mp4'));
      expect(mp4.streams.some((x) => x.codec_type === 'video' && x.codec_name === 'h264')).to.equal(true);
      await saves.screenshot({ path: path.join(shots, '7-visual-saves.png') });
    });

    it('a refused clip is explained in words', async function () {
      await needFfmpeg(this);
      // A stale or tampered page asks for more than the free length: the server refuses, the page says why (and nothing renders).
      const panel = listener.locator('.clips');
      await listener.setViewportSize({ width: 1280, height: 720 });
      await listener.evaluate(() => {
        const sel = document.querySelector<HTMLSelectElement>('#clip-length')!;
        sel.append(new Option('the last 45 seconds', '45', true, true));
      });
      await panel.getByRole('button', { name: /^Save the last/ }).click();
      const error = listener.locator('.clips > .error');
      await error.filter({ hasText: 'not saved' }).waitFor({ timeout: 10_000 });
      expect(await error.textContent()).to.equal('The clip was not saved. A clip can be at most 30 seconds long here.');
      expect(await panel.locator('.clip-card').count()).to.equal(0);
      expect(await panel.getByRole('button', { name: /^Save the last/ }).isEnabled(), 'the member can try again').to.equal(true);
    });

    it('the host ends the room: every member is told, and the room is gone', async () => {
      host.once('dialog', (d) => void d.accept());
      await host.getByRole('button', { name: 'End the room for everyone' }).click();
      for (const p of [remixer, listener]) await p.locator('.ended', { hasText: 'The host ended this room.' }).waitFor({ timeout: 10_000 });
      const r = await fetch(`${t.url}/api/rooms/${roomId}`);
      expect(((await r.json()) as { ended: boolean }).ended).to.equal(true);
    });

    it('no page threw an uncaught error', () => {
      expect(pageErrors).to.deep.equal([]);
    });
  });
}
