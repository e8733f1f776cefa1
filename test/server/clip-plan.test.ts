import { expect } from 'chai';
import { planClip } from '../../server/clips/clip-plan.ts';
import type { TimelineWindow } from '../../server/rooms/timeline.ts';

const release = { bpm: 120, excerpts: [{ id: 'a', startSec: 0, endSec: 60 }] } as unknown as Parameters<typeof planClip>[1];

describe('planClip: a window of the timeline as the mixer schedule', () => {
  it('gives each scheduled state the values of its own moment (the timeline state changes in place)', () => {
    const fromMs = 1_000_000;
    const window: TimelineWindow = {
      fromMs,
      toMs: fromMs + 4000,
      initial: {
        mix: { stems: { bass: { gainDb: 0, mute: false } }, master: {} },
        arrangement: { excerptId: 'a', loop: null, transport: { playing: true, positionSec: 0, anchorMs: fromMs } },
      },
      events: [
        { tMs: fromMs + 1000, path: 'mix.stems.bass.mute', value: true },
        { tMs: fromMs + 2000, path: 'mix.stems.bass.gainDb', value: -6 },
        { tMs: fromMs + 3000, path: 'mix.stems.bass.mute', value: false },
        { tMs: fromMs + 3500, path: 'arrangement.transport.playing', value: false },
      ],
    };
    const plan = planClip(window, release);
    const at = (block: number) => [...plan.schedule].reverse().find((s) => s.block <= block)!.state;
    expect(at(50).stems['bass']).to.include({ mute: false, gainDb: 0 });
    expect(at(150).stems['bass']).to.include({ mute: true, gainDb: 0 });
    expect(at(250).stems['bass']).to.include({ mute: true, gainDb: -6 });
    expect(at(320).stems['bass']).to.include({ mute: false, gainDb: -6 });
    expect(at(320).playing).to.equal(true);
    expect(at(360).playing).to.equal(false);
    // The beat follows the transport of its moment too: playing until 3.5 s, then frozen.
    expect(plan.beatAt(3.6)).to.be.closeTo(plan.beatAt(3.9), 1e-9);
    expect(plan.beatAt(1.0)).to.not.be.closeTo(plan.beatAt(1.2), 1e-6);
  });
});
