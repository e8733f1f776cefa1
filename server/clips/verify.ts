// Tracing a file found anywhere: decode its audio with ffmpeg (native, or the
// WebAssembly build in a worker when there is none), look for the
// watermark, and if one is there, name the render it came from (clip, room,
// release, time) and check the file against that render's signed manifest.
import crypto from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { decodeWithWasm, wasmDecodeAvailable, WasmDecodeError } from '../../media/audio/wasm-decode.ts';
import { detectWatermark, MIN_DETECT_SEC, WatermarkError } from '../../media/watermark/watermark.ts';
import type { RenderRecord } from '../store/store.ts';
import { verifyManifest, type SignedManifest } from './manifest.ts';

/** At most this much audio is decoded and searched (the mark repeats every ~8 s). */
const MAX_DECODE_SEC = 120;
const DECODE_TIMEOUT_MS = 60_000;
const MAX_PCM_BYTES = MAX_DECODE_SEC * 48_000 * 2 * 4;

export interface VerifyResult {
  /** Whether a mark was found. */
  found: boolean;
  /** Why nothing could be said (too short, no audio). */
  note?: string;
  renderId?: string;
  /** The render the mark names, when this server made it. */
  render?: {
    kind: string;
    roomId: string;
    releaseId: string | null;
    window: { fromMs: number; toMs: number; seconds: number } | null;
    createdAt: string;
  };
  manifest?: SignedManifest | null;
  /** The manifest's signature checks out with this server's key. */
  manifestGenuine?: boolean;
  /** The uploaded bytes are exactly one of the files the manifest names (not a re-encode or an edit). */
  fileMatchesManifest?: boolean;
  detection?: { syncZ: number; confidence: number; offsetSec: number };
}

export class VerifyError extends Error {
  override readonly name = 'VerifyError';
  readonly code: 'not_media' | 'unavailable';
  constructor(code: VerifyError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export interface VerifyDeps {
  ffmpeg: string | null;
  watermarkKey: Uint8Array;
  /** Names the render a mark carries (ClipService.lookup). */
  clips: { lookup(renderId: string): Promise<{ render: RenderRecord; manifest: SignedManifest | null } | null> };
  manifestPublicKey: string;
  /** Where the upload is written for ffmpeg (a file, not a pipe: an MP4 may keep its index at the end). */
  tmpDir: string;
}

/**
 * Checks the media file at `file` (the caller's: it writes it and removes it). `signal`
 * stops the decode when the one who asked has gone.
 */
export async function verifyMedia(deps: VerifyDeps, file: string, opts: { signal?: AbortSignal } = {}): Promise<VerifyResult> {
  const pcm = deps.ffmpeg ? await decodeAudio(deps.ffmpeg, file, opts.signal) : await decodeWithoutNativeFfmpeg(file, opts.signal);
  if (pcm.length / 2 < MIN_DETECT_SEC * 48_000) {
    return { found: false, note: `the file has ${(pcm.length / 2 / 48_000).toFixed(1)} s of audio; at least ${MIN_DETECT_SEC} s (10 s or more for a sure answer) is needed` };
  }
  let detection;
  try {
    detection = detectWatermark(pcm, { key: deps.watermarkKey, channels: 2 });
  } catch (err) {
    if (err instanceof WatermarkError) return { found: false, note: err.message };
    throw err;
  }
  if (!detection) return { found: false };
  const renderId = detection.payloadHex;
  const result: VerifyResult = {
    found: true,
    renderId,
    detection: { syncZ: round(detection.syncZ), confidence: round(detection.confidence), offsetSec: round(detection.offsetSec) },
  };
  const known = await deps.clips.lookup(renderId);
  if (!known) {
    result.note = 'the mark is this server’s, but the render it names is not on record here';
    return result;
  }
  const request = known.render.request as { releaseId?: string; window?: { fromMs: number; toMs: number } ; seconds?: number };
  const manifest = known.manifest;
  result.render = {
    kind: known.render.kind,
    roomId: known.render.roomId,
    releaseId: request.releaseId ?? manifest?.manifest.release.id ?? null,
    window: manifest ? manifest.manifest.window : null,
    createdAt: known.render.createdAt,
  };
  // The signed manifest and nothing else of the render's result (which names its files on disk):
  // this answer says what the file is, never where to fetch it. The manifest names files by name,
  // size and hash only.
  result.manifest = manifest ? { manifest: manifest.manifest, algorithm: manifest.algorithm, publicKey: manifest.publicKey, signature: manifest.signature } : null;
  result.manifestGenuine = manifest ? verifyManifest(manifest, deps.manifestPublicKey) : false;
  // Only a file of the same size can be the same file: most uploads are never hashed.
  const size = (await fs.promises.stat(file)).size;
  const sameSize = (manifest?.manifest.files ?? []).filter((f) => f.bytes === size);
  if (sameSize.length > 0) {
    const sha = await sha256Of(file, opts.signal);
    result.fileMatchesManifest = sameSize.some((f) => f.sha256 === sha);
  } else {
    result.fileMatchesManifest = false;
  }
  return result;
}

/** Hashed as a stream: an upload is never held whole in memory. */
async function sha256Of(file: string, signal?: AbortSignal): Promise<string> {
  const hash = crypto.createHash('sha256');
  await pipeline(fs.createReadStream(file), hash, { ...(signal ? { signal } : {}) });
  return hash.digest('hex');
}

function round(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** Without a native ffmpeg: the WebAssembly build, in a worker (slower; one file at a time). */
let wasmDecoding: Promise<unknown> = Promise.resolve();
async function decodeWithoutNativeFfmpeg(file: string, signal?: AbortSignal): Promise<Float32Array> {
  if (!wasmDecodeAvailable()) throw new VerifyError('unavailable', 'this server has no ffmpeg to read media with (neither native nor @ffmpeg/core)');
  // One at a time: each decode reads the whole file into memory (the WebAssembly build has no
  // file system of ours to read from) and holds it and its samples in a heap of its own, so
  // at most one upload's bytes are in memory at once.
  const run = wasmDecoding.then(() => {
    signal?.throwIfAborted();
    return decodeWithWasm({ path: file }, { maxSeconds: MAX_DECODE_SEC, timeoutMs: DECODE_TIMEOUT_MS * 4 });
  });
  wasmDecoding = run.catch(() => undefined);
  try {
    const pcm = await run;
    return pcm.length * 4 > MAX_PCM_BYTES ? pcm.slice(0, MAX_PCM_BYTES / 4) : pcm;
  } catch (err) {
    if (err instanceof WasmDecodeError) throw new VerifyError(err.kind === 'unavailable' ? 'unavailable' : 'not_media', err.message);
    throw err;
  }
}

/** The file's audio as 48 kHz stereo float (ffmpeg downmixes or upmixes), its first MAX_DECODE_SEC seconds. */
function decodeAudio(ffmpeg: string, file: string, signal?: AbortSignal): Promise<Float32Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, ['-nostdin', '-hide_banner', '-v', 'error', '-i', `file:${file}`, '-vn', '-t', String(MAX_DECODE_SEC), '-f', 'f32le', '-ar', '48000', '-ac', '2', 'pipe:1'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: DECODE_TIMEOUT_MS,
      killSignal: 'SIGKILL',
      ...(signal ? { signal } : {}),
    });
    const chunks: Buffer[] = [];
    let size = 0;
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => {
      if (size < MAX_PCM_BYTES) chunks.push(b);
      size += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (stderr.length < 4096) stderr += b.toString('utf8');
    });
    child.once('error', (err) => reject(signal?.aborted ? signal.reason : new VerifyError('unavailable', `ffmpeg could not run: ${err.message}`)));
    child.once('close', (code, killedBy) => {
      if (signal?.aborted) return reject(signal.reason);
      const all = Buffer.concat(chunks).subarray(0, MAX_PCM_BYTES);
      if (killedBy) return reject(new VerifyError('not_media', 'reading the file took too long'));
      if (code !== 0 && all.length === 0) {
        return reject(new VerifyError('not_media', `this is not a media file with audio that ffmpeg can read (${stderr.trim().split('\n').pop() ?? 'no message'})`));
      }
      const usable = all.length - (all.length % 8);
      const copy = new Uint8Array(usable);
      copy.set(all.subarray(0, usable));
      resolve(new Float32Array(copy.buffer));
    });
  });
}
