import { expect } from 'chai';
import { StateTimeline, applyEvent } from '../../server/rooms/timeline.ts';

describe('state timeline', () => {
  const base = () => ({ mix: { master: { tempo: 1 }, stems: { drums: { gainDb: 0 } } } });

  it('rebuilds the state at any moment it keeps, and the changes after it', () => {
    const tl = new StateTimeline({ retentionMs: 60_000, keyframeEveryMs: 1000 });
    let state = base();
    tl.reset(0, state);
    for (let t = 100; t <= 5000; t += 100) {
      const change = { path: 'mix.stems.drums.gainDb', value: -t / 100 };
      state = structuredClone(state);
      applyEvent(state, { tMs: t, ...change });
      tl.record(t, [change], () => state);
    }
    const w = tl.window(2050, 3000)!;
    expect((w.initial as ReturnType<typeof base>).mix.stems.drums.gainDb).to.equal(-20);
    expect(w.events.map((e) => e.value)).to.deep.equal([-21, -22, -23, -24, -25, -26, -27, -28, -29, -30]);
  });

  it('forgets what is older than its retention, and says so', () => {
    const tl = new StateTimeline({ retentionMs: 1000, keyframeEveryMs: 200 });
    tl.reset(0, base());
    for (let t = 100; t <= 10_000; t += 100) tl.record(t, [{ path: 'mix.master.tempo', value: 1 + t / 1e5 }], () => base());
    expect(tl.window(5000, 6000)).to.equal(null);
    expect(tl.window(9000, 10_000)).to.not.equal(null);
    expect(tl.eventCount).to.be.below(20);
  });

  it('records deletions and nested values', () => {
    const s: Record<string, unknown> = base();
    applyEvent(s, { tMs: 1, path: 'mix.stems.drums', value: undefined });
    applyEvent(s, { tMs: 2, path: 'visual.params', value: { hue: 3 } });
    expect(s).to.deep.equal({ mix: { master: { tempo: 1 }, stems: {} }, visual: { params: { hue: 3 } } });
  });
});
