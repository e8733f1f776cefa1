// One Low-Latency HLS rendition of a room's broadcast (RFC 8216bis, "HTTP Live
// Streaming 2nd Edition"): the CMAF chunks of one encoder output become parts,
// parts make segments (a segment is cut at an independent part once it has
// reached the target duration), a sliding window keeps memory bounded, and the
// media playlist is rendered with blocking reload (§6.2.5.2). Pure bookkeeping:
// no I/O; the HTTP routes map the typed errors to statuses and set the headers
// that hlsCacheControl() names.
import type { CmafChunk, CmafInit } from '../../../media/live/cmaf.ts';

export interface LlHlsOptions {
  /** Advertised PART-TARGET, seconds (raised, never lowered, if the encoder's parts come out longer). */
  partTargetSec: number;
  /** A segment is cut at the first independent part once it is this long. */
  segmentTargetSec: number;
  /** Whole segments listed in the playlist; two more stay downloadable after they leave it. */
  windowSegments: number;
  /** Blocking reload limit; RFC 8216bis says a server that cannot answer within three target durations SHOULD answer 503. */
  blockTimeoutMs: number;
  /** Blocked reloads held at once; beyond, a request is answered at once with the current playlist. */
  maxWaiters?: number;
  /** ms since the epoch, for EXT-X-PROGRAM-DATE-TIME (tests). */
  now?: () => number;
  /**
   * Continue another encoder's numbering (a takeover): the first segment opens with a discontinuity.
   * With a resume point (resumeOf() on the node that encodes), the rendition continues that one's
   * exactly from the segment it names: same numbers, same discontinuity sequence, no discontinuity of its own.
   */
  start?: LlHlsSnapshot | LlHlsResume;
  /**
   * A fresh rendition's first media sequence number and init number (without `start`). Names are
   * immutable to caches, so a room's next broadcast must not reuse them: the caller passes a number
   * above any it used before (the wall clock's seconds do: segments are longer than a second).
   */
  firstNumber?: number;
}

/** What a node that takes over a room's encoding needs to continue the numbering. */
export interface LlHlsSnapshot {
  /** The media sequence number the next segment may take (the open one's + 1). */
  nextMsn: number;
  /** Discontinuity sequence of the last segment. */
  discontinuitySequence: number;
  /** The next init-<n>.mp4 number (names are immutable: a CDN may hold the old ones). */
  nextInitId: number;
}

/**
 * Where a segment began, as the rendition stood just before it opened: a rendition made from it and
 * fed the same chunks from that segment on renders the same playlists (another node mirroring this one).
 */
export interface LlHlsResume extends LlHlsSnapshot {
  continues: true;
  /** Whether the segment opens with EXT-X-DISCONTINUITY (discontinuitySequence is the one before it). */
  discontinuity: boolean;
  /** The init the segment uses. */
  init: { id: number; data: Buffer; codecs: string; contentType: string };
  /** The advertised PART-TARGET and TARGETDURATION then (both only grow). */
  partTargetSec: number;
  targetDurationSec: number;
  /** What EXT-X-PROGRAM-DATE-TIME counts from. */
  anchor: { wallMs: number; mediaSec: number } | null;
}

export interface HlsFile {
  body: Buffer;
  contentType: string;
  immutable: boolean;
}

export interface PlaylistQuery {
  /** _HLS_msn */
  msn?: number;
  /** _HLS_part */
  part?: number;
  /** _HLS_skip: delta updates are not offered (no CAN-SKIP-UNTIL), so it is ignored. */
  skip?: boolean;
  /** The access query every URI in the playlist carries, e.g. 'k=<listen key>'. */
  access?: string;
}

export class HlsError extends Error {
  override name = 'HlsError';
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}
export class HlsBadRequest extends HlsError {
  override name = 'HlsBadRequest';
  constructor(message: string) {
    super(400, message);
  }
}
export class HlsNotFound extends HlsError {
  override name = 'HlsNotFound';
  constructor(message: string) {
    super(404, message);
  }
}
/** A blocking reload that timed out, a rendition with nothing yet, or one that closed. */
export class HlsUnavailable extends HlsError {
  override name = 'HlsUnavailable';
  constructor(message: string) {
    super(503, message);
  }
}

export const PLAYLIST_CONTENT_TYPE = 'application/vnd.apple.mpegurl';
export const DEFAULT_MAX_WAITERS = 10_000;
/** Segments kept downloadable after they leave the playlist (a player may have just read it). */
const RETAINED_SEGMENTS = 2;
/** A stream that never brings a keyframe still gets segments (and bounded memory). */
const FORCED_CUT_TARGETS = 3;
const MAX_PARTS_PER_SEGMENT = 64;
/** A chunk whose start is this far from where the last one ended is a new timeline. */
const TIMELINE_JUMP_SEC = 1;
const PLAYLIST_CACHE_ENTRIES = 256;

/** The Cache-Control value for what the routes answer. */
export function hlsCacheControl(kind: 'media' | 'playlist' | 'blocking' | 'not-found' | 'error'): string {
  switch (kind) {
    case 'blocking':
      return 'public, max-age=60'; // a reload that names its msn/part: any later answer to it lists that part too
    case 'media':
      return 'public, max-age=31536000, immutable'; // names are never reused (msn and init numbers only grow)
    case 'playlist':
      return 'public, max-age=1'; // a CDN may collapse the crowd's reloads; one second old is still live
    case 'not-found':
      return 'no-cache'; // a part asked for a moment early exists a moment later
    case 'error':
      return 'no-store';
  }
}

const UINT = /^(0|[1-9][0-9]{0,14})$/;

/** _HLS_msn / _HLS_part / _HLS_skip from a request's query, strictly. */
export function parseBlockingQuery(params: URLSearchParams): Omit<PlaylistQuery, 'access'> {
  const out: Omit<PlaylistQuery, 'access'> = {};
  for (const [key, field] of [['_HLS_msn', 'msn'], ['_HLS_part', 'part']] as const) {
    const all = params.getAll(key);
    if (all.length === 0) continue;
    const value = all[0]!;
    if (all.length > 1) throw new HlsBadRequest(`${key} given more than once`);
    if (!UINT.test(value)) throw new HlsBadRequest(`${key} must be a whole number ≥ 0, not '${value.slice(0, 20)}'`);
    out[field] = Number(value);
  }
  const skip = params.get('_HLS_skip');
  if (skip !== null) {
    if (skip !== 'YES' && skip !== 'v2') throw new HlsBadRequest(`_HLS_skip must be YES or v2`);
    out.skip = true;
  }
  if (out.part !== undefined && out.msn === undefined) throw new HlsBadRequest('_HLS_part without _HLS_msn');
  return out;
}

const ACCESS = /^[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*$/;

function accessSuffix(access: string | undefined): string {
  const query = (access ?? '').replace(/^\?/, '');
  if (query.length > 2048 || !ACCESS.test(query)) throw new HlsBadRequest('the access query has characters a playlist URI cannot carry');
  return query ? `?${query}` : '';
}

interface Part {
  data: Buffer;
  durationSec: number;
  independent: boolean;
}

interface InitEntry {
  id: number;
  data: Buffer;
  codecs: string;
  contentType: string;
}

interface Segment {
  msn: number;
  init: InitEntry;
  /** The discontinuity sequence number of this segment (counting its own EXT-X-DISCONTINUITY). */
  cc: number;
  discontinuity: boolean;
  startSec: number;
  programDateMs: number;
  parts: Part[];
  durationSec: number;
  bytes: number;
  /** The whole segment, made once when it closes; the parts then become views into it. */
  data: Buffer | null;
  /** The rendition just before this segment opened (resumeOf). */
  resume: LlHlsResume;
}

interface FileWaiter {
  msn: number;
  part: number;
  name: string;
  resolve(file: HlsFile | null): void;
  timer: ReturnType<typeof setTimeout>;
}

interface Waiter {
  msn: number;
  part: number | undefined;
  access: string;
  resolve(text: string): void;
  reject(err: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

export class LlHlsRendition {
  readonly name: string;
  #opts: Required<Omit<LlHlsOptions, 'start' | 'now' | 'firstNumber'>> & { now: () => number };
  #segments: Segment[] = []; // retained closed segments, then the open one (if any)
  #init: InitEntry | null = null;
  #inits = new Map<number, InitEntry>();
  #initsSeen = 0;
  #nextInitId: number;
  #nextMsn: number;
  #cc: number;
  #pendingDiscontinuity: boolean;
  #anchor: { wallMs: number; mediaSec: number } | null = null;
  #partTargetSec: number;
  #targetDurationSec: number;
  #waiters = new Set<Waiter>();
  #fileWaiters = new Set<FileWaiter>();
  #version = 0;
  #rendered = new Map<string, string>();
  #closed = false;
  /** The broadcast stopped: the playlist says EXT-X-ENDLIST (until more comes after a restart). */
  #ended = false;
  #droppedChunks = 0;
  /** Made from a resume point: the first chunk opens its segment even if it is not independent (a forced cut). */
  #resuming = false;

  constructor(name: string, opts: LlHlsOptions) {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(name)) throw new TypeError(`rendition name '${name}' is not a short lower-case word`);
    if (!(opts.partTargetSec > 0) || !(opts.segmentTargetSec >= opts.partTargetSec)) throw new TypeError('need 0 < partTargetSec ≤ segmentTargetSec');
    if (!Number.isInteger(opts.windowSegments) || opts.windowSegments < 3) throw new TypeError('windowSegments must be an integer ≥ 3');
    if (!(opts.blockTimeoutMs > 0)) throw new TypeError('blockTimeoutMs must be > 0');
    this.name = name;
    this.#opts = {
      partTargetSec: opts.partTargetSec,
      segmentTargetSec: opts.segmentTargetSec,
      windowSegments: opts.windowSegments,
      blockTimeoutMs: opts.blockTimeoutMs,
      maxWaiters: opts.maxWaiters ?? DEFAULT_MAX_WAITERS,
      now: opts.now ?? Date.now,
    };
    const start = opts.start;
    const first = opts.firstNumber !== undefined && Number.isSafeInteger(opts.firstNumber) && opts.firstNumber >= 0 ? opts.firstNumber : 0;
    this.#nextMsn = start?.nextMsn ?? first;
    this.#cc = start?.discontinuitySequence ?? 0;
    this.#nextInitId = start?.nextInitId ?? first;
    this.#pendingDiscontinuity = start !== undefined;
    this.#partTargetSec = opts.partTargetSec;
    this.#targetDurationSec = Math.max(1, Math.round(opts.segmentTargetSec));
    if (start && 'continues' in start && start.continues) {
      // Not a takeover: the same stream, read from one of its segment starts.
      this.#pendingDiscontinuity = start.discontinuity;
      const init: InitEntry = { ...start.init, data: Buffer.from(start.init.data) };
      this.#init = init;
      this.#inits.set(init.id, init);
      this.#initsSeen = 1;
      this.#partTargetSec = Math.max(opts.partTargetSec, start.partTargetSec);
      this.#targetDurationSec = Math.max(this.#targetDurationSec, start.targetDurationSec);
      this.#anchor = start.anchor ? { ...start.anchor } : null;
      this.#resuming = true;
    }
  }

  // ---- input -------------------------------------------------------------------

  /** A new init after the first one means the encoder restarted: the next segment opens with a discontinuity. */
  setInit(init: CmafInit): void {
    if (this.#closed) return;
    this.#reopen();
    const codecs = [...init.tracks].sort((a, b) => (a.kind === b.kind ? a.id - b.id : a.kind === 'video' ? -1 : 1)).map((t) => t.codec).join(',');
    const contentType = init.tracks.some((t) => t.kind === 'video') ? 'video/mp4' : 'audio/mp4';
    if (this.#initsSeen++ > 0) this.discontinuity();
    if (this.#init && this.#init.data.equals(init.data)) return;
    const entry: InitEntry = { id: this.#nextInitId++, data: Buffer.from(init.data), codecs, contentType };
    this.#init = entry;
    this.#inits.set(entry.id, entry);
    this.#forgetInits();
  }

  /** The encoder restarted (or another node took over): the next part opens a new segment with EXT-X-DISCONTINUITY. */
  discontinuity(): void {
    // Before the first segment there is nothing to be discontinuous with (a start snapshot has already asked for one).
    if (this.#closed || this.#segments.length === 0) return;
    this.#pendingDiscontinuity = true;
    this.#rendered.clear(); // the preload hint now names the next segment's first part
  }

  push(chunk: CmafChunk): void {
    if (this.#closed) return;
    this.#reopen();
    const init = this.#init;
    if (!init) {
      this.#droppedChunks++;
      return;
    }
    const durationSec = Number.isFinite(chunk.durationSec) && chunk.durationSec > 0 ? chunk.durationSec : 0;
    const startSec = Number.isFinite(chunk.startSec) ? chunk.startSec : 0;
    const open = this.#open();
    if (open && !this.#pendingDiscontinuity) {
      const expected = open.startSec + open.durationSec;
      if (Math.abs(startSec - expected) > TIMELINE_JUMP_SEC) this.#pendingDiscontinuity = true;
    }
    const part: Part = { data: chunk.data, durationSec, independent: chunk.independent };
    if (!open || this.#pendingDiscontinuity || open.init !== init) {
      // A segment a player joins must start where it can decode: wait for the next independent chunk.
      if (!chunk.independent && !this.#resuming) {
        this.#droppedChunks++;
        return;
      }
      this.#openSegment(part, startSec, true, chunk.wallClockMs);
    } else if (
      (chunk.independent && open.durationSec >= this.#opts.segmentTargetSec - 0.001) ||
      open.durationSec >= this.#opts.segmentTargetSec * FORCED_CUT_TARGETS ||
      open.parts.length >= MAX_PARTS_PER_SEGMENT
    ) {
      this.#openSegment(part, startSec, false);
    } else {
      open.parts.push(part);
      open.durationSec += durationSec;
      open.bytes += part.data.length;
    }
    if (durationSec > this.#partTargetSec) this.#partTargetSec = Math.ceil(durationSec * 1000) / 1000;
    this.#raiseTarget(this.#open()!.durationSec);
    this.#changed();
  }

  #openSegment(part: Part, startSec: number, fresh: boolean, wallClockMs?: number): void {
    const previous = this.#open();
    if (previous) this.#closeSegment(previous);
    const resume: LlHlsResume = {
      continues: true,
      nextMsn: this.#nextMsn,
      discontinuitySequence: this.#cc,
      nextInitId: this.#nextInitId,
      discontinuity: false,
      init: this.#init!,
      partTargetSec: this.#partTargetSec,
      targetDurationSec: this.#targetDurationSec,
      anchor: this.#anchor ? { ...this.#anchor } : null,
    };
    this.#resuming = false;
    const discontinuity = fresh && this.#pendingDiscontinuity;
    resume.discontinuity = discontinuity;
    if (discontinuity) this.#cc++;
    if (fresh && (discontinuity || !this.#anchor)) {
      // Where the producer knows when the chunk was live, that; else: the chunk arrives when its last
      // sample is encoded, so its first sample was about its duration ago.
      const wallMs = wallClockMs !== undefined && Number.isFinite(wallClockMs) ? wallClockMs : this.#opts.now() - part.durationSec * 1000;
      this.#anchor = { wallMs, mediaSec: startSec };
    }
    this.#pendingDiscontinuity = false;
    const anchor = this.#anchor!;
    this.#segments.push({
      msn: this.#nextMsn++,
      init: this.#init!,
      cc: this.#cc,
      discontinuity,
      startSec,
      programDateMs: Math.round(anchor.wallMs + (startSec - anchor.mediaSec) * 1000),
      parts: [part],
      durationSec: part.durationSec,
      bytes: part.data.length,
      data: null,
      resume,
    });
    const keep = this.#opts.windowSegments + RETAINED_SEGMENTS + 1;
    if (this.#segments.length > keep) {
      this.#segments.splice(0, this.#segments.length - keep);
      this.#forgetInits();
    }
  }

  #closeSegment(segment: Segment): void {
    const data = Buffer.concat(segment.parts.map((p) => p.data), segment.bytes);
    let at = 0;
    for (const part of segment.parts) {
      part.data = data.subarray(at, at + part.data.length);
      at += part.data.length;
    }
    segment.data = data;
  }

  #raiseTarget(durationSec: number): void {
    // TARGETDURATION must not change, and every EXTINF rounded must be ≤ it: it only ever grows.
    const rounded = Math.round(durationSec);
    if (rounded > this.#targetDurationSec) this.#targetDurationSec = rounded;
  }

  #forgetInits(): void {
    const used = new Set(this.#segments.map((s) => s.init.id));
    if (this.#init) used.add(this.#init.id);
    for (const id of this.#inits.keys()) if (!used.has(id)) this.#inits.delete(id);
  }

  #open(): Segment | undefined {
    const last = this.#segments.at(-1);
    return last && last.data === null ? last : undefined;
  }

  #changed(): void {
    this.#version++;
    this.#rendered.clear();
    for (const waiter of [...this.#fileWaiters]) {
      const file = this.file(waiter.name);
      if (!file && this.#couldBeNext(waiter.msn, waiter.part)) continue;
      this.#fileWaiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.resolve(file);
    }
    for (const waiter of [...this.#waiters]) {
      if (!this.#satisfied(waiter.msn, waiter.part)) continue;
      this.#waiters.delete(waiter);
      clearTimeout(waiter.timer);
      waiter.resolve(this.#render(waiter.access));
    }
  }

  // ---- what players read -------------------------------------------------------

  /** The open segment's msn and its last part's index, or null before the first part. */
  get latest(): { msn: number; part: number } | null {
    const last = this.#segments.at(-1);
    if (!last) return null;
    return { msn: last.msn, part: last.parts.length - 1 };
  }

  /** CODECS for the multivariant playlist ('' before the first init). */
  get codecs(): string {
    return this.#init?.codecs ?? '';
  }

  /** Peak bits/s of the whole segments in the window (before the first one closes: the open one so far). */
  get bandwidth(): number {
    let peak = 0;
    for (const s of this.#listed()) {
      if (s.data === null || s.durationSec <= 0) continue;
      peak = Math.max(peak, (s.bytes * 8) / s.durationSec);
    }
    if (peak === 0) {
      const open = this.#open();
      if (open && open.durationSec > 0) peak = (open.bytes * 8) / open.durationSec;
    }
    return Math.round(peak);
  }

  /** Chunks dropped: before the first init, or waiting for an independent one to start a segment. */
  get droppedChunks(): number {
    return this.#droppedChunks;
  }

  /** Blocked playlist reloads and part requests. */
  get waiting(): number {
    return this.#waiters.size + this.#fileWaiters.size;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get ended(): boolean {
    return this.#ended;
  }

  /**
   * The broadcast stopped: the open segment closes, the playlist ends with EXT-X-ENDLIST (players
   * stop there instead of failing), held reloads are answered with it and held part requests with
   * 404. The files stay readable until close(). A push after it (a restart) goes on after a discontinuity.
   */
  end(): void {
    if (this.#closed || this.#ended) return;
    this.#ended = true;
    const open = this.#open();
    if (open) this.#closeSegment(open);
    this.#rendered.clear();
    this.#version++;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      if (this.#segments.length > 0) waiter.resolve(this.#render(waiter.access));
      else waiter.reject(new HlsUnavailable(`the ${this.name} rendition has ended`));
    }
    this.#waiters.clear();
    for (const waiter of this.#fileWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(null);
    }
    this.#fileWaiters.clear();
  }

  #reopen(): void {
    if (!this.#ended) return;
    this.#ended = false;
    this.#rendered.clear();
    if (this.#segments.length > 0) this.#pendingDiscontinuity = true;
  }

  /** Where segment `msn` began (null once it left the rendition): what another node starts a mirror from. */
  resumeOf(msn: number): LlHlsResume | null {
    const segment = this.#segment(msn);
    if (!segment) return null;
    const { init } = segment.resume;
    return { ...segment.resume, init: { id: init.id, data: init.data, codecs: init.codecs, contentType: init.contentType } };
  }

  snapshot(): LlHlsSnapshot {
    return { nextMsn: this.#nextMsn, discontinuitySequence: this.#cc, nextInitId: this.#nextInitId };
  }

  /**
   * The media playlist. With `msn` (and `part`), a blocking reload (RFC 8216bis §6.2.5.2): answered when
   * the playlist holds that part (or that whole segment), HlsUnavailable after blockTimeoutMs,
   * HlsBadRequest at once for one more than two segments (or the Advance Part Limit) ahead.
   */
  playlist(query: PlaylistQuery = {}): Promise<string> {
    try {
      return this.#playlist(query);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  #playlist(query: PlaylistQuery): Promise<string> {
    const { msn, part } = query;
    for (const [key, value] of [['_HLS_msn', msn], ['_HLS_part', part]] as const) {
      if (value !== undefined && !(Number.isSafeInteger(value) && value >= 0)) throw new HlsBadRequest(`${key} must be a whole number ≥ 0`);
    }
    if (part !== undefined && msn === undefined) throw new HlsBadRequest('_HLS_part without _HLS_msn');
    const access = accessSuffix(query.access);
    if (this.#closed) throw new HlsUnavailable(`the ${this.name} rendition has ended`);
    // Ended: nothing more will come; every reload gets the final playlist at once.
    if (this.#ended && this.#segments.length > 0) return Promise.resolve(this.#render(access));
    if (msn !== undefined) {
      const open = this.#open();
      const lastWhole = open ? open.msn - 1 : this.#nextMsn - 1;
      if (msn > lastWhole + 2) throw new HlsBadRequest(`_HLS_msn ${msn} is more than two segments beyond the last (${lastWhole})`);
      const advancePartLimit = this.#partTargetSec < 1 ? Math.ceil(3 / this.#partTargetSec) : 3;
      if (part !== undefined) {
        const lastPart = open && open.msn === msn ? open.parts.length - 1 : -1;
        if ((!open || msn >= open.msn) && part > lastPart + advancePartLimit) {
          throw new HlsBadRequest(`_HLS_part ${part} is more than ${advancePartLimit} parts beyond the last`);
        }
      }
      if (this.#satisfied(msn, part)) return Promise.resolve(this.#render(access));
    } else if (this.#segments.length > 0) {
      return Promise.resolve(this.#render(access));
    }
    if (this.waiting >= this.#opts.maxWaiters) {
      if (this.#segments.length > 0) return Promise.resolve(this.#render(access));
      throw new HlsUnavailable(`the ${this.name} rendition has not started yet`);
    }
    // A plain request before the first part waits for it like a blocking one (for segment 0's first part).
    const wantMsn = msn ?? -1;
    return new Promise<string>((resolve, reject) => {
      const waiter: Waiter = {
        msn: wantMsn,
        part: msn === undefined ? undefined : part,
        access,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new HlsUnavailable(msn === undefined ? `the ${this.name} rendition has not started yet` : `segment ${msn}${part === undefined ? '' : ` part ${part}`} did not arrive within ${this.#opts.blockTimeoutMs} ms`));
        }, this.#opts.blockTimeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  #satisfied(msn: number, part: number | undefined): boolean {
    const last = this.#segments.at(-1);
    if (!last) return false;
    const first = this.#segments[0]!;
    if (msn < first.msn) return true; // gone already: the whole current playlist is the answer (§6.2.5.2)
    if (last.msn > msn) return true; // segment msn is whole (a part index past its last means the next segment's part 0)
    if (last.msn < msn) return false;
    if (part === undefined) return last.data !== null;
    return part < last.parts.length;
  }

  /** Segments listed in the playlist: the last windowSegments whole ones and the open one. */
  #listed(): Segment[] {
    const open = this.#open();
    const whole = open ? this.#segments.length - 1 : this.#segments.length;
    return this.#segments.slice(Math.max(0, whole - this.#opts.windowSegments));
  }

  #render(access: string): string {
    const cached = this.#rendered.get(access);
    if (cached !== undefined) return cached;
    const listed = this.#listed();
    const partTarget = this.#partTargetSec;
    const target = this.#targetDurationSec;
    const lines = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      `#EXT-X-TARGETDURATION:${target}`,
      `#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=${fixed(3 * partTarget)},HOLD-BACK=${fixed(3 * target)}`,
      `#EXT-X-PART-INF:PART-TARGET=${fixed(partTarget)}`,
    ];
    const first = listed[0];
    if (first) {
      lines.push(`#EXT-X-MEDIA-SEQUENCE:${first.msn}`);
      lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${first.discontinuity ? first.cc - 1 : first.cc}`);
    } else {
      lines.push(`#EXT-X-MEDIA-SEQUENCE:${this.#nextMsn}`);
    }
    // EXT-X-PART tags only near the live edge (§6.2.2: removed beyond three target durations from the end).
    const end = listed.reduce((sum, s) => sum + s.durationSec, 0);
    let before = 0;
    let map: InitEntry | null = null;
    for (const s of listed) {
      if (s.discontinuity) lines.push('#EXT-X-DISCONTINUITY');
      // Again after every discontinuity, even with the same init: the player resets its demuxer there.
      if (s.init !== map || s.discontinuity) {
        map = s.init;
        lines.push(`#EXT-X-MAP:URI="init-${map.id}.mp4${access}"`);
      }
      lines.push(`#EXT-X-PROGRAM-DATE-TIME:${new Date(s.programDateMs).toISOString()}`);
      before += s.durationSec;
      if (s.data === null || end - before < 3 * target) {
        s.parts.forEach((p, i) => {
          lines.push(`#EXT-X-PART:DURATION=${fixed(p.durationSec)},URI="part-${s.msn}.${i}.m4s${access}"${p.independent ? ',INDEPENDENT=YES' : ''}`);
        });
      }
      if (s.data !== null) {
        lines.push(`#EXTINF:${fixed(s.durationSec)},`);
        lines.push(`seg-${s.msn}.m4s${access}`);
      }
    }
    const hint = this.#ended ? null : this.#nextPartName();
    if (hint) lines.push(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${hint}${access}"`);
    if (this.#ended) lines.push('#EXT-X-ENDLIST');
    const text = `${lines.join('\n')}\n`;
    if (this.#rendered.size >= PLAYLIST_CACHE_ENTRIES) this.#rendered.clear();
    this.#rendered.set(access, text);
    return text;
  }

  /** The name the next part will most likely have (a cut is only predictable for always-independent streams, or from the keyframe cadence). */
  #nextPartName(): string | null {
    const open = this.#open();
    if (!open) return null;
    if (this.#pendingDiscontinuity) return `part-${open.msn + 1}.0.m4s`;
    if (open.durationSec < this.#opts.segmentTargetSec - 0.001) return `part-${open.msn}.${open.parts.length}.m4s`;
    let sinceKey = 0;
    for (let i = open.parts.length - 1; i >= 0 && !open.parts[i]!.independent; i--) sinceKey++;
    const keyEvery = this.#keyframeSpacing(open);
    const nextIndependent = open.init.contentType === 'audio/mp4' || keyEvery === null || sinceKey + 1 >= keyEvery;
    return nextIndependent ? `part-${open.msn + 1}.0.m4s` : `part-${open.msn}.${open.parts.length}.m4s`;
  }

  /** Parts from one independent part to the next, as last seen. */
  #keyframeSpacing(open: Segment): number | null {
    const keys: number[] = [];
    open.parts.forEach((p, i) => p.independent && keys.push(i));
    if (keys.length >= 2) return keys.at(-1)! - keys.at(-2)!;
    return null;
  }

  /** init-<n>.mp4, seg-<msn>.m4s (whole segments only), part-<msn>.<i>.m4s; null for anything else (no work done). */
  file(name: string): HlsFile | null {
    if (this.#closed || name.length > 40) return null;
    let m = /^init-(0|[1-9][0-9]{0,9})\.mp4$/.exec(name);
    if (m) {
      const init = this.#inits.get(Number(m[1]));
      return init ? { body: init.data, contentType: init.contentType, immutable: true } : null;
    }
    m = /^seg-(0|[1-9][0-9]{0,14})\.m4s$/.exec(name);
    if (m) {
      const segment = this.#segment(Number(m[1]));
      return segment?.data ? { body: segment.data, contentType: segment.init.contentType, immutable: true } : null;
    }
    m = /^part-(0|[1-9][0-9]{0,14})\.(0|[1-9][0-9]{0,3})\.m4s$/.exec(name);
    if (m) {
      const segment = this.#segment(Number(m[1]));
      const part = segment?.parts[Number(m[2])];
      return part && segment ? { body: part.data, contentType: segment.init.contentType, immutable: true } : null;
    }
    return null;
  }

  /**
   * Like file(), but a request for the part that comes next (what EXT-X-PRELOAD-HINT names, which players
   * such as Safari's fetch ahead) is held until it exists, for at most blockTimeoutMs (RFC 8216bis 6.2.6).
   * Anything else answers at once; null when it cannot or did not come (404).
   */
  awaitFile(name: string): Promise<HlsFile | null> {
    const now = this.file(name);
    if (now || this.#closed || this.#ended) return Promise.resolve(now);
    const m = /^part-(0|[1-9][0-9]{0,14})\.(0|[1-9][0-9]{0,3})\.m4s$/.exec(name);
    if (!m) return Promise.resolve(null);
    const msn = Number(m[1]);
    const part = Number(m[2]);
    if (!this.#couldBeNext(msn, part) || this.waiting >= this.#opts.maxWaiters) return Promise.resolve(null);
    return new Promise((resolve) => {
      const waiter: FileWaiter = {
        msn,
        part,
        name,
        resolve,
        timer: setTimeout(() => {
          this.#fileWaiters.delete(waiter);
          resolve(null);
        }, this.#opts.blockTimeoutMs),
      };
      this.#fileWaiters.add(waiter);
    });
  }

  /** Whether part `part` of segment `msn` may be the next part pushed. */
  #couldBeNext(msn: number, part: number): boolean {
    const open = this.#open();
    if (!open) return msn === this.#nextMsn && part === 0;
    return (msn === open.msn && part === open.parts.length) || (msn === open.msn + 1 && part === 0);
  }

  #segment(msn: number): Segment | undefined {
    const first = this.#segments[0];
    if (!first) return undefined;
    const s = this.#segments[msn - first.msn];
    return s && s.msn === msn ? s : undefined;
  }

  /** Ends the rendition: blocked reloads get HlsUnavailable (503), files are released. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters) {
      clearTimeout(waiter.timer);
      waiter.reject(new HlsUnavailable(`the ${this.name} rendition has ended`));
    }
    this.#waiters.clear();
    for (const waiter of this.#fileWaiters) {
      clearTimeout(waiter.timer);
      waiter.resolve(null);
    }
    this.#fileWaiters.clear();
    this.#segments = [];
    this.#inits.clear();
    this.#rendered.clear();
  }
}

function fixed(sec: number): string {
  return sec.toFixed(3);
}

export interface VariantEntry {
  name: string;
  codecs: string;
  bandwidth: number;
  /** e.g. '640x360' */
  resolution?: string;
}

/** The multivariant playlist: one EXT-X-STREAM-INF per rendition, URIs relative with the access query. */
export function multivariantPlaylist(renditions: VariantEntry[], query: string): string {
  const access = accessSuffix(query);
  // No EXT-X-INDEPENDENT-SEGMENTS: a stream that stops bringing keyframes gets forced cuts.
  const lines = ['#EXTM3U', '#EXT-X-VERSION:9'];
  for (const r of renditions) {
    if (!/^[a-z0-9][a-z0-9-]{0,31}$/.test(r.name)) throw new TypeError(`rendition name '${r.name}' is not a short lower-case word`);
    if (!/^[A-Za-z0-9.,]*$/.test(r.codecs)) throw new TypeError(`codecs '${r.codecs}' has characters CODECS cannot carry`);
    if (r.resolution !== undefined && !/^[1-9][0-9]{0,4}x[1-9][0-9]{0,4}$/.test(r.resolution)) throw new TypeError(`resolution '${r.resolution}' is not WIDTHxHEIGHT`);
    const attrs = [`BANDWIDTH=${Math.max(1, Math.round(r.bandwidth))}`];
    if (r.codecs) attrs.push(`CODECS="${r.codecs}"`);
    if (r.resolution) attrs.push(`RESOLUTION=${r.resolution}`);
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`);
    // Each rendition's playlist sits in a folder of its own, beside its media: <name>/index.m3u8.
    lines.push(`${r.name}/index.m3u8${access}`);
  }
  return `${lines.join('\n')}\n`;
}
