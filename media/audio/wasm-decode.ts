// Decoding a media file's audio without a native ffmpeg: @ffmpeg/core (ffmpeg compiled
// to WebAssembly) in a worker thread of its own, one file per worker, ended when done
// or when it takes too long. Slower than native ffmpeg, and the file and its samples
// sit in the worker's memory, so it is for bounded inputs (POST /api/verify takes at
// most 64 MB and decodes at most a few minutes).
import fsp from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import { wasmCoreDir } from '../render/encoder.ts';

export interface WasmDecodeData {
  coreDir: string;
  input: ArrayBuffer;
  maxSeconds: number;
}

export type WasmDecodeMessage = { type: 'done'; ret: number; pcm: ArrayBuffer | null; log: string } | { type: 'error'; message: string; log: string };

export class WasmDecodeError extends Error {
  override readonly name = 'WasmDecodeError';
  readonly kind: 'not_media' | 'timeout' | 'unavailable';
  constructor(kind: WasmDecodeError['kind'], message: string) {
    super(message);
    this.kind = kind;
  }
}

/** Whether this process can decode with the WebAssembly build. */
export function wasmDecodeAvailable(): boolean {
  return wasmCoreDir() !== null;
}

/** The file's audio (its bytes, or the file at `path`) as interleaved 48 kHz stereo float, its first `maxSeconds`. */
export async function decodeWithWasm(source: Uint8Array | { path: string }, opts: { maxSeconds: number; timeoutMs: number }): Promise<Float32Array> {
  const coreDir = wasmCoreDir();
  if (!coreDir) throw new WasmDecodeError('unavailable', '@ffmpeg/core is not installed');
  const input = source instanceof Uint8Array ? new Uint8Array(source) : await readWhole(source.path);
  const data: WasmDecodeData = { coreDir, input: input.buffer, maxSeconds: opts.maxSeconds };
  const worker = new Worker(new URL('./wasm-decode.worker.ts', import.meta.url), { workerData: data, transferList: [input.buffer] });
  try {
    const message = await new Promise<WasmDecodeMessage>((resolve, reject) => {
      const timer = setTimeout(() => reject(new WasmDecodeError('timeout', 'reading the file took too long')), opts.timeoutMs);
      worker.once('message', (m: WasmDecodeMessage) => {
        clearTimeout(timer);
        resolve(m);
      });
      worker.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      worker.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`the decoder stopped (exit ${code})`));
      });
    });
    if (message.type === 'error') throw new Error(`@ffmpeg/core failed: ${message.message}`);
    if (!message.pcm) throw new WasmDecodeError('not_media', `this is not a media file with audio that ffmpeg can read (${message.log.trim().split('\n').pop() || 'no message'})`);
    return new Float32Array(message.pcm);
  } finally {
    await worker.terminate();
  }
}

/** The whole file in a buffer of its own, handed to the worker without a copy. */
async function readWhole(file: string): Promise<Uint8Array<ArrayBuffer>> {
  const handle = await fsp.open(file, 'r');
  try {
    const { size } = await handle.stat();
    const out = new Uint8Array(new ArrayBuffer(size));
    let at = 0;
    while (at < size) {
      const { bytesRead } = await handle.read(out, at, size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return at === size ? out : out.slice(0, at);
  } finally {
    await handle.close();
  }
}
