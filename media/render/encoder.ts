// The video encoder behind the clip and loop renderers: raw RGBA frames (and
// optionally a stereo float mix) in, files out, through ffmpeg — a native
// ffmpeg process when the server has one, else @ffmpeg/core (ffmpeg compiled
// to WebAssembly) in a worker thread, several times slower but with nothing to
// install.
//
// Both take the same ffmpeg arguments. Input 0 is the raw RGBA video, input 1
// the audio (f32le stereo) when there is one; `{out0}`, `{out1}`… in the
// arguments stand for the outputs, which are written as `<path>.<pid>-<random>.part` and
// renamed into place only when the encode has succeeded (a file that exists is
// whole). On failure or abort the `.part` files are removed.
//
// Frames are handed over without a copy per frame: the renderer asks for a
// frame buffer (`nextFrame`), draws into it and commits it. The native encoder
// rotates a few Buffers written to ffmpeg's stdin (a buffer is reused only when
// its write has completed); the WebAssembly encoder shares a ring of frame
// slots (SharedArrayBuffer) with its worker, where an Emscripten device reads
// them on demand, so no more than the ring's few frames are ever in memory
// (900 frames of 720p RGBA would be 3.3 GB) and drawing overlaps encoding.
//
// One WebAssembly instance per job: a fresh worker that loads the core
// (about half a second), runs one ffmpeg and ends; abort terminates it.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';

export class EncoderError extends Error {
  override readonly name = 'EncoderError';
}

export interface EncodeJob {
  width: number;
  height: number;
  fps: number;
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
  /** A buffer for the next frame (width·height·4 bytes), free to draw into. */
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
  return ['-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${job.width}x${job.height}`, '-r', String(job.fps), '-i', source];
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
// Native: frames to ffmpeg's stdin.

const NATIVE_SLOTS = 4;

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
  readonly #slots: Buffer[] = [];
  readonly #pending: (Promise<void> | null)[] = [];
  #started: Promise<void> | null = null;
  #child: ReturnType<typeof spawn> | null = null;
  #exited: Promise<number | null> | null = null;
  #stderr = '';
  #failure: Error | null = null;
  #next = 0;
  #audioFile: string | null = null;
  #onAbort = () => this.#child?.kill('SIGKILL');

  constructor(ffmpeg: string, job: EncodeJob) {
    this.#ffmpeg = ffmpeg;
    this.#job = job;
    this.#parts = partsOf(job.outputs);
    this.#frameBytes = job.width * job.height * 4;
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
    const child = spawn(this.#ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.#child = child;
    child.stderr!.on('data', (b: Buffer) => {
      if (this.#stderr.length < 16_384) this.#stderr += b.toString('utf8');
    });
    child.stdin!.on('error', (err) => (this.#failure ??= err));
    this.#exited = new Promise<number | null>((resolve, reject) => {
      child.once('error', reject);
      child.once('close', (code) => resolve(code));
    });
    this.#exited.then(
      (code) => (this.#failure ??= new EncoderError(`ffmpeg ended early (exit ${code})`)),
      (err: Error) => (this.#failure ??= err),
    );
    job.signal?.addEventListener('abort', this.#onAbort, { once: true });
  }

  async nextFrame(): Promise<Uint8ClampedArray> {
    this.#started ??= this.#start();
    await this.#started;
    const slot = this.#next % NATIVE_SLOTS;
    if (!this.#slots[slot]) this.#slots[slot] = Buffer.allocUnsafe(this.#frameBytes);
    const pending = this.#pending[slot];
    if (pending) await pending;
    this.#check();
    const buf = this.#slots[slot]!;
    return new Uint8ClampedArray(buf.buffer, buf.byteOffset, this.#frameBytes);
  }

  #check(): void {
    this.#job.signal?.throwIfAborted();
    if (this.#failure) throw new EncoderError(`ffmpeg failed: ${this.#failure.message}: ${lastLines(this.#stderr)}`);
  }

  commitFrame(): void {
    const slot = this.#next % NATIVE_SLOTS;
    const stdin = this.#child!.stdin!;
    // Resolved when the pipe no longer needs the buffer (or the write failed, which #check reports).
    this.#pending[slot] = new Promise<void>((resolve) => {
      stdin.write(this.#slots[slot]!, () => resolve());
    });
    this.#next++;
  }

  async finish(): Promise<void> {
    this.#started ??= this.#start();
    await this.#started;
    this.#child!.stdin!.end();
    const code = await this.#exited!;
    this.#job.signal?.throwIfAborted();
    if (code !== 0) throw new EncoderError(`ffmpeg failed (exit ${code}): ${lastLines(this.#stderr)}`);
    await renameParts(this.#job.outputs, this.#parts);
    await this.#cleanup();
  }

  async abort(): Promise<void> {
    this.#child?.kill('SIGKILL');
    await this.#exited?.catch(() => null);
    await removeParts(this.#parts);
    await this.#cleanup();
  }

  async #cleanup(): Promise<void> {
    this.#job.signal?.removeEventListener('abort', this.#onAbort);
    if (this.#audioFile) await fsp.rm(this.#audioFile, { force: true });
  }
}

// ---------------------------------------------------------------------------
// WebAssembly: @ffmpeg/core in a worker, frames through a shared ring.

/** Frame slots in the ring shared with the worker. */
export const WASM_SLOTS = 3;
/** Control words: [0] frames committed, [1] frames consumed by the encoder, [2] state (see worker). */
export const CTRL = { written: 0, consumed: 1, state: 2 } as const;
export const STATE = { running: 0, ended: 1, aborted: 2 } as const;

export interface WasmWorkerData {
  coreDir: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  slots: number;
  ring: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
  audio: { pcm: Float32Array; sampleRate: number } | null;
  /** Full ffmpeg arguments (inputs included), with MEMFS paths. */
  args: string[];
  /** MEMFS path → the real `.part` file it is copied to. */
  outputs: { memfs: string; file: string }[];
}

export type WasmWorkerMessage = { type: 'done'; ret: number; log: string } | { type: 'error'; message: string; log: string };

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
    this.#frameBytes = job.width * job.height * 4;
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
