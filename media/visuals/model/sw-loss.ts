// The training target and loss: a multi-scale sliced-Wasserstein (SW) distance between the patch
// distributions of generated images and of the artwork. Projecting every k×k patch onto D random
// unit directions is one 'valid' conv with D random filters, so no patches are extracted and no
// pretrained network is involved. The artwork's sorted projections (Q quantiles per direction,
// over the whole artwork and its mirror) are computed once per bank of directions; each step
// sorts only the generated side and pulls every value toward the target quantile of its rank
// (a mean squared difference whose gradient is the sorted formulation's).
import { VisualModelError } from './errors.ts';
import type { Hyperparameters, TrainingImage } from './types.ts';
import { gaussian, projectValid, tf } from './tf.ts';

/** An artwork ready for training: RGB 0..1, height×width×3, alpha composited over black. */
export interface PreparedImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

/** Where a size is changed: area average when shrinking, bilinear when enlarging. */
function axisWeights(n: number, m: number): { start: number; weights: Float32Array }[] {
  const s = m / n;
  const out: { start: number; weights: Float32Array }[] = [];
  for (let i = 0; i < m; i++) {
    if (s < 1) {
      const a = i / s;
      const b = Math.min(n, (i + 1) / s);
      const j0 = Math.floor(a);
      const j1 = Math.min(n - 1, Math.ceil(b) - 1);
      const w = new Float32Array(j1 - j0 + 1);
      for (let j = j0; j <= j1; j++) w[j - j0] = Math.min(b, j + 1) - Math.max(a, j);
      const sum = w.reduce((p, q) => p + q, 0);
      for (let j = 0; j < w.length; j++) w[j]! /= sum;
      out.push({ start: j0, weights: w });
    } else {
      const c = Math.min(n - 1, Math.max(0, (i + 0.5) / s - 0.5));
      const j0 = Math.min(n - 2, Math.floor(c));
      if (n === 1) out.push({ start: 0, weights: Float32Array.of(1) });
      else out.push({ start: j0, weights: Float32Array.of(1 - (c - j0), c - j0) });
    }
  }
  return out;
}

function resample(src: Float32Array, w: number, h: number, nw: number, nh: number): Float32Array {
  const xs = axisWeights(w, nw);
  const tmp = new Float32Array(h * nw * 3);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < nw; x++) {
      const { start, weights } = xs[x]!;
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < weights.length; k++) {
        const o = (y * w + start + k) * 3;
        const q = weights[k]!;
        r += src[o]! * q; g += src[o + 1]! * q; b += src[o + 2]! * q;
      }
      const t = (y * nw + x) * 3;
      tmp[t] = r; tmp[t + 1] = g; tmp[t + 2] = b;
    }
  }
  const ys = axisWeights(h, nh);
  const out = new Float32Array(nh * nw * 3);
  for (let y = 0; y < nh; y++) {
    const { start, weights } = ys[y]!;
    for (let k = 0; k < weights.length; k++) {
      const q = weights[k]!;
      const row = (start + k) * nw * 3;
      const dst = y * nw * 3;
      for (let x = 0; x < nw * 3; x++) out[dst + x]! += tmp[row + x]! * q;
    }
  }
  return out;
}

/**
 * The artwork at the training scale: its area becomes about trainScale², its aspect kept, each
 * side at least `minSide` and at most 4·trainScale.
 */
export function prepareImage(img: TrainingImage, trainScale: number, minSide: number): PreparedImage {
  const { width: w, height: h } = img;
  if (!(Number.isInteger(w) && Number.isInteger(h) && w > 0 && h > 0)) throw new VisualModelError(`artwork ${img.id} has no pixels (${w}x${h})`);
  if (img.rgba.length !== w * h * 4) throw new VisualModelError(`artwork ${img.id}: ${img.rgba.length} bytes is not ${w}x${h} RGBA`);
  const src = new Float32Array(w * h * 3);
  for (let i = 0; i < w * h; i++) {
    const a = img.rgba[i * 4 + 3]! / 255;
    for (let c = 0; c < 3; c++) src[i * 3 + c] = (img.rgba[i * 4 + c]! / 255) * a;
  }
  const s = trainScale / Math.sqrt(w * h);
  const clampSide = (v: number) => Math.min(4 * trainScale, Math.max(minSide, Math.round(v)));
  const nw = clampSide(w * s);
  const nh = clampSide(h * s);
  // Huge artwork first halves in exact 2×2 area steps, so the general resample stays cheap.
  let cur = src, cw = w, ch = h;
  while (cw >= 4 * nw && ch >= 4 * nh) {
    const hw = cw >> 1, hh = ch >> 1;
    const half = new Float32Array(hw * hh * 3);
    for (let y = 0; y < hh; y++)
      for (let x = 0; x < hw; x++)
        for (let c = 0; c < 3; c++) {
          const a = ((2 * y) * cw + 2 * x) * 3 + c, b = ((2 * y + 1) * cw + 2 * x) * 3 + c;
          half[(y * hw + x) * 3 + c] = (cur[a]! + cur[a + 3]! + cur[b]! + cur[b + 3]!) / 4;
        }
    cur = half; cw = hw; ch = hh;
  }
  return { width: nw, height: nh, rgb: cw === nw && ch === nh ? cur : resample(cur, cw, ch, nw, nh) };
}

/** One scale of a bank: patches of k×k at 1/pool resolution, D directions. */
export interface Projection {
  pool: number;
  k: number;
  D: number;
  filter: tf.Tensor4D;
}

/** D random unit directions in k·k·3 dimensions, as a conv filter [k, k, 3, D]. */
export function randomFilter(rand: () => number, k: number, D: number): tf.Tensor4D {
  const w = gaussian(rand, k * k * 3 * D);
  for (let d = 0; d < D; d++) {
    let s = 0;
    for (let j = 0; j < k * k * 3; j++) s += w[j * D + d]! ** 2;
    s = 1 / Math.sqrt(s);
    for (let j = 0; j < k * k * 3; j++) w[j * D + d]! *= s;
  }
  return tf.tensor4d(w, [k, k, 3, D]);
}

export function makeBanks(hp: Hyperparameters, rand: () => number): Projection[][] {
  return Array.from({ length: hp.banks }, () => hp.scales.map(([pool, k, D]) => ({ pool, k, D, filter: randomFilter(rand, k, D) })));
}

/** Q quantiles per direction (direction-major, D×Q) of the artwork's and its mirror's projections. */
export function targetQuantiles(img: PreparedImage, p: Projection, Q: number): Float32Array {
  const projected = tf.tidy(() => {
    const art = tf.tensor4d(img.rgb, [1, img.height, img.width, 3]);
    let both = tf.concat([art, tf.reverse(art, [2])], 0);
    if (p.pool > 1) both = tf.avgPool(both, p.pool, p.pool, 'valid');
    return tf.conv2d(both, p.filter, 1, 'valid');
  });
  const v = projected.dataSync();
  projected.dispose();
  const D = p.D;
  const all = v.length / D;
  // Sorting dominates the setup: a fixed low-discrepancy sample of 4·Q patches per direction
  // gives the same quantiles within sampling noise, ~8x faster at 256².
  const N = Math.min(all, 4 * Q);
  const pick = new Uint32Array(N);
  for (let i = 0; i < N; i++) pick[i] = N === all ? i : Math.floor(((i * 0.6180339887498949) % 1) * all);
  const q = new Float32Array(D * Q);
  const col = new Float32Array(N);
  for (let d = 0; d < D; d++) {
    for (let i = 0; i < N; i++) col[i] = v[pick[i]! * D + d]!;
    col.sort();
    for (let i = 0; i < Q; i++) q[d * Q + i] = col[Math.min(N - 1, Math.floor(((i + 0.5) * N) / Q))]!;
  }
  return q;
}

/** Quantiles of a two-artwork mixture (weights wa, 1-wa) from each one's quantiles, per direction. */
export function blendQuantiles(qa: Float32Array, qb: Float32Array, wa: number, D: number, Q: number): Float32Array {
  const out = new Float32Array(D * Q);
  const ma = wa / Q, mb = (1 - wa) / Q;
  for (let d = 0; d < D; d++) {
    let ia = 0, ib = 0, mass = 0, o = 0;
    const base = d * Q;
    while (o < Q && (ia < Q || ib < Q)) {
      const takeA = ib >= Q || (ia < Q && qa[base + ia]! <= qb[base + ib]!);
      const value = takeA ? qa[base + ia++]! : qb[base + ib++]!;
      mass += takeA ? ma : mb;
      while (o < Q && (o + 0.5) / Q <= mass) out[base + o++] = value;
    }
    while (o < Q) out[base + o++] = Math.max(qa[base + Q - 1]!, qb[base + Q - 1]!);
  }
  return out;
}

const INDEX_BITS = 2097152; // 2^21: ranks by (order-preserving float bits)·2^21 + index, exact in a double

/**
 * The SW loss of one projection for a batch: `targets[b]` holds element b's quantiles (D×Q).
 * Sorting happens in JS on the values read back; the loss tensor keeps the gradient path.
 */
export function swLoss(gen: tf.Tensor4D, p: Projection, targets: Float32Array[], Q: number): tf.Scalar {
  const pooled = p.pool > 1 ? tf.avgPool(gen, p.pool, p.pool, 'valid') : gen;
  const proj = projectValid(pooled, p.filter);
  const gv = proj.dataSync();
  const D = p.D;
  const B = proj.shape[0];
  const N = proj.shape[1] * proj.shape[2];
  const matched = new Float32Array(gv.length);
  const keys = new Float64Array(N);
  const u = new Uint32Array(1);
  const f = new Float32Array(u.buffer);
  for (let b = 0; b < B; b++) {
    const q = targets[b]!;
    const off = b * N;
    for (let d = 0; d < D; d++) {
      for (let i = 0; i < N; i++) {
        f[0] = gv[(off + i) * D + d]!;
        const bits = u[0]!;
        keys[i] = ((bits & 0x80000000) ? ~bits >>> 0 : (bits | 0x80000000) >>> 0) * INDEX_BITS + i;
      }
      keys.sort();
      for (let i = 0; i < N; i++) matched[(off + (keys[i]! % INDEX_BITS)) * D + d] = q[d * Q + Math.min(Q - 1, Math.floor(((i + 0.5) * Q) / N))]!;
    }
  }
  return tf.mean(tf.squaredDifference(proj, tf.tensor(matched, proj.shape))) as tf.Scalar;
}
