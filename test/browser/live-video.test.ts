// The room's visuals as a video track on the SFU, for viewers who cannot draw:
// in real Chromium a member joins with `video: true`, receives VP8 at the
// configured size, its frames decode and keep coming, and the picture follows
// the room's prompts as the engine itself draws them (the mean colour of a
// "deep red fire" frame against an "icy blue" one, computed in Node with the
// same VisualEngine). Audio keeps working alongside. A room with no video
// viewer runs no encoder; a server without an encoder answers audio only, saying why.
import path from 'node:path';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import * as Y from 'yjs';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { parseVisualParams, type VisualParams } from '../../shared/visual-params.ts';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import type { Config } from '../../server/config.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { serveListenerPage, type ServedPage } from '../support/listener-page.ts';
import { connectMember, joinAs, openRoom, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import type { ReceivedStats, ReceivedVideo } from '../sfu/page/listener-page.ts';
import { ffmpegHasLibvpx } from '../../media/live/visual-output.ts';
import { execFileSync } from 'node:child_process';
import { until } from '../support/web-app-page.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;
type Colour = { r: number; g: number; b: number };

const LIVE_VIDEO: Config['liveVideo'] = { width: 480, height: 272, fps: 15, bitrateKbps: 500 };

function report(label: string, figures: Record<string, unknown>): void {
  console.log(`        ↳ ${label}: ${JSON.stringify(figures, (_k, v: unknown) => (typeof v === 'number' ? Math.round(v * 100) / 100 : v))}`);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function ffmpegAvailable(): boolean {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function connectSocket(url: string, roomId: string, token: string): Promise<Client> {
  const socket: Client = io(url, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', () => resolve());
    socket.once('connect_error', reject);
  });
  return socket;
}

function signalOver(socket: Client) {
  return async (message: unknown): Promise<{ ok: true; signal: Record<string, unknown> } | { ok: false; refusal: { code: string; message: string } }> =>
    (await (socket.timeout(10_000).emitWithAck as (ev: string, m: unknown) => Promise<unknown>)('stream:signal', message)) as never;
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('live video in Chromium: the room’s visuals as a VP8 track on the SFU', adapter), function () {
    this.timeout(180_000);
    let t: TestServer;
    let room: OpenedRoom;
    let browser: LaunchedBrowser | null = null;
    let served: ServedPage | null = null;
    let page: Page;
    const sockets = new Map<string, Client>();
    let remixer: Member | null = null;
    let engine: VisualEngine;

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      requireComponent('ffmpeg', ffmpegAvailable() && (await ffmpegHasLibvpx('ffmpeg')), this);
      t = await startTestServer({ liveVideo: LIVE_VIDEO }, { adapter });
      room = await openRoom(t.url);
      served = await serveListenerPage();
      browser = await launchChromium();
      for (const [label, role] of [
        ['fan', 'listener'],
        ['viewer', 'listener'],
        ['viewer2', 'listener'],
        ['mixer', 'remixer'],
      ] as const) {
        const { token } = await joinAs(t.url, room, role, label);
        sockets.set(label, await connectSocket(t.url, room.roomId, token));
        if (label === 'mixer') remixer = await connectMember(t.url, room.roomId, token);
      }
      sockets.set('host', await connectSocket(t.url, room.roomId, room.hostToken));
      page = await browser.context.newPage();
      await page.exposeFunction('sfuSignal', async (label: string, message: unknown) => {
        const r = await signalOver(sockets.get(label)!)(message);
        if (!r.ok) throw new Error(`signaling refused: ${r.refusal.code}: ${r.refusal.message}`);
        return r.signal;
      });
      await page.goto(served.url);
      await page.waitForFunction(() => typeof window.harness === 'object');
      const pack = await readVisualPack(path.join(new DataLayout(t.dataDir).releaseDir(DEMO_RELEASE_ID), 'visual-pack'));
      engine = new VisualEngine(engineArtwork(pack));
    });

    after(async () => {
      await page?.close().catch(() => undefined);
      await browser?.close();
      await served?.close();
      for (const s of sockets.values()) s.disconnect();
      remixer?.destroy();
      await t?.close();
    });

    const videoStatus = async () => (await t.server.live.stream(room.roomId)!.stats()).video;
    const audioStats = (label: string): Promise<ReceivedStats> => page.evaluate((l) => window.harness.stats(l), label);
    const video = (label: string): Promise<ReceivedVideo> => page.evaluate((l) => window.harness.video(l), label);

    it('a member who joins without asking for video gets audio only, and the room runs no encoder', async () => {
      remixer!.doc.transact(() => (remixer!.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
      await page.evaluate((a) => window.harness.join(a, 'fan', false), adapter);
      await until('the fan’s audio', 15_000, async () => (await audioStats('fan')).packetsReceived > 25);
      const v = await video('fan');
      expect(v.hasTrack).to.equal(false);
      const status = await videoStatus();
      expect(status).to.include({ live: false, viewers: 0, unavailable: null });
      expect(status.output).to.equal(null);
    });

    it('malformed video joins are refused and start nothing', async () => {
      const signal = signalOver(sockets.get('host')!);
      for (const bad of [{ type: 'join', video: 'yes' }, { type: 'join', video: true, extra: 1 }, { type: 'join', video: null }]) {
        const r = await signal(bad);
        expect(r.ok, JSON.stringify(bad)).to.equal(false);
        if (!r.ok) expect(r.refusal.code).to.equal('malformed');
      }
      expect((await videoStatus()).live).to.equal(false);
    });

    let joinToFirstFrameMs = 0;

    it('a member joins with video: the track arrives at the configured size and its frames keep decoding; audio alongside', async () => {
      const started = Date.now();
      await page.evaluate((a) => window.harness.join(a, 'viewer', true, true), adapter);
      const first = await until('the first decoded frame', 20_000, async () => {
        const v = await video('viewer');
        return v.videoWidth > 0 && v.totalVideoFrames > 0 ? v : null;
      });
      joinToFirstFrameMs = Date.now() - started;
      expect(first.hasTrack).to.equal(true);
      expect(first.videoWidth).to.equal(LIVE_VIDEO.width);
      expect(first.videoHeight).to.equal(LIVE_VIDEO.height);
      await sleep(1500);
      const later = await video('viewer');
      expect(later.totalVideoFrames).to.be.greaterThan(first.totalVideoFrames);
      expect(later.framesPresented).to.be.greaterThan(first.framesPresented);
      const audio = await until('the viewer’s audio', 10_000, async () => {
        const s = await audioStats('viewer');
        return s.packetsReceived > 25 && s.totalAudioEnergy > 0 ? s : null;
      });
      const status = await videoStatus();
      expect(status.live).to.equal(true);
      expect(status.viewers).to.equal(1);
      expect(status.output!.framesEncoded).to.be.greaterThan(0);
      expect(status.output!.keyframes).to.be.greaterThan(0);
      // A second viewer while the encoder runs: one encoder still, and its keyframe request answered.
      const secondStarted = Date.now();
      await page.evaluate((a) => window.harness.join(a, 'viewer2', false, true), adapter);
      await until('the second viewer’s first frame', 20_000, async () => {
        const v = await video('viewer2');
        return v.videoWidth === LIVE_VIDEO.width && v.totalVideoFrames > 0;
      });
      const secondJoinToFirstFrameMs = Date.now() - secondStarted;
      const two = await videoStatus();
      expect(two.viewers).to.equal(2);
      expect(two.output!.encoderRestarts).to.be.at.most(status.output!.encoderRestarts + 1);
      const sfu = await t.server.live.stream(room.roomId)!.stats();
      report('video joined', {
        joinToFirstFrameMs,
        secondJoinToFirstFrameMs,
        keyframeResponseMs: two.output!.lastKeyframeResponseMs,
        framesDecodedIn1500ms: later.totalVideoFrames - first.totalVideoFrames,
        audioPackets: audio.packetsReceived,
        encoder: status.output,
        listeners: sfu.listeners,
      });
    });

    /** The engine's own mean colour for `params` over a few seconds of the room's clock. */
    function engineMean(params: VisualParams): Colour {
      const out = new Uint8ClampedArray(LIVE_VIDEO.width * LIVE_VIDEO.height * 4);
      const sum = { r: 0, g: 0, b: 0 };
      const times = [1, 3.3, 5.7, 8.1, 10.4];
      for (const timeSec of times) {
        engine.renderFrame(out, LIVE_VIDEO.width, LIVE_VIDEO.height, { from: null, to: params, mix: 1, timeSec, energy: 0.3, beatPhase: (timeSec * 2) % 1 });
        const m = meanOf(out);
        sum.r += m.r / times.length;
        sum.g += m.g / times.length;
        sum.b += m.b / times.length;
      }
      return sum;
    }

    async function applyPrompt(label: string, text: string): Promise<VisualParams> {
      const r = (await (sockets.get(label)!.timeout(5000).emitWithAck as (ev: string, p: unknown) => Promise<{ ok: boolean; status?: string }>)('prompt:submit', { text })) as {
        ok: boolean;
        status?: string;
      };
      expect(r, `prompt ${text}`).to.include({ ok: true, status: 'applied' });
      const visual = remixer!.doc.getMap('visual');
      await until(`the prompt "${text}" in the document`, 5000, async () => visual.get('prompt') === text);
      const params = parseVisualParams(visual.get('params'));
      expect(params, 'readable params').to.not.equal(null);
      return params!;
    }

    /** The received picture's mean colour once the cross-fade is over, over a few frames. */
    async function receivedMean(): Promise<Colour> {
      await sleep(2500);
      const sum = { r: 0, g: 0, b: 0 };
      const n = 5;
      for (let i = 0; i < n; i++) {
        const m = await page.evaluate(() => window.harness.videoMeanColour('viewer'));
        sum.r += m.r / n;
        sum.g += m.g / n;
        sum.b += m.b / n;
        await sleep(400);
      }
      return sum;
    }

    it('the picture follows the room: "deep red fire" against "icy blue" moves the mean colour as the engine’s own frames do', async () => {
      const redParams = await applyPrompt('mixer', 'deep red fire');
      const red = await receivedMean();
      const blueParams = await applyPrompt('host', 'icy blue');
      const blue = await receivedMean();
      const expectedRed = engineMean(redParams);
      const expectedBlue = engineMean(blueParams);
      const warmth = (c: Colour) => c.r - c.b;
      const expectedShift = warmth(expectedRed) - warmth(expectedBlue);
      const receivedShift = warmth(red) - warmth(blue);
      report('mean colours', { red, blue, expectedRed, expectedBlue, expectedShift, receivedShift });
      // The prompts do change the palette drastically (else this test would prove nothing)…
      expect(expectedShift).to.be.greaterThan(30);
      // …and the received video moves the same way, by a comparable amount (VP8 and the
      // colour conversions blur the picture, not its mean colour).
      expect(receivedShift).to.be.greaterThan(expectedShift * 0.5);
      expect(receivedShift).to.be.lessThan(expectedShift * 1.5);
      expect((await video('viewer')).totalVideoFrames).to.be.greaterThan(0);
    });

    it('the last video viewer leaves: the encoder stops, the audio-only member keeps listening', async () => {
      await page.evaluate(() => window.harness.leave('viewer2'));
      await sleep(500);
      expect((await videoStatus()).viewers).to.equal(1);
      await page.evaluate(() => window.harness.leave('viewer'));
      const stopped = await until('the encoder to stop', 15_000, async () => {
        const s = await videoStatus();
        return !s.live ? s : null;
      });
      expect(stopped.viewers).to.equal(0);
      expect(stopped.output).to.equal(null);
      const a = await audioStats('fan');
      await sleep(1000);
      expect((await audioStats('fan')).packetsReceived).to.be.greaterThan(a.packetsReceived);
    });

    it('a server that cannot encode video answers a video join with audio only, saying why', async () => {
      const other = await startTestServer({}, { live: { video: { ffmpeg: null } }, adapter });
      try {
        const otherRoom = await openRoom(other.url);
        const { token } = await joinAs(other.url, otherRoom, 'listener', 'Weak device');
        const socket = await connectSocket(other.url, otherRoom.roomId, token);
        try {
          const r = await signalOver(socket)({ type: 'join', video: true });
          expect(r.ok).to.equal(true);
          if (!r.ok) return;
          expect(r.signal).to.include({ adapter, video: false });
          expect(String(r.signal['videoRefused'])).to.match(/no native ffmpeg.*audio only/);
          // Embedded: the offer has no video m-line; mediasoup: the transport refuses a video consumer.
          if (adapter === 'embedded') expect(String(r.signal['sdp'])).to.match(/m=audio /).and.not.match(/m=video /);
          else expect(r.signal['type']).to.equal('transport');
          const status = (await other.server.live.stream(otherRoom.roomId)!.stats()).video;
          expect(status).to.include({ live: false, viewers: 0 });
          expect(status.unavailable).to.match(/no native ffmpeg/);
        } finally {
          socket.disconnect();
        }
      } finally {
        await other.close();
      }
    });
  });
}

function meanOf(px: Uint8ClampedArray): Colour {
  let r = 0;
  let g = 0;
  let b = 0;
  for (let i = 0; i < px.length; i += 4) {
    r += px[i]!;
    g += px[i + 1]!;
    b += px[i + 2]!;
  }
  const n = px.length / 4;
  return { r: r / n, g: g / n, b: b / n };
}
