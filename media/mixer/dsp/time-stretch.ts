// Time-stretch by WSOLA (waveform-similarity overlap-add, Verhelst & Roelands
// 1993), in the long-segment form SoundTouch made popular for music: the output
// is a chain of segments of `hop` frames copied from the input, each joined to
// the previous one by a short raised-cosine crossfade of `overlap` frames. The
// k-th segment nominally starts at input k·hop·speed; it is moved by up to
// ±`tolerance` frames to where its start best matches the natural continuation
// of the previous segment (normalised cross-correlation), so the joins are
// nearly in phase and the pitch is untouched. speed > 1 skips material, < 1
// repeats it.
//
// The search is coarse-to-fine to stay cheap: first on the mono sum decimated
// by 8 (box sums) over the whole tolerance, then at full rate ±7 frames around
// the best coarse match.
//
// Artefacts (known, accepted for a live remix): on a full mix the joins can
// double or swallow a transient ("stutter" on drums), sustained polyphonic
// chords can get a slight periodic roughness at the segment rate (~33 Hz at
// 30 ms segments), and the further speed is from 1 the more of both. At speed 1
// every segment continues the last exactly.

/** Pushes at least one more chunk of input into the stretcher. */
export interface StretchFeed {
  feedStretch(): void;
}

const RING_FRAMES = 16384; // power of two; must hold search history + look-ahead (< 8k frames at speed 0.375–2.5)
const RING_MASK = RING_FRAMES - 1;
const DECIMATION = 8;
const DEC_FRAMES = RING_FRAMES / DECIMATION;
const DEC_MASK = DEC_FRAMES - 1;
const MAP_SIZE = 32;
/** Indices are rebased by this much (a multiple of the rings) before int32 masks could overflow. */
export const REBASE_FRAMES = 1 << 29;
const REBASE_AT = 1 << 30;
/** Finer than this the fine search does not go (frames around the coarse match). */
const FINE_RADIUS = DECIMATION - 1;

export class WsolaStretcher {
  readonly hop: number;
  readonly overlap: number;
  readonly tolerance: number;
  /** Input frames consumed per output frame, read at each segment start. */
  speed = 1;
  /** When set, every new segment continues the previous one exactly (no search, no look-ahead). */
  draining = false;
  /** Input frames pushed since the last reset. */
  pushed = 0;
  /** Output frames generated since the last reset. */
  produced = 0;
  private readonly ring = new Float32Array(RING_FRAMES * 2);
  private readonly mono = new Float32Array(RING_FRAMES);
  private readonly dec = new Float32Array(DEC_FRAMES);
  private decAcc = 0;
  private segStart = 0;
  private segPos = 0;
  /** Input index where the previous segment would have continued; -1 when the current segment needs no crossfade. */
  private prevCont = -1;
  private nominal = 0;
  private readonly fadeIn: Float64Array;
  private readonly mapOut = new Float64Array(MAP_SIZE);
  private readonly mapIn = new Float64Array(MAP_SIZE);
  private mapCount = 0;

  constructor(hop: number, overlap: number, tolerance: number) {
    if (overlap % DECIMATION !== 0 || overlap > hop) throw new RangeError('overlap must be a multiple of 8 and at most the hop');
    this.hop = hop;
    this.overlap = overlap;
    this.tolerance = tolerance;
    this.fadeIn = new Float64Array(overlap);
    for (let i = 0; i < overlap; i++) this.fadeIn[i] = 0.5 - 0.5 * Math.cos((Math.PI * (i + 0.5)) / overlap);
    this.reset();
  }

  reset(): void {
    this.pushed = 0;
    this.produced = 0;
    this.decAcc = 0;
    this.segStart = 0;
    this.segPos = 0;
    this.prevCont = -1;
    this.nominal = 0;
    this.draining = false;
    this.mapCount = 0;
    this.record(0, 0);
  }

  push(buf: Float64Array, frames: number): void {
    const ring = this.ring;
    const mono = this.mono;
    const dec = this.dec;
    let idx = this.pushed;
    let acc = this.decAcc;
    for (let i = 0, j = 0; i < frames; i++, j += 2, idx++) {
      const l = buf[j]!;
      const r = buf[j + 1]!;
      const a = idx & RING_MASK;
      ring[a * 2] = l;
      ring[a * 2 + 1] = r;
      const m = l + r;
      mono[a] = m;
      acc += m;
      if ((idx & (DECIMATION - 1)) === DECIMATION - 1) {
        dec[(idx >> 3) & DEC_MASK] = acc;
        acc = 0;
      }
    }
    this.decAcc = acc;
    this.pushed = idx;
  }

  /** Input index that output frame `pos` (fractional) was taken from. */
  inputIndexAt(pos: number): number {
    const n = Math.min(this.mapCount, MAP_SIZE);
    for (let i = 1; i <= n; i++) {
      const slot = (this.mapCount - i) & (MAP_SIZE - 1);
      const start = this.mapOut[slot]!;
      if (start <= pos) return this.mapIn[slot]! + (pos - start);
    }
    const oldest = (this.mapCount - n) & (MAP_SIZE - 1);
    return this.mapIn[oldest]! + (pos - this.mapOut[oldest]!);
  }

  /** Generates `count` output frames into dst (interleaved) from frame `dstFrame` on, pulling input from `feed` as needed. */
  generate(dst: Float64Array, dstFrame: number, count: number, feed: StretchFeed): void {
    const ring = this.ring;
    const fade = this.fadeIn;
    let o = dstFrame * 2;
    while (count > 0) {
      if (this.segPos >= this.hop) this.nextSegment(feed);
      const len = Math.min(count, this.hop - this.segPos);
      const base = this.segStart;
      this.ensure(base + this.segPos + len, feed);
      let j = this.segPos;
      const end = j + len;
      const cont = this.prevCont;
      if (cont >= 0 && j < this.overlap) {
        const ovEnd = end < this.overlap ? end : this.overlap;
        for (; j < ovEnd; j++) {
          const w = fade[j]!;
          const a = ((base + j) & RING_MASK) * 2;
          const b = ((cont + j) & RING_MASK) * 2;
          const bl = ring[b]!;
          const br = ring[b + 1]!;
          dst[o] = bl + (ring[a]! - bl) * w;
          dst[o + 1] = br + (ring[a + 1]! - br) * w;
          o += 2;
        }
      }
      for (; j < end; j++) {
        const a = ((base + j) & RING_MASK) * 2;
        dst[o] = ring[a]!;
        dst[o + 1] = ring[a + 1]!;
        o += 2;
      }
      this.segPos = end;
      this.produced += len;
      count -= len;
    }
  }

  /** Moves every input index down by REBASE_FRAMES once they grow large (keeps `&` masks in int32 range). */
  rebaseInputIfNeeded(): number {
    if (this.pushed < REBASE_AT) return 0;
    const k = REBASE_FRAMES;
    this.pushed -= k;
    this.segStart -= k;
    if (this.prevCont >= 0) this.prevCont -= k;
    this.nominal -= k;
    for (let i = 0; i < MAP_SIZE; i++) this.mapIn[i] = this.mapIn[i]! - k;
    return k;
  }

  /** Moves every output index down by `k` (the owner's output counter was rebased). */
  rebaseOutput(k: number): void {
    this.produced -= k;
    for (let i = 0; i < MAP_SIZE; i++) this.mapOut[i] = this.mapOut[i]! - k;
  }

  private ensure(inputEnd: number, feed: StretchFeed): void {
    while (this.pushed < inputEnd) feed.feedStretch();
  }

  private record(outputStart: number, inputStart: number): void {
    const slot = this.mapCount & (MAP_SIZE - 1);
    this.mapOut[slot] = outputStart;
    this.mapIn[slot] = inputStart;
    this.mapCount++;
  }

  private nextSegment(feed: StretchFeed): void {
    const cont = this.segStart + this.hop;
    let x: number;
    if (this.draining) {
      x = cont;
      this.nominal = cont;
    } else {
      this.nominal += this.hop * this.speed;
      const center = Math.round(this.nominal);
      this.ensure(Math.max(cont, center + this.tolerance) + this.overlap + 2 * DECIMATION, feed);
      x = this.search(cont, center);
    }
    // Continuing exactly needs no crossfade (and keeps speed 1 bit-clean).
    this.prevCont = x === cont ? -1 : cont;
    this.segStart = x;
    this.segPos = 0;
    this.record(this.produced, x);
  }

  /** The segment start in [center ± tolerance] whose first `overlap` frames best match those at `ref`. */
  private search(ref: number, center: number): number {
    const O = this.overlap;
    // The oldest input still in the ring bounds the search from below.
    const floor = Math.max(0, this.pushed - RING_FRAMES + 4 * DECIMATION);
    const lo = Math.max(center - this.tolerance, floor);
    const hi = Math.max(center + this.tolerance, lo);
    // Coarse: decimated blocks are aligned to multiples of 8, so candidates keep ref's offset within its block.
    const dec = this.dec;
    const off = ref & (DECIMATION - 1);
    const refD = (ref - off) >> 3;
    const nD = O >> 3;
    const firstD = Math.ceil((lo - off) / DECIMATION);
    const lastD = Math.floor((hi - off) / DECIMATION);
    const centerD = (center - off) / DECIMATION;
    let bestD = firstD;
    let bestScore = -Infinity;
    let energy = 0;
    for (let i = 0; i < nD; i++) {
      const v = dec[(firstD + i) & DEC_MASK]!;
      energy += v * v;
    }
    for (let cD = firstD; cD <= lastD; cD++) {
      let corr = 0;
      for (let i = 0; i < nD; i++) corr += dec[(refD + i) & DEC_MASK]! * dec[(cD + i) & DEC_MASK]!;
      const score = energy > 1e-20 ? corr / Math.sqrt(energy) : 0;
      if (score > bestScore || (score === bestScore && Math.abs(cD - centerD) < Math.abs(bestD - centerD))) {
        bestScore = score;
        bestD = cD;
      }
      const outV = dec[cD & DEC_MASK]!;
      const inV = dec[(cD + nD) & DEC_MASK]!;
      energy += inV * inV - outV * outV;
      if (energy < 0) energy = 0;
    }
    // Fine: full rate around the coarse winner.
    const coarse = bestD * DECIMATION + off;
    const fLo = Math.max(lo, coarse - FINE_RADIUS);
    const fHi = Math.min(hi, coarse + FINE_RADIUS);
    const mono = this.mono;
    let best = Math.min(Math.max(coarse, lo), hi);
    bestScore = -Infinity;
    for (let x = fLo; x <= fHi; x++) {
      let corr = 0;
      let e = 0;
      for (let i = 0; i < O; i++) {
        const c = mono[(x + i) & RING_MASK]!;
        corr += mono[(ref + i) & RING_MASK]! * c;
        e += c * c;
      }
      const score = e > 1e-20 ? corr / Math.sqrt(e) : 0;
      if (score > bestScore || (score === bestScore && Math.abs(x - center) < Math.abs(best - center))) {
        bestScore = score;
        best = x;
      }
    }
    return best;
  }
}
