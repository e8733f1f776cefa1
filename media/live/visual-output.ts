// A room's visuals as live video: a worker thread draws the room's visuals with
// the shared VisualEngine on the room's clock (the same frame inputs the
// browser uses: the room's visual params and prompt time, the transport
// position, the mix's energy), pipes the frames to a native ffmpeg (libvpx VP8,
// realtime), reads the VP8 frames back (IVF), packetizes them (RFC 7741) and
// sends them into the SFU's visuals producer. One encoder per room, whatever
// the number of viewers. Keyframe requests (PLI/FIR) come back through the
// sink; the encoder is restarted for one (its first frame is a keyframe), at
// most once per KEYFRAME_RESTART_MIN_MS, and a keyframe comes every
// keyframeIntervalSec anyway.
//
// An encoder that dies (or puts out garbage) is restarted after a backoff that
// doubles with each failure in a row (1 s, 2 s, 4 s … 30 s; the run ends once
// the encoders have gone 30 s without failing); after 5 failures in a row the
// output gives up: it logs why, emits 'error', closes (`failure` says why) and
// emits 'close'. Whoever runs it stops offering the video then.
import { EventEmitter } from 'node:events';
import { execFile } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { RoomRelease } from '../../shared/room-doc.ts';
import type { VisualRoomState } from './room-visuals.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import { rtpSinkTransferList, type RtpSink } from './rtp-sink.ts';

export type { VisualRoomState };

export interface VisualOutputSettings {
  width: number;
  height: number;
  fps: number;
  /** VP8 target bitrate. */
  bitrateKbps: number;
  /** A keyframe at least this often (a bound for viewers whose requests get lost). */
  keyframeIntervalSec: number;
}

export const DEFAULT_VISUAL_OUTPUT: VisualOutputSettings = { width: 640, height: 360, fps: 15, bitrateKbps: 600, keyframeIntervalSec: 2 };

/** How a failing encoder (ffmpeg exits, or its output cannot be read) is restarted. */
export interface EncoderRestartPolicy {
  /** The wait before the first restart of a run of failures; doubled for each further one. */
  initialMs: number;
  /** The longest wait. */
  maxMs: number;
  /** This many failures in a row and the output gives up (closes with `failure` set). */
  maxFailures: number;
  /** Encoders that ran this long since the last restart after a failure end the run: the next failure counts as the first. */
  healthyMs: number;
}

export const DEFAULT_ENCODER_RESTART: EncoderRestartPolicy = { initialMs: 1000, maxMs: 30_000, maxFailures: 5, healthyMs: 30_000 };

export interface VisualOutputOptions extends Partial<VisualOutputSettings> {
  /** A native ffmpeg with libvpx (see `ffmpegHasLibvpx`). */
  ffmpeg: string;
  sink: RtpSink;
  ssrc: number;
  payloadType: number;
  artwork: EngineArtwork[];
  release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  room: VisualRoomState;
  /** The mixer's energy cell (MixerSourceInit.energy); without it the energy is a steady 0.5. */
  energy?: SharedArrayBuffer;
  log?: Logger;
  /** Overrides of DEFAULT_ENCODER_RESTART (tests use short waits). */
  restart?: Partial<EncoderRestartPolicy>;
}

export interface VisualOutputStats {
  width: number;
  height: number;
  fps: number;
  framesDrawn: number;
  /** Frame slots not drawn: the loop fell behind, or the encoder had not taken the previous frames yet. */
  framesSkipped: number;
  framesEncoded: number;
  keyframes: number;
  keyframeRequests: number;
  encoderRestarts: number;
  /** Encoder failures (exits, unreadable output), each followed by a restart after a backoff or, the last, by giving up. */
  encoderFailures: number;
  packetsSent: number;
  bytesSent: number;
  drawMsMean: number;
  /** CPU time of the worker thread (drawing, packetizing) since it started, as a share of one core. */
  threadCpuFraction: number;
  /** CPU time of the ffmpeg encoder processes since the start, as a share of one core (from /proc). */
  encoderCpuFraction: number;
  /** The raw figures behind the two fractions, for a window between two calls (ms). */
  threadCpuMs: number;
  encoderCpuMs: number;
  elapsedMs: number;
  /** From the start to the first keyframe sent (ms). */
  firstKeyframeMs: number | null;
  /** From the last keyframe request to the keyframe that answered it (ms). */
  lastKeyframeResponseMs: number | null;
  /** Whether the last frame drawn showed a fade between two prompts' params. */
  fading: boolean;
}

/** @internal */
export interface VisualOutputWorkerData extends VisualOutputSettings {
  ffmpeg: string;
  sink: RtpSink;
  ssrc: number;
  payloadType: number;
  artwork: EngineArtwork[];
  release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  room: VisualRoomState;
  energy: SharedArrayBuffer | null;
  restart: EncoderRestartPolicy;
}

/** @internal */
export type ToVisualWorker = { type: 'room-state'; room: VisualRoomState } | { type: 'texture'; artwork: EngineArtwork } | { type: 'keyframe' } | { type: 'stats'; id: number } | { type: 'stop' };

/** @internal */
export type FromVisualWorker =
  | { type: 'ready' }
  | { type: 'error'; message: string }
  /** The encoder failed too often; the worker stopped drawing and waits for 'stop'. */
  | { type: 'failed'; message: string }
  | { type: 'stats'; id: number; stats: VisualOutputStats }
  | { type: 'stopped' };

export type VisualOutputEvents = { error: [err: Error]; close: [] };

const libvpxByBinary = new Map<string, Promise<boolean>>();

/** Whether `ffmpeg` runs and has the libvpx VP8 encoder (cached per binary). */
export function ffmpegHasLibvpx(ffmpeg: string): Promise<boolean> {
  let known = libvpxByBinary.get(ffmpeg);
  if (!known) {
    known = new Promise((resolve) => {
      execFile(ffmpeg, ['-hide_banner', '-encoders'], { timeout: 10_000, maxBuffer: 4 * 1024 * 1024 }, (err, stdout) => resolve(!err && /^\s*V\S*\s+libvpx\s/m.test(stdout)));
    });
    libvpxByBinary.set(ffmpeg, known);
  }
  return known;
}

export class VisualOutput extends EventEmitter<VisualOutputEvents> {
  readonly settings: VisualOutputSettings;
  readonly #worker: Worker;
  readonly #log: Logger | undefined;
  readonly #pending = new Map<number, (s: VisualOutputStats) => void>();
  #nextId = 1;
  #closing: Promise<void> | null = null;
  #failure: Error | null = null;
  #onStopped: (() => void) | null = null;

  private constructor(worker: Worker, settings: VisualOutputSettings, log: Logger | undefined) {
    super();
    this.#worker = worker;
    this.settings = settings;
    this.#log = log;
  }

  static async create(options: VisualOutputOptions): Promise<VisualOutput> {
    const settings: VisualOutputSettings = {
      width: options.width ?? DEFAULT_VISUAL_OUTPUT.width,
      height: options.height ?? DEFAULT_VISUAL_OUTPUT.height,
      fps: options.fps ?? DEFAULT_VISUAL_OUTPUT.fps,
      bitrateKbps: options.bitrateKbps ?? DEFAULT_VISUAL_OUTPUT.bitrateKbps,
      keyframeIntervalSec: options.keyframeIntervalSec ?? DEFAULT_VISUAL_OUTPUT.keyframeIntervalSec,
    };
    if (settings.width % 2 || settings.height % 2 || settings.width < 16 || settings.height < 16) throw new RangeError('the video needs even sizes of at least 16');
    if (!(settings.fps >= 1 && settings.fps <= 60)) throw new RangeError('the video needs 1–60 fps');
    if (options.artwork.length === 0) throw new RangeError('the visuals need at least one artwork');
    const restart: EncoderRestartPolicy = { ...DEFAULT_ENCODER_RESTART, ...options.restart };
    if (!(restart.initialMs >= 0 && restart.maxMs >= restart.initialMs && restart.maxFailures >= 1 && restart.healthyMs >= 0)) throw new RangeError('bad encoder restart policy');
    const workerData: VisualOutputWorkerData = {
      ...settings,
      ffmpeg: options.ffmpeg,
      sink: options.sink,
      ssrc: options.ssrc,
      payloadType: options.payloadType,
      artwork: options.artwork,
      release: options.release,
      room: options.room,
      energy: options.energy ?? null,
      restart,
    };
    const worker = new Worker(new URL('./visual-output.worker.ts', import.meta.url), {
      workerData,
      transferList: rtpSinkTransferList(options.sink) as never,
      name: 'visual-output',
    });
    const output = new VisualOutput(worker, settings, options.log);
    try {
      await output.#start();
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    return output;
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Why the output closed by itself (its encoder kept failing, its worker died), or null. */
  get failure(): Error | null {
    return this.#failure;
  }

  #start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = this.#worker;
      const onExit = (code: number) => reject(new Error(`visual-output worker exited (${code}) before it started`));
      worker.once('exit', onExit);
      worker.once('error', reject);
      worker.on('message', (message: FromVisualWorker) => {
        switch (message.type) {
          case 'ready':
            worker.off('exit', onExit);
            worker.off('error', reject);
            worker.on('error', (err) => this.#fail(err));
            worker.on('exit', (code) => {
              if (!this.#closing) this.#fail(new Error(`visual-output worker exited unexpectedly (${code})`));
            });
            resolve();
            break;
          case 'error': {
            const err = new Error(message.message);
            this.#log?.warn({ err }, 'visual output');
            if (this.listenerCount('error')) this.emit('error', err);
            break;
          }
          case 'failed':
            this.#fail(new Error(message.message));
            break;
          case 'stats':
            this.#pending.get(message.id)?.(message.stats);
            this.#pending.delete(message.id);
            break;
          case 'stopped':
            this.#onStopped?.();
            break;
        }
      });
    });
  }

  /** The room's checked state changed (visual params, transport). */
  update(room: VisualRoomState): void {
    if (this.closed) return;
    this.#worker.postMessage({ type: 'room-state', room } satisfies ToVisualWorker);
  }

  /** Asks for a keyframe now (as a viewer's PLI does). */
  requestKeyframe(): void {
    if (this.closed) return;
    this.#worker.postMessage({ type: 'keyframe' } satisfies ToVisualWorker);
  }

  /** Hands the drawer a texture the visual model generated (see RoomVisualDrawer.addTexture). */
  addTexture(artwork: EngineArtwork): void {
    if (this.closed) return;
    this.#worker.postMessage({ type: 'texture', artwork } satisfies ToVisualWorker);
  }

  stats(): Promise<VisualOutputStats> {
    if (this.closed) return Promise.reject(new Error('the visual output is closed'));
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pending.set(id, resolve);
      this.#worker.postMessage({ type: 'stats', id } satisfies ToVisualWorker);
    });
  }

  /** Stops the loop and the encoder and ends the worker; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const stopped = new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 2000);
        this.#onStopped = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      try {
        this.#worker.postMessage({ type: 'stop' } satisfies ToVisualWorker);
        await stopped;
      } finally {
        await this.#worker.terminate();
        this.#pending.clear();
        this.emit('close');
      }
    })();
    return this.#closing;
  }

  #fail(err: Error): void {
    if (this.#closing) return;
    this.#failure = err;
    this.#log?.error({ err }, 'visual output failed; the video stops');
    if (this.listenerCount('error')) this.emit('error', err);
    void this.close();
  }
}
