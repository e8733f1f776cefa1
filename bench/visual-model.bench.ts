// `npm run bench -- visual-model [--steps N] [--frames N] [--sheet PATH]`: the visual model's
// quality and speed (issue 17). Trains one model per demo release (the demo, and the pastel
// second demo) in two child processes at once, one per core, with the default budget unless
// --steps; generates a texture for each prompt of a fixed set per release; then measures:
//   - style: a fixed-direction multi-scale sliced-Wasserstein patch distance from each texture
//     to its own release's artwork and to the other release's (own must be smaller, every prompt);
//   - novelty: for 64×64 patches of every texture (grid, stride 32), the nearest 64×64 patch of
//     the training artwork (any position at stride 4, four flips, two scales), against a
//     near-copy threshold calibrated on real copies and on different regions of the artwork;
//   - prompt response: distances between the textures of different prompts, and the same
//     prompt and seed giving the same bytes;
//   - speed: training per release, generation per texture, and the engine's frame time with
//     generated textures among its artwork (the visual-frame goal of 8 ms);
// and draws docs/visual-model-contact-sheet.png. Look at the sheet: the numbers cannot say
// whether a fan would prefer it to today's engine.
import { blendWithTexture } from '../server/rooms/prompt-visuals.ts';
import { DEFAULT_VISUAL_MODEL_MIX } from '../server/config.ts';
import { createHash } from 'node:crypto';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { DEFAULT_HYPERPARAMETERS, DEFAULT_STEPS } from '../media/visuals/model/train.ts';
import { TextureGenerator } from '../media/visuals/model/texture-generator.ts';
import { loadTf, tf } from '../media/visuals/model/tf.ts';
import { trainInChild } from '../media/visuals/model/training-process.ts';
import { GENERATED_TEXTURE_SIZE, textureArtworkId, textureKey, type Conditioning, type TrainingImage, type TrainResult } from '../media/visuals/model/types.ts';
import { buildVisualPack, engineArtwork, type VisualPack } from '../media/visuals/visual-pack.ts';
import { DEMO_RELEASE_ID, writeDemoReleaseFolder } from '../server/catalog/demo-release.ts';
import { SECOND_DEMO_RELEASE_ID, writeSecondDemoReleaseFolder } from '../server/catalog/second-demo-release.ts';
import { interpretPrompt, stableHash, type PromptArtwork } from '../shared/prompt-interpreter.ts';
import type { ReleaseManifest } from '../shared/release-manifest.ts';
import { VisualEngine, type EngineArtwork } from '../shared/visual-engine.ts';
import type { VisualParams } from '../shared/visual-params.ts';
import { drawContactSheet, type SheetImage, type SheetPair, type SheetRelease } from './support/contact-sheet.ts';
import {
  nearestPatches,
  PATCH,
  quantile,
  refSet,
  rgbFromRgba,
  swDistance,
  swSignature,
  type MatMulTf,
  type NearestPatch,
  type RgbImage,
  type SwSignature,
} from './support/patch-metrics.ts';
import { aggressiveParams } from './visual-frame.bench.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DEFAULT_SHEET = path.join(ROOT, 'docs', 'visual-model-contact-sheet.png');
const TRAIN_SEED = 1;
const FRAME_W = 1280;
const FRAME_H = 720;

/**
 * Near-copy threshold, RMS in 0..255 levels between a 64×64 generated patch (with detail) and
 * the nearest 64×64 artwork patch. Set from the calibration this bench prints every run (see
 * bench/README.md): a copy of the artwork as the generator sees it, shifted 1 px and
 * re-encoded as JPEG q90, lands at 2 (median) to 4-6 (p95); different regions of the same
 * artwork at 13-19 (median), and under 8 only where the artist repeated a motif exactly
 * (lattice, identical tiles, halftone).
 */
export const NEAR_COPY_RMS = 8;
/**
 * A patch with less detail than this (RMS of the patch minus its own 8×8 block means, in
 * levels) is a flat field, a smooth gradient or bare paper (the pastel release's paper tooth
 * alone measures about 4): it "matches" any similar area of the artwork and copies nothing, so
 * the near-copy rule looks only at patches with detail. The flat ones are counted and reported.
 */
export const MIN_DETAIL = 6;
/** Reference patches every REF_STRIDE px (then refined at every position in between). */
const REF_STRIDE = 2;
/** Grid of the calibration patches, finer than the textures' (32) since the artwork is small at this scale. */
const CALIBRATION_STRIDE = 16;

/** The fixed prompt set, per release: its pieces by name and in blends, moods, and an unknown word. */
const PROMPTS: Record<string, string[]> = {
  [DEMO_RELEASE_ID]: ['ember glow', 'calm tide', 'neon grid glitch', 'bloom petals', 'dreamy nocturne', 'tide and ember', 'busy grainy bloom', 'zorblax quint'],
  [SECOND_DEMO_RELEASE_ID]: ['wash', 'calm shore', 'geometric tiles', 'watercolour blooms', 'dreamy pastel sea', 'wash and tiles', 'busy grainy tiles', 'zorblax quint'],
};

interface Release {
  id: string;
  title: string;
  manifest: ReleaseManifest;
  images: TrainingImage[];
  pack: VisualPack;
  promptArtwork: PromptArtwork[];
}

interface Generated {
  prompt: string;
  params: VisualParams;
  cond: Conditioning;
  seed: number;
  key: string;
  rgba: Uint8Array;
  ms: number[];
  sameBytes: boolean;
}

type Summary = ReturnType<typeof summary>;
interface NoveltyResult {
  release: string;
  patches: number;
  referencePatches: number;
  all: Summary;
  detailed: Summary & { patches: number; flat: number };
  nearCopies: number;
  /** Share of patches whose nearest grid match is proven (the thumbnail bound of the rest is no nearer). */
  gridExactShare: number;
  calibration: {
    copyShiftedJpeg: { patches: number; underThreshold: number; median: number; p95: number; max: number };
    differentRegions: { patches: number; underThreshold: number; min: number; p5: number; median: number };
    flatRegions: { patches: number; min: number };
  };
}

function parseArgs(args: string[]): { steps: number; frames: number; sheet: string } {
  let steps = DEFAULT_STEPS;
  let frames = 300;
  let sheet = DEFAULT_SHEET;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = () => {
      const v = args[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--steps') steps = Number(next());
    else if (a === '--frames') frames = Number(next());
    else if (a === '--sheet') sheet = path.resolve(next());
    else throw new Error(`unknown argument ${a} (use --steps N, --frames N, --sheet PATH)`);
  }
  if (!Number.isInteger(steps) || steps < 1) throw new Error('--steps must be a positive integer');
  if (!Number.isInteger(frames) || frames < 10) throw new Error('--frames must be an integer ≥ 10');
  return { steps, frames, sheet };
}

async function decodeRgba(bytes: Buffer): Promise<{ width: number; height: number; rgba: Uint8Array }> {
  const img = await loadImage(bytes);
  const c = createCanvas(img.width, img.height);
  const ctx = c.getContext('2d');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, img.width, img.height).data;
  return { width: img.width, height: img.height, rgba: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
}

/** The image resampled so that its area is side² (aspect kept): the generator's pixel scale. */
function atScale(img: { width: number; height: number; rgba: Uint8Array }, side: number): RgbImage {
  const s = side / Math.sqrt(img.width * img.height);
  const w = Math.max(PATCH, Math.round(img.width * s));
  const h = Math.max(PATCH, Math.round(img.height * s));
  const src = createCanvas(img.width, img.height);
  const sctx = src.getContext('2d');
  const data = sctx.createImageData(img.width, img.height);
  data.data.set(img.rgba);
  sctx.putImageData(data, 0, 0);
  const dst = createCanvas(w, h);
  const ctx = dst.getContext('2d');
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(src, 0, 0, w, h);
  return rgbFromRgba(ctx.getImageData(0, 0, w, h).data, w, h);
}

/** A copy as a model might make one: the image shifted by (dx, dy) px and re-encoded as JPEG q90. */
async function shiftedJpeg(img: RgbImage, dx: number, dy: number): Promise<RgbImage> {
  const w = img.width - dx;
  const h = img.height - dy;
  const c = createCanvas(w, h);
  const ctx = c.getContext('2d');
  const data = ctx.createImageData(w, h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const s = ((y + dy) * img.width + x + dx) * 3;
      const o = (y * w + x) * 4;
      data.data[o] = img.rgb[s]!;
      data.data[o + 1] = img.rgb[s + 1]!;
      data.data[o + 2] = img.rgb[s + 2]!;
      data.data[o + 3] = 255;
    }
  }
  ctx.putImageData(data, 0, 0);
  const decoded = await decodeRgba(await c.encode('jpeg', 90));
  return rgbFromRgba(decoded.rgba, decoded.width, decoded.height);
}

/** Whether a reference patch (in an image `scale` times the query's) covers any of the query patch's area. */
function overlaps(qx: number, qy: number, ref: { x: number; y: number }, scale: number): boolean {
  const size = PATCH / scale;
  return ref.x / scale < qx + PATCH && ref.x / scale + size > qx && ref.y / scale < qy + PATCH && ref.y / scale + size > qy;
}

/** A 64×64 patch as RGBA, mirrored as it was matched. */
function patchImage(img: RgbImage, x0: number, y0: number, flipX: boolean, flipY: boolean): SheetImage {
  const rgba = new Uint8Array(PATCH * PATCH * 4);
  for (let y = 0; y < PATCH; y++) {
    for (let x = 0; x < PATCH; x++) {
      const sx = x0 + (flipX ? PATCH - 1 - x : x);
      const sy = y0 + (flipY ? PATCH - 1 - y : y);
      const s = (sy * img.width + sx) * 3;
      const o = (y * PATCH + x) * 4;
      rgba[o] = Math.round(img.rgb[s]!);
      rgba[o + 1] = Math.round(img.rgb[s + 1]!);
      rgba[o + 2] = Math.round(img.rgb[s + 2]!);
      rgba[o + 3] = 255;
    }
  }
  return { width: PATCH, height: PATCH, rgba };
}

/** Bilinear enlargement by `factor` (half-pixel centres), as the generator enlarges its output. */
function upsample(img: RgbImage, factor: number): RgbImage {
  if (factor === 1) return img;
  const w = img.width * factor;
  const h = img.height * factor;
  const t = tf.tidy(() => tf.image.resizeBilinear(tf.tensor4d(img.rgb, [1, img.height, img.width, 3]), [h, w], false, true));
  const rgb = new Float32Array(t.dataSync());
  t.dispose();
  return { width: w, height: h, rgb };
}

async function loadRelease(folder: string, manifest: ReleaseManifest): Promise<Release> {
  const files = await Promise.all(manifest.artwork.map((a) => fsp.readFile(path.join(folder, a.file))));
  const pack = await buildVisualPack(manifest.artwork.map((a, i) => ({ id: a.id, tags: a.tags, consent: a.consent, bytes: files[i]!, mimeType: 'image/png' })));
  const images: TrainingImage[] = [];
  for (let i = 0; i < files.length; i++) {
    const d = await decodeRgba(files[i]!);
    images.push({ id: manifest.artwork[i]!.id, sha256: createHash('sha256').update(files[i]!).digest('hex'), ...d });
  }
  const promptArtwork = manifest.artwork.map((a) => ({
    id: a.id,
    title: a.title ?? a.id,
    tags: a.tags,
    palette: pack.artwork.find((p) => p.id === a.id)?.palette.map((c) => c.hex) ?? [],
  }));
  return { id: manifest.id, title: manifest.title, manifest, images, pack, promptArtwork };
}

function conditioningOf(params: VisualParams, release: Release): Conditioning {
  const artworks = params.artworks.length > 0 ? params.artworks.map((a) => ({ id: a.id, weight: a.weight })) : [{ id: release.images[0]!.id, weight: 1 }];
  return { artworks, detail: params.texture.grain, busy: params.intensity };
}

const benchStarted = performance.now();
/** A progress line with the seconds since the bench started. */
const say = (msg: string) => console.log(`[${Math.round((performance.now() - benchStarted) / 1000)} s] ${msg}`);

const round = (v: number, digits = 2) => Math.round(v * 10 ** digits) / 10 ** digits;
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function summary(xs: number[]): { min: number; p5: number; median: number; max: number } {
  return { min: round(Math.min(...xs)), p5: round(quantile(xs, 0.05)), median: round(quantile(xs, 0.5)), max: round(Math.max(...xs)) };
}

/** Whole-texture RMS between two same-size RGBA images, 0..255 levels. */
function pixelRms(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  let n = 0;
  for (let i = 0; i < a.length; i += 4) {
    for (let c = 0; c < 3; c++) s += (a[i + c]! - b[i + c]!) ** 2;
    n += 3;
  }
  return Math.sqrt(s / n);
}

function frameOf(engine: VisualEngine, params: VisualParams, timeSec: number, w = 640, h = 360): SheetImage {
  const out = new Uint8ClampedArray(w * h * 4);
  engine.renderFrame(out, w, h, { from: null, to: params, mix: 1, timeSec, energy: 0.6, beatPhase: 0.1 });
  return { width: w, height: h, rgba: out };
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const opts = parseArgs(args);
  const tmp = await fsp.mkdtemp(path.join(os.tmpdir(), 'bench-visual-model-'));
  const generator = new TextureGenerator();
  try {
    // ------------------------------------------------------------ the two releases
    say('writing the two demo release folders');
    const folders = [path.join(tmp, 'demo'), path.join(tmp, 'demo-2')];
    const manifests = [await writeDemoReleaseFolder(folders[0]!), await writeSecondDemoReleaseFolder(folders[1]!)];
    const releases = [await loadRelease(folders[0]!, manifests[0]!), await loadRelease(folders[1]!, manifests[1]!)];

    // ------------------------------------------------------------ training, two children at once
    say(`training ${releases.length} models, ${opts.steps} steps each, one child process per release`);
    const trainStarted = performance.now();
    // One failed training stops the other child rather than leaving it to run on.
    const stopTraining = new AbortController();
    const trained: { result: TrainResult; wallMs: number }[] = await Promise.all(
      releases.map(async (r) => {
        const started = performance.now();
        let lastTenth = -1;
        const result = await trainInChild(
          { images: r.images, config: { seed: TRAIN_SEED, steps: opts.steps }, weightsFile: path.join(tmp, `${r.id}.weights`) },
          {
            signal: stopTraining.signal,
            onProgress: (p) => {
              const tenth = Math.floor((p.step / p.of) * 10);
              if (tenth > lastTenth) {
                lastTenth = tenth;
                say(`  ${r.id}: step ${p.step}/${p.of} loss ${p.loss.toFixed(4)} (${Math.round((performance.now() - started) / 1000)} s)`);
              }
            },
          },
        );
        return { result, wallMs: performance.now() - started };
      }).map((p) =>
        p.catch((err: unknown) => {
          stopTraining.abort(err);
          throw err;
        }),
      ),
    );
    const trainWallMs = performance.now() - trainStarted;

    // ------------------------------------------------------------ generation
    say('generating textures');
    const generated: Generated[][] = [];
    const genMs: number[] = [];
    const coldMs: number[] = [];
    for (let ri = 0; ri < releases.length; ri++) {
      const r = releases[ri]!;
      const model = { id: trained[ri]!.result.weightsSha256, weights: trained[ri]!.result.weights };
      // The first job loads the weights into the worker (and the first of all starts tfjs): timed apart.
      let t = performance.now();
      await generator.generate(model, { artworks: [], detail: 0.5, busy: 0.5 }, 12345);
      coldMs.push(performance.now() - t);
      const list: Generated[] = [];
      for (const prompt of PROMPTS[r.id]!) {
        const { params } = interpretPrompt(prompt, { artwork: r.promptArtwork, previous: null });
        const cond = conditioningOf(params, r);
        const seed = stableHash(prompt);
        t = performance.now();
        const rgba = await generator.generate(model, cond, seed);
        const ms1 = performance.now() - t;
        t = performance.now();
        const again = await generator.generate(model, cond, seed);
        const ms2 = performance.now() - t;
        genMs.push(ms1, ms2);
        list.push({ prompt, params, cond, seed, key: await textureKey(model.id, cond, seed), rgba, ms: [ms1, ms2], sameBytes: sha(rgba) === sha(again) });
      }
      generated.push(list);
    }

    // ------------------------------------------------------------ style fidelity
    say('measuring style (sliced Wasserstein) distances');
    const hp = trained[0]!.result.hyperparameters;
    const trainScale = hp.trainScale ?? DEFAULT_HYPERPARAMETERS.trainScale;
    const upscale = typeof hp['upscale'] === 'number' ? (hp['upscale'] as number) : 1;
    // The generator draws at trainScale and enlarges by `upscale`: its 512² texture shows the
    // artwork's features at the size they have in the artwork scaled to an area of outputSide².
    const outputSide = trainScale * upscale;
    const artAtOutput = releases.map((r) => r.images.map((img) => atScale(img, outputSide)));
    const artAtTrain = releases.map((r) => r.images.map((img) => atScale(img, trainScale)));
    const pooled: SwSignature[] = artAtOutput.map((imgs) => swSignature(imgs));
    const perPiece: SwSignature[][] = artAtOutput.map((imgs) => imgs.map((img) => swSignature([img])));
    const textureImages: RgbImage[][] = generated.map((list) => list.map((g) => rgbFromRgba(g.rgba, GENERATED_TEXTURE_SIZE, GENERATED_TEXTURE_SIZE)));
    const textureSigs: SwSignature[][] = textureImages.map((list) => list.map((img) => swSignature([img])));
    // "Own" is the artwork the prompt asked for (the conditioning's pieces, pooled); "other" is the
    // nearest single piece of the other release, the strictest rival. The release-wide pooled
    // distances are reported too: a release's cover can sit far from its own other pieces.
    const condSigs = new Map<string, SwSignature>();
    const condSig = (ri: number, cond: Conditioning): SwSignature => {
      const ids = cond.artworks.filter((a) => a.weight > 0).map((a) => a.id).sort();
      const key = `${ri}:${ids.join(',')}`;
      let sig = condSigs.get(key);
      if (!sig) {
        const imgs = artAtOutput[ri]!.filter((_, k) => ids.includes(releases[ri]!.images[k]!.id));
        sig = imgs.length > 0 ? swSignature(imgs) : pooled[ri]!;
        condSigs.set(key, sig);
      }
      return sig;
    };
    const style = releases.map((r, ri) => {
      const other = 1 - ri;
      const rows = generated[ri]!.map((g, gi) => {
        const sig = textureSigs[ri]![gi]!;
        const own = swDistance(sig, condSig(ri, g.cond));
        const oth = Math.min(...perPiece[other]!.map((p) => swDistance(sig, p)));
        return {
          prompt: g.prompt,
          asked: g.cond.artworks.map((a) => a.id),
          own: round(own),
          other: round(oth),
          ratio: round(own / oth, 3),
          ownReleasePooled: round(swDistance(sig, pooled[ri]!)),
          otherReleasePooled: round(swDistance(sig, pooled[other]!)),
        };
      });
      // For scale: how far each real piece is from the nearest piece of its own release (not
      // itself) and of the other release. A generated texture cannot be expected to sit much
      // nearer its own artwork than the release's pieces sit to one another.
      const pieces = r.images.map((img, pi) => {
        const ownOthers = perPiece[ri]!.filter((_, k) => k !== pi).map((p) => swDistance(perPiece[ri]![pi]!, p));
        return {
          id: img.id,
          nearestOwnPiece: ownOthers.length > 0 ? round(Math.min(...ownOthers)) : null,
          nearestOtherPiece: round(Math.min(...perPiece[other]!.map((p) => swDistance(perPiece[ri]![pi]!, p)))),
        };
      });
      return { release: r.id, prompts: rows, maxRatio: Math.max(...rows.map((x) => x.ratio)), ownSmallerEveryPrompt: rows.every((x) => x.own < x.other), artworkReference: pieces };
    });

    // ------------------------------------------------------------ novelty
    say('searching nearest artwork patches (novelty)');
    await loadTf();
    const mm = tf as unknown as MatMulTf;
    const novelty: NoveltyResult[] = [];
    const sheetPairs: SheetPair[][] = [];
    const worstExamples: { release: string; prompt: string; patch: NearestPatch }[] = [];
    for (let ri = 0; ri < releases.length; ri++) {
      const r = releases[ri]!;
      const nArt = r.images.length;
      // The artwork as the generator sees it (at trainScale, enlarged by `upscale` the way the
      // generator enlarges its output), and at the output scale in full quality. Image k and
      // k + nArt are the same artwork.
      const genView = artAtTrain[ri]!.map((img) => upsample(img, upscale));
      // And magnified 2x, for a warp that samples a region of the artwork enlarged.
      const magnified = r.images.map((img) => atScale(img, outputSide * 2));
      const refs = refSet(
        [...genView, ...artAtOutput[ri]!, ...magnified],
        [...genView.map(() => REF_STRIDE), ...artAtOutput[ri]!.map(() => REF_STRIDE), ...magnified.map(() => 4)],
      );
      const patches: { prompt: string; p: NearestPatch }[] = [];
      generated[ri]!.forEach((g, gi) => {
        for (const p of nearestPatches(mm, textureImages[ri]![gi]!, refs, 32)) patches.push({ prompt: g.prompt, p });
      });
      const rms = patches.map((x) => x.p.rms);
      const detailed = patches.filter((x) => x.p.detail >= MIN_DETAIL);
      const nearCopies = detailed.filter((x) => x.p.rms < NEAR_COPY_RMS);
      const sorted = [...detailed].sort((a, b) => a.p.rms - b.p.rms);
      for (const x of sorted.slice(0, 2)) worstExamples.push({ release: r.id, prompt: x.prompt, patch: x.p });

      // Calibration on the artwork itself. (a) Copies: what a generator that memorised the
      // artwork would draw (its view of it), shifted 1 px both ways (between grid positions)
      // and re-encoded as JPEG q90. (b) Not copies: each artwork patch's nearest patch
      // elsewhere (no overlap with itself, in either rendering) in the release's artwork.
      const copies: NearestPatch[] = [];
      const regions: NearestPatch[] = [];
      const copyOf = new Map<NearestPatch, RgbImage>();
      const regionOf = new Map<NearestPatch, RgbImage>();
      for (let ai = 0; ai < nArt; ai++) {
        const copy = await shiftedJpeg(genView[ai]!, 1, 1);
        for (const p of nearestPatches(mm, copy, refs, CALIBRATION_STRIDE)) {
          copies.push(p);
          copyOf.set(p, copy);
        }
        for (const p of nearestPatches(mm, genView[ai]!, refs, CALIBRATION_STRIDE, (qx, qy, ref) => ref.image % nArt === ai && overlaps(qx, qy, ref, ref.image >= 2 * nArt ? 2 : 1))) {
          regions.push(p);
          regionOf.set(p, genView[ai]!);
        }
      }
      // Examples for the sheet: the two generated patches nearest the artwork, a typical copy,
      // the worst copy, and different regions at p5 and the median.
      const byRms = (ps: NearestPatch[]) => ps.filter((p) => p.detail >= MIN_DETAIL).sort((a, b) => a.rms - b.rms);
      const pairOf = (label: string, img: RgbImage, p: NearestPatch): SheetPair => ({
        label: `${label}: ${round(p.rms, 1)}`,
        a: patchImage(img, p.x, p.y, p.flipX, p.flipY),
        b: patchImage(refs.images[p.ref.image]!, p.ref.x, p.ref.y, false, false),
      });
      const cs = byRms(copies);
      const rs = byRms(regions);
      const pairs: SheetPair[] = [
        ...sorted.slice(0, 2).map((x) => pairOf(`generated ("${x.prompt}"), nearest artwork`, textureImages[ri]![generated[ri]!.findIndex((g) => g.prompt === x.prompt)]!, x.p)),
        pairOf('a copy (JPEG, shifted 1 px), median', copyOf.get(cs[Math.floor(cs.length / 2)]!)!, cs[Math.floor(cs.length / 2)]!),
        pairOf('a copy, the worst', copyOf.get(cs.at(-1)!)!, cs.at(-1)!),
        pairOf('different regions of the artwork, p5', regionOf.get(rs[Math.floor(rs.length * 0.05)]!)!, rs[Math.floor(rs.length * 0.05)]!),
        pairOf('different regions, median', regionOf.get(rs[Math.floor(rs.length / 2)]!)!, rs[Math.floor(rs.length / 2)]!),
      ];
      sheetPairs.push(pairs);
      const dCopies = copies.filter((p) => p.detail >= MIN_DETAIL).map((p) => p.rms);
      const dRegions = regions.filter((p) => p.detail >= MIN_DETAIL).map((p) => p.rms);
      const result: NoveltyResult = {
        release: r.id,
        patches: patches.length,
        referencePatches: refs.patches.length,
        all: summary(rms),
        detailed: { patches: detailed.length, flat: patches.length - detailed.length, ...summary(detailed.map((x) => x.p.rms)) },
        nearCopies: nearCopies.length,
        gridExactShare: round(patches.filter((x) => x.p.certain).length / patches.length, 3),
        calibration: {
          copyShiftedJpeg: { patches: dCopies.length, underThreshold: round(dCopies.filter((v) => v < NEAR_COPY_RMS).length / dCopies.length, 3), median: round(quantile(dCopies, 0.5)), p95: round(quantile(dCopies, 0.95)), max: round(Math.max(...dCopies)) },
          differentRegions: { patches: dRegions.length, underThreshold: round(dRegions.filter((v) => v < NEAR_COPY_RMS).length / dRegions.length, 3), min: round(Math.min(...dRegions)), p5: round(quantile(dRegions, 0.05)), median: round(quantile(dRegions, 0.5)) },
          flatRegions: { patches: regions.length - dRegions.length, min: round(Math.min(...regions.filter((p) => p.detail < MIN_DETAIL).map((p) => p.rms))) },
        },
      };
      novelty.push(result);
      say(`  ${r.id}: nearest-patch RMS (detailed) ${JSON.stringify(result.detailed)}; calibration ${JSON.stringify(result.calibration)}`);
    }

    // ------------------------------------------------------------ prompt response
    const response = releases.map((r, ri) => {
      const list = generated[ri]!;
      const sw: number[] = [];
      const px: number[] = [];
      for (let a = 0; a < list.length; a++) {
        for (let b = a + 1; b < list.length; b++) {
          sw.push(swDistance(textureSigs[ri]![a]!, textureSigs[ri]![b]!));
          px.push(pixelRms(list[a]!.rgba, list[b]!.rgba));
        }
      }
      return {
        release: r.id,
        pairs: sw.length,
        swMin: round(Math.min(...sw)),
        swMedian: round(quantile(sw, 0.5)),
        pixelRmsMin: round(Math.min(...px)),
        pixelRmsMedian: round(quantile(px, 0.5)),
        samePromptSameBytes: list.every((g) => g.sameBytes),
        samePromptDistance: list.every((g) => g.sameBytes) ? 0 : null,
      };
    });

    // ------------------------------------------------------------ frame time and the sheet
    say('timing frames with generated textures, drawing the contact sheet');
    const genArtwork = (ri: number): EngineArtwork[] =>
      generated[ri]!.map((g) => ({ id: textureArtworkId(g.key), width: GENERATED_TEXTURE_SIZE, height: GENERATED_TEXTURE_SIZE, rgba: g.rgba, aspect: 1, focus: { x: 0.5, y: 0.5 } }));
    const engines = releases.map((r, ri) => new VisualEngine([...engineArtwork(r.pack), ...genArtwork(ri)]));
    const todayEngines = releases.map((r) => new VisualEngine(engineArtwork(r.pack)));
    // Frames with three generated textures against the same frames with three of the pack's
    // paintings, interleaved so that both see the same load: on a busy machine the medians
    // measure the neighbours, and the A/B difference is what the textures cost.
    const frame = (() => {
      const engine = engines[0]!;
      const genTo = aggressiveParams(generated[0]!.slice(0, 3).map((g) => textureArtworkId(g.key)));
      const artTo = aggressiveParams(releases[0]!.images.slice(0, 3).map((img) => img.id));
      const out = new Uint8ClampedArray(FRAME_W * FRAME_H * 4);
      for (let i = 0; i < 30; i++) {
        for (const to of [genTo, artTo]) engine.renderFrame(out, FRAME_W, FRAME_H, { from: null, to, mix: 1, timeSec: i / 30, energy: 0.5, beatPhase: 0 });
      }
      const gen: number[] = [];
      const art: number[] = [];
      for (let i = 0; i < opts.frames; i++) {
        const t = i / 30;
        for (const [to, times] of [[genTo, gen], [artTo, art]] as const) {
          const start = performance.now();
          engine.renderFrame(out, FRAME_W, FRAME_H, { from: null, to, mix: 1, timeSec: t, energy: (i % 16) / 15, beatPhase: (t * 2) % 1 });
          times.push(performance.now() - start);
        }
      }
      return {
        width: FRAME_W,
        height: FRAME_H,
        frames: opts.frames,
        textures: 'three generated textures blended, every effect on (visual-frame aggressiveParams)',
        medianMs: round(quantile(gen, 0.5), 3),
        p99Ms: round(quantile(gen, 0.99), 3),
        minMs: round(Math.min(...gen), 3),
        paintingsMedianMs: round(quantile(art, 0.5), 3),
        paintingsMinMs: round(Math.min(...art), 3),
        loadAverage1m: round(os.loadavg()[0]!),
      };
    })();

    const sheetReleases: SheetRelease[] = releases.map((r, ri) => {
      const t = trained[ri]!;
      const s = style[ri]!;
      return {
        title: `${r.id} — ${r.title}`,
        pairs: sheetPairs[ri]!,
        summary: `model ${t.result.weightsSha256.slice(0, 12)}…, ${t.result.steps} steps, ${Math.round(t.wallMs / 1000)} s; style own/other max ${s.maxRatio}; nearest artwork patch (detailed) min ${novelty[ri]!.detailed.min}, median ${novelty[ri]!.detailed.median} (near copy < ${NEAR_COPY_RMS})`,
        artwork: r.images.map((img) => ({ id: img.id, image: img })),
        rows: generated[ri]!.map((g, gi) => {
          const genParams: VisualParams = { ...g.params, artworks: [{ id: textureArtworkId(g.key), weight: 1 }] };
          const sr = s.prompts[gi]!;
          const chosen = g.cond.artworks.map((a) => `${a.id} ${round(a.weight)}`).join(', ');
          return {
            prompt: g.prompt,
            note: `${chosen}; detail ${round(g.cond.detail)}, busy ${round(g.cond.busy)}; style own ${sr.own} vs other ${sr.other}`,
            texture: { width: GENERATED_TEXTURE_SIZE, height: GENERATED_TEXTURE_SIZE, rgba: g.rgba },
            generatedFrame: frameOf(engines[ri]!, genParams, 2.5),
            roomFrame: frameOf(engines[ri]!, { ...g.params, artworks: blendWithTexture(g.params.artworks, r.images[0]!.id, textureArtworkId(g.key), DEFAULT_VISUAL_MODEL_MIX) }, 2.5),
            todayFrame: frameOf(todayEngines[ri]!, g.params, 2.5),
          };
        }),
      };
    });
    const png = await drawContactSheet(sheetReleases, `Visual model contact sheet (npm run bench -- visual-model, ${opts.steps} steps)`, DEFAULT_VISUAL_MODEL_MIX);
    await fsp.mkdir(path.dirname(opts.sheet), { recursive: true });
    await fsp.writeFile(opts.sheet, png);
    say(`contact sheet: ${opts.sheet} (${png.length} bytes)`);

    const generation = { textures: genMs.length, size: GENERATED_TEXTURE_SIZE, medianMs: round(quantile(genMs, 0.5), 1), p95Ms: round(quantile(genMs, 0.95), 1), maxMs: round(Math.max(...genMs), 1), coldMs: coldMs.map((x) => round(x, 0)) };
    const training = releases.map((r, ri) => {
      const t = trained[ri]!;
      return {
        release: r.id,
        artworks: r.images.length,
        steps: t.result.steps,
        wallMs: Math.round(t.wallMs),
        durationMs: Math.round(t.result.durationMs),
        cpuMs: Math.round(t.result.cpuMs),
        msPerStep: round(t.result.durationMs / t.result.steps, 1),
        firstLoss: t.result.lossCurve[0]?.[1] ?? null,
        lastLoss: t.result.lossCurve.at(-1)?.[1] ?? null,
        weightsBytes: t.result.weights.length,
        weightsSha256: t.result.weightsSha256,
      };
    });
    return {
      steps: opts.steps,
      cores: os.availableParallelism(),
      loadAverage1m: round(os.loadavg()[0]!),
      software: trained[0]!.result.software,
      trainWallMsBothInParallel: Math.round(trainWallMs),
      training,
      generation,
      style,
      novelty,
      nearestExamples: worstExamples.map((w) => ({ release: w.release, prompt: w.prompt, at: [w.patch.x, w.patch.y], rms: round(w.patch.rms), detail: round(w.patch.detail), ref: w.patch.ref, flip: [w.patch.flipX, w.patch.flipY] })),
      response,
      frame,
      contactSheet: { path: path.relative(ROOT, opts.sheet), bytes: png.length },
      goals: {
        styleOwnSmallerEveryPrompt: style.every((s) => s.ownSmallerEveryPrompt),
        styleMaxOwnOverOther: Math.max(...style.map((s) => s.maxRatio)),
        noNearCopies: novelty.every((n) => n.nearCopies === 0),
        nearCopyThresholdRms: NEAR_COPY_RMS,
        samePromptSameBytes: response.every((x) => x.samePromptSameBytes),
        frameMedianMs: frame.medianMs,
        frameMedianMsPaintings: frame.paintingsMedianMs,
        frameMedianWithin8Ms: frame.medianMs <= 8,
        trainingMsPerRelease: training.map((t) => t.wallMs),
        generationMsMedian: generation.medianMs,
        generationMsP95: generation.p95Ms,
      },
    };
  } finally {
    await generator.close();
    await fsp.rm(tmp, { recursive: true, force: true });
  }
}
