// Tempo and pitch together: pitch = time-stretch + resampling. The WSOLA
// stretcher runs at speed tempo / ratio, and a resampler reads its output
// `ratio` frames per output frame (ratio = 2^(semitones/12)). Net: the source
// advances at `tempo`, and every frequency is multiplied by `ratio`,
// independently of each other.
//
// The resampler is a 4-point cubic (Catmull-Rom) interpolator. When it reads
// faster than 1 (pitch up) the stretched signal is first low-passed at
// 0.47·fs/ratio by a 4th-order Butterworth (two TPT SVFs) so that the top
// octave does not alias back into the audible band; reading slower (pitch down)
// the cubic's own roll-off does the imaging filtering, imperfectly (faint
// images above ~12 kHz at −12 st).
//
// Artefacts: those of WSOLA (see time-stretch.ts), stronger for pitch than for
// tempo because pitch ±12 st means stretching by ×2 / ×0.5 before resampling;
// formants move with the pitch (voices sound "chipmunk"/"giant"), as in any
// time-domain shifter.
import { StereoSvf, prewarp } from './svf.ts';
import { REBASE_FRAMES, WsolaStretcher, type StretchFeed } from './time-stretch.ts';

const RING_FRAMES = 8192;
const RING_MASK = RING_FRAMES - 1;
const GEN_FRAMES = 1024;
const AA_FRACTION = 0.47;
const BUTTERWORTH_Q1 = 0.5411961001461969;
const BUTTERWORTH_Q2 = 1.3065629648763766;

export class TimePitch {
  readonly stretcher: WsolaStretcher;
  private readonly sampleRate: number;
  private readonly aa1 = new StereoSvf();
  private readonly aa2 = new StereoSvf();
  private readonly ring = new Float32Array(RING_FRAMES * 2);
  private readonly scratch = new Float64Array(GEN_FRAMES * 2);
  /** Stretched frames written into the ring. */
  private written = 0;
  /** Read position in stretched frames. */
  private readPos = 0;
  private ratio0 = 1;
  private ratio1 = 1;

  constructor(sampleRate: number, hop: number, overlap: number, tolerance: number) {
    this.sampleRate = sampleRate;
    this.stretcher = new WsolaStretcher(hop, overlap, tolerance);
  }

  /** Starts afresh: the next output frame is the next input frame pushed. */
  reset(ratio: number): void {
    this.stretcher.reset();
    this.aa1.reset();
    this.aa2.reset();
    this.ring.fill(0);
    this.written = 0;
    this.readPos = 0;
    this.ratio0 = ratio;
    this.ratio1 = ratio;
    this.setAntiAlias(ratio);
    this.aa1.jump();
    this.aa2.jump();
  }

  /** Parameters of the next block: the tempo at its end and the pitch ratio at its start and end. */
  setBlock(tempo: number, ratioStart: number, ratioEnd: number): void {
    this.ratio0 = ratioStart;
    this.ratio1 = ratioEnd;
    this.stretcher.speed = tempo / ratioEnd;
    if (ratioStart !== ratioEnd) this.setAntiAlias(ratioEnd);
  }

  /** Input frames pushed but not yet heard: the look-ahead between the source read head and the output. */
  get bufferedInput(): number {
    return this.stretcher.pushed - this.stretcher.inputIndexAt(this.readPos);
  }

  /** Pulls input until at least `frames` input frames are buffered beyond what is being heard. */
  prefeed(frames: number, feed: StretchFeed): void {
    while (this.bufferedInput < frames) feed.feedStretch();
  }

  /** Writes `frames` output frames into out (interleaved, from frame 0). */
  produce(out: Float64Array, frames: number, feed: StretchFeed): void {
    const st = this.stretcher;
    st.rebaseInputIfNeeded();
    if (this.written >= 1 << 30) {
      this.written -= REBASE_FRAMES;
      this.readPos -= REBASE_FRAMES;
      st.rebaseOutput(REBASE_FRAMES);
    }
    const p0 = this.ratio0;
    const p1 = this.ratio1;
    // The last frame reads at most frames·max(p) ahead; Catmull-Rom needs two frames past it.
    const need = Math.floor(this.readPos + frames * (p0 > p1 ? p0 : p1)) + 3;
    const ring = this.ring;
    const scratch = this.scratch;
    while (this.written < need) {
      const count = Math.min(need - this.written, GEN_FRAMES);
      st.generate(scratch, 0, count, feed);
      this.aa1.process(scratch, count);
      this.aa2.process(scratch, count);
      let w = this.written;
      for (let i = 0, j = 0; i < count; i++, j += 2, w++) {
        const a = (w & RING_MASK) * 2;
        ring[a] = scratch[j]!;
        ring[a + 1] = scratch[j + 1]!;
      }
      this.written = w;
    }
    const dp = (p1 - p0) / frames;
    let p = p0;
    let pos = this.readPos;
    for (let i = 0, j = 0; i < frames; i++, j += 2) {
      const idx = Math.floor(pos);
      const t = pos - idx;
      const am = ((idx - 1) & RING_MASK) * 2;
      const a0 = (idx & RING_MASK) * 2;
      const a1 = ((idx + 1) & RING_MASK) * 2;
      const a2 = ((idx + 2) & RING_MASK) * 2;
      out[j] = catmullRom(ring[am]!, ring[a0]!, ring[a1]!, ring[a2]!, t);
      out[j + 1] = catmullRom(ring[am + 1]!, ring[a0 + 1]!, ring[a1 + 1]!, ring[a2 + 1]!, t);
      p += dp;
      pos += p;
    }
    this.readPos = pos;
  }

  private setAntiAlias(ratio: number): void {
    const g = prewarp((AA_FRACTION * this.sampleRate) / (ratio > 1 ? ratio : 1), this.sampleRate);
    this.aa1.lowpass(g, BUTTERWORTH_Q1, 1);
    this.aa2.lowpass(g, BUTTERWORTH_Q2, 1);
  }
}

function catmullRom(xm1: number, x0: number, x1: number, x2: number, t: number): number {
  const c1 = 0.5 * (x1 - xm1);
  const c2 = xm1 - 2.5 * x0 + 2 * x1 - 0.5 * x2;
  const c3 = 0.5 * (x2 - xm1) + 1.5 * (x0 - x1);
  return ((c3 * t + c2) * t + c1) * t + x0;
}
