// Keyed audio watermark for rendered clips: 64 bits (the render id) hidden in
// the short-time spectrum, recoverable from any 10-second excerpt after lossy
// re-encoding (AAC 96k, MP3 64k/128k), level changes and mono downmix.
//
// Scheme (version 1)
// ------------------
// Analysis: the mono mid signal (L+R)/2, halved to 24 kHz by a 7-tap half-band
// filter, sqrt-Hann frames of 1024 samples (42.7 ms), hop 21.3 ms. From 375 Hz
// to 6 kHz the spectrum is cut into 120 bands of two bins (46.9 Hz); adjacent
// bands pair into 60 "cells" per frame. A cell's feature is the log-energy
// difference of its two bands in dB (level-invariant), clipped to ±12 dB; cells
// 40 dB below the frame's mean band energy, or below about −100 dBFS, are
// inactive. The features are whitened in time: each minus the mean of its
// active neighbours within ±4 frames, which removes sustained tones.
//
// Layout: the mark repeats every P = 372 frames (7.94 s), so every 10-second
// excerpt holds at least one whole period. Each frame of a period is a slot:
// 66 keyed-random slots carry sync (known symbol +1), 306 carry one coded bit
// each. A slot's bit is spread over the 60 cells of its frame with keyed random
// signs c = ±1; its statistic is Σ c·feature.
//
// Payload: 64 bits + CRC-32 (XOR a keyed mask) = 96 bits, convolutional code
// K=7 rate 1/3 (133/171/165) with a 6-bit tail → 306 coded bits, decoded by soft
// Viterbi over everything the excerpt holds (repeated periods add up).
//
// Embedding is informed (improved spread spectrum): the detector's own
// statistic is measured on the marked signal, frame by frame, and each active
// cell is moved by ±δ dB (band A up δ/2, band B down δ/2, |δ| ≤ 3.5 dB) until
// the mean signed feature reaches the strength A = 1.25 dB in the slot's
// direction; where the music already points that way nothing is added, and
// where it points the other way the music's own contribution is cancelled.
// The gains go on a full-rate STFT (2048-sample sqrt-Hann frames, the same
// bins) of each channel and are resynthesised by overlap-add; four rounds of
// resynthesis and re-analysis absorb the frame overlap. L and R get the same
// gains, so the mono downmix carries the whole mark. The report measures the
// mark's level on the output: energy of (marked − original) over that of the
// original, per band (about −21 dB at these settings, see the benchmark).
//
// Detection resynchronises with no side information: 4 coarse sample offsets
// (256 apart) × all P cyclic frame shifts are scored by the normalised sync
// correlation z = Σ c·f / sqrt(Σ f²) over the sync cells (≈ N(0,1) on unmarked
// audio), the best is refined by halving steps down to 16 samples, and the best
// candidates with z ≥ 4 (at most 3) are decoded. A result is returned only when
// the CRC-32 matches, so a file without a mark (or read with another key) is
// reported with probability ≤ 2^-32 per decode attempt: under 1e-9 per call by
// design, and measured by the benchmark. Without the key neither the layout,
// the signs nor the CRC mask are known, so a mark can be neither read nor forged.
//
// Limits: 48 kHz only; 1 or 2 channels; no search over speed changes (a few
// percent of time-stretch or resampling defeats it); the whole clip is held in
// memory as float64 spectra (about 250 MB for a 4-minute song).
import { Fft } from './fft.ts';
import { CODE_TAIL_BITS, KeyedRng, convEncode, crc32, viterbiDecode } from './coding.ts';
import { createHmac } from 'node:crypto';

export const WATERMARK_SAMPLE_RATE = 48000;
const N = 2048;
const H = 1024;
const FIRST_BIN = 16; // 375 Hz
const BAND_BINS = 2;
const CELLS = 60; // 60 cells × 2 bands × 2 bins → bins 16..255 (375 Hz – 6 kHz)
const BAND_COUNT = CELLS * 2;
const LAST_BIN = FIRST_BIN + BAND_COUNT * BAND_BINS; // exclusive
const PAYLOAD_BITS = 64;
const INFO_BITS = PAYLOAD_BITS + 32;
const CODED_BITS = (INFO_BITS + CODE_TAIL_BITS) * 3; // 306
const SYNC_SLOTS = 66;
export const PERIOD_FRAMES = CODED_BITS + SYNC_SLOTS; // 372
export const PERIOD_SEC = (PERIOD_FRAMES * H) / WATERMARK_SAMPLE_RATE;

const STRENGTH_DB = 1.25;
const MAX_CELL_DB = 3.5;
const ITERATIONS = 4;
const KAPPA = 1.6;
const WHITEN_K = 4;
const CLIP_DB = 12;
const REL_FLOOR = 10 ** (-40 / 10);
const ABS_FLOOR = 5e-8; // band energy of the half-rate analysis for a sine of about −100 dBFS
const MIN_ACTIVE = 8;
const SYNC_Z_MIN = 4;
const COARSE_STEP = 256;
const PRELIM_Z = 3.6;
const FINE_STEP = 16;
const MAX_DECODES = 3;
/** Shortest input detection accepts: half a period more than a period is needed for all bits; shorter excerpts are tried with erasures. */
export const MIN_DETECT_SEC = 4;
export const MIN_EMBED_SEC = PERIOD_SEC;
const MIN_KEY_BYTES = 16;

export type WatermarkErrorCode = 'bad-input' | 'non-finite' | 'too-short' | 'bad-key' | 'bad-payload' | 'unsupported';

/** Every refusal of bad input is one of these, with a code to branch on. */
export class WatermarkError extends Error {
  readonly code: WatermarkErrorCode;
  constructor(code: WatermarkErrorCode, message: string) {
    super(message);
    this.name = 'WatermarkError';
    this.code = code;
  }
}

export interface EmbedOptions {
  /** The render id: 64 bits, as a bigint in [0, 2^64) or exactly 8 bytes (big-endian). */
  payload: bigint | Uint8Array;
  /** Secret key, at least 16 bytes. */
  key: Uint8Array;
  /** Interleaved channels of `pcm`: 1 or 2 (default 2). */
  channels?: number;
  /** Only 48000 is supported (default). */
  sampleRate?: number;
}

export interface BandAudibility {
  loHz: number;
  hiHz: number;
  /** Energy of (marked − original) over the energy of the original in this band, whole clip, dB. */
  markToMusicDb: number;
  /** 95th percentile over frames with music in the band of the same ratio per frame, dB. */
  p95FrameMarkToMusicDb: number;
}

export interface EmbedReport {
  payloadHex: string;
  periodSec: number;
  /** Whole periods in the clip (each one carries the complete mark). */
  periods: number;
  strengthDb: number;
  /** Energy of (marked − original) over energy of the original, all frequencies, dB. */
  markToMusicDb: number;
  bands: BandAudibility[];
  /** Mean and largest gain applied to a band, dB (absolute). */
  meanBandGainDb: number;
  maxBandGainDb: number;
  /** Fraction of frames with enough active cells whose statistic reached the strength. */
  targetMetFraction: number;
  /** Fraction of frames too quiet to carry anything. */
  silentFrameFraction: number;
  peakIn: number;
  peakOut: number;
  elapsedMs: number;
}

export interface EmbedResult {
  pcm: Float32Array;
  report: EmbedReport;
}

export interface DetectOptions {
  key: Uint8Array;
  channels?: number;
  sampleRate?: number;
}

export interface Detection {
  /** The 64-bit render id. */
  payload: bigint;
  payloadHex: string;
  /** Normalised sync correlation (≈ N(0,1) on unmarked audio; marks give 10–40). */
  syncZ: number;
  /** Fraction of coded bits whose hard decision agrees with the re-encoded payload (0.5 = chance, 1 = clean). */
  confidence: number;
  /** Time in the given audio where a period of the mark starts, in [0, periodSec). */
  offsetSec: number;
  periodSec: number;
  elapsedMs: number;
}

interface Layout {
  /** Per period slot: −1 = sync, else coded bit index. */
  slotBit: Int16Array;
  /** Sync slot index per period slot (−1 when data). */
  syncIndex: Int16Array;
  signs: Int8Array; // PERIOD_FRAMES × CELLS
  /** The period slots that carry sync, in sync-index order. */
  syncSlots: Int16Array;
  crcMask: number;
}

const layouts = new Map<string, Layout>();

function layoutFor(key: Uint8Array): Layout {
  const id = createHmac('sha256', key).update('remixroom-watermark/v1/id').digest('hex');
  let layout = layouts.get(id);
  if (layout) return layout;
  const perm = new KeyedRng(key, 'slots').permutation(PERIOD_FRAMES);
  const slotBit = new Int16Array(PERIOD_FRAMES);
  const syncIndex = new Int16Array(PERIOD_FRAMES).fill(-1);
  for (let i = 0; i < PERIOD_FRAMES; i++) {
    const slot = perm[i]!;
    if (i < SYNC_SLOTS) {
      slotBit[slot] = -1;
      syncIndex[slot] = i;
    } else {
      slotBit[slot] = i - SYNC_SLOTS;
    }
  }
  const rng = new KeyedRng(key, 'signs');
  const signs = new Int8Array(PERIOD_FRAMES * CELLS);
  for (let i = 0; i < signs.length; i++) signs[i] = rng.sign();
  const crcMask = new KeyedRng(key, 'crc').nextU32();
  const syncSlots = new Int16Array(SYNC_SLOTS);
  for (let slot = 0; slot < PERIOD_FRAMES; slot++) if (syncIndex[slot]! >= 0) syncSlots[syncIndex[slot]!] = slot;
  layout = { slotBit, syncIndex, signs, syncSlots, crcMask };
  if (layouts.size > 64) layouts.clear();
  layouts.set(id, layout);
  return layout;
}

const fft = new Fft(N);
const WINDOW = (() => {
  const w = new Float64Array(N);
  for (let n = 0; n < N; n++) w[n] = Math.sin((Math.PI * n) / N); // sqrt of the periodic Hann: w² overlap-adds to 1 at hop N/2
  return w;
})();
const BAND_SPAN = LAST_BIN - FIRST_BIN;

// ---------------------------------------------------------------- validation

function checkKey(key: unknown): Uint8Array {
  if (!(key instanceof Uint8Array)) throw new WatermarkError('bad-key', 'key must be a Uint8Array or Buffer');
  if (key.length < MIN_KEY_BYTES) throw new WatermarkError('bad-key', `key must be at least ${MIN_KEY_BYTES} bytes, got ${key.length}`);
  return key;
}

function checkFormat(pcm: unknown, channels: unknown, sampleRate: unknown): { pcm: Float32Array; channels: number } {
  if (!(pcm instanceof Float32Array)) throw new WatermarkError('bad-input', 'pcm must be a Float32Array of interleaved samples');
  const ch = channels ?? 2;
  if (ch !== 1 && ch !== 2) throw new WatermarkError('unsupported', `channels must be 1 or 2, not ${String(ch)}`);
  const rate = sampleRate ?? WATERMARK_SAMPLE_RATE;
  if (rate !== WATERMARK_SAMPLE_RATE) throw new WatermarkError('unsupported', `only ${WATERMARK_SAMPLE_RATE} Hz is supported, not ${String(rate)}`);
  if (pcm.length % ch !== 0) throw new WatermarkError('bad-input', `pcm length ${pcm.length} is not a multiple of ${ch} channels`);
  for (let i = 0; i < pcm.length; i++) {
    if (!Number.isFinite(pcm[i]!)) throw new WatermarkError('non-finite', `sample ${i} is ${pcm[i]}; the audio must be finite`);
  }
  return { pcm, channels: ch };
}

function payloadBytesOf(payload: unknown): Uint8Array {
  if (typeof payload === 'bigint') {
    if (payload < 0n || payload >= 1n << 64n) throw new WatermarkError('bad-payload', 'payload must be in [0, 2^64)');
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, payload);
    return b;
  }
  if (payload instanceof Uint8Array) {
    if (payload.length !== 8) throw new WatermarkError('bad-payload', `payload must be exactly 8 bytes, got ${payload.length}`);
    return Uint8Array.from(payload);
  }
  throw new WatermarkError('bad-payload', 'payload must be a bigint or an 8-byte Uint8Array');
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function infoBitsOf(payload: Uint8Array, crcMask: number): Uint8Array {
  const crc = (crc32(payload) ^ crcMask) >>> 0;
  const bits = new Uint8Array(INFO_BITS);
  for (let i = 0; i < PAYLOAD_BITS; i++) bits[i] = (payload[i >> 3]! >> (7 - (i & 7))) & 1;
  for (let i = 0; i < 32; i++) bits[PAYLOAD_BITS + i] = (crc >>> (31 - i)) & 1;
  return bits;
}

// ---------------------------------------------------------------- analysis

/**
 * Band-bin spectra of real frames starting at origin + f·H (zeros outside the
 * signal), two frames per complex FFT. Returns re/im for bins FIRST_BIN..LAST_BIN
 * of each frame (frames × BAND_SPAN), and band energies (frames × BAND_COUNT).
 */
function analyse(x: Float64Array, origin: number, frames: number, wantSpectrum: boolean): { re: Float64Array | null; im: Float64Array | null; energy: Float64Array } {
  const re = wantSpectrum ? new Float64Array(frames * BAND_SPAN) : null;
  const im = wantSpectrum ? new Float64Array(frames * BAND_SPAN) : null;
  const energy = new Float64Array(frames * BAND_COUNT);
  const zr = new Float64Array(N);
  const zi = new Float64Array(N);
  const len = x.length;
  for (let f = 0; f < frames; f += 2) {
    const s0 = origin + f * H;
    const s1 = s0 + H;
    const two = f + 1 < frames;
    for (let n = 0; n < N; n++) {
      const t0 = s0 + n;
      zr[n] = t0 >= 0 && t0 < len ? x[t0]! * WINDOW[n]! : 0;
      const t1 = s1 + n;
      zi[n] = two && t1 >= 0 && t1 < len ? x[t1]! * WINDOW[n]! : 0;
    }
    fft.transform(zr, zi);
    for (let k = FIRST_BIN; k < LAST_BIN; k++) {
      const ar = zr[k]!;
      const ai = zi[k]!;
      const br = zr[N - k]!;
      const bi = zi[N - k]!;
      const aRe = 0.5 * (ar + br);
      const aIm = 0.5 * (ai - bi);
      const bRe = 0.5 * (ai + bi);
      const bIm = 0.5 * (br - ar);
      const idx = k - FIRST_BIN;
      const band = (idx / BAND_BINS) | 0;
      energy[f * BAND_COUNT + band] = energy[f * BAND_COUNT + band]! + aRe * aRe + aIm * aIm;
      if (two) energy[(f + 1) * BAND_COUNT + band] = energy[(f + 1) * BAND_COUNT + band]! + bRe * bRe + bIm * bIm;
      if (re && im) {
        re[f * BAND_SPAN + idx] = aRe;
        im[f * BAND_SPAN + idx] = aIm;
        if (two) {
          re[(f + 1) * BAND_SPAN + idx] = bRe;
          im[(f + 1) * BAND_SPAN + idx] = bIm;
        }
      }
    }
  }
  return { re, im, energy };
}

const N2 = N / 2;
const H2 = H / 2;
const fftHalf = new Fft(N2);
const WINDOW_HALF = (() => {
  const w = new Float64Array(N2);
  for (let n = 0; n < N2; n++) w[n] = Math.sin((Math.PI * n) / N2);
  return w;
})();

/**
 * Half-rate copy for the feature analysis: the 7-tap half-band filter
 * (−1, 0, 9, 16, 9, 0, −1)/32 (−0.5 dB at 6 kHz, ≥ 25 dB down from 18 kHz),
 * then every other sample. The features need nothing above 6 kHz, and the FFTs
 * at 24 kHz cost less than half as much.
 */
function decimate2(x: Float64Array): Float64Array {
  const len = x.length;
  const out = new Float64Array((len + 1) >> 1);
  const at = (t: number): number => (t >= 0 && t < len ? x[t]! : 0);
  for (let n = 0; n < out.length; n++) {
    const t = 2 * n;
    if (t >= 3 && t + 3 < len) {
      out[n] = (16 * x[t]! + 9 * (x[t - 1]! + x[t + 1]!) - (x[t - 3]! + x[t + 3]!)) / 32;
    } else {
      out[n] = (16 * at(t) + 9 * (at(t - 1) + at(t + 1)) - (at(t - 3) + at(t + 3))) / 32;
    }
  }
  return out;
}

/**
 * Band energies (frames × BAND_COUNT) of a half-rate signal for frames that start
 * at full-rate sample origin + f·H (origin even). Same bins in Hz as the full-rate
 * analysis (23.4 Hz each); two frames per complex FFT.
 */
function bandEnergies(xd: Float64Array, origin: number, frames: number): Float64Array {
  const energy = new Float64Array(frames * BAND_COUNT);
  const zr = new Float64Array(N2);
  const zi = new Float64Array(N2);
  const len = xd.length;
  const o2 = origin >> 1;
  for (let f = 0; f < frames; f += 2) {
    const s0 = o2 + f * H2;
    const s1 = s0 + H2;
    const two = f + 1 < frames;
    if (s0 >= 0 && s1 + N2 <= len) {
      for (let n = 0; n < N2; n++) {
        const w = WINDOW_HALF[n]!;
        zr[n] = xd[s0 + n]! * w;
        zi[n] = two ? xd[s1 + n]! * w : 0;
      }
    } else {
      for (let n = 0; n < N2; n++) {
        const t0 = s0 + n;
        zr[n] = t0 >= 0 && t0 < len ? xd[t0]! * WINDOW_HALF[n]! : 0;
        const t1 = s1 + n;
        zi[n] = two && t1 >= 0 && t1 < len ? xd[t1]! * WINDOW_HALF[n]! : 0;
      }
    }
    fftHalf.transform(zr, zi);
    for (let b = 0; b < BAND_COUNT; b++) {
      let ea = 0;
      let eb = 0;
      for (let q = 0; q < BAND_BINS; q++) {
        const k = FIRST_BIN + b * BAND_BINS + q;
        const ar = zr[k]!;
        const ai = zi[k]!;
        const br = zr[N2 - k]!;
        const bi = zi[N2 - k]!;
        const aRe = ar + br;
        const aIm = ai - bi;
        const bRe = ai + bi;
        const bIm = br - ar;
        ea += aRe * aRe + aIm * aIm;
        eb += bRe * bRe + bIm * bIm;
      }
      energy[f * BAND_COUNT + b] = 0.25 * ea;
      if (two) energy[(f + 1) * BAND_COUNT + b] = 0.25 * eb;
    }
  }
  return energy;
}

/** Spectra of L and R at once (L in the real part, R in the imaginary part of one FFT per frame). */
function analyseStereo(l: Float64Array, r: Float64Array, origin: number, frames: number): { lre: Float64Array; lim: Float64Array; rre: Float64Array; rim: Float64Array } {
  const lre = new Float64Array(frames * BAND_SPAN);
  const lim = new Float64Array(frames * BAND_SPAN);
  const rre = new Float64Array(frames * BAND_SPAN);
  const rim = new Float64Array(frames * BAND_SPAN);
  const zr = new Float64Array(N);
  const zi = new Float64Array(N);
  const len = l.length;
  for (let f = 0; f < frames; f++) {
    const s = origin + f * H;
    for (let n = 0; n < N; n++) {
      const t = s + n;
      const inside = t >= 0 && t < len;
      zr[n] = inside ? l[t]! * WINDOW[n]! : 0;
      zi[n] = inside ? r[t]! * WINDOW[n]! : 0;
    }
    fft.transform(zr, zi);
    for (let k = FIRST_BIN; k < LAST_BIN; k++) {
      const ar = zr[k]!;
      const ai = zi[k]!;
      const br = zr[N - k]!;
      const bi = zi[N - k]!;
      const o = f * BAND_SPAN + k - FIRST_BIN;
      lre[o] = 0.5 * (ar + br);
      lim[o] = 0.5 * (ai - bi);
      rre[o] = 0.5 * (ai + bi);
      rim[o] = 0.5 * (br - ar);
    }
  }
  return { lre, lim, rre, rim };
}

/**
 * Overlap-adds frames whose spectra (band bins only, Hermitian-completed) are
 * (a) and (b): a goes to the real output, b to the second output, one inverse
 * FFT per frame. Output covers [0, len).
 */
function synthesise(
  aRe: Float64Array, aIm: Float64Array, bRe: Float64Array | null, bIm: Float64Array | null,
  origin: number, frames: number, len: number, outA: Float64Array, outB: Float64Array | null,
): void {
  outA.fill(0);
  outB?.fill(0);
  const zr = new Float64Array(N);
  const zi = new Float64Array(N);
  // Without b, frames go in pairs: frame f real, f+1 imaginary.
  const paired = bRe === null;
  const step = paired ? 2 : 1;
  for (let f = 0; f < frames; f += step) {
    zr.fill(0);
    zi.fill(0);
    const second = paired ? (f + 1 < frames ? f + 1 : -1) : f;
    const sbRe = paired ? aRe : bRe!;
    const sbIm = paired ? aIm : bIm!;
    for (let k = FIRST_BIN; k < LAST_BIN; k++) {
      const o = f * BAND_SPAN + k - FIRST_BIN;
      const ar = aRe[o]!;
      const ai = aIm[o]!;
      let br = 0;
      let bi = 0;
      if (second >= 0) {
        const o2 = second * BAND_SPAN + k - FIRST_BIN;
        br = sbRe[o2]!;
        bi = sbIm[o2]!;
      }
      zr[k] = ar - bi;
      zi[k] = ai + br;
      zr[N - k] = ar + bi;
      zi[N - k] = br - ai;
    }
    fft.transform(zr, zi, true);
    const s0 = origin + f * H;
    for (let n = 0; n < N; n++) {
      const t = s0 + n;
      if (t >= 0 && t < len) outA[t] = outA[t]! + zr[n]! * WINDOW[n]!;
    }
    if (second >= 0) {
      const s1 = origin + second * H;
      const out2 = paired ? outA : outB!;
      for (let n = 0; n < N; n++) {
        const t = s1 + n;
        if (t >= 0 && t < len) out2[t] = out2[t]! + zi[n]! * WINDOW[n]!;
      }
    }
  }
}

interface Features {
  /** Whitened, clipped cell features (0 where inactive), frames × CELLS. */
  w: Float64Array;
  /** 1 active, 0 inactive, 2 active but clipped (does not respond to gains). */
  state: Uint8Array;
}

function features(energy: Float64Array, frames: number): Features {
  const v = new Float64Array(frames * CELLS);
  const state = new Uint8Array(frames * CELLS);
  for (let f = 0; f < frames; f++) {
    let mean = 0;
    for (let b = 0; b < BAND_COUNT; b++) mean += energy[f * BAND_COUNT + b]!;
    mean /= BAND_COUNT;
    const floor = Math.max(ABS_FLOOR, mean * REL_FLOOR);
    for (let m = 0; m < CELLS; m++) {
      const ea = energy[f * BAND_COUNT + 2 * m]!;
      const eb = energy[f * BAND_COUNT + 2 * m + 1]!;
      if (ea < floor || eb < floor) continue;
      let d = 10 * Math.log10(ea / eb);
      let st = 1;
      if (d > CLIP_DB) {
        d = CLIP_DB;
        st = 2;
      } else if (d < -CLIP_DB) {
        d = -CLIP_DB;
        st = 2;
      }
      v[f * CELLS + m] = d;
      state[f * CELLS + m] = st;
    }
  }
  const w = new Float64Array(frames * CELLS);
  for (let f = 0; f < frames; f++) {
    for (let m = 0; m < CELLS; m++) {
      const i = f * CELLS + m;
      if (!state[i]) continue;
      let sum = 0;
      let count = 0;
      for (let j = 1; j <= WHITEN_K; j++) {
        if (f - j >= 0 && state[i - j * CELLS]) {
          sum += v[i - j * CELLS]!;
          count++;
        }
        if (f + j < frames && state[i + j * CELLS]) {
          sum += v[i + j * CELLS]!;
          count++;
        }
      }
      w[i] = count ? v[i]! - sum / count : v[i]!;
    }
  }
  return { w, state };
}

function toMono(pcm: Float32Array, channels: number): Float64Array {
  const frames = pcm.length / channels;
  const mono = new Float64Array(frames);
  if (channels === 1) {
    for (let i = 0; i < frames; i++) mono[i] = pcm[i]!;
  } else {
    for (let i = 0; i < frames; i++) mono[i] = 0.5 * (pcm[2 * i]! + pcm[2 * i + 1]!);
  }
  return mono;
}

// ---------------------------------------------------------------- embedding

/**
 * Marks `pcm` (interleaved, 48 kHz) with the 64-bit payload under `key`.
 * Returns a new array of the same length and a report of what it did and how
 * loud the mark is. Throws WatermarkError on bad input (including audio shorter
 * than one period, 7.94 s, which could not carry a whole mark).
 */
export function embedWatermark(pcm: Float32Array, options: EmbedOptions): EmbedResult {
  const started = performance.now();
  const key = checkKey(options?.key);
  const payload = payloadBytesOf(options.payload);
  const { channels } = checkFormat(pcm, options.channels, options.sampleRate);
  const len = pcm.length / channels;
  if (len < MIN_EMBED_SEC * WATERMARK_SAMPLE_RATE) {
    throw new WatermarkError('too-short', `audio is ${(len / WATERMARK_SAMPLE_RATE).toFixed(2)} s; a mark needs at least ${MIN_EMBED_SEC.toFixed(2)} s (one period)`);
  }
  const layout = layoutFor(key);
  const coded = convEncode(infoBitsOf(payload, layout.crcMask));

  const origin = -H;
  const frames = Math.ceil(len / H) + 1;
  const mid = toMono(pcm, channels);
  const base = analyse(mid, origin, frames, true);
  const baseRe = base.re!;
  const baseIm = base.im!;

  // Per frame: target direction (+1/−1) of its slot.
  const target = new Int8Array(frames);
  for (let f = 0; f < frames; f++) {
    const slot = f % PERIOD_FRAMES;
    const bit = layout.slotBit[slot]!;
    target[f] = bit < 0 ? 1 : coded[bit] ? -1 : 1;
  }

  const delta = new Float64Array(frames * CELLS); // dB change of each cell's feature
  const gainA = new Float64Array(frames * BAND_COUNT); // amplitude gain − 1 per band
  const dRe = new Float64Array(frames * BAND_SPAN);
  const dIm = new Float64Array(frames * BAND_SPAN);
  const diff = new Float64Array(len);
  let energy = bandEnergies(decimate2(mid), origin, frames);
  let met = 0;
  let carrying = 0;

  const applyGains = (srcRe: Float64Array, srcIm: Float64Array, outRe: Float64Array, outIm: Float64Array): void => {
    for (let f = 0; f < frames; f++) {
      for (let idx = 0; idx < BAND_SPAN; idx++) {
        const g = gainA[f * BAND_COUNT + ((idx / BAND_BINS) | 0)]!;
        const o = f * BAND_SPAN + idx;
        outRe[o] = g * srcRe[o]!;
        outIm[o] = g * srcIm[o]!;
      }
    }
  };

  for (let iter = 0; iter <= ITERATIONS; iter++) {
    const feat = features(energy, frames);
    met = 0;
    carrying = 0;
    for (let f = 0; f < frames; f++) {
      const slot = f % PERIOD_FRAMES;
      const t = target[f]!;
      let sum = 0;
      let active = 0;
      for (let m = 0; m < CELLS; m++) {
        const i = f * CELLS + m;
        if (!feat.state[i]) continue;
        active++;
        sum += layout.signs[slot * CELLS + m]! * feat.w[i]!;
      }
      if (active < MIN_ACTIVE) continue;
      carrying++;
      const need = STRENGTH_DB - (t * sum) / active;
      if (need <= 0.02 * STRENGTH_DB) {
        met++;
        continue;
      }
      if (iter === ITERATIONS) continue; // last round only measures
      for (let m = 0; m < CELLS; m++) {
        const i = f * CELLS + m;
        if (feat.state[i] !== 1) continue;
        let d = delta[i]! + KAPPA * need * t * layout.signs[slot * CELLS + m]!;
        if (d > MAX_CELL_DB) d = MAX_CELL_DB;
        else if (d < -MAX_CELL_DB) d = -MAX_CELL_DB;
        delta[i] = d;
      }
    }
    if (iter === ITERATIONS) break;
    for (let i = 0; i < delta.length; i++) {
      const d = delta[i]!;
      const f = (i / CELLS) | 0;
      const m = i - f * CELLS;
      gainA[f * BAND_COUNT + 2 * m] = d === 0 ? 0 : 10 ** (d / 40) - 1;
      gainA[f * BAND_COUNT + 2 * m + 1] = d === 0 ? 0 : 10 ** (-d / 40) - 1;
    }
    applyGains(baseRe, baseIm, dRe, dIm);
    synthesise(dRe, dIm, null, null, origin, frames, len, diff, null);
    const marked = new Float64Array(len);
    for (let t = 0; t < len; t++) marked[t] = mid[t]! + diff[t]!;
    energy = bandEnergies(decimate2(marked), origin, frames);
  }

  // The same gains on each channel.
  const out = new Float32Array(pcm.length);
  const inL = new Float64Array(len);
  const inR = new Float64Array(len);
  for (let t = 0; t < len; t++) {
    inL[t] = pcm[t * channels]!;
    inR[t] = channels === 2 ? pcm[t * 2 + 1]! : 0;
  }
  const diffL = new Float64Array(len);
  const diffR = new Float64Array(len);
  let musicSpec: ReturnType<typeof analyseStereo> | null = null;
  if (channels === 2) {
    const st = analyseStereo(inL, inR, origin, frames);
    musicSpec = st;
    const lRe = new Float64Array(frames * BAND_SPAN);
    const lIm = new Float64Array(frames * BAND_SPAN);
    const rRe = new Float64Array(frames * BAND_SPAN);
    const rIm = new Float64Array(frames * BAND_SPAN);
    applyGains(st.lre, st.lim, lRe, lIm);
    applyGains(st.rre, st.rim, rRe, rIm);
    synthesise(lRe, lIm, rRe, rIm, origin, frames, len, diffL, diffR);
  } else {
    applyGains(baseRe, baseIm, dRe, dIm);
    synthesise(dRe, dIm, null, null, origin, frames, len, diffL, null);
  }
  let peakIn = 0;
  let peakOut = 0;
  let eIn = 0;
  let eDiff = 0;
  for (let t = 0; t < len; t++) {
    for (let c = 0; c < channels; c++) {
      const x = c === 0 ? inL[t]! : inR[t]!;
      const d = c === 0 ? diffL[t]! : diffR[t]!;
      const y = x + d;
      out[t * channels + c] = y;
      peakIn = Math.max(peakIn, Math.abs(x));
      peakOut = Math.max(peakOut, Math.abs(y));
      eIn += x * x;
      eDiff += d * d;
    }
  }

  // Audibility, measured on the output: spectra of the difference and of the input.
  const bandsHz: [number, number][] = [[375, 750], [750, 1500], [1500, 3000], [3000, 6000]];
  const binHz = WATERMARK_SAMPLE_RATE / N;
  const diffSpec = channels === 2 ? analyseStereo(diffL, diffR, origin, frames) : null;
  const monoMusic = channels === 1 ? { re: baseRe, im: baseIm } : null;
  const monoDiff = channels === 1 ? analyse(diffL, origin, frames, true) : null;
  const bands: BandAudibility[] = bandsHz.map(([lo, hi]) => {
    const k0 = Math.max(FIRST_BIN, Math.round(lo / binHz));
    const k1 = Math.min(LAST_BIN, Math.round(hi / binHz));
    let em = 0;
    let ed = 0;
    const ratios: number[] = [];
    const perFrameMusic: number[] = [];
    for (let f = 0; f < frames; f++) {
      let fm = 0;
      let fd = 0;
      for (let k = k0; k < k1; k++) {
        const o = f * BAND_SPAN + k - FIRST_BIN;
        if (musicSpec && diffSpec) {
          fm += musicSpec.lre[o]! ** 2 + musicSpec.lim[o]! ** 2 + musicSpec.rre[o]! ** 2 + musicSpec.rim[o]! ** 2;
          fd += diffSpec.lre[o]! ** 2 + diffSpec.lim[o]! ** 2 + diffSpec.rre[o]! ** 2 + diffSpec.rim[o]! ** 2;
        } else if (monoMusic && monoDiff) {
          fm += monoMusic.re[o]! ** 2 + monoMusic.im[o]! ** 2;
          fd += monoDiff.re![o]! ** 2 + monoDiff.im![o]! ** 2;
        }
      }
      em += fm;
      ed += fd;
      perFrameMusic.push(fm);
      if (fm > 0) ratios.push(fd / fm);
    }
    // Frames "with music": within 40 dB of the loudest frame in the band.
    const loud = Math.max(...perFrameMusic, 0);
    const withMusic: number[] = [];
    for (let f = 0; f < frames; f++) {
      const fm = perFrameMusic[f]!;
      if (fm > loud * 1e-4 && fm > 0) {
        let fd = 0;
        for (let k = k0; k < k1; k++) {
          const o = f * BAND_SPAN + k - FIRST_BIN;
          fd += diffSpec ? diffSpec.lre[o]! ** 2 + diffSpec.lim[o]! ** 2 + diffSpec.rre[o]! ** 2 + diffSpec.rim[o]! ** 2 : monoDiff!.re![o]! ** 2 + monoDiff!.im![o]! ** 2;
        }
        withMusic.push(fd / fm);
      }
    }
    withMusic.sort((a, b) => a - b);
    const p95 = withMusic.length ? withMusic[Math.min(withMusic.length - 1, Math.floor(0.95 * withMusic.length))]! : 0;
    return { loHz: lo, hiHz: hi, markToMusicDb: round2(db(ed, em)), p95FrameMarkToMusicDb: round2(db(p95, 1)) };
  });

  let sumGain = 0;
  let maxGain = 0;
  let gained = 0;
  for (let i = 0; i < delta.length; i++) {
    const g = Math.abs(delta[i]!) / 2;
    if (g > 0) {
      sumGain += g;
      gained++;
      maxGain = Math.max(maxGain, g);
    }
  }
  const report: EmbedReport = {
    payloadHex: hex(payload),
    periodSec: PERIOD_SEC,
    periods: Math.floor(len / (PERIOD_FRAMES * H)),
    strengthDb: STRENGTH_DB,
    markToMusicDb: round2(db(eDiff, eIn)),
    bands,
    meanBandGainDb: round2(gained ? sumGain / gained : 0),
    maxBandGainDb: round2(maxGain),
    targetMetFraction: round2(carrying ? met / carrying : 0),
    silentFrameFraction: round2(1 - carrying / frames),
    peakIn,
    peakOut,
    elapsedMs: Math.round(performance.now() - started),
  };
  return { pcm: out, report };
}

function db(num: number, den: number): number {
  if (den <= 0) return num > 0 ? Infinity : -Infinity;
  if (num <= 0) return -Infinity;
  return 10 * Math.log10(num / den);
}

function round2(x: number): number {
  return Number.isFinite(x) ? Math.round(x * 100) / 100 : x;
}

// ---------------------------------------------------------------- detection

interface Candidate {
  offset: number;
  shift: number;
  z: number;
  feat: Features;
  frames: number;
}

/**
 * Scores cyclic frame shifts for one sample offset (all P of them, or only
 * `shifts`) by the normalised sync correlation; returns the best. `dec` is the
 * half-rate mono signal, `len` the full-rate length.
 */
function scoreOffset(dec: Float64Array, len: number, offset: number, layout: Layout, shifts: readonly number[] | null = null): Candidate | null {
  const frames = Math.floor((len - offset - N) / H) + 1;
  if (frames < 2 * WHITEN_K + 1) return null;
  const feat = features(bandEnergies(dec, offset, frames), frames);
  const w = feat.w;
  const signs = layout.signs;
  const norm = new Float64Array(frames);
  for (let j = 0; j < frames; j++) {
    let e = 0;
    for (let m = 0; m < CELLS; m++) e += w[j * CELLS + m]! ** 2;
    norm[j] = e;
  }
  const slotCorr = (j: number, slot: number): number => {
    let c = 0;
    const so = slot * CELLS;
    const wo = j * CELLS;
    for (let m = 0; m < CELLS; m++) c += signs[so + m]! * w[wo + m]!;
    return c;
  };
  let best: Candidate | null = null;
  const consider = (s: number, acc: number, nrm: number): void => {
    const z = nrm > 0 ? acc / Math.sqrt(nrm) : 0;
    if (!best || z > best.z) best = { offset, shift: s, z, feat, frames };
  };
  if (shifts) {
    for (const s0 of shifts) {
      const s = ((s0 % PERIOD_FRAMES) + PERIOD_FRAMES) % PERIOD_FRAMES;
      let acc = 0;
      let nrm = 0;
      for (let j = 0; j < frames; j++) {
        const slot = (j + s) % PERIOD_FRAMES;
        if (layout.syncIndex[slot]! < 0 || norm[j] === 0) continue;
        acc += slotCorr(j, slot);
        nrm += norm[j]!;
      }
      consider(s, acc, nrm);
    }
    return best;
  }
  // corr[j·S + q] = correlation of frame j with the q-th sync slot.
  const S = layout.syncSlots.length;
  const corr = new Float64Array(frames * S);
  for (let j = 0; j < frames; j++) {
    if (norm[j] === 0) continue;
    for (let q = 0; q < S; q++) corr[j * S + q] = slotCorr(j, layout.syncSlots[q]!);
  }
  for (let s = 0; s < PERIOD_FRAMES; s++) {
    let acc = 0;
    let nrm = 0;
    let slot = s;
    for (let j = 0; j < frames; j++) {
      const q = layout.syncIndex[slot]!;
      if (q >= 0) {
        acc += corr[j * S + q]!;
        nrm += norm[j]!;
      }
      if (++slot === PERIOD_FRAMES) slot = 0;
    }
    consider(s, acc, nrm);
  }
  return best;
}

function decodeCandidate(c: Candidate, layout: Layout): { payload: Uint8Array; confidence: number } | null {
  const soft = new Float64Array(CODED_BITS);
  for (let j = 0; j < c.frames; j++) {
    const slot = (j + c.shift) % PERIOD_FRAMES;
    const bit = layout.slotBit[slot]!;
    if (bit < 0) continue;
    let acc = 0;
    for (let m = 0; m < CELLS; m++) acc += layout.signs[slot * CELLS + m]! * c.feat.w[j * CELLS + m]!;
    soft[bit] = soft[bit]! + acc;
  }
  const bits = viterbiDecode(soft, INFO_BITS);
  const payload = new Uint8Array(8);
  for (let i = 0; i < PAYLOAD_BITS; i++) payload[i >> 3] = payload[i >> 3]! | (bits[i]! << (7 - (i & 7)));
  let crc = 0;
  for (let i = 0; i < 32; i++) crc = (crc << 1) | bits[PAYLOAD_BITS + i]!;
  if (((crc32(payload) ^ layout.crcMask) >>> 0) !== crc >>> 0) return null;
  const recoded = convEncode(bits);
  let agree = 0;
  let seen = 0;
  for (let i = 0; i < CODED_BITS; i++) {
    if (soft[i] === 0) continue;
    seen++;
    if ((soft[i]! > 0 ? 0 : 1) === recoded[i]) agree++;
  }
  return { payload, confidence: seen ? agree / seen : 0 };
}

export interface Inspection {
  detection: Detection | null;
  /** Best normalised sync correlation found (≈ the largest of ~1500 N(0,1) draws, 3–4, on unmarked audio). */
  bestSyncZ: number;
  /** Viterbi decodes tried (each passes the CRC-32 by chance with probability 2^-32). */
  decodeAttempts: number;
}

/** detectWatermark with the figures behind its answer (for benchmarks and diagnostics). */
export function inspectWatermark(pcm: Float32Array, options: DetectOptions): Inspection {
  const started = performance.now();
  const key = checkKey(options?.key);
  const { channels } = checkFormat(pcm, options.channels, options.sampleRate);
  const len = pcm.length / channels;
  if (len < MIN_DETECT_SEC * WATERMARK_SAMPLE_RATE) {
    throw new WatermarkError('too-short', `audio is ${(len / WATERMARK_SAMPLE_RATE).toFixed(2)} s; detection needs at least ${MIN_DETECT_SEC} s (10 s or more for a reliable answer)`);
  }
  const layout = layoutFor(key);
  const dec = decimate2(toMono(pcm, channels));
  // Coarse: every cyclic frame shift at offsets COARSE_STEP apart; a misalignment of
  // up to half a step costs about 15 % of z, so candidates above PRELIM_Z are refined
  // by halving steps (±128, ±64, ±32, ±16 samples).
  const coarse: Candidate[] = [];
  for (let o = 0; o < H; o += COARSE_STEP) {
    const c = scoreOffset(dec, len, o, layout);
    if (c) coarse.push(c);
  }
  coarse.sort((a, b) => b.z - a.z);
  const top = coarse[0];
  let attempts = 0;
  if (!top || top.z < PRELIM_Z) return { detection: null, bestSyncZ: round2(top?.z ?? 0), decodeAttempts: 0 };
  let bestFine = top;
  for (let step = COARSE_STEP / 2; step >= FINE_STEP; step /= 2) {
    const centre = bestFine.offset;
    for (const o of [centre - step, centre + step]) {
      if (o < 0) continue;
      // Moving by less than half a hop keeps the frame-to-slot mapping within one frame.
      const c = scoreOffset(dec, len, o, layout, [bestFine.shift - 1, bestFine.shift, bestFine.shift + 1]);
      if (c && c.z > bestFine.z) bestFine = c;
    }
  }
  const tries: Candidate[] = [bestFine, ...coarse.filter((c) => c !== bestFine && c.z >= SYNC_Z_MIN)].filter((c) => c.z >= SYNC_Z_MIN).slice(0, MAX_DECODES);
  for (const c of tries) {
    attempts++;
    const decoded = decodeCandidate(c, layout);
    if (!decoded) continue;
    // Frame j of this candidate is period slot (j + shift); slot 0 starts a period,
    // and a period's first frame begins H before the period's start (embedding origin −H).
    const j0 = (PERIOD_FRAMES - c.shift) % PERIOD_FRAMES;
    const periodSamples = PERIOD_FRAMES * H;
    const start = (((c.offset + j0 * H + H) % periodSamples) + periodSamples) % periodSamples;
    const detection: Detection = {
      payload: new DataView(decoded.payload.buffer).getBigUint64(0),
      payloadHex: hex(decoded.payload),
      syncZ: round2(c.z),
      confidence: round2(decoded.confidence),
      offsetSec: start / WATERMARK_SAMPLE_RATE,
      periodSec: PERIOD_SEC,
      elapsedMs: Math.round(performance.now() - started),
    };
    return { detection, bestSyncZ: round2(bestFine.z), decodeAttempts: attempts };
  }
  return { detection: null, bestSyncZ: round2(bestFine.z), decodeAttempts: attempts };
}

/**
 * Looks for a mark made with `key` anywhere in `pcm` (interleaved, 48 kHz, 1 or
 * 2 channels; mono downmixes and excerpts are fine). Returns the payload, or
 * null when there is no mark (or it was made with another key). Throws
 * WatermarkError on bad input, including audio shorter than MIN_DETECT_SEC.
 */
export function detectWatermark(pcm: Float32Array, options: DetectOptions): Detection | null {
  return inspectWatermark(pcm, options).detection;
}
