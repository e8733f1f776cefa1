// A broadcast's renditions as a log of operations (server/live/broadcast-renditions.ts),
// at the unit level with synthetic chunks: another BroadcastRenditions fed the
// log (what another node reads from Redis) serves the same playlists and bytes,
// whether it read from the start, started in the middle (from a resume point), or
// lost entries on the way (it starts again at the next resume point). The log's
// encoding (server/scaleout/hls-relay.ts) round-trips every operation. Across real
// processes and Redis: broadcast-nodes.test.ts.
import { expect } from 'chai';
import type { BroadcastChunk } from '../../media/live/broadcast-encoder.ts';
import type { CmafInit } from '../../media/live/cmaf.ts';
import { BroadcastRenditions, type BroadcastOp } from '../../server/live/broadcast-renditions.ts';
import { decodeOp, encodeOp } from '../../server/scaleout/hls-relay.ts';

const T0 = Date.parse('2026-12-07T12:00:00.000Z');
const hls = { segmentTargetSec: 1, windowSegments: 3, blockTimeoutMs: 1000, now: () => T0 };

const init = (tag: string): CmafInit => ({ data: Buffer.from(`init-${tag}`), tracks: [{ id: 1, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2' }] });

/** The encoding node: applies its encoder's operations and keeps the log it would append. */
class Encoder {
  readonly out = new BroadcastRenditions({ hls });
  readonly log: BroadcastOp[] = [];
  #n = 0;
  #t = 0;
  apply(op: BroadcastOp): void {
    this.log.push(...this.out.apply(op));
  }
  chunks(count: number): void {
    for (let i = 0; i < count; i++, this.#n++, this.#t += 0.5) {
      const chunk: BroadcastChunk = { data: Buffer.alloc(300 + (this.#n % 7), this.#n % 251), durationSec: 0.5, startSec: this.#t, independent: true, wallClockMs: T0 + this.#t * 1000 };
      this.apply({ type: 'chunk', rendition: 'audio', chunk });
    }
  }
  restart(tag: string): void {
    this.#t = 0;
    this.apply({ type: 'discontinuity' });
    this.apply({ type: 'init', rendition: 'audio', init: init(tag) });
  }
}

async function expectSame(a: BroadcastRenditions, b: BroadcastRenditions): Promise<void> {
  const [x, y] = [a.rendition('audio')!, b.rendition('audio')!];
  const text = await x.playlist();
  expect(await y.playlist()).to.equal(text);
  for (const uri of text.split('\n').filter((l) => !l.startsWith('#EXT-X-PRELOAD-HINT')).flatMap((l) => [...l.matchAll(/(?:URI="|^)((?:part|seg|init)-[\d.]+\.(?:m4s|mp4))/g)].map((m) => m[1]!))) {
    expect(y.file(uri)?.body.equals(x.file(uri)!.body), uri).to.equal(true);
  }
}

describe('broadcast renditions as a log of operations', () => {
  it('a node that reads the log from the start serves the same playlists and bytes, across restarts and the end', async () => {
    const enc = new Encoder();
    enc.apply({ type: 'create', rendition: 'audio', partTargetSec: 0.5 });
    enc.apply({ type: 'init', rendition: 'audio', init: init('a') });
    enc.chunks(9);
    enc.restart('b');
    enc.chunks(7);
    const mirror = new BroadcastRenditions({ hls });
    for (const op of enc.log) mirror.apply(op);
    await expectSame(enc.out, mirror);
    expect(enc.log.filter((op) => op.type === 'resume').length, 'a resume point before every segment').to.be.greaterThan(5);
    enc.apply({ type: 'end' });
    mirror.apply(enc.log.at(-1)!);
    await expectSame(enc.out, mirror);
    expect(await mirror.rendition('audio')!.playlist()).to.match(/#EXT-X-ENDLIST/);
    enc.out.close();
    mirror.close();
  });

  it('a node that starts in the middle begins at the next resume point; once the window has moved on, the same playlists', async () => {
    const enc = new Encoder();
    enc.apply({ type: 'create', rendition: 'audio', partTargetSec: 0.5 });
    enc.apply({ type: 'init', rendition: 'audio', init: init('a') });
    enc.chunks(11);
    enc.restart('b');
    enc.chunks(3);
    const from = enc.log.length - 5; // in the middle of a segment, after the restart
    enc.chunks(14);
    const mirror = new BroadcastRenditions({ hls });
    for (const op of enc.log.slice(from)) mirror.apply(op);
    await expectSame(enc.out, mirror);
    expect(mirror.initOf('audio')?.data.toString()).to.equal('init-b');
    enc.out.close();
    mirror.close();
  });

  it('entries lost on the way: after resync() the renditions wait for the next resume point and agree again from there', async () => {
    const enc = new Encoder();
    enc.apply({ type: 'create', rendition: 'audio', partTargetSec: 0.5 });
    enc.apply({ type: 'init', rendition: 'audio', init: init('a') });
    enc.chunks(6);
    const mirror = new BroadcastRenditions({ hls });
    for (const op of enc.log) mirror.apply(op);
    const lostFrom = enc.log.length;
    enc.chunks(3);
    const lostTo = enc.log.length - 1; // the last entry reaches it
    enc.chunks(12);
    mirror.resync();
    for (const op of enc.log.slice(lostTo)) mirror.apply(op);
    expect(lostTo).to.be.greaterThan(lostFrom);
    await expectSame(enc.out, mirror);
    enc.out.close();
    mirror.close();
  });

  it('every operation survives the log encoding (Redis stream fields)', () => {
    const enc = new Encoder();
    enc.apply({ type: 'create', rendition: 'audio', partTargetSec: 0.5 });
    enc.apply({ type: 'init', rendition: 'audio', init: init('a') });
    enc.chunks(4);
    enc.restart('b');
    enc.chunks(2);
    enc.apply({ type: 'end' });
    const types = new Set(enc.log.map((op) => op.type));
    expect([...types].sort()).to.deep.equal(['chunk', 'create', 'discontinuity', 'end', 'init', 'resume']);
    for (const op of enc.log) {
      const flat = encodeOp(op);
      const fields = new Map<string, Buffer>();
      for (let i = 0; i < flat.length; i += 2) fields.set(String(flat[i]), Buffer.from(flat[i + 1]!));
      expect(decodeOp(fields)).to.deep.equal(op);
    }
    expect(() => decodeOp(new Map([['t', Buffer.from('chunk')], ['r', Buffer.from('other')]]))).to.throw(/unknown rendition/);
    expect(() => decodeOp(new Map([['t', Buffer.from('nope')], ['r', Buffer.from('audio')]]))).to.throw(/unknown operation/);
    enc.out.close();
  });
});
