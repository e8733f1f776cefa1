// The room's mixer: the release's stems in, one stereo mix out, in fixed
// blocks. The same code runs live (process() block by block, as a room's
// stream needs it) and offline (render-offline.ts), so a clip renders the
// samples the room heard.
//
// Signal flow, per output block of `blockFrames` (default 480 = 10 ms at
// 48 kHz: one Opus 20 ms frame is two blocks, and 10 ms bounds how late a
// control change is picked up):
//
//   source transport (read head, region wrap, crossfaded seeks)
//     → per stem: EQ (low shelf 250 Hz, bell 1 kHz, high shelf 4 kHz) → HP → LP → gain/mute/solo → pan
//     → mix bus (non-finite samples zeroed)
//     → tempo/pitch (WSOLA + resampler; bypassed exactly at tempo 1, pitch 0)
//     → filter sweep → delay → reverb → master gain × play/pause ramp
//     → look-ahead limiter (ceiling −1 dBFS) → float32 out
//
// Parameters come in through setState() and are read when the next block
// starts; each is smoothed (dsp/smoother.ts), and each effect is skipped while
// it sits settled at its neutral value, so a neutral room costs a copy and an
// add per stem. Nothing allocates per block, nothing reads a clock or a random
// source: the output is a pure function of the stems and the sequence of
// (block, state), which is what makes live and offline bit-identical.
//
// Position: the mixer keeps its own read head, advancing at the tempo, and
// compares it with the state's targetSourceSec at each block; it jumps
// (crossfaded) only when they differ by more than SEEK_DRIFT_SEC, so ordinary
// jitter in the room's clock never causes a jump. While tempo/pitch is
// engaged the read head runs ahead of what is heard by the stretcher's
// look-ahead (20–40 ms); positions and seeks account for it.
import { MASTER_CONTROLS } from '../../shared/controls.ts';
import { StereoDelay } from './dsp/delay.ts';
import { LookaheadLimiter } from './dsp/limiter.ts';
import { TimePitch } from './dsp/pitch-shift.ts';
import { FreeverbReverb, reverbFeedback } from './dsp/reverb.ts';
import { Smoother, finiteIn } from './dsp/smoother.ts';
import { StereoSvf, prewarp } from './dsp/svf.ts';
import type { StretchFeed } from './dsp/time-stretch.ts';
import type { MixerState } from './mixer-state.ts';
import { SourceTransport } from './source-transport.ts';
import { StemChannel, dbToGain } from './stem-channel.ts';

export interface MixerStem {
  readonly id: string;
  /** Interleaved stereo float PCM at the mixer's sample rate. */
  readonly pcm: Float32Array;
}

export interface MixerOptions {
  sampleRate: number;
  stems: readonly MixerStem[];
  /** The release's tempo for the synced delay; null (or nonsense) means 120. */
  bpm: number | null;
  /** Frames per block; default 10 ms. Live and offline must use the same value to match. */
  blockFrames?: number;
}

export const DEFAULT_BLOCK_SEC = 0.01;
/** Further than this from the room's transport, the mixer jumps to it. */
export const SEEK_DRIFT_SEC = 0.06;
/** Length of the crossfade on seeks and loop wraps. */
export const SEEK_FADE_SEC = 0.01;
/** Length of the play/pause ramp. */
export const PLAY_RAMP_SEC = 0.005;
export const LIMITER_CEILING_DB = -1;
const LIMITER_LOOKAHEAD_SEC = 0.002;
const LIMITER_RELEASE_SEC = 0.08;
export const FALLBACK_BPM = 120;
const MIN_REGION_SEC = 0.25;
const MAX_DELAY_SEC = 3;
// WSOLA: 30 ms segments joined by 10 ms crossfades, each moved by up to ±12 ms.
// Longer segments splice less often (fewer artefacts) but add look-ahead.
const STRETCH_HOP_SEC = 0.03;
const STRETCH_OVERLAP_SEC = 0.01;
const STRETCH_TOLERANCE_SEC = 0.012;
// The filter sweep: a low-pass from 20 kHz down to 80 Hz, or a high-pass from 20 Hz up to 8 kHz, exponential in the knob.
const SWEEP_LP_TOP_HZ = 20000;
const SWEEP_LP_BOTTOM_HZ = 80;
const SWEEP_HP_BOTTOM_HZ = 20;
const SWEEP_HP_TOP_HZ = 8000;
const SWEEP_Q = 1.2;
/** Within |knob| < 1/20 the sweep filter fades in, so that 0 is exactly "no filter" and crossing it never clicks. */
const SWEEP_FADE_SLOPE = 20;

const MODE_BYPASS = 0;
const MODE_ACTIVE = 1;
/** Handing back from tempo/pitch to bypass, block 1: the read head goes back to what is heard, the strips warm up. */
const MODE_WARMUP = 2;
/** Block 2: crossfade from the stretcher's output to the direct mix at the same position. */
const MODE_HANDOVER = 3;

const M = MASTER_CONTROLS;
const EMPTY: Readonly<Record<string, unknown>> = Object.freeze({});

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null;
}

function ratioOf(semitones: number): number {
  return Math.pow(2, semitones / 12);
}

export class Mixer {
  readonly sampleRate: number;
  readonly blockFrames: number;
  /** Length of the longest stem. */
  readonly durationSec: number;
  readonly bpm: number;
  private readonly totalFrames: number;
  private readonly channels: StemChannel[] = [];
  private readonly transport: SourceTransport;
  private readonly timePitch: TimePitch;
  private readonly feed: StretchFeed;
  private readonly bus: Float64Array;
  private readonly chunk: Float64Array;
  private readonly dry: Float64Array;
  private readonly handoverFade: Float64Array;
  private readonly tempo: Smoother;
  private readonly pitch: Smoother;
  private readonly masterGain: Smoother;
  private readonly reverbMix: Smoother;
  private readonly reverbFb: Smoother;
  private readonly delayMix: Smoother;
  private readonly delayFb: Smoother;
  private readonly delayTime: Smoother;
  private readonly sweep: Smoother;
  private readonly sweepSvf = new StereoSvf();
  private sweepOn = false;
  private delayBeats: number = M.delayBeats.neutral;
  private readonly delay: StereoDelay;
  private readonly reverb: FreeverbReverb;
  private readonly limiter: LookaheadLimiter;
  private readonly playStep: number;
  private readonly driftFrames: number;
  private pending: MixerState | null = null;
  private playing = false;
  /** Gain of the play/pause ramp. */
  private play = 0;
  /** Paused and fully silent: blocks output zeros at no cost. */
  private isIdle = true;
  private silentBlocks = 0;
  private mode = MODE_BYPASS;

  constructor(options: MixerOptions) {
    const sr = options.sampleRate;
    if (!Number.isInteger(sr) || sr < 8000 || sr > 192000) throw new RangeError(`sampleRate must be a whole number of Hz from 8000 to 192000, got ${sr}`);
    const block = options.blockFrames ?? Math.round(DEFAULT_BLOCK_SEC * sr);
    if (!Number.isInteger(block) || block < 16 || block > 8192) throw new RangeError(`blockFrames must be a whole number from 16 to 8192, got ${block}`);
    if (options.stems.length === 0) throw new RangeError('a mixer needs at least one stem');
    this.sampleRate = sr;
    this.blockFrames = block;
    const bpm = options.bpm;
    this.bpm = typeof bpm === 'number' && bpm > 0 && Number.isFinite(bpm) ? Math.min(400, Math.max(20, bpm)) : FALLBACK_BPM;
    const ids = new Set<string>();
    let total = 0;
    for (const stem of options.stems) {
      if (ids.has(stem.id)) throw new RangeError(`stem "${stem.id}" is given twice`);
      ids.add(stem.id);
      if (!(stem.pcm instanceof Float32Array) || stem.pcm.length % 2 !== 0) throw new RangeError(`stem "${stem.id}" must be interleaved stereo Float32Array PCM`);
      this.channels.push(new StemChannel(stem.id, stem.pcm, sr, block));
      total = Math.max(total, stem.pcm.length / 2);
    }
    this.totalFrames = Math.max(1, total);
    this.durationSec = this.totalFrames / sr;

    this.transport = new SourceTransport(Math.round(SEEK_FADE_SEC * sr));
    this.transport.setRegion(0, Math.max(this.totalFrames, Math.round(MIN_REGION_SEC * sr)));
    const overlap = Math.max(8, Math.round((STRETCH_OVERLAP_SEC * sr) / 8) * 8);
    this.timePitch = new TimePitch(sr, Math.max(overlap, Math.round(STRETCH_HOP_SEC * sr)), overlap, Math.round(STRETCH_TOLERANCE_SEC * sr));
    // The stretcher pulls source chunks through this; created once, never in a loop.
    this.feed = { feedStretch: () => this.feedStretch() };
    this.bus = new Float64Array(block * 2);
    this.chunk = new Float64Array(block * 2);
    this.dry = new Float64Array(block * 2);
    this.handoverFade = new Float64Array(block);
    for (let i = 0; i < block; i++) this.handoverFade[i] = 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / block);

    const blockSec = block / sr;
    this.tempo = new Smoother(1, 0.05, blockSec, 1e-5);
    this.pitch = new Smoother(0, 0.05, blockSec, 1e-4);
    this.masterGain = new Smoother(1, 0.015, blockSec, 1e-5);
    this.reverbMix = new Smoother(0, 0.02, blockSec, 1e-4);
    this.reverbFb = new Smoother(reverbFeedback(M.reverbSize.neutral), 0.05, blockSec, 1e-5);
    this.delayMix = new Smoother(0, 0.02, blockSec, 1e-4);
    this.delayFb = new Smoother(M.delayFeedback.neutral, 0.02, blockSec, 1e-4);
    this.delayTime = new Smoother(this.delayFrames(1), 0.08, blockSec, 0.01);
    this.sweep = new Smoother(0, 0.03, blockSec, 1e-4);
    this.delay = new StereoDelay(sr, MAX_DELAY_SEC);
    this.reverb = new FreeverbReverb(sr, block);
    this.limiter = new LookaheadLimiter(sr, LIMITER_CEILING_DB, LIMITER_LOOKAHEAD_SEC, LIMITER_RELEASE_SEC);
    this.playStep = 1 / Math.max(1, Math.round(PLAY_RAMP_SEC * sr));
    this.driftFrames = SEEK_DRIFT_SEC * sr;
  }

  /** The state to follow from the next block on (read when that block starts; the last call before it wins). */
  setState(state: MixerState): void {
    if (isObject(state)) this.pending = state;
  }

  /**
   * Mixes `frames` frames (a whole number of blocks) into `out` as interleaved
   * stereo float32, every sample within ±10^(−1/20).
   */
  process(out: Float32Array, frames: number): void {
    const n = this.blockFrames;
    if (!Number.isInteger(frames) || frames <= 0 || frames % n !== 0) throw new RangeError(`frames must be a positive multiple of ${n}, got ${frames}`);
    if (out.length < frames * 2) throw new RangeError(`out holds ${out.length} samples; ${frames * 2} are needed`);
    for (let f = 0; f < frames; f += n) this.processBlock(out, f * 2);
  }

  /** Where in the piece the music being heard is, in seconds (what the room's transport is compared with). */
  get sourceSec(): number {
    return this.ownFrame() / this.sampleRate;
  }

  /** Frames between a source frame being read and it leaving process(): the limiter's look-ahead, plus the stretcher's while engaged. */
  get latencyFrames(): number {
    const stretch = this.mode === MODE_BYPASS ? 0 : Math.round(this.timePitch.bufferedInput / this.tempo.end);
    return this.limiter.latencyFrames + stretch;
  }

  /** How far the limiter pulled the last block down, in dB (0 when it did nothing): a meter for the room. */
  get limiterReductionDb(): number {
    return Math.max(0, -20 * Math.log10(this.limiter.minGain));
  }

  /** Paused and silent: process() only writes zeros. */
  get idle(): boolean {
    return this.isIdle;
  }

  /**
   * Drops all sound in flight (effect tails, look-aheads, a fade) and goes
   * silent at once, e.g. when a room stops streaming. The next block that
   * plays starts afresh, with a fade-in, at the position of the state given
   * then (or where the mixer was).
   */
  reset(): void {
    this.isIdle = true;
    this.silentBlocks = 0;
    this.play = 0;
    this.mode = MODE_BYPASS;
    this.transport.jump(this.wrap(this.transport.readPos));
  }

  // ------------------------------------------------------------------ per block

  private processBlock(out: Float32Array, offset: number): void {
    this.applyState();
    const n = this.blockFrames;
    if (this.isIdle) {
      if (!this.playing) {
        out.fill(0, offset, offset + n * 2);
        return;
      }
      this.resume();
    }
    this.stepMaster();
    this.produce();
    this.masterChain();
    this.limiter.process(this.bus, n, out, offset);
    // Idle once the ramp has been at zero for two whole blocks: by then the limiter's delay line holds only silence.
    if (!this.playing && this.play === 0) {
      if (++this.silentBlocks >= 2) this.isIdle = true;
    } else this.silentBlocks = 0;
  }

  private applyState(): void {
    const s = this.pending;
    if (s === null) return;
    this.pending = null;
    const strips = isObject(s.stems) ? s.stems : EMPTY;
    let anySolo = false;
    for (const ch of this.channels) {
      const strip = Object.hasOwn(strips, ch.id) ? strips[ch.id] : undefined;
      if (isObject(strip) && strip.solo === true) anySolo = true;
    }
    for (const ch of this.channels) {
      const strip = Object.hasOwn(strips, ch.id) ? strips[ch.id] : undefined;
      const mute = isObject(strip) && strip.mute === true;
      const solo = isObject(strip) && strip.solo === true;
      // Mute wins over solo; any solo silences every stem that is not soloed.
      ch.setTargets(strip, !mute && (!anySolo || solo));
    }
    const m = isObject(s.master) ? (s.master as Record<string, unknown>) : EMPTY;
    this.tempo.target = finiteIn(m.tempo, M.tempo.min, M.tempo.max, M.tempo.neutral);
    this.pitch.target = finiteIn(m.pitchSemitones, M.pitchSemitones.min, M.pitchSemitones.max, M.pitchSemitones.neutral);
    this.masterGain.target = dbToGain(finiteIn(m.gainDb, M.gainDb.min, M.gainDb.max, M.gainDb.neutral));
    this.reverbMix.target = finiteIn(m.reverbMix, M.reverbMix.min, M.reverbMix.max, M.reverbMix.neutral);
    this.reverbFb.target = reverbFeedback(finiteIn(m.reverbSize, M.reverbSize.min, M.reverbSize.max, M.reverbSize.neutral));
    this.delayMix.target = finiteIn(m.delayMix, M.delayMix.min, M.delayMix.max, M.delayMix.neutral);
    this.delayFb.target = finiteIn(m.delayFeedback, M.delayFeedback.min, M.delayFeedback.max, M.delayFeedback.neutral);
    this.delayBeats = finiteIn(m.delayBeats, M.delayBeats.min, M.delayBeats.max, M.delayBeats.neutral);
    this.delayTime.target = this.delayFrames(this.tempo.target);
    this.sweep.target = finiteIn(m.filterSweep, M.filterSweep.min, M.filterSweep.max, M.filterSweep.neutral);
    this.playing = s.playing === true;
    this.applyRegion(s.region);
    this.follow(s.targetSourceSec);
  }

  private applyRegion(region: unknown): void {
    const sr = this.sampleRate;
    const dur = this.durationSec;
    const r = isObject(region) ? region : EMPTY;
    let start = finiteIn(r.startSec, 0, dur, 0);
    let end = finiteIn(r.endSec, 0, dur, dur);
    if (end - start < MIN_REGION_SEC) {
      // Too short (or reversed) to loop without stutter: the shortest region there, inside the piece where it fits.
      end = Math.min(Math.max(start, end, 0) + MIN_REGION_SEC, Math.max(dur, MIN_REGION_SEC));
      start = Math.max(0, end - MIN_REGION_SEC);
    }
    this.transport.setRegion(Math.round(start * sr), Math.round(end * sr));
  }

  /** Keeps the read head with the room's transport: a crossfaded jump when it drifted, an instant one while silent. */
  private follow(targetSec: unknown): void {
    const t = this.transport;
    const S = t.regionStart;
    const len = t.regionEnd - S;
    const hasTarget = typeof targetSec === 'number' && Number.isFinite(targetSec);
    const target = hasTarget ? Math.min(t.regionEnd - 1, Math.max(S, Math.round(targetSec * this.sampleRate))) : S;
    if (this.isIdle) {
      if (hasTarget) t.jump(target);
      else if (t.readPos < S || t.readPos >= t.regionEnd) t.jump(S);
      return;
    }
    if (!hasTarget || !this.playing || (this.mode !== MODE_BYPASS && this.mode !== MODE_ACTIVE)) return;
    const look = this.mode === MODE_ACTIVE ? this.timePitch.bufferedInput : 0;
    const head = t.readPos;
    let d = (target - (head - look)) % len;
    if (d < 0) d += len;
    if (d > len / 2) d -= len;
    if (head < S || head > t.regionEnd || Math.abs(d) > this.driftFrames) t.seek(this.wrap(Math.round(target + look)));
  }

  private resume(): void {
    this.isIdle = false;
    this.silentBlocks = 0;
    this.play = 0;
    this.mode = MODE_BYPASS;
    for (const ch of this.channels) {
      ch.reset();
      ch.snap();
    }
    this.tempo.snap();
    this.pitch.snap();
    this.masterGain.snap();
    this.reverbMix.snap();
    this.reverbFb.snap();
    this.delayMix.snap();
    this.delayFb.snap();
    this.delayTime.snap();
    this.sweep.snap();
    this.sweepSvf.reset();
    this.sweepOn = false;
    this.delay.reset();
    this.reverb.reset();
    this.limiter.reset();
  }

  private stepMaster(): void {
    this.tempo.step();
    this.pitch.step();
    this.masterGain.step();
    this.reverbMix.step();
    this.reverbFb.step();
    this.delayMix.step();
    this.delayFb.step();
    this.delayTime.step();
    this.sweep.step();
  }

  /** Fills the bus with the block's mix at output rate: direct, through tempo/pitch, or handing over between them. */
  private produce(): void {
    const n = this.blockFrames;
    const tp = this.timePitch;
    const neutral = this.tempo.target === 1 && this.pitch.target === 0;
    if (this.mode === MODE_BYPASS && !neutral) {
      // Engage: the stretcher's first output frame is the next source frame, so the sound continues seamlessly.
      tp.reset(ratioOf(this.pitch.start));
      this.mode = MODE_ACTIVE;
    } else if (this.mode === MODE_ACTIVE && neutral && this.tempo.settled && this.pitch.settled) {
      this.mode = MODE_WARMUP;
    }
    switch (this.mode) {
      case MODE_BYPASS:
        this.renderSource(this.bus);
        return;
      case MODE_ACTIVE:
        tp.setBlock(this.tempo.end, ratioOf(this.pitch.start), ratioOf(this.pitch.end));
        tp.produce(this.bus, n, this.feed);
        return;
      case MODE_WARMUP: {
        // Back to bypass without skipping what the look-ahead holds: the stretcher
        // (now a plain continuation) plays out two blocks from its buffer while the
        // read head goes back to where the sound is and the strips settle there.
        tp.stretcher.draining = true;
        tp.setBlock(1, 1, 1);
        tp.prefeed(2 * n + 16, this.feed);
        const heard = this.transport.readPos - tp.bufferedInput;
        this.transport.seek(this.wrap(Math.round(heard)));
        tp.produce(this.bus, n, this.feed);
        this.renderSource(this.dry);
        this.mode = MODE_HANDOVER;
        return;
      }
      default: {
        tp.produce(this.bus, n, this.feed);
        const dry = this.dry;
        this.renderSource(dry);
        const bus = this.bus;
        const fade = this.handoverFade;
        for (let i = 0, j = 0; i < n; i++, j += 2) {
          const w = fade[i]!;
          bus[j] = bus[j]! + (dry[j]! - bus[j]!) * w;
          bus[j + 1] = bus[j + 1]! + (dry[j + 1]! - bus[j + 1]!) * w;
        }
        this.mode = MODE_BYPASS;
      }
    }
  }

  /** One block of source: the transport's plan through every strip, summed. */
  private renderSource(dst: Float64Array): void {
    const n = this.blockFrames;
    const n2 = n * 2;
    this.transport.planChunk(n);
    dst.fill(0, 0, n2);
    for (const ch of this.channels) ch.render(this.transport, n, dst);
    // Self-protection: x − x is NaN exactly for NaN and ±Infinity; such samples become silence here, before any state can keep them.
    let bad = 0;
    for (let j = 0; j < n2; j++) bad += dst[j]! - dst[j]!;
    if (bad !== 0) {
      for (let j = 0; j < n2; j++) if (dst[j]! - dst[j]! !== 0) dst[j] = 0;
    }
  }

  private feedStretch(): void {
    this.renderSource(this.chunk);
    this.timePitch.stretcher.push(this.chunk, this.blockFrames);
  }

  private masterChain(): void {
    const n = this.blockFrames;
    const bus = this.bus;
    const sw = this.sweep;
    if (sw.settled && sw.end === 0) {
      if (this.sweepOn) this.sweepSvf.reset();
      this.sweepOn = false;
    } else {
      if (!this.sweepOn) {
        this.designSweep(sw.start);
        this.sweepSvf.jump();
        this.sweepOn = true;
      }
      if (sw.moving) this.designSweep(sw.end);
      this.sweepSvf.process(bus, n);
    }
    const dm = this.delayMix;
    if (dm.settled && dm.end === 0) this.delay.reset();
    else this.delay.process(bus, n, this.delayTime.start, this.delayTime.end, this.delayFb.start, this.delayFb.end, dm.start, dm.end);
    const rm = this.reverbMix;
    if (rm.settled && rm.end === 0) this.reverb.reset();
    else this.reverb.process(bus, n, rm.start, rm.end, this.reverbFb.start, this.reverbFb.end);

    const g0 = this.masterGain.start;
    const g1 = this.masterGain.end;
    const playTarget = this.playing ? 1 : 0;
    let p = this.play;
    if (g0 === 1 && g1 === 1 && p === 1 && playTarget === 1) return;
    const dg = (g1 - g0) / n;
    // Signed step, and a branch-free clamp: V8 boxes (allocates) a double that an
    // untaken branch without type feedback may produce, once per sample.
    const step = playTarget === 1 ? this.playStep : -this.playStep;
    let g = g0;
    for (let j = 0, n2 = n * 2; j < n2; j += 2) {
      g += dg;
      p = Math.max(0, Math.min(1, p + step));
      const k = g * p;
      bus[j] = bus[j]! * k;
      bus[j + 1] = bus[j + 1]! * k;
    }
    this.play = p;
  }

  private designSweep(x: number): void {
    const amount = Math.min(1, Math.abs(x) * SWEEP_FADE_SLOPE);
    if (x < 0) {
      const hz = SWEEP_LP_TOP_HZ * Math.pow(SWEEP_LP_BOTTOM_HZ / SWEEP_LP_TOP_HZ, -x);
      this.sweepSvf.lowpass(prewarp(hz, this.sampleRate), SWEEP_Q, amount);
    } else {
      const hz = SWEEP_HP_BOTTOM_HZ * Math.pow(SWEEP_HP_TOP_HZ / SWEEP_HP_BOTTOM_HZ, x);
      this.sweepSvf.highpass(prewarp(hz, this.sampleRate), SWEEP_Q, amount);
    }
  }

  /** Delay time in frames for the current beat division at `tempo` (the beat shortens as the tempo rises). */
  private delayFrames(tempo: number): number {
    const sec = (this.delayBeats * 60) / (this.bpm * tempo);
    return Math.min(MAX_DELAY_SEC * this.sampleRate, Math.max(1, sec * this.sampleRate));
  }

  /** The frame being heard (read head minus the stretcher's look-ahead), inside the region. */
  private ownFrame(): number {
    const look = this.mode === MODE_BYPASS ? 0 : this.timePitch.bufferedInput;
    return this.wrap(this.transport.readPos - look);
  }

  private wrap(frame: number): number {
    const S = this.transport.regionStart;
    const len = this.transport.regionEnd - S;
    let d = (frame - S) % len;
    if (d < 0) d += len;
    return S + d;
  }
}
