// The visual engine: draws one frame of the visuals from (params, time, the music's
// energy and beat, the artwork) into an RGBA buffer. The browser draws it live and the
// renderer draws the same frames for a clip, so it is deterministic: the same inputs
// give the same bytes in Node and in Chromium (see visual-math.ts for what that rests
// on: table trig, no Math.sin/pow/exp, exactly rounded double arithmetic, and
// Uint8ClampedArray's round-half-to-even on store).
//
// How a frame is made, cheaply enough for 1280x720 in a few ms on one core:
//   1. Per params (cached): the chosen artworks are blended, softened (blur) and have
//      their hue bands pushed or greyed out into one 512x512 "composite" texture.
//   2. Per frame: the motion (drift, zoom, rotation, pulse, ripple, glitch) becomes
//      per-row and per-column tables, because the affine warp plus a row wave and a
//      column wave is separable: a texel coordinate is one row term plus one column
//      term. The kaleidoscope adds a fold through precomputed polar tables.
//      Colour (hue rotation, saturation, contrast, brightness, warmth, the beat's
//      light swell) is one 3x4 matrix.
//   3. The frame is drawn at a lower internal size (half by default) and scaled up by
//      copying whole pixels — or, for an encoder (renderFrameYuv420), written as
//      yuv420p, each internal pixel one 2x2 block.
// During a prompt change the engine draws both params and cross-fades the pixels (the
// caller gives `from`, `to` and `mix = crossfadeMix(secondsSinceChange)`, all derived
// from the room document and the transport clock, so live and offline agree).
//
// Flashing: large-area light changes are bounded by construction. The beat's light
// swell is at most ±PULSE_LIGHT of the picture's level, the music's energy moves it by
// at most ±ENERGY_LIGHT, glitches only move rows sideways and split colours (the
// picture's mean light stays), and change at most GLITCH_MAX_RATE times a second.
// test/shared/visual-engine.test.ts measures it.
import {
  COS_TABLE,
  SIN_TABLE,
  TRIG_MASK,
  TRIG_SIZE,
  atan2Turns,
  clamp01,
  cosTurns,
  hash32,
  hashUnit,
  sinTurns,
  smoothstep,
} from './visual-math.ts';
import type { VisualParams } from './visual-params.ts';

/** Side of the square textures the engine samples. */
export const TEXTURE_SIZE = 512;
const TEX_MASK2 = TEXTURE_SIZE * 2 - 1;
/**
 * Most the beat's swell changes the light: ±2 % of the picture's level. A beat comes 2-3
 * times a second, so its light swing must stay well under the 10 % of luminance that
 * counts as a flash (a 2 % change of sRGB level is about 4.5 % of linear light); the
 * beat shows instead in colour (saturation keeps luminance) and scale.
 */
export const PULSE_LIGHT = 0.02;
/** Extra saturation on the beat at full pulse: +35 %. */
export const PULSE_SATURATION = 0.35;
/** Most the music's energy changes the light: ±1 %. */
export const ENERGY_LIGHT = 0.01;
/** Glitch patterns change at most this many times a second, whatever the speed. */
export const GLITCH_MAX_RATE = 2.5;
/** Default length of a prompt cross-fade. */
export const CROSSFADE_SEC = 1.5;
const COMPOSITE_CACHE = 6;
const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const BLUR_RADIUS = 6;

export interface EngineArtwork {
  id: string;
  /** Width and height of `rgba` (any size; resampled to TEXTURE_SIZE square once). */
  width: number;
  height: number;
  rgba: Uint8Array | Uint8ClampedArray;
  /** The artwork's real width / height, when `rgba` was squeezed to a square. */
  aspect?: number;
  /**
   * Its most salient point (0..1 each way, e.g. the centre of the visual pack's top
   * region): zoom and the beat's swell move toward it rather than the frame's centre.
   */
  focus?: { x: number; y: number };
}

export interface FrameInput {
  /** Params being faded out, or null when there is no transition. */
  from: VisualParams | null;
  to: VisualParams;
  /** 0 shows `from`, 1 shows `to` (use `crossfadeMix`). */
  mix: number;
  /** Seconds on the shared transport clock. */
  timeSec: number;
  /** The music's energy now, 0..1. */
  energy: number;
  /** Where in the beat we are, 0..1 (0 on the beat). */
  beatPhase: number;
}

/** The cross-fade fraction `sinceChangeSec` after a prompt change (eased, 0..1). */
export function crossfadeMix(sinceChangeSec: number, durationSec = CROSSFADE_SEC): number {
  return durationSec <= 0 ? 1 : smoothstep(sinceChangeSec / durationSec);
}

interface Prepared {
  id: string;
  aspect: number;
  focus: { x: number; y: number };
  sharp: Uint8Array; // RGBA, TEXTURE_SIZE²
  soft: Uint8Array;
}

interface Composite {
  texels: Uint32Array; // r | g << 8 | b << 16, TEXTURE_SIZE²
  aspect: number;
  focus: { x: number; y: number };
}

interface SizeTables {
  w: number;
  h: number;
  xs: Float64Array; // screen-normalized x per column (height = 1)
  ys: Float64Array;
  radius: Float32Array; // per pixel
  angle: Uint16Array; // per pixel, 0..4095 turns
  // per-frame scratch
  uc: Float64Array;
  vc: Float64Array;
  colY: Float64Array;
  ur: Float64Array;
  vr: Float64Array;
  rowX: Float64Array;
  split: Int32Array;
  folds: Map<number, { kx: Float32Array; ky: Float32Array }>;
  layerA: Uint8ClampedArray;
  layerB: Uint8ClampedArray;
  noise: Int8Array;
  /** Where the last frame's single layer went instead of layerA (renderFrameYuv420), or null. */
  layerInYuv: YuvTarget | null;
}

export interface VisualEngineOptions {
  /** Output pixels per internal pixel along each side (default 2). */
  internalScale?: number;
}

export class VisualEngine {
  readonly #art: Prepared[];
  readonly #byId = new Map<string, Prepared>();
  readonly #composites = new Map<string, Composite>();
  readonly #scale: number;
  #tables: SizeTables | null = null;
  #rgbaScratch: Uint8ClampedArray | null = null;

  constructor(artwork: readonly EngineArtwork[], opts: VisualEngineOptions = {}) {
    if (artwork.length === 0) throw new RangeError('the visual engine needs at least one artwork');
    this.#art = artwork.map(prepare);
    for (const a of this.#art) this.#byId.set(a.id, a);
    const s = opts.internalScale ?? 2;
    if (!Number.isInteger(s) || s < 1 || s > 8) throw new RangeError('internalScale must be an integer 1..8');
    this.#scale = s;
  }

  get artworkIds(): string[] {
    return this.#art.map((a) => a.id);
  }

  /**
   * Adds an image to draw from after construction (a texture the visual model generated
   * when a prompt arrived), or replaces the one with its id. It is drawn like a painting
   * as soon as params name it; params that named it before it arrived get a new composite.
   */
  addArtwork(artwork: EngineArtwork): void {
    if (this.#art.some((a) => a.id === artwork.id)) throw new RangeError(`"${artwork.id}" is one of the engine's own artworks`);
    this.#evictUsing(artwork.id);
    this.#byId.set(artwork.id, prepare(artwork));
  }

  /** Forgets an added image (the constructor's artwork stays); params naming it draw without it. */
  removeArtwork(id: string): void {
    if (this.#art.some((a) => a.id === id)) return;
    if (this.#byId.delete(id)) this.#evictUsing(id);
  }

  /** The ids of the images added after construction, oldest first. */
  get addedArtworkIds(): string[] {
    const own = new Set(this.#art.map((a) => a.id));
    return [...this.#byId.keys()].filter((id) => !own.has(id));
  }

  /** Forgets the oldest added images but `max` of them, never those in `keep` (an engine kept between renders stays bounded). */
  trimAdded(keep: ReadonlySet<string>, max: number): void {
    const old = this.addedArtworkIds.filter((id) => !keep.has(id));
    for (const id of old.slice(0, Math.max(0, old.length - max))) this.removeArtwork(id);
  }

  /** Whether params naming `id` can draw it now. */
  hasArtwork(id: string): boolean {
    return this.#byId.has(id);
  }

  #evictUsing(id: string): void {
    for (const key of this.#composites.keys()) {
      const parts = key.slice(0, key.indexOf('|')).split(',');
      if (parts.some((p) => p.slice(0, p.lastIndexOf(':')) === id)) this.#composites.delete(key);
    }
  }

  /**
   * Builds what `params` need (the blended, softened, recoloured texture: a few ms) ahead
   * of the first frame that uses them, e.g. when a prompt arrives, so that the fade does
   * not start with a slow frame. Optional: renderFrame builds it when missing.
   */
  prepare(params: VisualParams): void {
    this.#composite(params);
  }

  /** Draws one frame into `out` (RGBA, width*height*4 bytes). */
  renderFrame(out: Uint8ClampedArray, width: number, height: number, input: FrameInput): void {
    checkSize(width, height);
    if (out.length < width * height * 4) throw new RangeError(`out holds ${out.length} bytes; ${width * height * 4} are needed`);
    const t = this.#drawInternal(width, height, input);
    upscale(t.layerA, t.w, t.h, out, width, height, this.#scale);
  }

  /**
   * Draws the same frame as renderFrame, as planar yuv420p (BT.601 limited range, what
   * ffmpeg's default RGBA→yuv420p conversion gives; layout in yuv420Bytes). For an encoder
   * that takes yuv420p this replaces the upscale and the encoder's own conversion, and is
   * 2.7x fewer bytes to hand over. At the default scale of 2 with even sizes every 2x2
   * block is one internal pixel, so the chroma is that pixel's exactly and luma is
   * converted once per block; other sizes and scales convert the RGBA frame.
   */
  renderFrameYuv420(out: Uint8Array | Uint8ClampedArray, width: number, height: number, input: FrameInput): void {
    checkSize(width, height);
    const need = yuv420Bytes(width, height);
    if (out.length < need) throw new RangeError(`out holds ${out.length} bytes; ${need} are needed`);
    if (this.#scale !== 2 || width % 2 !== 0 || height % 2 !== 0) {
      // The general case: through an RGBA frame (kept for the next call).
      const n = width * height * 4;
      if (!this.#rgbaScratch || this.#rgbaScratch.length !== n) this.#rgbaScratch = new Uint8ClampedArray(n);
      this.renderFrame(this.#rgbaScratch, width, height, input);
      rgbaToYuv420(this.#rgbaScratch, width, height, out);
      return;
    }
    const iw = width / 2;
    const ih = height / 2;
    const target = yuvTarget(out, iw, ih);
    const t = this.#drawInternal(width, height, input, target);
    // A cross-fade blends two RGBA layers first; a single layer was converted as it was drawn.
    if (t.layerInYuv !== target) layerToYuv420(t.layerA, iw, ih, target);
  }

  /**
   * Draws the frame at the internal size into the size tables' layerA, or (given `yuv`,
   * and when the frame is a single layer) straight into those yuv420p planes, which
   * t.layerInYuv then names.
   */
  #drawInternal(width: number, height: number, input: FrameInput, yuv: YuvTarget | null = null): SizeTables {
    const iw = Math.ceil(width / this.#scale);
    const ih = Math.ceil(height / this.#scale);
    const t = this.#sizeTables(iw, ih);
    const mix = clamp01(Number.isFinite(input.mix) ? input.mix : 1);
    const frame = {
      timeSec: Number.isFinite(input.timeSec) ? input.timeSec : 0,
      energy: clamp01(Number.isFinite(input.energy) ? input.energy : 0),
      beatPhase: Number.isFinite(input.beatPhase) ? input.beatPhase - Math.floor(input.beatPhase) : 0,
    };
    t.layerInYuv = null;
    if (!input.from || mix >= 1) {
      this.#drawLayer(input.to, frame, t, t.layerA, yuv);
      t.layerInYuv = yuv;
    } else if (mix <= 0) {
      this.#drawLayer(input.from, frame, t, t.layerA, yuv);
      t.layerInYuv = yuv;
    } else {
      this.#drawLayer(input.from, frame, t, t.layerA, null);
      this.#drawLayer(input.to, frame, t, t.layerB, null);
      // Two byte lanes at a time (R and B, then G and A), whatever the byte order.
      const a = new Uint32Array(t.layerA.buffer, t.layerA.byteOffset, iw * ih);
      const b = new Uint32Array(t.layerB.buffer, t.layerB.byteOffset, iw * ih);
      const m = Math.round(mix * 256);
      const n = 256 - m;
      for (let i = 0; i < a.length; i++) {
        const x = a[i]!;
        const y = b[i]!;
        const lo = (((x & 0xff00ff) * n + (y & 0xff00ff) * m) >>> 8) & 0xff00ff;
        const hi = ((((x >>> 8) & 0xff00ff) * n + ((y >>> 8) & 0xff00ff) * m) >>> 8) & 0xff00ff;
        a[i] = lo | (hi << 8);
      }
    }
    return t;
  }

  #sizeTables(w: number, h: number): SizeTables {
    if (this.#tables && this.#tables.w === w && this.#tables.h === h) return this.#tables;
    const n = w * h;
    const xs = new Float64Array(w);
    const ys = new Float64Array(h);
    for (let x = 0; x < w; x++) xs[x] = (x + 0.5 - w / 2) / h;
    for (let y = 0; y < h; y++) ys[y] = (y + 0.5 - h / 2) / h;
    const radius = new Float32Array(n);
    const angle = new Uint16Array(n);
    for (let y = 0; y < h; y++) {
      for (let x = 0; x < w; x++) {
        const i = y * w + x;
        const px = xs[x]!;
        const py = ys[y]!;
        radius[i] = Math.sqrt(px * px + py * py);
        angle[i] = Math.floor(atan2Turns(py, px) * TRIG_SIZE) & TRIG_MASK;
      }
    }
    const noise = new Int8Array(65536);
    for (let i = 0; i < noise.length; i++) noise[i] = (hash32(i ^ 0x5bd1e995) & 0xff) - 128;
    this.#tables = {
      w,
      h,
      xs,
      ys,
      radius,
      angle,
      uc: new Float64Array(w),
      vc: new Float64Array(w),
      colY: new Float64Array(w),
      ur: new Float64Array(h),
      vr: new Float64Array(h),
      rowX: new Float64Array(h),
      split: new Int32Array(h),
      folds: new Map(),
      layerA: new Uint8ClampedArray(n * 4),
      layerB: new Uint8ClampedArray(n * 4),
      noise,
      layerInYuv: null,
    };
    return this.#tables;
  }

  #composite(p: VisualParams): Composite {
    const chosen = p.artworks.filter((a) => this.#byId.has(a.id) && a.weight > 0).slice(0, 3);
    const parts = chosen.length > 0 ? chosen.map((a) => ({ art: this.#byId.get(a.id)!, w: a.weight })) : [{ art: this.#art[0]!, w: 1 }];
    const blur = Math.round(clamp01(p.texture.blur) * 32) / 32;
    const bands = p.palette.hueBands.map((b) => `${Math.round(b.hueDeg)}/${Math.round(b.widthDeg)}/${Math.round(b.amount * 64)}`);
    const key = `${parts.map((x) => `${x.art.id}:${x.w}`).join(',')}|${blur}|${bands.join(',')}`;
    const cached = this.#composites.get(key);
    if (cached) {
      this.#composites.delete(key);
      this.#composites.set(key, cached);
      return cached;
    }
    const made = buildComposite(parts, blur, p.palette.hueBands);
    this.#composites.set(key, made);
    if (this.#composites.size > COMPOSITE_CACHE) this.#composites.delete(this.#composites.keys().next().value!);
    return made;
  }

  #drawLayer(p: VisualParams, f: { timeSec: number; energy: number; beatPhase: number }, t: SizeTables, dst: Uint8ClampedArray, yuv: YuvTarget | null): void {
    const comp = this.#composite(p);
    const tex = comp.texels;
    const { w, h, xs, ys, uc, vc, colY, ur, vr, rowX, split } = t;
    const m = p.motion;
    const gain = 0.4 + 1.2 * clamp01(p.intensity);
    const react = clamp01(p.audioReactivity);
    const tau = f.timeSec * p.speed;
    const e = f.energy;
    const beat = sq(0.5 + 0.5 * cosTurns(f.beatPhase)); // 1 on the beat, 0 between

    // ---- the affine part: drift, zoom, rotation, pulse
    const drift = m.drift * gain;
    const tx = drift * (0.03 * tau + 0.12 * sinTurns(tau * 0.021));
    const ty = drift * 0.1 * sinTurns(tau * 0.013 + 0.125) - drift * 0.1 * sinTurns(0.125);
    let zoom = 1 + m.zoom * gain * 0.35 * (0.5 - 0.5 * cosTurns(tau * 0.05));
    zoom *= 1 + m.pulse * gain * 0.04 * beat * (1 - react + react * e) + react * 0.04 * e * m.zoom;
    const theta = m.rotate * gain * tau * 0.09; // turns
    const cs = cosTurns(theta) / zoom;
    const sn = sinTurns(theta) / zoom;
    // Cover-fit the artwork's aspect into the frame's.
    const frameAspect = w / h;
    const fit = Math.max(frameAspect / comp.aspect, 1);
    const su = (TEXTURE_SIZE / (comp.aspect * fit));
    const sv = TEXTURE_SIZE / fit;
    const a00 = cs * su;
    const a01 = -sn * su;
    const a10 = sn * sv;
    const a11 = cs * sv;
    // Zooming in moves the view toward the artwork's focus (its most salient region);
    // at zoom 1 the view is centred.
    const toward = 1 - 1 / zoom;
    const cu = (0.5 + (comp.focus.x - 0.5) * toward + tx) * TEXTURE_SIZE;
    const cv = (0.5 + (comp.focus.y - 0.5) * toward + ty) * TEXTURE_SIZE;

    // ---- ripple: a row wave moves rows sideways, a column wave moves columns up and down
    const ripple = m.ripple * gain * (0.02 + 0.01 * react * e);
    for (let x = 0; x < w; x++) colY[x] = ripple * sinTurns(xs[x]! * 3.1 - tau * 0.23);
    // ---- glitch: displaced bands and colour split, a new pattern at most GLITCH_MAX_RATE a second
    const glitch = m.glitch * gain;
    rowX.fill(0);
    split.fill(0);
    if (glitch > 0.001) {
      const epoch = Math.floor(f.timeSec * GLITCH_MAX_RATE * clamp01(0.4 + m.glitch));
      const bandsN = 1 + Math.floor(glitch * 6);
      for (let k = 0; k < bandsN; k++) {
        const seed = hash32(epoch * 31 + k * 7919);
        const y0 = Math.floor(hashUnit(seed) * h);
        const bh = 1 + Math.floor(hashUnit(seed + 1) * h * 0.08 * glitch);
        const shift = (hashUnit(seed + 2) - 0.5) * 0.25 * glitch;
        const sp = Math.floor(1 + hashUnit(seed + 3) * 6 * glitch);
        for (let y = y0; y < Math.min(h, y0 + bh); y++) {
          rowX[y] = rowX[y]! + shift;
          split[y] = sp;
        }
      }
    }
    // ---- kaleidoscope: fold into mirrored wedges (an even count, so it is seamless), the
    // fold turning slowly; blended with the plain position by the amount, so that it is
    // continuous as the amount changes. The folded points are cached per wedge count and
    // the fold's turn is merged into the warp: u = row term + column term + b0·kx + b1·ky.
    const kal = clamp01(m.kaleidoscope);
    const keep = 1 - kal;
    let fold: { kx: Float32Array; ky: Float32Array } | null = null;
    let b0 = 0;
    let b1 = 0;
    let c0 = 0;
    let c1 = 0;
    if (kal > 0.001) {
      fold = this.#fold(t, 2 * Math.max(1, Math.round(m.segments / 2)));
      const spin = tau * 0.02;
      const kc = cosTurns(spin);
      const ks = sinTurns(spin);
      b0 = kal * (a00 * kc + a01 * ks);
      b1 = kal * (-a00 * ks + a01 * kc);
      c0 = kal * (a10 * kc + a11 * ks);
      c1 = kal * (-a10 * ks + a11 * kc);
    }
    for (let y = 0; y < h; y++) {
      const rx = rowX[y]! + ripple * sinTurns(ys[y]! * 2.7 + tau * 0.19);
      rowX[y] = rx;
      ur[y] = cu + a00 * rx + a01 * keep * ys[y]!;
      vr[y] = cv + a10 * rx + a11 * keep * ys[y]!;
    }
    for (let x = 0; x < w; x++) {
      uc[x] = a00 * keep * xs[x]! + a01 * colY[x]!;
      vc[x] = a10 * keep * xs[x]! + a11 * colY[x]!;
    }

    // ---- colour: one affine matrix
    const beatDrive = m.pulse * beat * (0.5 + 0.5 * react);
    const light = 1 + PULSE_LIGHT * m.pulse * (2 * beat - 1) * (0.5 + 0.5 * react) + ENERGY_LIGHT * react * (2 * e - 1);
    const cm = colourMatrix(p, light, 1 + PULSE_SATURATION * beatDrive);
    const [m00, m01, m02, o0, m10, m11, m12, o1, m20, m21, m22, o2] = cm;
    const grainScale = (clamp01(p.texture.grain) * 40) / 128;
    const useGrain = grainScale > 0;
    const noise = t.noise;
    const noiseOff = hash32(Math.floor(f.timeSec * 24)) & 0xffff;
    const kx = fold ? fold.kx : null;
    const ky = fold ? fold.ky : null;

    const dst32 = new Uint32Array(dst.buffer, dst.byteOffset, w * h);
    let i = 0;
    for (let y = 0; y < h; y++) {
      const urow = ur[y]!;
      const vrow = vr[y]!;
      const sp = split[y]!;
      if (kx === null && !useGrain && sp === 0 && yuv !== null) {
        // The same row as below, converted to yuv420p as it is drawn (see layerRowsToYuv420).
        const { yp, up, vp, y16 } = yuv;
        const yRow = 4 * y * w;
        for (let x = 0; x < w; x++, i++) {
          let iu = Math.floor(urow + uc[x]!) & TEX_MASK2;
          let iv = Math.floor(vrow + vc[x]!) & TEX_MASK2;
          if (iu >= TEXTURE_SIZE) iu = TEX_MASK2 - iu;
          if (iv >= TEXTURE_SIZE) iv = TEX_MASK2 - iv;
          const c = tex[iv * TEXTURE_SIZE + iu]!;
          const r = c & 0xff;
          const g = (c >>> 8) & 0xff;
          const b = (c >>> 16) & 0xff;
          let R = m00 * r + m01 * g + m02 * b + o0 + 0.5;
          let G = m10 * r + m11 * g + m12 * b + o1 + 0.5;
          let B = m20 * r + m21 * g + m22 * b + o2 + 0.5;
          R = R < 0 ? 0 : R > 255 ? 255 : R;
          G = G < 0 ? 0 : G > 255 ? 255 : G;
          B = B < 0 ? 0 : B > 255 ? 255 : B;
          const ri = R | 0;
          const gi = G | 0;
          const bi = B | 0;
          const Y = (YR * ri + YG * gi + YB * bi + Y_OFFSET) >> 15;
          if (y16 !== null) {
            y16[(yRow >> 1) + x] = Y * 257;
          } else {
            yp[yRow + 2 * x] = Y;
            yp[yRow + 2 * x + 1] = Y;
          }
          up[i] = (UR * ri + UG * gi + UB * bi + C_OFFSET) >> 15;
          vp[i] = (VR * ri + VG * gi + VB * bi + C_OFFSET) >> 15;
        }
        yp.copyWithin(yRow + 2 * w, yRow, yRow + 2 * w);
        continue;
      }
      if (kx === null && !useGrain && sp === 0) {
        // The common row (no fold, grain or colour split): the loop below without its
        // per-pixel branches, for the same bytes (adding the zero grain changes nothing).
        for (let x = 0; x < w; x++, i++) {
          let iu = Math.floor(urow + uc[x]!) & TEX_MASK2;
          let iv = Math.floor(vrow + vc[x]!) & TEX_MASK2;
          if (iu >= TEXTURE_SIZE) iu = TEX_MASK2 - iu;
          if (iv >= TEXTURE_SIZE) iv = TEX_MASK2 - iv;
          const c = tex[iv * TEXTURE_SIZE + iu]!;
          const r = c & 0xff;
          const g = (c >>> 8) & 0xff;
          const b = (c >>> 16) & 0xff;
          let R = m00 * r + m01 * g + m02 * b + o0 + 0.5;
          let G = m10 * r + m11 * g + m12 * b + o1 + 0.5;
          let B = m20 * r + m21 * g + m22 * b + o2 + 0.5;
          R = R < 0 ? 0 : R > 255 ? 255 : R;
          G = G < 0 ? 0 : G > 255 ? 255 : G;
          B = B < 0 ? 0 : B > 255 ? 255 : B;
          dst32[i] = LITTLE_ENDIAN
            ? (R | 0) | ((G | 0) << 8) | ((B | 0) << 16) | 0xff000000
            : ((R | 0) << 24) | ((G | 0) << 16) | ((B | 0) << 8) | 0xff;
        }
        continue;
      }
      for (let x = 0; x < w; x++, i++) {
        let u = urow + uc[x]!;
        let v = vrow + vc[x]!;
        if (kx !== null && ky !== null) {
          const fx = kx[i]!;
          const fy = ky[i]!;
          u += b0 * fx + b1 * fy;
          v += c0 * fx + c1 * fy;
        }
        let iu = Math.floor(u) & TEX_MASK2;
        let iv = Math.floor(v) & TEX_MASK2;
        if (iu >= TEXTURE_SIZE) iu = TEX_MASK2 - iu;
        if (iv >= TEXTURE_SIZE) iv = TEX_MASK2 - iv;
        const row = iv * TEXTURE_SIZE;
        const c = tex[row + iu]!;
        let r = c & 0xff;
        const g = (c >>> 8) & 0xff;
        let b = (c >>> 16) & 0xff;
        if (sp !== 0) {
          let ir = (iu + sp) & TEX_MASK2;
          if (ir >= TEXTURE_SIZE) ir = TEX_MASK2 - ir;
          let ib = (iu - sp) & TEX_MASK2;
          if (ib >= TEXTURE_SIZE) ib = TEX_MASK2 - ib;
          r = tex[row + ir]! & 0xff;
          b = (tex[row + ib]! >>> 16) & 0xff;
        }
        const gn = useGrain ? noise[(i + noiseOff) & 0xffff]! * grainScale : 0;
        let R = m00 * r + m01 * g + m02 * b + o0 + gn + 0.5;
        let G = m10 * r + m11 * g + m12 * b + o1 + gn + 0.5;
        let B = m20 * r + m21 * g + m22 * b + o2 + gn + 0.5;
        R = R < 0 ? 0 : R > 255 ? 255 : R;
        G = G < 0 ? 0 : G > 255 ? 255 : G;
        B = B < 0 ? 0 : B > 255 ? 255 : B;
        // One 32-bit store per pixel, packed for the platform's byte order so that the
        // bytes are R, G, B, A everywhere.
        dst32[i] = LITTLE_ENDIAN
          ? (R | 0) | ((G | 0) << 8) | ((B | 0) << 16) | 0xff000000
          : ((R | 0) << 24) | ((G | 0) << 16) | ((B | 0) << 8) | 0xff;
      }
      if (yuv !== null) layerRowToYuv420(dst32, w, y, yuv);
    }
  }

  /** Folded kaleidoscope points (screen units) for this size and wedge count, cached. */
  #fold(t: SizeTables, wedges: number): { kx: Float32Array; ky: Float32Array } {
    const cached = t.folds.get(wedges);
    if (cached) return cached;
    const n = t.w * t.h;
    const kx = new Float32Array(n);
    const ky = new Float32Array(n);
    const wedge = TRIG_SIZE / wedges;
    for (let i = 0; i < n; i++) {
      const a = t.angle[i]!;
      const k = Math.floor(a / wedge);
      let local = a - k * wedge;
      if (k & 1) local = wedge - local;
      const fa = Math.floor(local) & TRIG_MASK;
      kx[i] = t.radius[i]! * COS_TABLE[fa]!;
      ky[i] = t.radius[i]! * SIN_TABLE[fa]!;
    }
    if (t.folds.size >= 4) t.folds.delete(t.folds.keys().next().value!);
    const made = { kx, ky };
    t.folds.set(wedges, made);
    return made;
  }
}

function checkSize(width: number, height: number): void {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new RangeError('width and height must be positive integers');
  }
}

function sq(x: number): number {
  return x * x;
}

/**
 * Hue rotation, saturation (times `saturationBoost`), contrast, brightness and warmth as
 * one 3x4 matrix (0..255 units), times `light`.
 */
export type ColourMatrix = [number, number, number, number, number, number, number, number, number, number, number, number];

export function colourMatrix(p: VisualParams, light: number, saturationBoost = 1): ColourMatrix {
  const pal = p.palette;
  const turns = pal.hueShiftDeg / 360;
  const c = cosTurns(turns);
  const s = sinTurns(turns);
  // Hue rotation about the luma axis (the SVG/CSS hue-rotate matrix).
  const hr = [
    0.213 + c * 0.787 - s * 0.213, 0.715 - c * 0.715 - s * 0.715, 0.072 - c * 0.072 + s * 0.928,
    0.213 - c * 0.213 + s * 0.143, 0.715 + c * 0.285 + s * 0.14, 0.072 - c * 0.072 - s * 0.283,
    0.213 - c * 0.213 - s * 0.787, 0.715 - c * 0.715 + s * 0.715, 0.072 + c * 0.928 + s * 0.072,
  ];
  const sat = Math.min(2.5, pal.saturation * saturationBoost);
  const sm = [
    0.213 + 0.787 * sat, 0.715 - 0.715 * sat, 0.072 - 0.072 * sat,
    0.213 - 0.213 * sat, 0.715 + 0.285 * sat, 0.072 - 0.072 * sat,
    0.213 - 0.213 * sat, 0.715 - 0.715 * sat, 0.072 + 0.928 * sat,
  ];
  const m: ColourMatrix = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const con = pal.contrast;
  const warm = pal.warmth * 28;
  const warmOffset = [warm, warm * 0.25, -warm];
  for (let r = 0; r < 3; r++) {
    for (let col = 0; col < 3; col++) {
      let v = 0;
      for (let k = 0; k < 3; k++) v += sm[r * 3 + k]! * hr[k * 3 + col]!;
      m[r * 4 + col] = v * con * light;
    }
    m[r * 4 + 3] = (128 * (1 - con) + pal.brightness * 255 + warmOffset[r]!) * light;
  }
  return m;
}

/**
 * Params between a and b (numbers linearly; artworks, bands and segments from the nearer
 * side). When a prompt arrives while a fade is still running, pass
 * `mixVisualParams(from, to, mix)` as the new fade's `from`, so that nothing jumps back.
 */
export function mixVisualParams(a: VisualParams, b: VisualParams, f: number): VisualParams {
  const t = clamp01(f);
  const l = (x: number, y: number) => x + (y - x) * t;
  const near = t < 0.5 ? a : b;
  return {
    version: b.version,
    artworks: near.artworks.map((x) => ({ ...x })),
    palette: {
      hueShiftDeg: l(a.palette.hueShiftDeg, b.palette.hueShiftDeg),
      saturation: l(a.palette.saturation, b.palette.saturation),
      brightness: l(a.palette.brightness, b.palette.brightness),
      contrast: l(a.palette.contrast, b.palette.contrast),
      warmth: l(a.palette.warmth, b.palette.warmth),
      hueBands: near.palette.hueBands.map((x) => ({ ...x })),
    },
    motion: {
      drift: l(a.motion.drift, b.motion.drift),
      zoom: l(a.motion.zoom, b.motion.zoom),
      rotate: l(a.motion.rotate, b.motion.rotate),
      pulse: l(a.motion.pulse, b.motion.pulse),
      kaleidoscope: l(a.motion.kaleidoscope, b.motion.kaleidoscope),
      segments: near.motion.segments,
      ripple: l(a.motion.ripple, b.motion.ripple),
      glitch: l(a.motion.glitch, b.motion.glitch),
    },
    texture: { grain: l(a.texture.grain, b.texture.grain), blur: l(a.texture.blur, b.texture.blur) },
    speed: l(a.speed, b.speed),
    intensity: l(a.intensity, b.intensity),
    audioReactivity: l(a.audioReactivity, b.audioReactivity),
  };
}

// ---------------------------------------------------------------- textures

function prepare(a: EngineArtwork): Prepared {
  if (!Number.isInteger(a.width) || !Number.isInteger(a.height) || a.width < 1 || a.height < 1) {
    throw new RangeError(`artwork ${a.id}: bad size ${a.width}x${a.height}`);
  }
  if (a.rgba.length < a.width * a.height * 4) throw new RangeError(`artwork ${a.id}: ${a.rgba.length} bytes for ${a.width}x${a.height}`);
  const n = TEXTURE_SIZE;
  const sharp = new Uint8Array(n * n * 4);
  // Box-resample (or repeat) to the square working size.
  for (let y = 0; y < n; y++) {
    const sy0 = Math.floor((y * a.height) / n);
    const sy1 = Math.max(sy0 + 1, Math.floor(((y + 1) * a.height) / n));
    for (let x = 0; x < n; x++) {
      const sx0 = Math.floor((x * a.width) / n);
      const sx1 = Math.max(sx0 + 1, Math.floor(((x + 1) * a.width) / n));
      let r = 0;
      let g = 0;
      let b = 0;
      for (let sy = sy0; sy < sy1; sy++) {
        for (let sx = sx0; sx < sx1; sx++) {
          const i = (sy * a.width + sx) * 4;
          r += a.rgba[i]!;
          g += a.rgba[i + 1]!;
          b += a.rgba[i + 2]!;
        }
      }
      const cnt = (sy1 - sy0) * (sx1 - sx0);
      const o = (y * n + x) * 4;
      sharp[o] = Math.floor((r + (cnt >> 1)) / cnt);
      sharp[o + 1] = Math.floor((g + (cnt >> 1)) / cnt);
      sharp[o + 2] = Math.floor((b + (cnt >> 1)) / cnt);
      sharp[o + 3] = 255;
    }
  }
  const soft = boxBlur(boxBlur(sharp, n, BLUR_RADIUS), n, BLUR_RADIUS);
  const aspect = a.aspect !== undefined && Number.isFinite(a.aspect) && a.aspect > 0 ? a.aspect : a.width / a.height;
  const fx = a.focus && Number.isFinite(a.focus.x) ? clamp01(a.focus.x) : 0.5;
  const fy = a.focus && Number.isFinite(a.focus.y) ? clamp01(a.focus.y) : 0.5;
  return { id: a.id, aspect, focus: { x: fx, y: fy }, sharp, soft };
}

/** A separable box blur with mirrored edges, integer arithmetic. */
function boxBlur(src: Uint8Array, n: number, radius: number): Uint8Array {
  const tmp = new Uint8Array(src.length);
  const out = new Uint8Array(src.length);
  const span = 2 * radius + 1;
  const half = span >> 1;
  // Mirrored index for k in -radius-1 .. n+radius.
  const mirror = new Int32Array(n + 2 * radius + 2);
  for (let k = -radius - 1; k <= n + radius; k++) mirror[k + radius + 1] = k < 0 ? -k - 1 : k >= n ? 2 * n - k - 1 : k;
  const at = (k: number) => mirror[k + radius + 1]!;
  // Pass 1 along rows (stride 4), pass 2 along columns (stride 4n).
  for (let pass = 0; pass < 2; pass++) {
    const from = pass === 0 ? src : tmp;
    const to = pass === 0 ? tmp : out;
    const step = pass === 0 ? 4 : 4 * n;
    for (let line = 0; line < n; line++) {
      const base = pass === 0 ? line * n * 4 : line * 4;
      for (let ch = 0; ch < 3; ch++) {
        let sum = 0;
        for (let k = -radius; k <= radius; k++) sum += from[base + at(k) * step + ch]!;
        for (let k = 0; k < n; k++) {
          to[base + k * step + ch] = Math.floor((sum + half) / span);
          sum += from[base + at(k + radius + 1) * step + ch]! - from[base + at(k - radius) * step + ch]!;
        }
      }
      for (let k = 0; k < n; k++) to[base + k * step + 3] = 255;
    }
  }
  return out;
}

function buildComposite(parts: { art: Prepared; w: number }[], blur: number, bands: VisualParams['palette']['hueBands']): Composite {
  const n = TEXTURE_SIZE * TEXTURE_SIZE;
  const total = parts.reduce((s, p) => s + p.w, 0);
  const weights = parts.map((p) => p.w / total);
  // Hue band weights per degree: a smooth bump around each band's centre.
  const bandTable = new Float64Array(360);
  for (const band of bands) {
    const half = Math.max(2.5, band.widthDeg / 2);
    for (let d = 0; d < 360; d++) {
      let dist = Math.abs(d - band.hueDeg) % 360;
      if (dist > 180) dist = 360 - dist;
      if (dist >= half) continue;
      const q = 1 - (dist / half) * (dist / half);
      bandTable[d] = bandTable[d]! + band.amount * q * q;
    }
  }
  for (let d = 0; d < 360; d++) bandTable[d] = Math.max(-1, Math.min(1, bandTable[d]!));
  const hasBands = bands.length > 0;
  const texels = new Uint32Array(n);
  const only = parts.length === 1 ? parts[0]!.art : null;
  if (only && !hasBands) {
    // The common case: one artwork, maybe softened.
    const a = only.sharp;
    const b = only.soft;
    for (let i = 0, o = 0; i < n; i++, o += 4) {
      const r = a[o]! + (b[o]! - a[o]!) * blur;
      const g = a[o + 1]! + (b[o + 1]! - a[o + 1]!) * blur;
      const bl = a[o + 2]! + (b[o + 2]! - a[o + 2]!) * blur;
      texels[i] = byte(r) | (byte(g) << 8) | (byte(bl) << 16);
    }
    return { texels, aspect: only.aspect, focus: only.focus };
  }
  for (let i = 0; i < n; i++) {
    const o = i * 4;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let k = 0; k < parts.length; k++) {
      const p = parts[k]!.art;
      const wk = weights[k]!;
      r += wk * (p.sharp[o]! + (p.soft[o]! - p.sharp[o]!) * blur);
      g += wk * (p.sharp[o + 1]! + (p.soft[o + 1]! - p.sharp[o + 1]!) * blur);
      b += wk * (p.sharp[o + 2]! + (p.soft[o + 2]! - p.sharp[o + 2]!) * blur);
    }
    if (hasBands) {
      const max = r > g ? (r > b ? r : b) : g > b ? g : b;
      const min = r < g ? (r < b ? r : b) : g < b ? g : b;
      const chroma = max - min;
      if (chroma > 1) {
        let hue: number;
        if (max === r) hue = ((g - b) / chroma) * 60;
        else if (max === g) hue = ((b - r) / chroma) * 60 + 120;
        else hue = ((r - g) / chroma) * 60 + 240;
        if (hue < 0) hue += 360;
        const wgt = bandTable[Math.floor(hue) % 360]!;
        if (wgt !== 0) {
          const luma = 0.299 * r + 0.587 * g + 0.114 * b;
          const f = wgt < 0 ? 1 + wgt : 1 + wgt * 1.2;
          r = luma + (r - luma) * f;
          g = luma + (g - luma) * f;
          b = luma + (b - luma) * f;
        }
      }
    }
    texels[i] = byte(r) | (byte(g) << 8) | (byte(b) << 16);
  }
  // Framing follows the heaviest artwork of the blend.
  let lead = parts[0]!.art;
  let best = -1;
  parts.forEach((p, k) => {
    if (weights[k]! > best) {
      best = weights[k]!;
      lead = p.art;
    }
  });
  return { texels, aspect: lead.aspect, focus: lead.focus };
}

function byte(x: number): number {
  return x <= 0 ? 0 : x >= 255 ? 255 : Math.floor(x + 0.5);
}

/** Nearest-neighbour upscale by whole-pixel (32-bit) copies; byte order is kept as is. */
function upscale(src: Uint8ClampedArray, sw: number, sh: number, out: Uint8ClampedArray, w: number, h: number, scale: number): void {
  const aligned = out.byteOffset % 4 === 0 && src.byteOffset % 4 === 0;
  if (!aligned) {
    for (let y = 0; y < h; y++) {
      const sy = Math.min(sh - 1, Math.floor(y / scale));
      for (let x = 0; x < w; x++) {
        const s = (sy * sw + Math.min(sw - 1, Math.floor(x / scale))) * 4;
        const o = (y * w + x) * 4;
        out[o] = src[s]!;
        out[o + 1] = src[s + 1]!;
        out[o + 2] = src[s + 2]!;
        out[o + 3] = src[s + 3]!;
      }
    }
    return;
  }
  const s32 = new Uint32Array(src.buffer, src.byteOffset, sw * sh);
  const o32 = new Uint32Array(out.buffer, out.byteOffset, w * h);
  let lastSy = -1;
  for (let y = 0; y < h; y++) {
    const sy = Math.min(sh - 1, Math.floor(y / scale));
    const row = y * w;
    if (sy === lastSy) {
      o32.copyWithin(row, row - w, row);
      continue;
    }
    lastSy = sy;
    const srow = sy * sw;
    let x = 0;
    for (let sx = 0; sx < sw && x < w; sx++) {
      const c = s32[srow + sx]!;
      for (let k = 0; k < scale && x < w; k++) o32[row + x++] = c;
    }
  }
}

// ---------------------------------------------------------------- yuv420p

/**
 * Bytes of a planar yuv420p frame: the Y plane (width·height), then U and V, each
 * ceil(width/2)·ceil(height/2), one sample per 2x2 block (ffmpeg's rawvideo layout).
 */
export function yuv420Bytes(width: number, height: number): number {
  return width * height + 2 * Math.ceil(width / 2) * Math.ceil(height / 2);
}

// BT.601 limited range in 15-bit fixed point, as swscale's default RGB→YUV tables:
// Y = 16 + 219·(0.299 R + 0.587 G + 0.114 B)/255, U and V = 128 ± 224·(…)/255.
const YR = 8414;
const YG = 16519;
const YB = 3208;
const UR = -4857;
const UG = -9535;
const UB = 14392;
const VR = 14392;
const VG = -12052;
const VB = -2340;
const Y_OFFSET = (16 << 15) + (1 << 14); // +16, and rounding
const C_OFFSET = (128 << 15) + (1 << 14);

/** The planes of a yuv420p frame of 2lw x 2lh, as drawn from an internal layer of lw x lh. */
interface YuvTarget {
  /** Luma, 2lw·2lh. */
  yp: Uint8Array;
  /** Luma as 16-bit pairs (both bytes of a block row at once), when the buffer is 2-byte aligned. */
  y16: Uint16Array | null;
  /** Chroma, lw·lh each: one sample per internal pixel. */
  up: Uint8Array;
  vp: Uint8Array;
}

function yuvTarget(out: Uint8Array | Uint8ClampedArray, lw: number, lh: number): YuvTarget {
  const ySize = 4 * lw * lh;
  const n = lw * lh;
  // Plain byte views, whatever the caller's array kind: one element kind in the hot loops.
  return {
    yp: new Uint8Array(out.buffer, out.byteOffset, ySize),
    y16: out.byteOffset % 2 === 0 ? new Uint16Array(out.buffer, out.byteOffset, ySize >> 1) : null,
    up: new Uint8Array(out.buffer, out.byteOffset + ySize, n),
    vp: new Uint8Array(out.buffer, out.byteOffset + ySize + n, n),
  };
}

/**
 * Row y of an internal layer (RGBA as 32-bit pixels, lw wide) into a yuv420p frame of
 * twice its size: each internal pixel is one 2x2 block, so one chroma sample each and
 * its luma four times (the same 16-bit value twice, whatever the byte order).
 */
function layerRowToYuv420(s32: Uint32Array, lw: number, y: number, out: YuvTarget): void {
  const { yp, up, vp, y16 } = out;
  const rShift = LITTLE_ENDIAN ? 0 : 24;
  const gShift = LITTLE_ENDIAN ? 8 : 16;
  const bShift = LITTLE_ENDIAN ? 16 : 8;
  const row = 4 * y * lw;
  let c = y * lw;
  if (y16 !== null) {
    let yi = row >> 1;
    for (let x = 0; x < lw; x++, c++, yi++) {
      const px = s32[c]!;
      const r = (px >>> rShift) & 0xff;
      const g = (px >>> gShift) & 0xff;
      const b = (px >>> bShift) & 0xff;
      y16[yi] = ((YR * r + YG * g + YB * b + Y_OFFSET) >> 15) * 257;
      up[c] = (UR * r + UG * g + UB * b + C_OFFSET) >> 15;
      vp[c] = (VR * r + VG * g + VB * b + C_OFFSET) >> 15;
    }
  } else {
    for (let x = 0; x < lw; x++, c++) {
      const px = s32[c]!;
      const r = (px >>> rShift) & 0xff;
      const g = (px >>> gShift) & 0xff;
      const b = (px >>> bShift) & 0xff;
      const Y = (YR * r + YG * g + YB * b + Y_OFFSET) >> 15;
      yp[row + 2 * x] = Y;
      yp[row + 2 * x + 1] = Y;
      up[c] = (UR * r + UG * g + UB * b + C_OFFSET) >> 15;
      vp[c] = (VR * r + VG * g + VB * b + C_OFFSET) >> 15;
    }
  }
  yp.copyWithin(row + 2 * lw, row, row + 2 * lw);
}

function layerToYuv420(src: Uint8ClampedArray, lw: number, lh: number, out: YuvTarget): void {
  const s32 = new Uint32Array(src.buffer, src.byteOffset, lw * lh);
  for (let y = 0; y < lh; y++) layerRowToYuv420(s32, lw, y, out);
}

/**
 * RGBA (width x height) to yuv420p, BT.601 limited range; each chroma sample is from the
 * mean colour of its 2x2 block (the last row or column repeated at odd sizes).
 */
export function rgbaToYuv420(src: Uint8Array | Uint8ClampedArray, width: number, height: number, out: Uint8Array | Uint8ClampedArray): void {
  checkSize(width, height);
  if (src.length < width * height * 4) throw new RangeError(`src holds ${src.length} bytes; ${width * height * 4} are needed`);
  if (out.length < yuv420Bytes(width, height)) throw new RangeError(`out holds ${out.length} bytes; ${yuv420Bytes(width, height)} are needed`);
  const cw = Math.ceil(width / 2);
  const ch = Math.ceil(height / 2);
  const uOff = width * height;
  const vOff = uOff + cw * ch;
  for (let i = 0, p = 0; i < width * height; i++, p += 4) out[i] = (YR * src[p]! + YG * src[p + 1]! + YB * src[p + 2]! + Y_OFFSET) >> 15;
  for (let cy = 0; cy < ch; cy++) {
    const y0 = 2 * cy;
    const y1 = Math.min(height - 1, y0 + 1);
    for (let cx = 0; cx < cw; cx++) {
      const x0 = 2 * cx;
      const x1 = Math.min(width - 1, x0 + 1);
      const a = (y0 * width + x0) * 4;
      const b = (y0 * width + x1) * 4;
      const c = (y1 * width + x0) * 4;
      const d = (y1 * width + x1) * 4;
      const r = src[a]! + src[b]! + src[c]! + src[d]!;
      const g = src[a + 1]! + src[b + 1]! + src[c + 1]! + src[d + 1]!;
      const bl = src[a + 2]! + src[b + 2]! + src[c + 2]! + src[d + 2]!;
      // Sums of four: two more bits, rounded once.
      out[uOff + cy * cw + cx] = (UR * r + UG * g + UB * bl + 4 * C_OFFSET) >> 17;
      out[vOff + cy * cw + cx] = (VR * r + VG * g + VB * bl + 4 * C_OFFSET) >> 17;
    }
  }
}
