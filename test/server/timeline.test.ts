import { expect } from 'chai';
import { StateTimeline, applyEvent, type JsonState } from '../../server/rooms/timeline.ts';

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

  describe('saved and resumed (a room loaded again)', () => {
    /** A timeline of gain changes every 100 ms from 0 to 5 s, and the state it ends at. */
    function recorded(): { tl: StateTimeline; state: JsonState } {
      const tl = new StateTimeline({ retentionMs: 60_000, keyframeEveryMs: 1000 });
      let state: JsonState = base();
      tl.reset(0, state);
      for (let t = 100; t <= 5000; t += 100) {
        const change = { path: 'mix.stems.drums.gainDb', value: -t / 100 };
        state = structuredClone(state);
        applyEvent(state, { tMs: t, ...change });
        tl.record(t, [change], () => state, { userId: 'u1', name: 'Ana' });
      }
      return { tl, state };
    }

    it('replays a window reaching back past the load, as stored as JSON, with what changed on loading', () => {
      const { tl, state } = recorded();
      const json = JSON.stringify(tl.toSaved());
      // Loaded at 9 s: the state then differs (a migration added a stem, and moved the tempo).
      const loaded = structuredClone(state) as ReturnType<typeof base> & { mix: { stems: Record<string, unknown> } };
      loaded.mix.master.tempo = 1.1;
      loaded.mix.stems['bass'] = { gainDb: -3 };
      const again = new StateTimeline({ retentionMs: 60_000, keyframeEveryMs: 1000 });
      expect(again.resume(JSON.parse(json), 9000, loaded)).to.equal(true);
      expect(again.oldestMs).to.equal(0);
      const w = again.window(2050, 9500)!;
      expect((w.initial as ReturnType<typeof base>).mix.stems.drums.gainDb).to.equal(-20);
      const before = w.events.filter((e) => e.tMs <= 5000);
      expect(before.map((e) => e.value)).to.deep.equal(Array.from({ length: 30 }, (_, i) => -(21 + i)));
      expect(before[0]!.by).to.deep.equal({ userId: 'u1', name: 'Ana' });
      expect(w.events.filter((e) => e.tMs === 9000)).to.deep.equal([
        { tMs: 9000, path: 'mix.master.tempo', value: 1.1 },
        { tMs: 9000, path: 'mix.stems.bass', value: { gainDb: -3 } },
      ]);
      // Replaying every change from the start ends exactly at the loaded state.
      const end = structuredClone(w.initial);
      for (const e of w.events) applyEvent(end, e);
      expect(end).to.deep.equal(loaded);
      // And it goes on recording after the load.
      again.record(9100, [{ path: 'mix.master.tempo', value: 1.2 }], () => ({ ...loaded, mix: { ...loaded.mix, master: { tempo: 1.2 } } }));
      expect(again.window(8000, 9200)!.events.at(-1)).to.deep.include({ tMs: 9100, value: 1.2 });
    });

    it('refuses what is not a saved timeline and starts afresh from the loaded state', () => {
      const { tl, state } = recorded();
      const good = tl.toSaved();
      const bad: unknown[] = [
        null,
        'timeline',
        { v: 2, keyframes: good.keyframes, events: good.events },
        { v: 1, keyframes: [], events: [] },
        { v: 1, keyframes: good.keyframes, events: [{ tMs: 'soon', path: 'mix.master.tempo', value: 1 }] },
        { v: 1, keyframes: good.keyframes, events: [{ tMs: 200, path: '__proto__.polluted', value: 1 }] },
        { v: 1, keyframes: good.keyframes, events: [{ tMs: 300, path: 'a', value: 1 }, { tMs: 200, path: 'b', value: 1 }] },
        { v: 1, keyframes: [{ tMs: 0, state: 'nope' }], events: [] },
        // From the future: saved after the moment it is loaded at.
        { v: 1, keyframes: [{ tMs: 20_000, state: base() }], events: [] },
      ];
      for (const saved of bad) {
        const again = new StateTimeline({ retentionMs: 60_000, keyframeEveryMs: 1000 });
        expect(again.resume(saved, 9000, state), JSON.stringify(saved)?.slice(0, 80)).to.equal(false);
        expect(again.oldestMs).to.equal(9000);
        expect(again.eventCount).to.equal(0);
      }
      expect(({} as Record<string, unknown>)['polluted']).to.equal(undefined);
    });

    it('keeps only what its retention covers when the saved timeline is old', () => {
      const { tl, state } = recorded();
      const again = new StateTimeline({ retentionMs: 2000, keyframeEveryMs: 1000 });
      expect(again.resume(tl.toSaved(), 60_000, state)).to.equal(true);
      // The newest saved keyframe (5 s) stays as the base of a window starting at the cutoff; no change is kept.
      expect(again.oldestMs).to.equal(5000);
      expect(again.eventCount).to.equal(0);
      const w = again.window(58_000, 60_000)!;
      expect(w.initial).to.deep.equal(state);
      expect(w.events).to.deep.equal([]);
    });
  });
});
