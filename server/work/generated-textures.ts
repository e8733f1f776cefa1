// Textures the release's visual model generated for prompts, as every drawer other
// than a member's page gets them: the server's video and broadcast (a feed that hands
// each new one to the drawer's thread) and the renders (loaded into the release's
// engine before a clip, loop or still is drawn). The bytes are the ones kept when the
// room generated them (server/rooms/prompt-visuals.ts), so every drawer draws the same.
import type { Logger } from 'pino';
import { GENERATED_KEEP } from '../../media/live/room-visuals.ts';
import type { EngineArtwork, VisualEngine } from '../../shared/visual-engine.ts';
import { GENERATED_ID_PREFIX, isGeneratedArtworkId } from '../../shared/visual-params.ts';
import { readStoredTexture } from '../catalog/visual-models.ts';
import type { BlobStore } from '../store/blob-store.ts';

/** Textures a feed remembers having handed over: no more than the live drawers keep. */
const FEED_KEEP = GENERATED_KEEP;

/** Generated textures a render's engine keeps from earlier renders (about 1 MB each). */
const KEEP_IN_ENGINE = 8;

export interface LoadedTexture {
  artwork: EngineArtwork;
  /** The model that generated it (for the manifest's record of what drew a file). */
  modelId: string;
}

export interface GeneratedTextureLoader {
  /** The texture by its artwork id (`gen-<key>`), or null when none is kept by that id. */
  load(releaseId: string, textureId: string): Promise<LoadedTexture | null>;
}

/** The generated textures params name (params as stored: anything unreadable names none). */
export function generatedIdsIn(params: unknown): string[] {
  const artworks = (params as { artworks?: unknown } | null)?.artworks;
  if (!Array.isArray(artworks)) return [];
  const ids: string[] = [];
  for (const a of artworks) {
    const id = (a as { id?: unknown } | null)?.id;
    if (typeof id === 'string' && isGeneratedArtworkId(id) && !ids.includes(id)) ids.push(id);
  }
  return ids;
}

/**
 * Loads the textures `params` (a render's whole timeline) name; answers them and the models
 * that generated them. One that cannot be loaded is drawn without (and said so in the log).
 */
export async function loadGeneratedTextures(
  releaseId: string,
  params: readonly unknown[],
  loader: GeneratedTextureLoader | null,
  log?: Logger,
): Promise<{ artworks: EngineArtwork[]; models: string[] }> {
  const ids = [...new Set(params.flatMap(generatedIdsIn))];
  const models = new Set<string>();
  const artworks: EngineArtwork[] = [];
  for (const id of ids) {
    try {
      const t = loader ? await loader.load(releaseId, id) : null;
      if (!t) {
        log?.warn({ releaseId, textureId: id }, 'a generated texture is not kept; the render draws without it');
        continue;
      }
      models.add(t.modelId);
      artworks.push(t.artwork);
    } catch (err) {
      log?.warn({ err, releaseId, textureId: id }, 'a generated texture could not be read; the render draws without it');
    }
  }
  return { artworks, models: [...models] };
}

/** Loads what `params` name into `engine` (see loadGeneratedTextures); answers the models that generated them. */
export async function addGeneratedTextures(
  engine: VisualEngine,
  releaseId: string,
  params: readonly unknown[],
  loader: GeneratedTextureLoader | null,
  log?: Logger,
): Promise<string[]> {
  const { artworks, models } = await loadGeneratedTextures(releaseId, params, loader, log);
  // A release's engine is kept for the renders that follow: those this one does not draw go past a few.
  engine.trimAdded(new Set(artworks.map((a) => a.id)), KEEP_IN_ENGINE);
  for (const art of artworks) if (!engine.hasArtwork(art.id)) engine.addArtwork(art);
  return models;
}

/** Hands each generated texture a room's params name to one drawer, once, as soon as it is loaded. */
export class TextureFeed {
  readonly #releaseId: string;
  readonly #loader: GeneratedTextureLoader | null;
  readonly #deliver: (artwork: EngineArtwork) => void;
  readonly #log: Logger | undefined;
  readonly #asked = new Set<string>();

  constructor(releaseId: string, loader: GeneratedTextureLoader | null, deliver: (artwork: EngineArtwork) => void, log?: Logger) {
    this.#releaseId = releaseId;
    this.#loader = loader;
    this.#deliver = deliver;
    this.#log = log;
  }

  /** The room's params changed: loads and hands over what they name that this drawer has not had. */
  sync(params: unknown): void {
    const loader = this.#loader;
    if (!loader) return;
    for (const id of generatedIdsIn(params)) {
      // Most recently named last. The drawer keeps in-use textures and FEED_KEEP others; one this
      // feed forgot (a prompt from long ago, named again) is read and handed over again (the drawer
      // ignores one it still has).
      if (this.#asked.delete(id)) {
        this.#asked.add(id);
        continue;
      }
      this.#asked.add(id);
      if (this.#asked.size > FEED_KEEP) this.#asked.delete(this.#asked.values().next().value!);
      loader.load(this.#releaseId, id).then(
        (t) => {
          if (t) this.#deliver(t.artwork);
          else this.#log?.warn({ textureId: id }, 'a generated texture is not kept; the video draws without it');
        },
        (err: unknown) => {
          this.#asked.delete(id);
          this.#log?.warn({ err, textureId: id }, 'a generated texture could not be read; the video draws without it');
        },
      );
    }
  }
}

/** Reads generated textures where the visual models keep them (the blob store: DATA_DIR's files or the bucket). */
export function blobTextureLoader(blobs: BlobStore): GeneratedTextureLoader {
  return {
    async load(releaseId, textureId) {
      if (!isGeneratedArtworkId(textureId)) return null;
      const kept = await readStoredTexture(blobs, releaseId, textureId.slice(GENERATED_ID_PREFIX.length));
      if (!kept) return null;
      const side = kept.meta.size;
      if (!(side > 0) || side * side * 4 !== kept.rgba.byteLength) throw new Error(`the texture ${textureId} is not ${side}x${side} RGBA`);
      return { artwork: { id: textureId, width: side, height: side, rgba: kept.rgba }, modelId: kept.meta.modelId };
    },
  };
}

/** The generated textures a render's request names (its window's timeline, a loop's params), by a scan of the request. */
export function generatedIdsInRequest(request: unknown): string[] {
  const found = JSON.stringify(request ?? null).match(/gen-[0-9a-f]{32}/g) ?? [];
  return [...new Set(found)].filter(isGeneratedArtworkId);
}
