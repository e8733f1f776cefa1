// Visual parameters: what a prompt turns into and what the visual engine draws from.
// They live in the room document (`visual.params`) as plain JSON, so every field is a
// number, a string or a small array, with a range checked by `VisualParamsSchema`.
//
// Conventions: amounts are 0..1 with 0 meaning "off"; multipliers have 1 as neutral;
// signed shifts have 0 as neutral. `neutralVisualParams()` shows the artwork as it is,
// gently drifting.
import { z } from 'zod';

export const VISUAL_PARAMS_VERSION = 1;
/** At most this many artworks are blended at once. */
export const MAX_BLEND = 3;
/** At most this many hue bands are emphasised or suppressed. */
export const MAX_HUE_BANDS = 4;

/** Prefix of a texture the release's visual model generated, named in `artworks` like a painting. */
export const GENERATED_ID_PREFIX = 'gen-';

/** Whether an artwork id names a generated texture (`gen-` and 32 hex digits of its cache key). */
export function isGeneratedArtworkId(id: string): boolean {
  return id.length === GENERATED_ID_PREFIX.length + 32 && id.startsWith(GENERATED_ID_PREFIX) && /^[0-9a-f]{32}$/.test(id.slice(GENERATED_ID_PREFIX.length));
}

export interface ArtworkWeight {
  id: string;
  /** Relative weight, > 0; the engine normalizes the weights of a blend. */
  weight: number;
}

/** A band of hues to push (amount > 0) or take away (amount < 0), in the artwork's own colours. */
export interface HueBand {
  /** Centre of the band, degrees 0..360 (0 red, 120 green, 240 blue). */
  hueDeg: number;
  /** Full width of the band, degrees. */
  widthDeg: number;
  /** -1 removes the band's colour (greys it out), +1 makes it as vivid as it goes. */
  amount: number;
}

export interface PaletteParams {
  /** Hue rotation in degrees. */
  hueShiftDeg: number;
  /** Colour saturation multiplier: 0 greyscale, 1 as painted, 2 doubled. */
  saturation: number;
  /** Added brightness: -1 black, 0 as painted, +1 white. */
  brightness: number;
  /** Contrast multiplier around mid grey: 1 as painted. */
  contrast: number;
  /** -1 cool (blue), 0 as painted, +1 warm (orange). */
  warmth: number;
  hueBands: HueBand[];
}

export interface MotionParams {
  /** Slow sideways travel across the artwork. */
  drift: number;
  /** Zooming in and out (breathing scale). */
  zoom: number;
  /** Turning around the centre. */
  rotate: number;
  /** Scale and light swelling on the beat (bounded so it never flashes). */
  pulse: number;
  /** Mirror-folding into segments. */
  kaleidoscope: number;
  /** Number of kaleidoscope segments, 2..16. */
  segments: number;
  /** Water-like waves. */
  ripple: number;
  /** Displaced bands and colour split, changing at most a few times a second. */
  glitch: number;
}

export interface TextureParams {
  /** Film grain. */
  grain: number;
  /** Softness: 0 sharp, 1 very soft. */
  blur: number;
}

export interface VisualParams {
  version: typeof VISUAL_PARAMS_VERSION;
  /** The artwork(s) shown; empty means the pack's first (the cover). */
  artworks: ArtworkWeight[];
  palette: PaletteParams;
  motion: MotionParams;
  texture: TextureParams;
  /** Tempo of all motion: 1 neutral, 0.25 very slow, 3 very fast. */
  speed: number;
  /** How far every effect goes: 0.5 neutral. */
  intensity: number;
  /** How strongly the music's energy and beat drive the picture: 0 not at all. */
  audioReactivity: number;
}

/** Numeric ranges, also used by the interpreter to clamp. */
export const VISUAL_RANGES = {
  hueShiftDeg: { min: -180, max: 180, neutral: 0 },
  saturation: { min: 0, max: 2, neutral: 1 },
  brightness: { min: -0.6, max: 0.6, neutral: 0 },
  contrast: { min: 0.4, max: 1.8, neutral: 1 },
  warmth: { min: -1, max: 1, neutral: 0 },
  drift: { min: 0, max: 1, neutral: 0.15 },
  zoom: { min: 0, max: 1, neutral: 0 },
  rotate: { min: 0, max: 1, neutral: 0 },
  pulse: { min: 0, max: 1, neutral: 0 },
  kaleidoscope: { min: 0, max: 1, neutral: 0 },
  segments: { min: 2, max: 16, neutral: 6 },
  ripple: { min: 0, max: 1, neutral: 0 },
  glitch: { min: 0, max: 1, neutral: 0 },
  grain: { min: 0, max: 1, neutral: 0 },
  blur: { min: 0, max: 1, neutral: 0 },
  speed: { min: 0.25, max: 3, neutral: 1 },
  intensity: { min: 0, max: 1, neutral: 0.5 },
  audioReactivity: { min: 0, max: 1, neutral: 0.3 },
} as const satisfies Record<string, { min: number; max: number; neutral: number }>;

export type VisualRangeKey = keyof typeof VISUAL_RANGES;

export function neutralVisualParams(): VisualParams {
  const n = (k: VisualRangeKey) => VISUAL_RANGES[k].neutral;
  return {
    version: VISUAL_PARAMS_VERSION,
    artworks: [],
    palette: {
      hueShiftDeg: n('hueShiftDeg'),
      saturation: n('saturation'),
      brightness: n('brightness'),
      contrast: n('contrast'),
      warmth: n('warmth'),
      hueBands: [],
    },
    motion: {
      drift: n('drift'),
      zoom: n('zoom'),
      rotate: n('rotate'),
      pulse: n('pulse'),
      kaleidoscope: n('kaleidoscope'),
      segments: n('segments'),
      ripple: n('ripple'),
      glitch: n('glitch'),
    },
    texture: { grain: n('grain'), blur: n('blur') },
    speed: n('speed'),
    intensity: n('intensity'),
    audioReactivity: n('audioReactivity'),
  };
}

/** A deep copy (params are plain JSON). */
export function cloneVisualParams(p: VisualParams): VisualParams {
  return {
    ...p,
    artworks: p.artworks.map((a) => ({ ...a })),
    palette: { ...p.palette, hueBands: p.palette.hueBands.map((b) => ({ ...b })) },
    motion: { ...p.motion },
    texture: { ...p.texture },
  };
}

const ranged = (k: VisualRangeKey) => z.number().finite().min(VISUAL_RANGES[k].min).max(VISUAL_RANGES[k].max);

export const HueBandSchema = z
  .object({
    hueDeg: z.number().finite().min(0).max(360),
    widthDeg: z.number().finite().min(5).max(180),
    amount: z.number().finite().min(-1).max(1),
  })
  .strict();

export const VisualParamsSchema = z
  .object({
    version: z.literal(VISUAL_PARAMS_VERSION),
    artworks: z
      .array(z.object({ id: z.string().min(1).max(64), weight: z.number().finite().gt(0).max(1) }).strict())
      .max(MAX_BLEND),
    palette: z
      .object({
        hueShiftDeg: ranged('hueShiftDeg'),
        saturation: ranged('saturation'),
        brightness: ranged('brightness'),
        contrast: ranged('contrast'),
        warmth: ranged('warmth'),
        hueBands: z.array(HueBandSchema).max(MAX_HUE_BANDS),
      })
      .strict(),
    motion: z
      .object({
        drift: ranged('drift'),
        zoom: ranged('zoom'),
        rotate: ranged('rotate'),
        pulse: ranged('pulse'),
        kaleidoscope: ranged('kaleidoscope'),
        segments: ranged('segments').int(),
        ripple: ranged('ripple'),
        glitch: ranged('glitch'),
      })
      .strict(),
    texture: z.object({ grain: ranged('grain'), blur: ranged('blur') }).strict(),
    speed: ranged('speed'),
    intensity: ranged('intensity'),
    audioReactivity: ranged('audioReactivity'),
  })
  .strict();

/** Parses stored params (e.g. from the room document); anything unsound gives null. */
export function parseVisualParams(value: unknown): VisualParams | null {
  const parsed = VisualParamsSchema.safeParse(value);
  return parsed.success ? (parsed.data as VisualParams) : null;
}
