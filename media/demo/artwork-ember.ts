// "Ember": a low sun built from wavering concentric bands, sliced like a
// sunset on the horizon, throwing rays and rising sparks.
import { glow, grain, mixHex, ramp, rgba, vignette } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import { gradientNoise } from './artwork-random.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#2a0806', '#8f1a10', '#e2461c', '#ff9a3c', '#ffe0a3'];
const [MAROON, CRIMSON, VERMILION, AMBER, CREAM] = PALETTE as [string, string, string, string, string];

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1024;
  const h = 1024;
  const cx = w * 0.5;
  const cy = h * 0.5;
  const sunR = 300;
  const horizon = cy + sunR * 0.58;

  // One gradient object reused for the horizon cuts, so the cuts show the sky behind, not a flat colour.
  const sky = ctx.createRadialGradient(cx, cy, 40, cx, cy, 820);
  sky.addColorStop(0, '#6e140c');
  sky.addColorStop(0.45, '#3d0b07');
  sky.addColorStop(1, '#140302');
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, h);
  glow(ctx, cx, cy, 620, VERMILION, 0.35);

  const noise = gradientNoise(rng);

  // Rays: thin radial strokes with irregular lengths, brightest near the sun.
  ctx.globalCompositeOperation = 'screen';
  for (let i = 0; i < 260; i++) {
    const a = (i / 260) * Math.PI * 2 + rng.range(-0.01, 0.01);
    const r0 = sunR + rng.range(30, 70);
    const r1 = r0 + rng.range(30, 260) * (0.6 + 0.4 * Math.abs(Math.sin(a * 3)));
    const g = ctx.createLinearGradient(cx + Math.cos(a) * r0, cy + Math.sin(a) * r0, cx + Math.cos(a) * r1, cy + Math.sin(a) * r1);
    g.addColorStop(0, rgba(AMBER, rng.range(0.25, 0.6)));
    g.addColorStop(1, rgba(CRIMSON, 0));
    ctx.strokeStyle = g;
    ctx.lineWidth = rng.range(0.8, 2.6);
    ctx.beginPath();
    ctx.moveTo(cx + Math.cos(a) * r0, cy + Math.sin(a) * r0);
    ctx.lineTo(cx + Math.cos(a) * r1, cy + Math.sin(a) * r1);
    ctx.stroke();
  }

  // Halo rings, some dashed, fading outwards.
  for (let i = 0; i < 9; i++) {
    const r = sunR + 24 + i * i * 7 + i * 12;
    ctx.strokeStyle = rgba(i % 2 === 0 ? AMBER : VERMILION, 0.5 * (1 - i / 10));
    ctx.lineWidth = i % 3 === 0 ? 2.2 : 1;
    ctx.setLineDash(i % 2 === 1 ? [rng.range(4, 18), rng.range(6, 20)] : []);
    ctx.beginPath();
    ctx.arc(cx, cy, r, 0, Math.PI * 2);
    ctx.stroke();
  }
  ctx.setLineDash([]);
  ctx.globalCompositeOperation = 'source-over';

  // The sun: stacked wavering discs, outer dark to inner bright, like contour lines of heat.
  const bands = 13;
  for (let b = 0; b < bands; b++) {
    const t = b / (bands - 1);
    const base = sunR * (1 - t * 0.9);
    // The rim stays nearly round; the inner bands waver like heat.
    const wobble = 4 + 24 * Math.sin(Math.PI * Math.min(1, t * 1.3));
    // Alternate bands are nudged darker so each ring reads as its own form.
    const tone = ramp([CRIMSON, VERMILION, AMBER, CREAM], Math.pow(t, 0.85));
    ctx.fillStyle = b % 2 === 1 ? mixHex(tone, CRIMSON, 0.22) : tone;
    ctx.beginPath();
    const n = 180;
    for (let k = 0; k <= n; k++) {
      const a = (k / n) * Math.PI * 2;
      const r = base + wobble * noise(Math.cos(a) * 1.6 + b * 0.37, Math.sin(a) * 1.6 + b * 0.53);
      const x = cx + Math.cos(a) * r;
      const y = cy + Math.sin(a) * r;
      if (k === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.closePath();
    ctx.fill();
  }
  glow(ctx, cx, cy - 30, 170, CREAM, 0.45);

  // Cuts across the lower sun, thickening towards the horizon; clipped to the disc so the rays stay whole.
  ctx.save();
  ctx.beginPath();
  ctx.arc(cx, cy, sunR + 34, 0, Math.PI * 2);
  ctx.clip();
  ctx.fillStyle = sky;
  let y = cy + 10;
  let gap = 2;
  while (y < horizon) {
    ctx.fillRect(cx - sunR - 40, y, (sunR + 40) * 2, gap);
    y += gap + 22;
    gap *= 1.55;
  }
  ctx.restore();

  // Sparks drifting up and out from the sun's rim.
  ctx.globalCompositeOperation = 'screen';
  for (let i = 0; i < 240; i++) {
    const a = rng.range(Math.PI * 1.05, Math.PI * 1.95);
    const r = sunR + rng.range(20, 360) * rng.next();
    let x = cx + Math.cos(a) * r;
    let sy = cy + Math.sin(a) * r;
    const size = rng.range(0.8, 2.6);
    ctx.strokeStyle = rgba(AMBER, rng.range(0.15, 0.45));
    ctx.lineWidth = size * 0.5;
    ctx.beginPath();
    ctx.moveTo(x, sy);
    const len = rng.int(4, 14);
    for (let s = 0; s < len; s++) {
      x += noise(x * 0.01, sy * 0.01) * 3;
      sy -= 2.4;
      ctx.lineTo(x, sy);
    }
    ctx.stroke();
    ctx.fillStyle = rgba(CREAM, 0.85);
    ctx.beginPath();
    ctx.arc(x, sy, size * 0.7, 0, Math.PI * 2);
    ctx.fill();
    if (size > 2.2) glow(ctx, x, sy, size * 6, AMBER, 0.5);
  }
  ctx.globalCompositeOperation = 'source-over';

  // Ground: a dark band with molten reflections under the sun.
  const ground = ctx.createLinearGradient(0, horizon, 0, h);
  ground.addColorStop(0, MAROON);
  ground.addColorStop(1, '#0d0201');
  ctx.fillStyle = ground;
  ctx.fillRect(0, horizon, w, h - horizon);
  ctx.fillStyle = rgba(AMBER, 0.8);
  ctx.fillRect(0, horizon, w, 1.5);
  ctx.globalCompositeOperation = 'screen';
  glow(ctx, cx, horizon, 380, VERMILION, 0.3);
  for (let i = 0; i < 26; i++) {
    const ry = horizon + 6 + i * i * 0.55 + i * 6;
    const half = sunR * 0.95 * (1 - i / 30) * rng.range(0.45, 1);
    ctx.fillStyle = rgba(i < 7 ? AMBER : VERMILION, 0.6 * (1 - i / 28));
    ctx.fillRect(cx - half + rng.range(-40, 40), ry, half * 2, rng.range(1.5, 4.5));
  }
  ctx.globalCompositeOperation = 'source-over';

  vignette(ctx, w, h, 0.65, '#080101');
  grain(ctx, w, h, 18, rng);
}

export const ember: ArtworkPiece = {
  id: 'ember',
  title: 'Ember',
  kind: 'graphic',
  width: 1024,
  height: 1024,
  tags: ['sunset', 'sun', 'fire', 'ember', 'warm', 'orange', 'red', 'gold', 'glow', 'heat', 'rays', 'sparks', 'concentric', 'circles', 'horizon', 'intense'],
  palette: PALETTE,
  seed: 0x656d6272,
  paint,
};
