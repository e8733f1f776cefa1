// Deterministic maths for the visual engine. Every value here is built from IEEE-754
// double additions, multiplications and divisions (exactly rounded on every engine, and
// JavaScript never fuses a multiply-add), Math.floor, Math.imul and Math.sqrt (V8, in
// Node and Chromium alike, uses the hardware's correctly rounded square root). No
// Math.sin/cos/atan2/pow/exp/log, whose last bits may differ between engines.

/** Entries per turn in the trig tables. */
export const TRIG_SIZE = 4096;
export const TRIG_MASK = TRIG_SIZE - 1;
const TWO_PI = 6.283185307179586;

/** sin(x) for |x| <= pi/2 by its Taylor series to x^17 (error < 1e-12). */
function sinPoly(x: number): number {
  const x2 = x * x;
  let term = x;
  let sum = x;
  for (let n = 1; n <= 8; n++) {
    term = (-term * x2) / ((2 * n) * (2 * n + 1));
    sum += term;
  }
  return sum;
}

function buildSin(): Float64Array {
  const t = new Float64Array(TRIG_SIZE + 1);
  for (let i = 0; i <= TRIG_SIZE; i++) {
    // Reduce to [-pi/2, pi/2] by symmetry, in exact table steps.
    const q = i % TRIG_SIZE;
    let k = q; // 0..4095 → angle k/4096 turns
    let sign = 1;
    if (k >= TRIG_SIZE / 2) {
      k -= TRIG_SIZE / 2;
      sign = -1;
    }
    if (k > TRIG_SIZE / 4) k = TRIG_SIZE / 2 - k;
    t[i] = sign * sinPoly((k / TRIG_SIZE) * TWO_PI);
  }
  return t;
}

/** sin of i/4096 turns, i in 0..4096 (the last entry repeats the first for interpolation). */
export const SIN_TABLE: Float64Array = buildSin();
/** cos of i/4096 turns. */
export const COS_TABLE: Float64Array = (() => {
  const t = new Float64Array(TRIG_SIZE + 1);
  for (let i = 0; i <= TRIG_SIZE; i++) t[i] = SIN_TABLE[(i + TRIG_SIZE / 4) & TRIG_MASK]!;
  return t;
})();

/** sin(2π·turns), linearly interpolated from the table (error < 1.2e-6). */
export function sinTurns(turns: number): number {
  const x = turns * TRIG_SIZE;
  const f = Math.floor(x);
  const frac = x - f;
  const i = f & TRIG_MASK;
  const a = SIN_TABLE[i]!;
  return a + (SIN_TABLE[i + 1]! - a) * frac;
}

export function cosTurns(turns: number): number {
  return sinTurns(turns + 0.25);
}

/** atan2(y, x) in turns, 0..1, by a polynomial (error < 1e-5 turns). */
export function atan2Turns(y: number, x: number): number {
  if (x === 0 && y === 0) return 0;
  const ax = x < 0 ? -x : x;
  const ay = y < 0 ? -y : y;
  const swap = ay > ax;
  const z = swap ? ax / ay : ay / ax; // 0..1
  // atan(z) on [0,1], minimax-style odd polynomial (Abramowitz & Stegun 4.4.49 form).
  const z2 = z * z;
  let a = z * (0.9998660 + z2 * (-0.3302995 + z2 * (0.1801410 + z2 * (-0.0851330 + z2 * 0.0208351))));
  if (swap) a = 1.5707963267948966 - a;
  if (x < 0) a = 3.141592653589793 - a;
  if (y < 0) a = -a;
  const t = a / TWO_PI;
  return t < 0 ? t + 1 : t;
}

/** A 32-bit integer hash (lowbias32), deterministic everywhere. */
export function hash32(x: number): number {
  let h = x | 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d);
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 0..1 from a hash. */
export function hashUnit(x: number): number {
  return hash32(x) / 4294967296;
}

export function clamp01(x: number): number {
  return x < 0 ? 0 : x > 1 ? 1 : x;
}

/** The smooth 0..1 ease used for cross-fades. */
export function smoothstep(x: number): number {
  const t = clamp01(x);
  return t * t * (3 - 2 * t);
}

/** sRGB byte → linear light 0..1 (for measuring luminance), by table. */
export const SRGB_TO_LINEAR: Float64Array = (() => {
  const t = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    const c = i / 255;
    // (c + 0.055) / 1.055) ^ 2.4 without Math.pow: x^2.4 = x^2 · x^0.4, x^0.4 by Newton on y^5 = x^2.
    if (c <= 0.04045) {
      t[i] = c / 12.92;
    } else {
      const x = (c + 0.055) / 1.055;
      const x2 = x * x;
      let y = x; // converges to x^0.4 for x in (0,1]
      for (let k = 0; k < 40; k++) {
        const y4 = y * y * y * y;
        y = y - (y4 * y - x2) / (5 * y4);
      }
      t[i] = x2 * y;
    }
  }
  return t;
})();
