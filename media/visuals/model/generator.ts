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
}

export function archOf(hp: Hyperparameters): ArchOptions {
  const levels = hp.levels.length;
  const dil = Array.isArray(hp['dilations']) ? (hp['dilations'] as number[]) : [];
  return {
    dilations: hp.levels.map((_, i) => dil[i] ?? 1),
    upscale: typeof hp['upscale'] === 'number' ? (hp['upscale'] as number) : 2,
    margin: typeof hp['margin'] === 'number' ? Math.max(0, Math.floor(hp['margin'] as number)) : levels > 0 ? 1 : 0,
    padding: hp['padding'] === 'reflect' ? 'reflect' : 'zero',
  };
}

/** Parameter names and shapes in the weights' fixed order. */
export function paramShapes(hp: Hyperparameters, artworks: number): [string, number[]][] {
  const out: [string, number[]][] = [['codes', [artworks, hp.code]]];
  hp.levels.forEach((c, i) => {
    const cin = i === 0 ? (hp.noise[0] ?? 8) : hp.levels[i - 1]! + (hp.noise[i] ?? 0);
    out.push([`w${i}a`, [3, 3, cin, c]], [`w${i}b`, [3, 3, c, c]], [`film${i}`, [hp.code, 4 * c]], [`b${i}`, [4 * c]]);
  });
  out.push(['rgb', [1, 1, hp.levels[hp.levels.length - 1]!, 3]], ['rgbB', [3]]);
  return out;
}

/** Seeded initial values (He-scaled convs, small FiLM, unit style codes). */
export function initialValues(hp: Hyperparameters, artworks: number, seed: number): Map<string, Float32Array> {
  const rand = mulberry32(seed);
  const out = new Map<string, Float32Array>();
  for (const [name, shape] of paramShapes(hp, artworks)) {
    const n = shape.reduce((a, b) => a * b, 1);
    let scale = 0;
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
export function forward(P: Params, hp: Hyperparameters, blend: tf.Tensor2D, noises: tf.Tensor4D[], train: boolean): tf.Tensor4D {
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
  return tf.sigmoid(tf.add(conv(x, P.get('rgb') as tf.Tensor4D), P.get('rgbB')!));
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
  const genSide = Math.max(cell, Math.ceil(size / arch.upscale / cell) * cell);
  const marginPx = arch.margin * cell;
  const side = genSide + 2 * marginPx;
  const rand = mulberry32((seed >>> 0) ^ 0x9e3779b9);
  const amps: [number, number][] = [[amplitudeFor(canon.busy), amplitudeFor(canon.detail)]];
  const blend = blendVector(model.artworkIds, canon);
  const noises = makeNoises(hp, side, amps, rand);
  const pixels = tf.tidy(() => {
    let img = forward(model.params, hp, tf.tensor2d(blend, [1, blend.length]), noises, false);
    if (marginPx > 0) img = tf.slice(img, [0, marginPx, marginPx, 0], [1, genSide, genSide, 3]);
    if (genSide !== size) img = tf.image.resizeBilinear(img, [size, size], false, true);
    return tf.cast(tf.clipByValue(tf.round(tf.mul(img, 255)), 0, 255), 'int32');
  });
  for (const n of noises) n.dispose();
  const px = pixels.dataSync();
  pixels.dispose();
  const rgba = new Uint8Array(size * size * 4);
  for (let i = 0, j = 0; i < size * size; i++, j += 3) {
    rgba[i * 4] = px[j]!;
    rgba[i * 4 + 1] = px[j + 1]!;
    rgba[i * 4 + 2] = px[j + 2]!;
    rgba[i * 4 + 3] = 255;
  }
  return rgba;
}
