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
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import { RoomStream, type RoomStreamEndReason, type RoomVideoOptions } from './room-stream.ts';
import { StemCache } from './stem-cache.ts';

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
  #closed = false;

  private constructor(sfu: Sfu, opts: LiveStreamsOptions, encoder: RoomVideoOptions['encoder']) {
    super();
    this.sfu = sfu;
    this.#opts = opts;
    this.#video = {
      encoder,
      settings: { ...DEFAULT_VISUAL_OUTPUT, ...opts.video?.settings },
      artwork: (releaseId) => this.#releaseArtwork(releaseId),
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
    return new LiveStreams(selected.sfu, opts, encoder);
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
    stream.on('listeners', (count) => this.emit('listeners', room.id, count));
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
