// One room's broadcast on this node: the room's encoder (BroadcastEncoder: its
// mix and visuals as H.264 + AAC, once for the whole audience) and what it
// feeds: an LL-HLS rendition per output, served by the HLS routes, and the
// RTMP pushes that remux its `video` output.
//
// The encoder runs while someone holds it: 'hls' (the room is in broadcast
// mode: its rules say so) or 'rtmp' (the host sends the room to a platform).
// It follows the room's checked document as the live stream does (the mixer's
// state and the visuals' params, once per turn of the event loop). An encoder
// restart is a discontinuity in the playlists, not a new playlist: players
// keep playing across it. When nobody holds it any longer, the encoder stops at
// once and the playlists end (EXT-X-ENDLIST) and are dropped a little later,
// so that players see the end instead of an error.
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { BroadcastEncoder, DEFAULT_BROADCAST, type BroadcastChunk, type BroadcastRenditionName, type BroadcastSettings, type BroadcastStats } from '../../media/live/broadcast-encoder.ts';
import type { CmafChunk, CmafInit } from '../../media/live/cmaf.ts';
import type { MixerSourceInit, MixerSourceStateMessage } from '../../media/live/mixer-source.ts';
import type { EncoderRestartPolicy } from '../../media/live/visual-output.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import type { Logger } from '../logger.ts';
import type { Room } from '../rooms/room.ts';
import { LlHlsRendition, type LlHlsOptions } from './hls/ll-hls.ts';
import { STEM_SAMPLE_RATE, type StemCache } from './stem-cache.ts';

const MIXER_SOURCE_MODULE = fileURLToPath(new URL('../../media/live/mixer-source.ts', import.meta.url));

export type BroadcastHolder = 'hls' | 'rtmp';

export interface RoomBroadcastOptions {
  room: Room;
  stems: StemCache;
  /** The release's artwork (its visual pack); none: the broadcast is audio only. */
  artwork(releaseId: string): Promise<EngineArtwork[]>;
  ffmpeg: string;
  settings?: Partial<BroadcastSettings>;
  hls: Omit<LlHlsOptions, 'partTargetSec'>;
  restart?: Partial<EncoderRestartPolicy>;
  log: Logger;
  /** How long an ended playlist stays readable (players see EXT-X-ENDLIST). */
  endedKeepMs?: number;
}

export interface RoomBroadcastStatus {
  /** The encoder runs now. */
  live: boolean;
  holders: BroadcastHolder[];
  renditions: { name: BroadcastRenditionName; codecs: string; bandwidth: number; latest: { msn: number; part: number } | null }[];
  /** Why the last encoder stopped by itself (it kept failing), if it did. */
  failure: string | null;
  encoder: BroadcastStats | null;
}

export type RoomBroadcastEvents = {
  /** Each rendition's init segment (the first, and after every restart), and each chunk, as the encoder makes them. */
  init: [rendition: BroadcastRenditionName, init: CmafInit];
  chunk: [rendition: BroadcastRenditionName, chunk: BroadcastChunk];
  /** The encoder started or stopped. */
  live: [live: boolean];
};

/** One rendition's init and chunks, as RoomBroadcast.source hands them out. */
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

interface Running {
  encoder: BroadcastEncoder;
  releaseId: string;
}

export class RoomBroadcast extends EventEmitter<RoomBroadcastEvents> {
  readonly room: Room;
  readonly #opts: RoomBroadcastOptions;
  readonly #log: Logger;
  readonly #holders = new Set<BroadcastHolder>();
  readonly #renditions = new Map<BroadcastRenditionName, LlHlsRendition>();
  /** Each rendition's current init, for whoever starts reading in the middle (an RTMP push). */
  readonly #inits = new Map<BroadcastRenditionName, CmafInit>();
  #running: Running | null = null;
  #starting: Promise<void> | null = null;
  #statePosted = false;
  #failure: string | null = null;
  #dropTimer: NodeJS.Timeout | null = null;
  #closed = false;
  readonly #offUpdate: () => void;

  constructor(opts: RoomBroadcastOptions) {
    super();
    this.room = opts.room;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: opts.room.id, component: 'room-broadcast' });
    const onUpdate = () => this.#scheduleState();
    opts.room.on('update', onUpdate);
    this.#offUpdate = () => opts.room.off('update', onUpdate);
  }

  get live(): boolean {
    return this.#running !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The rendition's playlist and files, while the room broadcasts (and a little after it ended). */
  rendition(name: string): LlHlsRendition | undefined {
    return name === 'audio' || name === 'video' ? this.#renditions.get(name) : undefined;
  }

  /** Resolves true once the renditions exist (the encoder started), false after `timeoutMs`. */
  async whenStarted(timeoutMs: number): Promise<boolean> {
    if (this.#renditions.size > 0) return true;
    if (this.#closed) return false;
    return new Promise((resolve) => {
      const done = (started: boolean) => {
        clearTimeout(timer);
        this.off('live', onLive);
        resolve(started);
      };
      const onLive = (live: boolean) => {
        if (live) done(true);
      };
      const timer = setTimeout(() => done(this.#renditions.size > 0), timeoutMs);
      this.on('live', onLive);
    });
  }

  /** The size of the video rendition's pictures. */
  get videoSize(): { width: number; height: number } {
    return { width: this.#opts.settings?.width ?? DEFAULT_BROADCAST.width, height: this.#opts.settings?.height ?? DEFAULT_BROADCAST.height };
  }

  get renditionNames(): BroadcastRenditionName[] {
    return [...this.#renditions.keys()];
  }

  /** The current init segment of a rendition (null before the encoder made one). */
  initOf(name: BroadcastRenditionName): CmafInit | null {
    return this.#inits.get(name) ?? null;
  }

  /**
   * A rendition's fragmented MP4 as a stream (its current init, then chunks as they come), for
   * a consumer that starts in the middle: an RTMP push remuxes the `video` one.
   */
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

  /** Someone needs the encoder (the room went into broadcast mode, a push started); starts it if it is not running. */
  async hold(holder: BroadcastHolder): Promise<void> {
    if (this.#closed) throw new Error('the room has closed');
    this.#holders.add(holder);
    await this.#ensureRunning();
  }

  /** Whoever held it no longer needs it; the encoder stops with the last. */
  async release(holder: BroadcastHolder): Promise<void> {
    this.#holders.delete(holder);
    if (this.#holders.size === 0) await this.#stop('nobody holds the broadcast');
  }

  get holders(): BroadcastHolder[] {
    return [...this.#holders];
  }

  async status(): Promise<RoomBroadcastStatus> {
    const running = this.#running;
    return {
      live: running !== null,
      holders: this.holders,
      renditions: [...this.#renditions.values()].map((r) => ({ name: r.name as BroadcastRenditionName, codecs: r.codecs, bandwidth: r.bandwidth, latest: r.latest })),
      failure: this.#failure,
      encoder: running && !running.encoder.closed ? await running.encoder.stats().catch(() => null) : null,
    };
  }

  /** For fault tests: kills the running ffmpeg as if it had crashed. */
  killEncoderForTest(): void {
    this.#running?.encoder.killEncoderForTest();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#offUpdate();
    this.#holders.clear();
    await this.#stop('the room closed');
    this.#dropRenditions();
  }

  #ensureRunning(): Promise<void> {
    if (this.#running) return Promise.resolve();
    this.#starting ??= this.#start().finally(() => {
      this.#starting = null;
    });
    return this.#starting;
  }

  async #start(): Promise<void> {
    const { room, stems: cache } = this.#opts;
    const release = room.release;
    const started = performance.now();
    const stems = await cache.acquire(release.id, release.stems.map((s) => s.id));
    try {
      let artwork: EngineArtwork[] | null = null;
      try {
        artwork = await this.#opts.artwork(release.id);
      } catch (err) {
        this.#log.warn({ err }, 'the release’s visual pack could not be read: the broadcast is audio only');
      }
      const state = room.state();
      const energy = new SharedArrayBuffer(4);
      const init: MixerSourceInit = { sampleRate: STEM_SAMPLE_RATE, stems, release: { bpm: release.bpm, excerpts: release.excerpts }, room: { mix: state.mix, arrangement: state.arrangement }, energy };
      const encoder = await BroadcastEncoder.create({
        ...this.#opts.settings,
        ffmpeg: this.#opts.ffmpeg,
        source: { kind: 'module', module: MIXER_SOURCE_MODULE, init },
        artwork,
        release: { bpm: release.bpm, excerpts: release.excerpts },
        room: { mix: state.mix, arrangement: state.arrangement, visual: state.visual },
        energy,
        log: this.#log,
        ...(this.#opts.restart ? { restart: this.#opts.restart } : {}),
      });
      if (this.#closed || this.#holders.size === 0) {
        await encoder.close();
        cache.release(release.id);
        return;
      }
      this.#cancelDrop();
      this.#failure = null;
      const partTargetSec = this.#opts.settings?.partSec ?? 0.5;
      for (const name of encoder.renditions) {
        const existing = this.#renditions.get(name);
        // Still there from an earlier run (ended a moment ago): it goes on after a discontinuity.
        if (existing && !existing.closed) existing.discontinuity();
        else this.#renditions.set(name, new LlHlsRendition(name, { ...this.#opts.hls, partTargetSec }));
      }
      const running: Running = { encoder, releaseId: release.id };
      encoder.on('init', (name, cmafInit) => {
        this.#inits.set(name, cmafInit);
        this.#renditions.get(name)?.setInit(cmafInit);
        this.emit('init', name, cmafInit);
      });
      encoder.on('chunk', (name, chunk) => {
        this.#renditions.get(name)?.push(chunk);
        this.emit('chunk', name, chunk);
      });
      encoder.on('error', () => {
        // Restarting: what comes next follows a discontinuity (its init says so too).
        for (const r of this.#renditions.values()) r.discontinuity();
      });
      encoder.once('failed', (err) => {
        this.#failure = err.message;
        if (this.#running === running) void this.#stop(`the encoder kept failing: ${err.message}`);
      });
      this.#running = running;
      this.#log.info({ ms: Math.round(performance.now() - started), renditions: encoder.renditions, holders: this.holders }, 'the room’s broadcast started');
      this.emit('live', true);
    } catch (err) {
      cache.release(release.id);
      throw err;
    }
  }

  async #stop(why: string): Promise<void> {
    await this.#starting?.catch(() => {});
    const running = this.#running;
    if (!running) return;
    this.#running = null;
    await running.encoder.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the broadcast encoder'));
    this.#opts.stems.release(running.releaseId);
    for (const r of this.#renditions.values()) r.end();
    this.#inits.clear();
    this.#log.info({ why }, 'the room’s broadcast stopped');
    this.emit('live', false);
    if (!this.#closed) this.#scheduleDrop();
  }

  #scheduleDrop(): void {
    this.#cancelDrop();
    this.#dropTimer = setTimeout(() => this.#dropRenditions(), this.#opts.endedKeepMs ?? 30_000);
    this.#dropTimer.unref();
  }

  #cancelDrop(): void {
    if (this.#dropTimer) clearTimeout(this.#dropTimer);
    this.#dropTimer = null;
  }

  #dropRenditions(): void {
    this.#cancelDrop();
    if (this.#running) return;
    for (const r of this.#renditions.values()) r.close();
    this.#renditions.clear();
  }

  #scheduleState(): void {
    if (this.#statePosted || !this.#running) return;
    this.#statePosted = true;
    queueMicrotask(() => {
      this.#statePosted = false;
      const running = this.#running;
      if (!running || running.encoder.closed || this.room.closed) return;
      const state = this.room.state();
      running.encoder.sourceControl({ type: 'room-state', room: { mix: state.mix, arrangement: state.arrangement } } satisfies MixerSourceStateMessage);
      running.encoder.update({ mix: state.mix, arrangement: state.arrangement, visual: state.visual });
    });
  }
}
