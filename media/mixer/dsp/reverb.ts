// Freeverb (Jezar at Dreampoint, public domain): eight parallel low-pass
// feedback combs per channel, then four series allpasses, the right channel's
// delays 23 samples longer for width. Tunings are scaled from 44.1 kHz.
// Known character: a bright, slightly metallic small-to-large room with some
// flutter on sharp transients; it is cheap (24 delay-line taps per frame) and
// its feedback changes smoothly with the size knob, which is why it is here.

const COMB_TUNING = [1116, 1188, 1277, 1356, 1422, 1491, 1557, 1617];
const ALLPASS_TUNING = [556, 441, 341, 225];
const STEREO_SPREAD = 23;
const TUNING_RATE = 44100;
const FIXED_GAIN = 0.015;
const ALLPASS_FEEDBACK = 0.5;
/** Comb damping (Freeverb's damp 0.5 × scaledamp 0.4). */
const DAMP = 0.2;
const ROOM_OFFSET = 0.7;
const ROOM_SCALE = 0.28;
/** Wet gain at mix 1: a send that, at full, is about as loud as the dry signal. */
const WET_SCALE = 1;
/** Below this the tail is inaudible by 160 dB and the unit is cleared and idles. */
const SILENCE = 1e-8;

/** Comb feedback for a room size in [0, 1]. */
export function reverbFeedback(size: number): number {
  return ROOM_OFFSET + ROOM_SCALE * size;
}

export class FreeverbReverb {
  private readonly combs: Float32Array[] = [];
  private readonly combIndex: Int32Array;
  private readonly combStore: Float64Array;
  private readonly allpasses: Float32Array[] = [];
  private readonly allpassIndex: Int32Array;
  private readonly input: Float64Array;
  private readonly accL: Float64Array;
  private readonly accR: Float64Array;
  /** Whether the delay lines hold only zeros (then the unit costs nothing until input arrives). */
  private silent = true;
  /** Frames for which input and output have stayed below SILENCE. */
  private quietFrames = 0;
  /** Longer than any path through the unit: quiet this long means nothing is still travelling inside. */
  private readonly drainFrames: number;

  constructor(sampleRate: number, maxFrames: number) {
    const scale = sampleRate / TUNING_RATE;
    for (const spread of [0, STEREO_SPREAD]) {
      for (const t of COMB_TUNING) this.combs.push(new Float32Array(Math.max(1, Math.round((t + spread) * scale))));
    }
    for (const spread of [0, STEREO_SPREAD]) {
      for (const t of ALLPASS_TUNING) this.allpasses.push(new Float32Array(Math.max(1, Math.round((t + spread) * scale))));
    }
    let longestComb = 0;
    for (const c of this.combs) longestComb = Math.max(longestComb, c.length);
    let allpassTotal = 0;
    for (const a of this.allpasses) allpassTotal += a.length;
    this.drainFrames = longestComb + allpassTotal;
    this.combIndex = new Int32Array(this.combs.length);
    this.combStore = new Float64Array(this.combs.length);
    this.allpassIndex = new Int32Array(this.allpasses.length);
    this.input = new Float64Array(maxFrames);
    this.accL = new Float64Array(maxFrames);
    this.accR = new Float64Array(maxFrames);
  }

  reset(): void {
    if (!this.silent) this.clear();
  }

  private clear(): void {
    for (const c of this.combs) c.fill(0);
    for (const a of this.allpasses) a.fill(0);
    this.combStore.fill(0);
    this.silent = true;
    this.quietFrames = 0;
  }

  /**
   * Adds the reverb of `buf` to it (interleaved stereo, in place): wet gain
   * ramps from mix0 to mix1 and comb feedback from fb0 to fb1 over the block.
   */
  process(buf: Float64Array, frames: number, mix0: number, mix1: number, fb0: number, fb1: number): void {
    const input = this.input;
    let peakIn = 0;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      const x = (buf[j]! + buf[j + 1]!) * FIXED_GAIN;
      input[i] = x;
      peakIn = Math.max(peakIn, Math.abs(x));
    }
    if (this.silent && peakIn === 0) return;
    this.silent = false;
    const accL = this.accL;
    const accR = this.accR;
    accL.fill(0, 0, frames);
    accR.fill(0, 0, frames);
    const half = COMB_TUNING.length;
    const dfb = (fb1 - fb0) / frames;
    for (let c = 0; c < this.combs.length; c++) {
      const line = this.combs[c]!;
      const len = line.length;
      const acc = c < half ? accL : accR;
      let idx = this.combIndex[c]!;
      let store = this.combStore[c]!;
      let fb = fb0;
      for (let i = 0; i < frames; i++) {
        const y = line[idx]!;
        store = y * (1 - DAMP) + store * DAMP;
        fb += dfb;
        line[idx] = input[i]! + store * fb;
        acc[i] = acc[i]! + y;
        if (++idx === len) idx = 0;
      }
      this.combIndex[c] = idx;
      this.combStore[c] = Math.abs(store) < 1e-20 ? 0 : store;
    }
    const allHalf = ALLPASS_TUNING.length;
    for (let a = 0; a < this.allpasses.length; a++) {
      const line = this.allpasses[a]!;
      const len = line.length;
      const acc = a < allHalf ? accL : accR;
      let idx = this.allpassIndex[a]!;
      for (let i = 0; i < frames; i++) {
        const x = acc[i]!;
        const b = line[idx]!;
        acc[i] = b - x;
        line[idx] = x + b * ALLPASS_FEEDBACK;
        if (++idx === len) idx = 0;
      }
      this.allpassIndex[a] = idx;
    }
    let mix = mix0;
    const dmix = (mix1 - mix0) / frames;
    let peakOut = 0;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      mix += dmix;
      const wl = accL[i]!;
      const wr = accR[i]!;
      buf[j] = buf[j]! + wl * mix * WET_SCALE;
      buf[j + 1] = buf[j + 1]! + wr * mix * WET_SCALE;
      peakOut = Math.max(peakOut, Math.abs(wl) + Math.abs(wr));
    }
    // A tail that has stayed below audibility for longer than any path through
    // the unit is cleared (the unit then idles, and never decays into subnormal
    // floats); a state gone non-finite (peakOut is NaN) is cleared at once.
    if (peakOut !== peakOut) this.clear();
    else if (peakOut < SILENCE && peakIn < SILENCE) {
      this.quietFrames += frames;
      if (this.quietFrames > this.drainFrames) this.clear();
    } else this.quietFrames = 0;
  }
}
