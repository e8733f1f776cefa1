// A prompt's visuals with the release's visual model: the prompt interpreter's
// params become the model's conditioning (which artworks and how much of each, the
// grain, the intensity) with a seed from the prompt's text; the model generates one
// new texture for the whole room, which is kept in the blob store under its cache key
// (model, conditioning, seed) and named in the params like a painting
// (`gen-<key>`), so that every member's page, the server's video and a clip load
// the same bytes and draw the same frames. Without a model (none trained yet, or
// retired), or when generation fails or is too busy, the params stay as the
// interpreter made them: today's engine on the artwork.
import type { Logger } from 'pino';
import type { GeneratedVisual } from '../../shared/room-doc.ts';
import { stableHash } from '../../shared/prompt-interpreter.ts';
import { MAX_BLEND, type ArtworkWeight, type VisualParams } from '../../shared/visual-params.ts';
import { textureArtworkId, textureKey, type Conditioning } from '../../media/visuals/model/types.ts';

/** What "what your prompt did" says when the model drew part of the picture. */
export const GENERATED_EFFECT = 'new imagery generated from the artist\'s artwork by a model trained only on it';

/** The release's model to generate with now, and where its textures are kept. */
export interface VisualModelSource {
  /** The model rooms of the release use now, or null (none ready, or the one there was is retired). */
  current(releaseId: string): Promise<{ id: string; weights: Uint8Array; artworkIds: string[] } | null>;
  hasTexture(releaseId: string, key: string): Promise<boolean>;
  saveTexture(releaseId: string, key: string, meta: { modelId: string; conditioning: Conditioning; seed: number; size: number }, rgba: Uint8Array): Promise<void>;
}

export interface TextureMaker {
  generate(model: { id: string; weights: Uint8Array }, cond: Conditioning, seed: number, size?: number): Promise<Uint8Array>;
}


export interface SteerResult {
  params: VisualParams;
  generated: GeneratedVisual | null;
}

export interface PromptVisualsOptions {
  source: VisualModelSource;
  maker: TextureMaker;
  log: Logger;
  /** Share of the picture the generated texture takes (the rest: the artwork the prompt named); 0 turns the model off in rooms. */
  mix: number;
  /** Generations waiting at most; past it a prompt is shown without one (the worker is one core). */
  maxPending?: number;
  /** How long a prompt waits for its texture before it is shown without one (the texture is still kept). */
  waitMs?: number;
}

export class PromptVisuals {
  readonly #o: Required<PromptVisualsOptions>;
  /** Textures known to be kept, by key (bounded). */
  readonly #kept = new Set<string>();
  readonly #inFlight = new Map<string, Promise<void>>();

  constructor(opts: PromptVisualsOptions) {
    this.#o = { maxPending: 8, waitMs: 2500, ...opts };
  }

  /**
   * The params to show for a prompt: with a generated texture where the release has a model, as
   * given otherwise. `mayGenerate` is asked only when the texture is not kept yet (the prompter's
   * limits: a kept one costs nothing); false shows the prompt without one.
   */
  async steer(releaseId: string, coverId: string, params: VisualParams, text: string, opts: { mayGenerate?: () => Promise<boolean> } = {}): Promise<SteerResult> {
    const unchanged: SteerResult = { params, generated: null };
    if (!(this.#o.mix > 0)) return unchanged;
    let model: Awaited<ReturnType<VisualModelSource['current']>>;
    try {
      model = await this.#o.source.current(releaseId);
    } catch (err) {
      this.#o.log.warn({ err, releaseId }, 'the visual model could not be read; the prompt is shown without it');
      return unchanged;
    }
    if (!model) return unchanged;
    const known = new Set(model.artworkIds);
    const cond: Conditioning = {
      artworks: params.artworks.filter((a) => known.has(a.id)).map((a) => ({ id: a.id, weight: a.weight })),
      detail: params.texture.grain,
      busy: params.intensity,
    };
    const seed = stableHash(text) >>> 0;
    const key = await textureKey(model.id, cond, seed);
    try {
      await withTimeout(this.#ensureTexture(releaseId, key, model, cond, seed, opts.mayGenerate), this.#o.waitMs);
    } catch (err) {
      this.#o.log.warn({ err: (err as Error).message, releaseId, modelId: model.id }, 'no generated texture for this prompt; it is shown on the artwork alone');
      return unchanged;
    }
    // The model may have been retired while its texture was made (consent withdrawn): not shown then.
    const now = await this.#o.source.current(releaseId).catch(() => null);
    if (now?.id !== model.id) return unchanged;
    const textureId = textureArtworkId(key);
    return {
      params: { ...params, artworks: blendWithTexture(params.artworks, coverId, textureId, this.#o.mix) },
      generated: { modelId: model.id, textureId, recordUrl: `/api/releases/${encodeURIComponent(releaseId)}/visual-model/${model.id}` },
    };
  }

  #ensureTexture(releaseId: string, key: string, model: { id: string; weights: Uint8Array }, cond: Conditioning, seed: number, mayGenerate?: () => Promise<boolean>): Promise<void> {
    // Keyed by release too: two releases may share a model (the same artwork, seed and steps), never their files.
    const where = `${releaseId}/${key}`;
    if (this.#kept.has(where)) return Promise.resolve();
    const running = this.#inFlight.get(where);
    if (running) return running;
    if (this.#inFlight.size >= this.#o.maxPending) return Promise.reject(new Error(`${this.#inFlight.size} textures are being generated already`));
    const job = (async () => {
      if (!(await this.#o.source.hasTexture(releaseId, key))) {
        if (mayGenerate && !(await mayGenerate())) throw new Error('the prompter’s new textures are used up for now (visualmodel.generate limits)');
        const rgba = await this.#o.maker.generate(model, cond, seed);
        await this.#o.source.saveTexture(releaseId, key, { modelId: model.id, conditioning: cond, seed, size: Math.round(Math.sqrt(rgba.length / 4)) }, rgba);
        this.#o.log.info({ releaseId, modelId: model.id, key }, 'texture generated');
      }
      this.#kept.add(where);
      if (this.#kept.size > 1024) this.#kept.delete(this.#kept.values().next().value!);
    })().finally(() => this.#inFlight.delete(where));
    this.#inFlight.set(where, job);
    return job;
  }
}

/**
 * The generated texture at `mix` of the picture, the prompt's artworks (the cover when it
 * named none) sharing the rest in their proportions, at most MAX_BLEND in all.
 */
export function blendWithTexture(artworks: readonly ArtworkWeight[], coverId: string, textureId: string, mix: number): ArtworkWeight[] {
  const m = Math.min(1, Math.max(0, mix));
  if (m >= 1) return [{ id: textureId, weight: 1 }];
  const base = (artworks.length > 0 ? [...artworks] : [{ id: coverId, weight: 1 }]).sort((a, b) => b.weight - a.weight).slice(0, MAX_BLEND - 1);
  const sum = base.reduce((s, a) => s + a.weight, 0);
  const round = (v: number) => Math.round(v * 1000) / 1000;
  return [{ id: textureId, weight: round(m) }, ...base.map((a) => ({ id: a.id, weight: round(((1 - m) * a.weight) / sum) })).filter((a) => a.weight > 0)];
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the texture took longer than ${ms} ms`)), ms);
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}
