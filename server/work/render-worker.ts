// A thread of the in-process render pool (ThreadedRenderRunner): runs the
// RenderStager on a render row, so that its mixing, watermarking and frame drawing
// (seconds of synchronous work) never run on the server's main thread. The main
// thread hands it the release's record, its stems (SharedArrayBuffers, not copied)
// and the folder to render into, and commits the files this thread staged there; it
// derives the manifest's and the watermark's keys from the token secret as the
// server does, and sends progress back as notes.
import { workerData } from 'node:worker_threads';
import { ManifestSigner } from '../clips/manifest.ts';
import { RenderStager, watermarker, watermarkKeyOf, type StagedRender } from '../clips/render-runner.ts';
import type { SharedStem } from '../live/stem-cache.ts';
import type { Config } from '../config.ts';
import { createLogger } from '../logger.ts';
import { DataLayout } from '../store/paths.ts';
import type { ReleaseRecord, RenderRecord } from '../store/store.ts';
import { serveTasks } from './worker-tasks.ts';
import type { LoadedTexture } from './generated-textures.ts';

export interface RenderWorkerData {
  dataDir: string;
  logLevel: Config['logLevel'];
  logFormat: Config['logFormat'];
  ffmpeg: string | null;
  video: { width: number; height: number; fps: number } | null;
  /** The keys are derived from it here; it is never logged or sent back. */
  tokenSecret: string;
}

export interface RenderTask {
  render: RenderRecord;
  release: ReleaseRecord;
  /** The release's stems for a clip or a bought version (none for a loop). */
  stems: SharedStem[];
  /** The local folder to render into (RenderFiles' staging folder for the render). */
  dir: string;
  /** The release's folder on this machine, opened (and held) by the main thread: DATA_DIR's, or fetched from S3. */
  releaseDir: string;
  /** The textures the visual model generated that the render names (read by the main thread). */
  textures?: LoadedTexture[];
}

export type RenderNote = { type: 'progress' | 'report'; fraction: number };

const data = workerData as RenderWorkerData;
/** The task running now: the runner's store and stem cache answer from it. */
let current: RenderTask | null = null;

const layout = new DataLayout(data.dataDir);
const stager = new RenderStager({
  store: { getRelease: async (id) => (current?.release.id === id ? current.release : null) },
  layout,
  // The visual pack is read from the folder the main thread opened for the task.
  releases: { open: async (releaseId) => ({ dir: current?.release.id === releaseId ? current.releaseDir : layout.releaseDir(releaseId), release: () => {} }) },
  stems: {
    acquire: async (releaseId) => {
      if (current?.release.id !== releaseId) throw new Error(`no stems were handed over for ${releaseId}`);
      return current.stems;
    },
    // The main thread holds them for the task and lets go when it ends.
    release: () => {},
  },
  log: createLogger({ logLevel: data.logLevel, logFormat: data.logFormat }).child({ component: 'render-worker' }),
  ffmpeg: data.ffmpeg,
  signer: new ManifestSigner(data.tokenSecret),
  ...(data.video ? { video: data.video } : {}),
  watermark: watermarker(watermarkKeyOf(data.tokenSecret)),
  textures: { load: async (_releaseId, id) => current?.textures?.find((t) => t.artwork.id === id) ?? null },
});

serveTasks<RenderTask, StagedRender, RenderNote>(async (task, ctx) => {
  current = task;
  try {
    return await stager.stage(task.render, task.dir, ctx.signal, {
      onProgress: (fraction) => ctx.note({ type: 'progress', fraction }),
      onReport: (fraction) => ctx.note({ type: 'report', fraction }),
    });
  } finally {
    current = null;
  }
});
