// Training a release's visual model, in-process and pure (no file I/O): the artwork in, the
// weights and what the record needs out. The budget is in steps, never seconds, so the same
// images, seed and steps give the same weights (on the same machine).
import { createHash } from 'node:crypto';
import { VisualModelError } from './errors.ts';
import { forward, initialValues, isWarp, makeNoises, paramShapes, type Params } from './generator.ts';
import { blendQuantiles, makeBanks, prepareImage, swLoss, targetQuantiles, type PreparedImage } from './sw-loss.ts';
import { loadTf, mulberry32, tf, tfSoftware } from './tf.ts';
import type { Hyperparameters, TrainConfig, TrainingImage, TrainProgress, TrainResult } from './types.ts';
import { DEFAULT_STEPS } from './types.ts';
import { encodeWeights } from './weights.ts';

export { VisualModelError };

/**
 * The method's defaults, chosen by looking at sheets of the demo release's six artworks
 * (issue 17 report; /work/notes/issue17-img/model-*.png). Against the research's 64² crops of a
 * 256² artwork: the whole artwork at 128² area is the crop (coarse patches then see its large
 * shapes), a fifth level and a dilated coarse conv widen the receptive field, 7×7 patches with
 * 64 directions at pools 4 and 8, and reflect padding (zero padding drew edge bands).
 * The output is a warp: the net says where to sample the artwork (plus a small colour residual),
 * which gave crisp, marbled recombinations of the artwork's own colour ramps, lines and dots,
 * where direct RGB output gave soft blobs; its nearest-64²-patch distances to the artwork were
 * no smaller than the RGB model's. The artwork is kept in the weights at tableScale (~0.8 MB per
 * artwork as float32). About 440 ms CPU per step on one busy core of this machine plus ~10 s of
 * setup: DEFAULT_STEPS fits ~5 minutes for six artworks.
 */
export const DEFAULT_HYPERPARAMETERS: Hyperparameters = {
  levels: [48, 32, 24, 16, 12],
  code: 8,
  noise: [8, 2, 2, 2, 2],
  scales: [[1, 1, 8], [1, 5, 32], [2, 5, 32], [4, 7, 64], [8, 7, 64], [16, 3, 16]],
  banks: 6,
  quantiles: 4096,
  batch: 2,
  crop: 128,
  trainScale: 128,
  learningRate: 3e-3,
  dilations: [1, 2, 1, 1, 1],
  upscale: 2,
  // Reflect padding leaves no edge bands, so no margin needs generating and cropping.
  margin: 0,
  padding: 'reflect',
  busyZoom: true,
  output: 'warp',
  tableScale: 256,
  /** Share of steps spent on random two-artwork blends (only with two or more artworks). */
  blendFraction: 0.2,
};
export { DEFAULT_STEPS };

const MAX_IMAGES = 64;
const MAX_CURVE_POINTS = 200;

function resolveHyperparameters(over: Partial<Hyperparameters> | undefined): Hyperparameters {
  const hp = { ...DEFAULT_HYPERPARAMETERS, ...(over ?? {}) } as Hyperparameters;
  const cell = 1 << (hp.levels.length - 1);
  if (hp.levels.length < 1 || hp.levels.some((c) => !Number.isInteger(c) || c < 1)) throw new VisualModelError('hyperparameters: levels must be positive channel counts');
  if (!Number.isInteger(hp.crop) || hp.crop < cell || hp.crop % cell) throw new VisualModelError(`hyperparameters: crop ${hp.crop} must be a multiple of ${cell}`);
  for (const [pool, k, D] of hp.scales) {
    if (hp.crop / pool < k || D < 1) throw new VisualModelError(`hyperparameters: scale [${pool},${k},${D}] does not fit a ${hp.crop}px crop`);
  }
  if (hp.banks < 1 || hp.batch < 1 || hp.quantiles < 2 || hp.trainScale < 8) throw new VisualModelError('hyperparameters out of range');
  return hp;
}

interface BankTargets {
  /** [artwork][scale] quantiles (D×Q). */
  perArtwork: Float32Array[][];
}

export async function trainVisualModel(
  images: TrainingImage[],
  config: TrainConfig,
  onProgress?: (p: TrainProgress) => void,
  signal?: AbortSignal,
): Promise<TrainResult> {
  const started = performance.now();
  const cpu0 = process.cpuUsage();
  if (images.length === 0) throw new VisualModelError('no artwork to train on (none with consent?)');
  if (images.length > MAX_IMAGES) throw new VisualModelError(`at most ${MAX_IMAGES} artworks per model (got ${images.length})`);
  if (new Set(images.map((i) => i.id)).size !== images.length) throw new VisualModelError('two artworks share an id');
  if (!Number.isInteger(config.steps) || config.steps < 1) throw new VisualModelError(`steps must be a positive integer (got ${config.steps})`);
  if (!Number.isFinite(config.seed)) throw new VisualModelError('seed must be a number');
  const hp = resolveHyperparameters(config.hyperparameters);
  const seed = config.seed >>> 0;
  const minSide = Math.max(hp.crop, ...hp.scales.map(([pool, k]) => pool * k));
  const prepared: PreparedImage[] = images.map((img) => prepareImage(img, hp.trainScale, minSide));
  signal?.throwIfAborted();

  await loadTf();
  const software = await tfSoftware();
  const Q = hp.quantiles;
  const rand = mulberry32(seed * 7919 + 1);
  const banks = makeBanks(hp, rand);
  const targets: BankTargets[] = banks.map((bank) => ({ perArtwork: prepared.map((img) => bank.map((p) => targetQuantiles(img, p, Q))) }));
  await yieldToLoop();
  signal?.throwIfAborted();

  const nArt = images.length;
  const init = initialValues(hp, nArt, seed);
  const params: Params = new Map();
  const variables: tf.Variable[] = [];
  // A warp model keeps its artwork at tableScale (what generation samples); training samples the
  // artwork at trainScale, where the loss is measured.
  const warp = isWarp(hp);
  const tableScale = typeof hp['tableScale'] === 'number' ? (hp['tableScale'] as number) : 4 * hp.trainScale;
  const hiRes = warp ? images.map((img) => prepareImage(img, tableScale, minSide)) : [];
  const artSizes = hiRes.map((p) => [p.width, p.height] as [number, number]);
  const trainTables = warp ? prepared.map((p) => tf.tensor3d(p.rgb, [p.height, p.width, 3])) : undefined;
  for (const [name, shape] of paramShapes(hp, nArt, artSizes)) {
    if (name.startsWith('art')) {
      params.set(name, tf.tensor(hiRes[Number(name.slice(3))]!.rgb, shape));
      continue;
    }
    const initial = tf.tensor(init.get(name)!, shape);
    const v = tf.variable(initial, true, `vm_${name}_${seed}_${variableSerial++}`);
    initial.dispose();
    params.set(name, v);
    variables.push(v);
  }
  const opt = tf.train.adam(hp.learningRate, 0.5, 0.99);
  const blendFraction = typeof hp['blendFraction'] === 'number' ? (hp['blendFraction'] as number) : 0.2;
  const curve: [number, number][] = [];
  const every = Math.max(1, Math.ceil(config.steps / MAX_CURVE_POINTS));
  try {
    for (let step = 0; step < config.steps; step++) {
      const bankIndex = step % banks.length;
      const bank = banks[bankIndex]!;
      const blendStep = nArt > 1 && rand() < blendFraction;
      const blendRows = new Float32Array(hp.batch * nArt);
      const elementTargets: Float32Array[][] = bank.map(() => []);
      const amps: [number, number][] = [];
      for (let b = 0; b < hp.batch; b++) {
        amps.push([0.5 + rand(), 0.5 + rand()]);
        if (blendStep) {
          const a1 = Math.floor(rand() * nArt);
          const a2 = (a1 + 1 + Math.floor(rand() * (nArt - 1))) % nArt;
          const w1 = 0.1 + 0.8 * rand();
          blendRows[b * nArt + a1] = w1;
          blendRows[b * nArt + a2] = 1 - w1;
          bank.forEach((p, s) => elementTargets[s]!.push(blendQuantiles(targets[bankIndex]!.perArtwork[a1]![s]!, targets[bankIndex]!.perArtwork[a2]![s]!, w1, p.D, Q)));
        } else {
          const a = (step * hp.batch + b) % nArt;
          blendRows[b * nArt + a] = 1;
          bank.forEach((_, s) => elementTargets[s]!.push(targets[bankIndex]!.perArtwork[a]![s]!));
        }
      }
      const noises = makeNoises(hp, hp.crop, amps, rand);
      const blend = tf.tensor2d(blendRows, [hp.batch, nArt]);
      const lossT = opt.minimize(() => {
        const gen = forward(params, hp, blend, noises, true, trainTables ? { tables: trainTables } : {});
        let total: tf.Scalar = tf.scalar(0);
        bank.forEach((p, s) => {
          total = tf.add(total, swLoss(gen, p, elementTargets[s]!, Q));
        });
        return total;
      }, true, variables)!;
      const loss = lossT.dataSync()[0]!;
      lossT.dispose();
      blend.dispose();
      for (const n of noises) n.dispose();
      if (!Number.isFinite(loss)) throw new VisualModelError(`training diverged at step ${step + 1} (loss ${loss})`);
      if (step % every === 0 || step === config.steps - 1) curve.push([step + 1, Number(loss.toPrecision(6))]);
      onProgress?.({ step: step + 1, of: config.steps, loss });
      // Let an abort (or IPC) arrive between steps.
      await yieldToLoop();
      signal?.throwIfAborted();
    }
    const tensors = paramShapes(hp, nArt, artSizes).map(([name, shape]) => ({ name, shape, data: params.get(name)!.dataSync() as Float32Array }));
    const weights = encodeWeights({ artworkIds: images.map((i) => i.id), hyperparameters: hp, tensors });
    const cpu = process.cpuUsage(cpu0);
    return {
      weights,
      weightsSha256: createHash('sha256').update(weights).digest('hex'),
      artworkIds: images.map((i) => i.id),
      hyperparameters: hp,
      seed,
      steps: config.steps,
      lossCurve: curve,
      durationMs: Math.round(performance.now() - started),
      cpuMs: Math.round((cpu.user + cpu.system) / 1000),
      software,
    };
  } finally {
    opt.dispose();
    for (const t of params.values()) t.dispose();
    for (const t of trainTables ?? []) t.dispose();
    for (const bank of banks) for (const p of bank) p.filter.dispose();
  }
}

let variableSerial = 0;

function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
