// Splits the fragmented MP4 that ffmpeg writes on a pipe
// (`-movflags +frag_keyframe+empty_moov+default_base_moof`) into what LL-HLS
// serves: the init segment (ftyp+moov) and one chunk per moof+mdat, each with
// the timing and keyframe facts a playlist needs. Pure: bytes in, events out.
// A malformed stream emits 'error' once and the rest is ignored; nothing grows
// past one box of MAX_BOX_BYTES.
import { EventEmitter } from 'node:events';

export interface CmafTrack {
  id: number;
  kind: 'video' | 'audio';
  timescale: number;
  /** RFC 6381, e.g. 'avc1.64001f', 'mp4a.40.2'. */
  codec: string;
}

export interface CmafInit {
  /** ftyp + moov, as written. */
  data: Buffer;
  tracks: CmafTrack[];
}

export interface CmafChunk {
  /** moof + mdat, whole boxes. */
  data: Buffer;
  /** Of the video track if the stream has one (and this fragment carries it), else audio. */
  durationSec: number;
  /** tfdt baseMediaDecodeTime / timescale of that track. */
  startSec: number;
  /** The video track's first sample is a sync sample (audio-only: always true). */
  independent: boolean;
  /**
   * When the producer knows it: the wall clock (ms since the epoch) at which this chunk's first
   * sample was live (the broadcast encoder writes its inputs on the wall clock). The splitter
   * cannot know it and leaves it out.
   */
  wallClockMs?: number;
}

export type CmafSplitterEvents = { init: [CmafInit]; chunk: [CmafChunk]; error: [Error] };

/** No box of an encoder's fragmented output comes near this; a header claiming more is corrupt or hostile. */
export const MAX_BOX_BYTES = 16 * 1024 * 1024;

export class CmafError extends Error {
  override name = 'CmafError';
}

const SAMPLE_IS_NON_SYNC = 0x0001_0000;

type Ready = CmafInit | CmafChunk;

interface TrackDefaults {
  duration: number;
  flags: number;
}

export class CmafSplitter extends EventEmitter<CmafSplitterEvents> {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #ftyp: Buffer | null = null;
  #init: CmafInit | null = null;
  #trex = new Map<number, TrackDefaults>();
  #moof: Buffer | null = null;
  #failed: Error | null = null;

  /** The last init segment seen, or null before the moov. */
  get init(): CmafInit | null {
    return this.#init;
  }

  /** The error that stopped the splitter, if any (also kept when nobody listens for 'error'). */
  get failed(): Error | null {
    return this.#failed;
  }

  push(bytes: Buffer): void {
    if (this.#failed || bytes.length === 0) return;
    this.#pending.push(bytes);
    this.#pendingBytes += bytes.length;
    // Parse first, emit after: a listener's own exception is its own, not taken for malformed input.
    const ready: Ready[] = [];
    let failure: Error | null = null;
    try {
      this.#drain(ready);
    } catch (err) {
      failure = err instanceof CmafError ? err : new CmafError(`malformed fragmented MP4: ${(err as Error).message}`);
    }
    try {
      for (const item of ready) {
        if ('tracks' in item) this.emit('init', item);
        else this.emit('chunk', item);
      }
    } finally {
      if (failure) this.#fail(failure);
    }
  }

  #fail(err: Error): void {
    this.#failed = err;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#moof = null;
    // An 'error' event without a listener would throw out of push(): the caller may read `failed` instead.
    if (this.listenerCount('error') > 0) this.emit('error', err);
  }

  #drain(ready: Ready[]): void {
    while (!this.#failed && this.#pendingBytes >= 8) {
      const head = this.#peek(Math.min(16, this.#pendingBytes));
      let size = head.readUInt32BE(0);
      const type = head.toString('latin1', 4, 8);
      if (!/^[\x20-\x7e]{4}$/.test(type)) throw new CmafError('malformed fragmented MP4: a box type that is not four printable characters');
      if (size === 1) {
        if (head.length < 16) return;
        const large = head.readBigUInt64BE(8);
        if (large > BigInt(MAX_BOX_BYTES)) throw new CmafError(`box '${type}' claims ${large} bytes, more than the ${MAX_BOX_BYTES} allowed`);
        size = Number(large);
        if (size < 16) throw new CmafError(`box '${type}' has a 64-bit size of ${size}, less than its header`);
      } else if (size === 0) {
        throw new CmafError(`box '${type}' claims to run to the end of the file, which a live stream has not`);
      } else if (size < 8) {
        throw new CmafError(`box '${type}' has a size of ${size}, less than its header`);
      }
      if (size > MAX_BOX_BYTES) throw new CmafError(`box '${type}' claims ${size} bytes, more than the ${MAX_BOX_BYTES} allowed`);
      if (this.#pendingBytes < size) return;
      const item = this.#box(type, this.#take(size));
      if (item) ready.push(item);
    }
  }

  #peek(n: number): Buffer {
    const first = this.#pending[0]!;
    if (first.length >= n) return first.subarray(0, n);
    // Only the few pieces the header spans: a stream pushed in tiny slices must not cost O(pending) per push.
    const pieces: Buffer[] = [];
    let have = 0;
    for (const piece of this.#pending) {
      if (have >= n) break;
      pieces.push(piece);
      have += piece.length;
    }
    return Buffer.concat(pieces, Math.min(n, have));
  }

  #take(n: number): Buffer {
    const first = this.#pending[0]!;
    let out: Buffer;
    if (first.length >= n) {
      out = first.subarray(0, n);
      if (first.length === n) this.#pending.shift();
      else this.#pending[0] = first.subarray(n);
    } else {
      out = Buffer.allocUnsafe(n);
      let filled = 0;
      while (filled < n) {
        const piece = this.#pending[0]!;
        const use = Math.min(piece.length, n - filled);
        piece.copy(out, filled, 0, use);
        filled += use;
        if (use === piece.length) this.#pending.shift();
        else this.#pending[0] = piece.subarray(use);
      }
    }
    this.#pendingBytes -= n;
    return out;
  }

  #box(type: string, box: Buffer): Ready | null {
    switch (type) {
      case 'ftyp':
        this.#ftyp = Buffer.from(box);
        return null;
      case 'moov': {
        if (this.#moof) throw new CmafError("a 'moov' between a 'moof' and its 'mdat'");
        const { tracks, trex } = parseMoov(box);
        if (tracks.length === 0) throw new CmafError("the 'moov' has no audio or video track");
        this.#trex = trex;
        const data = this.#ftyp ? Buffer.concat([this.#ftyp, box]) : Buffer.from(box);
        this.#init = { data, tracks };
        return this.#init;
      }
      case 'moof':
        if (!this.#init) throw new CmafError("a 'moof' before any 'moov'");
        if (this.#moof) throw new CmafError("two 'moof' boxes without an 'mdat' between them");
        this.#moof = Buffer.from(box);
        return null;
      case 'mdat': {
        const moof = this.#moof;
        if (!moof) throw new CmafError("an 'mdat' without its 'moof'");
        this.#moof = null;
        const timing = this.#timing(moof);
        return { data: Buffer.concat([moof, box]), ...timing };
      }
      default:
        // styp, sidx, prft, free, mfra (written at the end) …: nothing a player of parts needs.
        return null;
    }
  }

  #timing(moof: Buffer): Omit<CmafChunk, 'data'> {
    const init = this.#init!;
    const trafs = parseMoof(moof, this.#trex);
    const video = init.tracks.find((t) => t.kind === 'video');
    const audio = init.tracks.find((t) => t.kind === 'audio');
    const traf = (video && trafs.find((t) => t.trackId === video.id)) ?? (audio && trafs.find((t) => t.trackId === audio.id));
    if (!traf) throw new CmafError("a 'moof' with no fragment of the stream's audio or video track");
    const track = init.tracks.find((t) => t.id === traf.trackId)!;
    return {
      startSec: traf.baseMediaDecodeTime / track.timescale,
      durationSec: traf.duration / track.timescale,
      // A fragment of a video stream that carries no video cannot start a segment a player can decode from.
      independent: track.kind === 'video' ? traf.firstSampleSync : video === undefined,
    };
  }
}

// ---- box reading ----------------------------------------------------------------

interface Box {
  type: string;
  /** The body, after the header. */
  body: Buffer;
}

function children(buf: Buffer): Box[] {
  const out: Box[] = [];
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < 8) throw new CmafError('malformed fragmented MP4: a truncated box header');
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    let header = 8;
    if (size === 1) {
      if (buf.length - at < 16) throw new CmafError('malformed fragmented MP4: a truncated box header');
      size = Number(buf.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = buf.length - at;
    }
    if (size < header || at + size > buf.length) throw new CmafError(`malformed fragmented MP4: box '${type}' overruns its parent`);
    out.push({ type, body: buf.subarray(at + header, at + size) });
    at += size;
  }
  return out;
}

function child(boxes: Box[], type: string): Box | undefined {
  return boxes.find((b) => b.type === type);
}

function need(box: Box | undefined, what: string): Box {
  if (!box) throw new CmafError(`malformed fragmented MP4: no '${what}' box`);
  return box;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}

function parseMoov(moov: Buffer): { tracks: CmafTrack[]; trex: Map<number, TrackDefaults> } {
  const top = children(moov.subarray(8));
  const tracks: CmafTrack[] = [];
  for (const trak of top.filter((b) => b.type === 'trak')) {
    const inner = children(trak.body);
    const tkhd = need(child(inner, 'tkhd'), 'tkhd').body;
    const id = tkhd.readUInt8(0) === 1 ? tkhd.readUInt32BE(4 + 16) : tkhd.readUInt32BE(4 + 8);
    const mdia = children(need(child(inner, 'mdia'), 'mdia').body);
    const mdhd = need(child(mdia, 'mdhd'), 'mdhd').body;
    const timescale = mdhd.readUInt8(0) === 1 ? mdhd.readUInt32BE(4 + 16) : mdhd.readUInt32BE(4 + 8);
    const handler = need(child(mdia, 'hdlr'), 'hdlr').body.toString('latin1', 8, 12);
    const kind = handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : null;
    if (!kind) continue;
    if (!(timescale > 0)) throw new CmafError(`malformed fragmented MP4: track ${id} has a timescale of 0`);
    const minf = children(need(child(mdia, 'minf'), 'minf').body);
    const stbl = children(need(child(minf, 'stbl'), 'stbl').body);
    const stsd = need(child(stbl, 'stsd'), 'stsd').body;
    const entries = children(stsd.subarray(8));
    const entry = entries[0];
    if (!entry) throw new CmafError(`malformed fragmented MP4: track ${id} has no sample description`);
    tracks.push({ id, kind, timescale, codec: codecString(entry, kind) });
  }
  const trex = new Map<number, TrackDefaults>();
  const mvex = child(top, 'mvex');
  if (mvex) {
    for (const box of children(mvex.body).filter((b) => b.type === 'trex')) {
      // version/flags(4) track_ID(4) default_sample_description_index(4) default_sample_duration(4) size(4) flags(4)
      trex.set(box.body.readUInt32BE(4), { duration: box.body.readUInt32BE(12), flags: box.body.readUInt32BE(20) });
    }
  }
  return { tracks, trex };
}

function codecString(entry: Box, kind: 'video' | 'audio'): string {
  const fourcc = entry.type;
  if (kind === 'video') {
    // VisualSampleEntry: 8 bytes SampleEntry + 70 bytes of picture fields, then its boxes.
    const boxes = children(entry.body.subarray(78));
    if (fourcc === 'avc1' || fourcc === 'avc3') {
      const avcC = need(child(boxes, 'avcC'), 'avcC').body;
      return `${fourcc}.${hex2(avcC.readUInt8(1))}${hex2(avcC.readUInt8(2))}${hex2(avcC.readUInt8(3))}`;
    }
    return fourcc;
  }
  if (fourcc === 'mp4a') {
    // AudioSampleEntry: 8 bytes SampleEntry + 20, then (QuickTime sound description v1/v2) more fields.
    const version = entry.body.readUInt16BE(8);
    const skip = 28 + (version === 1 ? 16 : version === 2 ? 36 : 0);
    const esds = need(child(children(entry.body.subarray(skip)), 'esds'), 'esds').body;
    return `mp4a.${mp4aSuffix(esds.subarray(4))}`;
  }
  if (fourcc === 'Opus') return 'opus';
  if (fourcc === 'fLaC') return 'flac';
  return fourcc;
}

/** The part after 'mp4a.' of an ES descriptor: '40.2' for AAC-LC. */
function mp4aSuffix(es: Buffer): string {
  let at = 0;
  const descriptor = (): { tag: number; start: number; end: number } => {
    const tag = es.readUInt8(at++);
    let len = 0;
    for (let i = 0; i < 4; i++) {
      const b = es.readUInt8(at++);
      len = (len << 7) | (b & 0x7f);
      if (!(b & 0x80)) break;
    }
    const start = at;
    if (start + len > es.length) throw new CmafError('malformed fragmented MP4: an ES descriptor overruns its box');
    return { tag, start, end: start + len };
  };
  const esd = descriptor();
  if (esd.tag !== 3) throw new CmafError('malformed fragmented MP4: esds without an ES descriptor');
  const flags = es.readUInt8(at + 2);
  at += 3;
  if (flags & 0x80) at += 2;
  if (flags & 0x40) at += 1 + es.readUInt8(at);
  if (flags & 0x20) at += 2;
  const dcd = descriptor();
  if (dcd.tag !== 4) throw new CmafError('malformed fragmented MP4: esds without a decoder config');
  const oti = es.readUInt8(dcd.start);
  at = dcd.start + 13;
  if (oti !== 0x40 || at >= dcd.end) return hex2(oti).toUpperCase();
  const dsi = descriptor();
  if (dsi.tag !== 5 || dsi.end - dsi.start < 1) return '40';
  let aot = es.readUInt8(dsi.start) >> 3;
  if (aot === 31 && dsi.end - dsi.start >= 2) aot = 32 + (((es.readUInt8(dsi.start) & 0x07) << 3) | (es.readUInt8(dsi.start + 1) >> 5));
  return `40.${aot}`;
}

interface TrafTiming {
  trackId: number;
  baseMediaDecodeTime: number;
  /** In the track's timescale. */
  duration: number;
  firstSampleSync: boolean;
}

function parseMoof(moof: Buffer, trex: Map<number, TrackDefaults>): TrafTiming[] {
  const out: TrafTiming[] = [];
  for (const traf of children(moof.subarray(8)).filter((b) => b.type === 'traf')) {
    const boxes = children(traf.body);
    const tfhd = need(child(boxes, 'tfhd'), 'tfhd').body;
    const tfhdFlags = tfhd.readUInt32BE(0) & 0xffffff;
    const trackId = tfhd.readUInt32BE(4);
    let at = 8;
    if (tfhdFlags & 0x01) at += 8;
    if (tfhdFlags & 0x02) at += 4;
    const defaults = trex.get(trackId) ?? { duration: 0, flags: 0 };
    let defaultDuration = defaults.duration;
    let defaultFlags = defaults.flags;
    if (tfhdFlags & 0x08) {
      defaultDuration = tfhd.readUInt32BE(at);
      at += 4;
    }
    if (tfhdFlags & 0x10) at += 4;
    if (tfhdFlags & 0x20) defaultFlags = tfhd.readUInt32BE(at);
    const tfdt = need(child(boxes, 'tfdt'), 'tfdt').body;
    const baseMediaDecodeTime = tfdt.readUInt8(0) === 1 ? Number(tfdt.readBigUInt64BE(4)) : tfdt.readUInt32BE(4);
    let duration = 0;
    let firstFlags: number | null = null;
    for (const trun of boxes.filter((b) => b.type === 'trun')) {
      const body = trun.body;
      const flags = body.readUInt32BE(0) & 0xffffff;
      const count = body.readUInt32BE(4);
      let p = 8;
      if (flags & 0x001) p += 4;
      let firstSampleFlags: number | null = null;
      if (flags & 0x004) {
        firstSampleFlags = body.readUInt32BE(p);
        p += 4;
      }
      const perSample = ((flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0) + (flags & 0x400 ? 4 : 0) + (flags & 0x800 ? 4 : 0));
      if (p + count * perSample > body.length) throw new CmafError(`malformed fragmented MP4: a 'trun' of ${count} samples overruns its box`);
      for (let i = 0; i < count; i++) {
        let q = p + i * perSample;
        if (flags & 0x100) {
          duration += body.readUInt32BE(q);
          q += 4;
        } else {
          duration += defaultDuration;
        }
        if (flags & 0x200) q += 4;
        if (firstFlags === null) {
          if (firstSampleFlags !== null) firstFlags = firstSampleFlags;
          else if (flags & 0x400) firstFlags = body.readUInt32BE(q);
          else firstFlags = defaultFlags;
        }
      }
    }
    out.push({ trackId, baseMediaDecodeTime, duration, firstSampleSync: firstFlags !== null && (firstFlags & SAMPLE_IS_NON_SYNC) === 0 });
  }
  return out;
}
