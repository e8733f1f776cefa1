// Channel coding and keyed randomness for the audio watermark: CRC-32, a
// K=7 rate-1/3 convolutional code (generators 133, 171, 165 octal) with a soft
// Viterbi decoder, and a deterministic keyed pseudo-random generator.
import { createHmac } from 'node:crypto';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (IEEE 802.3, as zlib). */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

const CONSTRAINT = 7;
const STATES = 1 << (CONSTRAINT - 1);
const GENERATORS = [0o133, 0o171, 0o165] as const;
export const CODE_RATE_INVERSE = GENERATORS.length;
export const CODE_TAIL_BITS = CONSTRAINT - 1;

function parity(x: number): number {
  x ^= x >> 4;
  x ^= x >> 2;
  x ^= x >> 1;
  return x & 1;
}

/** Output bits (one per generator) for register value `reg` (newest bit at position K-1). */
const OUTPUTS = (() => {
  const out = new Uint8Array((1 << CONSTRAINT) * GENERATORS.length);
  for (let reg = 0; reg < 1 << CONSTRAINT; reg++) {
    for (let g = 0; g < GENERATORS.length; g++) out[reg * GENERATORS.length + g] = parity(reg & GENERATORS[g]!);
  }
  return out;
})();

/** Encodes bits (0/1) followed by K-1 zero tail bits; returns 3 × (n + 6) coded bits. */
export function convEncode(bits: Uint8Array): Uint8Array {
  const total = bits.length + CODE_TAIL_BITS;
  const out = new Uint8Array(total * GENERATORS.length);
  let state = 0;
  for (let i = 0; i < total; i++) {
    const b = i < bits.length ? bits[i]! : 0;
    const reg = (b << (CONSTRAINT - 1)) | state;
    for (let g = 0; g < GENERATORS.length; g++) out[i * GENERATORS.length + g] = OUTPUTS[reg * GENERATORS.length + g]!;
    state = reg >> 1;
  }
  return out;
}

/**
 * Soft Viterbi decoding of `infoBits` bits from soft values (positive = coded
 * bit 0 more likely, negative = 1; 0 = erased). Maximises the correlation
 * Σ soft × (1 − 2·bit) over paths ending in the zero state.
 */
export function viterbiDecode(soft: Float64Array, infoBits: number): Uint8Array {
  const total = infoBits + CODE_TAIL_BITS;
  const r = GENERATORS.length;
  if (soft.length !== total * r) throw new RangeError(`expected ${total * r} soft values, got ${soft.length}`);
  let metric = new Float64Array(STATES).fill(-Infinity);
  let next = new Float64Array(STATES);
  metric[0] = 0;
  const decisions = new Uint8Array(total * STATES); // input bit chosen for the survivor into each state
  const from = new Uint8Array(total * STATES);
  for (let i = 0; i < total; i++) {
    next.fill(-Infinity);
    const s0 = soft[i * r]!;
    const s1 = soft[i * r + 1]!;
    const s2 = soft[i * r + 2]!;
    const maxInput = i < infoBits ? 1 : 0;
    for (let state = 0; state < STATES; state++) {
      const m = metric[state]!;
      if (m === -Infinity) continue;
      for (let b = 0; b <= maxInput; b++) {
        const reg = (b << (CONSTRAINT - 1)) | state;
        const o = reg * r;
        const branch = (OUTPUTS[o]! ? -s0 : s0) + (OUTPUTS[o + 1]! ? -s1 : s1) + (OUTPUTS[o + 2]! ? -s2 : s2);
        const ns = reg >> 1;
        const cand = m + branch;
        if (cand > next[ns]!) {
          next[ns] = cand;
          decisions[i * STATES + ns] = b;
          from[i * STATES + ns] = state;
        }
      }
    }
    const t = metric;
    metric = next;
    next = t;
  }
  const bits = new Uint8Array(total);
  let state = 0;
  for (let i = total - 1; i >= 0; i--) {
    bits[i] = decisions[i * STATES + state]!;
    state = from[i * STATES + state]!;
  }
  return bits.subarray(0, infoBits);
}

/**
 * Deterministic keyed generator: xoshiro128** seeded from HMAC-SHA256(key, label).
 * Not a CSPRNG on its own; the key stays secret because only the HMAC sees it.
 */
export class KeyedRng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(key: Uint8Array, label: string) {
    const seed = createHmac('sha256', key).update(`remixroom-watermark/v1/${label}`).digest();
    this.s0 = seed.readUInt32LE(0);
    this.s1 = seed.readUInt32LE(4);
    this.s2 = seed.readUInt32LE(8);
    this.s3 = seed.readUInt32LE(12);
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextU32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform integer in [0, n). */
  below(n: number): number {
    return Math.floor((this.nextU32() / 4294967296) * n);
  }

  sign(): 1 | -1 {
    return this.nextU32() & 1 ? 1 : -1;
  }

  /** A uniformly random permutation of 0..n-1 (Fisher–Yates). */
  permutation(n: number): Uint32Array {
    const p = new Uint32Array(n);
    for (let i = 0; i < n; i++) p[i] = i;
    for (let i = n - 1; i > 0; i--) {
      const j = this.below(i + 1);
      const t = p[i]!;
      p[i] = p[j]!;
      p[j] = t;
    }
    return p;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}
