// Broadcast mode in the web app, in real Chromium: the host switches the room to
// stage and audience; a listener's "Start audio" plays the room's LL-HLS through
// hls.js (no WebRTC), hears the mix (the page's analyser), is told how far
// behind the stage it hears, draws the visuals, and hears the host mute every
// stem within that delay and a little more. The listener asks to join the
// stage; the host brings them on, and their sound moves to WebRTC.
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { ffmpegCannotBroadcast } from '../../media/live/broadcast-encoder.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { connected, until, openRoomAsHost } from '../support/web-app-page.ts';

interface HookWindow {
  remixroom?: {
    audio(): { state: string; error: string | null };
    audioLevel(): number;
    audioVia(): 'webrtc' | 'hls' | null;
    delayMs(): number;
    visuals(): { paramsKey: string; framesDrawn: number; status: string };
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const adapter of SFU_ADAPTERS) describe(adapterTitle('web app: a broadcast’s audience hears the room through HLS (hls.js)', adapter), function () {
  this.timeout(120_000);
  let t: TestServer;
  let browser: LaunchedBrowser | null = null;
  let host: Page;
  let fan: Page;
  let shots = '';
  let roomId = '';
  const pageErrors: string[] = [];

  before(async function () {
    await requireSfuAdapter(adapter, this);
    requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
    requireComponent('ffmpeg', commandExists('ffmpeg') && (await ffmpegCannotBroadcast('ffmpeg')) === null, this);
    const [server] = await Promise.all([startTestServer({}, { adapter, live: { broadcast: { ffmpeg: 'ffmpeg', segmentSec: 1 } } }), buildClient()]);
    t = server;
    shots = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-broadcast-shots-'));
    console.log(`        ↳ screenshots: ${shots}`);
    browser = await launchChromium();
    const open = async (label: string) => {
      const p = await browser!.context.newPage();
      p.on('pageerror', (err) => pageErrors.push(`${label}: ${err.message}`));
      return p;
    };
    host = await open('host');
    fan = await open('fan');
    roomId = await openRoomAsHost(host, t.url, 'Ana');
    await host.locator('#link-role').selectOption('listener');
    await host.getByRole('button', { name: 'Make a link' }).click();
    const link = host.locator('.links input[readonly]').first();
    await link.waitFor({ timeout: 10_000 });
    await fan.goto(await link.inputValue());
    await fan.locator('#join-name').fill('Fan');
    await fan.getByRole('button', { name: 'Join' }).click();
    await connected(fan);
    await host.getByRole('button', { name: 'Play the room' }).click();
  });

  after(async () => {
    await browser?.close();
    await t?.close();
  });

  const framesDrawn = (page: Page) => page.evaluate(() => (window as HookWindow).remixroom!.visuals().framesDrawn);
  const via = (page: Page) => page.evaluate(() => (window as HookWindow).remixroom!.audioVia());
  const peakLevel = async (page: Page) => {
    let peak = 0;
    for (let i = 0; i < 10; i++) {
      peak = Math.max(peak, await page.evaluate(() => (window as HookWindow).remixroom!.audioLevel()));
      await sleep(100);
    }
    return peak;
  };

  it('the host switches broadcast mode on; the listener sees that it is in the audience', async () => {
    await host.locator('#broadcast-mode').check();
    await host.locator('.listen-url').waitFor({ timeout: 15_000 });
    expect(await host.locator('.listen-url').inputValue()).to.match(/\/hls\/index\.m3u8\?k=/);
    await fan.locator('.audience-bar').waitFor({ state: 'visible', timeout: 10_000 });
    expect(await fan.locator('.audience-bar').textContent()).to.match(/audience/);
  });

  it('"Start audio" plays the room’s HLS through hls.js: the mix is heard, the delay told, the visuals drawn', async () => {
    await fan.getByRole('button', { name: /Start audio/ }).click();
    await until('the broadcast to play', 30_000, async () => {
      const a = await fan.evaluate(() => ({ ...(window as HookWindow).remixroom!.audio(), via: (window as HookWindow).remixroom!.audioVia() }));
      if (a.state === 'playing' && a.via === 'hls') return true;
      if (a.state === 'failed') throw new Error(`audio failed: ${a.error}`);
      return null;
    });
    const playing = await until('the fan to hear the mix', 20_000, async () => {
      const l = await peakLevel(fan);
      return l > 0.01 ? l : null;
    });
    const delayMs = await until('the delay to be known', 10_000, async () => {
      const d = await fan.evaluate(() => (window as HookWindow).remixroom!.delayMs());
      return d > 0 ? d : null;
    });
    expect(delayMs, 'LL-HLS: a few seconds behind the stage at most').to.be.below(8000);
    await fan.locator('.audience-bar', { hasText: /about \d+ s behind/ }).waitFor({ timeout: 10_000 });
    const framesBefore = await framesDrawn(fan);
    await sleep(600);
    expect(await framesDrawn(fan), 'the audience’s page draws the visuals').to.be.greaterThan(framesBefore);
    // No WebRTC on the audience's page.
    expect(await fan.evaluate(() => performance.getEntriesByType('resource').some((e) => /\/hls\/audio\/part-\d+\.\d+\.m4s/.test(e.name)))).to.equal(true);
    console.log(`        ↳ audience: level ${playing.toFixed(3)}, ${Math.round(delayMs)} ms behind the stage`);
    await fan.screenshot({ path: path.join(shots, 'audience.png'), fullPage: true });
    await fan.setViewportSize({ width: 390, height: 844 });
    await fan.screenshot({ path: path.join(shots, 'audience-phone.png') });
    await fan.setViewportSize({ width: 1280, height: 900 });
  });

  it('the audience hears the host mute every stem within the stated delay (and a little more), and unmute it', async () => {
    const playing = await peakLevel(fan);
    const mutes = host.locator('input[data-control$=".mute"]');
    const muteAll = async (checked: boolean) => {
      for (let i = 0; i < (await mutes.count()); i++) await mutes.nth(i).setChecked(checked);
    };
    const delayMs = await fan.evaluate(() => (window as HookWindow).remixroom!.delayMs());
    await muteAll(true);
    const mutedAt = Date.now();
    // The level every 100 ms: silent once five readings in a row are below a twentieth of the playing peak.
    let quietRun = 0;
    while (quietRun < 5) {
      if (Date.now() - mutedAt > 30_000) throw new Error('the audience never heard the mute');
      quietRun = (await fan.evaluate(() => (window as HookWindow).remixroom!.audioLevel())) < playing / 20 ? quietRun + 1 : 0;
      await sleep(100);
    }
    const heardAfterMs = Date.now() - mutedAt - 500;
    await muteAll(false);
    await until('the audience to hear the mix again', 30_000, async () => ((await peakLevel(fan)) > playing / 4 ? true : null));
    console.log(`        ↳ the mute heard by the audience after ${heardAfterMs} ms (stated delay ${Math.round(delayMs)} ms)`);
    // Within the delay the page states and a little more (the mix's reverb tail, the page's analyser).
    expect(heardAfterMs).to.be.below(delayMs + 2500);
    expect(await via(fan)).to.equal('hls');
  });

  it('the room’s encoder killed: it restarts and the player plays on after the discontinuity', async () => {
    const broadcast = t.server.live.broadcast(roomId)!;
    const before = (await broadcast.status()).encoder!.encoders;
    broadcast.killEncoderForTest();
    await until('the encoder to restart', 20_000, async () => ((await broadcast.status()).encoder?.encoders ?? 0) > before || null);
    // Past the gap the player is playing the new encoder's parts: sound again, on the HLS.
    await sleep(3000);
    const level = await until('the fan to hear the mix after the restart', 30_000, async () => {
      const l = await peakLevel(fan);
      return l > 0.01 ? l : null;
    });
    expect(await via(fan)).to.equal('hls');
    expect(await fan.evaluate(() => (window as HookWindow).remixroom!.audio().state)).to.equal('playing');
    console.log(`        ↳ after the encoder's restart: level ${level.toFixed(3)}`);
  });

  it('the server’s video for a weak device: the audience plays the video rendition (the visuals with the sound) instead of drawing', async () => {
    await fan.getByLabel(/Show the server’s video/).check();
    await fan.waitForFunction(
      () => {
        const v = document.querySelector('video.server-video') as HTMLVideoElement | null;
        return v !== null && !v.hidden && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 5;
      },
      undefined,
      { timeout: 30_000 },
    );
    const size = await fan.locator('video.server-video').evaluate((v: HTMLVideoElement) => ({ w: v.videoWidth, h: v.videoHeight, muted: v.muted }));
    expect(size).to.deep.equal({ w: 640, h: 360, muted: false });
    expect(await via(fan)).to.equal('hls');
    expect(await fan.evaluate(() => performance.getEntriesByType('resource').some((e) => /\/hls\/video\/part-\d+\.\d+\.m4s/.test(e.name)))).to.equal(true);
    await until('the fan to hear the mix with the video', 20_000, async () => ((await peakLevel(fan)) > 0.01 ? true : null));
    await fan.locator('figure.visuals').screenshot({ path: path.join(shots, 'audience-video.png') });
    await fan.getByLabel(/Show the server’s video/).uncheck();
    await fan.locator('canvas.visuals-canvas').waitFor({ state: 'visible', timeout: 20_000 });
  });

  it('the listener asks to join the stage; the host brings them on; their sound moves to WebRTC', async () => {
    await fan.getByRole('button', { name: /Join the stage/ }).click();
    const request = host.locator('.stage-requests li', { hasText: 'Fan' });
    await request.waitFor({ timeout: 10_000 });
    await host.screenshot({ path: path.join(shots, 'host-broadcast-panel.png'), fullPage: true });
    await request.getByRole('button', { name: 'Bring on stage' }).click();
    await until('the fan to be on stage, on WebRTC', 30_000, async () => {
      const a = await fan.evaluate(() => ({ ...(window as HookWindow).remixroom!.audio(), via: (window as HookWindow).remixroom!.audioVia() }));
      return a.state === 'playing' && a.via === 'webrtc' ? true : null;
    });
    expect(await fan.locator('.audience-bar').isHidden()).to.equal(true);
    await until('the fan to hear the mix on WebRTC', 20_000, async () => ((await peakLevel(fan)) > 0.01 ? true : null));
  });

  it('no page threw an uncaught error', () => {
    expect(pageErrors).to.deep.equal([]);
  });
});
