import { expect } from 'chai';
import { composeDemoMusic, DEMO_STEM_IDS } from '../../media/demo/music.ts';
import { embedWatermark, detectWatermark, PERIOD_SEC, WatermarkError } from '../../media/watermark/watermark.ts';
import type { EmbedReport, WatermarkErrorCode } from '../../media/watermark/watermark.ts';
import { LOSSY_FORMATS, lossyRoundTrip, lossyRoundTrips } from '../../media/watermark/transcode.ts';
import { commandExists, requireComponent } from '../support/components.ts';

const SR = 48000;
const FFMPEG = process.env['FFMPEG_PATH'] || 'ffmpeg';
const KEY = Buffer.from('remixroom watermark test key 0001', 'utf8');
const OTHER_KEY = Buffer.from('remixroom watermark test key 0002', 'utf8');
const PAYLOAD = 0x9e3779b97f4a7c15n;

/** Deterministic offsets: the same "random" excerpts every run, printed when a check fails. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

function excerpt(pcm: Float32Array, channels: number, startSec: number, seconds: number): Float32Array {
  const start = Math.round(startSec * SR) * channels;
  return pcm.slice(start, start + Math.round(seconds * SR) * channels);
}

function randomExcerpt(pcm: Float32Array, channels: number, rand: () => number, seconds = 10): { startSec: number; pcm: Float32Array } {
  const total = pcm.length / channels / SR;
  const startSec = Math.round(rand() * (total - seconds) * SR) / SR;
  return { startSec, pcm: excerpt(pcm, channels, startSec, seconds) };
}

function expectCode(fn: () => unknown, code: WatermarkErrorCode): void {
  let thrown: unknown = null;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(thrown, `expected a WatermarkError "${code}"`).to.be.instanceOf(WatermarkError);
  expect((thrown as WatermarkError).code).to.equal(code);
}

describe('audio watermark (media/watermark)', function () {
  this.timeout(60_000);
  let host: Float32Array; // 26 s of the demo mix, unmarked
  let otherHost: Float32Array; // a different stretch and balance, unmarked
  let marked: Float32Array;
  let report: EmbedReport;
  const coded: Record<string, Float32Array> = {};
  let monoMp3: Float32Array;

  before(async function () {
    // Four real encodes and decodes of 26 s: a few seconds on an idle machine, more on a busy one.
    this.timeout(150_000);
    requireComponent('ffmpeg', commandExists(FFMPEG), this);
    const music = composeDemoMusic();
    const mix = (startSec: number, seconds: number, gains: readonly number[]): Float32Array => {
      const n = Math.round(seconds * SR) * 2;
      const s0 = Math.round(startSec * SR) * 2;
      const out = new Float32Array(n);
      DEMO_STEM_IDS.forEach((id, k) => {
        const stem = music.stems[id];
        const g = gains[k]!;
        for (let i = 0; i < n; i++) out[i] = out[i]! + g * stem[s0 + i]!;
      });
      return out;
    };
    host = mix(14, 26, [1, 1, 1, 1]);
    otherHost = mix(44, 26, [0.6, 1.2, 1.4, 0]);
    const result = embedWatermark(host, { payload: PAYLOAD, key: KEY });
    marked = result.pcm;
    report = result.report;
    console.log(`      embed report: ${JSON.stringify(report)}`);
    // Real encoders, two at a time.
    await Promise.all([
      (async () => {
        coded['aac96'] = await lossyRoundTrip(FFMPEG, marked, LOSSY_FORMATS.aac96);
        coded['mp3_64'] = await lossyRoundTrip(FFMPEG, marked, LOSSY_FORMATS.mp3_64);
      })(),
      (async () => {
        const [stereo, mono] = await lossyRoundTrips(FFMPEG, marked, LOSSY_FORMATS.mp3_128, [2, 1]);
        coded['mp3_128'] = stereo!;
        monoMp3 = mono!;
      })(),
    ]);
  });

  it('round-trips the exact payload from the whole marked clip, and the clip is otherwise the same length', () => {
    expect(marked.length).to.equal(host.length);
    const found = detectWatermark(marked, { key: KEY });
    expect(found, 'no mark found in the marked clip').to.not.equal(null);
    expect(found!.payload).to.equal(PAYLOAD);
    expect(found!.payloadHex).to.equal('9e3779b97f4a7c15');
    expect(found!.offsetSec).to.be.closeTo(0, 0.01);
  });

  it('reports how loud the mark is, per band, measured on the output', () => {
    expect(report.bands).to.have.length(4);
    for (const band of report.bands) {
      expect(band.markToMusicDb, `${band.loHz}–${band.hiHz} Hz`).to.be.below(-18);
      expect(band.p95FrameMarkToMusicDb).to.be.below(-12);
    }
    expect(report.markToMusicDb).to.be.below(-20);
    expect(report.periods).to.equal(Math.floor(26 / PERIOD_SEC));
    expect(report.maxBandGainDb).to.be.at.most(1.75 + 1e-9); // |δ| ≤ 3.5 dB per cell, half on each band
  });

  it('is deterministic: same input, key and payload give the same bits', () => {
    // The payload as 8 big-endian bytes is the same payload as the bigint.
    const bytes = embedWatermark(host, { payload: Buffer.from('9e3779b97f4a7c15', 'hex'), key: KEY });
    expect(Buffer.compare(Buffer.from(bytes.pcm.buffer), Buffer.from(marked.buffer))).to.equal(0);
  });

  it('finds the mark in 10-second excerpts cut at random offsets, and says where a period starts', () => {
    const rand = lcg(1);
    for (let i = 0; i < 3; i++) {
      const ex = randomExcerpt(marked, 2, rand);
      const found = detectWatermark(ex.pcm, { key: KEY });
      expect(found?.payload, `excerpt at ${ex.startSec} s`).to.equal(PAYLOAD);
      // A period starts at clip time 0, P, 2P…; in the excerpt at (−start) mod P.
      const expected = (((-ex.startSec) % PERIOD_SEC) + PERIOD_SEC) % PERIOD_SEC;
      const err = Math.abs(found!.offsetSec - expected);
      expect(Math.min(err, PERIOD_SEC - err), `offset for excerpt at ${ex.startSec} s`).to.be.below(0.005);
    }
  });

  for (const name of Object.keys(LOSSY_FORMATS)) {
    it(`survives ${name} (real ffmpeg): 10-second excerpts at random offsets`, () => {
      const rand = lcg(name.length * 7919);
      for (let i = 0; i < 2; i++) {
        const ex = randomExcerpt(coded[name]!, 2, rand);
        const found = detectWatermark(ex.pcm, { key: KEY });
        expect(found?.payload, `${name} excerpt at ${ex.startSec} s`).to.equal(PAYLOAD);
      }
    });
  }

  it('survives level changes of ±6 dB (on an AAC 96k excerpt)', () => {
    const ex = randomExcerpt(coded['aac96']!, 2, lcg(66)).pcm;
    for (const db of [-6, 6]) {
      const g = 10 ** (db / 20);
      const scaled = ex.map((x) => x * g);
      expect(detectWatermark(scaled, { key: KEY })?.payload, `${db} dB`).to.equal(PAYLOAD);
    }
  });

  it('survives a mono downmix: ffmpeg -ac 1 from MP3 128k, and (L+R)/2 of the original', () => {
    const ex = randomExcerpt(monoMp3, 1, lcg(3)).pcm;
    expect(detectWatermark(ex, { key: KEY, channels: 1 })?.payload).to.equal(PAYLOAD);
    const stereo = randomExcerpt(marked, 2, lcg(4)).pcm;
    const mono = new Float32Array(stereo.length / 2);
    for (let i = 0; i < mono.length; i++) mono[i] = stereo[2 * i]! + stereo[2 * i + 1]!; // a louder sum, not an average
    expect(detectWatermark(mono, { key: KEY, channels: 1 })?.payload).to.equal(PAYLOAD);
  });

  it('finds nothing in unmarked music, silence or noise', () => {
    const rand = lcg(5);
    for (const source of [host, otherHost]) {
      for (let i = 0; i < 3; i++) {
        const ex = randomExcerpt(source, 2, rand);
        expect(detectWatermark(ex.pcm, { key: KEY }), `unmarked excerpt at ${ex.startSec} s`).to.equal(null);
      }
      expect(detectWatermark(source, { key: KEY })).to.equal(null);
    }
    expect(detectWatermark(new Float32Array(10 * SR * 2), { key: KEY })).to.equal(null);
    const r = lcg(6);
    const noise = new Float32Array(10 * SR * 2).map(() => 0.2 * (r() - 0.5));
    expect(detectWatermark(noise, { key: KEY })).to.equal(null);
  });

  it('cannot be read with another key', () => {
    expect(detectWatermark(marked, { key: OTHER_KEY })).to.equal(null);
    expect(detectWatermark(randomExcerpt(coded['mp3_128']!, 2, lcg(8)).pcm, { key: OTHER_KEY })).to.equal(null);
  });

  it('refuses bad input with a typed error, never a crash', () => {
    const ok = host.subarray(0, 12 * SR * 2);
    const withNaN = Float32Array.from(ok);
    withNaN[12345] = Number.NaN;
    expectCode(() => embedWatermark(withNaN, { payload: 1n, key: KEY }), 'non-finite');
    expectCode(() => detectWatermark(withNaN, { key: KEY }), 'non-finite');
    const withInf = Float32Array.from(ok);
    withInf[7] = Number.POSITIVE_INFINITY;
    expectCode(() => embedWatermark(withInf, { payload: 1n, key: KEY }), 'non-finite');
    expectCode(() => embedWatermark(host.subarray(0, 5 * SR * 2), { payload: 1n, key: KEY }), 'too-short');
    expectCode(() => detectWatermark(host.subarray(0, 3 * SR * 2), { key: KEY }), 'too-short');
    expectCode(() => detectWatermark(new Float32Array(0), { key: KEY }), 'too-short');
    expectCode(() => embedWatermark(ok.subarray(1), { payload: 1n, key: KEY }), 'bad-input'); // odd length for stereo
    expectCode(() => detectWatermark(ok.subarray(1), { key: KEY }), 'bad-input');
    expectCode(() => embedWatermark([0.1, 0.2] as unknown as Float32Array, { payload: 1n, key: KEY }), 'bad-input');
    expectCode(() => detectWatermark(ok, { key: KEY, sampleRate: 44100 }), 'unsupported');
    expectCode(() => detectWatermark(ok, { key: KEY, channels: 6 }), 'unsupported');
    expectCode(() => embedWatermark(ok, { payload: 1n, key: Buffer.from('short') }), 'bad-key');
    expectCode(() => detectWatermark(ok, { key: 'a string key' as unknown as Uint8Array }), 'bad-key');
    expectCode(() => embedWatermark(ok, { payload: 1n << 64n, key: KEY }), 'bad-payload');
    expectCode(() => embedWatermark(ok, { payload: -1n, key: KEY }), 'bad-payload');
    expectCode(() => embedWatermark(ok, { payload: new Uint8Array(7), key: KEY }), 'bad-payload');
    expectCode(() => embedWatermark(ok, { payload: 5 as unknown as bigint, key: KEY }), 'bad-payload');
  });

  it('marks a mono clip too, and the input array is left untouched', () => {
    const stereo = host.subarray(0, 12 * SR * 2);
    const mono = new Float32Array(stereo.length / 2);
    for (let i = 0; i < mono.length; i++) mono[i] = 0.5 * (stereo[2 * i]! + stereo[2 * i + 1]!);
    const before = Float32Array.from(mono);
    const { pcm } = embedWatermark(mono, { payload: 42n, key: KEY, channels: 1 });
    expect(Buffer.compare(Buffer.from(before.buffer), Buffer.from(mono.buffer))).to.equal(0);
    expect(detectWatermark(pcm, { key: KEY, channels: 1 })?.payload).to.equal(42n);
  });
});
