// A room's broadcast renditions as a deterministic function of a log of
// operations: made (or resumed at a segment start), inits, chunks,
// discontinuities, the end. The node that encodes applies its encoder's
// operations here; with scale-out it also appends them to Redis
// (server/scaleout/hls-relay.ts), and every other node serving the room applies
// the same operations to its own BroadcastRenditions, so that all of them serve
// the same playlists with the same numbers and the same bytes.
//
// A node that starts reading in the middle ignores a rendition's operations until
// one of its 'resume' operations (one before each segment's first chunk) and
// makes the rendition from it.
import { EventEmitter } from 'node:events';
import type { BroadcastChunk, BroadcastRenditionName } from '../../media/live/broadcast-encoder.ts';
import type { CmafChunk, CmafInit } from '../../media/live/cmaf.ts';
import { LlHlsRendition, type LlHlsOptions, type LlHlsResume } from './hls/ll-hls.ts';

export type BroadcastOp =
  /** `firstNumber`: the new rendition's first msn and init number (above any of the room's earlier broadcasts). */
  | { type: 'create'; rendition: BroadcastRenditionName; partTargetSec: number; firstNumber?: number }
  | { type: 'resume'; rendition: BroadcastRenditionName; partTargetSec: number; at: LlHlsResume; cmaf: CmafInit }
  | { type: 'init'; rendition: BroadcastRenditionName; init: CmafInit }
  | { type: 'chunk'; rendition: BroadcastRenditionName; chunk: BroadcastChunk }
  | { type: 'discontinuity' }
  | { type: 'end' };

export interface BroadcastRenditionsOptions {
  hls: Omit<LlHlsOptions, 'partTargetSec' | 'start'>;
  /** How long ended renditions stay readable (players see EXT-X-ENDLIST). */
  endedKeepMs?: number;
  /** The video rendition's picture size (for the multivariant playlist). */
  videoSize?: { width: number; height: number };
}

/** What the HLS routes read: a room's renditions on this node. */
export interface HlsView {
  whenStarted(timeoutMs: number): Promise<boolean>;
  readonly videoSize: { width: number; height: number };
  readonly renditionNames: BroadcastRenditionName[];
  rendition(name: string): LlHlsRendition | undefined;
}

/** One rendition's init and chunks, as a consumer that starts in the middle (an RTMP push) reads them. */
export class RenditionSource extends EventEmitter<{ init: [CmafInit]; chunk: [CmafChunk] }> {
  readonly #init: () => CmafInit | null;
  /** Stops following the broadcast. */
  detach: () => void = () => {};

  constructor(init: () => CmafInit | null) {
    super();
    this.#init = init;
  }

  get init(): CmafInit | null {
    return this.#init();
  }
}

export class BroadcastRenditions extends EventEmitter<{
  init: [rendition: BroadcastRenditionName, init: CmafInit];
  chunk: [rendition: BroadcastRenditionName, chunk: BroadcastChunk];
  /** The first rendition was made (from nothing, or after they were dropped). */
  ready: [];
}> {
  readonly #opts: BroadcastRenditionsOptions;
  readonly #renditions = new Map<BroadcastRenditionName, LlHlsRendition>();
  /** Each rendition's current init, for whoever starts reading in the middle. */
  readonly #inits = new Map<BroadcastRenditionName, CmafInit>();
  /** Renditions that missed operations: their operations wait for the next resume point, which remakes them. */
  readonly #stale = new Set<BroadcastRenditionName>();
  #dropTimer: NodeJS.Timeout | null = null;
  #ended = false;
  #closed = false;

  constructor(opts: BroadcastRenditionsOptions) {
    super();
    this.#opts = opts;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether operations came since the last end (someone encodes the room now). */
  get flowing(): boolean {
    return this.#renditions.size > 0 && !this.#ended;
  }

  get size(): number {
    return this.#renditions.size;
  }

  rendition(name: string): LlHlsRendition | undefined {
    return name === 'audio' || name === 'video' ? this.#renditions.get(name) : undefined;
  }

  get names(): BroadcastRenditionName[] {
    return [...this.#renditions.keys()];
  }

  /** As HlsView: the renditions of a room that is not loaded on this node (another node encodes it). */
  get renditionNames(): BroadcastRenditionName[] {
    return this.names;
  }

  get videoSize(): { width: number; height: number } {
    return this.#opts.videoSize ?? { width: 640, height: 360 };
  }

  whenStarted(timeoutMs: number): Promise<boolean> {
    return this.whenReady(timeoutMs);
  }

  initOf(name: BroadcastRenditionName): CmafInit | null {
    return this.#inits.get(name) ?? null;
  }

  /** A rendition that exists and has not been closed (an encoder restarting here continues it). */
  has(name: BroadcastRenditionName): boolean {
    const r = this.#renditions.get(name);
    return r !== undefined && !r.closed;
  }

  /** Resolves true once a rendition exists, false after `timeoutMs`. */
  whenReady(timeoutMs: number): Promise<boolean> {
    if (this.#renditions.size > 0) return Promise.resolve(true);
    if (this.#closed) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.off('ready', onReady);
        resolve(this.#renditions.size > 0);
      }, timeoutMs);
      const onReady = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.once('ready', onReady);
    });
  }

  /** A rendition's fragmented MP4 as a stream (its current init, then chunks as they come). */
  source(name: BroadcastRenditionName): RenditionSource {
    const source = new RenditionSource(() => this.#inits.get(name) ?? null);
    const onInit = (n: BroadcastRenditionName, init: CmafInit) => {
      if (n === name) source.emit('init', init);
    };
    const onChunk = (n: BroadcastRenditionName, chunk: BroadcastChunk) => {
      if (n === name) source.emit('chunk', chunk);
    };
    this.on('init', onInit);
    this.on('chunk', onChunk);
    source.detach = () => {
      this.off('init', onInit);
      this.off('chunk', onChunk);
    };
    return source;
  }

  /**
   * Operations were lost on the way (a node reading the log saw a gap): each rendition stays as it is
   * until its next resume point, where it is made again from it (the numbering then agrees again).
   */
  resync(): void {
    for (const name of this.#renditions.keys()) this.#stale.add(name);
  }

  /**
   * Applies one operation. Returns what a log of them must carry for it, in order: the operation,
   * preceded by a 'resume' when a chunk opened a segment (where a node reading late begins).
   */
  apply(op: BroadcastOp): BroadcastOp[] {
    if (this.#closed) return [];
    switch (op.type) {
      case 'create': {
        this.#stale.delete(op.rendition);
        this.#renditions.get(op.rendition)?.close();
        this.#inits.delete(op.rendition);
        this.#add(op.rendition, new LlHlsRendition(op.rendition, { ...this.#opts.hls, partTargetSec: op.partTargetSec, ...(op.firstNumber !== undefined ? { firstNumber: op.firstNumber } : {}) }));
        return [op];
      }
      case 'resume': {
        // Already following this rendition: nothing to do (the chunk that comes next opens the segment).
        if (this.has(op.rendition) && !this.#stale.has(op.rendition)) return [op];
        this.#stale.delete(op.rendition);
        this.#renditions.get(op.rendition)?.close();
        this.#add(op.rendition, new LlHlsRendition(op.rendition, { ...this.#opts.hls, partTargetSec: op.partTargetSec, start: op.at }));
        this.#inits.set(op.rendition, op.cmaf);
        return [op];
      }
      case 'init': {
        const r = this.#renditions.get(op.rendition);
        if (!r || this.#stale.has(op.rendition)) return [op];
        this.#reopen();
        this.#inits.set(op.rendition, op.init);
        r.setInit(op.init);
        this.emit('init', op.rendition, op.init);
        return [op];
      }
      case 'chunk': {
        const r = this.#renditions.get(op.rendition);
        if (!r || this.#stale.has(op.rendition)) return [op];
        this.#reopen();
        const before = r.latest?.msn;
        r.push(op.chunk);
        this.emit('chunk', op.rendition, op.chunk);
        const after = r.latest?.msn;
        const cmaf = this.#inits.get(op.rendition);
        if (after !== undefined && after !== before && cmaf) {
          const at = r.resumeOf(after);
          if (at) return [{ type: 'resume', rendition: op.rendition, partTargetSec: at.partTargetSec, at, cmaf }, op];
        }
        return [op];
      }
      case 'discontinuity': {
        // An encoder is (re)starting: the renditions are not to be dropped meanwhile.
        if (this.#renditions.size > 0) this.#reopen();
        for (const r of this.#renditions.values()) r.discontinuity();
        return [op];
      }
      case 'end': {
        if (this.#ended) return [op];
        this.#ended = true;
        for (const r of this.#renditions.values()) r.end();
        this.#inits.clear();
        this.#scheduleDrop();
        return [op];
      }
    }
  }

  /** Ends and releases every rendition. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelDrop();
    for (const r of this.#renditions.values()) r.close();
    this.#renditions.clear();
    this.#inits.clear();
  }

  #add(name: BroadcastRenditionName, rendition: LlHlsRendition): void {
    const first = this.#renditions.size === 0;
    this.#renditions.set(name, rendition);
    this.#reopen();
    if (first) this.emit('ready');
  }

  #reopen(): void {
    this.#ended = false;
    this.#cancelDrop();
  }

  #scheduleDrop(): void {
    this.#cancelDrop();
    this.#dropTimer = setTimeout(() => {
      this.#dropTimer = null;
      if (!this.#ended) return;
      for (const r of this.#renditions.values()) r.close();
      this.#renditions.clear();
    }, this.#opts.endedKeepMs ?? 30_000);
    this.#dropTimer.unref();
  }

  #cancelDrop(): void {
    if (this.#dropTimer) clearTimeout(this.#dropTimer);
    this.#dropTimer = null;
  }
}
