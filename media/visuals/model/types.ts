// The visual model's contract: what training takes and gives, what generation takes.
// A small generative image model trained from scratch on one release's consented
// artwork only (no pretrained weights, nothing downloaded), which generates new
// texture images in that artwork's style; prompts steer it through `Conditioning`.
// The engine (shared/visual-engine.ts) animates a generated texture as it animates
// a painting: a texture is an `EngineArtwork` whose id is `textureArtworkId(key)`.

/** The method's name in the training record; bump METHOD_VERSION when the weights' meaning changes. */
export const VISUAL_MODEL_METHOD = 'sw-patch-generator';
export const VISUAL_MODEL_METHOD_VERSION = 1;
/**
 * Training steps when none are configured: about 4.5 minutes of one core for six artworks
 * (here, not in train.ts, so that a process can know it without loading tfjs).
 */
export const DEFAULT_STEPS = 600;
/** Side of a generated texture, as the engine's TEXTURE_SIZE. */
export const GENERATED_TEXTURE_SIZE = 512;
import { GENERATED_ID_PREFIX, isGeneratedArtworkId } from '../../../shared/visual-params.ts';

export { GENERATED_ID_PREFIX, isGeneratedArtworkId };

/** One training image: a consented artwork of the release, decoded. */
export interface TrainingImage {
  /** The artwork's id in the release (its style code is named after it). */
  id: string;
  /** SHA-256 of the artwork's file as ingested, for the record. */
  sha256: string;
  width: number;
  height: number;
  /** RGBA, width*height*4 bytes; transparency is composited over black. */
  rgba: Uint8Array;
}

/** What a training run is asked to do. */
export interface TrainConfig {
  seed: number;
  /** The budget is in steps, never seconds: the same seed and steps give the same weights. */
  steps: number;
  /** Overrides of the method's defaults (tests use a tiny model). */
  hyperparameters?: Partial<Hyperparameters>;
}

export interface Hyperparameters {
  /** Channels per level, coarse to fine. */
  levels: number[];
  /** Style code size per artwork. */
  code: number;
  /** Noise channels per level (the first is the input). */
  noise: number[];
  /** SW scales: [pool, patch size, directions]. */
  scales: [number, number, number][];
  banks: number;
  quantiles: number;
  batch: number;
  crop: number;
  /** The artwork is resampled to this square side for training. */
  trainScale: number;
  learningRate: number;
  [more: string]: unknown;
}

export interface TrainProgress {
  step: number;
  of: number;
  loss: number;
}

/** What training produced; pure data, written to storage by the caller. */
export interface TrainResult {
  /** The model's bytes (see weights.ts for the format). */
  weights: Uint8Array;
  /** SHA-256 of `weights`, hex: the model's id. */
  weightsSha256: string;
  /** Artwork ids in style-code order. */
  artworkIds: string[];
  hyperparameters: Hyperparameters;
  seed: number;
  steps: number;
  /** [step, loss] samples (at most about 200). */
  lossCurve: [number, number][];
  durationMs: number;
  cpuMs: number;
  /** What ran it: tfjs version, backend, simd, threads, node, cpu model. */
  software: Record<string, string | boolean>;
}

/** A prompt's meaning as the model's input. */
export interface Conditioning {
  /** Which artworks' styles and how much of each (ids the model knows; others are ignored; empty: the first). */
  artworks: { id: string; weight: number }[];
  /** 0..1: fine grain and detail (the prompt's texture.grain). */
  detail: number;
  /** 0..1: how busy the coarse structure is (the prompt's intensity). */
  busy: number;
}

/** The artwork id a generated texture has in VisualParams.artworks (≤ 64 characters). */
export function textureArtworkId(key: string): string {
  return GENERATED_ID_PREFIX + key.slice(0, 32);
}

/**
 * Conditioning as generated: weights normalised and rounded to 1/64, detail and busy to
 * 1/16, artworks sorted by id. Nearby prompts share a texture, and the cache key is stable.
 */
export function canonicalConditioning(c: Conditioning): Conditioning {
  const parts = c.artworks.filter((a) => Number.isFinite(a.weight) && a.weight > 0);
  const sum = parts.reduce((s, a) => s + a.weight, 0);
  const artworks = parts
    .map((a) => ({ id: a.id, weight: Math.round((a.weight / sum) * 64) / 64 }))
    .filter((a) => a.weight > 0)
    .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  const unit = (v: number) => (Number.isFinite(v) ? Math.round(Math.min(1, Math.max(0, v)) * 16) / 16 : 0.5);
  return { artworks, detail: unit(c.detail), busy: unit(c.busy) };
}

/** The cache key of a texture: hex SHA-256 of (model, canonical conditioning, seed, size). */
export async function textureKey(modelId: string, c: Conditioning, seed: number, size = GENERATED_TEXTURE_SIZE): Promise<string> {
  const { createHash } = await import('node:crypto');
  const canon = canonicalConditioning(c);
  return createHash('sha256').update(JSON.stringify([modelId, canon.artworks.map((a) => [a.id, a.weight]), canon.detail, canon.busy, seed >>> 0, size])).digest('hex');
}
