// Worker thread of decodeWithWasm (wasm-decode.ts): loads @ffmpeg/core (ffmpeg-core.ts), writes the
// file into its memory file system, runs one ffmpeg that decodes the audio to raw
// 48 kHz stereo float, and hands the samples back (transferred, not copied).
import { parentPort, workerData } from 'node:worker_threads';
import { loadFfmpegCore } from './ffmpeg-core.ts';
import type { WasmDecodeData, WasmDecodeMessage } from './wasm-decode.ts';


const data = workerData as WasmDecodeData;
const log: string[] = [];

function post(m: WasmDecodeMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

async function main(): Promise<void> {
  const core = await loadFfmpegCore(data.coreDir, log, 20);
  core.FS.writeFile('/input', new Uint8Array(data.input));
  const ret = core.exec('-hide_banner', '-v', 'error', '-i', '/input', '-vn', '-t', String(data.maxSeconds), '-f', 'f32le', '-ar', '48000', '-ac', '2', '/output.f32');
  let pcm: Uint8Array | null = null;
  try {
    pcm = core.FS.readFile('/output.f32');
  } catch {
    pcm = null;
  }
  if (!pcm || pcm.length === 0) {
    post({ type: 'done', ret, pcm: null, log: log.join('\n') });
    return;
  }
  const usable = pcm.length - (pcm.length % 8);
  const out = new Uint8Array(usable);
  out.set(pcm.subarray(0, usable));
  post({ type: 'done', ret, pcm: out.buffer, log: log.join('\n') }, [out.buffer]);
}

main().catch((err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err), log: log.join('\n') }));
