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
import { TextureFeed, type GeneratedTextureLoader } from '../work/generated-textures.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import type { Logger } from '../logger.ts';
import type { Room } from '../rooms/room.ts';
import type { LlHlsOptions, LlHlsRendition } from './hls/ll-hls.ts';
import { BroadcastRenditions, RenditionSource, type BroadcastOp } from './broadcast-renditions.ts';
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
  /** The renditions to feed and serve (scale-out: shared with what follows the node that encodes); by default its own. */
  renditions?: BroadcastRenditions;
  /** Scale-out: one node encodes the room for all (see BroadcastRelay). */
  relay?: BroadcastRelay;
  /** Where the textures the visual model generated for the room's prompts are read (none: drawn without). */
  textures?: GeneratedTextureLoader | null;
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
  /** Each rendition's init segment (the first, and after every restart), and each chunk, as the encoder (or, with scale-out, the node that encodes) makes them. */
  init: [rendition: BroadcastRenditionName, init: CmafInit];
  chunk: [rendition: BroadcastRenditionName, chunk: BroadcastChunk];
  /** The encoder started or stopped. */
  live: [live: boolean];
  /** The encoder failed too often in a row and gave up (the broadcast stopped): why. */
  failed: [why: string];
};

/**
 * Scale-out (server/scaleout/hls-relay.ts): one node at a time encodes a room's broadcast, the one
 * holding its encoding lease; it appends its operations to a log that every other node serving the
 * room applies to its own renditions.
 */
export interface BroadcastRelay {
  /** Starts competing for the room's encoding lease. */
  start(events: { acquired: () => void; lost: () => void }): void;
  /** Whether this node holds the lease now. */
  readonly holds: boolean;
  /** Applies what the log holds that this node has not applied yet (before it encodes after another node). */
  catchUp(): Promise<void>;
  /** Appends operations to the log, in order. */
  publish(ops: BroadcastOp[]): void;
  /** Stops competing; gives the lease back if held. */
  stop(): Promise<void>;
}

export { RenditionSource };

interface Running {
  encoder: BroadcastEncoder;
  releaseId: string;
  /** Hands the drawer the textures the room's params name. */
  textures: TextureFeed;
  /** Scale-out: it applied operations here that the log does not have (RTMP only, or after the lease was lost). */
  unpublished: boolean;
}

export class RoomBroadcast extends EventEmitter<RoomBroadcastEvents> {
  readonly room: Room;
  readonly #opts: RoomBroadcastOptions;
  readonly #log: Logger;
  readonly #holders = new Set<BroadcastHolder>();
  #turns: Promise<void> = Promise.resolve();
  /** The playlists this node serves: fed by its encoder, or (scale-out) by the node that encodes. */
  readonly #out: BroadcastRenditions;
  readonly #relay: BroadcastRelay | null;
  #relayStarted = false;
  #running: Running | null = null;
  #starting: Promise<void> | null = null;
  #reconciling: Promise<void> = Promise.resolve();
  #statePosted = false;
  #failure: string | null = null;
  #closed = false;
  readonly #offUpdate: () => void;
  readonly #offOut: () => void;

  constructor(opts: RoomBroadcastOptions) {
    super();
    this.room = opts.room;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: opts.room.id, component: 'room-broadcast' });
    this.#out = opts.renditions ?? new BroadcastRenditions({ hls: opts.hls, ...(opts.endedKeepMs !== undefined ? { endedKeepMs: opts.endedKeepMs } : {}) });
    this.#relay = opts.relay ?? null;
    const onUpdate = () => this.#scheduleState();
    opts.room.on('update', onUpdate);
    this.#offUpdate = () => opts.room.off('update', onUpdate);
    const onInit = (name: BroadcastRenditionName, init: CmafInit) => this.emit('init', name, init);
    const onChunk = (name: BroadcastRenditionName, chunk: BroadcastChunk) => this.emit('chunk', name, chunk);
    this.#out.on('init', onInit);
    this.#out.on('chunk', onChunk);
    this.#offOut = () => {
      this.#out.off('init', onInit);
      this.#out.off('chunk', onChunk);
    };
  }

  /** The encoder runs on this node now. */
  get live(): boolean {
    return this.#running !== null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** The renditions this node serves. */
  get renditions(): BroadcastRenditions {
    return this.#out;
  }

  /** The rendition's playlist and files, while the room broadcasts (and a little after it ended). */
  rendition(name: string): LlHlsRendition | undefined {
    return this.#out.rendition(name);
  }

  /** Resolves true once the renditions exist (the encoder started, here or on the node that encodes), false after `timeoutMs`. */
  whenStarted(timeoutMs: number): Promise<boolean> {
    if (this.#closed) return Promise.resolve(this.#out.size > 0);
    return this.#out.whenReady(timeoutMs);
  }

  /** The size of the video rendition's pictures. */
  get videoSize(): { width: number; height: number } {
    return { width: this.#opts.settings?.width ?? DEFAULT_BROADCAST.width, height: this.#opts.settings?.height ?? DEFAULT_BROADCAST.height };
  }

  get renditionNames(): BroadcastRenditionName[] {
    return this.#out.names;
  }

  /** The current init segment of a rendition (null before the encoder made one). */
  initOf(name: BroadcastRenditionName): CmafInit | null {
    return this.#out.initOf(name);
  }

  /**
   * A rendition's fragmented MP4 as a stream (its current init, then chunks as they come), for
   * a consumer that starts in the middle: an RTMP push remuxes the `video` one.
   */
  source(name: BroadcastRenditionName): RenditionSource {
    return this.#out.source(name);
  }

  /**
   * Someone needs the encoder (the room went into broadcast mode, a push started); starts it if it
   * is not running. With scale-out, broadcast mode runs it only on the node holding the room's
   * encoding lease; the others serve what that one encodes.
   */
  hold(holder: BroadcastHolder): Promise<void> {
    return this.#inTurn(() => this.#hold(holder));
  }

  /** Whoever held it no longer needs it; the encoder stops with the last. */
  release(holder: BroadcastHolder): Promise<void> {
    return this.#inTurn(() => this.#release(holder));
  }

  /**
   * Holds and releases one after the other: a release waits for the encoder to stop, and a hold
   * arriving meanwhile (broadcast mode switched off and on again) must not be undone by it.
   */
  #inTurn(fn: () => Promise<void>): Promise<void> {
    const next = this.#turns.then(fn);
    this.#turns = next.catch(() => {});
    return next;
  }

  async #hold(holder: BroadcastHolder): Promise<void> {
    if (this.#closed) throw new Error('the room has closed');
    this.#holders.add(holder);
    if (this.#relay && holder === 'hls' && !this.#relayStarted) {
      this.#relayStarted = true;
      this.#relay.start({ acquired: () => void this.#reconcile(true), lost: () => void this.#reconcile() });
    }
    await this.#reconcile();
  }

  async #release(holder: BroadcastHolder): Promise<void> {
    if (holder === 'hls' && this.#relay && this.#relayStarted) {
      // The node that encodes ends the playlists on every node (its last chunk, then the end), then
      // lets the lease go (nobody else wants it: the rules say the same on every node).
      if (this.#publishing()) await this.#stop('the room left broadcast mode', true);
      this.#holders.delete(holder);
      this.#relayStarted = false;
      await this.#relay.stop();
    }
    this.#holders.delete(holder);
    await this.#reconcile();
  }

  get holders(): BroadcastHolder[] {
    return [...this.#holders];
  }

  async status(): Promise<RoomBroadcastStatus> {
    const running = this.#running;
    return {
      live: running !== null,
      holders: this.holders,
      renditions: this.#out.names.map((name) => {
        const r = this.#out.rendition(name)!;
        return { name, codecs: r.codecs, bandwidth: r.bandwidth, latest: r.latest };
      }),
      failure: this.#failure,
      encoder: running && !running.encoder.closed ? await running.encoder.stats().catch(() => null) : null,
    };
  }

  /** Why the last encoder gave up (it kept failing), or null. */
  get failure(): string | null {
    return this.#failure;
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
    if (this.#relay && this.#relayStarted) {
      this.#relayStarted = false;
      // Not the end of the broadcast: another node serving the room takes over (or nobody, and it ends there).
      await this.#relay.stop();
    }
    await this.#stop('the room closed', false);
    this.#offOut();
    if (!this.#opts.renditions) this.#out.close();
  }

  /** Whether this node's encoder should run now. */
  #shouldEncode(): boolean {
    if (this.#closed) return false;
    if (!this.#relay) return this.#holders.size > 0;
    if (this.#holders.has('hls')) return this.#relay.holds;
    return this.#holders.has('rtmp');
  }

  /** Whether what this node encodes goes to the other nodes. */
  #publishing(): boolean {
    return this.#relay !== null && this.#holders.has('hls') && this.#relayStarted && this.#relay.holds;
  }

  /** Applies an operation here, and appends it to the log when this node encodes the room for all. */
  #apply(op: BroadcastOp): void {
    const ops = this.#out.apply(op);
    if (this.#publishing()) this.#relay!.publish(ops);
    else if (this.#running) this.#running.unpublished = true;
  }

  /** Starts or stops the encoder as the holders (and the lease) say; one at a time. */
  #reconcile(takeover = false): Promise<void> {
    const next = this.#reconciling.then(async () => {
      if (this.#shouldEncode()) {
        if (this.#running || this.#starting) return this.#starting ?? undefined;
        if (takeover && this.#relay) {
          // Continue from the log: what the former encoder appended last, then a discontinuity.
          await this.#relay.catchUp();
          if (!this.#shouldEncode()) return;
          this.#log.info('this node took over the room’s broadcast encoding');
        }
        return this.#ensureRunning();
      }
      // Lost the lease (another node encodes): stop without ending the playlists, which that node goes on with.
      const end = !this.#relay || !this.#holders.has('hls');
      await this.#stop(end ? 'nobody holds the broadcast' : 'another node encodes the room', end);
    });
    this.#reconciling = next.catch((err: unknown) => this.#log.error({ err }, 'the room’s broadcast could not start'));
    return next;
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
      if (!this.#shouldEncode()) {
        await encoder.close();
        cache.release(release.id);
        return;
      }
      this.#failure = null;
      const partTargetSec = this.#opts.settings?.partSec ?? 0.5;
      const textures = new TextureFeed(release.id, this.#opts.textures ?? null, (art) => encoder.addTexture(art), this.#log);
      textures.sync(state.visual.params);
      const running: Running = { encoder, releaseId: release.id, textures, unpublished: !this.#publishing() };
      let continued = false;
      for (const name of encoder.renditions) {
        // Still there from an earlier run (ended a moment ago, or another node's): it goes on after a discontinuity.
        if (this.#out.has(name)) continued = true;
        // Numbered from the wall clock's seconds: never a name an earlier broadcast of the room (cached for good by players and CDNs) used.
        else this.#apply({ type: 'create', rendition: name, partTargetSec, firstNumber: Math.floor(Date.now() / 1000) });
      }
      if (continued) this.#apply({ type: 'discontinuity' });
      encoder.on('init', (name, cmafInit) => {
        if (this.#running === running) this.#apply({ type: 'init', rendition: name, init: cmafInit });
      });
      encoder.on('chunk', (name, chunk) => {
        if (this.#running === running) this.#apply({ type: 'chunk', rendition: name, chunk });
      });
      encoder.on('error', () => {
        // Restarting: what comes next follows a discontinuity (its init says so too).
        if (this.#running === running) this.#apply({ type: 'discontinuity' });
      });
      encoder.once('failed', (err) => {
        this.#failure = err.message;
        if (this.#running === running) void this.#stop(`the encoder kept failing: ${err.message}`, true);
        this.emit('failed', err.message);
      });
      this.#running = running;
      this.#log.info({ ms: Math.round(performance.now() - started), renditions: encoder.renditions, holders: this.holders, publishing: this.#publishing() }, 'the room’s broadcast started');
      this.emit('live', true);
    } catch (err) {
      cache.release(release.id);
      throw err;
    }
  }

  async #stop(why: string, end: boolean): Promise<void> {
    await this.#starting?.catch(() => {});
    const running = this.#running;
    if (!running) return;
    this.#running = null;
    // Ends the playlists (here, and on the other nodes when this one encoded for them) before the encoder's last bytes could.
    if (end) this.#apply({ type: 'end' });
    // The renditions go on with what the encoding node appends; where they took in what it does not
    // have, they start again at its next resume point instead of serving other numbers.
    else if (this.#relay && running.unpublished) this.#out.resync();
    await running.encoder.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the broadcast encoder'));
    this.#opts.stems.release(running.releaseId);
    this.#log.info({ why }, 'the room’s broadcast stopped');
    this.emit('live', false);
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
      running.textures.sync(state.visual.params);
    });
  }
}
