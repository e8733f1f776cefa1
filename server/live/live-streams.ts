// The process's live streams: the SFU (chosen at start: mediasoup when its
// worker binary is there, the embedded one otherwise), the shared stem cache,
// and one RoomStream per loaded room that someone listens to.
import { EventEmitter } from 'node:events';
import { selectSfu, type SelectSfuOptions } from '../../media/sfu/select-sfu.ts';
import type { ServerSignal, Sfu, SfuKind } from '../../media/sfu/sfu.ts';
import type { Logger } from '../logger.ts';
import type { Room, RoomCloseReason } from '../rooms/room.ts';
import type { DataLayout } from '../store/paths.ts';
import { DEFAULT_VISUAL_OUTPUT, ffmpegHasLibvpx, type EncoderRestartPolicy, type VisualOutputSettings } from '../../media/live/visual-output.ts';
import { engineArtwork } from '../../media/visuals/visual-pack.ts';
import { localReleaseFolders, type ReleaseFolders } from '../catalog/release-files.ts';
import { readPack } from '../work/engine-cache.ts';
import type { GeneratedTextureLoader } from '../work/generated-textures.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import { RoomStream, type RoomStreamEndReason, type RoomVideoOptions } from './room-stream.ts';
import { RoomBroadcast, type BroadcastRelay, type RenditionSource } from './room-broadcast.ts';
import { BroadcastRenditions, type HlsView } from './broadcast-renditions.ts';
import { RtmpPush, type RtmpState } from './rtmp-push.ts';
import type { RtmpTarget } from './rtmp-target.ts';
import { DEFAULT_BROADCAST, ffmpegCannotBroadcast, type BroadcastSettings } from '../../media/live/broadcast-encoder.ts';
import { StemCache } from './stem-cache.ts';

/** Rooms one node broadcasts at once unless BROADCAST_MAX_ROOMS says otherwise. */
export const DEFAULT_MAX_BROADCASTS = 4;

export interface LiveStreamsOptions {
  layout: DataLayout;
  /** Where releases' files are read (S3: fetched into the node's cache); default DATA_DIR/releases. */
  releases?: ReleaseFolders;
  log: Logger;
  /** MEDIASOUP_WORKER_BIN from the config. */
  mediasoupWorkerBin?: string | undefined;
  /** Passed to the SFU (tests shorten the timeouts). */
  sfu?: Pick<SelectSfuOptions, 'embedded' | 'mediasoup'>;
  /** How long a stream keeps mixing after its last listener left. */
  idleStopMs?: number;
  /** The visuals as a video track (for viewers who cannot draw): the native ffmpeg (null: none) and the size and rate. */
  video?: { ffmpeg: string | null; settings?: Partial<VisualOutputSettings>; idleStopMs?: number; restart?: Partial<EncoderRestartPolicy> };
  /** Where the textures the visual model generated for prompts are read, for the server's video and broadcast. */
  textures?: GeneratedTextureLoader | null;
  /** Broadcast mode: HLS (and RTMP) encoded once per room by a native ffmpeg with libx264. */
  broadcast?: {
    ffmpeg: string | null;
    settings?: Partial<BroadcastSettings>;
    segmentSec?: number;
    /** Above this many WebRTC listeners a room switches to broadcast mode by itself (0: never). */
    autoListeners?: number;
    /** Rooms this node broadcasts at once (default 4): each is an encoder. */
    maxRooms?: number;
    restart?: Partial<EncoderRestartPolicy>;
    /** How long an ended playlist stays readable. */
    endedKeepMs?: number;
    /** RTMP pushes' retry policy (tests shorten it). */
    rtmp?: { backoff?: { initialMs: number; maxMs: number }; maxFailures?: number };
  };
  /**
   * Scale-out (server/scaleout/hls-relay.ts): one node encodes each room's broadcast for all, and
   * every node serves the same playlists, also for rooms it has not loaded.
   */
  hlsRelay?: HlsRelayLike | null;
}

/** What LiveStreams needs of the HLS relay. */
export interface HlsRelayLike {
  follow(roomId: string, renditions: BroadcastRenditions): () => void;
  room(roomId: string): BroadcastRelay;
}

/** A mirror of a room's renditions unused for this long (no HLS request, room not loaded here) is dropped. */
const MIRROR_IDLE_MS = 60_000;

interface Mirror {
  renditions: BroadcastRenditions;
  unfollow: () => void;
  /** A RoomBroadcast serves it (the room is loaded here): it lives as long as that one. */
  owned: boolean;
  usedAt: number;
}

export type LiveStreamsEvents = {
  /** A room's stream stopped under its listeners; they join again to hear it. */
  ended: [roomId: string, reason: RoomStreamEndReason];
  listeners: [roomId: string, count: number];
  /** A room's video stopped under these viewers (member ids: socket sessions); their audio goes on. */
  videoStopped: [roomId: string, viewers: string[], reason: string];
};

export interface LiveStatus {
  live: boolean;
  listeners: number;
  adapter: SfuKind;
}

export class LiveStreams extends EventEmitter<LiveStreamsEvents> {
  readonly sfu: Sfu;
  readonly stems: StemCache;
  readonly #opts: LiveStreamsOptions;
  readonly #releases: ReleaseFolders;
  readonly #streams = new Map<string, RoomStream>();
  readonly #artwork = new Map<string, Promise<EngineArtwork[]>>();
  readonly #video: RoomVideoOptions;
  readonly #broadcasts = new Map<string, RoomBroadcast>();
  /** Rooms whose broadcast mode was switched off (by a host, or a failing encoder): no switching on by itself. */
  readonly #autoOff = new Set<string>();
  /** Broadcasts and pushes of closed rooms still stopping (a shutdown waits for them). */
  readonly #closing = new Set<Promise<void>>();
  /** Each room's RTMP starts and stops, one after the other. */
  readonly #rtmpTurns = new Map<string, Promise<unknown>>();
  /** Scale-out: each room's renditions as the node that encodes it makes them, by room id. */
  readonly #mirrors = new Map<string, Mirror>();
  #mirrorSweep: NodeJS.Timeout | null = null;
  /** Each room's push to a streaming platform (one per room), with the source it reads. */
  readonly #pushes = new Map<string, { push: RtmpPush; source: RenditionSource; broadcast: RoomBroadcast }>();
  /** Why this node cannot broadcast (no native ffmpeg with libx264), or null. */
  readonly broadcastUnavailable: string | null;
  #closed = false;

  private constructor(sfu: Sfu, opts: LiveStreamsOptions, encoder: RoomVideoOptions['encoder'], broadcastUnavailable: string | null) {
    super();
    this.broadcastUnavailable = broadcastUnavailable;
    this.sfu = sfu;
    this.#opts = opts;
    this.#video = {
      encoder,
      settings: { ...DEFAULT_VISUAL_OUTPUT, ...opts.video?.settings },
      artwork: (releaseId) => this.#releaseArtwork(releaseId),
      textures: opts.textures ?? null,
      ...(opts.video?.idleStopMs !== undefined ? { idleStopMs: opts.video.idleStopMs } : {}),
      ...(opts.video?.restart ? { restart: opts.video.restart } : {}),
    };
    this.#releases = opts.releases ?? localReleaseFolders(opts.layout);
    this.stems = new StemCache(this.#releases);
    sfu.on('workerdied', ({ workerId, error, roomIds }) => {
      opts.log.error({ err: error, workerId, rooms: roomIds.length }, 'an SFU worker died; its rooms stop streaming until their members join again');
      for (const id of roomIds) void this.#streams.get(id)?.close('sfu-lost');
    });
  }

  /** Chooses the SFU and logs which one (and why). */
  static async create(opts: LiveStreamsOptions): Promise<LiveStreams> {
    const selected = await selectSfu({ mediasoupWorkerBin: opts.mediasoupWorkerBin, log: opts.log, ...opts.sfu });
    opts.log.info({ adapter: selected.kind, reason: selected.reason }, `live streams use the ${selected.kind} SFU`);
    const ffmpeg = opts.video?.ffmpeg ?? null;
    let encoder: RoomVideoOptions['encoder'];
    if (!ffmpeg) encoder = { unavailable: 'the server has no native ffmpeg to encode the visuals as video' };
    else if (!(await ffmpegHasLibvpx(ffmpeg))) encoder = { unavailable: `the server's ffmpeg (${ffmpeg}) has no libvpx VP8 encoder` };
    else encoder = { ffmpeg };
    if ('unavailable' in encoder) opts.log.warn({ reason: encoder.unavailable }, 'the visuals are not offered as video (audio is unaffected)');
    else opts.log.info({ ffmpeg, ...DEFAULT_VISUAL_OUTPUT, ...opts.video?.settings }, 'the visuals can be published as VP8 video');
    const broadcastFfmpeg = opts.broadcast?.ffmpeg ?? null;
    const broadcastUnavailable = broadcastFfmpeg ? await ffmpegCannotBroadcast(broadcastFfmpeg) : 'the server has no native ffmpeg to encode a broadcast';
    if (broadcastUnavailable) opts.log.warn({ reason: broadcastUnavailable }, 'rooms cannot broadcast (HLS, RTMP) on this node');
    return new LiveStreams(selected.sfu, opts, encoder, broadcastUnavailable);
  }

  /**
   * Follows a room that opened here: its broadcast runs while its rules say broadcast mode
   * (whoever switched it, on whichever node), and above the configured number of WebRTC
   * listeners the room switches by itself.
   */
  watch(room: Room): void {
    let was = room.rules.broadcast;
    const follow = () => {
      if (room.closed || this.#closed) return;
      // Switched off (by a host, or after its encoder gave up): the room is not switched on again by itself.
      if (was && !room.rules.broadcast) this.#autoOff.add(room.id);
      was = room.rules.broadcast;
      if (room.rules.broadcast) {
        const refused = this.broadcastRefusal(room.id);
        if (refused) {
          this.#opts.log.warn({ roomId: room.id, why: refused }, 'the room is in broadcast mode, but this node does not encode it');
          return;
        }
        this.#broadcastOf(room).hold('hls').catch((err: unknown) => this.#opts.log.error({ err, roomId: room.id }, 'the room’s broadcast could not start'));
      } else {
        void this.#broadcasts.get(room.id)?.release('hls');
      }
    };
    room.on('rules', follow);
    room.once('close', () => {
      room.off('rules', follow);
      this.#autoOff.delete(room.id);
    });
    follow();
  }

  /**
   * Why the room cannot broadcast from this node now (no encoder; or as many rooms as the node may
   * encode already), or null. A room that broadcasts already is never refused.
   */
  broadcastRefusal(roomId: string): string | null {
    if (this.broadcastUnavailable) return `this server cannot broadcast: ${this.broadcastUnavailable}`;
    const max = this.#opts.broadcast?.maxRooms ?? DEFAULT_MAX_BROADCASTS;
    const held = [...this.#broadcasts.values()].filter((b) => !b.closed && b.holders.length > 0);
    if (held.some((b) => b.room.id === roomId)) return null;
    return held.length >= max ? `this server is broadcasting ${held.length} rooms already, as many as it may (BROADCAST_MAX_ROOMS); try again later` : null;
  }

  /** The room's broadcast on this node, if it has one (its playlists, its encoder for RTMP). */
  broadcast(roomId: string): RoomBroadcast | undefined {
    const b = this.#broadcasts.get(roomId);
    return b && !b.closed ? b : undefined;
  }

  /**
   * What the HLS routes serve for a room: its broadcast here; with scale-out, for a room not loaded
   * here, the renditions of the node that encodes it, followed from the moment someone asks.
   */
  hls(roomId: string): HlsView | undefined {
    const b = this.broadcast(roomId);
    if (b || !this.#opts.hlsRelay || this.#closed) return b;
    const mirror = this.#mirrorOf(roomId);
    mirror.usedAt = Date.now();
    return mirror.renditions;
  }

  #mirrorOf(roomId: string): Mirror {
    const relay = this.#opts.hlsRelay!;
    let mirror = this.#mirrors.get(roomId);
    if (mirror && !mirror.renditions.closed) return mirror;
    const b = this.#opts.broadcast;
    const renditions = new BroadcastRenditions({
      hls: this.#hlsOptions(),
      ...(b?.endedKeepMs !== undefined ? { endedKeepMs: b.endedKeepMs } : {}),
      videoSize: { width: b?.settings?.width ?? DEFAULT_BROADCAST.width, height: b?.settings?.height ?? DEFAULT_BROADCAST.height },
    });
    mirror = { renditions, unfollow: relay.follow(roomId, renditions), owned: false, usedAt: Date.now() };
    this.#mirrors.set(roomId, mirror);
    this.#mirrorSweep ??= setInterval(() => this.#sweepMirrors(), MIRROR_IDLE_MS / 4).unref();
    return mirror;
  }

  #sweepMirrors(): void {
    const now = Date.now();
    for (const [roomId, mirror] of this.#mirrors) {
      if (mirror.owned || now - mirror.usedAt < MIRROR_IDLE_MS) continue;
      this.#dropMirror(roomId, mirror);
    }
  }

  #dropMirror(roomId: string, mirror: Mirror): void {
    if (this.#mirrors.get(roomId) === mirror) this.#mirrors.delete(roomId);
    mirror.unfollow();
    mirror.renditions.close();
  }

  #hlsOptions() {
    const segmentSec = this.#opts.broadcast?.segmentSec ?? 2;
    // Six segments in the playlist; a blocking reload waits at most three target durations (RFC 8216bis 6.2.5.2).
    return { segmentTargetSec: segmentSec, windowSegments: 6, blockTimeoutMs: 3 * segmentSec * 1000 };
  }

  /**
   * Sends the room to an RTMP ingest (the target checked by checkRtmpTarget): one push per room,
   * remuxing the broadcast's `video` rendition (the encoder runs for it even outside broadcast
   * mode). A push already running is replaced. The key lives in the push only, for the room's life.
   */
  startRtmp(room: Room, target: RtmpTarget): Promise<RtmpState> {
    return this.#rtmpInTurn(room.id, () => this.#startRtmp(room, target));
  }

  /** Stops the room's push, if any; its state stays readable as 'stopped' until the next start. */
  stopRtmp(roomId: string): Promise<RtmpState | null> {
    return this.#rtmpInTurn(roomId, () => this.#stopRtmp(roomId));
  }

  /** One start or stop at a time per room: two quick starts must not leave a push nobody can stop. */
  #rtmpInTurn<T>(roomId: string, fn: () => Promise<T>): Promise<T> {
    const next = (this.#rtmpTurns.get(roomId) ?? Promise.resolve()).catch(() => {}).then(fn);
    const settled = next.catch(() => {});
    this.#rtmpTurns.set(roomId, settled);
    void settled.then(() => {
      if (this.#rtmpTurns.get(roomId) === settled) this.#rtmpTurns.delete(roomId);
    });
    return next;
  }

  async #startRtmp(room: Room, target: RtmpTarget): Promise<RtmpState> {
    const refused = this.broadcastRefusal(room.id);
    if (refused) throw new BroadcastRefusedError(refused);
    await this.#stopRtmp(room.id);
    const broadcast = this.broadcastFor(room);
    await broadcast.hold('rtmp');
    // The room closed (or the server began to stop) while the encoder started: no push to leave behind.
    if (room.closed || this.#closed || broadcast.closed) {
      await broadcast.release('rtmp').catch(() => {});
      throw new Error('the room closed while its push started');
    }
    const name = broadcast.renditionNames.includes('video') ? 'video' : 'audio';
    const source = broadcast.source(name);
    const push = new RtmpPush({ ffmpeg: this.#opts.broadcast!.ffmpeg!, target, source, log: this.#opts.log.child({ roomId: room.id }), ...this.#opts.broadcast?.rtmp });
    const entry = { push, source, broadcast };
    this.#pushes.set(room.id, entry);
    // A push that gave up keeps its state (the host reads why) but no longer holds the encoder.
    push.on('state', (state) => {
      if (state.status === 'failed' && this.#pushes.get(room.id) === entry) void broadcast.release('rtmp');
    });
    push.start();
    return push.state;
  }

  async #stopRtmp(roomId: string): Promise<RtmpState | null> {
    const entry = this.#pushes.get(roomId);
    if (!entry) return null;
    entry.source.detach();
    await entry.push.stop();
    // Another start may have replaced it meanwhile: only this push's hold goes.
    if (this.#pushes.get(roomId) === entry) await entry.broadcast.release('rtmp');
    return entry.push.state;
  }

  /** The room's push as the host sees it (never the key), or null when none was started. */
  rtmpState(roomId: string): RtmpState | null {
    return this.#pushes.get(roomId)?.push.state ?? null;
  }

  /** The room's broadcast, made if need be (RTMP out holds its encoder even outside broadcast mode). */
  broadcastFor(room: Room): RoomBroadcast {
    if (this.broadcastUnavailable) throw new Error(this.broadcastUnavailable);
    return this.#broadcastOf(room);
  }

  #broadcastOf(room: Room): RoomBroadcast {
    if (this.#closed) throw new Error('the server is shutting down');
    const existing = this.#broadcasts.get(room.id);
    if (existing && !existing.closed) return existing;
    const b = this.#opts.broadcast;
    const relay = this.#opts.hlsRelay ?? null;
    // Scale-out: the renditions follow the node that encodes the room (this one, when it holds the lease).
    const mirror = relay ? this.#mirrorOf(room.id) : null;
    if (mirror) mirror.owned = true;
    const broadcast = new RoomBroadcast({
      room,
      stems: this.stems,
      artwork: (releaseId) => this.#releaseArtwork(releaseId),
      textures: this.#opts.textures ?? null,
      ffmpeg: b!.ffmpeg!,
      ...(b?.settings ? { settings: b.settings } : {}),
      hls: this.#hlsOptions(),
      ...(b?.restart ? { restart: b.restart } : {}),
      ...(b?.endedKeepMs !== undefined ? { endedKeepMs: b.endedKeepMs } : {}),
      ...(mirror && relay ? { renditions: mirror.renditions, relay: relay.room(room.id) } : {}),
      log: this.#opts.log,
    });
    this.#broadcasts.set(room.id, broadcast);
    // An encoder that gave up: the room leaves broadcast mode (its listeners go back to WebRTC rather
    // than to a playlist that ended), and the host reads why in the broadcast's status.
    broadcast.on('failed', (why) => {
      if (room.closed || !room.rules.broadcast) return;
      this.#opts.log.error({ roomId: room.id, why }, 'the room leaves broadcast mode: its encoder kept failing');
      room.setBroadcast(false);
    });
    room.once('close', () => {
      if (this.#broadcasts.get(room.id) === broadcast) this.#broadcasts.delete(room.id);
      if (mirror) this.#dropMirror(room.id, mirror);
      // The stream key goes with the room.
      const push = this.#pushes.get(room.id);
      this.#pushes.delete(room.id);
      const closing = (async () => {
        if (push) {
          push.source.detach();
          await push.push.stop();
        }
        await broadcast.close();
      })().catch((err: unknown) => this.#opts.log.warn({ err, roomId: room.id }, 'closing the room’s broadcast'));
      // A shutdown waits for it (the encoder stopped, ffmpeg reaped, the lease handed over).
      this.#closing.add(closing);
      void closing.finally(() => this.#closing.delete(closing));
    });
    return broadcast;
  }

  get adapter(): SfuKind {
    return this.sfu.kind;
  }

  /** A signaling message from a member of `room` (memberId: its socket session). */
  signal(room: Room, memberId: string, message: unknown): Promise<ServerSignal> {
    return this.#streamOf(room).signal(memberId, message);
  }

  /** The member's connection went away: its transport goes too. */
  leave(roomId: string, memberId: string): void {
    this.#streams.get(roomId)?.leave(memberId);
  }

  status(roomId: string): LiveStatus {
    const stream = this.#streams.get(roomId);
    return { live: stream?.live ?? false, listeners: stream?.listening ?? 0, adapter: this.sfu.kind };
  }

  stream(roomId: string): RoomStream | undefined {
    return this.#streams.get(roomId);
  }

  #releaseArtwork(releaseId: string): Promise<EngineArtwork[]> {
    let art = this.#artwork.get(releaseId);
    if (!art) {
      art = readPack(this.#releases, releaseId).then((pack) => engineArtwork(pack));
      art.catch(() => this.#artwork.delete(releaseId));
      this.#artwork.set(releaseId, art);
    }
    return art;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#streams.values()].map((s) => s.close('shutdown')));
    this.#streams.clear();
    await Promise.all([...this.#pushes.values()].map((p) => p.push.stop()));
    this.#pushes.clear();
    await Promise.all([...this.#broadcasts.values()].map((b) => b.close()));
    this.#broadcasts.clear();
    // Those of rooms that closed before (the rooms close first in a shutdown).
    await Promise.all([...this.#closing]);
    if (this.#mirrorSweep) clearInterval(this.#mirrorSweep);
    for (const [roomId, mirror] of [...this.#mirrors]) this.#dropMirror(roomId, mirror);
    await this.sfu.close();
  }

  #streamOf(room: Room): RoomStream {
    if (this.#closed) throw new Error('the server is shutting down');
    const existing = this.#streams.get(room.id);
    if (existing && !existing.closed) return existing;
    const stream = new RoomStream({
      room,
      sfu: this.sfu,
      stems: this.stems,
      log: this.#opts.log,
      video: this.#video,
      ...(this.#opts.idleStopMs !== undefined ? { idleStopMs: this.#opts.idleStopMs } : {}),
    });
    this.#streams.set(room.id, stream);
    stream.on('ended', (reason) => this.emit('ended', room.id, reason));
    stream.on('listeners', (count) => {
      this.emit('listeners', room.id, count);
      // A crowd on WebRTC: the room goes into broadcast mode by itself (the web app moves its listeners to HLS).
      const auto = this.#opts.broadcast?.autoListeners ?? 0;
      if (auto > 0 && count > auto && !room.closed && !room.rules.broadcast && !this.broadcastRefusal(room.id) && !this.#autoOff.has(room.id)) {
        this.#opts.log.info({ roomId: room.id, listeners: count, autoListeners: auto }, 'the room switches to broadcast mode by itself');
        room.setBroadcast(true);
      }
    });
    stream.on('videoStopped', (viewers, reason) => this.emit('videoStopped', room.id, viewers, reason));
    const onClose = (reason: RoomCloseReason) => {
      if (this.#streams.get(room.id) === stream) this.#streams.delete(room.id);
      // Only an ended room is over for its listeners; any other close (a restart, a shutdown,
      // an emptied room) comes back, and they join again once they have reconnected.
      void stream.close(reason === 'ended' ? 'room-closed' : 'shutdown');
    };
    room.once('close', onClose);
    return stream;
  }
}

/** The room cannot broadcast from this node now (no encoder, or the node's limit of rooms). */
export class BroadcastRefusedError extends Error {
  override readonly name = 'BroadcastRefusedError';
}
