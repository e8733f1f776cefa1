import { expect } from 'chai';
import { RateLimiter } from '../../server/util/rate-limiter.ts';

/** A clock that only moves when told to. */
function fakeClock(start = 1_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => void (t += ms) };
}

describe('RateLimiter', () => {
  it('allows a burst up to the capacity, then refuses with the time until the next token', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 5, refillPerSec: 2 }, { now: clock.now });
    for (let i = 0; i < 5; i++) expect(limiter.take('m1')).to.deep.equal({ ok: true });
    expect(limiter.take('m1')).to.deep.equal({ ok: false, retryAfterMs: 500 });
  });

  it('counts down retryAfterMs as time passes', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 1 }, { now: clock.now });
    limiter.take('m1');
    clock.advance(300);
    expect(limiter.take('m1')).to.deep.equal({ ok: false, retryAfterMs: 700 });
  });

  it('does not charge refused attempts: retrying after retryAfterMs succeeds', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 4 }, { now: clock.now });
    limiter.take('m1');
    limiter.take('m1');
    for (let i = 0; i < 10; i++) expect(limiter.take('m1').ok).to.equal(false);
    const refused = limiter.take('m1');
    expect(refused).to.deep.equal({ ok: false, retryAfterMs: 250 });
    clock.advance(250);
    expect(limiter.take('m1')).to.deep.equal({ ok: true });
  });

  it('refills over time at refillPerSec, never above the capacity', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 3, refillPerSec: 1 }, { now: clock.now });
    for (let i = 0; i < 3; i++) limiter.take('m1');
    clock.advance(2_000);
    expect(limiter.take('m1').ok).to.equal(true);
    expect(limiter.take('m1').ok).to.equal(true);
    expect(limiter.take('m1').ok).to.equal(false);
    clock.advance(60_000);
    for (let i = 0; i < 3; i++) expect(limiter.take('m1').ok).to.equal(true);
    expect(limiter.take('m1').ok).to.equal(false);
  });

  it('refills fractional rates exactly enough', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 0.1 }, { now: clock.now });
    limiter.take('m1');
    expect(limiter.take('m1')).to.deep.equal({ ok: false, retryAfterMs: 10_000 });
    clock.advance(9_999);
    expect(limiter.take('m1')).to.deep.equal({ ok: false, retryAfterMs: 1 });
    clock.advance(1);
    expect(limiter.take('m1')).to.deep.equal({ ok: true });
  });

  it('takes a cost greater than one', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 10, refillPerSec: 2 }, { now: clock.now });
    expect(limiter.take('m1', 7)).to.deep.equal({ ok: true });
    expect(limiter.take('m1', 4)).to.deep.equal({ ok: false, retryAfterMs: 500 });
    expect(limiter.take('m1', 3)).to.deep.equal({ ok: true });
    expect(limiter.take('m1', 10)).to.deep.equal({ ok: false, retryAfterMs: 5_000 });
  });

  it('rejects a cost the bucket can never hold, or a negative one', () => {
    const limiter = new RateLimiter({ capacity: 3, refillPerSec: 1 });
    expect(() => limiter.take('m1', 4)).to.throw(RangeError);
    expect(() => limiter.take('m1', -1)).to.throw(RangeError);
    expect(() => limiter.take('m1', Number.NaN)).to.throw(RangeError);
  });

  it('rejects limits that make no sense', () => {
    expect(() => new RateLimiter({ capacity: 0, refillPerSec: 1 })).to.throw(RangeError);
    expect(() => new RateLimiter({ capacity: 1, refillPerSec: 0 })).to.throw(RangeError);
    expect(() => new RateLimiter({ capacity: Number.POSITIVE_INFINITY, refillPerSec: 1 })).to.throw(RangeError);
    expect(() => new RateLimiter({ capacity: 1, refillPerSec: 1 }, { maxKeys: 0 })).to.throw(RangeError);
  });

  it('keeps keys independent', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 1 }, { now: clock.now });
    limiter.take('m1');
    limiter.take('m1');
    expect(limiter.take('m1').ok).to.equal(false);
    expect(limiter.take('m2')).to.deep.equal({ ok: true });
    expect(limiter.take('m2')).to.deep.equal({ ok: true });
    expect(limiter.take('m2').ok).to.equal(false);
  });

  it('starts a key afresh after reset', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 1 }, { now: clock.now });
    limiter.take('m1');
    expect(limiter.take('m1').ok).to.equal(false);
    limiter.reset('m1');
    expect(limiter.size()).to.equal(0);
    expect(limiter.take('m1').ok).to.equal(true);
  });

  it('does not drain when the clock steps backwards', () => {
    const clock = fakeClock(10_000);
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 1 }, { now: clock.now });
    limiter.take('m1');
    clock.advance(-5_000);
    expect(limiter.take('m1').ok).to.equal(true);
    expect(limiter.take('m1').ok).to.equal(false);
  });

  it('keeps no entry for a key whose bucket is full', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 1 }, { now: clock.now });
    expect(limiter.take('m1', 0)).to.deep.equal({ ok: true });
    expect(limiter.size()).to.equal(0);
  });

  it('forgets keys whose bucket has filled up again', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 1 }, { now: clock.now });
    for (let i = 0; i < 10; i++) limiter.take(`m${i}`);
    expect(limiter.size()).to.equal(10);
    clock.advance(1_000); // every bucket is back to 2 of 2
    limiter.take('other');
    expect(limiter.size()).to.equal(1);
  });

  it('keeps keys whose bucket is still filling', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 2, refillPerSec: 1 }, { now: clock.now });
    limiter.take('slow', 2);
    limiter.take('quick', 1);
    clock.advance(1_000); // quick is full again, slow is at 1 of 2
    limiter.take('other');
    expect(limiter.size()).to.equal(2);
    expect(limiter.take('slow', 2)).to.deep.equal({ ok: false, retryAfterMs: 1_000 });
  });

  it('holds at most maxKeys, evicting the least recently used', () => {
    const clock = fakeClock();
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 0.001 }, { now: clock.now, maxKeys: 3 });
    limiter.take('a');
    limiter.take('b');
    limiter.take('c');
    limiter.take('a'); // refused, but recent: "a" is now the newest
    limiter.take('d'); // over the bound: "b" goes
    expect(limiter.size()).to.equal(3);
    expect(limiter.take('b').ok).to.equal(true); // forgotten, so a fresh full bucket
    expect(limiter.take('a').ok).to.equal(false);
    expect(limiter.take('d').ok).to.equal(false);
  });

  it('stays within maxKeys under a flood of distinct keys', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 0.001 }, { now: () => 0, maxKeys: 1_000 });
    for (let i = 0; i < 50_000; i++) limiter.take(`k${i}`);
    expect(limiter.size()).to.equal(1_000);
  });

  it('uses the real clock by default', () => {
    const limiter = new RateLimiter({ capacity: 1, refillPerSec: 1 });
    expect(limiter.take('m1').ok).to.equal(true);
    const refused = limiter.take('m1');
    expect(refused.ok).to.equal(false);
    expect((refused as { retryAfterMs: number }).retryAfterMs).to.be.within(1, 1_000);
  });
});
