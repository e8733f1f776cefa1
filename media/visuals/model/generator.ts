// The generator: a small fully convolutional net from noise to RGB, conditioned on a blend of
// per-artwork style codes through FiLM. Level 0 takes noise at the coarsest resolution; each next
// level doubles the resolution (nearest), adds fresh noise channels, and runs two 3×3 convs, each
// followed by instance norm, FiLM (γ, β from the style code) and leaky ReLU. A 1×1 conv and a
// sigmoid give RGB. Trained on small crops, it generates any size by enlarging the noise.
import { canonicalConditioning, type Conditioning, type Hyperparameters } from './types.ts';
import { conv2dReflect, conv2dSame, gaussian, mulberry32, tf } from './tf.ts';

export type Params = Map<string, tf.Tensor>;

/** The method's extra hyperparameters beyond types.ts's named ones. */
export interface ArchOptions {
  /** Dilation of each level's second conv (coarse levels see further at no cost). */
  dilations: number[];
  /** Generation runs at size/upscale and is enlarged bilinearly (the artwork's scale at trainScale). */
  upscale: number;
  /** Coarsest-level cells generated beyond each edge and cropped away (zero padding marks edges). */
  margin: number;
  /** 'reflect' or 'zero' padding of the 3×3 convs. */
  padding: 'reflect' | 'zero';
  /** Whether `busy` scales the canvas the net runs on (more, smaller shapes). */
  busyZoom: boolean;
}

export function archOf(hp: Hyperparameters): ArchOptions {
  const levels = hp.levels.length;
  const dil = Array.isArray(hp['dilations']) ? (hp['dilations'] as number[]) : [];
  return {
    dilations: hp.levels.map((_, i) => dil[i] ?? 1),
    upscale: typeof hp['upscale'] === 'number' ? (hp['upscale'] as number) : 2,
    margin: typeof hp['margin'] === 'number' ? Math.max(0, Math.floor(hp['margin'] as number)) : levels > 0 ? 1 : 0,
    padding: hp['padding'] === 'reflect' ? 'reflect' : 'zero',
    busyZoom: hp['busyZoom'] === true,
  };
}

/** Parameter names and shapes in the weights' fixed order. */
export function paramShapes(hp: Hyperparameters, artworks: number, artSizes: [number, number][] = []): [string, number[]][] {
  const out: [string, number[]][] = [['codes', [artworks, hp.code]]];
  hp.levels.forEach((c, i) => {
    const cin = i === 0 ? (hp.noise[0] ?? 8) : hp.levels[i - 1]! + (hp.noise[i] ?? 0);
    out.push([`w${i}a`, [3, 3, cin, c]], [`w${i}b`, [3, 3, c, c]], [`film${i}`, [hp.code, 4 * c]], [`b${i}`, [4 * c]]);
  });
  const outCh = isWarp(hp) ? 5 : 3;
  out.push(['rgb', [1, 1, hp.levels[hp.levels.length - 1]!, outCh]], ['rgbB', [outCh]]);
  // A warp model carries its artwork at the training scale (what it samples from).
  if (isWarp(hp)) artSizes.forEach(([w, h], i) => out.push([`art${i}`, [h, w, 3]]));
  return out;
}

/** Whether the net predicts where to sample the artwork (plus a colour residual) rather than colours. */
export function isWarp(hp: Hyperparameters): boolean {
  return hp['output'] === 'warp';
}

/** Seeded initial values (He-scaled convs, small FiLM, unit style codes). */
export function initialValues(hp: Hyperparameters, artworks: number, seed: number): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(hp, artworks)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let scale = 0;
    if (name.startsWith('art')) continue;
    if (name === 'codes') scale = 1;
    else if (name.startsWith('film')) scale = 0.1;
    else if (name === 'rgb' || /^w\d+[ab]$/.test(name)) {
      const fanIn = shape[0]! * shape[1]! * shape[2]!;
      scale = Math.sqrt((name === 'rgb' ? 1 : 2) / fanIn);
    }
    out.set(name, scale === 0 ? new Float32Array(n) : gaussian(rand, n, scale));
  }
  return out;
}

function instanceNorm(x: tf.Tensor4D): tf.Tensor4D {
  const { mean, variance } = tf.moments(x, [1, 2], true);
  return tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5)));
}

/**
 * RGB in 0..1, [B, H, W, 3], from per-level noise and [B, artworks] blend weights.
 * `train` uses the customGrad convs; inference uses plain conv2d.
 */
export function forward(P: Params, hp: Hyperparameters, blend: tf.Tensor2D, noises: tf.Tensor4D[], train: boolean, opts: { tables?: tf.Tensor3D[]; raw?: boolean } = {}): tf.Tensor4D {
  const arch = archOf(hp);
  const conv = (x: tf.Tensor4D, w: tf.Tensor4D, d = 1): tf.Tensor4D => {
    if (arch.padding === 'reflect' && w.shape[0] > 1) return conv2dReflect(x, w, d, train);
    return train ? conv2dSame(x, w, d) : tf.conv2d(x, w, 1, 'same', 'NHWC', d);
  };
  const code = tf.matMul(blend, P.get('codes') as tf.Tensor2D);
  let x = noises[0]!;
  hp.levels.forEach((c, i) => {
    if (i > 0) {
      x = tf.image.resizeNearestNeighbor(x, [x.shape[1] * 2, x.shape[2] * 2]);
      if ((hp.noise[i] ?? 0) > 0) x = tf.concat([x, noises[i]!], 3);
    }
    const film = tf.add(tf.matMul(code, P.get(`film${i}`) as tf.Tensor2D), P.get(`b${i}`)!);
    const [g1, b1, g2, b2] = tf.split(film, 4, 1).map((t) => t.reshape([-1, 1, 1, c]));
    x = tf.leakyRelu(tf.add(tf.mul(instanceNorm(conv(x, P.get(`w${i}a`) as tf.Tensor4D)), tf.add(g1!, 1)), b1!), 0.2);
    x = tf.leakyRelu(tf.add(tf.mul(instanceNorm(conv(x, P.get(`w${i}b`) as tf.Tensor4D, arch.dilations[i])), tf.add(g2!, 1)), b2!), 0.2);
  });
  const out = tf.add(conv(x, P.get('rgb') as tf.Tensor4D), P.get('rgbB')!);
  if (!isWarp(hp)) return tf.sigmoid(out) as tf.Tensor4D;
  if (opts.raw) return out as tf.Tensor4D;
  return warpOutput(opts.tables ?? warpTables(P, blend.shape[1]), blend, out as tf.Tensor4D);
}

/**
 * Warp output: channels 0–1 are where to sample (sigmoid, 0..1 of the artwork's width and height),
 * 2–4 a small colour residual. Each artwork is sampled bilinearly and the samples are blended by the
 * style weights. The gradient reaches the coordinates through the bilinear weights; the artwork is
 * a constant, so gather needs no gradient (the wasm backend has none).
 */
export function warpTables(P: Params, artworks: number): tf.Tensor3D[] {
  return Array.from({ length: artworks }, (_, a) => P.get(`art${a}`) as tf.Tensor3D);
}

export function warpOutput(tables: tf.Tensor3D[], blend: tf.Tensor2D, out: tf.Tensor4D): tf.Tensor4D {
  const [B, H, W] = out.shape;
  const [coords, residual] = tf.split(out, [2, 3], 3);
  const c = tf.sigmoid(coords!);
  const [cx, cy] = tf.split(c, 2, 3);
  const weights = tf.split(blend, blend.shape[1], 1);
  let acc: tf.Tensor4D = tf.mul(tf.tanh(residual!), 0.15);
  // Where to sample, read back: integer corners are constants (no gradient path through floor or
  // gather); the fractions stay on the tape.
  const cxv = cx!.dataSync();
  const cyv = cy!.dataSync();
  const n = cxv.length;
  const bv = blend.dataSync();
  for (let a = 0; a < blend.shape[1]; a++) {
    let used = false;
    for (let b = 0; b < B; b++) used ||= bv[b * blend.shape[1] + a]! !== 0;
    if (!used) continue;
    const art = tables[a]!;
    const [h, w] = art.shape;
    const table = art.reshape([h * w, 3]);
    const x0v = new Float32Array(n), y0v = new Float32Array(n);
    const idx = [new Int32Array(n), new Int32Array(n), new Int32Array(n), new Int32Array(n)] as const;
    for (let i = 0; i < n; i++) {
      const x0 = Math.min(Math.max(0, w - 2), Math.floor(cxv[i]! * (w - 1)));
      const y0 = Math.min(Math.max(0, h - 2), Math.floor(cyv[i]! * (h - 1)));
      x0v[i] = x0;
      y0v[i] = y0;
      const x1 = Math.min(w - 1, x0 + 1), y1 = Math.min(h - 1, y0 + 1);
      idx[0][i] = y0 * w + x0;
      idx[1][i] = y0 * w + x1;
      idx[2][i] = y1 * w + x0;
      idx[3][i] = y1 * w + x1;
    }
    const fx = tf.sub(tf.mul(cx!, w - 1), tf.tensor4d(x0v, [B, H, W, 1]));
    const fy = tf.sub(tf.mul(cy!, h - 1), tf.tensor4d(y0v, [B, H, W, 1]));
    const g = (k: 0 | 1 | 2 | 3) => tf.gather(table, tf.tensor1d(idx[k], 'int32')).reshape([B, H, W, 3]);
    const top = tf.add(tf.mul(g(0), tf.sub(1, fx)), tf.mul(g(1), fx));
    const bottom = tf.add(tf.mul(g(2), tf.sub(1, fx)), tf.mul(g(3), fx));
    const sample = tf.add(tf.mul(top, tf.sub(1, fy)), tf.mul(bottom, fy));
    acc = tf.add(acc, tf.mul(sample, weights[a]!.reshape([B, 1, 1, 1]))) as tf.Tensor4D;
  }
  return acc;
}

/** Which noise levels `busy` scales (the coarse half after the input) and which `detail` scales (the rest). */
export function amplitudeOf(hp: Hyperparameters, level: number, busyAmp: number, detailAmp: number): number {
  if (level === 0) return 1;
  return level < Math.ceil(hp.levels.length / 2) ? busyAmp : detailAmp;
}

/** Per-level noise for B images of side `side` (a multiple of 2^(levels-1)), amplitudes per image. */
export function makeNoises(hp: Hyperparameters, side: number, amps: [number, number][], rand: () => number): tf.Tensor4D[] {
  const B = amps.length;
  const out: tf.Tensor4D[] = [];
  let h = side >> (hp.levels.length - 1);
  hp.levels.forEach((_, i) => {
    const c = hp.noise[i] ?? 0;
    if (c > 0) {
      const per = h * h * c;
      const data = gaussian(rand, B * per);
      for (let b = 0; b < B; b++) {
        const a = amplitudeOf(hp, i, amps[b]![0], amps[b]![1]);
        if (a !== 1) for (let j = b * per; j < (b + 1) * per; j++) data[j]! *= a;
      }
      out.push(tf.tensor4d(data, [B, h, h, c]));
    } else out.push(tf.zeros([B, h, h, 1]) as tf.Tensor4D);
    h *= 2;
  });
  return out;
}

/** A noise amplitude from a 0..1 prompt value (training draws from the same range). */
export function amplitudeFor(v: number): number {
  return 0.5 + Math.min(1, Math.max(0, v));
}

/** The blend vector over the model's artworks; unknown ids are ignored, none known means the first. */
export function blendVector(artworkIds: string[], cond: Conditioning): Float32Array {
  const v = new Float32Array(artworkIds.length);
  for (const a of canonicalConditioning(cond).artworks) {
    const i = artworkIds.indexOf(a.id);
    if (i >= 0) v[i]! += a.weight;
  }
  const sum = v.reduce((s, x) => s + x, 0);
  if (sum <= 0) v[0] = 1;
  else for (let i = 0; i < v.length; i++) v[i]! /= sum;
  return v;
}

/** A model ready to generate: its tensors live until dispose(). */
export interface LoadedModel {
  id: string;
  hp: Hyperparameters;
  artworkIds: string[];
  params: Params;
  dispose(): void;
}

/** RGBA bytes, size×size×4, alpha 255. Same model, conditioning, seed and size: same bytes. */
export function generateRgba(model: LoadedModel, cond: Conditioning, seed: number, size: number): Uint8Array {
  const { hp } = model;
  const arch = archOf(hp);
  const canon = canonicalConditioning(cond);
  const cell = 1 << (hp.levels.length - 1);
  // `busy` is also how many shapes fit the texture: the net runs on a larger canvas (smaller
  // shapes once enlarged to `size`) for a busy prompt, a smaller one for a calm prompt.
  const zoom = arch.busyZoom ? 0.9 * 2 ** (canon.busy - 0.5) : 1;
  const genSide = Math.max(cell, Math.round((size / arch.upscale) * zoom / cell) * cell);
  const marginPx = arch.margin * cell;
  const side = genSide + 2 * marginPx;
  const rand = mulberry32((seed >>> 0) ^ 0x9e3779b9);
  const amps: [number, number][] = [[amplitudeFor(canon.busy), amplitudeFor(canon.detail)]];
  const blend = blendVector(model.artworkIds, canon);
  const noises = makeNoises(hp, side, amps, rand);
  const warp = isWarp(hp);
  const out = tf.tidy(() => {
    const blendT = tf.tensor2d(blend, [1, blend.length]);
    let img = forward(model.params, hp, blendT, noises, false, { raw: warp });
    const ch = img.shape[3];
    if (marginPx > 0) img = tf.slice(img, [0, marginPx, marginPx, 0], [1, genSide, genSide, ch]);
    // A warp model enlarges its smooth sampling field and samples the full-resolution artwork.
    if (genSide !== size) img = tf.image.resizeBilinear(img, [size, size], false, true);
    return warp ? img : tf.mul(img, 255);
  });
  for (const n of noises) n.dispose();
  const values = out.dataSync() as Float32Array;
  out.dispose();
  const rgba = new Uint8Array(size * size * 4);
  if (warp) {
    warpPixels(values, size * size, blend, tablesOf(model), rgba);
    return rgba;
  }
  for (let i = 0, j = 0; i < size * size; i++, j += 3) {
    rgba[i * 4] = clampByte(values[j]!);
    rgba[i * 4 + 1] = clampByte(values[j + 1]!);
    rgba[i * 4 + 2] = clampByte(values[j + 2]!);
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}

function clampByte(v: number): number {
  return Math.min(255, Math.max(0, Math.round(v)));
}

const tableCache = new WeakMap<LoadedModel, { width: number; height: number; rgb: Float32Array }[]>();

/** The artwork tables of a warp model, read once per loaded model. */
function tablesOf(model: LoadedModel): { width: number; height: number; rgb: Float32Array }[] {
  let t = tableCache.get(model);
  if (!t) {
    t = model.artworkIds.map((_, a) => {
      const art = model.params.get(`art${a}`)!;
      return { width: art.shape[1]!, height: art.shape[0]!, rgb: art.dataSync() as Float32Array };
    });
    tableCache.set(model, t);
  }
  return t;
}

/**
 * warpOutput for one image, in JS: tfjs's gather on wasm takes ~27 ms per 512² tap (four taps per
 * artwork), this loop a few ms. Same formula as warpOutput, in doubles.
 */
function warpPixels(raw: Float32Array, n: number, blend: Float32Array, tables: { width: number; height: number; rgb: Float32Array }[], rgba: Uint8Array): void {
  const acc = new Float64Array(3);
  for (let i = 0; i < n; i++) {
    const o = i * 5;
    const cx = 1 / (1 + Math.exp(-raw[o]!));
    const cy = 1 / (1 + Math.exp(-raw[o + 1]!));
    for (let k = 0; k < 3; k++) acc[k] = 0.15 * Math.tanh(raw[o + 2 + k]!);
    for (let a = 0; a < blend.length; a++) {
      const wa = blend[a]!;
      if (wa === 0) continue;
      const { width: w, height: h, rgb } = tables[a]!;
      const x = cx * (w - 1), y = cy * (h - 1);
      const x0 = Math.min(Math.max(0, w - 2), Math.floor(x)), y0 = Math.min(Math.max(0, h - 2), Math.floor(y));
      const x1 = Math.min(w - 1, x0 + 1), y1 = Math.min(h - 1, y0 + 1);
      const fx = x - x0, fy = y - y0;
      const p00 = (y0 * w + x0) * 3, p01 = (y0 * w + x1) * 3, p10 = (y1 * w + x0) * 3, p11 = (y1 * w + x1) * 3;
      for (let k = 0; k < 3; k++) {
        const top = rgb[p00 + k]! * (1 - fx) + rgb[p01 + k]! * fx;
        const bottom = rgb[p10 + k]! * (1 - fx) + rgb[p11 + k]! * fx;
        acc[k]! += wa * (top * (1 - fy) + bottom * fy);
      }
    }
    rgba[i * 4] = clampByte(acc[0]! * 255);
    rgba[i * 4 + 1] = clampByte(acc[1]! * 255);
    rgba[i * 4 + 2] = clampByte(acc[2]! * 255);
    rgba[i * 4 + 3] = 255;
  }
}
