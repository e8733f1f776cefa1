// A room's broadcast: its mix (and its visuals) encoded ONCE, whatever the
// audience, as H.264 + AAC in fragmented MP4 (CMAF), for HLS and RTMP.
//
// A worker thread runs the same mixer source the live stream runs (PCM on the
// wall clock) and, when the release has artwork, the same visual drawer the
// server's WebRTC video uses, and pipes both into one native ffmpeg: raw PCM on
// its stdin, yuv420p frames on fd 3. ffmpeg writes two fragmented-MP4 outputs:
// `video` (H.264 + AAC muxed: the visuals with the sound) on stdout and `audio`
// (AAC alone, for listeners who draw the visuals themselves or want none) on
// fd 4. The worker cuts each into the init segment and one chunk per fragment
// (media/live/cmaf.ts) and posts them here, each stamped with the wall clock of
// its first sample: both inputs are written on the wall clock from the
// encoder's start, sample- and frame-exact (a late tick writes what is due, a
// frame not drawn in time is the previous one again), so media time is wall
// time and the audience's delay can be told.
//
// An ffmpeg that exits, stops reading, or writes something unreadable is
// restarted after a backoff that doubles (1 s, 2 s, 4 s … 30 s); the restart
// is a new init segment (a discontinuity to the player). After maxFailures in a
// row the encoder gives up: 'failed', then 'close'.
import { EventEmitter } from 'node:events';
import { execFile } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { RoomRelease } from '../../shared/room-doc.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import type { CmafChunk, CmafInit } from './cmaf.ts';
import type { PcmSourceSpec, WorkerPcmSourceSpec } from './pcm-source.ts';
import type { VisualRoomState } from './room-visuals.ts';
import { DEFAULT_ENCODER_RESTART, type EncoderRestartPolicy } from './visual-output.ts';

export type BroadcastRenditionName = 'audio' | 'video';

export interface BroadcastSettings {
  width: number;
  height: number;
  fps: number;
  videoKbps: number;
  audioKbps: number;
  /** A keyframe this often: HLS segments start at one. */
  keyframeIntervalSec: number;
  /** ffmpeg cuts a fragment (an LL-HLS part) about this often. */
  partSec: number;
}

export const DEFAULT_BROADCAST: BroadcastSettings = { width: 640, height: 360, fps: 15, videoKbps: 800, audioKbps: 128, keyframeIntervalSec: 1, partSec: 0.5 };

/** A chunk as the encoder hands it out: a CMAF chunk with the wall-clock time of its first sample. */
export interface BroadcastChunk extends CmafChunk {
  wallClockMs: number;
}

export interface BroadcastEncoderOptions extends Partial<BroadcastSettings> {
  /** A native ffmpeg with libx264 and the aac encoder (see ffmpegCanBroadcast). */
  ffmpeg: string;
  /** The sound: the room's mixer module (as the live stream loads it), or a test signal. */
  source: PcmSourceSpec;
  /** The release's artwork: with none, the broadcast is audio only. */
  artwork: EngineArtwork[] | null;
  release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  room: VisualRoomState;
  /** The mixer's energy cell (MixerSourceInit.energy) for the visuals; without it, a steady 0.5. */
  energy?: SharedArrayBuffer;
  log?: Logger;
  restart?: Partial<EncoderRestartPolicy>;
}

export interface BroadcastStats {
  renditions: BroadcastRenditionName[];
  settings: BroadcastSettings;
  /** Encoders started (the first one and every restart). */
  encoders: number;
  encoderFailures: number;
  audioBlocksWritten: number;
  framesWritten: number;
  /** Frame slots written again as the previous frame (the drawing fell behind). */
  framesRepeated: number;
  drawMsMean: number;
  chunks: Record<BroadcastRenditionName, number>;
  /** Share of one core: the worker thread (mixer + drawing) and the ffmpeg processes (from /proc). */
  threadCpuFraction: number;
  encoderCpuFraction: number;
  elapsedMs: number;
}

export type BroadcastEncoderEvents = {
  /** A new encoder's init segment for a rendition (the first, or after a restart: a discontinuity). */
  init: [rendition: BroadcastRenditionName, init: CmafInit, wallClockMs: number];
  chunk: [rendition: BroadcastRenditionName, chunk: BroadcastChunk];
  /** The encoder failed and is restarting (the message says why and when). */
  error: [err: Error];
  /** It failed too often in a row and gave up; 'close' follows. */
  failed: [err: Error];
  close: [];
};

/** @internal */
export interface BroadcastWorkerData {
  ffmpeg: string;
  settings: BroadcastSettings;
  source: WorkerPcmSourceSpec;
  artwork: EngineArtwork[] | null;
  release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  room: VisualRoomState;
  energy: SharedArrayBuffer | null;
  restart: EncoderRestartPolicy;
}

/** @internal */
export type ToBroadcastWorker =
  | { type: 'room-state'; room: VisualRoomState }
  | { type: 'texture'; artwork: EngineArtwork }
  | { type: 'source-control'; message: unknown }
  | { type: 'stats'; id: number }
  | { type: 'kill-encoder' }
  | { type: 'stop' };

/** @internal */
export type FromBroadcastWorker =
  | { type: 'ready'; renditions: BroadcastRenditionName[] }
  | { type: 'start-failed'; message: string }
  | { type: 'init'; rendition: BroadcastRenditionName; init: CmafInit; wallClockMs: number }
  | { type: 'chunk'; rendition: BroadcastRenditionName; chunk: BroadcastChunk }
  | { type: 'error'; message: string }
  | { type: 'failed'; message: string }
  | { type: 'stats'; id: number; stats: BroadcastStats }
  | { type: 'stopped' };

const STOP_TIMEOUT_MS = 3000;

export class BroadcastEncoder extends EventEmitter<BroadcastEncoderEvents> {
  readonly renditions: readonly BroadcastRenditionName[];
  readonly #worker: Worker;
  readonly #log: Logger | undefined;
  readonly #pendingStats = new Map<number, (stats: BroadcastStats) => void>();
  #nextId = 1;
  #closing: Promise<void> | null = null;
  /** Why it gave up, once it has. */
  failure: string | null = null;

  private constructor(worker: Worker, renditions: BroadcastRenditionName[], log: Logger | undefined) {
    super();
    this.#worker = worker;
    this.renditions = renditions;
    this.#log = log;
    worker.on('message', (m: FromBroadcastWorker) => this.#onMessage(m));
    worker.on('error', (err) => {
      this.#log?.error({ err }, 'the broadcast encoder thread failed');
      void this.#giveUp(err.message);
    });
    worker.on('exit', (code) => {
      if (!this.#closing) void this.#giveUp(`the broadcast encoder thread exited (${code})`);
    });
  }

  /** Starts the thread and the first ffmpeg; resolves once the mixer is loaded. */
  static async create(opts: BroadcastEncoderOptions): Promise<BroadcastEncoder> {
    const { transferList = [], ...source } = opts.source.kind === 'module' ? opts.source : { ...opts.source, transferList: [] };
    const settings: BroadcastSettings = {
      width: opts.width ?? DEFAULT_BROADCAST.width,
      height: opts.height ?? DEFAULT_BROADCAST.height,
      fps: opts.fps ?? DEFAULT_BROADCAST.fps,
      videoKbps: opts.videoKbps ?? DEFAULT_BROADCAST.videoKbps,
      audioKbps: opts.audioKbps ?? DEFAULT_BROADCAST.audioKbps,
      keyframeIntervalSec: opts.keyframeIntervalSec ?? DEFAULT_BROADCAST.keyframeIntervalSec,
      partSec: opts.partSec ?? DEFAULT_BROADCAST.partSec,
    };
    if (settings.width % 2 || settings.height % 2 || settings.width < 16 || settings.height < 16) throw new RangeError('the broadcast size must be even and at least 16x16');
    if (!(settings.fps >= 1 && settings.fps <= 60)) throw new RangeError('the broadcast frame rate must be 1–60');
    if (!(settings.partSec >= 0.1 && settings.partSec <= 2)) throw new RangeError('the broadcast part duration must be 0.1–2 s');
    const data: BroadcastWorkerData = {
      ffmpeg: opts.ffmpeg,
      settings,
      source: source as WorkerPcmSourceSpec,
      artwork: opts.artwork && opts.artwork.length > 0 ? opts.artwork : null,
      release: opts.release,
      room: opts.room,
      energy: opts.energy ?? null,
      restart: { ...DEFAULT_ENCODER_RESTART, ...opts.restart },
    };
    const worker = new Worker(new URL('./broadcast-encoder.worker.ts', import.meta.url), { workerData: data, transferList: transferList as never, name: 'broadcast-encoder' });
    const renditions = await new Promise<BroadcastRenditionName[]>((resolve, reject) => {
      const onMessage = (m: FromBroadcastWorker) => {
        if (m.type === 'ready') done(() => resolve(m.renditions));
        else if (m.type === 'start-failed') done(() => reject(new Error(`the broadcast could not start: ${m.message}`)));
      };
      const onError = (err: Error) => done(() => reject(err));
      const onExit = (code: number) => done(() => reject(new Error(`the broadcast encoder thread exited (${code}) before it started`)));
      const done = (then: () => void) => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('exit', onExit);
        then();
      };
      worker.on('message', onMessage);
      worker.once('error', onError);
      worker.once('exit', onExit);
    }).catch(async (err: unknown) => {
      await worker.terminate();
      throw err;
    });
    return new BroadcastEncoder(worker, renditions, opts.log);
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** The room's checked state changed (the visuals follow it; the mixer gets `sourceControl`). */
  update(room: VisualRoomState): void {
    if (!this.closed) this.#worker.postMessage({ type: 'room-state', room } satisfies ToBroadcastWorker);
  }

  /** Hands the drawer a texture the visual model generated (see RoomVisualDrawer.addTexture). */
  addTexture(artwork: EngineArtwork): void {
    if (!this.closed) this.#worker.postMessage({ type: 'texture', artwork } satisfies ToBroadcastWorker);
  }

  /** A control message for the sound's source (the mixer's room-state message, a test signal). */
  sourceControl(message: unknown): void {
    if (!this.closed) this.#worker.postMessage({ type: 'source-control', message } satisfies ToBroadcastWorker);
  }

  /** For fault tests: kills the running ffmpeg as if it had crashed. */
  killEncoderForTest(): void {
    if (!this.closed) this.#worker.postMessage({ type: 'kill-encoder' } satisfies ToBroadcastWorker);
  }

  stats(): Promise<BroadcastStats> {
    if (this.closed) return Promise.reject(new Error('the broadcast encoder is closed'));
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pendingStats.set(id, resolve);
      this.#worker.postMessage({ type: 'stats', id } satisfies ToBroadcastWorker);
    });
  }

  /** Stops ffmpeg and the thread; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, STOP_TIMEOUT_MS);
        this.#onStopped = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#worker.postMessage({ type: 'stop' } satisfies ToBroadcastWorker);
      await stopped;
      await this.#worker.terminate();
      this.#pendingStats.clear();
      this.emit('close');
    })();
    return this.#closing;
  }

  #onStopped: (() => void) | null = null;

  async #giveUp(why: string): Promise<void> {
    if (this.#closing) return;
    this.failure = why;
    const err = new Error(why);
    this.#log?.error({ err }, 'the broadcast encoder gave up');
    this.emit('failed', err);
    await this.close();
  }

  #onMessage(m: FromBroadcastWorker): void {
    switch (m.type) {
      case 'init':
        this.emit('init', m.rendition, { ...m.init, data: Buffer.from(m.init.data.buffer, m.init.data.byteOffset, m.init.data.byteLength) }, m.wallClockMs);
        break;
      case 'chunk':
        this.emit('chunk', m.rendition, { ...m.chunk, data: Buffer.from(m.chunk.data.buffer, m.chunk.data.byteOffset, m.chunk.data.byteLength) });
        break;
      case 'error': {
        const err = new Error(m.message);
        this.#log?.warn({ err }, 'the broadcast encoder');
        if (this.listenerCount('error') > 0) this.emit('error', err);
        break;
      }
      case 'failed':
        void this.#giveUp(m.message);
        break;
      case 'stats':
        this.#pendingStats.get(m.id)?.(m.stats);
        this.#pendingStats.delete(m.id);
        break;
      case 'stopped':
        this.#onStopped?.();
        break;
      case 'ready':
      case 'start-failed':
        break;
    }
  }
}

const broadcastCapable = new Map<string, Promise<string | null>>();

/** Why `ffmpeg` cannot encode a broadcast (no libx264 or no aac encoder), or null when it can (cached per binary). */
export function ffmpegCannotBroadcast(ffmpeg: string): Promise<string | null> {
  let known = broadcastCapable.get(ffmpeg);
  if (!known) {
    known = new Promise((resolve) => {
      execFile(ffmpeg, ['-hide_banner', '-encoders'], { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout) => {
        if (err) resolve(`${ffmpeg} does not run (${err.message})`);
        else if (!/^\s*V\S*\s+libx264\s/m.test(stdout)) resolve(`${ffmpeg} has no libx264 encoder`);
        else if (!/^\s*A\S*\s+aac\s/m.test(stdout)) resolve(`${ffmpeg} has no aac encoder`);
        else resolve(null);
      });
    });
    broadcastCapable.set(ffmpeg, known);
  }
  return known;
}
