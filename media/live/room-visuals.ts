// The room's visuals as a server draws them, frame by frame, on the room's
// clock: the shared VisualEngine fed the same inputs the browser uses (the
// room's visual params and when the prompt landed, the transport position, the
// mix's energy from the mixer). One drawer per encoder thread: the WebRTC video
// (visual-output.worker.ts) and the broadcast (broadcast-encoder.worker.ts).
import { transportPosition } from '../../shared/transport.ts';
import { VisualEngine, crossfadeMix, type EngineArtwork } from '../../shared/visual-engine.ts';
import { neutralVisualParams, parseVisualParams, type VisualParams } from '../../shared/visual-params.ts';
import type { RoomRelease, RoomState } from '../../shared/room-doc.ts';
import { ENERGY_SCALE } from './mixer-source.ts';

/** Generated textures a drawer keeps at most (about 1 MB each); those in use always stay. */
export const GENERATED_KEEP = 6;

export type VisualRoomState = Pick<RoomState, 'mix' | 'arrangement' | 'visual'>;

export class RoomVisualDrawer {
  readonly #engine: VisualEngine;
  readonly #release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  readonly #energy: Int32Array | null;
  #room: VisualRoomState;
  #paramsKey = '';
  #current: VisualParams = neutralVisualParams();
  #previous: VisualParams | null = null;
  #changedAtMs = 0;
  /** Whether the last frame drawn showed a fade between two prompts' params. */
  fading = false;

  constructor(artwork: readonly EngineArtwork[], release: Pick<RoomRelease, 'bpm' | 'excerpts'>, room: VisualRoomState, energy: SharedArrayBuffer | null) {
    this.#engine = new VisualEngine(artwork);
    this.#release = release;
    this.#room = room;
    this.#energy = energy ? new Int32Array(energy, 0, 1) : null;
    this.#updateParams();
  }

  setRoom(room: VisualRoomState): void {
    this.#room = room;
  }

  /**
   * A texture the release's visual model generated for a prompt (the main thread loads the
   * bytes before or just after the params naming it arrive); the oldest not in use go past a few.
   */
  addTexture(artwork: EngineArtwork): void {
    if (this.#engine.hasArtwork(artwork.id)) return;
    this.#engine.addArtwork(artwork);
    const inUse = new Set([artwork.id, ...this.#current.artworks.map((a) => a.id), ...(this.#previous?.artworks ?? []).map((a) => a.id)]);
    this.#engine.trimAdded(inUse, GENERATED_KEEP);
    // Params that named it before it came are drawn with it from the next frame.
    this.#engine.prepare(this.#current);
  }

  /** Draws the frame for wall-clock time `nowMs` into `out` (yuv420p, BT.601 limited range). */
  drawYuv420(out: Uint8Array, width: number, height: number, nowMs = Date.now()): void {
    this.#updateParams();
    const mix = this.#previous ? crossfadeMix(Math.max(0, (nowMs - this.#changedAtMs) / 1000)) : 1;
    if (mix >= 1) this.#previous = null;
    this.fading = this.#previous !== null;
    const positionSec = transportPosition(this.#room, this.#release, nowMs);
    const bpm = this.#release.bpm ?? 120;
    const beats = (positionSec * bpm) / 60;
    const energy = this.#energy ? Math.round((Atomics.load(this.#energy, 0) / ENERGY_SCALE) * 100) / 100 : 0.5;
    this.#engine.renderFrameYuv420(out, width, height, { from: this.#previous, to: this.#current, mix, timeSec: positionSec, energy, beatPhase: beats - Math.floor(beats) });
  }

  #updateParams(): void {
    const key = JSON.stringify(this.#room.visual.params ?? null);
    if (key === this.#paramsKey) return;
    const next = parseVisualParams(this.#room.visual.params) ?? neutralVisualParams();
    // As the browser does: the first params are shown as they are; a change fades from the moment the server applied it.
    this.#previous = this.#paramsKey ? this.#current : null;
    this.#current = next;
    this.#paramsKey = key;
    this.#changedAtMs = this.#room.visual.promptAtMs ?? 0;
    this.#engine.prepare(next);
  }
}
