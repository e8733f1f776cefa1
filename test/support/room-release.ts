import { ReleaseRulesSchema } from '../../shared/release-manifest.ts';
import type { RoomRelease } from '../../shared/room-doc.ts';

/** A release as a room sees it, for unit tests of the room document. */
export function testRoomRelease(rules: Record<string, unknown> = {}): RoomRelease {
  return {
    id: 'fixture',
    durationSec: 80,
    bpm: 120,
    stems: [
      { id: 'drums', title: 'Drums' },
      { id: 'bass', title: 'Bass' },
      { id: 'lead', title: 'Lead' },
    ],
    excerpts: [
      { id: 'intro', title: 'Intro', startSec: 0, endSec: 30 },
      { id: 'drop', title: 'Drop', startSec: 30, endSec: 70 },
    ],
    artwork: [
      { id: 'night', tags: ['night', 'blue', 'stars'], palette: ['#0b0d2e', '#23307a'] },
      { id: 'sun', tags: ['sun', 'warm', 'orange'], palette: ['#ff4a1c', '#ffb000'] },
    ],
    rules: ReleaseRulesSchema.parse(rules),
  };
}
