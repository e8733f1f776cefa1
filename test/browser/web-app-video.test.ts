// The web app's "Show the server's video" toggle (a weak device) in real
// Chromium: ticking it joins the stream with video, the page shows the server's
// VP8 picture in a <video> at the configured size instead of the canvas, and
// stops drawing; unticking brings the drawing back and the server's encoder
// stops (no viewer, no encode). When the server's video stops under the page (its
// encoder kept failing), the page draws again. The audio plays throughout.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import { buildClient } from '../../client/build.ts';
import { ffmpegHasLibvpx } from '../../media/live/visual-output.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

interface HookWindow {
  remixroom?: {
    audio(): { state: string; error: string | null };
    visuals(): { paramsKey: string; framesDrawn: number; status: string };
  };
}

function ffmpegAvailable(): boolean {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('web app: the server’s video instead of drawing, for a weak device', adapter), function () {
    this.timeout(120_000);
    let t: TestServer;
    let browser: LaunchedBrowser | null = null;
    let page: Page;
    let roomId = '';
    const pageErrors: string[] = [];

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      requireComponent('ffmpeg', ffmpegAvailable() && (await ffmpegHasLibvpx('ffmpeg')), this);
      // Short restarts, so that the last test can make the server give its video up quickly.
      const live = { video: { ffmpeg: 'ffmpeg', restart: { initialMs: 100, maxMs: 200, maxFailures: 2, healthyMs: 60_000 } } };
      const [server] = await Promise.all([startTestServer({}, { live, adapter }), buildClient()]);
      t = server;
      browser = await launchChromium();
      page = await browser.context.newPage();
      page.on('pageerror', (err) => pageErrors.push(err.message));
      await page.goto(`${t.url}/`);
      const first = page.locator('.release-card').first();
      await first.waitFor({ timeout: 10_000 });
      await first.getByLabel('Your name').fill('Weak phone');
      await first.getByRole('button', { name: 'Open a room' }).click();
      await page.waitForURL(/\/r\/[\w-]+$/, { timeout: 10_000 });
      roomId = /\/r\/([\w-]+)/.exec(page.url())![1]!;
      await page.waitForFunction(() => (window as HookWindow).remixroom?.visuals().status === 'drawing', undefined, { timeout: 20_000 });
      // Playing: the picture moves, so the page draws new frames while it draws at all.
      await page.locator('button.play').click();
      const a = await drawn();
      await sleep(700);
      expect(await drawn(), 'the page draws while it shows its own visuals').to.be.greaterThan(a);
    });

    after(async () => {
      await browser?.close();
      await t?.close();
    });

    const drawn = () => page.evaluate(() => (window as HookWindow).remixroom!.visuals().framesDrawn);
    const videoStatus = async () => (await t.server.live.stream(roomId)?.stats())?.video ?? null;

    it('ticking the toggle shows the server’s video at its configured size, and the page stops drawing', async () => {
      await page.getByLabel(/Show the server’s video/).check();
      const video = page.locator('video.server-video');
      await video.waitFor({ state: 'visible', timeout: 20_000 });
      await page.waitForFunction(
        () => {
          const v = document.querySelector('video.server-video') as HTMLVideoElement | null;
          return v !== null && v.videoWidth > 0 && v.getVideoPlaybackQuality().totalVideoFrames > 2;
        },
        undefined,
        { timeout: 20_000 },
      );
      const size = await video.evaluate((v: HTMLVideoElement) => ({ w: v.videoWidth, h: v.videoHeight }));
      expect(size).to.deep.equal({ w: t.server.config.liveVideo.width, h: t.server.config.liveVideo.height });
      expect(await page.locator('canvas.visuals-canvas').isHidden()).to.equal(true);
      expect(await page.evaluate(() => (window as HookWindow).remixroom!.audio().state)).to.equal('playing');
      const a = await drawn();
      await sleep(1000);
      expect(await drawn(), 'no drawing while the server’s video shows').to.equal(a);
      const status = await videoStatus();
      expect(status).to.include({ live: true, viewers: 1 });
    });

    it('unticking brings the drawing back; the server’s encoder stops', async () => {
      await page.getByLabel(/Show the server’s video/).uncheck();
      await page.locator('canvas.visuals-canvas').waitFor({ state: 'visible', timeout: 20_000 });
      expect(await page.locator('video.server-video').isHidden()).to.equal(true);
      const a = await drawn();
      await sleep(1000);
      expect(await drawn()).to.be.greaterThan(a);
      const deadline = Date.now() + 15_000;
      let status = await videoStatus();
      while (status?.live && Date.now() < deadline) {
        await sleep(200);
        status = await videoStatus();
      }
      expect(status).to.include({ live: false, viewers: 0 });
      expect(await page.evaluate(() => (window as HookWindow).remixroom!.audio().state)).to.equal('playing');
      expect(pageErrors).to.deep.equal([]);
    });

    /** Kills this process's libvpx encoders (the room's video), as a crash would; answers how many. */
    function killEncoders(): number {
      let killed = 0;
      for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
        try {
          const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
          const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
          if (ppid !== process.pid || !fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('libvpx')) continue;
          process.kill(Number(pid), 'SIGKILL');
          killed++;
        } catch {
          // gone meanwhile
        }
      }
      return killed;
    }

    it('when the server’s video stops under the page (its encoder kept failing), the page draws again and says why', async () => {
      await page.getByLabel(/Show the server’s video/).check();
      await page.locator('video.server-video').waitFor({ state: 'visible', timeout: 20_000 });
      expect(await page.locator('canvas.visuals-canvas').isHidden()).to.equal(true);
      // Every encoder the server starts dies at once, until it gives the video up.
      const deadline = Date.now() + 30_000;
      let killed = 0;
      while (await page.locator('canvas.visuals-canvas').isHidden()) {
        if (Date.now() > deadline) throw new Error(`the page did not draw again (${killed} encoders killed)`);
        killed += killEncoders();
        await sleep(50);
      }
      expect(killed).to.be.at.least(2);
      expect(await page.locator('video.server-video').isHidden()).to.equal(true);
      const a = await drawn();
      await sleep(1000);
      expect(await drawn(), 'the page draws again').to.be.greaterThan(a);
      expect(await page.locator('.notice').textContent()).to.match(/video stopped/);
      expect(await page.evaluate(() => (window as HookWindow).remixroom!.audio().state)).to.equal('playing');
      expect((await videoStatus())!).to.include({ live: false });
      expect(pageErrors).to.deep.equal([]);
    });
  });
}
