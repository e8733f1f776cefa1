// Renders a clip offline: the room's mixer replayed on a recorded schedule (the
// same code and block grid as the live stream), the visual engine drawn on the
// room's clock for every video frame, both encoded by a native ffmpeg into an
// MP4 (H.264 + AAC) and an audio-only file (AAC in M4A) in one pass.
//
// The audio is rendered first (a 30 s clip is 1.4 M frames: a fraction of a
// second), marked by the caller's watermark hook, and written to a float WAV
// ffmpeg reads; the video frames are drawn one at a time and piped to ffmpeg's
// stdin as raw RGBA, with back-pressure, so ffmpeg encodes while the next frame
// is drawn (two processes on two cores). Outputs are written under temporary
// names and renamed into place when ffmpeg has finished: a file that exists is whole.
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { writeWavFloat32 } from '../audio/wav.ts';
import { renderOffline, type ScheduledState } from '../mixer/render-offline.ts';
import type { MixerStem } from '../mixer/mixer.ts';
import type { FrameInput, VisualEngine } from '../../shared/visual-engine.ts';

export const SAMPLE_RATE = 48_000;

export interface ClipRenderOptions {
  ffmpeg: string;
  stems: readonly MixerStem[];
  bpm: number | null;
  /** Mixer states by 10 ms block from the clip's start (block 0 must be there). */
  schedule: readonly ScheduledState[];
  durationSec: number;
  video: {
    engine: VisualEngine;
    width: number;
    height: number;
    fps: number;
    /** What to draw at `tSec` into the clip, given the mix's energy there (0..1). */
    frameAt(tSec: number, energy: number): FrameInput;
  };
  /** Marks the audio (the watermark) before anything is encoded; returns the marked PCM. */
  markAudio?: (pcm: Float32Array) => Float32Array | Promise<Float32Array>;
  /** Strings written into both files' metadata (e.g. the signed manifest under "comment"). */
  metadata?: Record<string, string>;
  outputs: { mp4: string; audio: string };
  /** Folder for the intermediate WAV (same file system as the outputs). */
  workDir: string;
  onProgress?: (fraction: number, step: 'audio' | 'video') => void;
  signal?: AbortSignal;
  /** x264 preset; default veryfast. */
  preset?: string;
}

export interface ClipRenderResult {
  audioFrames: number;
  videoFrames: number;
  /** Seconds spent: rendering the mix, drawing frames, and the whole job (ffmpeg included). */
  timings: { mixSec: number; drawSec: number; totalSec: number };
  /** The rendered mix (after marking): what the files carry, for measurements. */
  pcm: Float32Array;
}

export class RenderError extends Error {
  override readonly name = 'RenderError';
}

/** RMS of the mix in a 50 ms window centred on each video frame, as 0..1 energy. */
export function frameEnergies(pcm: Float32Array, fps: number, frames: number, toEnergy: (rms: number) => number): Float32Array {
  const out = new Float32Array(frames);
  const half = Math.round(0.025 * SAMPLE_RATE);
  const total = pcm.length >> 1;
  for (let f = 0; f < frames; f++) {
    const centre = Math.round((f / fps) * SAMPLE_RATE);
    const a = Math.max(0, centre - half);
    const b = Math.min(total, centre + half);
    let s = 0;
    for (let i = a; i < b; i++) {
      const l = pcm[2 * i]!;
      const r = pcm[2 * i + 1]!;
      s += l * l + r * r;
    }
    out[f] = toEnergy(b > a ? Math.sqrt(s / (2 * (b - a))) : 0);
  }
  return out;
}

export async function renderClip(opts: ClipRenderOptions, toEnergy: (rms: number) => number): Promise<ClipRenderResult> {
  const started = performance.now();
  const { width, height, fps } = opts.video;
  if (!(opts.durationSec > 0 && opts.durationSec <= 3600)) throw new RangeError(`a clip lasts 0–3600 s, not ${opts.durationSec}`);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16 || width % 2 || height % 2) {
    throw new RangeError('width and height must be even integers ≥ 16');
  }
  if (!(fps > 0 && fps <= 60)) throw new RangeError('fps must be within 1–60');
  opts.signal?.throwIfAborted();

  // 1. The mix, on the live stream's block grid.
  const audioFrames = Math.round(opts.durationSec * SAMPLE_RATE);
  const mixStart = performance.now();
  let pcm = renderOffline(opts.stems, opts.bpm, opts.schedule, audioFrames);
  if (opts.markAudio) pcm = await opts.markAudio(pcm);
  const mixSec = (performance.now() - mixStart) / 1000;
  opts.onProgress?.(0.05, 'audio');
  await fsp.mkdir(opts.workDir, { recursive: true });
  const wav = path.join(opts.workDir, `mix-${process.pid}-${Date.now()}.wav`);
  await writeWavFloat32(wav, pcm, SAMPLE_RATE, 2);

  const videoFrames = Math.round(opts.durationSec * fps);
  const energies = frameEnergies(pcm, fps, videoFrames, toEnergy);
  const partMp4 = `${opts.outputs.mp4}.part`;
  const partAudio = `${opts.outputs.audio}.part`;
  const meta = Object.entries(opts.metadata ?? {}).flatMap(([k, v]) => ['-metadata', `${k}=${v}`]);
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${width}x${height}`, '-r', String(fps), '-i', 'pipe:0',
    '-i', wav,
    // The MP4: H.264 (yuv420p for every player) and AAC.
    '-map', '0:v', '-map', '1:a',
    '-c:v', 'libx264', '-preset', opts.preset ?? 'veryfast', '-crf', '21', '-pix_fmt', 'yuv420p', '-r', String(fps),
    '-c:a', 'aac', '-b:a', '192k', '-ar', String(SAMPLE_RATE),
    '-t', String(opts.durationSec), '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'mp4', partMp4,
    // The audio alone.
    '-map', '1:a', '-c:a', 'aac', '-b:a', '192k', '-ar', String(SAMPLE_RATE), '-t', String(opts.durationSec),
    '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'ipod', partAudio,
  ];
  const child = spawn(opts.ffmpeg, args, { stdio: ['pipe', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => {
    if (stderr.length < 16_384) stderr += b.toString('utf8');
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code) => resolve(code));
  });
  exited.catch(() => {});
  const onAbort = () => child.kill('SIGKILL');
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  let drawSec = 0;
  try {
    // 2. The frames, drawn while ffmpeg encodes the previous ones.
    const frame = new Uint8ClampedArray(width * height * 4);
    const stdin = child.stdin;
    let stdinError: Error | null = null;
    stdin.on('error', (err) => (stdinError = err));
    for (let f = 0; f < videoFrames; f++) {
      if (opts.signal?.aborted || stdinError) break;
      const t0 = performance.now();
      opts.video.engine.renderFrame(frame, width, height, opts.video.frameAt(f / fps, energies[f]!));
      drawSec += (performance.now() - t0) / 1000;
      // A copy: the engine reuses `frame` while the pipe still holds the previous one.
      if (!stdin.write(Buffer.from(frame.buffer.slice(0)))) await new Promise<void>((resolve) => stdin.once('drain', resolve));
      if (f % fps === 0) opts.onProgress?.(0.05 + 0.9 * (f / videoFrames), 'video');
    }
    stdin.end();
    const code = await exited;
    opts.signal?.throwIfAborted();
    if (code !== 0) throw new RenderError(`ffmpeg failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`);
    await fsp.rename(partMp4, opts.outputs.mp4);
    await fsp.rename(partAudio, opts.outputs.audio);
    opts.onProgress?.(1, 'video');
    return { audioFrames, videoFrames, timings: { mixSec, drawSec, totalSec: (performance.now() - started) / 1000 }, pcm };
  } catch (err) {
    child.kill('SIGKILL');
    await exited.catch(() => null);
    await fsp.rm(partMp4, { force: true });
    await fsp.rm(partAudio, { force: true });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await fsp.rm(wav, { force: true });
  }
}
