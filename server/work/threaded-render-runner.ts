// The in-process queue's renderer: the RenderStager in worker threads
// (render-worker.ts), one render per thread, `concurrency` threads at most. The
// main thread does the I/O it already holds: it reads the release's record and
// takes its stems from the process's StemCache (SharedArrayBuffers, handed over
// without a copy, held until the render ends), asks RenderFiles for the folder to
// render into and commits what the thread made there (so that one RenderFiles per
// process keeps the render files); the thread mixes, marks, draws and drives
// ffmpeg. An abort (the queue closing) asks the thread to stop, which kills its
// ffmpeg; a thread that does not stop within the grace is terminated.
import { logFormatOf, type Logger } from '../logger.ts';
import type { RenderFiles } from '../clips/render-files.ts';
import type { ClipResult, Renderer, RenderHooks, RenderRequest } from '../clips/render-job.ts';
import { stageAndCommit, type StagedRender } from '../clips/render-runner.ts';
import type { StemCache } from '../live/stem-cache.ts';
import { localReleaseFolders, type ReleaseFolders } from '../catalog/release-files.ts';
import type { DataLayout } from '../store/paths.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import type { RenderNote, RenderTask, RenderWorkerData } from './render-worker.ts';
import { WorkerPool } from './worker-pool.ts';
import { generatedIdsInRequest, type GeneratedTextureLoader, type LoadedTexture } from './generated-textures.ts';

export interface ThreadedRenderRunnerDeps {
  store: Store;
  layout: DataLayout;
  /** Where the renders' files are kept: the threads render into its staging folders, this thread commits. */
  files: RenderFiles;
  stems: StemCache;
  /** Where a release's files are on this machine (DATA_DIR's folder, or fetched from S3); DATA_DIR's by default. */
  releases?: ReleaseFolders;
  log: Logger;
  ffmpeg: string | null;
  video?: { width: number; height: number; fps: number };
  /** Handed to the threads, which derive the manifest's and the watermark's keys from it. */
  tokenSecret: string;
  /** Threads at most (renders at once). */
  concurrency: number;
  /** Where the textures the visual model generated for prompts are read (handed to the thread with the task). */
  textures?: GeneratedTextureLoader | null;
}

/** A render's usual length, until some have been timed. */
const EXPECTED_RENDER_MS = 15_000;

export class ThreadedRenderRunner implements Renderer {
  readonly #store: Store;
  readonly #stems: StemCache;
  readonly #files: RenderFiles;
  readonly #releases: ReleaseFolders;
  readonly #pool: WorkerPool<RenderTask, StagedRender, RenderNote>;
  readonly #loader: GeneratedTextureLoader | null;
  readonly #log: Logger;

  constructor(deps: ThreadedRenderRunnerDeps) {
    this.#loader = deps.textures ?? null;
    this.#log = deps.log;
    this.#store = deps.store;
    this.#stems = deps.stems;
    this.#files = deps.files;
    this.#releases = deps.releases ?? localReleaseFolders(deps.layout);
    const workerData: RenderWorkerData = {
      dataDir: deps.layout.root,
      logLevel: deps.log.level as RenderWorkerData['logLevel'],
      logFormat: logFormatOf(deps.log),
      ffmpeg: deps.ffmpeg,
      video: deps.video ?? null,
      tokenSecret: deps.tokenSecret,
    };
    this.#pool = new WorkerPool({
      name: 'render',
      script: new URL('./render-worker.ts', import.meta.url),
      workerData,
      size: Math.max(1, deps.concurrency),
      // The queue hands over no more than `concurrency` at once; the slack covers a thread still ending.
      maxQueued: Math.max(1, deps.concurrency),
      expectedTaskMs: EXPECTED_RENDER_MS,
      // A render leaves a large heap behind (the mix of a whole piece); an idle thread gives it back.
      idleMs: 60_000,
      // Below the main thread (every room's sync) and the live streams when the cores are short; ffmpeg inherits it.
      nice: 10,
      onCrash: (err) => deps.log.error({ err }, 'a render thread died'),
    });
  }

  async render(render: RenderRecord, signal: AbortSignal, hooks: RenderHooks): Promise<ClipResult> {
    const request = render.request as RenderRequest;
    const release = await this.#store.getRelease(request.releaseId);
    if (!release) throw new Error(`the release ${request.releaseId} is gone`);
    signal.throwIfAborted();
    // A loop draws the visuals only.
    const withStems = request.kind !== 'loop';
    const textures = await this.#textures(release.id, render.request);
    // Held for the render: the thread reads the visual pack from it.
    const folder = await this.#releases.open(release.id, 'visual-pack');
    let stems: Awaited<ReturnType<StemCache['acquire']>> = [];
    try {
      if (withStems) stems = await this.#stems.acquire(release.id, release.stems.map((s) => s.id));
    } catch (err) {
      folder.release();
      throw err;
    }
    try {
      return await stageAndCommit(this.#files, render.id, (dir) =>
        this.#pool.run(
          { render, release, stems, dir, releaseDir: folder.dir, textures },
          { signal, onNote: (note) => (note.type === 'progress' ? hooks.onProgress(note.fraction) : hooks.onReport(note.fraction)) },
        ),
      );
    } finally {
      if (withStems) this.#stems.release(release.id);
      folder.release();
    }
  }

  /** Stops what runs (the queue has aborted it already when it closed first) and ends the threads. */
  close(): Promise<void> {
    return this.#pool.close();
  }

  /** The generated textures the render names, read here (the thread has no blob store); one that cannot be read is drawn without. */
  async #textures(releaseId: string, request: unknown): Promise<LoadedTexture[]> {
    const loader = this.#loader;
    if (!loader) return [];
    const out: LoadedTexture[] = [];
    for (const id of generatedIdsInRequest(request)) {
      try {
        const t = await loader.load(releaseId, id);
        if (t) out.push(t);
      } catch (err) {
        this.#log.warn({ err, textureId: id }, 'a generated texture could not be read; the render draws without it');
      }
    }
    return out;
  }
}
