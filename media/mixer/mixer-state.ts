// What the mixer needs from a room at a block boundary, and how to get it from
// the room document: the mix, whether the transport plays, the region that
// loops, and where the room's transport says the music is now.
import { neutralMaster, neutralStrip } from '../../shared/room-doc.ts';
import type { MasterSection, RoomRelease, RoomState, StemStrip } from '../../shared/room-doc.ts';
import { playRegion, transportPosition } from '../../shared/transport.ts';
import type { PlayRegion } from '../../shared/transport.ts';

export interface MixerState {
  /** Strips by stem id; a stem without one plays at neutral. */
  stems: Record<string, StemStrip>;
  master: MasterSection;
  playing: boolean;
  /** The part of the piece that plays, in seconds of the piece; the mixer wraps at its end. */
  region: PlayRegion;
  /**
   * Where the room's transport says the music is at this block, in seconds of
   * the piece. The mixer keeps its own smooth position while within 60 ms of it
   * and jumps (crossfaded) when further; null lets the mixer run free.
   */
  targetSourceSec: number | null;
}

/** The mixer's state for a room at server time `nowMs` (shared/transport.ts decides the position). */
export function mixerStateFrom(
  room: Pick<RoomState, 'mix' | 'arrangement'>,
  release: Pick<RoomRelease, 'excerpts' | 'bpm'>,
  nowMs: number,
): MixerState {
  if (release.excerpts.length === 0) throw new RangeError('a release without excerpts cannot be played');
  const excerpt = release.excerpts.find((e) => e.id === room.arrangement.excerptId) ?? release.excerpts[0]!;
  return {
    stems: room.mix.stems,
    master: room.mix.master,
    playing: room.arrangement.transport.playing,
    region: playRegion(room, release),
    // transportPosition counts from the excerpt's start; the mixer counts from the piece's.
    targetSourceSec: excerpt.startSec + transportPosition(room, release, nowMs),
  };
}

/** Every control neutral, playing `region` from its start (tests, benchmarks, a fresh room). */
export function neutralMixerState(stemIds: readonly string[], region: PlayRegion, playing = true): MixerState {
  const stems: Record<string, StemStrip> = {};
  for (const id of stemIds) stems[id] = neutralStrip();
  return { stems, master: neutralMaster(), playing, region: { ...region }, targetSourceSec: region.startSec };
}
