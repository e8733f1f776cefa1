// The room's visuals on a canvas: the shared VisualEngine draws frames from the
// release's artwork and the room's visual params (room document `visual.params`),
// at the room's transport position (shared/transport.ts, on the server's clock),
// so every member sees the same picture at the same point of the music. A new
// prompt cross-fades in over CROSSFADE_SEC from the moment the server applied it.
import type { ReleaseView } from '../../shared/api-types.ts';
import { transportPosition } from '../../shared/transport.ts';
import type { RoomState } from '../../shared/room-doc.ts';
import { VisualEngine, crossfadeMix, type EngineArtwork } from '../../shared/visual-engine.ts';
import { isGeneratedArtworkId, neutralVisualParams, parseVisualParams, type VisualParams } from '../../shared/visual-params.ts';

const WIDTH = 640;
const HEIGHT = 360;
/** Frames a second at most: the picture's motion is slow; this spares phones. */
const MAX_FPS = 30;
/** Generated textures kept loaded at most (each about 1 MB prepared); those in use always stay. */
const GENERATED_KEEP = 6;

export interface VisualsSource {
  state(): RoomState | null;
  serverNow(): number;
  energy(): number;
}

export class VisualsView {
  readonly canvas: HTMLCanvasElement;
  readonly #release: ReleaseView;
  readonly #source: VisualsSource;
  #engine: VisualEngine | null = null;
  #image: ImageData | null = null;
  #ctx: CanvasRenderingContext2D | null;
  #frame = 0;
  #lastDrawMs = 0;
  #closed = false;
  #paramsKey = '';
  #current: VisualParams = neutralVisualParams();
  #previous: VisualParams | null = null;
  #changedAtMs = 0;
  #lastFrameKey = '';
  /** Generated textures asked for or loaded, oldest first. */
  readonly #generated: string[] = [];
  readonly #fetching = new Set<string>();
  framesDrawn = 0;
  /** Generated textures loaded into the engine so far (for tests). */
  generatedLoaded = 0;
  /** While the server's video is shown instead, nothing is drawn here (a weak device's CPU). */
  paused = false;
  status = 'loading the artwork…';
  readonly #onStatus: (s: string) => void;

  constructor(release: ReleaseView, source: VisualsSource, onStatus: (s: string) => void) {
    this.#release = release;
    this.#source = source;
    this.#onStatus = onStatus;
    this.canvas = document.createElement('canvas');
    this.canvas.width = WIDTH;
    this.canvas.height = HEIGHT;
    this.canvas.className = 'visuals-canvas';
    this.#ctx = this.canvas.getContext('2d');
    void this.#load();
  }

  /** What the picture shows now: a key of the params in use, for tests and the status line. */
  get paramsKey(): string {
    return this.#paramsKey;
  }

  close(): void {
    this.#closed = true;
    cancelAnimationFrame(this.#frame);
  }

  async #load(): Promise<void> {
    const loaded = await Promise.all(this.#release.artwork.map((a) => loadArtwork(a.id, a.url).catch(() => null)));
    const art = loaded.filter((a): a is EngineArtwork => a !== null);
    if (this.#closed) return;
    if (art.length === 0) {
      this.#setStatus('the artwork could not be loaded, so there are no visuals');
      return;
    }
    this.#engine = new VisualEngine(art);
    this.#image = this.#ctx ? this.#ctx.createImageData(WIDTH, HEIGHT) : null;
    this.#setStatus('drawing');
    const tick = (nowMs: number) => {
      if (this.#closed) return;
      this.#frame = requestAnimationFrame(tick);
      if (document.hidden || this.paused) return;
      if (nowMs - this.#lastDrawMs < 1000 / MAX_FPS - 2) return;
      this.#lastDrawMs = nowMs;
      this.#draw();
    };
    this.#frame = requestAnimationFrame(tick);
  }

  #draw(): void {
    const state = this.#source.state();
    if (!state || !this.#engine || !this.#image || !this.#ctx) return;
    const key = JSON.stringify(state.visual.params ?? null);
    if (key !== this.#paramsKey) {
      const next = parseVisualParams(state.visual.params) ?? neutralVisualParams();
      // The first params seen are shown as they are: the fade belongs to those who saw the change.
      this.#previous = this.#paramsKey ? this.#current : null;
      this.#current = next;
      this.#paramsKey = key;
      this.#changedAtMs = state.visual.promptAtMs ?? 0;
      this.#loadGenerated(next);
      this.#engine.prepare(next);
    }
    const now = this.#source.serverNow();
    const sinceChangeSec = Math.max(0, (now - this.#changedAtMs) / 1000);
    const mix = this.#previous ? crossfadeMix(sinceChangeSec) : 1;
    if (mix >= 1) this.#previous = null;
    const positionSec = transportPosition(state, this.#release, now);
    const bpm = this.#release.bpm ?? 120;
    const beats = (positionSec * bpm) / 60;
    const energy = Math.round(this.#source.energy() * 100) / 100;
    // Paused and settled, the frame would be the same as the last one: keep the CPU for the rest.
    const frameKey = `${this.#paramsKey}|${this.#previous ? mix : 1}|${positionSec}|${energy}|${this.canvas.width}`;
    if (frameKey === this.#lastFrameKey) return;
    this.#lastFrameKey = frameKey;
    this.#engine.renderFrame(this.#image.data, WIDTH, HEIGHT, {
      from: this.#previous,
      to: this.#current,
      mix,
      timeSec: positionSec,
      energy,
      beatPhase: beats - Math.floor(beats),
    });
    this.#ctx.putImageData(this.#image, 0, 0);
    this.framesDrawn += 1;
  }

  /**
   * Fetches the textures the release's visual model generated for these params (the same
   * bytes every member and the server draw): until one arrives the picture is drawn from the
   * rest, then from it too.
   */
  #loadGenerated(p: VisualParams): void {
    for (const { id } of p.artworks) {
      if (!isGeneratedArtworkId(id) || this.#generated.includes(id)) continue;
      this.#generated.push(id);
      this.#fetching.add(id);
      void fetchGenerated(this.#release.id, id)
        .finally(() => this.#fetching.delete(id))
        .then((art) => {
          if (this.#closed || !this.#engine || !art) return;
          this.#engine.addArtwork(art);
          this.generatedLoaded += 1;
          this.#lastFrameKey = '';
          this.#evictGenerated();
        })
        .catch(() => {
          // Not drawn (the picture keeps the artwork alone); asked again by the next prompt that names it.
          const at = this.#generated.indexOf(id);
          if (at >= 0) this.#generated.splice(at, 1);
        });
    }
  }

  #evictGenerated(): void {
    if (!this.#engine) return;
    this.#engine.trimAdded(new Set([...this.#current.artworks, ...(this.#previous?.artworks ?? [])].map((a) => a.id)), GENERATED_KEEP);
    const engine = this.#engine;
    const loaded = new Set(engine.addedArtworkIds);
    // Forgotten ones are fetched again if a prompt names them again (those still on their way stay).
    for (let i = this.#generated.length - 1; i >= 0; i--) {
      const id = this.#generated[i]!;
      if (!loaded.has(id) && !this.#fetching.has(id)) this.#generated.splice(i, 1);
    }
  }

  #setStatus(s: string): void {
    this.status = s;
    this.#onStatus(s);
  }
}

/** A generated texture's raw RGBA (square), or null when the server has none by that id. */
async function fetchGenerated(releaseId: string, id: string): Promise<EngineArtwork | null> {
  const res = await fetch(`/api/releases/${encodeURIComponent(releaseId)}/visual-model/textures/${id}`);
  if (res.status === 404) return null;
  if (!res.ok) throw new Error(`HTTP ${res.status}`);
  const rgba = new Uint8Array(await res.arrayBuffer());
  const side = Math.round(Math.sqrt(rgba.length / 4));
  if (side < 1 || side * side * 4 !== rgba.length) throw new Error('not a square RGBA texture');
  return { id, width: side, height: side, rgba };
}

async function loadArtwork(id: string, url: string): Promise<EngineArtwork> {
  const img = new Image();
  img.decoding = 'async';
  img.src = url;
  await img.decode();
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  if (!ctx) throw new Error('no 2D canvas');
  ctx.drawImage(img, 0, 0);
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height);
  return { id, width: data.width, height: data.height, rgba: data.data };
}
