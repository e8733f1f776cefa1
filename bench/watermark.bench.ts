// `npm run bench -- watermark [--clips=100] [--unmarked=10000] [--seconds=30] [--seed=1] [--workers=2]`:
// how reliably the clip watermark (media/watermark) survives what a re-upload does
// to it, how often unmarked audio is mistaken for marked, and how loud it is.
//
// Clips: `clips` stretches of the demo release's music, each `seconds` long from a
// random start with a random balance of its four stems (sometimes one muted),
// marked with a random 64-bit payload. Attacks, each read from a 10-second excerpt
// cut at a random offset (a fresh one per clip and attack):
//   excerpt      the marked clip as is
//   aac96        ffmpeg AAC 96 kbps (.m4a) and back
//   mp3_64       ffmpeg libmp3lame 64 kbps and back
//   mp3_128      ffmpeg libmp3lame 128 kbps and back
//   gain+6dB / gain-6dB   the excerpt scaled
//   mono         (L+R)/2 of the excerpt, read as one channel
//   aac96+mono-6dB        all at once: the AAC excerpt downmixed and 6 dB quieter
// A detection counts only when the payload is exactly right; a wrong payload that
// passes the CRC is counted apart (`misidentified`). ffmpeg runs two at a time.
//
// Unmarked: `unmarked` 10-second windows of unmarked demo music (random stretch,
// stem balance and polarity per window), searched with the bench key on `workers`
// worker threads while the clips run; any answer is a false positive. The same key also reads every
// marked clip's clean excerpt with a wrong key (`wrongKeyWindows`).
// Goals: detection ≥ 0.99 per attack; no false positives (design: ≤ 3 × 2^-32 per
// window, i.e. < 1e-9).
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, workerData, Worker } from 'node:worker_threads';
import { composeDemoMusic, DEMO_STEM_IDS } from '../media/demo/music.ts';
import type { DemoMusic } from '../media/demo/music.ts';
import { embedWatermark, inspectWatermark, PERIOD_SEC } from '../media/watermark/watermark.ts';
import type { EmbedReport } from '../media/watermark/watermark.ts';
import { LOSSY_FORMATS, lossyRoundTrip } from '../media/watermark/transcode.ts';
import { findNativeFfmpeg } from '../media/audio/ffmpeg.ts';
import { intArg, mapLimit, median, parseArgs, round } from './support/proc.ts';

const SR = 48000;
const EXCERPT_SEC = 10;
const ROLE = 'watermark-unmarked';
const ATTACKS = ['excerpt', 'aac96', 'mp3_64', 'mp3_128', 'gain+6dB', 'gain-6dB', 'mono', 'aac96+mono-6dB'] as const;
type Attack = (typeof ATTACKS)[number];

/** Small seeded generator (mulberry32): the bench is reproducible for a seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function keyFor(seed: number, which: string): Buffer {
  return Buffer.from(`remixroom-watermark-bench/${which}/${seed}`.padEnd(32, '.'), 'utf8');
}

/** A random balance of the four stems: each 0.4–1.4, one of them muted in a fifth of the cases. */
function randomGains(rand: () => number): number[] {
  const g = DEMO_STEM_IDS.map(() => 0.4 + rand());
  if (rand() < 0.2) g[Math.floor(rand() * g.length)] = 0;
  return g;
}

function mixStretch(music: DemoMusic, startFrame: number, frames: number, gains: readonly number[], polarity = 1): Float32Array {
  const out = new Float32Array(frames * 2);
  const s0 = startFrame * 2;
  DEMO_STEM_IDS.forEach((id, k) => {
    const g = gains[k]! * polarity;
    if (g === 0) return;
    const stem = music.stems[id];
    for (let i = 0; i < out.length; i++) out[i] = out[i]! + g * stem[s0 + i]!;
  });
  return out;
}

function cut(pcm: Float32Array, channels: number, rand: () => number): Float32Array {
  const total = pcm.length / channels;
  const n = EXCERPT_SEC * SR;
  const start = Math.floor(rand() * (total - n));
  return pcm.slice(start * channels, (start + n) * channels);
}

function monoOf(stereo: Float32Array, gain = 1): Float32Array {
  const m = new Float32Array(stereo.length / 2);
  for (let i = 0; i < m.length; i++) m[i] = 0.5 * gain * (stereo[2 * i]! + stereo[2 * i + 1]!);
  return m;
}

function random64(rand: () => number): bigint {
  const hi = BigInt(Math.floor(rand() * 2 ** 32));
  const lo = BigInt(Math.floor(rand() * 2 ** 32));
  return (hi << 32n) | lo;
}

interface UnmarkedResult {
  windows: number;
  falsePositives: number;
  decodeAttempts: number;
  zs: number[];
  ms: number[];
}

/** Worker: `count` unmarked windows, window i drawn from seed + index. */
function unmarkedWorker(): void {
  const { seed, from, to } = workerData as { seed: number; from: number; to: number };
  const music = composeDemoMusic();
  const key = keyFor(seed, 'key');
  const res: UnmarkedResult = { windows: 0, falsePositives: 0, decodeAttempts: 0, zs: [], ms: [] };
  const n = EXCERPT_SEC * SR;
  for (let i = from; i < to; i++) {
    const rand = rng(seed * 1_000_003 + i);
    const start = Math.floor(rand() * (music.frames - n));
    const pcm = mixStretch(music, start, n, randomGains(rand), rand() < 0.5 ? 1 : -1);
    const t = performance.now();
    const r = inspectWatermark(pcm, { key });
    res.ms.push(performance.now() - t);
    res.windows++;
    res.zs.push(r.bestSyncZ);
    res.decodeAttempts += r.decodeAttempts;
    if (r.detection) res.falsePositives++;
    if ((i - from) % 500 === 499) parentPort!.postMessage({ type: 'progress', done: i - from + 1 });
  }
  parentPort!.postMessage({ type: 'done', result: res });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) unmarkedWorker();

function runUnmarked(seed: number, windows: number, workers: number, onProgress: (done: number) => void): Promise<UnmarkedResult> {
  const per = Math.ceil(windows / workers);
  const done = new Array<number>(workers).fill(0);
  const jobs = Array.from({ length: workers }, (_, w) => {
    const from = w * per;
    const to = Math.min(windows, from + per);
    return new Promise<UnmarkedResult>((resolve, reject) => {
      const worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, seed, from, to }, name: `watermark-unmarked-${w}` });
      worker.on('message', (m: { type: 'progress'; done: number } | { type: 'done'; result: UnmarkedResult }) => {
        if (m.type === 'progress') {
          done[w] = m.done;
          onProgress(done.reduce((a, b) => a + b, 0));
        } else {
          resolve(m.result);
          void worker.terminate();
        }
      });
      worker.once('error', reject);
      worker.once('exit', (code) => {
        if (code !== 0) reject(new Error(`unmarked worker ${w} exited ${code}`));
      });
    });
  });
  return Promise.all(jobs).then((parts) => ({
    windows: parts.reduce((a, p) => a + p.windows, 0),
    falsePositives: parts.reduce((a, p) => a + p.falsePositives, 0),
    decodeAttempts: parts.reduce((a, p) => a + p.decodeAttempts, 0),
    zs: parts.flatMap((p) => p.zs),
    ms: parts.flatMap((p) => p.ms),
  }));
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor(q * s.length))]! : NaN;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const opts = parseArgs(args, ['clips', 'unmarked', 'seconds', 'seed', 'workers']);
  const clips = intArg(opts, 'clips', 100, 1, 10_000);
  const unmarked = intArg(opts, 'unmarked', 10_000, 0, 10_000_000);
  const seconds = intArg(opts, 'seconds', 30, 12, 60);
  const seed = intArg(opts, 'seed', 1, 0, 2 ** 31);
  const workers = intArg(opts, 'workers', 2, 1, 16);
  const native = await findNativeFfmpeg(process.env['FFMPEG_PATH'] || null);
  if (!native) throw new Error('watermark bench needs a native ffmpeg (apt-get install ffmpeg, or FFMPEG_PATH)');
  const started = performance.now();
  const music = composeDemoMusic();
  const key = keyFor(seed, 'key');
  const wrongKey = keyFor(seed, 'wrong');

  const hits: Record<Attack, number> = Object.fromEntries(ATTACKS.map((a) => [a, 0])) as Record<Attack, number>;
  const zByAttack: Record<Attack, number[]> = Object.fromEntries(ATTACKS.map((a) => [a, []])) as unknown as Record<Attack, number[]>;
  const confByAttack: Record<Attack, number[]> = Object.fromEntries(ATTACKS.map((a) => [a, []])) as unknown as Record<Attack, number[]>;
  const failures: string[] = [];
  let misidentified = 0;
  let wrongKeyWindows = 0;
  let wrongKeyFalsePositives = 0;
  const embedMs: number[] = [];
  const detectMs: number[] = [];
  const reports: EmbedReport[] = [];
  let finished = 0;

  // The unmarked windows run on worker threads at the same time as the clips.
  let lastShown = 0;
  const unmarkedDone = unmarked > 0
    ? runUnmarked(seed, unmarked, Math.min(workers, unmarked), (done) => {
      if (done - lastShown >= 1000) {
        lastShown = done;
        console.log(`  unmarked windows ${done}/${unmarked} (${((performance.now() - started) / 1000).toFixed(0)} s)`);
      }
    })
    : Promise.resolve({ windows: 0, falsePositives: 0, decodeAttempts: 0, zs: [], ms: [] } as UnmarkedResult);
  unmarkedDone.catch(() => {}); // awaited below; a failure must not count as unhandled meanwhile
  console.log(`watermark: ${clips} clips of ${seconds} s, ${ATTACKS.length} attacks each; ${unmarked} unmarked windows on ${workers} workers; ffmpeg ${native.version}; load ${os.loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  // Two clips in flight: each runs its ffmpeg round trips one after another, so at most two encoders run at once.
  await mapLimit(Array.from({ length: clips }, (_, i) => i), 2, async (i) => {
    const rand = rng(seed * 7919 + i);
    const startFrame = Math.floor(rand() * (music.frames - seconds * SR));
    const host = mixStretch(music, startFrame, seconds * SR, randomGains(rand));
    const payload = random64(rand);
    let t = performance.now();
    const { pcm, report } = embedWatermark(host, { payload, key });
    embedMs.push(performance.now() - t);
    reports.push(report);
    const coded: Record<string, Float32Array> = {};
    for (const [name, format] of Object.entries(LOSSY_FORMATS)) coded[name] = await lossyRoundTrip(native.ffmpeg, pcm, format);
    const clean = cut(pcm, 2, rand);
    const inputs: Record<Attack, { pcm: Float32Array; channels: 1 | 2 }> = {
      excerpt: { pcm: clean, channels: 2 },
      aac96: { pcm: cut(coded['aac96']!, 2, rand), channels: 2 },
      mp3_64: { pcm: cut(coded['mp3_64']!, 2, rand), channels: 2 },
      mp3_128: { pcm: cut(coded['mp3_128']!, 2, rand), channels: 2 },
      'gain+6dB': { pcm: cut(pcm, 2, rand).map((x) => x * 10 ** (6 / 20)), channels: 2 },
      'gain-6dB': { pcm: cut(pcm, 2, rand).map((x) => x * 10 ** (-6 / 20)), channels: 2 },
      mono: { pcm: monoOf(cut(pcm, 2, rand)), channels: 1 },
      'aac96+mono-6dB': { pcm: monoOf(cut(coded['aac96']!, 2, rand), 10 ** (-6 / 20)), channels: 1 },
    };
    for (const attack of ATTACKS) {
      const input = inputs[attack];
      t = performance.now();
      const r = inspectWatermark(input.pcm, { key, channels: input.channels });
      detectMs.push(performance.now() - t);
      if (r.detection?.payload === payload) {
        hits[attack]++;
        zByAttack[attack].push(r.detection.syncZ);
        confByAttack[attack].push(r.detection.confidence);
      } else {
        if (r.detection) misidentified++;
        if (failures.length < 40) failures.push(`clip ${i} ${attack} (best z ${r.bestSyncZ})`);
      }
    }
    wrongKeyWindows++;
    if (inspectWatermark(clean, { key: wrongKey }).detection) wrongKeyFalsePositives++;
    finished++;
    if (finished % 10 === 0 || finished === clips) {
      const rates = ATTACKS.map((a) => `${a} ${hits[a]}/${finished}`).join(', ');
      console.log(`  clips ${finished}/${clips} (${((performance.now() - started) / 1000).toFixed(0)} s): ${rates}`);
    }
  });
  const clipSeconds = (performance.now() - started) / 1000;

  const un = await unmarkedDone;

  const detection = Object.fromEntries(ATTACKS.map((a) => [a, round(hits[a] / clips, 4)]));
  const bandNames = reports[0]?.bands.map((b) => `${b.loHz}-${b.hiHz}Hz`) ?? [];
  const markToMusicDbPerBand = Object.fromEntries(bandNames.map((name, k) => [name, round(median(reports.map((r) => r.bands[k]!.markToMusicDb)), 2)]));
  const markToMusicP95FrameDbPerBand = Object.fromEntries(bandNames.map((name, k) => [name, round(median(reports.map((r) => r.bands[k]!.p95FrameMarkToMusicDb)), 2)]));
  const worstBandDb = Math.max(...reports.flatMap((r) => r.bands.map((b) => b.markToMusicDb)));
  if (failures.length) console.log(`  misses: ${failures.join('; ')}`);
  return {
    clips,
    clipSeconds: seconds,
    excerptSeconds: EXCERPT_SEC,
    periodSeconds: round(PERIOD_SEC, 3),
    detection,
    misidentified,
    falsePositives: un.falsePositives,
    unmarkedWindows: un.windows,
    unmarkedDecodeAttempts: un.decodeAttempts,
    unmarkedSyncZ: { median: round(quantile(un.zs, 0.5), 2), p99: round(quantile(un.zs, 0.99), 2), max: round(Math.max(...un.zs, 0), 2) },
    wrongKeyWindows,
    wrongKeyFalsePositives,
    syncZMedian: Object.fromEntries(ATTACKS.map((a) => [a, round(median(zByAttack[a].length ? zByAttack[a] : [0]), 2)])),
    confidenceMedian: Object.fromEntries(ATTACKS.map((a) => [a, round(median(confByAttack[a].length ? confByAttack[a] : [0]), 3)])),
    markToMusicDb: round(median(reports.map((r) => r.markToMusicDb)), 2),
    markToMusicDbPerBand,
    markToMusicP95FrameDbPerBand,
    worstClipBandMarkToMusicDb: round(worstBandDb, 2),
    embedMsMedian: round(median(embedMs), 0),
    embedRealtimeX: round(seconds / (median(embedMs) / 1000), 1),
    detectMsMedian: round(median(detectMs), 0),
    unmarkedDetectMsMedian: round(un.ms.length ? median(un.ms) : 0, 0),
    wallSeconds: round((performance.now() - started) / 1000, 1),
    clipPhaseSeconds: round(clipSeconds, 1),
    loadAverage: os.loadavg().map((x) => round(x, 2)),
    ffmpeg: native.version,
    node: process.version,
  };
}
