// The visual engine of each release, built once from its visual pack and kept (per
// thread: a render worker and the still workers each keep their own).
import path from 'node:path';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { localReleaseFolders, type ReleaseFolders } from '../catalog/release-files.ts';
import { DataLayout } from '../store/paths.ts';

export class EngineCache {
  readonly #folders: ReleaseFolders;
  readonly #engines = new Map<string, Promise<VisualEngine>>();

  /** A DataLayout reads DATA_DIR/releases/<id> (threads without a blob store). */
  constructor(source: DataLayout | ReleaseFolders) {
    this.#folders = source instanceof DataLayout ? localReleaseFolders(source) : source;
  }

  get(releaseId: string): Promise<VisualEngine> {
    let engine = this.#engines.get(releaseId);
    if (!engine) {
      engine = readPack(this.#folders, releaseId).then((pack) => new VisualEngine(engineArtwork(pack)));
      // A failed read is not kept: the next call tries again.
      engine.catch(() => this.#engines.delete(releaseId));
      this.#engines.set(releaseId, engine);
    }
    return engine;
  }
}

/** A release's visual pack, read from its folder (which is let go once read). */
export async function readPack(folders: ReleaseFolders, releaseId: string): ReturnType<typeof readVisualPack> {
  const folder = await folders.open(releaseId, 'visual-pack');
  try {
    return await readVisualPack(path.join(folder.dir, 'visual-pack'));
  } finally {
    folder.release();
  }
}
