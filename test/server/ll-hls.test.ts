// The LL-HLS rendition: synthetic chunks at the unit level (the playlist parsed
// back: tags, numbering, where segments are cut, the window, discontinuities,
// program date times; blocking reload; bad queries and file names), read by
// hls.js's own playlist parser, and end to end from real ffmpeg through the
// splitter to files that ffmpeg's HLS demuxer plays back.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { M3U8Parser } from 'hls.js';
import { CmafSplitter, type CmafChunk, type CmafInit } from '../../media/live/cmaf.ts';
import {
  HlsBadRequest,
  HlsUnavailable,
  LlHlsRendition,
  hlsCacheControl,
  multivariantPlaylist,
  parseBlockingQuery,
  type LlHlsOptions,
} from '../../server/live/hls/ll-hls.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

const run = promisify(execFile);

const T0 = Date.parse('2026-12-07T12:00:00.000Z');

function videoInit(tag = 'a'): CmafInit {
  return {
    data: Buffer.from(`init-video-${tag}`),
    tracks: [
      { id: 2, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2' },
      { id: 1, kind: 'video', timescale: 15360, codec: 'avc1.64001f' },
    ],
  };
}
const audioInit: CmafInit = { data: Buffer.from('init-audio'), tracks: [{ id: 1, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2' }] };

/** Feeds chunks of 0.5 s, every `gop`-th one independent, from media time `start`. */
class Feeder {
  t: number;
  n = 0;
  readonly rendition: LlHlsRendition;
  readonly gop: number;
  constructor(rendition: LlHlsRendition, gop: number, start = 0) {
    this.rendition = rendition;
    this.gop = gop;
    this.t = start;
  }
  push(count = 1, bytes = 1000): CmafChunk[] {
    const out: CmafChunk[] = [];
    for (let i = 0; i < count; i++) {
      const chunk: CmafChunk = { data: Buffer.alloc(bytes, this.n % 251), durationSec: 0.5, startSec: this.t, independent: this.n % this.gop === 0 };
      this.rendition.push(chunk);
      out.push(chunk);
      this.t += 0.5;
      this.n++;
    }
    return out;
  }
}

interface ParsedSegment {
  msn: number;
  discontinuity: boolean;
  map: string | null;
  pdt: string | null;
  parts: { duration: number; uri: string; independent: boolean }[];
  duration: number | null;
  uri: string | null;
}

/** A small independent reading of our playlists (hls.js reads them too, below). */
function parse(text: string): { tags: Map<string, string>; segments: ParsedSegment[]; hint: string | null } {
  const lines = text.trimEnd().split('\n');
  expect(lines[0]).to.equal('#EXTM3U');
  const tags = new Map<string, string>();
  const segments: ParsedSegment[] = [];
  let msn = -1;
  let hint: string | null = null;
  let current: ParsedSegment | null = null;
  const open = (): ParsedSegment => {
    if (!current) {
      current = { msn: msn++, discontinuity: false, map: null, pdt: null, parts: [], duration: null, uri: null };
      segments.push(current);
    }
    return current;
  };
  for (const line of lines.slice(1)) {
    const [tag, value = ''] = line.startsWith('#') ? [line.slice(0, line.indexOf(':') < 0 ? undefined : line.indexOf(':')), line.slice(line.indexOf(':') + 1)] : [null, line];
    if (tag === '#EXT-X-MEDIA-SEQUENCE') msn = Number(value);
    if (tag === '#EXT-X-DISCONTINUITY') open().discontinuity = true;
    else if (tag === '#EXT-X-MAP') open().map = /URI="([^"]+)"/.exec(value)![1]!;
    else if (tag === '#EXT-X-PROGRAM-DATE-TIME') open().pdt = value;
    else if (tag === '#EXT-X-PART') {
      open().parts.push({ duration: Number(/DURATION=([\d.]+)/.exec(value)![1]), uri: /URI="([^"]+)"/.exec(value)![1]!, independent: value.includes('INDEPENDENT=YES') });
    } else if (tag === '#EXTINF') open().duration = Number(value.replace(/,$/, ''));
    else if (tag === '#EXT-X-PRELOAD-HINT') hint = /URI="([^"]+)"/.exec(value)![1]!;
    else if (tag === null) {
      open().uri = line;
      current = null;
    } else tags.set(tag!, value);
  }
  return { tags, segments, hint };
}

function options(extra: Partial<LlHlsOptions> = {}): LlHlsOptions {
  let now = T0;
  return { partTargetSec: 0.5, segmentTargetSec: 2, windowSegments: 4, blockTimeoutMs: 6000, now: () => (now += 0), ...extra };
}

describe('LL-HLS rendition', () => {
  it('cuts a segment at the first independent part once it has reached the target, and says so in the playlist', async () => {
    const r = new LlHlsRendition('video', options());
    r.setInit(videoInit());
    const feed = new Feeder(r, 2); // GOP 1 s
    feed.push(9);
    const text = await r.playlist();
    const { tags, segments, hint } = parse(text);
    expect(tags.get('#EXT-X-VERSION')).to.equal('9');
    expect(tags.get('#EXT-X-TARGETDURATION')).to.equal('2');
    expect(tags.get('#EXT-X-PART-INF')).to.equal('PART-TARGET=0.500');
    expect(tags.get('#EXT-X-SERVER-CONTROL')).to.equal('CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=1.500,HOLD-BACK=6.000');
    expect(tags.get('#EXT-X-MEDIA-SEQUENCE')).to.equal('0');
    expect(tags.get('#EXT-X-DISCONTINUITY-SEQUENCE')).to.equal('0');
    expect(segments.map((s) => [s.msn, s.duration, s.uri, s.parts.length])).to.deep.equal([
      [0, 2, 'seg-0.m4s', 4],
      [1, 2, 'seg-1.m4s', 4],
      [2, null, null, 1],
    ]);
    expect(segments[0]!.map).to.equal('init-0.mp4');
    expect(segments.slice(1).every((s) => s.map === null)).to.equal(true);
    for (const s of segments) {
      expect(s.parts[0]!.independent).to.equal(true);
      expect(s.parts.map((p) => p.uri)).to.deep.equal(s.parts.map((_, i) => `part-${s.msn}.${i}.m4s`));
    }
    expect(segments[0]!.parts.map((p) => p.independent)).to.deep.equal([true, false, true, false]);
    expect(hint).to.equal('part-2.1.m4s');
    expect(r.latest).to.deep.equal({ msn: 2, part: 0 });
    expect(r.codecs).to.equal('avc1.64001f,mp4a.40.2');
  });

  it('a long GOP makes longer segments, and TARGETDURATION follows the longest (never shrinking)', async () => {
    const r = new LlHlsRendition('video', options());
    r.setInit(videoInit());
    const feed = new Feeder(r, 5); // a keyframe every 2.5 s
    feed.push(11);
    const first = parse(await r.playlist());
    expect(first.segments.map((s) => s.duration)).to.deep.equal([2.5, 2.5, null]);
    expect(first.tags.get('#EXT-X-TARGETDURATION')).to.equal('3'); // 2.5 rounds to 3 (EXTINF rounded must be ≤ target)
    expect(first.segments.every((s) => s.parts[0]!.independent)).to.equal(true);
  });

  it('segment bytes are its parts concatenated; files have strict names and vanish with the window', async () => {
    const r = new LlHlsRendition('audio', options({ windowSegments: 5 }));
    r.setInit(audioInit);
    const chunks = new Feeder(r, 1).push(4 * 8 + 1, 700); // 8 whole segments and one part
    const { tags, segments } = parse(await r.playlist({ access: 'k=abc' }));
    expect(tags.get('#EXT-X-MEDIA-SEQUENCE')).to.equal('3');
    expect(segments.map((s) => s.msn)).to.deep.equal([3, 4, 5, 6, 7, 8]);
    expect(segments[0]!.map).to.equal('init-0.mp4?k=abc');
    expect(segments[0]!.uri).to.equal('seg-3.m4s?k=abc');
    // parts listed only for segments ending within three target durations (6 s) of the end (10.5 s)
    expect(segments.map((s) => s.parts.length)).to.deep.equal([0, 0, 4, 4, 4, 1]);
    expect(segments[2]!.parts[0]!.uri).to.equal('part-5.0.m4s?k=abc');

    const seg5 = r.file('seg-5.m4s')!;
    expect(seg5.body.equals(Buffer.concat(chunks.slice(20, 24).map((c) => c.data)))).to.equal(true);
    expect(seg5.contentType).to.equal('audio/mp4');
    expect(seg5.immutable).to.equal(true);
    expect(r.file('part-5.2.m4s')!.body.equals(chunks[22]!.data)).to.equal(true);
    expect(r.file('part-8.0.m4s')!.body.equals(chunks[32]!.data)).to.equal(true);
    expect(r.file('init-0.mp4')!.body.toString()).to.equal('init-audio');
    // two segments stay downloadable after they leave the playlist; older ones are gone
    expect(r.file('seg-1.m4s')).to.not.equal(null);
    expect(r.file('part-1.0.m4s')).to.not.equal(null);
    expect(r.file('seg-0.m4s')).to.equal(null);
    expect(r.file('part-0.0.m4s')).to.equal(null);
    // not yet whole, not yet there, not ours
    for (const name of [
      'seg-8.m4s', 'part-8.1.m4s', 'seg-9.m4s', 'init-1.mp4', 'part-5.4.m4s',
      'seg-05.m4s', 'part-5.02.m4s', 'seg-5.m4s?x=1', '../seg-5.m4s', 'seg-5.m4s/', 'SEG-5.m4s', 'seg-5.mp4', 'seg--5.m4s',
      'seg-5e0.m4s', 'seg-99999999999999999999.m4s', 'init-0.mp4\0', 'index.m3u8', '', 'part-5.m4s',
    ]) {
      expect(r.file(name), name).to.equal(null);
    }
    expect(r.bandwidth).to.equal(Math.round((4 * 700 * 8) / 2));
  });

  it('a new init: EXT-X-DISCONTINUITY, a new EXT-X-MAP, and the discontinuity sequence counts it once it leaves the window', async () => {
    const r = new LlHlsRendition('video', options({ windowSegments: 3 }));
    r.setInit(videoInit('a'));
    const feed = new Feeder(r, 2);
    feed.push(5); // segment 0 whole, segment 1 open
    r.setInit(videoInit('b')); // the encoder restarted: its timeline starts again
    const restarted = new Feeder(r, 2, 0);
    restarted.push(1, 10); // ...
    let p = parse(await r.playlist());
    expect(p.segments.map((s) => [s.msn, s.discontinuity, s.map])).to.deep.equal([
      [0, false, 'init-0.mp4'],
      [1, false, null],
      [2, true, 'init-1.mp4'],
    ]);
    expect(p.segments[1]!.duration).to.equal(0.5); // the open segment closed early at the restart
    expect(p.tags.get('#EXT-X-DISCONTINUITY-SEQUENCE')).to.equal('0');
    expect(r.file('init-1.mp4')!.body.toString()).to.equal('init-video-b');

    // the same init again (a restart that wrote identical bytes): a discontinuity, the same map named again
    // (a player resets its demuxer at a discontinuity and needs the init there)
    restarted.push(3);
    r.setInit(videoInit('b'));
    new Feeder(r, 2, 0).push(1);
    p = parse(await r.playlist());
    expect(p.segments.at(-1)!.discontinuity).to.equal(true);
    expect(p.segments.at(-1)!.map).to.equal('init-1.mp4');

    // discontinuity() alone; and a timeline jump without one is treated as one
    r.discontinuity();
    new Feeder(r, 2, 100).push(1);
    const later = new Feeder(r, 2, 500);
    later.push(1);
    p = parse(await r.playlist());
    expect(p.segments.map((s) => [s.msn, s.discontinuity])).to.deep.equal([[2, true], [3, true], [4, true], [5, true]]);
    // the first segment listed carries its own EXT-X-DISCONTINUITY: the sequence counts the ones before it
    expect(p.tags.get('#EXT-X-DISCONTINUITY-SEQUENCE')).to.equal('0');
    expect(p.segments[0]!.map).to.equal('init-1.mp4');
    later.push(16); // the window slides past every discontinuity
    p = parse(await r.playlist());
    expect(p.segments.map((s) => [s.msn, s.discontinuity])).to.deep.equal([[6, false], [7, false], [8, false], [9, false]]);
    expect(p.tags.get('#EXT-X-DISCONTINUITY-SEQUENCE')).to.equal('4');
    expect(p.segments[0]!.map).to.equal('init-1.mp4'); // the map is repeated for the first segment listed
    expect(r.file('init-0.mp4')).to.equal(null); // no segment kept uses it any more
    expect(r.file('init-1.mp4')).to.not.equal(null);
  });

  it('EXT-X-PROGRAM-DATE-TIME: the wall clock of each segment\'s first sample, anchored again at a discontinuity', async () => {
    let now = T0;
    const r = new LlHlsRendition('audio', options({ now: () => now }));
    r.setInit(audioInit);
    const feed = new Feeder(r, 1, 10);
    feed.push(1); // arrives at T0, so its first sample was 0.5 s before
    now += 3000; // late arrivals do not move later segments: they follow media time
    feed.push(8);
    let p = parse(await r.playlist());
    expect(p.segments.map((s) => s.pdt)).to.deep.equal(['2026-12-07T11:59:59.500Z', '2026-12-07T12:00:01.500Z', '2026-12-07T12:00:03.500Z']);
    now = T0 + 60_000;
    r.discontinuity();
    new Feeder(r, 1, 0).push(1);
    p = parse(await r.playlist());
    expect(p.segments.at(-1)!.pdt).to.equal('2026-12-07T12:00:59.500Z');
  });

  it('continues another encoder\'s numbering from a snapshot, opening with a discontinuity', async () => {
    const old = new LlHlsRendition('video', options());
    old.setInit(videoInit('a'));
    old.setInit(videoInit('b'));
    new Feeder(old, 2).push(13);
    const snap = old.snapshot();
    expect(snap).to.deep.equal({ nextMsn: 4, discontinuitySequence: 0, nextInitId: 2 });
    old.close();

    const next = new LlHlsRendition('video', options({ start: snap }));
    next.setInit(videoInit('c'));
    new Feeder(next, 2).push(5);
    const p = parse(await next.playlist());
    expect(p.tags.get('#EXT-X-MEDIA-SEQUENCE')).to.equal('4');
    expect(p.tags.get('#EXT-X-DISCONTINUITY-SEQUENCE')).to.equal('0');
    expect(p.segments[0]!.discontinuity).to.equal(true);
    expect(p.segments[0]!.map).to.equal('init-2.mp4');
    expect(next.snapshot().discontinuitySequence).to.equal(1);
  });

  it('a rendition made from resumeOf(msn) and fed the same operations from that segment on renders the same playlists and files (another node mirroring the encoder), also across a discontinuity', async () => {
    const opts = options({ windowSegments: 3, now: () => T0 });
    const src = new LlHlsRendition('video', opts);
    type Op = { init: CmafInit } | { chunk: CmafChunk } | { discontinuity: true };
    const ops: Op[] = [];
    const resumes = new Map<number, { at: number; resume: NonNullable<ReturnType<LlHlsRendition['resumeOf']>> }>();
    const apply = (r: LlHlsRendition, op: Op) => ('init' in op ? r.setInit(op.init) : 'chunk' in op ? r.push(op.chunk) : r.discontinuity());
    let t = 0;
    let n = 0;
    const feed = (op: Op) => {
      const before = src.latest?.msn;
      apply(src, op);
      ops.push(op);
      const after = src.latest?.msn;
      // As the encoding node does: where a chunk opened a segment, the resume point (taken at once).
      if (after !== undefined && after !== before) resumes.set(after, { at: ops.length - 1, resume: src.resumeOf(after)! });
    };
    const chunks = (count: number) => {
      for (let i = 0; i < count; i++, n++, t += 0.5) feed({ chunk: { data: Buffer.alloc(700 + (n % 13), n % 251), durationSec: 0.5, startSec: t, independent: n % 2 === 0, wallClockMs: T0 + t * 1000 + 40 } as CmafChunk });
    };
    feed({ init: videoInit('a') });
    chunks(13);
    // The encoder restarted: a new init, its timeline from 0.
    feed({ init: videoInit('b') });
    t = 0;
    chunks(9);
    feed({ discontinuity: true }); // another node took over (same init: no new MAP number)
    chunks(24);
    const discontinuous = [...resumes.entries()].filter(([, r]) => r.resume.discontinuity).map(([msn]) => msn);
    expect(discontinuous.length).to.equal(2);
    for (const msn of [discontinuous[0]!, discontinuous[0]! + 1, discontinuous[1]!]) {
      const { at, resume } = resumes.get(msn)!;
      const mirror = new LlHlsRendition('video', { ...opts, start: resume });
      for (const op of ops.slice(at)) apply(mirror, op);
      const [a, b] = [await src.playlist(), await mirror.playlist()];
      // Once the source's window holds nothing from before the resume point, they are the same text.
      expect(Number(parse(a).tags.get('#EXT-X-MEDIA-SEQUENCE'))).to.be.at.least(msn);
      expect(b).to.equal(a);
      for (const seg of parse(a).segments) {
        for (const uri of [...seg.parts.map((p) => p.uri), ...(seg.uri ? [seg.uri] : []), ...(seg.map ? [seg.map] : [])]) {
          expect(mirror.file(uri)?.body.equals(src.file(uri)!.body), uri).to.equal(true);
        }
      }
      expect(mirror.latest).to.deep.equal(src.latest);
      expect(mirror.snapshot()).to.deep.equal(src.snapshot());
      mirror.close();
    }
    // A plain snapshot still opens with a discontinuity (a takeover), a resume point does not.
    const resumed = new LlHlsRendition('video', { ...opts, start: resumes.get(discontinuous[1]! + 1)!.resume });
    apply(resumed, ops[resumes.get(discontinuous[1]! + 1)!.at]!);
    expect(parse(await resumed.playlist()).segments[0]!.discontinuity).to.equal(false);
    resumed.close();
    src.close();
  });

  it('end(): the playlist says EXT-X-ENDLIST at once, held reloads and part requests are answered; more after it reopens with a discontinuity', async () => {
    const r = new LlHlsRendition('video', options());
    r.setInit(videoInit('a'));
    const feed = new Feeder(r, 2);
    feed.push(5);
    const latest = r.latest!;
    const held = r.playlist({ msn: latest.msn, part: latest.part + 1 });
    const heldPart = r.awaitFile(`part-${latest.msn}.${latest.part + 1}.m4s`);
    r.end();
    const ended = parse(await held);
    expect(ended.tags.has('#EXT-X-ENDLIST')).to.equal(true);
    expect(ended.hint, 'no preload hint once ended').to.equal(null);
    expect(await heldPart).to.equal(null);
    // Every reload now answers at once with the final playlist; the files stay readable.
    expect(parse(await r.playlist({ msn: latest.msn + 1 })).tags.has('#EXT-X-ENDLIST')).to.equal(true);
    expect(r.file(`part-${latest.msn}.0.m4s`)).to.not.equal(null);
    expect(r.ended).to.equal(true);
    // A restart within the grace: the stream goes on after a discontinuity.
    r.setInit(videoInit('a'));
    new Feeder(r, 2, 100).push(2);
    const again = parse(await r.playlist());
    expect(again.tags.has('#EXT-X-ENDLIST')).to.equal(false);
    expect(again.segments.at(-1)!.discontinuity).to.equal(true);
    r.close();
  });

  it('a chunk that says when it was live anchors the program date time there', async () => {
    const r = new LlHlsRendition('audio', options({ now: () => Date.parse('2026-12-07T12:00:10.000Z') }));
    r.setInit(videoInit('a'));
    r.push({ data: Buffer.alloc(10), durationSec: 0.5, startSec: 0, independent: true, wallClockMs: Date.parse('2026-12-07T12:00:08.250Z') });
    const p = parse(await r.playlist());
    expect(p.segments[0]!.pdt).to.equal('2026-12-07T12:00:08.250Z');
    r.close();
  });

  it('waits for an independent chunk before the first segment, and drops chunks before any init', async () => {
    const r = new LlHlsRendition('video', options());
    r.push({ data: Buffer.from('x'), durationSec: 0.5, startSec: 0, independent: true });
    r.setInit(videoInit());
    r.push({ data: Buffer.from('y'), durationSec: 0.5, startSec: 0.5, independent: false });
    expect(r.latest).to.equal(null);
    expect(r.droppedChunks).to.equal(2);
    r.push({ data: Buffer.from('z'), durationSec: 0.5, startSec: 1, independent: true });
    expect(r.latest).to.deep.equal({ msn: 0, part: 0 });
  });

  describe('blocking playlist reload (RFC 8216bis 6.2.5.2)', () => {
    it('answers when the asked-for part arrives (a part past a segment\'s last is the next segment\'s part 0)', async () => {
      const r = new LlHlsRendition('video', options());
      r.setInit(videoInit());
      const feed = new Feeder(r, 2);
      feed.push(3); // segment 0, parts 0..2
      let answered: string | null = null;
      const waiting = r.playlist({ msn: 0, part: 3 }).then((t) => (answered = t));
      const nextSegment = r.playlist({ msn: 1, part: 0 });
      const wholeSegment = r.playlist({ msn: 0 });
      await Promise.resolve();
      expect(answered).to.equal(null);
      expect(r.waiting).to.equal(3);
      feed.push(1);
      await waiting;
      expect(parse(answered!).segments[0]!.parts).to.have.length(4);
      expect(r.waiting).to.equal(2);
      feed.push(1); // opens segment 1: segment 0 is whole
      const [a, b] = await Promise.all([nextSegment, wholeSegment]);
      expect(parse(a).segments.map((s) => s.msn)).to.deep.equal([0, 1]);
      expect(parse(b).segments[0]!.uri).to.equal('seg-0.m4s');
      // already there, or already gone from the playlist: answered at once
      expect(parse(await r.playlist({ msn: 0, part: 1 })).segments).to.have.length(2);
      expect(r.waiting).to.equal(0);
    });

    it('times out with HlsUnavailable (503); close wakes every waiter; no timers left', async () => {
      const r = new LlHlsRendition('video', options({ blockTimeoutMs: 30 }));
      r.setInit(videoInit());
      new Feeder(r, 2).push(1);
      const err = await r.playlist({ msn: 0, part: 1 }).then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(HlsUnavailable);
      expect((err as HlsUnavailable).status).to.equal(503);
      expect((err as Error).message).to.match(/segment 0 part 1 did not arrive within 30 ms/);

      const r2 = new LlHlsRendition('video', options({ blockTimeoutMs: 60_000 }));
      r2.setInit(videoInit());
      const before = r2.playlist(); // nothing yet: even a plain request waits for the first part
      new Feeder(r2, 2).push(1);
      expect(parse(await before).segments).to.have.length(1);
      const timeouts = (): number => (process as unknown as { getActiveResourcesInfo(): string[] }).getActiveResourcesInfo().filter((x) => x === 'Timeout').length;
      const handles = timeouts();
      const pending = [r2.playlist({ msn: 0, part: 1 }), r2.playlist({ msn: 1, part: 0 })].map((p) => p.then(() => null, (e: unknown) => e));
      expect(r2.waiting).to.equal(2);
      expect(timeouts()).to.equal(handles + 2);
      r2.close();
      r2.close();
      for (const e of await Promise.all(pending)) {
        expect(e).to.be.instanceOf(HlsUnavailable);
        expect((e as Error).message).to.match(/ended/);
      }
      expect(r2.waiting).to.equal(0);
      expect(timeouts()).to.equal(handles);
      await r2.playlist().then(() => expect.fail('a closed rendition answered'), (e: unknown) => expect(e).to.be.instanceOf(HlsUnavailable));
      expect(r2.file('init-0.mp4')).to.equal(null);
      r2.push({ data: Buffer.from('late'), durationSec: 0.5, startSec: 0.5, independent: true }); // ignored, no throw
    });

    it('awaitFile holds a request for the hinted next part until it exists; anything else answers at once', async () => {
      const r = new LlHlsRendition('video', options({ blockTimeoutMs: 60_000 }));
      r.setInit(videoInit());
      const feed = new Feeder(r, 2);
      const first = r.awaitFile('part-0.0.m4s'); // before anything: the first part
      feed.push(1);
      expect((await first)!.body.equals(feed.rendition.file('part-0.0.m4s')!.body)).to.equal(true);
      expect(await r.awaitFile('part-0.5.m4s')).to.equal(null); // not the next one
      expect(await r.awaitFile('seg-0.m4s')).to.equal(null); // whole segments are not held
      expect(await r.awaitFile('part-0.0.m4s')).to.not.equal(null);
      feed.push(3); // segment 0 has parts 0..3; the next is part-0.4 or part-1.0
      const sameSegment = r.awaitFile('part-0.4.m4s');
      const nextSegment = r.awaitFile('part-1.0.m4s');
      expect(r.waiting).to.equal(2);
      const [pushed] = feed.push(1); // independent and the segment is full: it opens segment 1
      expect((await nextSegment)!.body.equals(pushed!.data)).to.equal(true);
      expect(await sameSegment).to.equal(null); // it will never exist: answered, not left to time out
      const late = r.awaitFile('part-1.1.m4s');
      r.close();
      expect(await late).to.equal(null);
      expect(r.waiting).to.equal(0);

      const t = new LlHlsRendition('video', options({ blockTimeoutMs: 20 }));
      t.setInit(videoInit());
      new Feeder(t, 2).push(1);
      expect(await t.awaitFile('part-0.1.m4s')).to.equal(null);
      expect(t.waiting).to.equal(0);
    });

    it('beyond maxWaiters a request is answered at once with the current playlist', async () => {
      const r = new LlHlsRendition('audio', options({ maxWaiters: 2 }));
      r.setInit(audioInit);
      new Feeder(r, 1).push(1);
      const held = [r.playlist({ msn: 0, part: 1 }), r.playlist({ msn: 0, part: 1 })];
      const third = await r.playlist({ msn: 0, part: 1 });
      expect(parse(third).segments[0]!.parts).to.have.length(1);
      expect(r.waiting).to.equal(2);
      r.close();
      await Promise.allSettled(held);
    });

    it('refuses what the spec says to refuse, with a message', async () => {
      const r = new LlHlsRendition('video', options());
      r.setInit(videoInit());
      new Feeder(r, 2).push(5); // segment 0 whole, 1 open with one part
      const refused = async (q: Parameters<LlHlsRendition['playlist']>[0], pattern: RegExp): Promise<void> => {
        const e = await r.playlist(q).then(() => null, (x: unknown) => x);
        expect(e, JSON.stringify(q)).to.be.instanceOf(HlsBadRequest);
        expect((e as HlsBadRequest).status).to.equal(400);
        expect((e as Error).message).to.match(pattern);
      };
      await refused({ msn: 3 }, /more than two segments beyond the last \(0\)/);
      await refused({ msn: 1, part: 7 }, /more than 6 parts beyond/);
      await refused({ part: 1 }, /without _HLS_msn/);
      await refused({ msn: -1 }, /whole number/);
      await refused({ msn: 1.5 }, /whole number/);
      await refused({ msn: Number.NaN }, /whole number/);
      await refused({ msn: 1, part: -2 }, /whole number/);
      await refused({ access: 'k="x"\n#EXT-X-ENDLIST' }, /access query/);
      // the limits themselves are allowed (they wait)
      const ok = [r.playlist({ msn: 2 }), r.playlist({ msn: 1, part: 6 })];
      expect(r.waiting).to.equal(2);
      r.close();
      await Promise.allSettled(ok);
    });
  });

  it('parseBlockingQuery reads _HLS_ directives strictly', () => {
    const q = (s: string): ReturnType<typeof parseBlockingQuery> => parseBlockingQuery(new URLSearchParams(s));
    expect(q('')).to.deep.equal({});
    expect(q('k=abc&_HLS_msn=12&_HLS_part=3')).to.deep.equal({ msn: 12, part: 3 });
    expect(q('_HLS_msn=0&_HLS_skip=YES')).to.deep.equal({ msn: 0, skip: true });
    for (const bad of ['_HLS_msn=-1', '_HLS_msn=1.5', '_HLS_msn=01', '_HLS_msn=', '_HLS_msn=1e3', '_HLS_msn=0x10', '_HLS_msn=9999999999999999999', '_HLS_part=1', '_HLS_msn=1&_HLS_msn=2', '_HLS_msn=1&_HLS_skip=no']) {
      expect(() => q(bad), bad).to.throw(HlsBadRequest);
    }
  });

  it('multivariant playlist and cache headers', () => {
    const text = multivariantPlaylist(
      [
        { name: 'video', codecs: 'avc1.64001f,mp4a.40.2', bandwidth: 812_345.6, resolution: '640x360' },
        { name: 'audio', codecs: 'mp4a.40.2', bandwidth: 0 },
      ],
      '?k=abc',
    );
    expect(text).to.equal(
      '#EXTM3U\n#EXT-X-VERSION:9\n' +
        '#EXT-X-STREAM-INF:BANDWIDTH=812346,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=640x360\nvideo/index.m3u8?k=abc\n' +
        '#EXT-X-STREAM-INF:BANDWIDTH=1,CODECS="mp4a.40.2"\naudio/index.m3u8?k=abc\n',
    );
    expect(() => multivariantPlaylist([{ name: '../x', codecs: '', bandwidth: 1 }], '')).to.throw(TypeError);
    expect(() => multivariantPlaylist([{ name: 'a', codecs: 'x"', bandwidth: 1 }], '')).to.throw(TypeError);
    expect(() => multivariantPlaylist([], 'a b')).to.throw(HlsBadRequest);
    expect(hlsCacheControl('media')).to.match(/immutable/);
    expect(hlsCacheControl('playlist')).to.equal('public, max-age=1');
  });

  describe('read by hls.js\'s own playlist parser', () => {
    it('sees the parts, the preload hint, the server control, program date times and discontinuities', async () => {
      const r = new LlHlsRendition('video', options());
      r.setInit(videoInit('a'));
      new Feeder(r, 2).push(9);
      r.setInit(videoInit('b'));
      new Feeder(r, 2, 0).push(2);
      const text = await r.playlist({ access: 'k=abc' });
      const details = M3U8Parser.parseLevelPlaylist(text, 'https://example.test/api/rooms/r1/hls/video/index.m3u8?k=abc', 0, 'main' as never, 0, null);
      expect(details.live).to.equal(true);
      expect(details.canBlockReload).to.equal(true);
      expect(details.partTarget).to.equal(0.5);
      expect(details.partHoldBack).to.equal(1.5);
      expect(details.holdBack).to.equal(6);
      expect(details.targetduration).to.equal(2);
      expect(details.startSN).to.equal(0);
      expect(details.fragments.map((f) => [f.sn, f.duration, f.cc])).to.deep.equal([
        [0, 2, 0],
        [1, 2, 0],
        [2, 0.5, 0],
      ]);
      expect(details.fragments[1]!.programDateTime! - details.fragments[0]!.programDateTime!).to.equal(2000);
      expect(details.fragments[0]!.initSegment?.url).to.equal('https://example.test/api/rooms/r1/hls/video/init-0.mp4?k=abc');
      const parts = details.partList!;
      expect(parts.map((p) => [p.fragment.sn, p.index, p.independent])).to.deep.equal([
        [0, 0, true], [0, 1, false], [0, 2, true], [0, 3, false],
        [1, 0, true], [1, 1, false], [1, 2, true], [1, 3, false],
        [2, 0, true],
        [3, 0, true], [3, 1, false],
      ]);
      expect(parts.at(-1)!.url).to.equal('https://example.test/api/rooms/r1/hls/video/part-3.1.m4s?k=abc');
      expect(details.preloadHint?.['URI']).to.equal('part-3.2.m4s?k=abc');
      expect(details.preloadHint?.['TYPE']).to.equal('PART');
      // the open segment after the restart: a new cc and the new init
      expect(parts.at(-1)!.fragment.cc).to.equal(1);
      expect(parts.at(-1)!.fragment.initSegment?.url).to.equal('https://example.test/api/rooms/r1/hls/video/init-1.mp4?k=abc');
      const master = M3U8Parser.parseMasterPlaylist(multivariantPlaylist([{ name: 'video', codecs: r.codecs, bandwidth: r.bandwidth, resolution: '640x360' }], 'k=abc'), 'https://example.test/api/rooms/r1/hls/index.m3u8?k=abc');
      expect(master.levels.map((l) => [l.url, l.videoCodec, l.audioCodec, l.width])).to.deep.equal([
        ['https://example.test/api/rooms/r1/hls/video/index.m3u8?k=abc', 'avc1.64001f', 'mp4a.40.2', 640],
      ]);
    });
  });

  describe('end to end: real ffmpeg → splitter → rendition → files ffmpeg plays back', function () {
    this.timeout(60_000);
    let work: { path: string; remove(): Promise<void> };

    before(async function () {
      requireComponent('ffmpeg', commandExists('ffmpeg') && commandExists('ffprobe'), this);
      work = await tempDir('ll-hls');
    });
    after(async () => {
      await work?.remove();
    });

    it('live: a player loop of blocking reloads and hinted parts gets every part in order while ffmpeg encodes in real time', async () => {
      const { spawn } = await import('node:child_process');
      const rendition = new LlHlsRendition('video', options({ now: Date.now, blockTimeoutMs: 6000 }));
      const splitter = new CmafSplitter();
      splitter.on('init', (init) => rendition.setInit(init));
      splitter.on('chunk', (chunk) => rendition.push(chunk));
      splitter.on('error', (e) => expect.fail(e.message));
      const ffmpeg = spawn('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi', '-i', 'testsrc=size=320x180:rate=15', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000',
        '-t', '4', '-map', '0:v', '-map', '1:a', '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '15', '-keyint_min', '15', '-sc_threshold', '0', '-pix_fmt', 'yuv420p',
        '-c:a', 'aac', '-b:a', '128k', '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000', '-flush_packets', '1', 'pipe:1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      ffmpeg.stdout.on('data', (b: Buffer) => splitter.push(b));
      const exited = new Promise<number | null>((resolve) => ffmpeg.on('exit', resolve));
      let ended = false;
      void exited.then(() => {
        ended = true;
        rendition.close(); // what the owner does when the encoder stops: held requests are answered
      });
      try {
        // As hls.js in low-latency mode: read the playlist, then ask for the part after the last one seen.
        let text = await rendition.playlist();
        const init = rendition.file(/URI="([^"]+)"/.exec(text.split('\n').find((l) => l.startsWith('#EXT-X-MAP'))!)![1]!)!.body;
        const got: { name: string; body: Buffer }[] = [];
        let next = { msn: 0, part: 0 };
        let reloads = 0;
        while (!ended) {
          const hint = /PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)?.[1];
          const [reloaded, hinted] = await Promise.all([
            rendition.playlist(next).then((t) => t, () => null),
            hint ? rendition.awaitFile(hint) : Promise.resolve(null),
          ]);
          if (reloaded === null) break;
          text = reloaded;
          reloads++;
          for (const p of parse(text).segments.flatMap((s) => s.parts.map((part) => ({ ...part, msn: s.msn })))) {
            if (got.some((g) => g.name === p.uri)) continue;
            const file = rendition.file(p.uri)!;
            if (hint === p.uri && hinted) expect(hinted.body.equals(file.body)).to.equal(true);
            got.push({ name: p.uri, body: file.body });
          }
          const latest = rendition.latest!;
          next = { msn: latest.msn, part: latest.part + 1 };
        }
        expect(await exited).to.equal(0);
        // every part, in order, none missing
        const order = got.map((g) => g.name.match(/^part-(\d+)\.(\d+)\.m4s$/)!.slice(1).map(Number));
        expect(order[0]).to.deep.equal([0, 0]);
        for (let i = 1; i < order.length; i++) {
          const [pm, pp] = order[i - 1]!;
          const [m, p] = order[i]!;
          expect(m === pm ? p === pp! + 1 : m === pm! + 1 && p === 0, `${order[i - 1]} then ${order[i]}`).to.equal(true);
        }
        expect(reloads).to.be.greaterThan(order.length / 2); // blocking reloads, one per new part or so
        const file = path.join(work.path, 'live.mp4');
        fs.writeFileSync(file, Buffer.concat([init, ...got.map((g) => g.body)]));
        const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name:format=duration', '-of', 'json', file]);
        const info = JSON.parse(probe.stdout) as { streams: { codec_name: string }[]; format: { duration: string } };
        expect(info.streams.map((s) => s.codec_name).sort()).to.deep.equal(['aac', 'h264']);
        expect(Number(info.format.duration)).to.be.within(3, 4.2);
      } finally {
        ffmpeg.kill('SIGKILL');
        await exited;
        rendition.close();
      }
    });

    for (const kind of ['video', 'audio'] as const) {
      it(`${kind}: segments and playlist read back with the stream's duration and codecs`, async () => {
        const inputs = kind === 'video'
          ? ['-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=15', '-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '6', '-map', '0:v', '-map', '1:a',
            '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '15', '-keyint_min', '15', '-sc_threshold', '0', '-pix_fmt', 'yuv420p']
          : ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000', '-t', '6'];
        const { stdout } = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...inputs, '-c:a', 'aac', '-b:a', '128k',
          '-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000', 'pipe:1'], { encoding: 'buffer', maxBuffer: 64 << 20 });
        const rendition = new LlHlsRendition(kind, options({ windowSegments: 10, partTargetSec: 0.6 }));
        const splitter = new CmafSplitter();
        let total = 0;
        splitter.on('init', (init) => rendition.setInit(init));
        splitter.on('chunk', (chunk) => {
          total += chunk.durationSec;
          rendition.push(chunk);
        });
        splitter.on('error', (e) => expect.fail(e.message));
        for (let at = 0; at < stdout.length; at += 4096) splitter.push(stdout.subarray(at, at + 4096));

        const text = await rendition.playlist();
        const parsed = parse(text);
        expect(parsed.tags.get('#EXT-X-PART-INF')).to.equal('PART-TARGET=0.600');
        // Write what a CDN would hold. The open segment is left out and ENDLIST added: ffmpeg's HLS demuxer
        // would otherwise treat it as live and start near the end (it ignores the LL-HLS tags).
        const lines = text.trimEnd().split('\n').filter((l) => !l.startsWith('#EXT-X-PART:') && !l.startsWith('#EXT-X-PRELOAD-HINT'));
        const open = parsed.segments.at(-1)!;
        const lastWhole = lines.lastIndexOf(`seg-${open.msn - 1}.m4s`);
        const vod = [...lines.slice(0, lastWhole + 1), '#EXT-X-ENDLIST', ''].join('\n');
        fs.writeFileSync(path.join(work.path, `${kind}.m3u8`), vod);
        let wholeDuration = 0;
        for (const s of parsed.segments.filter((s) => s.uri)) {
          const file = rendition.file(s.uri!)!;
          fs.writeFileSync(path.join(work.path, s.uri!), file.body);
          wholeDuration += s.duration!;
          // the parts add up to the segment
          const parts = s.parts.length ? s.parts : null;
          if (parts) expect(parts.reduce((sum, p) => sum + p.duration, 0)).to.be.closeTo(s.duration!, 0.002);
        }
        fs.writeFileSync(path.join(work.path, 'init-0.mp4'), rendition.file('init-0.mp4')!.body);
        expect(wholeDuration).to.be.closeTo(total - open.parts.reduce((sum, p) => sum + p.duration, 0), 0.01);

        const probe = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name,codec_type:format=duration', '-of', 'json', path.join(work.path, `${kind}.m3u8`)]);
        const info = JSON.parse(probe.stdout) as { streams: { codec_name: string }[]; format: { duration: string } };
        expect(info.streams.map((s) => s.codec_name).sort()).to.deep.equal(kind === 'video' ? ['aac', 'h264'] : ['aac']);
        expect(Number(info.format.duration)).to.be.closeTo(wholeDuration, 0.1);
        // and it decodes without a complaint
        const decoded = await run('ffmpeg', ['-v', 'error', '-i', path.join(work.path, `${kind}.m3u8`), '-f', 'null', '-']);
        expect(decoded.stderr).to.equal('');
        expect(rendition.bandwidth).to.be.within(kind === 'video' ? 150_000 : 100_000, 5_000_000);
        rendition.close();
      });
    }
  });
});
