// The update throttle alone (the limits in process, peers as plain objects): edits
// within a member's allowance go at once, the rest wait in order and go merged, an
// attacker's unreadable bytes never escape, and too many waiting is an overflow.
import { expect } from 'chai';
import { pino } from 'pino';
import * as Y from 'yjs';
import { LocalBucketStore } from '../../server/limits/bucket-store.ts';
import { Limits } from '../../server/limits/limits.ts';
import { UpdateThrottle, type ThrottledPeer } from '../../server/rooms/update-throttle.ts';
import { LIMITS } from '../../shared/limits.ts';
import { waitFor } from '../support/room-clients.ts';

function peer(userId: string, address = '192.0.2.1'): ThrottledPeer & { applied: Uint8Array[]; closed: boolean } {
  return { member: { userId, address }, applied: [], closed: false, applyUpdate(u) { this.applied.push(u); } };
}

/** `n` edits of one client, each its own update. */
function edits(n: number): Uint8Array[] {
  const doc = new Y.Doc();
  const out: Uint8Array[] = [];
  doc.on('update', (u: Uint8Array) => out.push(u));
  for (let i = 0; i < n; i++) doc.getMap('mix').set('gainDb', -i);
  return out;
}

describe('UpdateThrottle', () => {
  let throttle: UpdateThrottle;
  afterEach(() => throttle?.close());

  it("applies a member's edits within its allowance, queues the rest in order, and applies them merged as it comes back", async () => {
    throttle = new UpdateThrottle(new Limits(new LocalBucketStore()), pino({ level: 'silent' }));
    const p = peer('u1');
    const all = edits(LIMITS['sync.update.member'].capacity + 30);
    const outcomes = all.map((u) => throttle.submit(p, u));
    expect(outcomes.filter((o) => o === 'overflow')).to.have.length(0);
    expect(outcomes.filter((o) => o === 'queued').length).to.be.above(0);
    await waitFor(() => throttle.pending(p) === 0, 5000, 'the waiting edits to go in');
    // Fewer applications than edits (the waiting ones went in merged), and the result is every edit.
    expect(p.applied.length).to.be.below(all.length);
    const doc = new Y.Doc();
    for (const u of p.applied) Y.applyUpdate(doc, u);
    expect(doc.getMap('mix').get('gainDb')).to.equal(-(all.length - 1));
  });

  it("keeps one member's allowance across its connections, and another member's apart", async () => {
    throttle = new UpdateThrottle(new Limits(new LocalBucketStore()), pino({ level: 'silent' }));
    const a1 = peer('u1');
    const a2 = peer('u1');
    const b = peer('u2', '192.0.2.2');
    // The member's burst, spent on one connection.
    for (const u of edits(LIMITS['sync.update.member'].capacity)) throttle.submit(a1, u);
    await waitFor(() => throttle.pending(a1) === 0, 5000, 'the first connection to drain');
    const second = edits(20).map((u) => throttle.submit(a2, u));
    expect(second.filter((o) => o === 'queued').length, 'the same member on another connection waits').to.be.above(10);
    expect(throttle.submit(b, edits(1)[0]!), 'another member goes at once after a first lease').to.be.oneOf(['applied', 'queued']);
    await waitFor(() => b.applied.length === 1, 2000, "the other member's edit");
  });

  it("never throws for an attacker's unreadable bytes: they are applied one by one, for the room to refuse", async () => {
    throttle = new UpdateThrottle(new Limits(new LocalBucketStore()), pino({ level: 'silent' }));
    const p = peer('u1');
    const garbage = [Uint8Array.of(1, 2, 3), Uint8Array.of(0, 0, 0, 0, 255, 127, 1), Uint8Array.of(9)];
    const rejections: unknown[] = [];
    const onRejection = (err: unknown) => rejections.push(err);
    process.on('unhandledRejection', onRejection);
    try {
      for (let i = 0; i < LIMITS['sync.update.member'].capacity + 40; i++) throttle.submit(p, garbage[i % garbage.length]!);
      await waitFor(() => throttle.pending(p) === 0, 5000, 'the garbage to be handed over');
      await new Promise((r) => setTimeout(r, 50));
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    expect(rejections).to.deep.equal([]);
    expect(p.applied.length).to.equal(LIMITS['sync.update.member'].capacity + 40);
  });

  it('answers overflow past the cap of edits waiting on one connection', () => {
    throttle = new UpdateThrottle(new Limits(new LocalBucketStore(), { caps: { 'sync.pending.connection': 5 } }), pino({ level: 'silent' }));
    const p = peer('u1');
    const outcomes = edits(40).map((u) => throttle.submit(p, u));
    expect(outcomes.filter((o) => o === 'overflow').length).to.be.above(0);
    throttle.forget(p);
    expect(throttle.pending(p)).to.equal(0);
  });
});
