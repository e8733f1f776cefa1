// mixerStateFrom: what a room's document means to its mixer at a given time.
import { expect } from 'chai';
import { mixerStateFrom } from '../../media/mixer/mixer-state.ts';
import { neutralMaster, neutralStrip, type RoomState } from '../../shared/room-doc.ts';

const release = {
  bpm: 120,
  excerpts: [
    { id: 'groove', title: 'Groove', startSec: 8, endSec: 40 },
    { id: 'drop', title: 'Drop', startSec: 56, endSec: 80 },
  ],
};

function room(over: { excerptId?: string; loop?: [number, number] | null; playing?: boolean; positionSec?: number; anchorMs?: number; tempo?: number }): Pick<RoomState, 'mix' | 'arrangement'> {
  const master = neutralMaster();
  master.tempo = over.tempo ?? 1;
  return {
    mix: { stems: { drums: neutralStrip(), bass: { ...neutralStrip(), gainDb: -3 } }, master },
    arrangement: {
      excerptId: over.excerptId ?? 'groove',
      loopStartSec: over.loop?.[0] ?? null,
      loopEndSec: over.loop?.[1] ?? null,
      transport: { playing: over.playing ?? true, positionSec: over.positionSec ?? 0, anchorMs: over.anchorMs ?? 1_000_000 },
    },
  };
}

describe('mixerStateFrom', function () {
  it('plays the excerpt as the region and places the target in seconds of the piece, advanced at the tempo', function () {
    const s = mixerStateFrom(room({ positionSec: 3, tempo: 1.25 }), release, 1_000_000 + 2000);
    expect(s.region).to.deep.equal({ startSec: 8, endSec: 40 });
    expect(s.targetSourceSec).to.be.closeTo(8 + 3 + 2 * 1.25, 1e-9);
    expect(s.playing).to.equal(true);
    expect(s.stems.bass!.gainDb).to.equal(-3);
    expect(s.master.tempo).to.equal(1.25);
  });

  it('a loop inside the excerpt becomes the region, and the target wraps inside it', function () {
    const s = mixerStateFrom(room({ excerptId: 'drop', loop: [60, 64], positionSec: 5 }), release, 1_000_000 + 3500);
    expect(s.region).to.deep.equal({ startSec: 60, endSec: 64 });
    // 5 s into the excerpt (61 s of the piece) + 3.5 s = 64.5 s, which wraps to 60.5 s.
    expect(s.targetSourceSec).to.be.closeTo(60.5, 1e-9);
  });

  it('paused, the target stays where the transport stopped; an unknown excerpt falls back to the first', function () {
    const s = mixerStateFrom(room({ excerptId: 'gone', playing: false, positionSec: 7 }), release, 1_000_000 + 60_000);
    expect(s.playing).to.equal(false);
    expect(s.region).to.deep.equal({ startSec: 8, endSec: 40 });
    expect(s.targetSourceSec).to.be.closeTo(15, 1e-9);
  });
});
