// DSP building blocks for the synthesized demo release: a seeded PRNG,
// band-limited oscillators, filters, and a few stereo effects. Pure
// TypeScript on typed arrays so that the demo renders the same everywhere.

export const TWO_PI = Math.PI * 2;

export function midiToHz(midiNote: number): number {
  return 440 * Math.pow(2, (midiNote - 69) / 12);
}

const SINE_TABLE_SIZE = 4096;
const SINE_TABLE = (() => {
  const table = new Float64Array(SINE_TABLE_SIZE + 1);
  for (let i = 0; i <= SINE_TABLE_SIZE; i++) table[i] = Math.sin((TWO_PI * i) / SINE_TABLE_SIZE);
  return table;
})();

/**
 * sin(2π·phase) from a table with linear interpolation (error < 1e-6): the
 * FM voices need several sines per sample and Math.sin would dominate the render.
 */
export function sinCycles(phase: number): number {
  const p = (phase - Math.floor(phase)) * SINE_TABLE_SIZE;
  const i = p | 0;
  const a = SINE_TABLE[i]!;
  return a + (p - i) * (SINE_TABLE[i + 1]! - a);
}

/** mulberry32: tiny and seeded, so the demo is identical on every run (unlike Math.random). */
export class Rng {
  private state: number;

  constructor(seed: number) {
    this.state = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform in [-1, 1): white noise. */
  bipolar(): number {
    return this.next() * 2 - 1;
  }

  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }
}

/**
 * PolyBLEP residual: subtracting it at a waveform's jump rounds the step off
 * over one sample either side, which removes most of the aliasing a naive
 * saw or square would fold back into the audible band.
 */
export function polyBlep(phase: number, phaseIncrement: number): number {
  if (phase < phaseIncrement) {
    const x = phase / phaseIncrement;
    return x + x - x * x - 1;
  }
  if (phase > 1 - phaseIncrement) {
    const x = (phase - 1) / phaseIncrement;
    return x * x + x + x + 1;
  }
  return 0;
}

/** Band-limited square in [-1, 1]; used for the metallic part of hats and cymbals. */
export class BlepSquare {
  phase: number;

  constructor(startPhase = 0) {
    this.phase = startPhase - Math.floor(startPhase);
  }

  next(phaseIncrement: number): number {
    let p = this.phase + phaseIncrement;
    if (p >= 1) p -= 1;
    this.phase = p;
    let v = p < 0.5 ? 1 : -1;
    v += polyBlep(p, phaseIncrement);
    let q = p + 0.5;
    if (q >= 1) q -= 1;
    v -= polyBlep(q, phaseIncrement);
    return v;
  }
}

/**
 * Trapezoidal state-variable filter (Simper/Cytomic form): stable under fast
 * cutoff modulation, which the plucks and sweeps rely on. After process(),
 * low/band/high hold the three outputs for the same input sample.
 */
export class Svf {
  low = 0;
  band = 0;
  high = 0;
  private ic1 = 0;
  private ic2 = 0;
  private a1 = 1;
  private a2 = 0;
  private a3 = 0;
  private k = 1;

  constructor(cutoffHz: number, q: number, sampleRate: number) {
    this.set(cutoffHz, q, sampleRate);
  }

  set(cutoffHz: number, q: number, sampleRate: number): void {
    // Clamp below Nyquist: tan() explodes there.
    const fc = Math.min(Math.max(cutoffHz, 10), sampleRate * 0.45);
    const g = Math.tan((Math.PI * fc) / sampleRate);
    this.k = 1 / q;
    this.a1 = 1 / (1 + g * (g + this.k));
    this.a2 = g * this.a1;
    this.a3 = g * this.a2;
  }

  process(x: number): number {
    const v3 = x - this.ic2;
    const v1 = this.a1 * this.ic1 + this.a2 * v3;
    const v2 = this.ic2 + this.a2 * this.ic1 + this.a3 * v3;
    this.ic1 = 2 * v1 - this.ic1;
    this.ic2 = 2 * v2 - this.ic2;
    this.low = v2;
    this.band = v1;
    this.high = x - this.k * v1 - v2;
    return v2;
  }
}

/** Coefficient for a one-pole smoother/lowpass: y += c * (x - y). */
export function onePoleCoef(cutoffHz: number, sampleRate: number): number {
  return 1 - Math.exp((-TWO_PI * cutoffHz) / sampleRate);
}

/** Equal-power pan, unity on both sides at centre; pan in [-1 (left), 1 (right)]. */
export function panGains(pan: number): { left: number; right: number } {
  const angle = ((pan + 1) * Math.PI) / 4;
  return { left: Math.cos(angle) * Math.SQRT2, right: Math.sin(angle) * Math.SQRT2 };
}

/**
 * tanh-like saturation (a Padé approximant, exact slope 1 at zero) for
 * per-sample use where Math.tanh is too slow; clamps to ±1 beyond |x| = 3.
 */
export function softSaturate(x: number): number {
  if (x > 3) return 1;
  if (x < -3) return -1;
  const x2 = x * x;
  return (x * (27 + x2)) / (27 + 9 * x2);
}

/** Piecewise-linear automation over a position (e.g. bars). Points must be sorted by position. */
export function automation(points: readonly (readonly [number, number])[], position: number): number {
  const first = points[0];
  if (first === undefined) return 0;
  if (position <= first[0]) return first[1];
  for (let i = 1; i < points.length; i++) {
    const b = points[i]!;
    if (position <= b[0]) {
      const a = points[i - 1]!;
      const span = b[0] - a[0];
      const t = span > 0 ? (position - a[0]) / span : 1;
      return a[1] + (b[1] - a[1]) * t;
    }
  }
  return points[points.length - 1]![1];
}

// Effects below work on interleaved stereo (L, R, L, R, ...), the layout the
// stems are delivered in: rendering straight into it avoids allocating (and
// page-faulting in) planar copies of 80-second buffers, which cost more than the DSP.

/** Removes DC and sub-audible rumble in place (one-pole highpass per side), applying a gain on the way. */
export function highpassInPlace(stereo: Float32Array, cutoffHz: number, sampleRate: number, gain = 1): void {
  const r = Math.exp((-TWO_PI * cutoffHz) / sampleRate);
  let prevInL = 0;
  let prevOutL = 0;
  let prevInR = 0;
  let prevOutR = 0;
  for (let i = 0; i < stereo.length; i += 2) {
    const xl = stereo[i]! * gain;
    const xr = stereo[i + 1]! * gain;
    prevOutL = xl - prevInL + r * prevOutL;
    prevOutR = xr - prevInR + r * prevOutR;
    prevInL = xl;
    prevInR = xr;
    stereo[i] = prevOutL;
    stereo[i + 1] = prevOutR;
  }
}

/**
 * Stereo feedback-delay-network reverb: eight damped delay lines mixed by a
 * Hadamard matrix, which diffuses quickly and stays colourless enough for
 * pads, plucks and claps.
 */
export class FdnReverb {
  private readonly lines: Float32Array[];
  private readonly feedbackGains: Float64Array;
  private readonly dampCoef: number;
  private readonly preDelay: Float32Array;

  constructor(sampleRate: number, rt60Sec: number, dampingHz: number, sizeScale: number, preDelaySec: number) {
    // Mutually prime lengths (in ms at scale 1) so echoes do not pile up on a common period.
    const baseMs = [29.7, 37.1, 41.1, 43.7, 53.1, 59.3, 67.1, 73.3];
    this.lines = [];
    this.feedbackGains = new Float64Array(baseMs.length);
    for (let i = 0; i < baseMs.length; i++) {
      const length = Math.max(2, Math.round((baseMs[i]! * sizeScale * sampleRate) / 1000));
      this.lines.push(new Float32Array(length));
      // Each pass through a line must lose (length / rt60) of the 60 dB decay.
      this.feedbackGains[i] = Math.pow(10, (-3 * length) / (rt60Sec * sampleRate));
    }
    this.dampCoef = onePoleCoef(dampingHz, sampleRate);
    this.preDelay = new Float32Array(Math.max(1, Math.round(preDelaySec * sampleRate)));
  }

  /**
   * Adds wet * reverb of `input` onto the interleaved stereo `output`.
   * `input` is mono (inputChannels 1) or interleaved stereo (2), and may be
   * `output` itself. Unrolled over the eight lines: this runs for every frame
   * of three stems.
   */
  process(input: Float32Array, inputChannels: 1 | 2, output: Float32Array, wet: number): void {
    const [l0, l1, l2, l3, l4, l5, l6, l7] = this.lines as [Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array, Float32Array];
    const n0 = l0.length, n1 = l1.length, n2 = l2.length, n3 = l3.length;
    const n4 = l4.length, n5 = l5.length, n6 = l6.length, n7 = l7.length;
    const gains = this.feedbackGains;
    // Hadamard normalization (1/sqrt(8)) folded into each line's decay gain.
    const norm = 1 / Math.sqrt(8);
    const g0 = gains[0]! * norm, g1 = gains[1]! * norm, g2 = gains[2]! * norm, g3 = gains[3]! * norm;
    const g4 = gains[4]! * norm, g5 = gains[5]! * norm, g6 = gains[6]! * norm, g7 = gains[7]! * norm;
    const inject = Math.sqrt(8);
    const outGain = wet * norm;
    let p0 = 0, p1 = 0, p2 = 0, p3 = 0, p4 = 0, p5 = 0, p6 = 0, p7 = 0;
    let d0 = 0, d1 = 0, d2 = 0, d3 = 0, d4 = 0, d5 = 0, d6 = 0, d7 = 0;
    const c = this.dampCoef;
    const pre = this.preDelay;
    const preLength = pre.length;
    let prePos = 0;
    const frames = output.length / 2;
    for (let f = 0; f < frames; f++) {
      const delayed = pre[prePos]! * inject;
      pre[prePos] = inputChannels === 1 ? input[f]! : 0.5 * (input[2 * f]! + input[2 * f + 1]!);
      prePos = prePos + 1 === preLength ? 0 : prePos + 1;

      d0 += c * (l0[p0]! - d0);
      d1 += c * (l1[p1]! - d1);
      d2 += c * (l2[p2]! - d2);
      d3 += c * (l3[p3]! - d3);
      d4 += c * (l4[p4]! - d4);
      d5 += c * (l5[p5]! - d5);
      d6 += c * (l6[p6]! - d6);
      d7 += c * (l7[p7]! - d7);
      // Odd and even lines feed opposite sides: a wide, decorrelated image.
      output[2 * f] = output[2 * f]! + outGain * (d0 - d2 + d4 - d6);
      output[2 * f + 1] = output[2 * f + 1]! + outGain * (d1 - d3 + d5 - d7);

      // 8-point Walsh–Hadamard butterfly: an energy-preserving all-to-all mix.
      const a0 = d0 + d1, a1 = d0 - d1, a2 = d2 + d3, a3 = d2 - d3;
      const a4 = d4 + d5, a5 = d4 - d5, a6 = d6 + d7, a7 = d6 - d7;
      const b0 = a0 + a2, b2 = a0 - a2, b1 = a1 + a3, b3 = a1 - a3;
      const b4 = a4 + a6, b6 = a4 - a6, b5 = a5 + a7, b7 = a5 - a7;
      l0[p0] = (b0 + b4 + delayed) * g0;
      l1[p1] = (b1 + b5 - delayed) * g1;
      l2[p2] = (b2 + b6 + delayed) * g2;
      l3[p3] = (b3 + b7 - delayed) * g3;
      l4[p4] = (b0 - b4 + delayed) * g4;
      l5[p5] = (b1 - b5 - delayed) * g5;
      l6[p6] = (b2 - b6 + delayed) * g6;
      l7[p7] = (b3 - b7 - delayed) * g7;
      if (++p0 === n0) p0 = 0;
      if (++p1 === n1) p1 = 0;
      if (++p2 === n2) p2 = 0;
      if (++p3 === n3) p3 = 0;
      if (++p4 === n4) p4 = 0;
      if (++p5 === n5) p5 = 0;
      if (++p6 === n6) p6 = 0;
      if (++p7 === n7) p7 = 0;
    }
  }
}

/**
 * Stereo chorus in place: two slowly modulated delays in quadrature widen a
 * signal and thicken it like detuned voices.
 */
export function chorusInPlace(stereo: Float32Array, sampleRate: number, rateHz: number, baseDelaySec: number, depthSec: number, mix: number): void {
  const size = Math.ceil((baseDelaySec + depthSec) * sampleRate) + 4;
  const bufL = new Float32Array(size);
  const bufR = new Float32Array(size);
  let write = 0;
  const phaseIncrement = rateHz / sampleRate;
  let phase = 0;
  for (let i = 0; i < stereo.length; i += 2) {
    const inL = stereo[i]!;
    const inR = stereo[i + 1]!;
    bufL[write] = inL;
    bufR[write] = inR;
    const wetL = readFractional(bufL, write, (baseDelaySec + depthSec * sinCycles(phase)) * sampleRate, size);
    const wetR = readFractional(bufR, write, (baseDelaySec + depthSec * sinCycles(phase + 0.25)) * sampleRate, size);
    phase += phaseIncrement;
    if (phase >= 1) phase -= 1;
    // Cross-feeding the wet sides makes the image wider than either input.
    stereo[i] = inL + mix * (wetL - 0.35 * wetR);
    stereo[i + 1] = inR + mix * (wetR - 0.35 * wetL);
    write = write + 1 === size ? 0 : write + 1;
  }
}

function readFractional(buffer: Float32Array, write: number, delaySamples: number, size: number): number {
  let pos = write - delaySamples;
  if (pos < 0) pos += size;
  const i0 = Math.floor(pos);
  const frac = pos - i0;
  const i1 = i0 + 1 === size ? 0 : i0 + 1;
  return buffer[i0]! + frac * (buffer[i1]! - buffer[i0]!);
}

/**
 * Ping-pong echo onto interleaved stereo: the mid of the input repeats first
 * on the left, then on the right, each a little darker. `input` may be `output`.
 */
export function pingPongDelay(input: Float32Array, output: Float32Array, sampleRate: number, delaySec: number, feedback: number, toneHz: number, wet: number): void {
  const length = Math.max(1, Math.round(delaySec * sampleRate));
  const lineL = new Float32Array(length);
  const lineR = new Float32Array(length);
  const c = onePoleCoef(toneHz, sampleRate);
  let toneL = 0;
  let toneR = 0;
  let pos = 0;
  const frames = output.length / 2;
  for (let f = 0; f < frames; f++) {
    const echoL = lineL[pos]!;
    const echoR = lineR[pos]!;
    toneL += c * (echoL - toneL);
    toneR += c * (echoR - toneR);
    lineL[pos] = 0.5 * (input[2 * f]! + input[2 * f + 1]!) + feedback * toneR;
    lineR[pos] = feedback * toneL;
    output[2 * f] = output[2 * f]! + wet * echoL;
    output[2 * f + 1] = output[2 * f + 1]! + wet * echoR;
    pos = pos + 1 === length ? 0 : pos + 1;
  }
}
