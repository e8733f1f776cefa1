// Brushes for the second demo release, whose look is deliberately far from the first's
// (dark grounds, neon and glow): pale paper, translucent pastel washes, hard-edged flat
// shapes. The visual model's bench compares styles across the two releases, so the
// difference has to be in the pixels' statistics, not only in the subject.
import type { Ctx } from './artwork-paint.ts';
import { rgba } from './artwork-paint.ts';
import { fbm, gradientNoise } from './artwork-random.ts';
import type { Rng } from './artwork-random.ts';

export interface Pt {
  x: number;
  y: number;
  /** How far this vertex may wander when the outline is deformed again (0..1). */
  v: number;
}

/** A rough regular polygon around (cx, cy), each vertex with its own wander. */
export function blobOutline(cx: number, cy: number, radius: number, sides: number, rng: Rng, squash = 1): Pt[] {
  const pts: Pt[] = [];
  const turn = rng.range(0, Math.PI * 2);
  for (let i = 0; i < sides; i++) {
    const a = turn + (i / sides) * Math.PI * 2;
    const r = radius * rng.range(0.85, 1.1);
    pts.push({ x: cx + Math.cos(a) * r, y: cy + Math.sin(a) * r * squash, v: rng.range(0.5, 1) });
  }
  return pts;
}

/**
 * Recursive midpoint displacement: every edge gains a vertex pushed sideways by a
 * random share of the edge's length. Repeated, a polygon becomes a wet, ragged edge
 * (the layered-polygon watercolour technique).
 */
export function deform(pts: readonly Pt[], rounds: number, amount: number, rng: Rng): Pt[] {
  let cur = pts.slice();
  for (let r = 0; r < rounds; r++) {
    const next: Pt[] = [];
    for (let i = 0; i < cur.length; i++) {
      const a = cur[i]!;
      const b = cur[(i + 1) % cur.length]!;
      next.push(a);
      const len = Math.hypot(b.x - a.x, b.y - a.y);
      const v = (a.v + b.v) / 2;
      const push = rng.gauss(0, len * amount * v * 0.5);
      // Sideways from the edge, plus a little along it so vertices do not line up.
      const nx = -(b.y - a.y) / (len || 1);
      const ny = (b.x - a.x) / (len || 1);
      const along = rng.range(0.35, 0.65);
      next.push({
        x: a.x + (b.x - a.x) * along + nx * push,
        y: a.y + (b.y - a.y) * along + ny * push,
        v: Math.min(1, v * rng.range(0.6, 1.15)),
      });
    }
    cur = next;
  }
  return cur;
}

function fillOutline(ctx: Ctx, pts: readonly Pt[]): void {
  ctx.beginPath();
  ctx.moveTo(pts[0]!.x, pts[0]!.y);
  for (let i = 1; i < pts.length; i++) ctx.lineTo(pts[i]!.x, pts[i]!.y);
  ctx.closePath();
  ctx.fill();
}

/**
 * One watercolour wash: many near-transparent layers of the same ragged shape, each
 * deformed afresh. Where layers overlap the pigment pools (denser middle, soft
 * bleeding rim), as a real wash does. Laid over what is there ('source-over') by
 * default, so overlapping washes stay pastel; 'multiply' darkens where they meet.
 */
export function wash(
  ctx: Ctx,
  outline: readonly Pt[],
  hex: string,
  rng: Rng,
  opts: { layers?: number; alpha?: number; spread?: number; multiply?: boolean } = {},
): void {
  const layers = opts.layers ?? 36;
  const alpha = opts.alpha ?? 0.045;
  const base = deform(outline, 2, opts.spread ?? 0.9, rng);
  ctx.save();
  ctx.globalCompositeOperation = opts.multiply ? 'multiply' : 'source-over';
  ctx.fillStyle = rgba(hex, alpha);
  for (let l = 0; l < layers; l++) {
    // Every few layers the shape shifts a little further, so the rim is soft.
    const shape = deform(base, 3, opts.spread ?? 0.9, rng);
    fillOutline(ctx, shape);
  }
  // A faint darker line where the pigment dried at the edge.
  ctx.globalCompositeOperation = 'multiply';
  ctx.strokeStyle = rgba(hex, alpha * 2.2);
  ctx.lineWidth = 1.2;
  const rim = deform(base, 2, 0.3, rng);
  ctx.beginPath();
  ctx.moveTo(rim[0]!.x, rim[0]!.y);
  for (let i = 1; i < rim.length; i++) ctx.lineTo(rim[i]!.x, rim[i]!.y);
  ctx.closePath();
  ctx.stroke();
  ctx.restore();
}

/**
 * Cold-press paper: a slow mottling plus a fine tooth, darkening a little where the
 * noise dips (pigment settles in the paper's hollows). A pixel pass over the canvas.
 */
export function paper(ctx: Ctx, width: number, height: number, rng: Rng, strength = 1): void {
  const mottle = gradientNoise(rng);
  const tooth = gradientNoise(rng);
  const image = ctx.getImageData(0, 0, width, height);
  const d = image.data;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4;
      const m = fbm(mottle, x / 180, y / 180, 3);
      const t = tooth(x / 2.3, y / 2.3);
      // Darker pigment (lower values) settles more into the tooth than bare paper.
      const lum = (d[i]! + d[i + 1]! + d[i + 2]!) / 765;
      const k = 1 + strength * (m * 0.025 + t * (0.018 + (1 - lum) * 0.05));
      d[i] = d[i]! * k;
      d[i + 1] = d[i + 1]! * k;
      d[i + 2] = d[i + 2]! * k;
    }
  }
  ctx.putImageData(image, 0, 0);
}
