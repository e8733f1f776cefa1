// The read head over the stems: where in the piece the next source frame comes
// from. It wraps at the end of the play region and jumps on a seek, and every
// jump is an equal-power crossfade between the old read position (which keeps
// reading past the jump for the length of the fade) and the new one. The fade
// happens on the raw stem samples, before the channel strips, so their filters
// see a continuous signal and do not ring on the jump.
//
// Each source chunk is described as up to a few segments (a plain read, or a
// crossfade of two reads); every stem applies the same plan, so the transport
// logic runs once per chunk, not once per stem.

const MAX_SEGMENTS = 16;

export class SourceTransport {
  readonly fadeFrames: number;
  /** Gains of the incoming and outgoing read over a crossfade (sin/cos, equal power). */
  readonly fadeIn: Float64Array;
  readonly fadeOut: Float64Array;
  /** The next frame the main read takes. */
  readPos = 0;
  regionStart = 0;
  regionEnd = 1;
  private fadePos = 0;
  private fadeLeft = 0;
  private pendingSeek = -1;
  /** Frames read since the pending seek was asked for: the seek lands that much further on. */
  private pendingAge = 0;

  /** The plan of the last chunk: segment i covers frames [dst, dst + len) of the chunk. */
  segments = 0;
  readonly segDst = new Int32Array(MAX_SEGMENTS);
  readonly segLen = new Int32Array(MAX_SEGMENTS);
  /** Source frame of the main read at the segment start. */
  readonly segMain = new Float64Array(MAX_SEGMENTS);
  /** Source frame of the fading-out read, or -1 when the segment is a plain read. */
  readonly segFading = new Float64Array(MAX_SEGMENTS);
  /** Index into fadeIn/fadeOut at the segment start. */
  readonly segFadeAt = new Int32Array(MAX_SEGMENTS);

  constructor(fadeFrames: number) {
    this.fadeFrames = fadeFrames;
    this.fadeIn = new Float64Array(fadeFrames);
    this.fadeOut = new Float64Array(fadeFrames);
    for (let i = 0; i < fadeFrames; i++) {
      const phase = ((i + 0.5) / fadeFrames) * (Math.PI / 2);
      this.fadeIn[i] = Math.sin(phase);
      this.fadeOut[i] = Math.cos(phase);
    }
  }

  setRegion(startFrame: number, endFrame: number): void {
    this.regionStart = startFrame;
    this.regionEnd = endFrame;
  }

  /** Jumps to `frame` with a crossfade, as soon as any crossfade in progress has finished. */
  seek(frame: number): void {
    this.pendingSeek = frame;
    this.pendingAge = 0;
  }

  /** Jumps at once, without a fade: only while nothing is audible. */
  jump(frame: number): void {
    this.readPos = frame;
    this.fadeLeft = 0;
    this.pendingSeek = -1;
  }

  get fading(): boolean {
    return this.fadeLeft > 0 || this.pendingSeek >= 0;
  }

  /** Plans the next `frames` source frames and advances the read head past them. */
  planChunk(frames: number): void {
    let pos = 0;
    let seg = 0;
    while (pos < frames) {
      if (this.fadeLeft === 0) {
        if (this.pendingSeek >= 0) {
          this.startFade(this.pendingSeek + this.pendingAge);
          this.pendingSeek = -1;
        } else if (this.readPos >= this.regionEnd || this.readPos < this.regionStart) {
          // Wrapping keeps the overshoot (from a fade that ran past the end), as the room's transport does.
          const over = this.readPos - this.regionEnd;
          const len = this.regionEnd - this.regionStart;
          this.startFade(over >= 0 && over < len ? this.regionStart + over : this.regionStart);
        }
      }
      let len = frames - pos;
      if (this.fadeLeft > 0) {
        if (this.fadeLeft < len) len = this.fadeLeft;
      } else if (this.regionEnd - this.readPos < len) len = this.regionEnd - this.readPos;
      if (seg === MAX_SEGMENTS - 1) {
        // Unreachable with regions longer than two fades; if it ever were, read plainly rather than loop.
        len = frames - pos;
        this.fadeLeft = 0;
      }
      this.segDst[seg] = pos;
      this.segLen[seg] = len;
      this.segMain[seg] = this.readPos;
      this.segFading[seg] = this.fadeLeft > 0 ? this.fadePos : -1;
      this.segFadeAt[seg] = this.fadeFrames - this.fadeLeft;
      this.readPos += len;
      if (this.fadeLeft > 0) {
        this.fadePos += len;
        this.fadeLeft -= len;
      }
      if (this.pendingSeek >= 0) this.pendingAge += len;
      pos += len;
      seg++;
    }
    this.segments = seg;
  }

  private startFade(to: number): void {
    this.fadePos = this.readPos;
    this.readPos = to;
    this.fadeLeft = this.fadeFrames;
  }
}
