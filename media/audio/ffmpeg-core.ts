// Loading @ffmpeg/core (ffmpeg compiled to WebAssembly) inside a Node worker thread,
// for the WebAssembly encoder (media/render/wasm-encoder-worker.ts) and decoder
// (media/audio/wasm-decode.worker.ts). The package is built for browsers and web
// workers: in Node it needs `self`, `location`, and the wasm bytes handed over as
// `wasmBinary`. Each worker loads one instance and runs one ffmpeg.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export interface EmscriptenStream {
  seekable: boolean;
}

export interface EmscriptenFS {
  makedev(major: number, minor: number): number;
  registerDevice(dev: number, ops: Record<string, unknown>): void;
  mkdev(path: string, dev: number): void;
  mkdir(path: string): void;
  writeFile(path: string, data: Uint8Array): void;
  readFile(path: string): Uint8Array;
  ErrnoError: new (errno: number) => Error;
}

export interface FfmpegCore {
  FS: EmscriptenFS;
  exec(...args: string[]): number;
  setLogger(logger: (m: { type: string; message: string }) => void): void;
}

/** Loads the core from `coreDir` (see wasmCoreDir); its last `keepLines` stderr lines go into `log`. */
export async function loadFfmpegCore(coreDir: string, log: string[], keepLines: number): Promise<FfmpegCore> {
  const g = globalThis as Record<string, unknown>;
  g['self'] ??= globalThis;
  g['location'] ??= { href: pathToFileURL(coreDir + path.sep).href };
  const mod = (await import(pathToFileURL(path.join(coreDir, 'ffmpeg-core.js')).href)) as { default: (m: Record<string, unknown>) => Promise<FfmpegCore> };
  const core = await mod.default({ wasmBinary: fs.readFileSync(path.join(coreDir, 'ffmpeg-core.wasm')) });
  core.setLogger((m) => {
    if (m.type === 'stderr') {
      log.push(m.message);
      if (log.length > keepLines) log.shift();
    }
  });
  return core;
}
