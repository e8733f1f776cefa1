// The visual engine of each release, built once from its visual pack and kept (per
// thread: a render worker and the still workers each keep their own).
import path from 'node:path';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import type { DataLayout } from '../store/paths.ts';

export class EngineCache {
  readonly #layout: DataLayout;
  readonly #engines = new Map<string, Promise<VisualEngine>>();

  constructor(layout: DataLayout) {
    this.#layout = layout;
  }

  get(releaseId: string): Promise<VisualEngine> {
    let engine = this.#engines.get(releaseId);
    if (!engine) {
      engine = readVisualPack(path.join(this.#layout.releaseDir(releaseId), 'visual-pack')).then((pack) => new VisualEngine(engineArtwork(pack)));
      // A failed read is not kept: the next call tries again.
      engine.catch(() => this.#engines.delete(releaseId));
      this.#engines.set(releaseId, engine);
    }
    return engine;
  }
}
