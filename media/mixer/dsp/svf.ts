// The state-variable filter in its trapezoidal (TPT, "zero-delay feedback")
// form after Zavalishin and Andrew Simper (Cytomic, "SvfLinearTrapOptimised2").
// Unlike a direct-form biquad, its states are integrator outputs, so moving the
// cutoff or the gain every sample neither blows up nor thumps; one core serves
// low-/high-pass, shelves and bells through the output mix
//   y = m0·x + m1·band + m2·low.
// A unit with m = (1, 0, 0) is the identity, which lets an owner fade a filter
// in and out (dry↔filtered) by moving m alone, and bypass it once it is settled.

/** tan(π f / fs) with f kept inside (0, 0.49 fs) so that the pre-warp stays finite. */
export function prewarp(hz: number, sampleRate: number): number {
  const f = hz < 1 ? 1 : hz > 0.49 * sampleRate ? 0.49 * sampleRate : hz;
  return Math.tan((Math.PI * f) / sampleRate);
}

// States beyond this are not music: the filter is reset rather than left to spread NaN or overflow.
const STATE_LIMIT = 1e12;
// Below this a state is flushed to zero so that a decaying filter never reaches subnormal numbers.
const DENORMAL_FLOOR = 1e-20;

/**
 * A stereo SVF processing interleaved frames in place. Coefficients are set
 * once per block; when they changed since the last block, the block ramps
 * them per sample (the pre-warped g and damping k, then the feedback gains
 * from those, so that every instant is a stable filter).
 */
export class StereoSvf {
  private g = 0.1;
  private k = 1.4142135623730951;
  private m0 = 1;
  private m1 = 0;
  private m2 = 0;
  // The coefficients in force at the end of the previous block.
  private pg = 0.1;
  private pk = 1.4142135623730951;
  private pm0 = 1;
  private pm1 = 0;
  private pm2 = 0;
  private s1l = 0;
  private s2l = 0;
  private s1r = 0;
  private s2r = 0;

  /** Sets the coefficients reached at the end of the next processed block. */
  set(g: number, k: number, m0: number, m1: number, m2: number): void {
    this.g = g;
    this.k = k;
    this.m0 = m0;
    this.m1 = m1;
    this.m2 = m2;
  }

  /** Makes the next block use the current coefficients throughout (no ramp from the old ones). */
  jump(): void {
    this.pg = this.g;
    this.pk = this.k;
    this.pm0 = this.m0;
    this.pm1 = this.m1;
    this.pm2 = this.m2;
  }

  /** Resonant low-pass; amount 0 is the identity, 1 the full filter. */
  lowpass(g: number, q: number, amount: number): void {
    this.set(g, 1 / q, 1 - amount, 0, amount);
  }

  /** Resonant high-pass (x − k·band − low); amount 0 is the identity. */
  highpass(g: number, q: number, amount: number): void {
    const k = 1 / q;
    this.set(g, k, 1, -amount * k, -amount);
  }

  /** Low shelf: gain 10^(dB/20) below the corner, unity above. */
  lowShelf(g: number, q: number, gainDb: number): void {
    const a = Math.pow(10, gainDb / 40);
    const k = 1 / q;
    this.set(g / Math.sqrt(a), k, 1, k * (a - 1), a * a - 1);
  }

  /** Peaking bell: gain 10^(dB/20) at the centre, constant-Q in both directions. */
  bell(g: number, q: number, gainDb: number): void {
    const a = Math.pow(10, gainDb / 40);
    const k = 1 / (q * a);
    this.set(g, k, 1, k * (a * a - 1), 0);
  }

  /** High shelf: gain 10^(dB/20) above the corner, unity below. */
  highShelf(g: number, q: number, gainDb: number): void {
    const a = Math.pow(10, gainDb / 40);
    const k = 1 / q;
    this.set(g * Math.sqrt(a), k, a * a, k * (1 - a) * a, 1 - a * a);
  }

  reset(): void {
    this.s1l = 0;
    this.s2l = 0;
    this.s1r = 0;
    this.s2r = 0;
  }

  /** Filters `frames` interleaved stereo frames of `buf` in place. */
  process(buf: Float64Array, frames: number): void {
    let s1l = this.s1l;
    let s2l = this.s2l;
    let s1r = this.s1r;
    let s2r = this.s2r;
    const n2 = frames * 2;
    if (this.pg === this.g && this.pk === this.k && this.pm0 === this.m0 && this.pm1 === this.m1 && this.pm2 === this.m2) {
      const g = this.g;
      const a1 = 1 / (1 + g * (g + this.k));
      const a2 = g * a1;
      const a3 = g * a2;
      const m0 = this.m0;
      const m1 = this.m1;
      const m2 = this.m2;
      for (let j = 0; j < n2; j += 2) {
        const xl = buf[j]!;
        const xr = buf[j + 1]!;
        const v3l = xl - s2l;
        const v1l = a1 * s1l + a2 * v3l;
        const v2l = s2l + a2 * s1l + a3 * v3l;
        s1l = 2 * v1l - s1l;
        s2l = 2 * v2l - s2l;
        buf[j] = m0 * xl + m1 * v1l + m2 * v2l;
        const v3r = xr - s2r;
        const v1r = a1 * s1r + a2 * v3r;
        const v2r = s2r + a2 * s1r + a3 * v3r;
        s1r = 2 * v1r - s1r;
        s2r = 2 * v2r - s2r;
        buf[j + 1] = m0 * xr + m1 * v1r + m2 * v2r;
      }
    } else {
      const inv = 1 / frames;
      const dg = (this.g - this.pg) * inv;
      const dk = (this.k - this.pk) * inv;
      const dm0 = (this.m0 - this.pm0) * inv;
      const dm1 = (this.m1 - this.pm1) * inv;
      const dm2 = (this.m2 - this.pm2) * inv;
      let g = this.pg;
      let k = this.pk;
      let m0 = this.pm0;
      let m1 = this.pm1;
      let m2 = this.pm2;
      for (let j = 0; j < n2; j += 2) {
        g += dg;
        k += dk;
        m0 += dm0;
        m1 += dm1;
        m2 += dm2;
        const a1 = 1 / (1 + g * (g + k));
        const a2 = g * a1;
        const a3 = g * a2;
        const xl = buf[j]!;
        const xr = buf[j + 1]!;
        const v3l = xl - s2l;
        const v1l = a1 * s1l + a2 * v3l;
        const v2l = s2l + a2 * s1l + a3 * v3l;
        s1l = 2 * v1l - s1l;
        s2l = 2 * v2l - s2l;
        buf[j] = m0 * xl + m1 * v1l + m2 * v2l;
        const v3r = xr - s2r;
        const v1r = a1 * s1r + a2 * v3r;
        const v2r = s2r + a2 * s1r + a3 * v3r;
        s1r = 2 * v1r - s1r;
        s2r = 2 * v2r - s2r;
        buf[j + 1] = m0 * xr + m1 * v1r + m2 * v2r;
      }
      this.jump();
    }
    // Self-protection, once per block: a non-finite or runaway state resets the
    // filter; a vanishing one is flushed to zero (no subnormal stalls).
    if (!(Math.abs(s1l) + Math.abs(s2l) + Math.abs(s1r) + Math.abs(s2r) < STATE_LIMIT)) {
      s1l = s2l = s1r = s2r = 0;
    } else {
      if (Math.abs(s1l) < DENORMAL_FLOOR) s1l = 0;
      if (Math.abs(s2l) < DENORMAL_FLOOR) s2l = 0;
      if (Math.abs(s1r) < DENORMAL_FLOOR) s1r = 0;
      if (Math.abs(s2r) < DENORMAL_FLOOR) s2r = 0;
    }
    this.s1l = s1l;
    this.s2l = s2l;
    this.s1r = s1r;
    this.s2r = s2r;
  }
}
