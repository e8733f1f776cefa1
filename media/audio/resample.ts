// Band-limited sample-rate conversion in plain TypeScript, for when no native
// ffmpeg is present. Kaiser-windowed sinc; an exact polyphase table when the
// rate ratio reduces to few phases (every common rate to 48 kHz does), else a
// finely sampled table with linear interpolation between adjacent phases.

export interface ResamplerOptions {
  /** Highest frequency kept flat. Default: min(20 kHz, 0.9075 × the lower Nyquist). */
  readonly passbandHz?: number;
  /** Where full attenuation starts. Default: the lower of the two Nyquist frequencies. */
  readonly stopbandHz?: number;
  /** Stopband attenuation in dB. Default 100. */
  readonly attenuationDb?: number;
}

export interface ResamplerDesign {
  readonly passbandHz: number;
  readonly stopbandHz: number;
  readonly attenuationDb: number;
  /** Filter taps applied per output sample and channel. */
  readonly taps: number;
  /** Rows in the coefficient table. */
  readonly phases: number;
  /** True when every output sample lands exactly on a table row. */
  readonly exact: boolean;
}

const MAX_EXACT_PHASES = 1024;
const INTERPOLATED_PHASES = 1024;
const DEFAULT_ATTENUATION_DB = 100;
// 20 kHz of 22.05 kHz: a CD's usable band relative to its Nyquist frequency.
const PASSBAND_FRACTION_OF_NYQUIST = 0.9075;
const AUDIBLE_LIMIT_HZ = 20_000;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** Modified Bessel function of the first kind, order 0 (power series; converges fast for the β used here). */
function besselI0(x: number): number {
  let sum = 1;
  let term = 1;
  const q = (x * x) / 4;
  for (let k = 1; k < 200; k++) {
    term *= q / (k * k);
    sum += term;
    if (term < sum * 1e-17) break;
  }
  return sum;
}

function kaiserBeta(attenuationDb: number): number {
  if (attenuationDb > 50) return 0.1102 * (attenuationDb - 8.7);
  if (attenuationDb >= 21) return 0.5842 * (attenuationDb - 21) ** 0.4 + 0.07886 * (attenuationDb - 21);
  return 0;
}

/** Output frames for a whole input, so that output time 0 and input time 0 coincide. */
export function resampledFrameCount(inputFrames: number, inputRate: number, outputRate: number): number {
  const g = gcd(inputRate, outputRate);
  const up = outputRate / g;
  const down = inputRate / g;
  return Math.ceil((inputFrames * up) / down);
}

/**
 * Streaming resampler for interleaved or planar multichannel audio. Feed input
 * in any block sizes with process()/processPlanar(); call flush() once at the
 * end to get the tail. Output is interleaved and zero-phase (no added delay).
 */
export class Resampler {
  readonly inputRate: number;
  readonly outputRate: number;
  readonly channels: number;
  readonly design: ResamplerDesign;

  private readonly up: number;
  private readonly down: number;
  private readonly halfTaps: number;
  private readonly taps: number;
  private readonly coefficients: Float64Array;
  private readonly tablePhases: number;
  private readonly stepWhole: number;
  private readonly stepPhase: number;
  private buffers: Float32Array[];
  /** Global input index of buffers[c][0]. */
  private bufferStart: number;
  private bufferLength = 0;
  private inputFramesTotal = 0;
  private outputFramesTotal = 0;
  /** Integer part and phase (in units of 1/up) of the next output's input time. */
  private nextWhole = 0;
  private nextPhase = 0;
  private flushed = false;

  constructor(inputRate: number, outputRate: number, channels: number, options: ResamplerOptions = {}) {
    for (const [name, rate] of [['inputRate', inputRate], ['outputRate', outputRate]] as const) {
      if (!Number.isInteger(rate) || rate <= 0) throw new RangeError(`${name} must be a positive whole number of Hz, got ${rate}`);
    }
    if (!Number.isInteger(channels) || channels < 1) throw new RangeError(`channels must be a positive whole number, got ${channels}`);
    this.inputRate = inputRate;
    this.outputRate = outputRate;
    this.channels = channels;
    const g = gcd(inputRate, outputRate);
    this.up = outputRate / g;
    this.down = inputRate / g;

    const lowerNyquistHz = Math.min(inputRate, outputRate) / 2;
    const stopbandHz = options.stopbandHz ?? lowerNyquistHz;
    const passbandHz = options.passbandHz ?? Math.min(AUDIBLE_LIMIT_HZ, PASSBAND_FRACTION_OF_NYQUIST * lowerNyquistHz);
    const attenuationDb = options.attenuationDb ?? DEFAULT_ATTENUATION_DB;
    if (!(passbandHz > 0 && passbandHz < stopbandHz && stopbandHz <= inputRate / 2 + 1e-9 * inputRate)) {
      throw new RangeError(`need 0 < passband (${passbandHz} Hz) < stopband (${stopbandHz} Hz) ≤ input Nyquist (${inputRate / 2} Hz)`);
    }

    // All filter arithmetic is in input samples: cutoff and transition as fractions of the input rate.
    const cutoff = (passbandHz + stopbandHz) / 2 / inputRate;
    const transition = (stopbandHz - passbandHz) / inputRate;
    const length = Math.ceil((attenuationDb - 7.95) / (2.285 * 2 * Math.PI * transition)) + 1;
    // An even half-length makes the tap count a multiple of 4, which the unrolled inner loop needs.
    this.halfTaps = Math.max(2, 2 * Math.ceil(length / 4));
    this.taps = 2 * this.halfTaps;
    const exact = this.up <= MAX_EXACT_PHASES;
    this.tablePhases = exact ? this.up : INTERPOLATED_PHASES;
    this.coefficients = buildTable(this.tablePhases, exact, this.halfTaps, cutoff, kaiserBeta(attenuationDb));
    this.design = { passbandHz, stopbandHz, attenuationDb, taps: this.taps, phases: this.tablePhases, exact };

    this.stepWhole = Math.floor(this.down / this.up);
    this.stepPhase = this.down % this.up;
    // Output 0 sits at input time 0 and reads halfTaps-1 samples before it: start with that much silence.
    this.bufferStart = -(this.halfTaps - 1);
    this.buffers = Array.from({ length: channels }, () => new Float32Array(Math.max(4096, this.taps * 4)));
    this.bufferLength = this.halfTaps - 1;
  }

  /** Frames this resampler will have produced once `inputFrames` were fed and it was flushed. */
  outputFramesFor(inputFrames: number): number {
    return Math.ceil((inputFrames * this.up) / this.down);
  }

  /** Feeds interleaved input; returns the interleaved output that is now complete. */
  process(interleaved: Float32Array): Float32Array {
    const ch = this.channels;
    if (interleaved.length % ch !== 0) throw new RangeError(`${interleaved.length} samples is not a whole number of ${ch}-channel frames`);
    if (this.flushed) throw new Error('resampler already flushed');
    const frames = interleaved.length / ch;
    const at = this.reserve(frames);
    for (let c = 0; c < ch; c++) {
      const b = this.buffers[c] as Float32Array;
      for (let i = 0, j = c; i < frames; i++, j += ch) b[at + i] = interleaved[j] as number;
    }
    this.bufferLength += frames;
    this.inputFramesTotal += frames;
    return this.produce(this.bufferStart + this.bufferLength, Infinity);
  }

  /** Feeds one array per channel (the first `frames` samples of each); returns interleaved output. */
  processPlanar(planes: readonly Float32Array[], frames?: number): Float32Array {
    if (planes.length !== this.channels) throw new RangeError(`expected ${this.channels} channel arrays, got ${planes.length}`);
    if (this.flushed) throw new Error('resampler already flushed');
    const n = frames ?? (planes[0]?.length ?? 0);
    const at = this.reserve(n);
    for (let c = 0; c < this.channels; c++) {
      const plane = planes[c] as Float32Array;
      if (plane.length < n) throw new RangeError(`channel ${c} has ${plane.length} samples, expected ${n}`);
      (this.buffers[c] as Float32Array).set(n === plane.length ? plane : plane.subarray(0, n), at);
    }
    this.bufferLength += n;
    this.inputFramesTotal += n;
    return this.produce(this.bufferStart + this.bufferLength, Infinity);
  }

  /** Ends the stream: returns the remaining output, computed as if silence followed the input. */
  flush(): Float32Array {
    if (this.flushed) return new Float32Array(0);
    this.flushed = true;
    const total = this.outputFramesFor(this.inputFramesTotal);
    const remaining = total - this.outputFramesTotal;
    if (remaining <= 0) return new Float32Array(0);
    const zeros = this.halfTaps + this.stepWhole + 2;
    const at = this.reserve(zeros);
    for (const b of this.buffers) b.fill(0, at, at + zeros);
    this.bufferLength += zeros;
    // Produce exactly the remaining outputs, adding silence until every one has its full window.
    let out: Float32Array = new Float32Array(0);
    for (;;) {
      const part = this.produce(this.bufferStart + this.bufferLength, total - this.outputFramesTotal);
      out = out.length === 0 ? part : concat(out, part);
      if (this.outputFramesTotal >= total) return out;
      const more = this.reserve(this.halfTaps);
      for (const b of this.buffers) b.fill(0, more, more + this.halfTaps);
      this.bufferLength += this.halfTaps;
    }
  }

  /** Makes room for `frames` more input at the end of the buffers; returns where to write. */
  private reserve(frames: number): number {
    // Drop input that no future output reads.
    const keepFrom = this.nextWhole - this.halfTaps + 1;
    const drop = Math.min(this.bufferLength, Math.max(0, keepFrom - this.bufferStart));
    if (drop > 0) {
      for (const b of this.buffers) b.copyWithin(0, drop, this.bufferLength);
      this.bufferStart += drop;
      this.bufferLength -= drop;
    }
    const need = this.bufferLength + frames;
    const first = this.buffers[0] as Float32Array;
    if (need > first.length) {
      const capacity = Math.max(need, Math.ceil(first.length * 1.5));
      this.buffers = this.buffers.map((b) => {
        const grown = new Float32Array(capacity);
        grown.set(b.subarray(0, this.bufferLength));
        return grown;
      });
    }
    return this.bufferLength;
  }

  /** Computes every output whose input window ends before `availableEnd` (global index), up to `limit`. */
  private produce(availableEnd: number, limit: number): Float32Array {
    // Output n needs input up to nextWhole + halfTaps.
    const lastWhole = availableEnd - this.halfTaps - 1;
    if (this.nextWhole > lastWhole || limit <= 0) return new Float32Array(0);
    // Count outputs: n such that floor(n·down/up) ≤ lastWhole.
    const firstN = this.outputFramesTotal;
    const endN = Math.floor(((lastWhole + 1) * this.up - 1) / this.down) + 1;
    const count = Math.min(limit, endN - firstN);
    if (count <= 0) return new Float32Array(0);
    const ch = this.channels;
    const out = new Float32Array(count * ch);
    const taps = this.taps;
    const coef = this.coefficients;
    const exact = this.design.exact;
    const up = this.up;
    const tablePhases = this.tablePhases;
    let whole = this.nextWhole;
    let phase = this.nextPhase;
    const offset = -this.halfTaps + 1 - this.bufferStart;
    const b0 = this.buffers[0] as Float32Array;
    const b1 = (ch >= 2 ? this.buffers[1] : b0) as Float32Array;
    for (let n = 0; n < count; n++) {
      const base = whole + offset;
      if (exact) {
        const row = phase * taps;
        // Unrolled by four with split accumulators: about 15% faster in V8 than the plain loop.
        if (ch === 2) {
          let a0 = 0;
          let a1 = 0;
          let c0 = 0;
          let c1 = 0;
          for (let k = 0; k < taps; k += 4) {
            const q0 = coef[row + k] as number;
            const q1 = coef[row + k + 1] as number;
            const q2 = coef[row + k + 2] as number;
            const q3 = coef[row + k + 3] as number;
            const i = base + k;
            a0 += q0 * (b0[i] as number) + q1 * (b0[i + 1] as number);
            c0 += q2 * (b0[i + 2] as number) + q3 * (b0[i + 3] as number);
            a1 += q0 * (b1[i] as number) + q1 * (b1[i + 1] as number);
            c1 += q2 * (b1[i + 2] as number) + q3 * (b1[i + 3] as number);
          }
          out[2 * n] = a0 + c0;
          out[2 * n + 1] = a1 + c1;
        } else {
          for (let c = 0; c < ch; c++) {
            const b = this.buffers[c] as Float32Array;
            let a = 0;
            let d = 0;
            for (let k = 0; k < taps; k += 4) {
              const i = base + k;
              a += (coef[row + k] as number) * (b[i] as number) + (coef[row + k + 1] as number) * (b[i + 1] as number);
              d += (coef[row + k + 2] as number) * (b[i + 2] as number) + (coef[row + k + 3] as number) * (b[i + 3] as number);
            }
            out[n * ch + c] = a + d;
          }
        }
      } else {
        // Position between two table rows; blend the two dot products.
        const position = (phase / up) * tablePhases;
        const r = Math.min(tablePhases - 1, Math.floor(position));
        const t = position - r;
        const row0 = r * taps;
        const row1 = row0 + taps;
        for (let c = 0; c < ch; c++) {
          const b = this.buffers[c] as Float32Array;
          let s0 = 0;
          let s1 = 0;
          for (let k = 0; k < taps; k++) {
            const x = b[base + k] as number;
            s0 += (coef[row0 + k] as number) * x;
            s1 += (coef[row1 + k] as number) * x;
          }
          out[n * ch + c] = s0 + t * (s1 - s0);
        }
      }
      phase += this.stepPhase;
      whole += this.stepWhole;
      if (phase >= up) {
        phase -= up;
        whole += 1;
      }
    }
    this.nextWhole = whole;
    this.nextPhase = phase;
    this.outputFramesTotal += count;
    return out;
  }
}

/**
 * Row p holds the taps for an output at fractional input time p/rows (exact)
 * or p/rows of the way between two inputs (interpolated, with one extra row
 * for p = rows). Each row is normalised to unit DC gain.
 */
function buildTable(rows: number, exact: boolean, halfTaps: number, cutoff: number, beta: number): Float64Array {
  const taps = 2 * halfTaps;
  const rowCount = exact ? rows : rows + 1;
  const table = new Float64Array(rowCount * taps);
  const i0Beta = besselI0(beta);
  for (let p = 0; p < rowCount; p++) {
    const frac = p / rows;
    let sum = 0;
    for (let k = 0; k < taps; k++) {
      // Distance from the output time to input sample (whole - halfTaps + 1 + k).
      const tau = frac + halfTaps - 1 - k;
      const x = tau / halfTaps;
      const window = Math.abs(x) >= 1 ? 0 : besselI0(beta * Math.sqrt(1 - x * x)) / i0Beta;
      const arg = 2 * cutoff * tau;
      const sinc = arg === 0 ? 1 : Math.sin(Math.PI * arg) / (Math.PI * arg);
      const h = 2 * cutoff * sinc * window;
      table[p * taps + k] = h;
      sum += h;
    }
    for (let k = 0; k < taps; k++) table[p * taps + k] = (table[p * taps + k] as number) / sum;
  }
  return table;
}

function concat(a: Float32Array, b: Float32Array): Float32Array {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** Resamples a whole interleaved signal in one call. */
export function resampleInterleaved(input: Float32Array, channels: number, inputRate: number, outputRate: number, options?: ResamplerOptions): Float32Array {
  if (inputRate === outputRate) return input.slice();
  const r = new Resampler(inputRate, outputRate, channels, options);
  const body = r.process(input);
  const tail = r.flush();
  return tail.length === 0 ? body : concat(body, tail);
}
