// Turns a window of a room's state timeline into what the renderer replays:
// the mixer's states on its 10 ms block grid (each change at the block it fell
// in, and the transport re-read every second, as the live mixer does), the
// visual changes, the beat, and who did what.
import { neutralMaster } from '../../shared/room-doc.ts';
import type { RoomRelease, RoomState } from '../../shared/room-doc.ts';
import { transportPosition } from '../../shared/transport.ts';
import { beatPhaseAt, VisualSequence } from '../../shared/visual-timeline.ts';
import { RESYNC_MS } from '../../media/live/mixer-source.ts';
import { mixerStateFrom } from '../../media/mixer/mixer-state.ts';
import type { ScheduledState } from '../../media/mixer/render-offline.ts';
import type { ManifestContributor } from './manifest.ts';
import { applyEvent, type JsonState, type TimelineWindow } from '../rooms/timeline.ts';

export const BLOCK_MS = 10;

export interface ClipPlan {
  schedule: ScheduledState[];
  visuals: VisualSequence;
  /** Beat phase at `tSec` into the clip. */
  beatAt(tSec: number): number;
  contributors: ManifestContributor[];
  durationSec: number;
}

type Release = Pick<RoomRelease, 'excerpts' | 'bpm'>;

/**
 * The mix and arrangement as they are now, as a copy: the timeline's state is changed in place
 * by each later event, and every scheduled state must keep the values of its own moment (a
 * shared reference once gave every block of a clip the stems' final values).
 */
function roomStateOf(s: JsonState): Pick<RoomState, 'mix' | 'arrangement'> {
  const mix = (s['mix'] ?? {}) as RoomState['mix'];
  return structuredClone({
    mix: { stems: mix.stems ?? {}, master: { ...neutralMaster(), ...(mix.master ?? {}) } },
    arrangement: s['arrangement'] as RoomState['arrangement'],
  });
}

export function planClip(window: TimelineWindow, release: Release): ClipPlan {
  const durationMs = window.toMs - window.fromMs;
  if (!(durationMs > 0)) throw new RangeError('the window is empty');
  const state = structuredClone(window.initial);
  const schedule: ScheduledState[] = [];
  const arrangementAt: { tMs: number; state: Pick<RoomState, 'mix' | 'arrangement'> }[] = [];
  const at = (tMs: number) => {
    const s = roomStateOf(state);
    const block = Math.max(0, Math.round((tMs - window.fromMs) / BLOCK_MS));
    schedule.push({ block, state: mixerStateFrom(s, release, tMs) });
    arrangementAt.push({ tMs, state: s });
  };
  const visualInitial = (state['visual'] ?? {}) as { params?: unknown; promptAtMs?: unknown };
  const visuals = new VisualSequence();
  visuals.push(typeof visualInitial.promptAtMs === 'number' ? visualInitial.promptAtMs : window.fromMs, visualInitial.params);

  const people = new Map<string, ManifestContributor>();
  const contributor = (by: { userId: string; name: string }) => {
    let c = people.get(by.userId);
    if (!c) people.set(by.userId, (c = { userId: by.userId, name: by.name, changes: 0, prompts: [] }));
    return c;
  };

  at(window.fromMs);
  let nextResync = window.fromMs + RESYNC_MS;
  const events = window.events;
  let i = 0;
  while (i < events.length) {
    const tMs = events[i]!.tMs;
    while (nextResync < tMs) {
      at(nextResync);
      nextResync += RESYNC_MS;
    }
    let visualChanged = false;
    for (; i < events.length && events[i]!.tMs === tMs; i++) {
      const e = events[i]!;
      applyEvent(state, e);
      if (e.path.startsWith('visual.')) visualChanged = true;
      if (e.by && (e.path.startsWith('mix.') || e.path.startsWith('arrangement.'))) contributor(e.by).changes++;
    }
    if (visualChanged) {
      const v = (state['visual'] ?? {}) as { params?: unknown; prompt?: unknown; promptAtMs?: unknown; promptBy?: unknown };
      visuals.push(tMs, v.params);
    }
    at(tMs);
  }
  while (nextResync < window.toMs) {
    at(nextResync);
    nextResync += RESYNC_MS;
  }
  return {
    schedule,
    visuals,
    beatAt(tSec: number) {
      const tMs = window.fromMs + tSec * 1000;
      let k = arrangementAt.length - 1;
      while (k > 0 && arrangementAt[k]!.tMs > tMs) k--;
      const s = arrangementAt[k]!.state;
      const excerpt = release.excerpts.find((e) => e.id === s.arrangement.excerptId) ?? release.excerpts[0]!;
      return beatPhaseAt(excerpt.startSec + transportPosition(s, release, tMs), release.bpm);
    },
    contributors: [...people.values()],
    durationSec: durationMs / 1000,
  };
}

/** Prompts applied inside the window, from the room's visual history (with who typed them). */
export function promptsInWindow(history: Record<string, { text: string; by: string; name: string; atMs: number }>, fromMs: number, toMs: number) {
  return Object.values(history).filter((h) => h.atMs >= fromMs && h.atMs <= toMs);
}
