// Look-ahead peak limiter, the last stage: no setting of the mixer can push the
// output past the ceiling.
//
// For each frame the gain that would put its peak exactly at the ceiling is
// g(t) = min(1, ceiling / peak(t)). The audio is delayed by W − 1 frames and
// multiplied by e(t), the W-frame moving average of r(t), where r(t) follows
// h(t) = min of g over the last W frames down at once and back up with a
// one-pole release. Every term of the average that covers the delayed frame u
// is ≤ g(u), so e(t)·peak(u) ≤ ceiling: a guarantee, not an estimate, and the
// gain curve is smooth (a linear attack ramp of W frames, no steps). A hard
// clamp at the ceiling after it only catches rounding and non-finite input.
//
// Artefacts: on a transient far above the ceiling the W-frame attack ramp and
// the release modulate low notes (soft distortion while it works); it is a
// safety limiter, not a mastering one.

/** Snaps a recovering gain onto exactly 1 below this distance (inaudible), so the idle path can return. */
const UNITY_SNAP = 1e-7;

export class LookaheadLimiter {
  readonly ceiling: number;
  /** Look-ahead window W in frames; the latency is W − 1. */
  readonly window: number;
  private readonly releaseCoef: number;
  private readonly delayL: Float64Array;
  private readonly delayR: Float64Array;
  private readonly delayMask: number;
  private readonly dequeT: Int32Array;
  private readonly dequeG: Float64Array;
  private readonly dequeMask: number;
  private head = 0;
  private tail = 0;
  private readonly rRing: Float64Array;
  private rIndex = 0;
  private r = 1;
  /** Frame counter (wraps at 2^31 through `| 0`, compared only by difference). */
  private t = 0;
  /** Frames in a row, up to now, that were finite and at or below the ceiling. */
  private cleanRun = 1 << 30;
  /** Gain reduction of the last block, for metering: the smallest gain applied. */
  minGain = 1;

  constructor(sampleRate: number, ceilingDb: number, lookaheadSec: number, releaseSec: number) {
    this.ceiling = Math.pow(10, ceilingDb / 20);
    this.window = Math.max(2, Math.round(lookaheadSec * sampleRate));
    this.releaseCoef = 1 - Math.exp(-1 / (releaseSec * sampleRate));
    let size = 1;
    while (size < this.window + 1) size <<= 1;
    this.delayL = new Float64Array(size);
    this.delayR = new Float64Array(size);
    this.delayMask = size - 1;
    this.dequeT = new Int32Array(size);
    this.dequeG = new Float64Array(size);
    this.dequeMask = size - 1;
    this.rRing = new Float64Array(this.window).fill(1);
  }

  get latencyFrames(): number {
    return this.window - 1;
  }

  reset(): void {
    this.delayL.fill(0);
    this.delayR.fill(0);
    this.head = 0;
    this.tail = 0;
    this.rRing.fill(1);
    this.rIndex = 0;
    this.r = 1;
    this.minGain = 1;
    this.cleanRun = 1 << 30;
  }

  /** Limits `frames` interleaved frames of `buf` into out[outOffset…] (float32, delayed by latencyFrames). */
  process(buf: Float64Array, frames: number, out: Float32Array, outOffset: number): void {
    const c = this.ceiling;
    // Hoisted: a `-c` inside a rarely taken branch has no type feedback, and V8 then boxes every sample (measured: a GC every ~70 blocks).
    const negC = -c;
    const W = this.window;
    const dl = this.delayL;
    const dr = this.delayR;
    const dmask = this.delayMask;
    const n2 = frames * 2;
    let peak = 0;
    // x − x is 0 for finite x and NaN for NaN or ±Infinity: one add finds either.
    let nonFinite = 0;
    for (let j = 0; j < n2; j++) {
      const x = buf[j]!;
      nonFinite += x - x;
      peak = Math.max(peak, Math.abs(x));
    }
    const clean = nonFinite === 0 && peak <= c;
    const cleanBefore = this.cleanRun;
    this.cleanRun = clean ? Math.min(cleanBefore + frames, 1 << 30) : 0;
    // Exact sum of the averaging window, recomputed per block so rounding never accumulates.
    const rRing = this.rRing;
    let sum = 0;
    for (let i = 0; i < W; i++) sum += rRing[i]!;
    let t = this.t;
    if (clean && cleanBefore >= W && this.r === 1 && sum === W && this.head === this.tail) {
      // Idle: nothing in the window or the delay line needs reducing, so the limiter is a pure delay.
      for (let i = 0, j = 0; i < frames; i++, j += 2) {
        const w = t & dmask;
        dl[w] = buf[j]!;
        dr[w] = buf[j + 1]!;
        const o = (t - W + 1) & dmask;
        out[outOffset + j] = dl[o]!;
        out[outOffset + j + 1] = dr[o]!;
        t = (t + 1) | 0;
      }
      this.rIndex = (this.rIndex + frames) % W;
      this.t = t;
      this.minGain = 1;
      return;
    }
    const qT = this.dequeT;
    const qG = this.dequeG;
    const qmask = this.dequeMask;
    const rel = this.releaseCoef;
    let head = this.head;
    let tail = this.tail;
    let r = this.r;
    let ri = this.rIndex;
    let minGain = 1;
    const invW = 1 / W;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      const xl = buf[j]!;
      const xr = buf[j + 1]!;
      const w = t & dmask;
      dl[w] = xl;
      dr[w] = xr;
      const p = Math.max(Math.abs(xl), Math.abs(xr));
      if (p > c) {
        const g = c / p;
        while (head !== tail && qG[(tail - 1) & qmask]! >= g) tail = (tail - 1) & qmask;
        qT[tail] = t;
        qG[tail] = g;
        tail = (tail + 1) & qmask;
      }
      while (head !== tail && ((t - qT[head]!) | 0) >= W) head = (head + 1) & qmask;
      const h = head === tail ? 1 : qG[head]!;
      if (h < r) r = h;
      else {
        r += (h - r) * rel;
        if (h - r < UNITY_SNAP && h === 1) r = 1;
      }
      sum += r - rRing[ri]!;
      rRing[ri] = r;
      if (++ri === W) ri = 0;
      const e = sum * invW;
      if (e < minGain) minGain = e;
      const o = (t - W + 1) & dmask;
      // The clamp only catches rounding (e·|x| ≤ c holds by construction); NaN (from non-finite input) fails both comparisons and becomes 0.
      const yl = Math.min(c, Math.max(negC, dl[o]! * e));
      const yr = Math.min(c, Math.max(negC, dr[o]! * e));
      out[outOffset + j] = yl === yl ? yl : 0;
      out[outOffset + j + 1] = yr === yr ? yr : 0;
      t = (t + 1) | 0;
    }
    this.head = head;
    this.tail = tail;
    this.r = r;
    this.rIndex = ri;
    this.t = t;
    this.minGain = minGain;
  }
}
