// Renders a clip offline: the room's mixer replayed on a recorded schedule (the
// same code and block grid as the live stream), the visual engine drawn on the
// room's clock for every video frame, both encoded by ffmpeg into an MP4
// (H.264 + AAC) and an audio-only file (AAC in M4A) in one pass — a native
// ffmpeg when the server has one, else @ffmpeg/core (WebAssembly) in a worker
// thread (media/render/encoder.ts).
//
// The audio is rendered first (a 30 s clip is 1.4 M frames: a fraction of a
// second) and marked by the caller's watermark hook; the video frames are then
// drawn one at a time straight into the encoder's frame buffers, so ffmpeg
// encodes while the next frame is drawn. Frames go over as yuv420p, drawn so by the
// engine (renderFrameYuv420): ffmpeg skips its RGBA conversion and reads 1.4 MB a
// frame instead of 3.7 MB. The frames go to ffmpeg through ffmpeg-pipe.ts, as every
// render kind's do: outputs are written under temporary names and renamed into
// place when ffmpeg has finished (a file that exists is whole), and a failure or
// an abort leaves nothing behind.
import type { CreditOverlay } from './credit.ts';
import type { FrameEncoder } from './encoder.ts';
import { checkFrameSize, metadataArgs, pipeFrames } from './ffmpeg-pipe.ts';
import { renderOffline, type ScheduledState } from '../mixer/render-offline.ts';
import type { MixerStem } from '../mixer/mixer.ts';
import type { FrameInput, VisualEngine } from '../../shared/visual-engine.ts';

export const SAMPLE_RATE = 48_000;

/**
 * x264 settings for sharing (bench/README.md, "Choosing the bitrate"): a 30 s 720p clip under 10 MB, so
 * that it goes through messengers and short-video apps as it is. CRF 23 with the video capped at
 * VIDEO_MAXRATE_KBPS (a VBV buffer of one second's worth) plus AUDIO_KBPS of AAC: at most about 9.1 MB for
 * 30 s. Film grain (random every frame) is what the cap smooths most: visibly softer in a still crop. superfast, because ultrafast under the same cap breaks the busy frames of the visuals into
 * blocks (SSIM 0.88 against 0.91 on the bench's worst frames, and plainly visible), for about 3 more
 * CPU-seconds per 30 s. The WebAssembly build is single-threaded, about seven times slower: it keeps
 * ultrafast, uncapped at ULTRAFAST_CRF (larger files, as before; capping ultrafast blocks up).
 */
export const NATIVE_PRESET = 'superfast';
export const WASM_PRESET = 'ultrafast';
export const CRF = 23;
export const ULTRAFAST_CRF = 21;
export const VIDEO_MAXRATE_KBPS = 2200;
export const AUDIO_KBPS = 160;

/** The x264 preset an encoder gets unless told otherwise. */
export function presetFor(encoder: FrameEncoder['kind']): string {
  return encoder === 'native' ? NATIVE_PRESET : WASM_PRESET;
}

/** The H.264 arguments for `preset` (see above: ultrafast goes uncapped). */
export function x264Args(preset: string, fps: number): string[] {
  const capped = preset !== 'ultrafast';
  return [
    '-c:v', 'libx264', '-preset', preset, '-crf', String(capped ? CRF : ULTRAFAST_CRF),
    ...(capped ? ['-maxrate', `${VIDEO_MAXRATE_KBPS}k`, '-bufsize', `${VIDEO_MAXRATE_KBPS}k`] : []),
    '-pix_fmt', 'yuv420p', '-r', String(fps),
  ];
}

export interface ClipRenderOptions {
  /** A native ffmpeg; null renders with @ffmpeg/core (WebAssembly), slower. Ignored when `encoder` is given. */
  ffmpeg: string | null;
  encoder?: FrameEncoder;
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
    /** The credit line drawn over every frame (laid out for this width and height). */
    credit?: CreditOverlay;
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
  /** x264 preset; default NATIVE_PRESET or WASM_PRESET by encoder. */
  preset?: string;
}

export interface ClipRenderResult {
  audioFrames: number;
  videoFrames: number;
  /** Seconds spent: rendering the mix, drawing frames, and the whole job (ffmpeg included). */
  timings: { mixSec: number; drawSec: number; totalSec: number };
  /** The rendered mix (after marking): what the files carry, for measurements. */
  pcm: Float32Array;
  /** Which encoder made the files. */
  encoder: FrameEncoder['kind'];
}

/**
 * The ffmpeg arguments of a clip (after the inputs: 0 raw video, 1 the mix): {out0} the MP4, {out1} the M4A.
 * With `tee`, the AAC is encoded once and muxed into both files (ffmpeg's tee muxer); it needs output paths
 * without the tee muxer's special characters (see teeSafe), else each output encodes its own AAC.
 */
export function clipEncodeArgs(o: { preset: string; fps: number; durationSec: number; meta?: string[]; tee?: boolean }): string[] {
  const meta = o.meta ?? [];
  const video = x264Args(o.preset, o.fps);
  const aac = ['-c:a', 'aac', '-b:a', `${AUDIO_KBPS}k`, '-ar', String(SAMPLE_RATE)];
  const t = ['-t', String(o.durationSec)];
  if (o.tee) {
    return [
      '-map', '0:v', '-map', '1:a', ...video, ...aac, ...t, ...meta,
      '-f', 'tee', '[f=mp4:movflags=+faststart+use_metadata_tags]{out0}|[f=ipod:select=a:movflags=+faststart+use_metadata_tags]{out1}',
    ];
  }
  return [
    // The MP4: H.264 (yuv420p for every player) and AAC.
    '-map', '0:v', '-map', '1:a', ...video, ...aac, ...t, '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'mp4', '{out0}',
    // The audio alone.
    '-map', '1:a', ...aac, ...t, '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'ipod', '{out1}',
  ];
}

/** Whether a path can stand in a tee muxer's output list unescaped. */
export function teeSafe(file: string): boolean {
  return /^[\w/.+@-]+$/.test(file);
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
  checkFrameSize(width, height);
  if (!(fps > 0 && fps <= 60)) throw new RangeError('fps must be within 1–60');
  opts.signal?.throwIfAborted();

  // 1. The mix, on the live stream's block grid.
  const audioFrames = Math.round(opts.durationSec * SAMPLE_RATE);
  const mixStart = performance.now();
  let pcm = renderOffline(opts.stems, opts.bpm, opts.schedule, audioFrames);
  if (opts.markAudio) pcm = await opts.markAudio(pcm);
  const mixSec = (performance.now() - mixStart) / 1000;
  opts.onProgress?.(0.05, 'audio');

  // 2. The frames, drawn straight into the encoder's buffers while it encodes the previous ones.
  const videoFrames = Math.round(opts.durationSec * fps);
  const energies = frameEnergies(pcm, fps, videoFrames, toEnergy);
  const meta = metadataArgs(opts.metadata);
  const tee = teeSafe(opts.outputs.mp4) && teeSafe(opts.outputs.audio);
  const { encoder, drawSec } = await pipeFrames({
    ffmpeg: opts.ffmpeg,
    ...(opts.encoder ? { encoder: opts.encoder } : {}),
    width,
    height,
    fps,
    frames: videoFrames,
    audio: { pcm, sampleRate: SAMPLE_RATE },
    args: (kind) => clipEncodeArgs({ preset: opts.preset ?? presetFor(kind), fps, durationSec: opts.durationSec, meta, tee }),
    outputs: [opts.outputs.mp4, opts.outputs.audio],
    workDir: opts.workDir,
    ...(opts.signal ? { signal: opts.signal } : {}),
    draw: (frame, f) => {
      opts.video.engine.renderFrameYuv420(frame, width, height, opts.video.frameAt(f / fps, energies[f]!));
      opts.video.credit?.drawYuv420(frame);
    },
    onFrame: (f) => {
      if (f % fps === 0) opts.onProgress?.(0.05 + 0.9 * (f / videoFrames), 'video');
    },
  });
  opts.onProgress?.(1, 'video');
  return { audioFrames, videoFrames, timings: { mixSec, drawSec, totalSec: (performance.now() - started) / 1000 }, pcm, encoder };
}
