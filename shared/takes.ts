// Takes: a named snapshot of a room's mix, arrangement and visuals, kept with the room.
// A host (and remixers, when the host allows it: the rule takesByRemixers) saves one,
// and returns the room to it later: one change that everyone hears at once, checked
// against the room's rules as they are then.
import { z } from 'zod';
import type { RoomState } from './room-doc.ts';

/** Longest take name, in characters (after trimming). */
export const TAKE_NAME_MAX = 60;

export const TakeName = z
  .string()
  .transform((s) => s.normalize('NFC').replace(/[\p{Cc}\p{Cf}]/gu, '').replace(/\s+/g, ' ').trim())
  .pipe(z.string().min(1, 'a take needs a name').max(TAKE_NAME_MAX, `a take's name can be at most ${TAKE_NAME_MAX} characters`));

export const SaveTakeBody = z.object({ name: TakeName }).strict();

/** A take's id, as the server makes them. */
export const TAKE_ID = /^tk_[A-Za-z0-9_-]{6,40}$/;

/** What a take holds: the parts of the room document a person made. */
export interface TakeContent {
  mix: RoomState['mix'];
  arrangement: { excerptId: string; loopStartSec: number | null; loopEndSec: number | null };
  /** `model`: absent in takes saved before the visual model (read as none). */
  visual: Pick<RoomState['visual'], 'prompt' | 'params' | 'summary' | 'promptBy' | 'promptAtMs'> & { model?: RoomState['visual']['model'] };
}

/** A take as the API lists it. */
export interface TakeView {
  takeId: string;
  name: string;
  /** Who saved it (their display name then). */
  savedBy: string;
  createdAt: string;
}

/** The answer to returning to a take: what was changed to fit the room's rules now. */
export interface TakeReturn {
  takeId: string;
  name: string;
  /** Values of the take the room's rules no longer allow, and what was done with them, in words. */
  adjusted: string[];
}

/** The take's part of a room's state. */
export function takeContentOf(state: RoomState): TakeContent {
  const v = state.visual;
  return {
    mix: state.mix,
    arrangement: { excerptId: state.arrangement.excerptId, loopStartSec: state.arrangement.loopStartSec, loopEndSec: state.arrangement.loopEndSec },
    visual: { prompt: v.prompt, params: v.params, summary: v.summary, promptBy: v.promptBy, promptAtMs: v.promptAtMs, model: v.model ?? null },
  };
}
