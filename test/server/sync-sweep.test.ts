import { expect } from 'chai';
import { SyncSweep, type SyncConnection } from '../../server/rooms/sync-connection.ts';

describe('SyncSweep: one timer keeps every sync connection alive', () => {
  const fake = () => {
    const beats: number[] = [];
    return { beats, connection: { heartbeat: () => beats.push(performance.now()) } as unknown as SyncConnection };
  };

  it('visits every connection about once per period, spread over it, and never twice in a burst', async () => {
    const sweep = new SyncSweep({ everyMs: 200, tickMs: 10 });
    const fakes = Array.from({ length: 25 }, fake);
    for (const f of fakes) sweep.add(f.connection);
    try {
      await new Promise((r) => setTimeout(r, 560));
      for (const { beats } of fakes) {
        expect(beats.length, 'visits in ~2.8 periods').to.be.within(2, 4);
        // About a period apart (timers run late on a busy machine, so only the order of magnitude is checked).
        for (let i = 1; i < beats.length; i++) expect(beats[i]! - beats[i - 1]!, 'time between visits').to.be.above(100);
      }
      // Spread out: the first round took several ticks, not one.
      const firsts = fakes.map((f) => f.beats[0]!);
      expect(Math.max(...firsts) - Math.min(...firsts)).to.be.above(50);
    } finally {
      sweep.stop();
    }
  });

  it('visits a lone connection once per period, not once per tick', async () => {
    const sweep = new SyncSweep({ everyMs: 200, tickMs: 10 });
    const f = fake();
    sweep.add(f.connection);
    try {
      await new Promise((r) => setTimeout(r, 300));
      expect(f.beats.length).to.equal(2);
    } finally {
      sweep.stop();
    }
  });

  it('runs its timer only while it has connections', () => {
    const sweep = new SyncSweep({ everyMs: 200, tickMs: 10 });
    const a = fake();
    const b = fake();
    expect(sweep.running).to.equal(false);
    sweep.add(a.connection);
    sweep.add(b.connection);
    expect(sweep.running).to.equal(true);
    sweep.delete(a.connection);
    expect(sweep.running).to.equal(true);
    sweep.delete(b.connection);
    expect(sweep.running).to.equal(false);
    expect(sweep.size).to.equal(0);
  });
});
