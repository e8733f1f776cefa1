// Worker thread of the WebAssembly encoder (see encoder.ts): loads @ffmpeg/core,
// exposes the shared frame ring as a device (/in/video) that yields each frame
// when the renderer has committed it, runs one ffmpeg and copies its outputs
// from MEMFS to their `.part` files.
//
// @ffmpeg/core is built for browsers and web workers; in Node it needs `self`,
// `location` and the wasm bytes handed over as `wasmBinary`.
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { WasmWorkerData, WasmWorkerMessage } from './encoder.ts';

const CTRL_WRITTEN = 0;
const CTRL_CONSUMED = 1;
const CTRL_STATE = 2;
const STATE_ABORTED = 2;
const STATE_ENDED = 1;

interface EmscriptenStream { seekable: boolean }
interface EmscriptenFS {
  makedev(major: number, minor: number): number;
  registerDevice(dev: number, ops: Record<string, unknown>): void;
  mkdev(path: string, dev: number): void;
  mkdir(path: string): void;
  writeFile(path: string, data: Uint8Array): void;
  readFile(path: string): Uint8Array;
  ErrnoError: new (errno: number) => Error;
}
interface FfmpegCore {
  FS: EmscriptenFS;
  exec(...args: string[]): number;
  setLogger(logger: (m: { type: string; message: string }) => void): void;
}

const data = workerData as WasmWorkerData;
const log: string[] = [];

function post(m: WasmWorkerMessage): void {
  parentPort!.postMessage(m);
}

async function main(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  g['self'] ??= globalThis;
  g['location'] ??= { href: pathToFileURL(data.coreDir + path.sep).href };
  const mod = (await import(pathToFileURL(path.join(data.coreDir, 'ffmpeg-core.js')).href)) as { default: (m: Record<string, unknown>) => Promise<FfmpegCore> };
  const core = await mod.default({ wasmBinary: fs.readFileSync(path.join(data.coreDir, 'ffmpeg-core.wasm')) });
  core.setLogger((m) => {
    if (m.type === 'stderr') {
      log.push(m.message);
      if (log.length > 50) log.shift();
    }
  });
  const FS = core.FS;
  const ctrl = new Int32Array(data.ctrl);
  const frameBytes = data.width * data.height * 4;
  const ring = new Int8Array(data.ring);
  let position = 0;

  // The frames, read on demand: a read of frame k waits until the renderer has committed it.
  const dev = FS.makedev(240, 0);
  FS.registerDevice(dev, {
    open(stream: EmscriptenStream) {
      stream.seekable = false;
    },
    close() {},
    read(_stream: EmscriptenStream, buffer: Int8Array, offset: number, length: number) {
      const frame = Math.floor(position / frameBytes);
      if (frame >= data.frames) return 0;
      for (;;) {
        const written = Atomics.load(ctrl, CTRL_WRITTEN);
        if (written > frame) break;
        const state = Atomics.load(ctrl, CTRL_STATE);
        if (state === STATE_ABORTED) throw new FS.ErrnoError(29); // EIO
        if (state === STATE_ENDED) return 0; // fewer frames than announced: end of stream
        Atomics.wait(ctrl, CTRL_WRITTEN, written, 250);
      }
      const within = position - frame * frameBytes;
      const n = Math.min(length, frameBytes - within);
      const slot = frame % data.slots;
      buffer.set(ring.subarray(slot * frameBytes + within, slot * frameBytes + within + n), offset);
      position += n;
      if (within + n === frameBytes) {
        Atomics.store(ctrl, CTRL_CONSUMED, frame + 1);
        Atomics.notify(ctrl, CTRL_CONSUMED);
      }
      return n;
    },
  });
  FS.mkdir('/in');
  FS.mkdir('/out');
  FS.mkdev('/in/video', dev);
  if (data.audio) {
    const { pcm } = data.audio;
    FS.writeFile('/in/audio.f32', new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
  }
  // The arguments include "-nostdin -y" already; exec prepends them again, which ffmpeg accepts.
  const ret = core.exec(...data.args);
  if (ret === 0) {
    for (const o of data.outputs) fs.writeFileSync(o.file, FS.readFile(o.memfs));
  }
  post({ type: 'done', ret, log: log.join('\n') });
}

main().catch((err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err), log: log.join('\n') }));
