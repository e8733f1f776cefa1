// A room's live output: the real-time loop (PCM → Opus → RTP → the SFU's
// producer) running in a worker thread. The main thread only starts it, passes
// control messages to its source and stops it.
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { DEFAULT_BITRATE, DEFAULT_COMPLEXITY, type OpusComplexity } from './opus-encoder.ts';
import { OPUS_PAYLOAD_TYPE } from './rtp-packetizer.ts';
import { rtpSinkTransferList, type RtpSink } from './rtp-sink.ts';
import type { PcmSourceSpec, WorkerPcmSourceSpec } from './pcm-source.ts';

export type { PcmSourceSpec };

export interface LiveOutputOptions {
  source: PcmSourceSpec;
  /** The SFU producer's input (MixProducer.rtpSink). A MessagePort in it is transferred. */
  sink: RtpSink;
  ssrc: number;
  payloadType?: number;
  bitrate?: number;
  complexity?: OpusComplexity;
  log?: Logger;
  /** How long close() waits for the worker to stop its source before terminating it. */
  stopTimeoutMs?: number;
}

export interface LiveOutputStats {
  framesSent: number;
  /** Frames dropped because the loop was a whole frame or more behind its clock. */
  framesSkipped: number;
  /** How late each frame left against its slot on the clock (last minute). */
  latenessMs: { p50: number; p99: number; max: number };
  encodeMsMean: number;
  /** Share of one core the loop's thread was busy since it started (event-loop utilization). */
  cpuFraction: number;
  ssrc: number;
  payloadType: number;
  nextSequenceNumber: number;
  nextTimestamp: number;
}

export type LiveOutputEvents = {
  /** The loop reported a problem (a source that threw, a sink error). */
  error: [err: Error];
  close: [];
};

/** @internal What the worker is started with. */
export interface LiveOutputWorkerData {
  source: WorkerPcmSourceSpec;
  sink: RtpSink;
  ssrc: number;
  payloadType: number;
  bitrate: number;
  complexity: OpusComplexity;
}

/** @internal */
export type ToLiveOutputWorker = { type: 'control'; message: unknown } | { type: 'stats'; id: number } | { type: 'stop' };

/** @internal */
export type FromLiveOutputWorker =
  | { type: 'ready' }
  | { type: 'failed'; message: string }
  | { type: 'error'; message: string }
  | { type: 'stats'; id: number; stats: LiveOutputStats }
  | { type: 'stopped'; error?: string };

export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

const DEFAULT_STOP_TIMEOUT_MS = 2000;

export class LiveOutput extends EventEmitter<LiveOutputEvents> {
  readonly #worker: Worker;
  readonly #log: Logger | undefined;
  readonly #stopTimeoutMs: number;
  readonly #pendingStats = new Map<number, (stats: LiveOutputStats) => void>();
  #nextId = 1;
  #closed = false;
  #closing: Promise<void> | null = null;
  #onStopped: (() => void) | null = null;

  private constructor(worker: Worker, options: LiveOutputOptions) {
    super();
    this.#worker = worker;
    this.#log = options.log;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_STOP_TIMEOUT_MS;
  }

  /** Starts the loop; resolves once the source is loaded and the first frame is on its way. */
  static async create(options: LiveOutputOptions): Promise<LiveOutput> {
    const { transferList = [], ...source } = options.source.kind === 'module' ? options.source : { ...options.source, transferList: [] };
    const workerData: LiveOutputWorkerData = {
      source: source as LiveOutputWorkerData['source'],
      sink: options.sink,
      ssrc: options.ssrc,
      payloadType: options.payloadType ?? OPUS_PAYLOAD_TYPE,
      bitrate: options.bitrate ?? DEFAULT_BITRATE,
      complexity: options.complexity ?? DEFAULT_COMPLEXITY,
    };
    const worker = new Worker(new URL('./live-output.worker.ts', import.meta.url), {
      workerData,
      transferList: [...rtpSinkTransferList(options.sink), ...transferList] as never,
      name: 'live-output',
    });
    const output = new LiveOutput(worker, options);
    try {
      await output.#start();
    } catch (err) {
      await worker.terminate();
      throw err;
    }
    return output;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const worker = this.#worker;
      const onExit = (code: number) => reject(new Error(`live-output worker exited (${code}) before it started`));
      const onError = (err: Error) => reject(err);
      worker.once('exit', onExit);
      worker.once('error', onError);
      worker.on('message', (message: FromLiveOutputWorker) => {
        switch (message.type) {
          case 'ready':
            worker.off('exit', onExit);
            worker.off('error', onError);
            worker.on('error', (err) => this.#fail(err));
            worker.on('exit', (code) => {
              if (!this.#closing) this.#fail(new Error(`live-output worker exited unexpectedly (${code})`));
            });
            resolve();
            break;
          case 'failed':
            reject(new Error(`live output could not start: ${message.message}`));
            break;
          case 'error': {
            const err = new Error(message.message);
            this.#log?.warn({ err }, 'live output');
            if (this.listenerCount('error')) this.emit('error', err);
            break;
          }
          case 'stats':
            this.#pendingStats.get(message.id)?.(message.stats);
            this.#pendingStats.delete(message.id);
            break;
          case 'stopped':
            if (message.error) this.#log?.warn({ error: message.error }, 'live output: source did not close cleanly');
            this.#onStopped?.();
            break;
        }
      });
    });
  }

  /** Passes a message to the source (the mixer's state, a test signal). */
  control(message: unknown): void {
    this.#assertOpen();
    this.#worker.postMessage({ type: 'control', message } satisfies ToLiveOutputWorker);
  }

  stats(): Promise<LiveOutputStats> {
    this.#assertOpen();
    const id = this.#nextId++;
    return new Promise((resolve) => {
      this.#pendingStats.set(id, resolve);
      this.#worker.postMessage({ type: 'stats', id } satisfies ToLiveOutputWorker);
    });
  }

  /** Stops the loop and ends the worker; idempotent. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      const stopped = new Promise<void>((resolve) => {
        this.#onStopped = resolve;
        const timer = setTimeout(resolve, this.#stopTimeoutMs);
        this.#onStopped = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      try {
        this.#worker.postMessage({ type: 'stop' } satisfies ToLiveOutputWorker);
        await stopped;
      } finally {
        await this.#worker.terminate();
        this.#pendingStats.clear();
        this.emit('close');
      }
    })();
    return this.#closing;
  }

  #fail(err: Error): void {
    this.#log?.error({ err }, 'live output failed');
    if (this.listenerCount('error')) this.emit('error', err);
    void this.close();
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the live output is closed');
  }
}
