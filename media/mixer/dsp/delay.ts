// A stereo feedback delay ("echo") for the master bus. The delay time is set in
// frames once per block and glides there sample by sample, read with linear
// interpolation: a change of tempo or of the beat division bends the repeats
// like tape instead of clicking. A one-pole low-pass in the feedback path
// darkens each repeat, and with feedback ≤ 0.9 the loop always decays.

/** Corner of the low-pass in the feedback loop. */
const DAMPING_HZ = 6000;
/** Below this the echoes are inaudible by 160 dB; the unit clears and idles. */
const SILENCE = 1e-8;

export class StereoDelay {
  private readonly left: Float32Array;
  private readonly right: Float32Array;
  private readonly size: number;
  private write = 0;
  private lpL = 0;
  private lpR = 0;
  private readonly dampCoef: number;
  private silent = true;
  private quietFrames = 0;
  /** Longest delay the unit accepts, in frames. */
  readonly maxDelayFrames: number;

  constructor(sampleRate: number, maxDelaySec: number) {
    this.maxDelayFrames = Math.ceil(maxDelaySec * sampleRate);
    // Two frames of margin for the interpolation's second tap.
    this.size = this.maxDelayFrames + 2;
    this.left = new Float32Array(this.size);
    this.right = new Float32Array(this.size);
    this.dampCoef = 1 - Math.exp((-2 * Math.PI * DAMPING_HZ) / sampleRate);
  }

  reset(): void {
    if (!this.silent) this.clear();
  }

  private clear(): void {
    this.left.fill(0);
    this.right.fill(0);
    this.lpL = 0;
    this.lpR = 0;
    this.silent = true;
    this.quietFrames = 0;
  }

  /**
   * Adds the echoes of `buf` to it (interleaved stereo, in place). Delay (in
   * frames, ≥ 1), feedback and wet gain ramp from their block-start to their
   * block-end values.
   */
  process(buf: Float64Array, frames: number, delay0: number, delay1: number, fb0: number, fb1: number, mix0: number, mix1: number): void {
    let peakIn = 0;
    for (let j = 0, n2 = frames * 2; j < n2; j++) {
      peakIn = Math.max(peakIn, Math.abs(buf[j]!));
    }
    if (this.silent && peakIn === 0) return;
    this.silent = false;
    const left = this.left;
    const right = this.right;
    const size = this.size;
    const maxD = this.maxDelayFrames;
    const damp = this.dampCoef;
    const inv = 1 / frames;
    const dd = (delay1 - delay0) * inv;
    const dfb = (fb1 - fb0) * inv;
    const dmix = (mix1 - mix0) * inv;
    let d = delay0;
    let fb = fb0;
    let mix = mix0;
    let w = this.write;
    let lpL = this.lpL;
    let lpR = this.lpR;
    let peakOut = 0;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      d += dd;
      fb += dfb;
      mix += dmix;
      const dc = Math.min(maxD, Math.max(1, d));
      let r = w - dc;
      if (r < 0) r += size;
      const i0 = r | 0;
      const frac = r - i0;
      const i1 = i0 + 1 === size ? 0 : i0 + 1;
      const yl = left[i0]! + (left[i1]! - left[i0]!) * frac;
      const yr = right[i0]! + (right[i1]! - right[i0]!) * frac;
      lpL += (yl - lpL) * damp;
      lpR += (yr - lpR) * damp;
      const xl = buf[j]!;
      const xr = buf[j + 1]!;
      left[w] = xl + lpL * fb;
      right[w] = xr + lpR * fb;
      buf[j] = xl + yl * mix;
      buf[j + 1] = xr + yr * mix;
      peakOut = Math.max(peakOut, Math.abs(yl) + Math.abs(yr));
      if (++w === size) w = 0;
    }
    this.write = w;
    this.lpL = Math.abs(lpL) < 1e-20 ? 0 : lpL;
    this.lpR = Math.abs(lpR) < 1e-20 ? 0 : lpR;
    // Echoes that stayed inaudible for longer than the longest delay are gone:
    // clear and idle (never decaying into subnormals). A non-finite state clears at once.
    if (peakOut !== peakOut || lpL !== lpL || lpR !== lpR) this.clear();
    else if (peakOut < SILENCE && peakIn < SILENCE) {
      this.quietFrames += frames;
      if (this.quietFrames > maxD + frames) this.clear();
    } else this.quietFrames = 0;
  }
}
