// The SFU contract for the visuals' video producer, at the adapter level, in
// real Chromium: a room produces VP8 (the visual output: the shared engine,
// native ffmpeg/libvpx, RFC 7741 packets), a member who joins with
// `{ video: true }` gets the video track beside the audio, decoded at the
// output's size with frames that keep coming; a member who does not ask gets no
// video m-line; a join asking for video in a room without the producer gets
// audio only with a reason; a keyframe request from the SFU reaches the
// encoder; closing the producer stops the packets. Embedded adapter always,
// mediasoup too when MEDIASOUP_WORKER_BIN is set (test/support/sfu-adapters.ts).
// Both rooms play their mix for the whole suite, as a real server's room does
// before anyone joins: mediasoup refuses a join to a room whose mix is not
// playing, and what is tested here is the video, not that.
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import type { Page } from 'playwright-core';
import * as Y from 'yjs';
import { LiveOutput } from '../../media/live/live-output.ts';
import { VisualOutput, ffmpegHasLibvpx } from '../../media/live/visual-output.ts';
import { EmbeddedSfu } from '../../media/sfu/embedded-sfu.ts';
import { NO_VISUALS_PRODUCER, SignalError, type MixProducer, type Sfu, type SfuKind, type SfuRoom, type VisualsProducer } from '../../media/sfu/sfu.ts';
import { normalizeRoomDoc, readRoomState } from '../../shared/room-doc.ts';
import { chromiumAvailable, launchChromium, CHROMIUM_COMMAND, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { serveListenerPage, type ServedPage } from '../support/listener-page.ts';
import { testRoomRelease } from '../support/room-release.ts';
import { MEDIASOUP_WORKER_BIN, SFU_ADAPTERS, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { testArtworks } from '../support/visual-fixtures.ts';
import type { ReceivedStats, ReceivedVideo } from './page/listener-page.ts';
import { until } from '../support/web-app-page.ts';

const SIZE = { width: 320, height: 180 };

function ffmpegAvailable(): boolean {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function videoContract(kind: SfuKind, create: () => Promise<Sfu>): void {
  describe(`SFU video contract: ${kind}`, function () {
    this.timeout(90_000);
    let browser: LaunchedBrowser | null = null;
    let served: ServedPage | null = null;
    let sfu: Sfu | null = null;
    let page: Page;
    const rooms = new Map<string, SfuRoom>();
    let mix: MixProducer | null = null;
    let visuals: VisualsProducer | null = null;
    let audio: LiveOutput | null = null;
    let otherMix: MixProducer | null = null;
    let otherAudio: LiveOutput | null = null;
    let video: VisualOutput | null = null;
    const members = new Map<string, { room: SfuRoom; memberId: string }>();

    before(async function () {
      await requireSfuAdapter(kind, this);
      requireComponent(CHROMIUM_COMMAND, chromiumAvailable(), this);
      requireComponent('ffmpeg', ffmpegAvailable() && (await ffmpegHasLibvpx('ffmpeg')), this);
      served = await serveListenerPage();
      browser = await launchChromium();
      sfu = await create();
      for (const id of ['with-video', 'audio-only']) rooms.set(id, await sfu.createRoom(id));
      const room = rooms.get('with-video')!;
      mix = await room.produceMix();
      audio = await LiveOutput.create({ source: { kind: 'test', signal: { kind: 'tone', leftHz: 440, rightHz: 660, amplitude: 0.3 } }, sink: mix.rtpSink, ssrc: mix.ssrc, payloadType: mix.payloadType });
      otherMix = await rooms.get('audio-only')!.produceMix();
      otherAudio = await LiveOutput.create({
        source: { kind: 'test', signal: { kind: 'tone', leftHz: 330, rightHz: 550, amplitude: 0.3 } },
        sink: otherMix.rtpSink,
        ssrc: otherMix.ssrc,
        payloadType: otherMix.payloadType,
      });
      const release = testRoomRelease();
      const doc = new Y.Doc();
      normalizeRoomDoc(doc, release, Date.now());
      const state = readRoomState(doc);
      visuals = await room.produceVisuals();
      expect(visuals.kind).to.equal('video');
      video = await VisualOutput.create({
        ffmpeg: 'ffmpeg',
        ...SIZE,
        fps: 15,
        sink: visuals.rtpSink,
        ssrc: visuals.ssrc,
        payloadType: visuals.payloadType,
        artwork: testArtworks(),
        release,
        room: { mix: state.mix, arrangement: state.arrangement, visual: state.visual },
      });
      page = await browser.context.newPage();
      await page.exposeFunction('sfuSignal', async (label: string, message: unknown) => {
        const m = members.get(label)!;
        return m.room.signal(m.memberId, message);
      });
      await page.goto(served.url);
      await page.waitForFunction(() => typeof window.harness === 'object');
    });

    after(async () => {
      await page?.close().catch(() => undefined);
      await browser?.close();
      await video?.close();
      await audio?.close();
      await otherAudio?.close();
      visuals?.close();
      mix?.close();
      otherMix?.close();
      for (const r of rooms.values()) r.close();
      await sfu?.close();
      await served?.close();
    });

    const join = (roomId: string, label: string, wantsVideo: boolean) => {
      members.set(label, { room: rooms.get(roomId)!, memberId: label });
      return page.evaluate(([adapter, l, v]) => window.harness.join(adapter, l, false, v), [kind, label, wantsVideo] as const);
    };
    const videoOf = (label: string): Promise<ReceivedVideo> => page.evaluate((l) => window.harness.video(l), label);
    const audioOf = (label: string): Promise<ReceivedStats> => page.evaluate((l) => window.harness.stats(l), label);

    it('a second visuals producer in the same room is refused', async () => {
      let err: unknown = null;
      await rooms.get('with-video')!.produceVisuals().catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(Error);
      expect(String(err)).to.match(/already produces its visuals/);
    });

    it('a join with { video: "yes" } or unknown fields is malformed', async () => {
      for (const bad of [{ type: 'join', video: 'yes' }, { type: 'join', video: true, width: 4000 }]) {
        let err: unknown = null;
        await rooms.get('with-video')!.signal('mallory', bad).catch((e: unknown) => (err = e));
        expect(err).to.be.instanceOf(SignalError);
        expect((err as SignalError).code).to.equal('malformed');
      }
      expect(rooms.get('with-video')!.memberCount).to.equal(0);
    });

    it('a member who asks for video gets the VP8 track at the output’s size, decoding, with the audio', async () => {
      const started = Date.now();
      await join('with-video', 'viewer', true);
      const first = await until('decoded video', 20_000, async () => {
        const v = await videoOf('viewer');
        return v.videoWidth > 0 && v.totalVideoFrames > 0 ? v : null;
      });
      const firstFrameMs = Date.now() - started;
      expect(first).to.include({ hasTrack: true, refused: null, videoWidth: SIZE.width, videoHeight: SIZE.height });
      await new Promise((r) => setTimeout(r, 1200));
      const later = await videoOf('viewer');
      expect(later.totalVideoFrames).to.be.greaterThan(first.totalVideoFrames);
      expect((await audioOf('viewer')).packetsReceived).to.be.greaterThan(10);
      const stats = await rooms.get('with-video')!.stats();
      expect(stats.videoPacketsIn).to.be.greaterThan(0);
      expect(stats.videoMembers).to.equal(1);
      const out = await video!.stats();
      // The new viewer's connection (and Chromium's PLI) asked the encoder for a keyframe.
      expect(out.keyframeRequests).to.be.greaterThan(0);
      console.log(`        ↳ ${kind}: ${JSON.stringify({ firstFrameMs, framesIn1200ms: later.totalVideoFrames - first.totalVideoFrames, encoder: out })}`);
    });

    it('a member who does not ask gets no video; one who asks in a room without the producer gets audio only, with the reason', async () => {
      await join('with-video', 'listener', false);
      expect((await videoOf('listener')).hasTrack).to.equal(false);
      await join('audio-only', 'weak', true);
      const v = await videoOf('weak');
      expect(v).to.include({ hasTrack: false, refused: NO_VISUALS_PRODUCER });
      await until('the audio-only room’s mix reaching the member who asked for video', 20_000, async () => (await audioOf('weak')).packetsReceived > 10);
      expect((await rooms.get('with-video')!.stats()).videoMembers).to.equal(1);
    });

    it('closing the visuals producer stops the video packets; the audio goes on', async () => {
      await video!.close();
      visuals!.close();
      const room = rooms.get('with-video')!;
      const a = await room.stats();
      await new Promise((r) => setTimeout(r, 800));
      const b = await room.stats();
      expect(b.videoPacketsIn ?? 0).to.equal(a.videoPacketsIn ?? 0);
      expect(b.packetsIn).to.be.greaterThan(a.packetsIn);
      // …and a new producer may take its place.
      visuals = await room.produceVisuals();
      visuals.close();
    });
  });
}

const CREATE: Record<SfuKind, () => Promise<Sfu>> = {
  embedded: () => EmbeddedSfu.create({ connectTimeoutMs: 5000, idleTimeoutMs: 12_000 }),
  async mediasoup() {
    const { MediasoupSfu } = await import('../../media/sfu/mediasoup-sfu.ts');
    return MediasoupSfu.create({ workerBin: MEDIASOUP_WORKER_BIN!, numWorkers: 1 });
  },
};

describe('SFU adapters: the visuals as video', () => {
  for (const adapter of SFU_ADAPTERS) videoContract(adapter, CREATE[adapter]);
});
