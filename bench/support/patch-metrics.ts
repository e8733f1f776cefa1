// Image statistics for the visual-model bench, independent of the model's own code: a
// multi-scale sliced-Wasserstein (SW) patch distance with fixed directions, and a
// nearest-patch search for the novelty check. Plain typed arrays, except the novelty
// prefilter's one big matrix product, which runs on tfjs (wasm).
import { mulberry32 } from '../../media/demo/artwork-random.ts';

/** RGB in 0..255, 3 floats per pixel, row-major. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

export function rgbFromRgba(rgba: Uint8Array | Uint8ClampedArray, width: number, height: number): RgbImage {
  const rgb = new Float32Array(width * height * 3);
  for (let i = 0, j = 0; i < width * height; i++, j += 3) {
    const a = rgba[i * 4 + 3]! / 255;
    rgb[j] = rgba[i * 4]! * a;
    rgb[j + 1] = rgba[i * 4 + 1]! * a;
    rgb[j + 2] = rgba[i * 4 + 2]! * a;
  }
  return { width, height, rgb };
}

/** 2x2 box average (odd edges dropped). */
export function halve(img: RgbImage): RgbImage {
  const w = img.width >> 1;
  const h = img.height >> 1;
  const out = new Float32Array(w * h * 3);
  const src = img.rgb;
  const sw = img.width;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const a = ((2 * y) * sw + 2 * x) * 3;
      const b = a + sw * 3;
      const o = (y * w + x) * 3;
      for (let c = 0; c < 3; c++) out[o + c] = (src[a + c]! + src[a + 3 + c]! + src[b + c]! + src[b + 3 + c]!) / 4;
    }
  }
  return { width: w, height: h, rgb: out };
}

// ---------------------------------------------------------------- sliced Wasserstein

/** One scale: k×k patches at 1/2^level resolution, every `stride`-th position, D directions. */
interface SwScale {
  level: number;
  k: number;
  stride: number;
  dirs: Float32Array; // D × (k*k*3), unit rows
  D: number;
}

/**
 * Scales of the measure. The strides keep about 16k patches per 512² image at every level;
 * 1×1 (colour alone) at full resolution, 5×5 patches at 1/1, 1/2, 1/4 and 1/8.
 */
const SCALES: ReadonlyArray<[level: number, k: number, stride: number]> = [
  [0, 1, 4],
  [0, 5, 4],
  [1, 5, 2],
  [2, 5, 1],
  [3, 5, 1],
];
export const SW_DIRECTIONS = 48;
export const SW_QUANTILES = 256;
/** Fixed: the measure's directions never change between runs (and share nothing with training's banks). */
const SW_SEED = 0x5357_4231;

function gaussian(rand: () => number): number {
  const u = Math.max(1e-12, rand());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * rand());
}

let scalesCache: SwScale[] | null = null;
function swScales(): SwScale[] {
  if (scalesCache) return scalesCache;
  const rand = mulberry32(SW_SEED);
  scalesCache = SCALES.map(([level, k, stride]) => {
    const dim = k * k * 3;
    const D = k === 1 ? 3 * 4 : SW_DIRECTIONS;
    const dirs = new Float32Array(D * dim);
    for (let d = 0; d < D; d++) {
      let s = 0;
      for (let j = 0; j < dim; j++) {
        const v = gaussian(rand);
        dirs[d * dim + j] = v;
        s += v * v;
      }
      const n = Math.sqrt(s);
      for (let j = 0; j < dim; j++) dirs[d * dim + j]! /= n;
    }
    return { level, k, stride, dirs, D };
  });
  return scalesCache;
}

/** Per scale, per direction: SW_QUANTILES quantiles of the projected patches. */
export type SwSignature = Float32Array[];

function pyramid(img: RgbImage, levels: number): RgbImage[] {
  const out = [img];
  for (let l = 1; l <= levels; l++) out.push(halve(out[l - 1]!));
  return out;
}

/** Projections of every patch of `img` at one scale, appended per direction. */
function project(img: RgbImage, s: SwScale, into: number[][]): void {
  const { width: w, height: h, rgb } = img;
  const dim = s.k * s.k * 3;
  const patch = new Float32Array(dim);
  for (let y = 0; y + s.k <= h; y += s.stride) {
    for (let x = 0; x + s.k <= w; x += s.stride) {
      let j = 0;
      for (let dy = 0; dy < s.k; dy++) {
        const row = ((y + dy) * w + x) * 3;
        for (let q = 0; q < s.k * 3; q++) patch[j++] = rgb[row + q]!;
      }
      for (let d = 0; d < s.D; d++) {
        let v = 0;
        const off = d * dim;
        for (let q = 0; q < dim; q++) v += patch[q]! * s.dirs[off + q]!;
        into[d]!.push(v);
      }
    }
  }
}

function quantiles(values: number[]): Float32Array {
  const sorted = Float64Array.from(values).sort();
  const out = new Float32Array(SW_QUANTILES);
  const n = sorted.length;
  for (let q = 0; q < SW_QUANTILES; q++) {
    const pos = ((q + 0.5) / SW_QUANTILES) * n - 0.5;
    const i = Math.max(0, Math.min(n - 1, Math.floor(pos)));
    const j = Math.min(n - 1, i + 1);
    const f = Math.max(0, Math.min(1, pos - i));
    out[q] = sorted[i]! * (1 - f) + sorted[j]! * f;
  }
  return out;
}

/**
 * The patch-distribution signature of a set of images (pooled: the patches of every image
 * together, so a release's artwork is one distribution). Images should share a pixel scale.
 */
export function swSignature(images: readonly RgbImage[]): SwSignature {
  const scales = swScales();
  const maxLevel = Math.max(...scales.map((s) => s.level));
  const pyramids = images.map((img) => pyramid(img, maxLevel));
  const sig: SwSignature = [];
  for (const s of scales) {
    const per: number[][] = Array.from({ length: s.D }, () => []);
    for (const p of pyramids) project(p[s.level]!, s, per);
    const q = new Float32Array(s.D * SW_QUANTILES);
    per.forEach((vals, d) => q.set(quantiles(vals), d * SW_QUANTILES));
    sig.push(q);
  }
  return sig;
}

/** Mean over scales of the SW-2 distance (RMS over directions and quantiles), in 0..255 levels. */
export function swDistance(a: SwSignature, b: SwSignature): number {
  let total = 0;
  for (let s = 0; s < a.length; s++) {
    const qa = a[s]!;
    const qb = b[s]!;
    let sum = 0;
    for (let i = 0; i < qa.length; i++) sum += (qa[i]! - qb[i]!) ** 2;
    total += Math.sqrt(sum / qa.length);
  }
  return total / a.length;
}

// ---------------------------------------------------------------- nearest patches

export const PATCH = 64;
const THUMB = 8;
const CELL = PATCH / THUMB;
const THUMB_DIM = THUMB * THUMB * 3;

/** Where a reference patch comes from. */
export interface RefPatch {
  image: number;
  x: number;
  y: number;
}

/** 8×8 block means of the 64×64 patch at (x, y), flipped as asked: 192 floats. */
function thumbOf(integral: Float64Array, w: number, x: number, y: number, flipX: boolean, flipY: boolean, out: Float32Array, at: number): void {
  const iw = w + 1;
  for (let by = 0; by < THUMB; by++) {
    for (let bx = 0; bx < THUMB; bx++) {
      const x0 = x + bx * CELL;
      const y0 = y + by * CELL;
      const tx = flipX ? THUMB - 1 - bx : bx;
      const ty = flipY ? THUMB - 1 - by : by;
      const o = at + (ty * THUMB + tx) * 3;
      for (let c = 0; c < 3; c++) {
        const s =
          integral[((y0 + CELL) * iw + x0 + CELL) * 3 + c]! -
          integral[(y0 * iw + x0 + CELL) * 3 + c]! -
          integral[((y0 + CELL) * iw + x0) * 3 + c]! +
          integral[(y0 * iw + x0) * 3 + c]!;
        // Centred on mid-grey so that the float32 dot products lose less to cancellation.
        out[o + c] = s / (CELL * CELL) - 128;
      }
    }
  }
}

function integralOf(img: RgbImage): Float64Array {
  const { width: w, height: h, rgb } = img;
  const iw = w + 1;
  const out = new Float64Array((w + 1) * (h + 1) * 3);
  for (let y = 0; y < h; y++) {
    const row = [0, 0, 0];
    for (let x = 0; x < w; x++) {
      for (let c = 0; c < 3; c++) {
        row[c]! += rgb[(y * w + x) * 3 + c]!;
        out[((y + 1) * iw + x + 1) * 3 + c] = out[(y * iw + x + 1) * 3 + c]! + row[c]!;
      }
    }
  }
  return out;
}

/** Every 64×64 patch of the reference images at `stride`, unflipped (queries carry the flips). */
export interface RefSet {
  images: RgbImage[];
  /** Grid stride per image. */
  strides: number[];
  patches: RefPatch[];
  /**
   * Thumbnails in chunks of REF_CHUNK patches, each chunk stored transposed (192 × n): tfjs-wasm
   * multiplies by a transposed operand ~14x slower than by a plain one.
   */
  chunks: Float32Array[];
  norms: Float32Array; // |thumb|²
}

export function refSet(images: RgbImage[], strides: number[]): RefSet {
  const patches: RefPatch[] = [];
  images.forEach((img, i) => {
    const stride = strides[i]!;
    for (let y = 0; y + PATCH <= img.height; y += stride) for (let x = 0; x + PATCH <= img.width; x += stride) patches.push({ image: i, x, y });
  });
  const integrals = images.map(integralOf);
  const norms = new Float32Array(patches.length);
  const chunks: Float32Array[] = [];
  const one = new Float32Array(THUMB_DIM);
  for (let start = 0; start < patches.length; start += REF_CHUNK) {
    const n = Math.min(REF_CHUNK, patches.length - start);
    const chunk = new Float32Array(THUMB_DIM * n);
    for (let i = 0; i < n; i++) {
      const p = patches[start + i]!;
      thumbOf(integrals[p.image]!, images[p.image]!.width, p.x, p.y, false, false, one, 0);
      let s = 0;
      for (let j = 0; j < THUMB_DIM; j++) {
        chunk[j * n + i] = one[j]!;
        s += one[j]! ** 2;
      }
      norms[start + i] = s;
    }
    chunks.push(chunk);
  }
  return { images, strides, patches, chunks, norms };
}

/** Exact RMS (0..255 levels) between a query patch, flipped as asked, and a reference patch. */
function exactRms(q: RgbImage, qx: number, qy: number, flipX: boolean, flipY: boolean, r: RgbImage, rx: number, ry: number): number {
  let sum = 0;
  for (let y = 0; y < PATCH; y++) {
    const sy = flipY ? PATCH - 1 - y : y;
    const qRow = ((qy + sy) * q.width + qx) * 3;
    const rRow = ((ry + y) * r.width + rx) * 3;
    for (let x = 0; x < PATCH; x++) {
      const sx = flipX ? PATCH - 1 - x : x;
      const qi = qRow + sx * 3;
      const ri = rRow + x * 3;
      const d0 = q.rgb[qi]! - r.rgb[ri]!;
      const d1 = q.rgb[qi + 1]! - r.rgb[ri + 1]!;
      const d2 = q.rgb[qi + 2]! - r.rgb[ri + 2]!;
      sum += d0 * d0 + d1 * d1 + d2 * d2;
    }
  }
  return Math.sqrt(sum / (PATCH * PATCH * 3));
}

export interface NearestPatch {
  /** Query patch position in its image. */
  x: number;
  y: number;
  /** Exact RMS to the nearest reference patch found, 0..255 levels. */
  rms: number;
  /** Standard deviation of the query patch itself, 0..255 levels. */
  std: number;
  /**
   * Its detail: RMS of the patch minus its own 8×8 block means, 0..255 levels. Flat areas and
   * smooth gradients have little (they "match" any similar area and copy nothing); edges,
   * lines and texture have much.
   */
  detail: number;
  ref: RefPatch;
  flipX: boolean;
  flipY: boolean;
  /** True when the thumbnail lower bound proves no unexamined grid position is nearer than the best found on the grid. */
  certain: boolean;
}

/** The tfjs parts the search needs (the bench passes the loaded module). */
export interface MatMulTf {
  tidy<T>(fn: () => T): T;
  tensor2d(values: Float32Array, shape: [number, number]): { dispose(): void };
  matMul(a: unknown, b: unknown): { dataSync(): Float32Array | Int32Array | Uint8Array; dispose(): void };
}

const TOP_K = 32;
/** Candidates refined at every position between grid positions. */
const REFINE = 4;
const REF_CHUNK = 8192;

/**
 * For each 64×64 patch of `query` on a grid (`gridStride`), the nearest patch of `refs` at any
 * of its positions, with the query mirrored four ways. Thumbnail (8×8 block mean) RMS is a lower
 * bound of the exact RMS (Jensen), so: rank every reference by the thumbnail distance (one
 * matrix product), compute the exact RMS for the best TOP_K, and mark the result certain when
 * the next thumbnail bound is no nearer than the best exact distance.
 * `exclude(query, ref)` drops reference patches (calibration: a patch must not find itself).
 */
export function nearestPatches(
  tf: MatMulTf,
  query: RgbImage,
  refs: RefSet,
  gridStride: number,
  exclude?: (qx: number, qy: number, ref: RefPatch) => boolean,
): NearestPatch[] {
  const grid: { x: number; y: number }[] = [];
  for (let y = 0; y + PATCH <= query.height; y += gridStride) for (let x = 0; x + PATCH <= query.width; x += gridStride) grid.push({ x, y });
  const flips: [boolean, boolean][] = [
    [false, false],
    [true, false],
    [false, true],
    [true, true],
  ];
  const nq = grid.length * flips.length;
  const qThumbs = new Float32Array(nq * THUMB_DIM);
  const integral = integralOf(query);
  grid.forEach((g, i) => flips.forEach(([fx, fy], f) => thumbOf(integral, query.width, g.x, g.y, fx, fy, qThumbs, (i * flips.length + f) * THUMB_DIM)));
  const qNorms = new Float32Array(nq);
  for (let n = 0; n < nq; n++) {
    let s = 0;
    for (let j = 0; j < THUMB_DIM; j++) s += qThumbs[n * THUMB_DIM + j]! ** 2;
    qNorms[n] = s;
  }
  // Per query patch (all four flips together): the TOP_K smallest thumbnail bounds, as
  // (bound², ref index, flip) triples kept sorted; and the smallest bound² left out.
  const nGrid = grid.length;
  const best = Array.from({ length: nGrid }, () => ({ d: new Float64Array(TOP_K).fill(Infinity), ref: new Int32Array(TOP_K).fill(-1), flip: new Int8Array(TOP_K), leftOut: Infinity }));
  const qT = tf.tensor2d(qThumbs, [nq, THUMB_DIM]);
  try {
    for (let start = 0; start < refs.patches.length; start += REF_CHUNK) {
      const n = Math.min(REF_CHUNK, refs.patches.length - start);
      const rT = tf.tensor2d(refs.chunks[start / REF_CHUNK]!, [THUMB_DIM, n]);
      const prod = tf.matMul(qT, rT);
      const dots = prod.dataSync() as Float32Array;
      prod.dispose();
      rT.dispose();
      for (let qi = 0; qi < nq; qi++) {
        const gi = (qi / flips.length) | 0;
        const f = qi % flips.length;
        const slot = best[gi]!;
        const g = grid[gi]!;
        const row = qi * n;
        const qn = qNorms[qi]!;
        for (let r = 0; r < n; r++) {
          const d2 = (qn + refs.norms[start + r]! - 2 * dots[row + r]!) / THUMB_DIM;
          if (d2 >= slot.d[TOP_K - 1]!) {
            if (d2 < slot.leftOut) slot.leftOut = d2;
            continue;
          }
          if (exclude && exclude(g.x, g.y, refs.patches[start + r]!)) continue;
          // Insert, pushing the largest out (it becomes a left-out bound).
          const dropped = slot.d[TOP_K - 1]!;
          if (dropped < slot.leftOut) slot.leftOut = dropped;
          let k = TOP_K - 1;
          while (k > 0 && slot.d[k - 1]! > d2) {
            slot.d[k] = slot.d[k - 1]!;
            slot.ref[k] = slot.ref[k - 1]!;
            slot.flip[k] = slot.flip[k - 1]!;
            k--;
          }
          slot.d[k] = d2;
          slot.ref[k] = start + r;
          slot.flip[k] = f;
        }
      }
    }
  } finally {
    qT.dispose();
  }
  return grid.map((g, gi) => {
    const slot = best[gi]!;
    const exact: { rms: number; k: number }[] = [];
    for (let k = 0; k < TOP_K; k++) {
      const ri = slot.ref[k]!;
      if (ri < 0) break;
      const ref = refs.patches[ri]!;
      const [fx, fy] = flips[slot.flip[k]!]!;
      exact.push({ rms: exactRms(query, g.x, g.y, fx, fy, refs.images[ref.image]!, ref.x, ref.y), k });
    }
    exact.sort((a, b) => a.rms - b.rms);
    const first = exact[0]!;
    const firstRef = refs.patches[slot.ref[first.k]!]!;
    let out = { rms: first.rms, ref: firstRef, flip: flips[slot.flip[first.k]!]! };
    // The reference grid has a stride: refine the best few at every position in between, so a
    // copy that sits between grid positions is found at its true offset.
    for (const e of exact.slice(0, REFINE)) {
      const base = refs.patches[slot.ref[e.k]!]!;
      const [fx, fy] = flips[slot.flip[e.k]!]!;
      const img = refs.images[base.image]!;
      const stride = refs.strides[base.image]!;
      for (let dy = -stride + 1; dy < stride; dy++) {
        for (let dx = -stride + 1; dx < stride; dx++) {
          const rx = base.x + dx;
          const ry = base.y + dy;
          if ((dx === 0 && dy === 0) || rx < 0 || ry < 0 || rx + PATCH > img.width || ry + PATCH > img.height) continue;
          const ref = { image: base.image, x: rx, y: ry };
          if (exclude && exclude(g.x, g.y, ref)) continue;
          const rms = exactRms(query, g.x, g.y, fx, fy, img, rx, ry);
          if (rms < out.rms) out = { rms, ref, flip: [fx, fy] };
        }
      }
    }
    // Thumbnail bounds are squared RMS; float32 products may err by a little, hence the slack.
    const certain = Math.sqrt(Math.max(0, slot.leftOut)) + 0.25 >= first.rms;
    return { x: g.x, y: g.y, rms: out.rms, std: patchStd(query, g.x, g.y), detail: patchDetail(query, g.x, g.y), ref: out.ref, flipX: out.flip[0], flipY: out.flip[1], certain };
  });
}

/** RMS deviation of a 64×64 patch from its 8×8 block means. */
export function patchDetail(img: RgbImage, x0: number, y0: number): number {
  let s = 0;
  for (let by = 0; by < PATCH; by += CELL) {
    for (let bx = 0; bx < PATCH; bx += CELL) {
      const mean = [0, 0, 0];
      for (let y = 0; y < CELL; y++) for (let x = 0; x < CELL; x++) for (let c = 0; c < 3; c++) mean[c]! += img.rgb[((y0 + by + y) * img.width + x0 + bx + x) * 3 + c]!;
      for (let c = 0; c < 3; c++) mean[c]! /= CELL * CELL;
      for (let y = 0; y < CELL; y++) for (let x = 0; x < CELL; x++) for (let c = 0; c < 3; c++) s += (img.rgb[((y0 + by + y) * img.width + x0 + bx + x) * 3 + c]! - mean[c]!) ** 2;
    }
  }
  return Math.sqrt(s / (PATCH * PATCH * 3));
}

/** RMS deviation of a 64×64 patch from its own mean colour. */
export function patchStd(img: RgbImage, x0: number, y0: number): number {
  const mean = [0, 0, 0];
  for (let y = 0; y < PATCH; y++) for (let x = 0; x < PATCH; x++) for (let c = 0; c < 3; c++) mean[c]! += img.rgb[((y0 + y) * img.width + x0 + x) * 3 + c]!;
  for (let c = 0; c < 3; c++) mean[c]! /= PATCH * PATCH;
  let s = 0;
  for (let y = 0; y < PATCH; y++) for (let x = 0; x < PATCH; x++) for (let c = 0; c < 3; c++) s += (img.rgb[((y0 + y) * img.width + x0 + x) * 3 + c]! - mean[c]!) ** 2;
  return Math.sqrt(s / (PATCH * PATCH * 3));
}

export function quantile(xs: readonly number[], f: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.floor(f * (s.length - 1) + 0.5)))]!;
}
