// Lossy round trips through a native ffmpeg, as an attacker (or a re-upload)
// would do them: 48 kHz float PCM → encoded file → decoded 48 kHz float PCM.
// Used by the watermark's tests and benchmark; decodeToPcm also serves any
// caller that must read an uploaded file as the detector's input.
import { spawn } from 'node:child_process';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ffmpegFileArg, lastLine } from '../audio/ffmpeg.ts';

export interface LossyFormat {
  /** ffmpeg encoder, e.g. "aac" or "libmp3lame". */
  encoder: string;
  /** e.g. "96k". */
  bitrate: string;
  /** File extension for the container, e.g. "m4a" or "mp3". */
  ext: string;
}

export const LOSSY_FORMATS = {
  aac96: { encoder: 'aac', bitrate: '96k', ext: 'm4a' },
  mp3_64: { encoder: 'libmp3lame', bitrate: '64k', ext: 'mp3' },
  mp3_128: { encoder: 'libmp3lame', bitrate: '128k', ext: 'mp3' },
} as const satisfies Record<string, LossyFormat>;

const MAX_OUTPUT_BYTES = 1 << 30;
const TIMEOUT_MS = 120_000;

function run(ffmpeg: string, args: string[], input: Uint8Array | null): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: TIMEOUT_MS, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    let outBytes = 0;
    let err = '';
    child.stdout.on('data', (b: Buffer) => {
      outBytes += b.length;
      if (outBytes > MAX_OUTPUT_BYTES) child.kill('SIGKILL');
      else out.push(b);
    });
    child.stderr.on('data', (b: Buffer) => {
      if (err.length < 65536) err += b.toString('utf8');
    });
    child.stdin.on('error', () => {}); // an early exit shows as the exit code below
    child.once('error', reject);
    child.once('close', (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`ffmpeg ${signal ? `killed by ${signal}` : `exited ${code}`}: ${lastLine(err) || 'no message'}`));
    });
    if (input) child.stdin.end(input);
    else child.stdin.end();
  });
}

function floatsOf(b: Buffer): Float32Array {
  const copy = new Uint8Array(b.length - (b.length % 4));
  copy.set(b.subarray(0, copy.length));
  return new Float32Array(copy.buffer);
}

/** Decodes any file ffmpeg reads to 48 kHz float PCM with `channels` interleaved channels (ffmpeg downmixes). */
export async function decodeToPcm(ffmpeg: string, file: string, channels: 1 | 2 = 2): Promise<Float32Array> {
  const out = await run(ffmpeg, ['-nostdin', '-hide_banner', '-v', 'error', '-i', ffmpegFileArg(file), '-vn', '-f', 'f32le', '-ar', '48000', '-ac', String(channels), 'pipe:1'], null);
  return floatsOf(out);
}

/**
 * Encodes 48 kHz stereo float PCM to `format` in a temporary file and decodes it
 * back once per entry of `decodeAs` (2: stereo; 1: mono, downmixed by ffmpeg).
 */
export async function lossyRoundTrips(ffmpeg: string, pcm: Float32Array, format: LossyFormat, decodeAs: readonly (1 | 2)[]): Promise<Float32Array[]> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'wm-transcode-'));
  try {
    const file = path.join(dir, `clip.${format.ext}`);
    const bytes = new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength);
    await run(ffmpeg, ['-nostdin', '-hide_banner', '-v', 'error', '-f', 'f32le', '-ar', '48000', '-ac', '2', '-i', 'pipe:0', '-c:a', format.encoder, '-b:a', format.bitrate, '-y', ffmpegFileArg(file)], bytes);
    const out: Float32Array[] = [];
    for (const channels of decodeAs) out.push(await decodeToPcm(ffmpeg, file, channels));
    return out;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** One lossy round trip of stereo float PCM, decoded back to stereo (or mono). */
export async function lossyRoundTrip(ffmpeg: string, pcm: Float32Array, format: LossyFormat, channelsOut: 1 | 2 = 2): Promise<Float32Array> {
  const [out] = await lossyRoundTrips(ffmpeg, pcm, format, [channelsOut]);
  return out!;
}
