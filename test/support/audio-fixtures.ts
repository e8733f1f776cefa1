// Test-only helpers: synthetic signals, a WAV encoder for every layout the
// reader must accept, and measurements (level, frequency, spectrum, correlation).

export interface PcmWavSpec {
  readonly sampleRate: number;
  readonly channels: number;
  /** Interleaved samples, ±1 full scale. */
  readonly samples: Float32Array;
  readonly encoding: 'u8' | 'int16' | 'int24' | 'int32' | 'float32' | 'float64';
  /** Write WAVE_FORMAT_EXTENSIBLE instead of a plain fmt chunk. */
  readonly extensible?: boolean;
  /** Extra chunks: placed before fmt, between fmt and data, or after data. */
  readonly chunksBeforeFmt?: readonly { id: string; body: Uint8Array }[];
  readonly chunksBeforeData?: readonly { id: string; body: Uint8Array }[];
  readonly chunksAfterData?: readonly { id: string; body: Uint8Array }[];
  /** Put fmt after data (legal but unusual). */
  readonly fmtAfterData?: boolean;
  /** Omit the pad byte after odd-sized chunks, as some broken writers do. */
  readonly omitPadBytes?: boolean;
}

const BYTES: Record<PcmWavSpec['encoding'], number> = { u8: 1, int16: 2, int24: 3, int32: 4, float32: 4, float64: 8 };

export function encodeWav(spec: PcmWavSpec): Uint8Array {
  const bps = BYTES[spec.encoding];
  const isFloat = spec.encoding.startsWith('float');
  const frames = spec.samples.length / spec.channels;
  const data = new Uint8Array(frames * spec.channels * bps);
  const dv = new DataView(data.buffer);
  for (let i = 0; i < spec.samples.length; i++) {
    const x = spec.samples[i] as number;
    const clip = Math.max(-1, Math.min(1, x));
    switch (spec.encoding) {
      case 'u8':
        dv.setUint8(i, Math.max(0, Math.min(255, Math.round(clip * 128 + 128))));
        break;
      case 'int16':
        dv.setInt16(i * 2, Math.max(-32768, Math.min(32767, Math.round(clip * 32768))), true);
        break;
      case 'int24': {
        const v = Math.max(-8388608, Math.min(8388607, Math.round(clip * 8388608)));
        dv.setUint8(i * 3, v & 0xff);
        dv.setUint8(i * 3 + 1, (v >> 8) & 0xff);
        dv.setUint8(i * 3 + 2, (v >> 16) & 0xff);
        break;
      }
      case 'int32':
        dv.setInt32(i * 4, Math.max(-2147483648, Math.min(2147483647, Math.round(clip * 2147483648))), true);
        break;
      case 'float32':
        dv.setFloat32(i * 4, x, true);
        break;
      case 'float64':
        dv.setFloat64(i * 8, x, true);
        break;
    }
  }
  const tag = isFloat ? 3 : 1;
  const fmt = new Uint8Array(spec.extensible ? 40 : 16);
  const fv = new DataView(fmt.buffer);
  fv.setUint16(0, spec.extensible ? 0xfffe : tag, true);
  fv.setUint16(2, spec.channels, true);
  fv.setUint32(4, spec.sampleRate, true);
  fv.setUint32(8, spec.sampleRate * spec.channels * bps, true);
  fv.setUint16(12, spec.channels * bps, true);
  fv.setUint16(14, bps * 8, true);
  if (spec.extensible) {
    fv.setUint16(16, 22, true);
    fv.setUint16(18, bps * 8, true);
    fv.setUint32(20, spec.channels === 1 ? 0x4 : spec.channels === 2 ? 0x3 : 0, true);
    fv.setUint16(24, tag, true);
    fmt.set([0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71], 26);
  }
  const chunk = (id: string, body: Uint8Array) => {
    const pad = body.length & 1 && !spec.omitPadBytes ? 1 : 0;
    const out = new Uint8Array(8 + body.length + pad);
    for (let i = 0; i < 4; i++) out[i] = id.charCodeAt(i);
    new DataView(out.buffer).setUint32(4, body.length, true);
    out.set(body, 8);
    return out;
  };
  const parts: Uint8Array[] = [];
  for (const c of spec.chunksBeforeFmt ?? []) parts.push(chunk(c.id, c.body));
  if (!spec.fmtAfterData) parts.push(chunk('fmt ', fmt));
  for (const c of spec.chunksBeforeData ?? []) parts.push(chunk(c.id, c.body));
  parts.push(chunk('data', data));
  if (spec.fmtAfterData) parts.push(chunk('fmt ', fmt));
  for (const c of spec.chunksAfterData ?? []) parts.push(chunk(c.id, c.body));
  const bodyBytes = parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(12 + bodyBytes);
  out.set([0x52, 0x49, 0x46, 0x46], 0);
  new DataView(out.buffer).setUint32(4, 4 + bodyBytes, true);
  out.set([0x57, 0x41, 0x56, 0x45], 8);
  let at = 12;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A sine per channel (same frequency; channel c gets amplitude × (1 − 0.25c) so channels differ). */
export function sine(frequencyHz: number, sampleRate: number, seconds: number, amplitude: number, channels: number): Float32Array {
  const frames = Math.round(seconds * sampleRate);
  const out = new Float32Array(frames * channels);
  for (let i = 0; i < frames; i++) {
    const v = Math.sin((2 * Math.PI * frequencyHz * i) / sampleRate);
    for (let c = 0; c < channels; c++) out[i * channels + c] = amplitude * (1 - 0.25 * c) * v;
  }
  return out;
}

/** A deterministic music-like test signal: a few decaying partials and filtered noise, different per channel. */
export function musicLike(sampleRate: number, seconds: number, channels: number, seed = 1): Float32Array {
  const frames = Math.round(seconds * sampleRate);
  const out = new Float32Array(frames * channels);
  let s = seed >>> 0 || 1;
  const rand = () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return ((s >>> 0) / 4294967296) * 2 - 1;
  };
  const notes = [110, 164.81, 220, 277.18, 329.63, 440, 659.25, 880];
  for (let c = 0; c < channels; c++) {
    let lp = 0;
    for (let i = 0; i < frames; i++) {
      const t = i / sampleRate;
      const beat = t % 0.5;
      const env = Math.exp(-beat * 6);
      let v = 0;
      for (let k = 0; k < notes.length; k++) {
        const f = (notes[k] as number) * (1 + 0.002 * c);
        v += (0.08 / (1 + k * 0.3)) * Math.sin(2 * Math.PI * f * t + k + c) * (k % 2 === 0 ? env : 1 - 0.5 * env);
      }
      lp += 0.2 * (rand() - lp);
      v += 0.05 * lp * env;
      out[i * channels + c] = v;
    }
  }
  return out;
}

/** An exponential sweep from f0 to f1 over the whole duration. */
export function logSweep(f0: number, f1: number, sampleRate: number, seconds: number, amplitude: number): Float32Array {
  const n = Math.round(seconds * sampleRate);
  const out = new Float32Array(n);
  const k = Math.log(f1 / f0);
  for (let i = 0; i < n; i++) {
    const t = i / sampleRate;
    out[i] = amplitude * Math.sin(((2 * Math.PI * f0 * seconds) / k) * (Math.exp((t / seconds) * k) - 1));
  }
  return out;
}

export function channel(interleaved: Float32Array, channels: number, c: number): Float32Array {
  const frames = interleaved.length / channels;
  const out = new Float32Array(frames);
  for (let i = 0; i < frames; i++) out[i] = interleaved[i * channels + c] as number;
  return out;
}

export function rms(x: ArrayLike<number>, from = 0, to = x.length): number {
  let s = 0;
  for (let i = from; i < to; i++) s += (x[i] as number) ** 2;
  return Math.sqrt(s / Math.max(1, to - from));
}

export function db(ratio: number): number {
  return 20 * Math.log10(ratio);
}

/** Frequency from interpolated upward zero crossings, first to last: precise for a clean tone. */
export function zeroCrossingFrequency(x: ArrayLike<number>, sampleRate: number, from = 0, to = x.length): number {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = from + 1; i < to; i++) {
    const a = x[i - 1] as number;
    const b = x[i] as number;
    if (a < 0 && b >= 0) {
      const t = i - 1 + a / (a - b);
      if (first < 0) first = t;
      else count++;
      last = t;
    }
  }
  return count === 0 ? 0 : (count * sampleRate) / (last - first);
}

/** Magnitude spectrum (|X|) of a Blackman-Harris-windowed block of length n (a power of two), scaled so a full-scale sine peaks at 1. */
export function spectrum(x: ArrayLike<number>, from: number, n: number): Float64Array {
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  let wsum = 0;
  for (let i = 0; i < n; i++) {
    const p = (2 * Math.PI * i) / (n - 1);
    const w = 0.35875 - 0.48829 * Math.cos(p) + 0.14128 * Math.cos(2 * p) - 0.01168 * Math.cos(3 * p);
    re[i] = ((x[from + i] as number) ?? 0) * w;
    wsum += w;
  }
  fft(re, im);
  const mag = new Float64Array(n / 2 + 1);
  for (let k = 0; k <= n / 2; k++) mag[k] = (2 * Math.hypot(re[k] as number, im[k] as number)) / wsum;
  return mag;
}

function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j] as number, re[i] as number];
      [im[i], im[j]] = [im[j] as number, im[i] as number];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let j = 0; j < len / 2; j++) {
        const a = i + j;
        const b = a + len / 2;
        const xr = (re[b] as number) * cr - (im[b] as number) * ci;
        const xi = (re[b] as number) * ci + (im[b] as number) * cr;
        re[b] = (re[a] as number) - xr;
        im[b] = (im[a] as number) - xi;
        re[a] = (re[a] as number) + xr;
        im[a] = (im[a] as number) + xi;
        const t = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = t;
      }
    }
  }
}

/** Frequency of the largest spectral peak (parabolic interpolation on log magnitude). */
export function peakFrequency(x: ArrayLike<number>, sampleRate: number, from: number, n: number): number {
  const mag = spectrum(x, from, n);
  let best = 1;
  for (let k = 1; k < mag.length - 1; k++) if ((mag[k] as number) > (mag[best] as number)) best = k;
  const a = Math.log((mag[best - 1] as number) + 1e-30);
  const b = Math.log((mag[best] as number) + 1e-30);
  const c = Math.log((mag[best + 1] as number) + 1e-30);
  const offset = (0.5 * (a - c)) / (a - 2 * b + c);
  return ((best + offset) * sampleRate) / n;
}

/** Pearson correlation of a[i] and b[i + lag] over their overlap. */
export function correlationAt(a: ArrayLike<number>, b: ArrayLike<number>, lag: number): number {
  const start = Math.max(0, -lag);
  const end = Math.min(a.length, b.length - lag);
  let sa = 0;
  let sb = 0;
  let saa = 0;
  let sbb = 0;
  let sab = 0;
  const n = end - start;
  for (let i = start; i < end; i++) {
    const x = a[i] as number;
    const y = b[i + lag] as number;
    sa += x;
    sb += y;
    saa += x * x;
    sbb += y * y;
    sab += x * y;
  }
  const cov = sab - (sa * sb) / n;
  const va = saa - (sa * sa) / n;
  const vb = sbb - (sb * sb) / n;
  return cov / Math.sqrt(va * vb);
}

/** The lag in [-maxLag, maxLag] with the highest correlation, and that correlation. */
export function bestAlignment(a: ArrayLike<number>, b: ArrayLike<number>, maxLag: number): { lag: number; correlation: number } {
  let best = { lag: 0, correlation: -Infinity };
  for (let lag = -maxLag; lag <= maxLag; lag++) {
    const r = correlationAt(a, b, lag);
    if (r > best.correlation) best = { lag, correlation: r };
  }
  return best;
}
