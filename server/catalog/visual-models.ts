// The visual model of every release, on the server side: which model is current,
// training one when there is none (one at a time per process, in a child process),
// storing it with its training record, retiring models whose artwork lost the
// artist's consent, and keeping the textures generated with them.
//
// Storage (the blob store: files under DATA_DIR, or the S3 bucket):
//   visual-models/<releaseId>/<modelId>/weights.bin   the model (modelId = its SHA-256)
//   visual-models/<releaseId>/<modelId>/record.json   its training record, written LAST:
//                                                     a model without it does not exist
//   visual-models/<releaseId>/<modelId>/retired.json  {at, because} once retired; the files
//                                                     stay, clips made with it still name it
//   visual-textures/<releaseId>/<key32>.rgba      a generated texture (+ .json, its meta): apart from the models, so that listing a release's models never walks its textures
//   visual-models/<releaseId>/training.json           a training in progress ({host, pid}),
//                                                     so that another process does not start one too
//
// The current model of a release is the newest ready, non-retired model of this
// method version whose record's assets (their SHA-256 set) are the release's consented
// assets now. An ingest (in this process or `npm run ingest` in another) is noticed by
// the release record's `ingestedAt`: on every `current()` and by a poll every few
// seconds; then models naming artwork whose consent is now withheld are retired, and a
// model without it is trained (VISUAL_MODEL_TRAIN=auto).
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { Conditioning, Hyperparameters, TrainConfig, TrainingImage, TrainProgress, TrainResult } from '../../media/visuals/model/types.ts';
import { DEFAULT_STEPS, VISUAL_MODEL_METHOD, VISUAL_MODEL_METHOD_VERSION, canonicalConditioning } from '../../media/visuals/model/types.ts';
import { VisualModelError } from '../../media/visuals/model/errors.ts';
import { trainInChild } from '../../media/visuals/model/training-process.ts';
import { describeWeights } from '../../media/visuals/model/weights.ts';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import { BlobNotFoundError, type BlobStore } from '../store/blob-store.ts';
import type { DataLayout } from '../store/paths.ts';
import type { ReleaseRecord, Store } from '../store/store.ts';
import { readPack } from '../work/engine-cache.ts';
import type { ReleaseFolders } from './release-files.ts';
import type { VisualModelSource } from '../rooms/prompt-visuals.ts';
import {
  assetsKey,
  buildRecord,
  recordProblem,
  releaseAssets,
  withdrawnAssetOf,
  type ReleaseAssets,
  type Retirement,
  type VisualModelRecord,
} from './visual-model-record.ts';

export type VisualModelStatus = 'none' | 'queued' | 'training' | 'ready' | 'failed';

/** What `GET /api/releases/:id/visual-model` answers. */
export interface VisualModelView {
  status: VisualModelStatus;
  progress: TrainProgress | null;
  /** Why the last training failed (status `failed`). */
  failure: string | null;
  current: VisualModelRecord | null;
  history: VisualModelHistoryEntry[];
}

export interface VisualModelHistoryEntry {
  modelId: string;
  status: 'ready' | 'retired';
  retired?: Retirement;
  startedAt: string;
  /** Where its record is served. */
  record: string;
}

/** A stored generated texture's facts (the .json beside its bytes). */
export interface TextureMeta {
  modelId: string;
  conditioning: Conditioning;
  seed: number;
  /** Side in pixels; the bytes are size*size*4 RGBA. */
  size: number;
  /** SHA-256 of the bytes, hex. */
  sha256: string;
}

/** Runs one training into `weightsFile` (media/visuals/model/training-process.ts's trainInChild). */
export type VisualModelTrainer = (
  job: { images: TrainingImage[]; config: TrainConfig; weightsFile: string },
  opts: { onProgress?: (p: TrainProgress) => void; signal?: AbortSignal; log?: Logger; onSpawn?: (pid: number) => void },
) => Promise<TrainResult>;

/** The model code the service uses; by default media/visuals/model/, loaded on first use. */
export interface VisualModelCode {
  train: VisualModelTrainer;
  /** The weights' format name for the record (weights.ts's describeWeights(bytes).format). */
  weightsFormat(weights: Uint8Array): string;
  /** Steps when VISUAL_MODEL_STEPS is unset. */
  defaultSteps(): Promise<number>;
}

export type VisualModelsEvents = {
  /** The current model of a release may have changed (trained, retired, installed, re-ingested): ask current() again. */
  changed: [releaseId: string];
  progress: [releaseId: string, progress: TrainProgress];
};

/** Training or a model's use cannot be done with this input; the message says why, for a person. */
export { VisualModelError };

export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

const ROOT = 'visual-models';
const TEXTURE_ROOT = 'visual-textures';
const HEX64 = /^[0-9a-f]{64}$/;
const HEX32 = /^[0-9a-f]{32}$/;
/** How often the store is asked whether a release was ingested again by another process. */
const POLL_MS = 5000;
/** Model listings are kept this long (a model trained by another process shows up after it at worst). */
const LISTING_TTL_MS = 5000;
/** A training marker of another machine older than this belongs to one that died. */
const FOREIGN_MARKER_MS = 20 * 60 * 1000;

interface Job {
  releaseId: string;
  state: 'queued' | 'training';
  progress: TrainProgress | null;
  abort: AbortController;
  listeners: ((p: TrainProgress) => void)[];
  promise: Promise<VisualModelRecord>;
}

interface StoredModel {
  record: VisualModelRecord;
  retired: Retirement | null;
}

export interface VisualModelsOptions {
  store: Store;
  blobs: BlobStore;
  layout: DataLayout;
  /** Where the release's visual pack is read (ReleaseFiles, or DATA_DIR's folders). */
  folders: ReleaseFolders;
  log: Logger;
  config: Config['visualModel'];
  /** Overrides of the method's hyperparameters for every training (tests: a tiny model). */
  hyperparameters?: Partial<Hyperparameters>;
  /** The model code (tests may wrap it); default media/visuals/model/. */
  code?: VisualModelCode;
  /** How often to look for ingests made by other processes (default 5 s). */
  pollMs?: number;
}

export class VisualModels extends EventEmitter<VisualModelsEvents> {
  readonly #store: Store;
  readonly #blobs: BlobStore;
  readonly #layout: DataLayout;
  readonly #folders: ReleaseFolders;
  readonly #log: Logger;
  readonly #config: Config['visualModel'];
  readonly #hyperparameters: Partial<Hyperparameters> | undefined;
  readonly #code: VisualModelCode | undefined;
  readonly #pollMs: number;
  /** Queued or training, by release. */
  readonly #jobs = new Map<string, Job>();
  /** One training at a time: each job runs after the one before. */
  #chain: Promise<unknown> = Promise.resolve();
  readonly #failures = new Map<string, string>();
  /** The ingest of each release this process has reconciled (retirements done, training asked). */
  readonly #seen = new Map<string, string>();
  readonly #reconciling = new Map<string, Promise<string[]>>();
  readonly #ensuring = new Map<string, Promise<VisualModelRecord | null>>();
  /** Consented assets per ingest (`<releaseId>@<ingestedAt>`): an ingest's files never change. */
  readonly #assets = new Map<string, Promise<ReleaseAssets>>();
  /** Parsed records by key: a record is written once. */
  readonly #records = new Map<string, VisualModelRecord>();
  readonly #listings = new Map<string, { at: number; models: Promise<StoredModel[]> }>();
  /** The current model of each release as the poll last saw it (to say when another process changed it). */
  readonly #announced = new Map<string, string | null>();
  /** Releases another process is training, to say so when its model appears. */
  readonly #elsewhere = new Set<string>();
  #poll: NodeJS.Timeout | null = null;
  #polling = false;
  #closed = false;

  constructor(opts: VisualModelsOptions) {
    super();
    this.#store = opts.store;
    this.#blobs = opts.blobs;
    this.#layout = opts.layout;
    this.#folders = opts.folders;
    this.#log = opts.log.child({ component: 'visual-models' });
    this.#config = opts.config;
    this.#hyperparameters = opts.hyperparameters;
    this.#code = opts.code;
    this.#pollMs = opts.pollMs ?? POLL_MS;
  }

  /**
   * Reconciles every release (retirements of withdrawn artwork; with VISUAL_MODEL_TRAIN=auto,
   * training for releases without a model, queued one after another) and starts looking for
   * ingests made by other processes. Returns once the releases are reconciled, not trained.
   */
  async start(): Promise<void> {
    this.#assertOpen();
    for (const r of await this.#store.listReleases()) {
      await this.reconcile(r.id).catch((err: unknown) => this.#log.warn({ err, releaseId: r.id }, 'visual model: cannot reconcile the release'));
    }
    this.#poll ??= setInterval(() => void this.#pollOnce(), this.#pollMs);
    this.#poll.unref();
  }

  /** The release's current model, or null (none yet, training, or none fits its artwork now). */
  async current(releaseId: string): Promise<VisualModelRecord | null> {
    this.#assertOpen();
    const release = await this.#store.getRelease(releaseId);
    if (!release) return null;
    if (this.#seen.get(releaseId) !== release.ingestedAt) await this.reconcile(releaseId);
    return this.#currentOf(release);
  }

  /** The status, the current model and every model ever trained for the release; null for an unknown release. */
  async view(releaseId: string): Promise<VisualModelView | null> {
    this.#assertOpen();
    const release = await this.#store.getRelease(releaseId);
    if (!release) return null;
    if (this.#seen.get(releaseId) !== release.ingestedAt) await this.reconcile(releaseId);
    const current = await this.#currentOf(release);
    const models = await this.#models(releaseId);
    const job = this.#jobs.get(releaseId);
    const failure = this.#failures.get(releaseId) ?? null;
    let status: VisualModelStatus;
    if (job) status = job.state;
    else if (current) status = 'ready';
    else if (await this.#trainingElsewhere(releaseId)) status = 'training';
    else status = failure ? 'failed' : 'none';
    return {
      status,
      progress: job?.progress ?? null,
      failure: status === 'failed' ? failure : null,
      current,
      history: models.map((m) => ({
        modelId: m.record.modelId,
        status: m.retired ? 'retired' : 'ready',
        ...(m.retired ? { retired: m.retired } : {}),
        startedAt: m.record.startedAt,
        record: recordUrl(releaseId, m.record.modelId),
      })),
    };
  }

  /** One model's record (retired ones too) and its retirement, or null. */
  async model(releaseId: string, modelId: string): Promise<StoredModel | null> {
    this.#assertOpen();
    if (!HEX64.test(modelId)) return null;
    const record = await this.#readRecord(releaseId, modelId);
    if (!record) return null;
    return { record, retired: await this.#readRetired(releaseId, modelId) };
  }

  /** A model's weights (for the generator). */
  async weights(releaseId: string, modelId: string): Promise<Uint8Array> {
    this.#assertOpen();
    if (!HEX64.test(modelId)) throw new VisualModelError(`"${modelId}" is not a model id`);
    const bytes = await readBytes(this.#blobs, modelKey(releaseId, modelId, 'weights.bin'));
    if (sha256(bytes) !== modelId) throw new VisualModelError(`the stored weights of model ${modelId} do not match their hash`);
    return bytes;
  }

  /**
   * Makes sure the release has a current model: answers it, or queues a training (unless
   * another process trains it, or VISUAL_MODEL_TRAIN=off) and answers its model when done;
   * null when there is none (training off, or failed: see view()). Never rejects.
   */
  ensure(releaseId: string): Promise<VisualModelRecord | null> {
    let p = this.#ensuring.get(releaseId);
    if (!p) {
      p = this.#ensure(releaseId).catch((err: unknown) => {
        // The training said why already (warn); this is only who asked.
        if (!this.#closed) this.#log.debug({ err, releaseId }, 'visual model: ensure found no model');
        return null;
      });
      const pending = p;
      this.#ensuring.set(releaseId, p);
      void p.then(() => {
        if (this.#ensuring.get(releaseId) === pending) this.#ensuring.delete(releaseId);
      });
    }
    return p;
  }

  /**
   * Trains a model for the release now (queued behind any other training), whatever it has;
   * `npm run train-visuals`. Rejects with the reason when training fails.
   */
  train(releaseId: string, opts: { onProgress?: (p: TrainProgress) => void } = {}): Promise<VisualModelRecord> {
    this.#assertOpen();
    return this.#enqueue(releaseId, opts.onProgress);
  }

  /**
   * Looks at the release as ingested now: retires every model trained on artwork whose
   * consent is withheld now, and (VISUAL_MODEL_TRAIN=auto) queues a training when no model
   * fits. Called for an ingest made in this process; others are noticed by themselves.
   * Answers the ids of the models it retired.
   */
  reconcile(releaseId: string): Promise<string[]> {
    let p = this.#reconciling.get(releaseId);
    if (!p) {
      p = this.#reconcile(releaseId).finally(() => this.#reconciling.delete(releaseId));
      this.#reconciling.set(releaseId, p);
    }
    return p;
  }

  /**
   * Installs a model shipped with the code (`dir`/weights.bin + `dir`/record.json, made by this
   * project's own training) when its record's artwork is the release's consented artwork now and
   * its weights match their hash; answers whether the release has it now, and why not.
   */
  async installShipped(releaseId: string, dir: string): Promise<{ installed: boolean; reason: string }> {
    this.#assertOpen();
    let recordText: string;
    let weights: Uint8Array;
    try {
      recordText = await fsp.readFile(path.join(dir, 'record.json'), 'utf8');
      weights = new Uint8Array(await fsp.readFile(path.join(dir, 'weights.bin')));
    } catch {
      return { installed: false, reason: `no shipped model in ${dir}` };
    }
    let record: VisualModelRecord;
    try {
      record = JSON.parse(recordText) as VisualModelRecord;
    } catch (err) {
      return { installed: false, reason: `${dir}/record.json is not JSON (${(err as Error).message})` };
    }
    const problem = recordProblem(record);
    if (problem) return { installed: false, reason: `${dir}/record.json ${problem}` };
    if (record.releaseId !== releaseId) return { installed: false, reason: `the shipped model is of release "${record.releaseId}"` };
    if (record.method !== VISUAL_MODEL_METHOD || record.methodVersion !== VISUAL_MODEL_METHOD_VERSION) {
      return { installed: false, reason: `the shipped model is ${record.method}/${record.methodVersion}; this code generates with ${VISUAL_MODEL_METHOD}/${VISUAL_MODEL_METHOD_VERSION}` };
    }
    if (sha256(weights) !== record.modelId) return { installed: false, reason: 'the shipped weights do not match the hash their record names' };
    const release = await this.#store.getRelease(releaseId);
    if (!release) return { installed: false, reason: `no release "${releaseId}"` };
    const assets = await this.#assetsOf(release);
    if (assetsKey(record.assets) !== assetsKey(assets.consented)) {
      return { installed: false, reason: 'the shipped model was trained on other artwork than the release holds now' };
    }
    if (!(await this.#readRecord(releaseId, record.modelId))) {
      await this.#blobs.putBuffer(modelKey(releaseId, record.modelId, 'weights.bin'), Buffer.from(weights), { contentType: 'application/octet-stream' });
      await this.#blobs.putBuffer(modelKey(releaseId, record.modelId, 'record.json'), Buffer.from(JSON.stringify(record, null, 2)), { contentType: 'application/json' });
      this.#listings.delete(releaseId);
      this.#log.info({ releaseId, modelId: record.modelId }, 'visual model: installed the shipped model');
      this.emit('changed', releaseId);
    }
    return { installed: true, reason: 'installed' };
  }

  /** Stores a generated texture under its key (textureKey(): 64 hex; kept by its first 32). */
  async saveTexture(releaseId: string, key: string, modelId: string, cond: Conditioning, seed: number, rgba: Uint8Array): Promise<TextureMeta> {
    this.#assertOpen();
    if (!HEX64.test(key) && !HEX32.test(key)) throw new VisualModelError(`"${key}" is not a texture key (hex)`);
    const size = Math.round(Math.sqrt(rgba.byteLength / 4));
    if (size < 1 || size * size * 4 !== rgba.byteLength) throw new VisualModelError(`a texture of ${rgba.byteLength} bytes is not square RGBA`);
    const meta: TextureMeta = { modelId, conditioning: canonicalConditioning(cond), seed: seed >>> 0, size, sha256: sha256(rgba) };
    const base = textureBase(releaseId, key);
    // The bytes first, the meta last: a texture counts once its meta is there.
    await this.#blobs.putBuffer(`${base}.rgba`, Buffer.from(rgba.buffer, rgba.byteOffset, rgba.byteLength), { contentType: 'application/octet-stream' });
    await this.#blobs.putBuffer(`${base}.json`, Buffer.from(JSON.stringify(meta)), { contentType: 'application/json' });
    return meta;
  }

  /** A stored texture (by its key: 64 or its first 32 hex), or null. */
  async readTexture(releaseId: string, key: string): Promise<{ rgba: Uint8Array; meta: TextureMeta } | null> {
    this.#assertOpen();
    return readStoredTexture(this.#blobs, releaseId, key);
  }

  /** Whether a texture is kept under `key` (its meta, written last, is there). */
  async hasTexture(releaseId: string, key: string): Promise<boolean> {
    this.#assertOpen();
    if (!HEX64.test(key) && !HEX32.test(key)) return false;
    return (await this.#blobs.head(`${textureBase(releaseId, key)}.json`)) !== null;
  }


  /** Stops the poll, drops queued trainings and aborts the running one (its child is killed; nothing is stored). Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) clearInterval(this.#poll);
    this.#poll = null;
    for (const job of this.#jobs.values()) job.abort.abort(new InvalidStateError('the server is shutting down'));
    await this.#chain.catch(() => {});
    await Promise.allSettled([...this.#reconciling.values()]);
  }

  // ------------------------------------------------------------------ internals

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the visual models are closed');
  }

  async #ensure(releaseId: string): Promise<VisualModelRecord | null> {
    const existing = this.#jobs.get(releaseId);
    if (existing) return existing.promise;
    const current = await this.current(releaseId);
    if (current) return current;
    if (this.#config.train === 'off' || this.#closed) return null;
    const again = this.#jobs.get(releaseId);
    if (again) return again.promise;
    if (await this.#trainingElsewhere(releaseId)) {
      this.#elsewhere.add(releaseId);
      return null;
    }
    return this.#enqueue(releaseId);
  }

  async #reconcile(releaseId: string): Promise<string[]> {
    const release = await this.#store.getRelease(releaseId);
    if (!release) return [];
    const before = this.#seen.get(releaseId);
    const assets = await this.#assetsOf(release);
    const retired = await this.#retireWithdrawn(releaseId, assets);
    this.#seen.set(releaseId, release.ingestedAt);
    if (retired.length > 0 || (before !== undefined && before !== release.ingestedAt)) this.emit('changed', releaseId);
    if (this.#config.train === 'auto' && !this.#closed && !(await this.#currentOf(release))) void this.ensure(releaseId);
    return retired;
  }

  /** Retires each model trained on artwork whose consent is withheld now; answers their ids. */
  async #retireWithdrawn(releaseId: string, assets: ReleaseAssets): Promise<string[]> {
    if (assets.withheld.length === 0) return [];
    const retired: string[] = [];
    for (const m of await this.#models(releaseId)) {
      if (m.retired) continue;
      const artworkId = withdrawnAssetOf(m.record, assets.withheld);
      if (!artworkId) continue;
      // Another node (or the ingest's own process) may have retired it since the listing: its time stands.
      if (await this.#readRetired(releaseId, m.record.modelId)) {
        retired.push(m.record.modelId);
        continue;
      }
      const retirement: Retirement = { at: new Date().toISOString(), because: `consent withdrawn for artwork "${artworkId}"` };
      await this.#blobs.putBuffer(modelKey(releaseId, m.record.modelId, 'retired.json'), Buffer.from(JSON.stringify(retirement)), { contentType: 'application/json' });
      this.#log.info({ releaseId, modelId: m.record.modelId, artworkId }, 'visual model retired: consent withdrawn');
      retired.push(m.record.modelId);
    }
    if (retired.length > 0) this.#listings.delete(releaseId);
    return retired;
  }

  async #currentOf(release: ReleaseRecord): Promise<VisualModelRecord | null> {
    const key = assetsKey((await this.#assetsOf(release)).consented);
    for (const m of await this.#models(release.id)) {
      if (m.retired || m.record.method !== VISUAL_MODEL_METHOD || m.record.methodVersion !== VISUAL_MODEL_METHOD_VERSION) continue;
      if (assetsKey(m.record.assets) === key) return m.record;
    }
    return null;
  }

  #assetsOf(release: ReleaseRecord): Promise<ReleaseAssets> {
    const key = `${release.id}@${release.ingestedAt}`;
    let p = this.#assets.get(key);
    if (!p) {
      p = readPack(this.#folders, release.id).then((pack) => releaseAssets(release, pack.assets));
      p.catch(() => this.#assets.delete(key));
      this.#assets.set(key, p);
    }
    return p;
  }

  /** Every stored model of the release (those with a record), newest first. */
  #models(releaseId: string): Promise<StoredModel[]> {
    const cached = this.#listings.get(releaseId);
    if (cached && performance.now() - cached.at < LISTING_TTL_MS) return cached.models;
    const models = this.#listModels(releaseId);
    models.catch(() => this.#listings.delete(releaseId));
    this.#listings.set(releaseId, { at: performance.now(), models });
    return models;
  }

  async #listModels(releaseId: string): Promise<StoredModel[]> {
    const prefix = `${ROOT}/${releaseId}/`;
    const keys = new Set((await this.#blobs.list(prefix)).map((o) => o.key.slice(prefix.length)));
    const models: StoredModel[] = [];
    for (const key of keys) {
      const m = /^([0-9a-f]{64})\/record\.json$/.exec(key);
      if (!m || !keys.has(`${m[1]}/weights.bin`)) continue;
      const record = await this.#readRecord(releaseId, m[1]!);
      if (!record) continue;
      const retired = keys.has(`${m[1]}/retired.json`) ? await this.#readRetired(releaseId, m[1]!) : null;
      models.push({ record, retired });
    }
    return models.sort((a, b) => (a.record.startedAt < b.record.startedAt ? 1 : a.record.startedAt > b.record.startedAt ? -1 : 0));
  }

  async #readRecord(releaseId: string, modelId: string): Promise<VisualModelRecord | null> {
    const key = modelKey(releaseId, modelId, 'record.json');
    const cached = this.#records.get(key);
    if (cached) return cached;
    let value: unknown;
    try {
      value = JSON.parse(Buffer.from(await readBytes(this.#blobs, key)).toString('utf8'));
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      if (err instanceof SyntaxError) {
        this.#log.warn({ releaseId, modelId }, 'visual model: a record that is not JSON is ignored');
        return null;
      }
      throw err;
    }
    const problem = recordProblem(value);
    if (problem) {
      this.#log.warn({ releaseId, modelId, problem }, 'visual model: a record that cannot be used is ignored');
      return null;
    }
    const record = value as VisualModelRecord;
    this.#records.set(key, record);
    return record;
  }

  async #readRetired(releaseId: string, modelId: string): Promise<Retirement | null> {
    try {
      return JSON.parse(Buffer.from(await readBytes(this.#blobs, modelKey(releaseId, modelId, 'retired.json'))).toString('utf8')) as Retirement;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      // A retirement that cannot be read still retires: a model is never used by mistake.
      if (err instanceof SyntaxError) return { at: new Date(0).toISOString(), because: 'retired (its retired.json cannot be read)' };
      throw err;
    }
  }

  #enqueue(releaseId: string, onProgress?: (p: TrainProgress) => void): Promise<VisualModelRecord> {
    const existing = this.#jobs.get(releaseId);
    if (existing) {
      if (onProgress) existing.listeners.push(onProgress);
      return existing.promise;
    }
    const job: Job = {
      releaseId,
      state: 'queued',
      progress: null,
      abort: new AbortController(),
      listeners: onProgress ? [onProgress] : [],
      promise: null as unknown as Promise<VisualModelRecord>,
    };
    job.promise = this.#chain.then(() => this.#run(job));
    this.#chain = job.promise.catch(() => {});
    const done = () => {
      if (this.#jobs.get(releaseId) === job) this.#jobs.delete(releaseId);
    };
    // The release's artwork may have changed while it trained (consent withdrawn: the new model is
    // retired at once): with `auto`, the release is checked again and trains what it lacks.
    job.promise.then(
      () => {
        done();
        // After this turn: the ensure() that awaited this job has let go of its promise by then.
        if (this.#config.train === 'auto' && !this.#closed) setImmediate(() => void (!this.#closed && this.ensure(releaseId)));
      },
      done,
    );
    this.#jobs.set(releaseId, job);
    return job.promise;
  }

  async #run(job: Job): Promise<VisualModelRecord> {
    job.abort.signal.throwIfAborted();
    job.state = 'training';
    const { releaseId } = job;
    const log = this.#log.child({ releaseId });
    const tmp = await fsp.mkdtemp(path.join(await ensureDir(this.#layout.tmpDir), `visual-model-${releaseId}-`));
    const markerKey = `${ROOT}/${releaseId}/training.json`;
    try {
      const release = await this.#store.getRelease(releaseId);
      if (!release) throw new VisualModelError(`no release "${releaseId}"`);
      const assets = await this.#assetsOf(release);
      const pack = await readPack(this.#folders, releaseId);
      const images: TrainingImage[] = [];
      for (const asset of assets.consented) {
        const art = pack.artwork.find((a) => a.id === asset.id);
        if (art) images.push({ id: art.id, sha256: asset.sha256, width: art.textureSize, height: art.textureSize, rgba: art.texture });
      }
      if (images.length === 0) throw new VisualModelError(`release "${releaseId}" has no artwork with the artist's consent to train on`);
      const code = this.#code ?? DEFAULT_CODE;
      const config: TrainConfig = {
        seed: this.#config.seed,
        steps: this.#config.steps ?? (await code.defaultSteps()),
        ...(this.#hyperparameters ? { hyperparameters: this.#hyperparameters } : {}),
      };
      await this.#blobs.putBuffer(markerKey, Buffer.from(JSON.stringify({ host: os.hostname(), pid: process.pid, startedAt: new Date().toISOString() })), { contentType: 'application/json' });
      const startedAt = new Date();
      log.info({ images: images.length, steps: config.steps, seed: config.seed }, 'visual model: training');
      const weightsFile = path.join(tmp, 'weights.bin');
      const result = await code.train(
        { images, config, weightsFile },
        {
          signal: job.abort.signal,
          log,
          // Minutes of a core: the rooms' mixing and streaming come first.
          onSpawn: (pid) => lowerPriority(pid, log),
          onProgress: (p) => {
            job.progress = { step: p.step, of: p.of, loss: p.loss };
            for (const l of job.listeners) l(job.progress);
            this.emit('progress', releaseId, job.progress);
          },
        },
      );
      job.abort.signal.throwIfAborted();
      // Only whole weights are ever stored: the file the child renamed into place, with the hash it reported.
      const bytes = new Uint8Array(await fsp.readFile(weightsFile));
      if (sha256(bytes) !== result.weightsSha256) throw new VisualModelError('the trained weights on disk do not match the hash the training reported');
      const record = buildRecord({ releaseId, assets, result: { ...result, weights: bytes }, weightsFormat: code.weightsFormat(bytes), startedAt });
      const existing = await this.#readRecord(releaseId, record.modelId);
      if (!existing) {
        await this.#blobs.putFile(modelKey(releaseId, record.modelId, 'weights.bin'), weightsFile, { contentType: 'application/octet-stream' });
        // Last: the model exists from here on.
        await this.#blobs.putBuffer(modelKey(releaseId, record.modelId, 'record.json'), Buffer.from(JSON.stringify(record, null, 2)), { contentType: 'application/json' });
      } else {
        // Training is deterministic: consent withdrawn and given again trains the very model once retired,
        // which stays retired (its history says so). Another seed makes another one.
        const retirement = await this.#readRetired(releaseId, record.modelId);
        if (retirement) throw new VisualModelError(`training made model ${record.modelId} again, which was retired (${retirement.because}); train with another VISUAL_MODEL_SEED`);
      }
      this.#listings.delete(releaseId);
      this.#failures.delete(releaseId);
      log.info({ modelId: record.modelId, steps: record.steps, durationMs: record.durationMs, same: existing !== null }, 'visual model: trained');
      // A release ingested again meanwhile: what was withdrawn since retires this one too.
      const now = await this.#store.getRelease(releaseId);
      if (now) await this.#retireWithdrawn(releaseId, await this.#assetsOf(now));
      this.emit('changed', releaseId);
      return existing ?? record;
    } catch (err) {
      // Shown to anyone (GET …/visual-model): a reason meant for a person, else no internals (paths, stacks).
      const message = job.abort.signal.aborted
        ? 'stopped: the server shut down'
        : err instanceof VisualModelError
          ? err.message
          : "the training stopped before it finished (the server's log says why)";
      this.#failures.set(releaseId, message);
      if (!job.abort.signal.aborted) log.warn({ err }, 'visual model: training failed');
      throw err;
    } finally {
      await this.#blobs.delete(markerKey).catch((err: unknown) => log.warn({ err }, 'visual model: cannot remove the training marker'));
      await fsp.rm(tmp, { recursive: true, force: true });
    }
  }

  /** Whether another process (this machine: alive; another: recently) trains the release now. */
  async #trainingElsewhere(releaseId: string): Promise<boolean> {
    let marker: { host?: string; pid?: number; startedAt?: string };
    try {
      marker = JSON.parse(Buffer.from(await readBytes(this.#blobs, `${ROOT}/${releaseId}/training.json`)).toString('utf8')) as typeof marker;
    } catch {
      return false;
    }
    if (marker.host === os.hostname()) {
      // Ours: what this process runs says it all (a marker of a training whose child was killed is stale).
      if (marker.pid === process.pid) return false;
      return typeof marker.pid === 'number' && processAlive(marker.pid);
    }
    const started = Date.parse(marker.startedAt ?? '');
    return Number.isFinite(started) && Date.now() - started < FOREIGN_MARKER_MS;
  }

  async #pollOnce(): Promise<void> {
    if (this.#polling || this.#closed) return;
    this.#polling = true;
    try {
      for (const r of await this.#store.listReleases()) {
        if (this.#closed) return;
        if (this.#seen.get(r.id) !== r.ingestedAt) await this.reconcile(r.id);
        if (this.#elsewhere.has(r.id) && !(await this.#trainingElsewhere(r.id))) {
          // The other process finished (or died): its model, or a training of our own.
          this.#elsewhere.delete(r.id);
          this.#listings.delete(r.id);
          if (this.#config.train === 'auto') void this.ensure(r.id);
        }
        // A model trained or retired by another process (`npm run train-visuals`, another node) changes
        // the current one without an ingest: the listing (kept LISTING_TTL_MS) says so.
        const release = await this.#store.getRelease(r.id);
        const current = release ? ((await this.#currentOf(release))?.modelId ?? null) : null;
        if (this.#announced.has(r.id) && this.#announced.get(r.id) !== current) this.emit('changed', r.id);
        this.#announced.set(r.id, current);
      }
    } catch (err) {
      this.#log.warn({ err }, 'visual model: cannot look for new ingests');
    } finally {
      this.#polling = false;
    }
  }

}

/** Where a model's record is served. */
/**
 * The service as the rooms' prompts use it (server/rooms/prompt-visuals.ts): the current model
 * with its weights (the last few models' bytes kept, not read per prompt), and its textures.
 */
export function visualModelSource(models: VisualModels): VisualModelSource {
  const weights = new Map<string, Promise<Uint8Array>>();
  return {
    async current(releaseId) {
      const record = await models.current(releaseId);
      if (!record) return null;
      let bytes = weights.get(record.modelId);
      if (!bytes) {
        bytes = models.weights(releaseId, record.modelId);
        bytes.catch(() => weights.delete(record.modelId));
        weights.set(record.modelId, bytes);
        if (weights.size > 4) weights.delete(weights.keys().next().value!);
      }
      return { id: record.modelId, weights: await bytes, artworkIds: record.artworkIds };
    },
    hasTexture: (releaseId, key) => models.hasTexture(releaseId, key),
    saveTexture: async (releaseId, key, meta, rgba) => void (await models.saveTexture(releaseId, key, meta.modelId, meta.conditioning, meta.seed, rgba)),
  };
}

export function recordUrl(releaseId: string, modelId: string): string {
  return `/api/releases/${encodeURIComponent(releaseId)}/visual-model/${modelId}`;
}

/** Where a generated texture's bytes are served (its id in VisualParams.artworks is textureArtworkId(key)). */
export function textureUrl(releaseId: string, key: string): string {
  return `/api/releases/${encodeURIComponent(releaseId)}/visual-model/textures/gen-${key.slice(0, 32)}`;
}

function modelKey(releaseId: string, modelId: string, file: 'weights.bin' | 'record.json' | 'retired.json'): string {
  return `${ROOT}/${releaseId}/${modelId}/${file}`;
}

/**
 * A generated texture as kept in the blob store, or null when none is kept under `key`: for the
 * processes that draw (render threads, `npm run renderer`) as well as the service.
 */
export async function readStoredTexture(blobs: BlobStore, releaseId: string, key: string): Promise<{ rgba: Uint8Array; meta: TextureMeta } | null> {
  if (!HEX64.test(key) && !HEX32.test(key)) return null;
  const base = textureBase(releaseId, key);
  let meta: TextureMeta;
  try {
    meta = JSON.parse(Buffer.from(await readBytes(blobs, `${base}.json`)).toString('utf8')) as TextureMeta;
  } catch (err) {
    if (err instanceof BlobNotFoundError) return null;
    throw err;
  }
  const rgba = await readBytes(blobs, `${base}.rgba`);
  return { rgba, meta };
}

function textureBase(releaseId: string, key: string): string {
  return `${TEXTURE_ROOT}/${releaseId}/${key.slice(0, 32)}`;
}

function sha256(bytes: Uint8Array): string {
  return crypto.createHash('sha256').update(bytes).digest('hex');
}

async function readBytes(blobs: BlobStore, key: string): Promise<Uint8Array> {
  const { stream } = await blobs.read(key);
  return new Uint8Array(await collect(stream));
}

async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

async function ensureDir(dir: string): Promise<string> {
  await fsp.mkdir(dir, { recursive: true });
  return dir;
}

/** Niceness of a training child (0 normal, 19 lowest). */
const TRAINING_NICENESS = 10;

function lowerPriority(pid: number, log: Logger): void {
  try {
    os.setPriority(pid, TRAINING_NICENESS);
  } catch (err) {
    log.debug({ err, pid }, 'visual model: cannot lower the training\'s priority');
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** media/visuals/model/; its train.ts (which loads tfjs, 140 MB) only when a training needs its default steps. */
const DEFAULT_CODE: VisualModelCode = {
  train: trainInChild,
  weightsFormat: (bytes) => describeWeights(bytes).format,
  defaultSteps: async () => DEFAULT_STEPS,
};
