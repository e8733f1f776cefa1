// Worker thread of the WebAssembly encoder (see encoder.ts): loads @ffmpeg/core,
// exposes the shared frame ring as a device (/in/video) that yields each frame
// when the renderer has committed it, runs one ffmpeg and copies its outputs
// from MEMFS to their `.part` files. (media/audio/ffmpeg-core.ts loads the core.)
import fs from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import { loadFfmpegCore, type EmscriptenStream } from '../audio/ffmpeg-core.ts';
import { CTRL, STATE, type WasmWorkerData, type WasmWorkerMessage } from './frame-ring.ts';

const data = workerData as WasmWorkerData;
const log: string[] = [];

function post(m: WasmWorkerMessage): void {
  parentPort!.postMessage(m);
}

async function main(): Promise<void> {
  const core = await loadFfmpegCore(data.coreDir, log, 50);
  const FS = core.FS;
  const ctrl = new Int32Array(data.ctrl);
  const frameBytes = data.frameBytes;
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
        const written = Atomics.load(ctrl, CTRL.written);
        if (written > frame) break;
        const state = Atomics.load(ctrl, CTRL.state);
        if (state === STATE.aborted) throw new FS.ErrnoError(29); // EIO
        if (state === STATE.ended) return 0; // fewer frames than announced: end of stream
        Atomics.wait(ctrl, CTRL.written, written, 250);
      }
      const within = position - frame * frameBytes;
      const n = Math.min(length, frameBytes - within);
      const slot = frame % data.slots;
      buffer.set(ring.subarray(slot * frameBytes + within, slot * frameBytes + within + n), offset);
      position += n;
      if (within + n === frameBytes) {
        Atomics.store(ctrl, CTRL.consumed, frame + 1);
        Atomics.notify(ctrl, CTRL.consumed);
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
