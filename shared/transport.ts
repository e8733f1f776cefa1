// The room's transport: where in the excerpt the music is, at a given server time.
// Every member and the mixer compute the same position from the same document.
import type { RoomRelease, RoomState } from './room-doc.ts';

export interface PlayRegion {
  /** Seconds into the piece. */
  startSec: number;
  endSec: number;
}

/** The part of the piece that plays: the loop when one is set inside the excerpt, else the excerpt. */
export function playRegion(state: Pick<RoomState, 'arrangement'>, release: Pick<RoomRelease, 'excerpts'>): PlayRegion {
  const a = state.arrangement;
  const excerpt = release.excerpts.find((e) => e.id === a.excerptId) ?? release.excerpts[0]!;
  const { loopStartSec: ls, loopEndSec: le } = a;
  if (ls !== null && le !== null && le - ls >= 0.25 && ls >= excerpt.startSec && le <= excerpt.endSec) {
    return { startSec: ls, endSec: le };
  }
  return { startSec: excerpt.startSec, endSec: excerpt.endSec };
}

/**
 * Seconds into the excerpt at `nowMs`. Playing advances at the master tempo and
 * wraps around the play region (excerpts loop while a room plays them).
 */
export function transportPosition(
  state: Pick<RoomState, 'arrangement' | 'mix'>,
  release: Pick<RoomRelease, 'excerpts'>,
  nowMs: number,
): number {
  const t = state.arrangement.transport;
  const excerpt = release.excerpts.find((e) => e.id === state.arrangement.excerptId) ?? release.excerpts[0]!;
  const region = playRegion(state, release);
  const regionStart = region.startSec - excerpt.startSec;
  const regionLength = region.endSec - region.startSec;
  let pos = t.positionSec;
  if (t.playing) pos += (Math.max(0, nowMs - t.anchorMs) / 1000) * state.mix.master.tempo;
  if (pos < regionStart) return regionStart;
  if (pos >= regionStart + regionLength) pos = regionStart + ((pos - regionStart) % regionLength);
  return pos;
}
