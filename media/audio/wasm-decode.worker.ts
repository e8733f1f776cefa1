// Worker thread of decodeWithWasm (wasm-decode.ts): loads @ffmpeg/core, writes the
// file into its memory file system, runs one ffmpeg that decodes the audio to raw
// 48 kHz stereo float, and hands the samples back (transferred, not copied).
import fs from 'node:fs';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { pathToFileURL } from 'node:url';
import type { WasmDecodeData, WasmDecodeMessage } from './wasm-decode.ts';

interface FfmpegCore {
  FS: { writeFile(path: string, data: Uint8Array): void; readFile(path: string): Uint8Array; unlink(path: string): void };
  exec(...args: string[]): number;
  setLogger(logger: (m: { type: string; message: string }) => void): void;
}

const data = workerData as WasmDecodeData;
const log: string[] = [];

function post(m: WasmDecodeMessage, transfer: ArrayBuffer[] = []): void {
  parentPort!.postMessage(m, transfer);
}

async function main(): Promise<void> {
  const g = globalThis as Record<string, unknown>;
  // @ffmpeg/core is built for browsers and web workers; in Node it needs these.
  g['self'] ??= globalThis;
  g['location'] ??= { href: pathToFileURL(data.coreDir + path.sep).href };
  const mod = (await import(pathToFileURL(path.join(data.coreDir, 'ffmpeg-core.js')).href)) as { default: (m: Record<string, unknown>) => Promise<FfmpegCore> };
  const core = await mod.default({ wasmBinary: fs.readFileSync(path.join(data.coreDir, 'ffmpeg-core.wasm')) });
  core.setLogger((m) => {
    if (m.type === 'stderr') {
      log.push(m.message);
      if (log.length > 20) log.shift();
    }
  });
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
