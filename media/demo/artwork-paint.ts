// Shared brushes for the demo artwork: colour arithmetic and the finishing
// passes (glow, vignette, grain) that make flat vector shapes read as print.
import type { SKRSContext2D } from '@napi-rs/canvas';
import type { Rng } from './artwork-random.ts';

export type Ctx = SKRSContext2D;
export type Rgb = readonly [number, number, number];

export function hexToRgb(hex: string): Rgb {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(hex);
  if (!m) throw new Error(`not a #rrggbb colour: ${hex}`);
  return [parseInt(m[1]!, 16), parseInt(m[2]!, 16), parseInt(m[3]!, 16)];
}

export function rgba(hex: string, alpha: number): string {
  const [r, g, b] = hexToRgb(hex);
  return `rgba(${r},${g},${b},${alpha})`;
}

/** Linear blend of two hex colours, t in [0, 1]. */
export function mixHex(a: string, b: string, t: number): string {
  const ca = hexToRgb(a);
  const cb = hexToRgb(b);
  const k = Math.min(1, Math.max(0, t));
  const ch = (i: 0 | 1 | 2): string =>
    Math.round(ca[i] + (cb[i] - ca[i]) * k)
      .toString(16)
      .padStart(2, '0');
  return `#${ch(0)}${ch(1)}${ch(2)}`;
}

/** Colour at position t along a multi-stop ramp of hex colours. */
export function ramp(stops: readonly string[], t: number): string {
  const first = stops[0];
  if (first === undefined) throw new Error('empty ramp');
  if (stops.length === 1) return first;
  const k = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(k));
  return mixHex(stops[i]!, stops[i + 1]!, k - i);
}

/** Soft radial light: a focal area that the eye (and region picker) lands on. */
export function glow(ctx: Ctx, x: number, y: number, radius: number, hex: string, alpha: number): void {
  const g = ctx.createRadialGradient(x, y, 0, x, y, radius);
  g.addColorStop(0, rgba(hex, alpha));
  g.addColorStop(0.35, rgba(hex, alpha * 0.45));
  g.addColorStop(1, rgba(hex, 0));
  ctx.fillStyle = g;
  ctx.fillRect(x - radius, y - radius, radius * 2, radius * 2);
}

/** Darkened corners, pulling attention towards the middle. */
export function vignette(ctx: Ctx, width: number, height: number, strength: number, hex = '#000000'): void {
  const cx = width / 2;
  const cy = height / 2;
  const r = Math.hypot(cx, cy);
  const g = ctx.createRadialGradient(cx, cy, r * 0.45, cx, cy, r);
  g.addColorStop(0, rgba(hex, 0));
  g.addColorStop(1, rgba(hex, strength));
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, width, height);
}

/**
 * Monochrome film grain added straight to the pixels. Kept to a few levels
 * so the texture shows without turning the PNG into incompressible noise.
 */
export function grain(ctx: Ctx, width: number, height: number, amount: number, rng: Rng): void {
  const image = ctx.getImageData(0, 0, width, height);
  const d = image.data;
  for (let i = 0; i < d.length; i += 4) {
    const n = Math.round((rng.next() - 0.5) * amount);
    if (n === 0) continue;
    d[i] = d[i]! + n;
    d[i + 1] = d[i + 1]! + n;
    d[i + 2] = d[i + 2]! + n;
  }
  ctx.putImageData(image, 0, 0);
}

/** One piece of the demo release: its catalogue facts plus the brush that paints it. */
export interface ArtworkPiece {
  id: string;
  title: string;
  kind: 'cover' | 'graphic';
  width: number;
  height: number;
  tags: string[];
  palette: string[];
  /** Seed of the piece's own random stream. */
  seed: number;
  paint(ctx: Ctx, rng: Rng): void;
}
