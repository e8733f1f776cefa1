// The training record of a release's visual model: the label's question "what was
// this model trained on, by whom's consent, with what code". It is written as
// `record.json` beside the model's `weights.bin`, last, so that a model counts only
// once both are stored; every clip drawn with the model names it by its id.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Hyperparameters, TrainResult } from '../../media/visuals/model/types.ts';
import { VISUAL_MODEL_METHOD, VISUAL_MODEL_METHOD_VERSION } from '../../media/visuals/model/types.ts';
import type { PackAsset } from '../../media/visuals/visual-pack.ts';
import type { ReleaseRecord } from '../store/store.ts';

/** Who gave the consent when the manifest does not say. */
export const CONSENT_BY_DEFAULT = "the release's manifest";

/** One consented artwork a model was trained on. */
export interface RecordAsset {
  /** The artwork's id in the release. */
  id: string;
  /** Its file as the manifest names it (artwork/cover.png). */
  file: string;
  /** SHA-256 of the file as ingested, hex. */
  sha256: string;
  bytes: number;
  consent: true;
  /** Who gave it: the manifest's `consentBy`, else CONSENT_BY_DEFAULT. */
  consentBy: string;
  /** When: the manifest's `consentAt`, else the ingest's time. */
  consentAt: string;
}

/** An artwork of the release that was not trained on, and why. */
export interface ExcludedAsset {
  id: string;
  file: string;
  sha256: string;
  because: string;
}

export interface VisualModelRecord {
  /** SHA-256 of weights.bin, hex. */
  modelId: string;
  releaseId: string;
  method: string;
  methodVersion: number;
  /** remixroom (version+git sha), tfjs, backend, simd, threads, node, cpu. */
  software: Record<string, string | boolean>;
  assets: RecordAsset[];
  excluded: ExcludedAsset[];
  /** Artwork ids in style-code order (what the model's conditioning names). */
  artworkIds: string[];
  hyperparameters: Hyperparameters;
  seed: number;
  steps: number;
  startedAt: string;
  durationMs: number;
  cpuMs: number;
  lossCurve: [number, number][];
  weights: { sha256: string; bytes: number; format: string };
  /** The ingest of the release it was trained from. */
  ingestedAt: string;
}

/** Why a model no longer serves (retired.json beside its record). */
export interface Retirement {
  at: string;
  because: string;
}

/** What a release's artwork is for training: the consented assets and the rest. */
export interface ReleaseAssets {
  ingestedAt: string;
  consented: RecordAsset[];
  excluded: ExcludedAsset[];
  /** Ids and hashes of artwork whose consent is withheld (or withdrawn) now. */
  withheld: { id: string; sha256: string }[];
}

/** The release's assets as the record names them, from its visual pack's asset list and its manifest. */
export function releaseAssets(release: ReleaseRecord, packAssets: readonly PackAsset[]): ReleaseAssets {
  const consented: RecordAsset[] = [];
  const excluded: ExcludedAsset[] = [];
  const withheld: { id: string; sha256: string }[] = [];
  for (const asset of packAssets) {
    const entry = release.manifest.artwork.find((a) => a.id === asset.id);
    const file = entry?.file ?? asset.id;
    if (asset.consent && asset.used) {
      consented.push({
        id: asset.id,
        file,
        sha256: asset.sha256,
        bytes: asset.bytes,
        consent: true,
        consentBy: entry?.consentBy ?? CONSENT_BY_DEFAULT,
        consentAt: entry?.consentAt ?? release.ingestedAt,
      });
    } else {
      excluded.push({ id: asset.id, file, sha256: asset.sha256, because: asset.excludedBecause ?? 'no consent from the artist' });
      if (!asset.consent) withheld.push({ id: asset.id, sha256: asset.sha256 });
    }
  }
  consented.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  return { ingestedAt: release.ingestedAt, consented, excluded, withheld };
}

/** The asset hashes, sorted and joined: two models trained on the same artwork have the same one. */
export function assetsKey(assets: readonly { sha256: string }[]): string {
  return assets
    .map((a) => a.sha256)
    .sort()
    .join(',');
}

/** The artwork withheld now that a record names (by id or by hash), or null. */
export function withdrawnAssetOf(record: VisualModelRecord, withheld: ReleaseAssets['withheld']): string | null {
  for (const w of withheld) {
    if (record.assets.some((a) => a.id === w.id || a.sha256 === w.sha256)) return w.id;
  }
  return null;
}

export function buildRecord(opts: {
  releaseId: string;
  assets: ReleaseAssets;
  result: TrainResult;
  weightsFormat: string;
  startedAt: Date;
}): VisualModelRecord {
  const r = opts.result;
  return {
    modelId: r.weightsSha256,
    releaseId: opts.releaseId,
    method: VISUAL_MODEL_METHOD,
    methodVersion: VISUAL_MODEL_METHOD_VERSION,
    software: { remixroom: remixroomVersion(), ...r.software },
    assets: opts.assets.consented.map((a) => ({ ...a })),
    excluded: opts.assets.excluded.map((a) => ({ ...a })),
    artworkIds: [...r.artworkIds],
    hyperparameters: r.hyperparameters,
    seed: r.seed,
    steps: r.steps,
    startedAt: opts.startedAt.toISOString(),
    durationMs: Math.round(r.durationMs),
    cpuMs: Math.round(r.cpuMs),
    lossCurve: r.lossCurve.map(([s, l]) => [s, l]),
    weights: { sha256: r.weightsSha256, bytes: r.weights.byteLength, format: opts.weightsFormat },
    ingestedAt: opts.assets.ingestedAt,
  };
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Checks what a stored or shipped record.json holds enough to be used; the reason when not. */
export function recordProblem(value: unknown): string | null {
  if (typeof value !== 'object' || value === null) return 'is not a JSON object';
  const r = value as Partial<VisualModelRecord>;
  if (typeof r.modelId !== 'string' || !HEX64.test(r.modelId)) return 'has no modelId (64 hex digits)';
  if (typeof r.releaseId !== 'string') return 'names no release';
  if (!Array.isArray(r.assets) || r.assets.some((a) => typeof a?.sha256 !== 'string' || typeof a?.id !== 'string')) return 'lists no assets with ids and hashes';
  if (!r.weights || r.weights.sha256 !== r.modelId || typeof r.weights.bytes !== 'number') return 'has weights whose hash is not its modelId';
  return null;
}

let version: string | null = null;

/** This code's version: package.json's, plus the git commit when the checkout has one ("0.1.0+1a2b3c4d5e6f"). */
export function remixroomVersion(): string {
  if (version !== null) return version;
  const root = fileURLToPath(new URL('../../', import.meta.url));
  let v = 'unknown';
  try {
    v = (JSON.parse(fs.readFileSync(`${root}package.json`, 'utf8')) as { version?: string }).version ?? v;
  } catch {
    // A build without its package.json still trains; the record says so.
  }
  const git = spawnSync('git', ['rev-parse', '--short=12', 'HEAD'], { cwd: root, encoding: 'utf8', timeout: 2000 });
  const sha = git.status === 0 ? git.stdout.trim() : '';
  version = /^[0-9a-f]{7,40}$/.test(sha) ? `${v}+${sha}` : v;
  return version;
}
