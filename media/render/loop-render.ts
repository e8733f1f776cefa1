// A short seamless loop of the visuals: MP4 (H.264) and GIF, through the
// native or the WebAssembly encoder (encoder.ts; both have the GIF encoder and
// the palettegen/paletteuse filters).
//
// Seamless: the loop's last frame must lead into its first. The engine draws
// `seconds + fade` of motion; the first `fade` seconds of the output are a
// cross-fade from the frames after the loop's end (which continue from its
// last frame) into the frames at its start. So frame N−1 is followed by frame
// 0, which is (nearly all) frame N: the motion runs on without a jump. Frames
// are drawn and cross-faded as yuv420p (a linear map of RGB, so the fade is the
// same), as the clip renderer hands them over, through the same pipe to ffmpeg
// (ffmpeg-pipe.ts).
import path from 'node:path';
import type { FrameInput, VisualEngine } from '../../shared/visual-engine.ts';
import { presetFor, x264Args } from './clip-render.ts';
import type { CreditOverlay } from './credit.ts';
import type { FrameEncoder } from './encoder.ts';
import { checkFrameSize, frameBuffer, metadataArgs, pipeFrames } from './ffmpeg-pipe.ts';

export interface LoopRenderOptions {
  /** A native ffmpeg; null encodes with @ffmpeg/core (WebAssembly). Ignored when `encoder` is given. */
  ffmpeg: string | null;
  encoder?: FrameEncoder;
  engine: VisualEngine;
  width: number;
  height: number;
  fps: number;
  seconds: number;
  /** Length of the cross-fade that closes the loop (default 0.5 s, at most half the loop). */
  fadeSec?: number;
  frameAt(tSec: number): FrameInput;
  /** The credit line drawn over every frame (after the cross-fade, so that it stands still). */
  credit?: CreditOverlay;
  /** GIF width (height follows); default 480. */
  gifWidth?: number;
  metadata?: Record<string, string>;
  outputs: { mp4: string; gif: string };
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export async function renderLoop(opts: LoopRenderOptions): Promise<{ frames: number; encoder: FrameEncoder['kind'] }> {
  const { width: w, height: h, fps } = opts;
  if (!(opts.seconds >= 1 && opts.seconds <= 15)) throw new RangeError(`a loop lasts 1–15 s, not ${opts.seconds}`);
  checkFrameSize(w, h);
  const n = Math.round(opts.seconds * fps);
  const f = Math.min(Math.floor(n / 2), Math.round((opts.fadeSec ?? 0.5) * fps));
  // The frames after the end, which the start fades in from.
  const tail: Uint8ClampedArray[] = [];
  for (let k = 0; k < f; k++) {
    const frame = frameBuffer(w, h);
    opts.engine.renderFrameYuv420(frame, w, h, opts.frameAt((n + k) / fps));
    tail.push(frame);
  }
  const meta = metadataArgs(opts.metadata);
  const gifWidth = Math.min(w, opts.gifWidth ?? 480);
  const { encoder } = await pipeFrames({
    ffmpeg: opts.ffmpeg,
    ...(opts.encoder ? { encoder: opts.encoder } : {}),
    width: w,
    height: h,
    fps,
    frames: n,
    args: (kind) => [
      '-filter_complex', `[0:v]split[a][b];[b]fps=15,scale=${gifWidth}:-2:flags=lanczos,split[g1][g2];[g1]palettegen=stats_mode=diff[p];[g2][p]paletteuse=dither=bayer:bayer_scale=3[gif]`,
      '-map', '[a]', ...x264Args(presetFor(kind), fps), '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'mp4', '{out0}',
      '-map', '[gif]', '-loop', '0', '-f', 'gif', '{out1}',
    ],
    outputs: [opts.outputs.mp4, opts.outputs.gif],
    workDir: path.dirname(opts.outputs.mp4),
    ...(opts.signal ? { signal: opts.signal } : {}),
    draw: (frame, k) => {
      opts.engine.renderFrameYuv420(frame, w, h, opts.frameAt(k / fps));
      if (k < f) {
        // From the frame after the end (weight 1 at k = 0) to the loop's own frame.
        const a = (f - k) / f;
        const src = tail[k]!;
        for (let i = 0; i < frame.length; i++) frame[i] = src[i]! * a + frame[i]! * (1 - a);
      }
      opts.credit?.drawYuv420(frame);
    },
    onFrame: (k) => opts.onProgress?.(k / n),
  });
  return { frames: n, encoder };
}
