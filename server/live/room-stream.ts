// One room's live stream: while anyone listens, the room's mixer runs in a
// worker thread (LiveOutput with the mixer source), its Opus/RTP goes into the
// room's SFU producer, and every member who joined gets it from the SFU.
//
// The stream starts with the first join and stops IDLE_STOP_MS after the last
// listener left (a reload does not restart the mixer), or when the room closes.
// A room with nobody listening does not mix. The mixer follows the room's
// checked document only: every applied update posts the new mix and
// arrangement to the worker, at most once per turn of the event loop.
//
// The visuals as video (for viewers who cannot draw: a re-broadcast, a weak
// device) are opt-in per member: a join with `video: true` starts the room's
// one visual output (VisualOutput: the shared engine on the room's clock, the
// mix's energy from the mixer, VP8 through a native ffmpeg) on a visuals
// producer of the SFU, and the member's offer carries the video track. Without
// an encoder the join gets audio only, with the reason. The encoder stops
// VIDEO_IDLE_STOP_MS after the last video viewer left: no viewer, no encode.
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LiveOutput } from '../../media/live/live-output.ts';
import type { MixerSourceInit, MixerSourceStateMessage } from '../../media/live/mixer-source.ts';
import { VisualOutput, type EncoderRestartPolicy, type VisualOutputSettings, type VisualOutputStats } from '../../media/live/visual-output.ts';
import {
  SignalError,
  embeddedClientSignalSchema,
  mediasoupClientSignalSchema,
  parseSignal,
  type MixProducer,
  type ServerSignal,
  type Sfu,
  type SfuRoom,
  type VisualsProducer,
} from '../../media/sfu/sfu.ts';
import { TextureFeed, type GeneratedTextureLoader } from '../work/generated-textures.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import type { Logger } from '../logger.ts';
import type { Room } from '../rooms/room.ts';
import { STEM_SAMPLE_RATE, type StemCache } from './stem-cache.ts';

const MIXER_SOURCE_MODULE = fileURLToPath(new URL('../../media/live/mixer-source.ts', import.meta.url));

export const DEFAULT_IDLE_STOP_MS = 10_000;
/** After the visuals' encoder gave up (it kept failing), video joins are answered audio only for this long. */
export const VIDEO_RETRY_AFTER_FAILURE_MS = 5 * 60_000;
/** The visuals' encoder stops this long after the last video viewer left (a reload keeps it). */
export const DEFAULT_VIDEO_IDLE_STOP_MS = 3_000;

/** How the server publishes a room's visuals as video (for viewers who cannot draw them). */
export interface RoomVideoOptions {
  /** A native ffmpeg with libvpx, or why there is none (the video is then not offered). */
  encoder: { ffmpeg: string } | { unavailable: string };
  settings: VisualOutputSettings;
  /** The release's artwork for the engine (its visual pack). */
  artwork(releaseId: string): Promise<EngineArtwork[]>;
  idleStopMs?: number;
  /** Where the textures the visual model generated for the room's prompts are read (none: drawn without). */
  textures?: GeneratedTextureLoader | null;
  /** How a failing encoder is restarted before the output gives up (tests use short waits). */
  restart?: Partial<EncoderRestartPolicy>;
}

export type RoomStreamEndReason = 'room-closed' | 'failed' | 'idle' | 'sfu-lost' | 'shutdown';

export type RoomStreamEvents = {
  /** The stream stopped; members who were listening must join again to hear it (unless the room closed). */
  ended: [reason: RoomStreamEndReason];
  listeners: [count: number];
  /** The room's video stopped under these viewers (its encoder kept failing); their audio goes on. */
  videoStopped: [viewers: string[], reason: string];
};

export interface RoomStreamOptions {
  room: Room;
  sfu: Sfu;
  stems: StemCache;
  log: Logger;
  idleStopMs?: number;
  video?: RoomVideoOptions;
}

interface RunningVideo {
  producer: VisualsProducer;
  output: VisualOutput;
  /** Hands the drawer the textures the room's params name. */
  textures: TextureFeed;
}

export interface RoomVideoStatus {
  /** Whether the encoder runs now. */
  live: boolean;
  /** Members who joined asking for video and got it. */
  viewers: number;
  /** Why the room cannot publish video at all, if so. */
  unavailable: string | null;
  output: VisualOutputStats | null;
}

interface Running {
  sfuRoom: SfuRoom;
  producer: MixProducer;
  output: LiveOutput;
  /** Whose stems it holds in the cache. */
  releaseId: string;
  /** The mix's loudness, written by the mixer, read by the visuals. */
  energy: SharedArrayBuffer;
  video: RunningVideo | null;
  videoStarting: Promise<RunningVideo> | null;
  /** Members receiving the video track. */
  videoViewers: Set<string>;
  videoIdleTimer: NodeJS.Timeout | null;
  /** When the visuals' encoder last gave up (performance.now()), or null. */
  videoFailedAt: number | null;
}

export class RoomStream extends EventEmitter<RoomStreamEvents> {
  readonly room: Room;
  readonly #opts: RoomStreamOptions;
  readonly #log: Logger;
  readonly #idleStopMs: number;
  #starting: Promise<Running> | null = null;
  #running: Running | null = null;
  /** Bumped by every stop: a start that finishes under an older generation is torn down. */
  #generation = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  #statePosted = false;
  #closed = false;
  readonly #disposers: (() => void)[] = [];

  constructor(opts: RoomStreamOptions) {
    super();
    this.room = opts.room;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: opts.room.id, component: 'room-stream' });
    this.#idleStopMs = opts.idleStopMs ?? DEFAULT_IDLE_STOP_MS;
    const onUpdate = () => this.#scheduleState();
    opts.room.on('update', onUpdate);
    this.#disposers.push(() => opts.room.off('update', onUpdate));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the mixer is running now. */
  get live(): boolean {
    return this.#running !== null;
  }

  /** Members with a transport on the SFU (connected or connecting). */
  get listening(): number {
    return this.#running && !this.#running.sfuRoom.closed ? this.#running.sfuRoom.memberCount : 0;
  }

  /** One signaling message from a member (its socket session); starts the stream on a join. */
  async signal(memberId: string, message: unknown): Promise<ServerSignal> {
    if (this.#closed) throw new StreamUnavailableError('the room is closing');
    // Checked against the SFU's own schema first, so a malformed message is named as such (and starts nothing).
    const parsed = this.#opts.sfu.kind === 'mediasoup' ? parseSignal(mediasoupClientSignalSchema, message) : parseSignal(embeddedClientSignalSchema, message);
    // Only a join starts the mixer; anything else for a stream not running is out of order.
    if (!this.#running && parsed.type !== 'join') throw new SignalError('out-of-order', 'the live stream is not running; join it first');
    const running = this.#running ?? (await this.#start());
    this.#cancelIdleStop();
    const wantsVideo = parsed.type === 'join' && parsed.video === true;
    let videoRefused: string | null = null;
    if (wantsVideo) {
      try {
        await this.#ensureVideo(running);
      } catch (err) {
        videoRefused = err instanceof VideoUnavailableError ? err.message : 'the video could not start; audio only';
        if (!(err instanceof VideoUnavailableError)) this.#log.error({ err }, 'the visuals’ video could not start');
      }
    }
    if (parsed.type === 'join') running.videoViewers.delete(memberId);
    const reply = await running.sfuRoom.signal(memberId, message);
    if ((reply.type === 'offer' || reply.type === 'transport') && wantsVideo) {
      if (reply.video) {
        running.videoViewers.add(memberId);
        this.#cancelVideoIdleStop(running);
      } else if (videoRefused) {
        reply.videoRefused = videoRefused;
      }
    }
    this.#checkVideoIdle(running);
    this.#checkIdle();
    return reply;
  }

  /** Whether the room can publish video at all, and why not. */
  get videoUnavailable(): string | null {
    const video = this.#opts.video;
    if (!video) return 'this server does not publish the visuals as video';
    return 'unavailable' in video.encoder ? video.encoder.unavailable : null;
  }

  async videoStatus(): Promise<RoomVideoStatus> {
    const running = this.#running;
    const video = running?.video ?? null;
    return {
      live: video !== null,
      viewers: running?.videoViewers.size ?? 0,
      unavailable: this.videoUnavailable,
      output: video && !video.output.closed ? await video.output.stats() : null,
    };
  }

  #ensureVideo(running: Running): Promise<RunningVideo> {
    const unavailable = this.videoUnavailable;
    if (unavailable) return Promise.reject(new VideoUnavailableError(`${unavailable}; audio only`));
    if (running.videoFailedAt !== null && performance.now() - running.videoFailedAt < VIDEO_RETRY_AFTER_FAILURE_MS) {
      return Promise.reject(new VideoUnavailableError('the video encoder kept failing; audio only for now'));
    }
    if (running.video) return Promise.resolve(running.video);
    running.videoStarting ??= this.#startVideo(running).then(
      (video) => {
        running.videoStarting = null;
        if (this.#running !== running) {
          void this.#stopVideo(video);
          throw new VideoUnavailableError('the stream stopped while its video started');
        }
        if (video.output.closed) throw new VideoUnavailableError('the video encoder kept failing; audio only for now');
        running.video = video;
        return video;
      },
      (err: unknown) => {
        running.videoStarting = null;
        throw err;
      },
    );
    return running.videoStarting;
  }

  async #startVideo(running: Running): Promise<RunningVideo> {
    const video = this.#opts.video!;
    if (!('ffmpeg' in video.encoder)) throw new VideoUnavailableError('no video encoder');
    const started = performance.now();
    let artwork: EngineArtwork[];
    try {
      artwork = await video.artwork(this.room.release.id);
    } catch (err) {
      this.#log.warn({ err }, 'the release’s visual pack could not be read: no video');
      throw new VideoUnavailableError('the release has no visual pack to draw; audio only');
    }
    if (artwork.length === 0) throw new VideoUnavailableError('the release has no artwork to draw; audio only');
    const producer = await running.sfuRoom.produceVisuals();
    try {
      const state = this.room.state();
      const output = await VisualOutput.create({
        ...video.settings,
        ffmpeg: video.encoder.ffmpeg,
        sink: producer.rtpSink,
        ssrc: producer.ssrc,
        payloadType: producer.payloadType,
        artwork,
        release: { bpm: this.room.release.bpm, excerpts: this.room.release.excerpts },
        room: { mix: state.mix, arrangement: state.arrangement, visual: state.visual },
        energy: running.energy,
        log: this.#log,
        ...(video.restart ? { restart: video.restart } : {}),
      });
      output.on('error', (err) => this.#log.warn({ err }, 'the visuals’ video'));
      const textures = new TextureFeed(this.room.release.id, video.textures ?? null, (art) => output.addTexture(art), this.#log);
      textures.sync(state.visual.params);
      // An output that closes by itself has given up (its encoder kept failing): the video stops for
      // everyone, its producer (and so the viewers' video tracks) with it; audio goes on, and video
      // joins are answered audio only for VIDEO_RETRY_AFTER_FAILURE_MS.
      output.once('close', () => {
        if (!output.failure) return;
        running.videoFailedAt = performance.now();
        if (running.video?.output === output) running.video = null;
        const viewers = [...running.videoViewers];
        running.videoViewers.clear();
        this.#cancelVideoIdleStop(running);
        producer.close();
        this.#log.error({ retryAfterMs: VIDEO_RETRY_AFTER_FAILURE_MS }, 'the visuals’ video stopped: its encoder kept failing; audio goes on');
        if (viewers.length > 0) this.emit('videoStopped', viewers, 'the server’s video stopped (its encoder kept failing); the visuals are drawn here again');
      });
      this.#log.info({ ms: Math.round(performance.now() - started), ...video.settings }, 'the visuals’ video started');
      return { producer, output, textures };
    } catch (err) {
      producer.close();
      throw err;
    }
  }

  async #stopVideo(video: RunningVideo): Promise<void> {
    await video.output.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the visual output'));
    video.producer.close();
  }

  #checkVideoIdle(running: Running): void {
    if (!running.video || running.videoViewers.size > 0 || running.videoIdleTimer) return;
    running.videoIdleTimer = setTimeout(() => {
      running.videoIdleTimer = null;
      const video = running.video;
      if (!video || running.videoViewers.size > 0) return;
      running.video = null;
      this.#log.info('no video viewers left: the visuals’ encoder stops');
      void this.#stopVideo(video);
    }, this.#opts.video?.idleStopMs ?? DEFAULT_VIDEO_IDLE_STOP_MS);
  }

  #cancelVideoIdleStop(running: Running): void {
    if (running.videoIdleTimer) clearTimeout(running.videoIdleTimer);
    running.videoIdleTimer = null;
  }

  /** The member's socket went away. */
  leave(memberId: string): void {
    this.#running?.sfuRoom.leave(memberId);
  }

  async stats(): Promise<{ live: boolean; listeners: number; output: Awaited<ReturnType<LiveOutput['stats']>> | null; video: RoomVideoStatus }> {
    const running = this.#running;
    return {
      live: running !== null,
      listeners: this.listening,
      output: running && !running.output.closed ? await running.output.stats() : null,
      video: await this.videoStatus(),
    };
  }

  /** Stops everything; the stream cannot start again. */
  async close(reason: RoomStreamEndReason = 'room-closed'): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of this.#disposers.splice(0)) d();
    await this.#stop(reason);
  }

  #start(): Promise<Running> {
    if (!this.#starting) {
      const generation = this.#generation;
      this.#starting = this.#startOnce().then(
        async (running) => {
          // Stopped (or closed) while it started: this one is nobody's.
          if (generation !== this.#generation || this.#closed) {
            await this.#teardown(running);
            throw new StreamUnavailableError('the stream was stopped while it started; join again');
          }
          this.#running = running;
          return running;
        },
        (err: unknown) => {
          if (generation === this.#generation) this.#starting = null;
          if (err instanceof StreamUnavailableError) throw err;
          this.#log.error({ err }, 'the live stream could not start');
          throw new StreamUnavailableError('the live stream could not start; try again');
        },
      );
    }
    return this.#starting;
  }

  async #startOnce(): Promise<Running> {
    const { room, sfu, stems: cache } = this.#opts;
    const release = room.release;
    const started = performance.now();
    // The stems load while the SFU room and its producer are made.
    const stemsLoading = cache.acquire(release.id, release.stems.map((s) => s.id));
    let stemsMs = 0;
    const stemsTimed = stemsLoading.then((stems) => {
      stemsMs = performance.now() - started;
      return stems;
    });
    stemsTimed.catch(() => {});
    let sfuRoom: SfuRoom | null = null;
    let producer: MixProducer | null = null;
    try {
      if (this.#closed) throw new StreamUnavailableError('the room closed');
      sfuRoom = await sfu.createRoom(room.id);
      producer = await sfuRoom.produceMix();
      const stems = await stemsTimed;
      const state = room.state();
      const energy = new SharedArrayBuffer(4);
      const init: MixerSourceInit = {
        sampleRate: STEM_SAMPLE_RATE,
        stems,
        release: { bpm: release.bpm, excerpts: release.excerpts },
        room: { mix: state.mix, arrangement: state.arrangement },
        energy,
      };
      const outputStarted = performance.now();
      const output = await LiveOutput.create({
        source: { kind: 'module', module: MIXER_SOURCE_MODULE, init },
        sink: producer.rtpSink,
        ssrc: producer.ssrc,
        payloadType: producer.payloadType,
        log: this.#log,
      });
      if (this.#closed) {
        await output.close();
        throw new StreamUnavailableError('the room closed');
      }
      const running: Running = { sfuRoom, producer, output, releaseId: release.id, energy, video: null, videoStarting: null, videoViewers: new Set(), videoIdleTimer: null, videoFailedAt: null };
      output.on('error', (err) => {
        this.#log.error({ err }, 'the live output failed; stopping the stream');
        void this.#stop('failed');
      });
      sfuRoom.on('memberleft', (memberId) => {
        if (running.videoViewers.delete(memberId)) this.#checkVideoIdle(running);
        this.emit('listeners', this.listening);
        this.#checkIdle();
      });
      sfuRoom.on('memberconnected', () => this.emit('listeners', this.listening));
      sfuRoom.once('closed', () => {
        // The SFU closed the room under us (its worker died): members must join again.
        if (this.#running === running) void this.#stop('sfu-lost');
      });
      const now = performance.now();
      this.#log.info({ ms: Math.round(now - started), stemsMs: Math.round(stemsMs), mixerStartMs: Math.round(now - outputStarted), adapter: sfu.kind }, 'live stream started');
      return running;
    } catch (err) {
      producer?.close();
      sfuRoom?.close();
      // Whether the stems loaded or not, this start's hold on them ends.
      await stemsLoading.catch(() => {});
      cache.release(release.id);
      throw err;
    }
  }

  #scheduleState(): void {
    if (this.#statePosted || !this.#running) return;
    this.#statePosted = true;
    // One post per turn: a transaction with follow-ups (the server's stamps) posts the final state once.
    queueMicrotask(() => {
      this.#statePosted = false;
      const running = this.#running;
      if (!running || running.output.closed || this.room.closed) return;
      const state = this.room.state();
      const message: MixerSourceStateMessage = { type: 'room-state', room: { mix: state.mix, arrangement: state.arrangement } };
      running.output.control(message);
      running.video?.output.update({ mix: state.mix, arrangement: state.arrangement, visual: state.visual });
      running.video?.textures.sync(state.visual.params);
    });
  }

  #checkIdle(): void {
    if (!this.#running || this.#closed || this.listening > 0 || this.#idleTimer) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.listening === 0) void this.#stop('idle');
    }, this.#idleStopMs);
  }

  #cancelIdleStop(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  async #stop(reason: RoomStreamEndReason): Promise<void> {
    this.#cancelIdleStop();
    // A start in progress sees the new generation and tears itself down.
    this.#generation++;
    this.#starting = null;
    const running = this.#running;
    this.#running = null;
    if (!running) return;
    const hadListeners = !running.sfuRoom.closed && running.sfuRoom.memberCount > 0;
    await this.#teardown(running);
    this.#log.info({ reason }, 'live stream stopped');
    if (hadListeners || reason !== 'idle') this.emit('ended', reason);
  }

  async #teardown(running: Running): Promise<void> {
    this.#cancelVideoIdleStop(running);
    const video = running.video;
    running.video = null;
    if (video) await this.#stopVideo(video);
    // A video start in flight sees that the stream is no longer running and stops itself.
    await running.output.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the live output'));
    running.producer.close();
    running.sfuRoom.close();
    this.#opts.stems.release(running.releaseId);
  }
}

/** The room cannot publish its visuals as video now; the join gets audio only, with this reason. */
export class VideoUnavailableError extends Error {
  override readonly name = 'VideoUnavailableError';
}

/** The stream cannot serve the request now (it failed to start, the room is closing). */
export class StreamUnavailableError extends Error {
  override readonly name = 'StreamUnavailableError';
}
