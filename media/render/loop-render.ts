// A short seamless loop of the visuals: MP4 (H.264) and GIF.
//
// Seamless: the loop's last frame must lead into its first. The engine draws
// `seconds + fade` of motion; the first `fade` seconds of the output are a
// cross-fade from the frames after the loop's end (which continue from its
// last frame) into the frames at its start. So frame N−1 is followed by frame
// 0, which is (nearly all) frame N: the motion runs on without a jump.
import { spawn } from 'node:child_process';
import fsp from 'node:fs/promises';
import type { FrameInput, VisualEngine } from '../../shared/visual-engine.ts';
import { RenderError } from './clip-render.ts';

export interface LoopRenderOptions {
  ffmpeg: string;
  engine: VisualEngine;
  width: number;
  height: number;
  fps: number;
  seconds: number;
  /** Length of the cross-fade that closes the loop (default 0.5 s, at most half the loop). */
  fadeSec?: number;
  frameAt(tSec: number): FrameInput;
  /** GIF width (height follows); default 480. */
  gifWidth?: number;
  metadata?: Record<string, string>;
  outputs: { mp4: string; gif: string };
  signal?: AbortSignal;
  onProgress?: (fraction: number) => void;
}

export async function renderLoop(opts: LoopRenderOptions): Promise<{ frames: number }> {
  const { width: w, height: h, fps } = opts;
  if (!(opts.seconds >= 1 && opts.seconds <= 15)) throw new RangeError(`a loop lasts 1–15 s, not ${opts.seconds}`);
  if (!Number.isInteger(w) || !Number.isInteger(h) || w < 16 || h < 16 || w % 2 || h % 2) throw new RangeError('width and height must be even integers ≥ 16');
  const n = Math.round(opts.seconds * fps);
  const f = Math.min(Math.floor(n / 2), Math.round((opts.fadeSec ?? 0.5) * fps));
  // The frames after the end, which the start fades in from.
  const tail: Uint8ClampedArray[] = [];
  for (let k = 0; k < f; k++) {
    const frame = new Uint8ClampedArray(w * h * 4);
    opts.engine.renderFrame(frame, w, h, opts.frameAt((n + k) / fps));
    tail.push(frame);
  }
  const meta = Object.entries(opts.metadata ?? {}).flatMap(([k, v]) => ['-metadata', `${k}=${v}`]);
  const gifWidth = Math.min(w, opts.gifWidth ?? 480);
  const mp4Part = `${opts.outputs.mp4}.part`;
  const gifPart = `${opts.outputs.gif}.part`;
  const args = [
    '-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${w}x${h}`, '-r', String(fps), '-i', 'pipe:0',
    '-filter_complex', `[0:v]split[a][b];[b]fps=15,scale=${gifWidth}:-2:flags=lanczos,split[g1][g2];[g1]palettegen=stats_mode=diff[p];[g2][p]paletteuse=dither=bayer:bayer_scale=3[gif]`,
    '-map', '[a]', '-c:v', 'libx264', '-preset', 'veryfast', '-crf', '20', '-pix_fmt', 'yuv420p', '-movflags', '+faststart+use_metadata_tags', ...meta, '-f', 'mp4', mp4Part,
    '-map', '[gif]', '-loop', '0', '-f', 'gif', gifPart,
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
  try {
    const frame = new Uint8ClampedArray(w * h * 4);
    for (let k = 0; k < n; k++) {
      if (opts.signal?.aborted) break;
      opts.engine.renderFrame(frame, w, h, opts.frameAt(k / fps));
      if (k < f) {
        // From the frame after the end (weight 1 at k = 0) to the loop's own frame.
        const a = (f - k) / f;
        const src = tail[k]!;
        for (let i = 0; i < frame.length; i++) frame[i] = src[i]! * a + frame[i]! * (1 - a);
      }
      if (!child.stdin.write(Buffer.from(frame.buffer.slice(0)))) await new Promise<void>((resolve) => child.stdin.once('drain', resolve));
      opts.onProgress?.(k / n);
    }
    child.stdin.end();
    const code = await exited;
    opts.signal?.throwIfAborted();
    if (code !== 0) throw new RenderError(`ffmpeg failed (exit ${code}): ${stderr.trim().split('\n').slice(-3).join(' | ') || 'no message'}`);
    await fsp.rename(mp4Part, opts.outputs.mp4);
    await fsp.rename(gifPart, opts.outputs.gif);
    return { frames: n };
  } catch (err) {
    child.kill('SIGKILL');
    await exited.catch(() => null);
    await fsp.rm(mp4Part, { force: true });
    await fsp.rm(gifPart, { force: true });
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}
