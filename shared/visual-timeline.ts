// What the visual engine draws at a moment, from the room's visual changes: the
// same function live (the browser, on the room's clock) and in a render (from the
// room's recorded timeline), so that a clip shows what the room saw.
//
// Time: the visuals move on the room's clock, seconds since the room was made
// (meta.createdAtMs), which every member and the renderer agree on; the beat
// follows the transport (shared/transport.ts) and the release's tempo; the
// energy is the heard mix's level.
import { crossfadeMix, type FrameInput } from './visual-engine.ts';
import { neutralVisualParams, parseVisualParams, type VisualParams } from './visual-params.ts';

export interface VisualChange {
  /** Room time (ms since the epoch) at which these params took over. */
  atMs: number;
  params: VisualParams;
}

/** Ordered visual changes, the newest last; keeps only what a cross-fade still needs. */
export class VisualSequence {
  readonly #changes: VisualChange[] = [];

  constructor(initial: VisualParams | null = null, atMs = Number.NEGATIVE_INFINITY) {
    this.#changes.push({ atMs, params: initial ?? neutralVisualParams() });
  }

  /** Records params (as stored in the room document; anything unreadable is ignored) taking over at `atMs`. */
  push(atMs: number, stored: unknown): boolean {
    const params = parseVisualParams(stored);
    if (!params || !Number.isFinite(atMs)) return false;
    // Out-of-order changes (a replayed timeline) go where they belong.
    let i = this.#changes.length;
    while (i > 0 && this.#changes[i - 1]!.atMs > atMs) i--;
    this.#changes.splice(i, 0, { atMs, params });
    return true;
  }

  /** Replaces the initial params with stored ones when they can be read (else keeps neutral); returns this. */
  withInitial(stored: unknown): this {
    const params = parseVisualParams(stored);
    if (params) this.#changes[0] = { atMs: this.#changes[0]!.atMs, params };
    return this;
  }

  /** Frame input at room time `nowMs` (everything but the music, which the caller measures). */
  frameAt(nowMs: number, roomCreatedAtMs: number, music: { energy: number; beatPhase: number }): FrameInput {
    let i = this.#changes.length - 1;
    while (i > 0 && this.#changes[i]!.atMs > nowMs) i--;
    const current = this.#changes[i]!;
    const previous = i > 0 ? this.#changes[i - 1]! : null;
    const mix = previous ? crossfadeMix((nowMs - current.atMs) / 1000) : 1;
    return {
      from: previous && mix < 1 ? previous.params : null,
      to: current.params,
      mix,
      timeSec: (nowMs - roomCreatedAtMs) / 1000,
      energy: music.energy,
      beatPhase: music.beatPhase,
    };
  }

  /** Drops changes no frame at or after `nowMs` can need (all but the newest before it, and that one's predecessor while it fades). */
  trim(nowMs: number): void {
    let i = this.#changes.length - 1;
    while (i > 0 && this.#changes[i]!.atMs > nowMs) i--;
    const keepFrom = Math.max(0, i - 1);
    if (keepFrom > 0) this.#changes.splice(0, keepFrom);
  }

  get length(): number {
    return this.#changes.length;
  }

  /** Every params kept, oldest first (what a render may draw). */
  get allParams(): VisualParams[] {
    return this.#changes.map((c) => c.params);
  }
}

/** The mix's RMS level (linear, 0..1) as the engine's energy (0..1): −40 dBFS → 0, −6 dBFS → 1. */
export function energyFromRms(rms: number): number {
  if (!(rms > 0)) return 0;
  const db = 20 * Math.log10(rms);
  return Math.min(1, Math.max(0, (db + 40) / 34));
}

/** Where in the beat the music is (0 on the beat), from the position in the piece and its tempo. */
export function beatPhaseAt(positionSec: number, bpm: number | null): number {
  const b = bpm && bpm > 0 ? bpm : 120;
  const beats = (positionSec * b) / 60;
  return Number.isFinite(beats) ? beats - Math.floor(beats) : 0;
}
