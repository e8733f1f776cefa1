// The one way drawn frames go to ffmpeg, for every render kind (clip-render.ts,
// loop-render.ts): the caller says what to draw for frame k and which ffmpeg
// arguments make its outputs; this picks the encoder (encoder.ts: a native ffmpeg
// fed by a worker thread that writes each frame to its stdin as the pipe takes it,
// or @ffmpeg/core), draws every frame straight into the encoder's next free frame
// slot (so drawing waits while ffmpeg is behind: the backpressure), and finishes,
// renaming the outputs into place only when ffmpeg has succeeded.
//
// On any failure or abort it stops the encoder (ffmpeg killed and waited for, so
// nothing is left running or unreaped) and removes the partial (`.part`) outputs
// before the error goes on; ffmpeg's own failures come as a RenderError carrying
// the tail of its stderr.
import { EncoderError, frameBytes, pickEncoder, type EncodeJob, type EncodeSession, type FrameEncoder } from './encoder.ts';

/** The raw frames the renderers draw and hand to the encoder (the engine draws them so). */
export const FRAME_PIXEL_FORMAT = 'yuv420p';

export class RenderError extends Error {
  override readonly name = 'RenderError';
}

export interface FramePipe {
  /** A native ffmpeg; null encodes with @ffmpeg/core (WebAssembly), slower. Ignored when `encoder` is given. */
  ffmpeg: string | null;
  encoder?: FrameEncoder;
  width: number;
  height: number;
  fps: number;
  /** How many frames to draw. */
  frames: number;
  /** Interleaved stereo PCM, ffmpeg's input 1. */
  audio?: EncodeJob['audio'];
  /** ffmpeg's arguments after the inputs (input 0 the frames), for the encoder picked; `{outN}` stands for output N. */
  args(encoder: FrameEncoder['kind']): readonly string[];
  /** Final paths of the outputs, in `{outN}` order. */
  outputs: readonly string[];
  /** Folder for intermediate files (the native encoder's audio), on the outputs' file system. */
  workDir: string;
  signal?: AbortSignal;
  /** Draws frame `index` into `frame` (frameBuffer-sized, FRAME_PIXEL_FORMAT). */
  draw(frame: Uint8ClampedArray, index: number): void;
  /** Frame `index` has gone to the encoder. */
  onFrame?(index: number): void;
}

export interface FramePipeResult {
  encoder: FrameEncoder['kind'];
  /** Seconds spent in `draw`. */
  drawSec: number;
}

/** Refuses a frame size the encoders cannot take (yuv420p halves both sides). */
export function checkFrameSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 16 || height < 16 || width % 2 || height % 2) {
    throw new RangeError('width and height must be even integers ≥ 16');
  }
}

/** A frame buffer of the pipe's format, for frames drawn ahead (a loop's cross-fade). */
export function frameBuffer(width: number, height: number): Uint8ClampedArray {
  return new Uint8ClampedArray(frameBytes(FRAME_PIXEL_FORMAT, width, height));
}

/** `-metadata key=value` for each entry (what the files carry: the signed manifest, a title). */
export function metadataArgs(metadata: Record<string, string> | undefined): string[] {
  return Object.entries(metadata ?? {}).flatMap(([k, v]) => ['-metadata', `${k}=${v}`]);
}

export async function pipeFrames(pipe: FramePipe): Promise<FramePipeResult> {
  checkFrameSize(pipe.width, pipe.height);
  const encoder = pipe.encoder ?? pickEncoder(pipe.ffmpeg);
  const session = start(encoder, {
    width: pipe.width,
    height: pipe.height,
    fps: pipe.fps,
    pixelFormat: FRAME_PIXEL_FORMAT,
    frames: pipe.frames,
    ...(pipe.audio ? { audio: pipe.audio } : {}),
    args: pipe.args(encoder.kind),
    outputs: pipe.outputs,
    workDir: pipe.workDir,
    ...(pipe.signal ? { signal: pipe.signal } : {}),
  });
  let drawSec = 0;
  try {
    for (let k = 0; k < pipe.frames; k++) {
      // Waits for a free slot: ffmpeg sets the pace.
      const frame = await session.nextFrame();
      pipe.signal?.throwIfAborted();
      const t0 = performance.now();
      pipe.draw(frame, k);
      drawSec += (performance.now() - t0) / 1000;
      session.commitFrame();
      pipe.onFrame?.(k);
    }
    await session.finish();
  } catch (err) {
    // Kills ffmpeg, waits for it, removes the partial outputs.
    await session.abort();
    if (err instanceof EncoderError) throw new RenderError(err.message);
    throw err;
  }
  return { encoder: encoder.kind, drawSec };
}

/** Starts an encode; an encoder that cannot start (e.g. @ffmpeg/core missing) is a RenderError. */
function start(encoder: FrameEncoder, job: EncodeJob): EncodeSession {
  try {
    return encoder.start(job);
  } catch (err) {
    if (err instanceof EncoderError) throw new RenderError(err.message);
    throw err;
  }
}
