// Seeded randomness for the demo artwork. Every painter draws from its own
// stream so that editing one piece never changes the pixels of another.

/** mulberry32: tiny, fast, and good enough for placing brush strokes. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class Rng {
  readonly next: () => number;

  constructor(seed: number) {
    this.next = mulberry32(seed);
  }

  /** Uniform in [min, max). */
  range(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  int(min: number, maxExclusive: number): number {
    return Math.floor(this.range(min, maxExclusive));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error('pick from an empty list');
    return item;
  }

  /** Approximately normal (sum of uniforms): cheap and bounded, so shapes never land absurdly far away. */
  gauss(mean = 0, sd = 1): number {
    const s = this.next() + this.next() + this.next() + this.next() - 2;
    return mean + sd * s * 1.732;
  }
}

export type Noise2D = (x: number, y: number) => number;

/**
 * Seeded 2D gradient (Perlin-style) noise in roughly [-1, 1]. Written here
 * rather than imported so that the pictures depend on nothing we do not own.
 */
export function gradientNoise(rng: Rng): Noise2D {
  const perm = new Uint8Array(512);
  const base = Array.from({ length: 256 }, (_, i) => i);
  for (let i = 255; i > 0; i--) {
    const j = rng.int(0, i + 1);
    const t = base[i]!;
    base[i] = base[j]!;
    base[j] = t;
  }
  for (let i = 0; i < 512; i++) perm[i] = base[i & 255]!;
  const gx = new Float64Array(256);
  const gy = new Float64Array(256);
  for (let i = 0; i < 256; i++) {
    const a = (i / 256) * Math.PI * 2;
    gx[i] = Math.cos(a);
    gy[i] = Math.sin(a);
  }
  const fade = (t: number): number => t * t * t * (t * (t * 6 - 15) + 10);
  const dot = (h: number, x: number, y: number): number => gx[h]! * x + gy[h]! * y;

  return (x: number, y: number): number => {
    const xf = Math.floor(x);
    const yf = Math.floor(y);
    const xi = xf & 255;
    const yi = yf & 255;
    const dx = x - xf;
    const dy = y - yf;
    const aa = perm[perm[xi]! + yi]!;
    const ab = perm[perm[xi]! + yi + 1]!;
    const ba = perm[perm[xi + 1]! + yi]!;
    const bb = perm[perm[xi + 1]! + yi + 1]!;
    const u = fade(dx);
    const v = fade(dy);
    const x1 = dot(aa, dx, dy) + u * (dot(ba, dx - 1, dy) - dot(aa, dx, dy));
    const x2 = dot(ab, dx, dy - 1) + u * (dot(bb, dx - 1, dy - 1) - dot(ab, dx, dy - 1));
    return (x1 + v * (x2 - x1)) * 1.41;
  };
}

/** Fractal sum of octaves: broad forms with finer detail riding on them. */
export function fbm(noise: Noise2D, x: number, y: number, octaves: number): number {
  let sum = 0;
  let amp = 0.5;
  let freq = 1;
  let norm = 0;
  for (let o = 0; o < octaves; o++) {
    sum += amp * noise(x * freq, y * freq);
    norm += amp;
    amp *= 0.5;
    freq *= 2.03;
  }
  return sum / norm;
}
