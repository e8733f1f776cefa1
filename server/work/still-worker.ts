// A thread of the still pool (ClipService.still): reads the release's visual pack
// itself (once per release), draws the frame the main thread planned, encodes the
// PNG with the text it was given (the signed manifest), and hands the bytes back
// without a copy.
import { workerData } from 'node:worker_threads';
import { renderStillPng } from '../../media/visuals/still.ts';
import type { EngineArtwork, FrameInput } from '../../shared/visual-engine.ts';
import { DataLayout } from '../store/paths.ts';
import { EngineCache } from './engine-cache.ts';
import { ownBuffer, serveTasks } from './worker-tasks.ts';

export interface StillWorkerData {
  dataDir: string;
}

export interface StillTask {
  releaseId: string;
  /** The release's folder on this machine, opened (and held) by the main thread: DATA_DIR's, or fetched from S3. */
  releaseDir: string;
  width: number;
  height: number;
  frame: FrameInput;
  /** Textures the visual model generated that the frame names (loaded by the main thread). */
  textures?: EngineArtwork[];
  /** PNG tEXt entries (Latin-1). */
  text: Record<string, string>;
}

const local = new DataLayout((workerData as StillWorkerData).dataDir);
/** The task drawn now: its release's folder is the one the main thread opened for it. */
let current: StillTask | null = null;
const engines = new EngineCache({
  open: async (releaseId) => ({ dir: current?.releaseId === releaseId ? current.releaseDir : local.releaseDir(releaseId), release: () => {} }),
});

serveTasks<StillTask, Uint8Array>(async (task, ctx) => {
  current = task;
  let engine;
  try {
    engine = await engines.get(task.releaseId);
  } finally {
    current = null;
  }
  engine.trimAdded(new Set((task.textures ?? []).map((a) => a.id)), 8);
  for (const art of task.textures ?? []) if (!engine.hasArtwork(art.id)) engine.addArtwork(art);
  const png = await renderStillPng(engine, task.width, task.height, task.frame, task.text);
  const buffer = ownBuffer(png);
  ctx.transfer(buffer);
  return new Uint8Array(buffer);
});
