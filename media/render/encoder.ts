// The video encoder behind ffmpeg-pipe.ts (the one way every render kind's frames
// go to ffmpeg): raw RGBA or yuv420p frames (and optionally a stereo float mix) in,
// files out, through ffmpeg — a native ffmpeg process when the server has one, else
// @ffmpeg/core (ffmpeg compiled to WebAssembly) in a worker thread, several times
// slower but with nothing to install.
//
// Both take the same ffmpeg arguments. Input 0 is the raw video (RGBA, or yuv420p
// when the job says so: what the renderers draw, 2.7x fewer bytes), input 1
// the audio (f32le stereo) when there is one; `{out0}`, `{out1}`… in the
// arguments stand for the outputs, which are written as `<path>.<pid>-<random>.part` and
// renamed into place only when the encode has succeeded (a file that exists is
// whole). On failure or abort the `.part` files are removed.
//
// Frames are handed over without a copy per frame: the renderer asks for a
// frame buffer (`nextFrame`), draws into it and commits it. Both share a ring
// of frame slots (SharedArrayBuffer) with a worker thread: the native encoder's
// worker runs ffmpeg and writes each committed slot to its stdin (so the pipe
// keeps flowing while the renderer draws), the WebAssembly encoder's runs
// @ffmpeg/core, where an Emscripten device reads the slots on demand. A slot is
// reused once the worker has consumed it, so no more than the ring's few frames are ever in memory
// (900 frames of 720p RGBA would be 3.3 GB, 1.2 GB as yuv420p) and drawing overlaps encoding.
//
// One ffmpeg (and one worker) per job; for WebAssembly, one instance per job: a fresh worker that loads the core
// (about half a second), runs one ffmpeg and ends; abort terminates it.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CTRL, STATE, type NativeWorkerData, type NativeWorkerMessage, type WasmWorkerData, type WasmWorkerMessage } from './frame-ring.ts';

export class EncoderError extends Error {
  override readonly name = 'EncoderError';
}

/** Raw frame layouts the encoders take: packed RGBA, or planar yuv420p (Y, then U, then V). */
export type FramePixelFormat = 'rgba' | 'yuv420p';

/** Bytes of one raw frame in `format` (even sizes for yuv420p: chroma is half each way). */
export function frameBytes(format: FramePixelFormat, width: number, height: number): number {
  return format === 'rgba' ? width * height * 4 : width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
}

export interface EncodeJob {
  width: number;
  height: number;
  fps: number;
  /** Layout of the frames handed over (default 'rgba'). */
  pixelFormat?: FramePixelFormat;
  /** How many frames will be committed (the WebAssembly device ends its stream after them). */
  frames: number;
  /** Interleaved stereo PCM; becomes input 1. */
  audio?: { pcm: Float32Array; sampleRate: number };
  /** ffmpeg arguments after the inputs; `{outN}` is replaced by output N's path. */
  args: readonly string[];
  /** Final paths of the outputs, in `{outN}` order. */
  outputs: readonly string[];
  /** Folder for intermediate files (the native encoder's audio). */
  workDir: string;
  signal?: AbortSignal;
}

export interface EncodeSession {
  /** A buffer for the next frame (frameBytes(pixelFormat, width, height) bytes), free to draw into. */
  nextFrame(): Promise<Uint8ClampedArray>;
  /** Hands the frame last returned by nextFrame to the encoder. */
  commitFrame(): void;
  /** Ends the input, waits for the encoder and renames the outputs into place. */
  finish(): Promise<void>;
  /** Stops the encoder and removes partial outputs (safe to call after a failure). */
  abort(): Promise<void>;
}

export interface FrameEncoder {
  readonly kind: 'native' | 'wasm';
  start(job: EncodeJob): EncodeSession;
}

/** The native encoder when an ffmpeg path is given, else the WebAssembly one. */
export function pickEncoder(ffmpegPath: string | null): FrameEncoder {
  return ffmpegPath ? nativeEncoder(ffmpegPath) : wasmEncoder();
}

const PRE_ARGS = ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y'];

function videoInputArgs(job: EncodeJob, source: string): string[] {
  return ['-f', 'rawvideo', '-pix_fmt', job.pixelFormat ?? 'rgba', '-s', `${job.width}x${job.height}`, '-r', String(job.fps), '-i', source];
}

function audioInputArgs(job: EncodeJob, source: string): string[] {
  return job.audio ? ['-f', 'f32le', '-ar', String(job.audio.sampleRate), '-ac', '2', '-i', source] : [];
}

function substitute(args: readonly string[], outputs: readonly string[]): string[] {
  return args.map((a) => a.replace(/\{out(\d+)\}/g, (_m, n: string) => {
    const p = outputs[Number(n)];
    if (p === undefined) throw new EncoderError(`ffmpeg arguments name {out${n}}, which is not an output`);
    return p;
  }));
}

function validate(job: EncodeJob): void {
  if (!Number.isInteger(job.width) || !Number.isInteger(job.height) || job.width < 16 || job.height < 16 || job.width % 2 || job.height % 2) {
    throw new RangeError('width and height must be even integers ≥ 16');
  }
  if (!Number.isInteger(job.frames) || job.frames < 1) throw new RangeError('an encode needs at least one frame');
  if (job.outputs.length === 0) throw new RangeError('an encode needs an output');
  if (job.pixelFormat !== undefined && job.pixelFormat !== 'rgba' && job.pixelFormat !== 'yuv420p') throw new RangeError(`unknown pixel format ${String(job.pixelFormat)}`);
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ') || 'no message';
}

/**
 * Where an encode writes its outputs until they are whole: a name of its own per encode, so that
 * an encode run again (a renderer killed mid-job, its job taken up elsewhere) never shares a
 * file with an ffmpeg the first one left behind.
 */
function partsOf(outputs: readonly string[]): string[] {
  const tag = `${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  return outputs.map((o) => `${o}.${tag}.part`);
}

async function removeParts(parts: readonly string[]): Promise<void> {
  await Promise.all(parts.map((p) => fsp.rm(p, { force: true })));
}

async function renameParts(outputs: readonly string[], parts: readonly string[]): Promise<void> {
  for (const [i, o] of outputs.entries()) await fsp.rename(parts[i]!, o);
}

// ---------------------------------------------------------------------------
// Native: frames to ffmpeg's stdin, written by a worker thread from a shared ring.

/** Frame slots in the ring shared with the native encoder's worker. */
const NATIVE_SLOTS = 6;

export function nativeEncoder(ffmpegPath: string): FrameEncoder {
  return {
    kind: 'native',
    start(job) {
      validate(job);
      return new NativeSession(ffmpegPath, job);
    },
  };
}

class NativeSession implements EncodeSession {
  readonly #job: EncodeJob;
  readonly #parts: string[];
  readonly #ffmpeg: string;
  readonly #frameBytes: number;
  readonly #ring: SharedArrayBuffer;
  readonly #ctrlBuffer = new SharedArrayBuffer(4 * 4);
  readonly #ctrl = new Int32Array(this.#ctrlBuffer);
  #started: Promise<void> | null = null;
  #worker: Worker | null = null;
  #result: Promise<Extract<NativeWorkerMessage, { type: 'done' }>> | null = null;
  #pid: number | null = null;
  #failure: Error | null = null;
  #next = 0;
  #audioFile: string | null = null;
  #onAbort = () => this.#stop();

  constructor(ffmpeg: string, job: EncodeJob) {
    this.#ffmpeg = ffmpeg;
    this.#job = job;
    this.#parts = partsOf(job.outputs);
    this.#frameBytes = frameBytes(job.pixelFormat ?? 'rgba', job.width, job.height);
    this.#ring = new SharedArrayBuffer(this.#frameBytes * NATIVE_SLOTS);
  }

  async #start(): Promise<void> {
    const job = this.#job;
    job.signal?.throwIfAborted();
    if (job.audio) {
      await fsp.mkdir(job.workDir, { recursive: true });
      this.#audioFile = path.join(job.workDir, `mix-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2, 8)}.f32`);
      const { pcm } = job.audio;
      await fsp.writeFile(this.#audioFile, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    }
    const args = [
      ...PRE_ARGS,
      ...videoInputArgs(job, 'pipe:0'),
      ...(this.#audioFile ? audioInputArgs(job, this.#audioFile) : []),
      ...substitute(job.args, this.#parts),
    ];
    const data: NativeWorkerData = { ffmpeg: this.#ffmpeg, args, frameBytes: this.#frameBytes, slots: NATIVE_SLOTS, ring: this.#ring, ctrl: this.#ctrlBuffer };
    const worker = new Worker(new URL('./native-encoder-worker.ts', import.meta.url), { workerData: data });
    this.#worker = worker;
    worker.on('message', (m: NativeWorkerMessage) => {
      if (m.type === 'spawned') this.#pid = m.pid;
    });
    this.#result = new Promise((resolve) => {
      worker.on('message', (m: NativeWorkerMessage) => {
        if (m.type === 'done') resolve(m);
      });
      worker.once('error', (err) => resolve({ type: 'done', code: null, message: err.message, log: '' }));
      worker.once('exit', (code) => resolve({ type: 'done', code: null, message: `the encoder worker stopped (exit ${code})`, log: '' }));
    });
    // Whatever ends ffmpeg before finish() is a failure the next nextFrame reports.
    void this.#result.then((m) => {
      this.#failure ??= new EncoderError(`ffmpeg ${m.code === 0 ? 'ended early' : `failed (exit ${m.code})`}${m.message ? `: ${m.message}` : ''}: ${lastLines(m.log)}`);
    });
    job.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  /** Stops the feeding and kills ffmpeg (abort). */
  #stop(): void {
    Atomics.store(this.#ctrl, CTRL.state, STATE.aborted);
    Atomics.notify(this.#ctrl, CTRL.written);
    if (this.#pid !== null) {
      try {
        process.kill(this.#pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }

  async nextFrame(): Promise<Uint8ClampedArray> {
    this.#started ??= this.#start();
    await this.#started;
    // Wait until the worker has written out the frame that last used this slot.
    for (;;) {
      this.#check();
      const consumed = Atomics.load(this.#ctrl, CTRL.consumed);
      if (consumed > this.#next - NATIVE_SLOTS) break;
      const w = Atomics.waitAsync(this.#ctrl, CTRL.consumed, consumed, 250);
      if (w.async) await w.value;
    }
    const slot = this.#next % NATIVE_SLOTS;
    return new Uint8ClampedArray(this.#ring, slot * this.#frameBytes, this.#frameBytes);
  }

  #check(): void {
    this.#job.signal?.throwIfAborted();
    if (this.#failure) throw this.#failure;
  }

  commitFrame(): void {
    this.#next++;
    Atomics.store(this.#ctrl, CTRL.written, this.#next);
    Atomics.notify(this.#ctrl, CTRL.written);
  }

  async finish(): Promise<void> {
    this.#started ??= this.#start();
    await this.#started;
    Atomics.store(this.#ctrl, CTRL.state, STATE.ended);
    Atomics.notify(this.#ctrl, CTRL.written);
    const m = await this.#result!;
    this.#job.signal?.throwIfAborted();
    if (m.code !== 0) throw new EncoderError(`ffmpeg failed (exit ${m.code})${m.message ? `: ${m.message}` : ''}: ${lastLines(m.log)}`);
    await renameParts(this.#job.outputs, this.#parts);
    await this.#cleanup();
  }

  async abort(): Promise<void> {
    this.#stop();
    if (this.#started) await this.#started.catch(() => undefined);
    if (this.#result) {
      this.#stop(); // the pid may have arrived since
      await this.#result;
    }
    await removeParts(this.#parts);
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    this.#job.signal?.removeEventListener('abort', this.#onAbort);
    await this.#worker?.terminate();
    if (this.#audioFile) await fsp.rm(this.#audioFile, { force: true });
  }
}

// ---------------------------------------------------------------------------
// WebAssembly: @ffmpeg/core in a worker, frames through a shared ring.

/** Frame slots in the ring shared with the worker. */
export const WASM_SLOTS = 3;

/** Where @ffmpeg/core's ESM build lives (ffmpeg-core.js and ffmpeg-core.wasm), or null when it is not installed. */
export function wasmCoreDir(): string | null {
  try {
    // The package's "import" entry is dist/esm/ffmpeg-core.js; the .wasm sits beside it.
    const dir = path.dirname(fileURLToPath(import.meta.resolve('@ffmpeg/core')));
    return fs.existsSync(path.join(dir, 'ffmpeg-core.wasm')) ? dir : null;
  } catch {
    return null;
  }
}

export function wasmEncoder(): FrameEncoder {
  return {
    kind: 'wasm',
    start(job) {
      validate(job);
      const coreDir = wasmCoreDir();
      if (!coreDir) throw new EncoderError('@ffmpeg/core is not installed, so the WebAssembly encoder is unavailable');
      return new WasmSession(coreDir, job);
    },
  };
}

class WasmSession implements EncodeSession {
  readonly #job: EncodeJob;
  readonly #parts: string[];
  readonly #frameBytes: number;
  readonly #ring: SharedArrayBuffer;
  readonly #ctrl: Int32Array;
  readonly #worker: Worker;
  readonly #result: Promise<WasmWorkerMessage>;
  #failure: Error | null = null;
  #next = 0;
  #onAbort = () => {
    Atomics.store(this.#ctrl, CTRL.state, STATE.aborted);
    Atomics.notify(this.#ctrl, CTRL.written);
    void this.#worker.terminate();
  };

  constructor(coreDir: string, job: EncodeJob) {
    job.signal?.throwIfAborted();
    this.#job = job;
    this.#parts = partsOf(job.outputs);
    this.#frameBytes = frameBytes(job.pixelFormat ?? 'rgba', job.width, job.height);
    this.#ring = new SharedArrayBuffer(this.#frameBytes * WASM_SLOTS);
    const ctrl = new SharedArrayBuffer(4 * 4);
    this.#ctrl = new Int32Array(ctrl);
    const memOutputs = job.outputs.map((o, i) => ({ memfs: `/out/${i}${path.extname(o) || '.bin'}`, file: this.#parts[i]! }));
    const args = [
      ...PRE_ARGS,
      ...videoInputArgs(job, '/in/video'),
      ...audioInputArgs(job, '/in/audio.f32'),
      ...substitute(job.args, memOutputs.map((o) => o.memfs)),
    ];
    const data: WasmWorkerData = {
      coreDir,
      width: job.width,
      height: job.height,
      fps: job.fps,
      frames: job.frames,
      frameBytes: this.#frameBytes,
      slots: WASM_SLOTS,
      ring: this.#ring,
      ctrl,
      audio: job.audio ?? null,
      args,
      outputs: memOutputs,
    };
    this.#worker = new Worker(new URL('./wasm-encoder-worker.ts', import.meta.url), { workerData: data });
    this.#result = new Promise<WasmWorkerMessage>((resolve) => {
      this.#worker.once('message', (m: WasmWorkerMessage) => resolve(m));
      this.#worker.once('error', (err) => resolve({ type: 'error', message: err.message, log: '' }));
      this.#worker.once('exit', (code) => resolve({ type: 'error', message: `the encoder worker stopped (exit ${code})`, log: '' }));
    });
    void this.#result.then((m) => {
      if (m.type === 'error') this.#failure ??= new EncoderError(`ffmpeg failed (WebAssembly): ${m.message}: ${lastLines(m.log)}`);
      else if (m.ret !== 0) this.#failure ??= new EncoderError(`ffmpeg failed (WebAssembly, exit ${m.ret}): ${lastLines(m.log)}`);
      else this.#failure ??= new EncoderError('ffmpeg (WebAssembly) ended before its input did');
    });
    job.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  #check(): void {
    this.#job.signal?.throwIfAborted();
    if (this.#failure) throw this.#failure;
  }

  async nextFrame(): Promise<Uint8ClampedArray> {
    // Wait until the encoder has consumed the frame that last used this slot.
    for (;;) {
      this.#check();
      const consumed = Atomics.load(this.#ctrl, CTRL.consumed);
      if (consumed > this.#next - WASM_SLOTS) break;
      const w = Atomics.waitAsync(this.#ctrl, CTRL.consumed, consumed, 250);
      if (w.async) await w.value;
    }
    const slot = this.#next % WASM_SLOTS;
    return new Uint8ClampedArray(this.#ring, slot * this.#frameBytes, this.#frameBytes);
  }

  commitFrame(): void {
    this.#next++;
    Atomics.store(this.#ctrl, CTRL.written, this.#next);
    Atomics.notify(this.#ctrl, CTRL.written);
  }

  async finish(): Promise<void> {
    Atomics.store(this.#ctrl, CTRL.state, STATE.ended);
    Atomics.notify(this.#ctrl, CTRL.written);
    const m = await this.#result;
    this.#job.signal?.throwIfAborted();
    if (m.type === 'error') throw new EncoderError(`ffmpeg failed (WebAssembly): ${m.message}: ${lastLines(m.log)}`);
    if (m.ret !== 0) throw new EncoderError(`ffmpeg failed (WebAssembly, exit ${m.ret}): ${lastLines(m.log)}`);
    await renameParts(this.#job.outputs, this.#parts);
    this.#job.signal?.removeEventListener('abort', this.#onAbort);
    await this.#worker.terminate();
  }

  async abort(): Promise<void> {
    this.#job.signal?.removeEventListener('abort', this.#onAbort);
    Atomics.store(this.#ctrl, CTRL.state, STATE.aborted);
    Atomics.notify(this.#ctrl, CTRL.written);
    await this.#worker.terminate();
    await removeParts(this.#parts);
  }
}
