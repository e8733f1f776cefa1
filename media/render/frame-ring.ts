// What an encoder (encoder.ts) and its worker threads (native-encoder-worker.ts,
// wasm-encoder-worker.ts) share, one definition for both sides: the control words of
// the ring of frame slots (a SharedArrayBuffer), and each worker's start data and
// messages. The workers import this, never encoder.ts, which starts them.

/** Indexes into the Int32Array of control words. */
export const CTRL = {
  /** Frames the renderer has committed. */
  written: 0,
  /** Frames the worker has taken (a slot is free again once its frame is consumed). */
  consumed: 1,
  /** One of STATE. */
  state: 2,
} as const;

export const STATE = { running: 0, ended: 1, aborted: 2 } as const;

export interface NativeWorkerData {
  ffmpeg: string;
  /** Full ffmpeg arguments (inputs included). */
  args: string[];
  frameBytes: number;
  slots: number;
  ring: SharedArrayBuffer;
  ctrl: SharedArrayBuffer;
}

export type NativeWorkerMessage = { type: 'spawned'; pid: number } | { type: 'done'; code: number | null; message: string | null; log: string };

export interface WasmWorkerData {
  coreDir: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
  /** Bytes of one frame in the ring. */
  frameBytes: number;
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
