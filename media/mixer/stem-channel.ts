// One stem's channel strip: read (through the transport's plan), three-band
// EQ, resonant high-pass and low-pass, then gain and pan into the mix bus.
// Every unit at its neutral setting, once its smoother has settled, is skipped
// (and its state cleared), so a neutral strip is a copy and an add.
import { STEM_CONTROLS } from '../../shared/controls.ts';
import { Smoother, finiteIn } from './dsp/smoother.ts';
import { StereoSvf, prewarp } from './dsp/svf.ts';
import type { SourceTransport } from './source-transport.ts';

/** Corner frequencies of the EQ: DJ-mixer-like bands that leave the kick, the vocal and the air separable. */
export const EQ_LOW_HZ = 250;
export const EQ_MID_HZ = 1000;
export const EQ_HIGH_HZ = 4000;
const SHELF_Q = Math.SQRT1_2;
const MID_Q = 0.7;

const GAIN_TAU_SEC = 0.015;
const PAN_TAU_SEC = 0.02;
const EQ_TAU_SEC = 0.02;
const FILTER_TAU_SEC = 0.025;
/** Fade of a filter in or out of the signal path when its cutoff leaves or reaches "open". */
const AMOUNT_TAU_SEC = 0.01;

const C = STEM_CONTROLS;
const LOG2_LP_OPEN = Math.log2(C.lowpassHz.max);
const LOG2_HP_OPEN = Math.log2(C.highpassHz.min);

export function dbToGain(db: number): number {
  return Math.pow(10, db / 20);
}

/**
 * Stereo pan as an equal-power move of the far channel: panning left, the
 * right input crosses into the left output with gain sin(θ) and stays right
 * with cos(θ) (θ = |pan|·π/2); the near channel is untouched. Centre is the
 * identity (exactly), hard left puts everything in the left output, and for
 * uncorrelated channels the total power is constant.
 */
function panMatrix(pan: number, out: Float64Array): void {
  const theta = Math.abs(pan) * (Math.PI / 2);
  const cross = Math.sin(theta);
  const stay = Math.cos(theta);
  if (pan <= 0) {
    out[0] = 1; // L→L
    out[1] = cross; // R→L
    out[2] = 0; // L→R
    out[3] = stay; // R→R
  } else {
    out[0] = stay;
    out[1] = 0;
    out[2] = cross;
    out[3] = 1;
  }
}

export class StemChannel {
  readonly id: string;
  readonly frames: number;
  private readonly pcm: Float32Array;
  private readonly sampleRate: number;
  private readonly gain: Smoother;
  private readonly pan: Smoother;
  private readonly eqLow: Smoother;
  private readonly eqMid: Smoother;
  private readonly eqHigh: Smoother;
  private readonly lpOctave: Smoother;
  private readonly hpOctave: Smoother;
  private readonly q: Smoother;
  private readonly lpAmount: Smoother;
  private readonly hpAmount: Smoother;
  private readonly low = new StereoSvf();
  private readonly mid = new StereoSvf();
  private readonly high = new StereoSvf();
  private readonly hp = new StereoSvf();
  private readonly lp = new StereoSvf();
  private lowOn = false;
  private midOn = false;
  private highOn = false;
  private hpOn = false;
  private lpOn = false;
  private readonly gLow: number;
  private readonly gMid: number;
  private readonly gHigh: number;
  private readonly work: Float64Array;
  private readonly m0 = new Float64Array(4);
  private readonly m1 = new Float64Array(4);

  constructor(id: string, pcm: Float32Array, sampleRate: number, blockFrames: number) {
    this.id = id;
    this.pcm = pcm;
    this.frames = pcm.length >> 1;
    this.sampleRate = sampleRate;
    const blockSec = blockFrames / sampleRate;
    this.gain = new Smoother(1, GAIN_TAU_SEC, blockSec, 1e-5);
    this.pan = new Smoother(0, PAN_TAU_SEC, blockSec, 1e-4);
    this.eqLow = new Smoother(0, EQ_TAU_SEC, blockSec, 0.005);
    this.eqMid = new Smoother(0, EQ_TAU_SEC, blockSec, 0.005);
    this.eqHigh = new Smoother(0, EQ_TAU_SEC, blockSec, 0.005);
    this.lpOctave = new Smoother(LOG2_LP_OPEN, FILTER_TAU_SEC, blockSec, 1e-4);
    this.hpOctave = new Smoother(LOG2_HP_OPEN, FILTER_TAU_SEC, blockSec, 1e-4);
    this.q = new Smoother(C.filterQ.neutral, FILTER_TAU_SEC, blockSec, 1e-4);
    this.lpAmount = new Smoother(0, AMOUNT_TAU_SEC, blockSec, 1e-4);
    this.hpAmount = new Smoother(0, AMOUNT_TAU_SEC, blockSec, 1e-4);
    this.gLow = prewarp(EQ_LOW_HZ, sampleRate);
    this.gMid = prewarp(EQ_MID_HZ, sampleRate);
    this.gHigh = prewarp(EQ_HIGH_HZ, sampleRate);
    this.work = new Float64Array(blockFrames * 2);
  }

  /**
   * Takes the strip's controls (any shape: missing, non-numeric or out-of-range
   * values become neutral or clamped) and whether the stem is audible after
   * mute and solo.
   */
  setTargets(strip: unknown, audible: boolean): void {
    const s = (typeof strip === 'object' && strip !== null ? strip : {}) as Record<string, unknown>;
    const gainDb = finiteIn(s.gainDb, C.gainDb.min, C.gainDb.max, C.gainDb.neutral);
    this.gain.target = audible ? dbToGain(gainDb) : 0;
    this.pan.target = finiteIn(s.pan, C.pan.min, C.pan.max, C.pan.neutral);
    this.eqLow.target = finiteIn(s.eqLowDb, C.eqLowDb.min, C.eqLowDb.max, C.eqLowDb.neutral);
    this.eqMid.target = finiteIn(s.eqMidDb, C.eqMidDb.min, C.eqMidDb.max, C.eqMidDb.neutral);
    this.eqHigh.target = finiteIn(s.eqHighDb, C.eqHighDb.min, C.eqHighDb.max, C.eqHighDb.neutral);
    const lpHz = finiteIn(s.lowpassHz, C.lowpassHz.min, C.lowpassHz.max, C.lowpassHz.neutral);
    const hpHz = finiteIn(s.highpassHz, C.highpassHz.min, C.highpassHz.max, C.highpassHz.neutral);
    // The ends of the cutoff ranges mean "open": the filter fades out of the path.
    this.lpAmount.target = lpHz >= C.lowpassHz.max ? 0 : 1;
    this.hpAmount.target = hpHz <= C.highpassHz.min ? 0 : 1;
    this.lpOctave.target = Math.log2(lpHz);
    this.hpOctave.target = Math.log2(hpHz);
    this.q.target = finiteIn(s.filterQ, C.filterQ.min, C.filterQ.max, C.filterQ.neutral);
  }

  /** Jumps every control to its target (nothing is audible, e.g. on resume). */
  snap(): void {
    this.gain.snap();
    this.pan.snap();
    this.eqLow.snap();
    this.eqMid.snap();
    this.eqHigh.snap();
    this.lpOctave.snap();
    this.hpOctave.snap();
    this.q.snap();
    this.lpAmount.snap();
    this.hpAmount.snap();
  }

  reset(): void {
    this.low.reset();
    this.mid.reset();
    this.high.reset();
    this.hp.reset();
    this.lp.reset();
    this.lowOn = this.midOn = this.highOn = this.hpOn = this.lpOn = false;
  }

  /** Renders the transport's planned chunk of this stem through the strip and adds it to `mix`. */
  render(plan: SourceTransport, frames: number, mix: Float64Array): void {
    this.gain.step();
    this.pan.step();
    this.eqLow.step();
    this.eqMid.step();
    this.eqHigh.step();
    this.lpOctave.step();
    this.hpOctave.step();
    this.q.step();
    this.lpAmount.step();
    this.hpAmount.step();
    if (this.gain.settled && this.gain.end === 0) {
      // Silent (muted, or not soloed): skip everything; the filters restart clean when it comes back.
      if (this.lowOn || this.midOn || this.highOn || this.hpOn || this.lpOn) this.reset();
      return;
    }
    const work = this.work;
    this.read(plan, work);
    this.equalize(work, frames);
    this.filter(work, frames);
    this.addTo(mix, work, frames);
  }

  private read(plan: SourceTransport, work: Float64Array): void {
    const pcm = this.pcm;
    const total = this.frames;
    const fadeIn = plan.fadeIn;
    const fadeOut = plan.fadeOut;
    for (let s = 0; s < plan.segments; s++) {
      const len = plan.segLen[s]!;
      let o = plan.segDst[s]! * 2;
      const a = plan.segMain[s]!;
      const b = plan.segFading[s]!;
      if (b < 0) {
        if (a >= 0 && a + len <= total) {
          for (let i = a * 2, end = (a + len) * 2; i < end; i++) work[o++] = pcm[i]!;
        } else {
          for (let i = 0; i < len; i++, o += 2) {
            const f = a + i;
            const inside = f >= 0 && f < total;
            work[o] = inside ? pcm[f * 2]! : 0;
            work[o + 1] = inside ? pcm[f * 2 + 1]! : 0;
          }
        }
      } else {
        const at = plan.segFadeAt[s]!;
        for (let i = 0; i < len; i++, o += 2) {
          const gi = fadeIn[at + i]!;
          const go = fadeOut[at + i]!;
          const fa = a + i;
          const fb = b + i;
          const ina = fa >= 0 && fa < total;
          const inb = fb >= 0 && fb < total;
          work[o] = (ina ? pcm[fa * 2]! * gi : 0) + (inb ? pcm[fb * 2]! * go : 0);
          work[o + 1] = (ina ? pcm[fa * 2 + 1]! * gi : 0) + (inb ? pcm[fb * 2 + 1]! * go : 0);
        }
      }
    }
  }

  private equalize(work: Float64Array, frames: number): void {
    const lo = this.eqLow;
    if (lo.settled && lo.end === 0) {
      if (this.lowOn) this.low.reset();
      this.lowOn = false;
    } else {
      if (!this.lowOn) {
        this.low.lowShelf(this.gLow, SHELF_Q, lo.start);
        this.low.jump();
        this.lowOn = true;
      }
      if (lo.moving) this.low.lowShelf(this.gLow, SHELF_Q, lo.end);
      this.low.process(work, frames);
    }
    const mi = this.eqMid;
    if (mi.settled && mi.end === 0) {
      if (this.midOn) this.mid.reset();
      this.midOn = false;
    } else {
      if (!this.midOn) {
        this.mid.bell(this.gMid, MID_Q, mi.start);
        this.mid.jump();
        this.midOn = true;
      }
      if (mi.moving) this.mid.bell(this.gMid, MID_Q, mi.end);
      this.mid.process(work, frames);
    }
    const hi = this.eqHigh;
    if (hi.settled && hi.end === 0) {
      if (this.highOn) this.high.reset();
      this.highOn = false;
    } else {
      if (!this.highOn) {
        this.high.highShelf(this.gHigh, SHELF_Q, hi.start);
        this.high.jump();
        this.highOn = true;
      }
      if (hi.moving) this.high.highShelf(this.gHigh, SHELF_Q, hi.end);
      this.high.process(work, frames);
    }
  }

  private filter(work: Float64Array, frames: number): void {
    const sr = this.sampleRate;
    const q = this.q;
    const ha = this.hpAmount;
    const ho = this.hpOctave;
    if (ha.settled && ha.end === 0) {
      if (this.hpOn) this.hp.reset();
      this.hpOn = false;
    } else {
      if (!this.hpOn) {
        this.hp.highpass(prewarp(Math.pow(2, ho.start), sr), q.start, ha.start);
        this.hp.jump();
        this.hpOn = true;
      }
      if (ha.moving || ho.moving || q.moving) this.hp.highpass(prewarp(Math.pow(2, ho.end), sr), q.end, ha.end);
      this.hp.process(work, frames);
    }
    const la = this.lpAmount;
    const lo = this.lpOctave;
    if (la.settled && la.end === 0) {
      if (this.lpOn) this.lp.reset();
      this.lpOn = false;
    } else {
      if (!this.lpOn) {
        this.lp.lowpass(prewarp(Math.pow(2, lo.start), sr), q.start, la.start);
        this.lp.jump();
        this.lpOn = true;
      }
      if (la.moving || lo.moving || q.moving) this.lp.lowpass(prewarp(Math.pow(2, lo.end), sr), q.end, la.end);
      this.lp.process(work, frames);
    }
  }

  private addTo(mix: Float64Array, work: Float64Array, frames: number): void {
    const n2 = frames * 2;
    const g0 = this.gain.start;
    const g1 = this.gain.end;
    const p0 = this.pan.start;
    const p1 = this.pan.end;
    if (p0 === 0 && p1 === 0) {
      if (g0 === g1) {
        for (let j = 0; j < n2; j++) mix[j] = mix[j]! + work[j]! * g0;
      } else {
        const dg = (g1 - g0) / frames;
        let g = g0;
        for (let j = 0; j < n2; j += 2) {
          g += dg;
          mix[j] = mix[j]! + work[j]! * g;
          mix[j + 1] = mix[j + 1]! + work[j + 1]! * g;
        }
      }
      return;
    }
    const m0 = this.m0;
    const m1 = this.m1;
    panMatrix(p0, m0);
    panMatrix(p1, m1);
    const inv = 1 / frames;
    let ll = m0[0]! * g0;
    let rl = m0[1]! * g0;
    let lr = m0[2]! * g0;
    let rr = m0[3]! * g0;
    const dll = (m1[0]! * g1 - ll) * inv;
    const drl = (m1[1]! * g1 - rl) * inv;
    const dlr = (m1[2]! * g1 - lr) * inv;
    const drr = (m1[3]! * g1 - rr) * inv;
    for (let j = 0; j < n2; j += 2) {
      ll += dll;
      rl += drl;
      lr += dlr;
      rr += drr;
      const l = work[j]!;
      const r = work[j + 1]!;
      mix[j] = mix[j]! + l * ll + r * rl;
      mix[j + 1] = mix[j + 1]! + l * lr + r * rr;
    }
  }
}
