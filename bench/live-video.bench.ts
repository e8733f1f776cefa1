// `npm run bench -- live-video [WIDTHxHEIGHT@FPS] [seconds]`: the cost of one room's
// visuals as live video (the server's fallback for viewers who cannot draw): the
// visual-output thread (drawing with the shared engine, packetizing) and its native
// ffmpeg/libvpx encoder, feeding a visuals producer on the embedded SFU. One encoder
// per room whatever the number of viewers, so this is the per-room cost. Figures
// over the steady window (after a 4 s start): CPU share of one core of the thread
// and of the encoder, frames skipped, bitrate; and the time from a keyframe request
// (what a new viewer's PLI does) to the keyframe leaving, median of a few.
// The machine's load average is printed with the figures.
import os from 'node:os';
import { paintDemoArtwork } from '../media/demo/artwork.ts';
import { DEFAULT_VISUAL_OUTPUT, VisualOutput, ffmpegHasLibvpx } from '../media/live/visual-output.ts';
import { EmbeddedSfu } from '../media/sfu/embedded-sfu.ts';
import { buildVisualPack, engineArtwork } from '../media/visuals/visual-pack.ts';
import { normalizeRoomDoc, readRoomState, type RoomRelease } from '../shared/room-doc.ts';
import { interpretPrompt } from '../shared/prompt-interpreter.ts';
import { ReleaseRulesSchema } from '../shared/release-manifest.ts';
import * as Y from 'yjs';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const spec = /^(\d+)x(\d+)@(\d+)$/.exec(args[0] ?? '');
  const width = spec ? Number(spec[1]) : DEFAULT_VISUAL_OUTPUT.width;
  const height = spec ? Number(spec[2]) : DEFAULT_VISUAL_OUTPUT.height;
  const fps = spec ? Number(spec[3]) : DEFAULT_VISUAL_OUTPUT.fps;
  const seconds = Math.max(8, Number(args[1] ?? 20) || 20);
  if (!(await ffmpegHasLibvpx('ffmpeg'))) throw new Error('needs a native ffmpeg with libvpx on PATH');
  const art = await paintDemoArtwork();
  const pack = await buildVisualPack(art.map((a) => ({ id: a.id, tags: a.tags, consent: true, bytes: a.png, mimeType: 'image/png' as const })));
  const artwork = engineArtwork(pack);
  const release: Pick<RoomRelease, 'bpm' | 'excerpts'> = { bpm: 120, excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 60 }] };
  const doc = new Y.Doc();
  normalizeRoomDoc(
    doc,
    { id: 'bench', durationSec: 60, bpm: 120, stems: [{ id: 'a', title: 'A' }], excerpts: release.excerpts, artwork: [], rules: ReleaseRulesSchema.parse({}) },
    Date.now(),
  );
  const state = readRoomState(doc);
  const params = interpretPrompt('stormy neon ocean, faster ripple, kaleidoscope', { artwork: pack.artwork.map((a) => ({ id: a.id, tags: a.tags, palette: a.palette.map((c) => c.hex) })), previous: null }).params;
  const room = { mix: state.mix, arrangement: { ...state.arrangement, transport: { playing: true, positionSec: 0, anchorMs: Date.now() } }, visual: { ...state.visual, params: params as unknown as Record<string, unknown>, promptAtMs: Date.now() } };
  const sfu = await EmbeddedSfu.create({});
  const sfuRoom = await sfu.createRoom('bench');
  const producer = await sfuRoom.produceVisuals();
  const output = await VisualOutput.create({ ffmpeg: 'ffmpeg', width, height, fps, sink: producer.rtpSink, ssrc: producer.ssrc, payloadType: producer.payloadType, artwork, release, room });
  try {
    await sleep(4000);
    const a = await output.stats();
    const responses: number[] = [];
    const windowEnd = Date.now() + seconds * 1000;
    while (Date.now() < windowEnd - 1500) {
      output.requestKeyframe();
      await sleep(1500);
      const s = await output.stats();
      if (s.lastKeyframeResponseMs !== null) responses.push(s.lastKeyframeResponseMs);
      await sleep(Math.min(1500, Math.max(0, windowEnd - Date.now())));
    }
    const b = await output.stats();
    const elapsed = b.elapsedMs - a.elapsedMs;
    const sorted = [...responses].sort((x, y) => x - y);
    const round = (x: number, d = 3) => Math.round(x * 10 ** d) / 10 ** d;
    return {
      size: `${width}x${height}@${fps}`,
      windowSec: round(elapsed / 1000, 1),
      threadCpuFraction: round((b.threadCpuMs - a.threadCpuMs) / elapsed),
      encoderCpuFraction: round((b.encoderCpuMs - a.encoderCpuMs) / elapsed),
      totalCpuFraction: round((b.threadCpuMs - a.threadCpuMs + b.encoderCpuMs - a.encoderCpuMs) / elapsed),
      framesEncodedPerSec: round(((b.framesEncoded - a.framesEncoded) * 1000) / elapsed, 1),
      framesSkipped: b.framesSkipped - a.framesSkipped,
      drawMsMean: round(b.drawMsMean, 2),
      kbps: round(((b.bytesSent - a.bytesSent) * 8) / elapsed, 0),
      keyframeResponseMsMedian: sorted.length ? round(sorted[Math.floor(sorted.length / 2)]!, 0) : null,
      keyframeResponseMsMax: sorted.length ? round(sorted[sorted.length - 1]!, 0) : null,
      encoderRestarts: b.encoderRestarts,
      loadAverage: os.loadavg().map((x) => round(x, 2)),
    };
  } finally {
    await output.close();
    producer.close();
    sfuRoom.close();
    await sfu.close();
  }
}
