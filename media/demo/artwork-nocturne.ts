// "Nocturne": a flow field of night currents drifting past a pale moon, with star specks.
import { glow, grain, ramp, rgba, vignette } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import { fbm, gradientNoise } from './artwork-random.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#0b0d2e', '#23307a', '#5a3fb0', '#a58bff', '#eef0ff'];
const [NAVY, INDIGO, VIOLET, LAVENDER, STARLIGHT] = PALETTE as [string, string, string, string, string];

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1280;
  const h = 720;
  const moonX = w * 0.7;
  const moonY = h * 0.34;

  const sky = ctx.createLinearGradient(0, 0, 0, h);
  sky.addColorStop(0, '#06071c');
  sky.addColorStop(0.55, NAVY);
  sky.addColorStop(1, '#171d55');
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, h);
  glow(ctx, moonX, moonY, 560, VIOLET, 0.35);
  glow(ctx, w * 0.15, h * 0.95, 500, INDIGO, 0.5);

  // Currents: particles follow a noise field that leans left-to-right so the piece reads as drift, not static.
  const noise = gradientNoise(rng);
  const scale = 0.0021;
  const fieldAngle = (x: number, y: number): number =>
    fbm(noise, x * scale, y * scale, 3) * Math.PI * 1.6 + 0.15 * Math.sin(y * 0.006);
  const moonR = Math.hypot(w, h) * 0.55;
  ctx.globalCompositeOperation = 'screen';
  ctx.lineCap = 'round';
  ctx.lineJoin = 'round';
  const strands = 2600;
  for (let i = 0; i < strands; i++) {
    let x = rng.range(-80, w + 20);
    let y = rng.range(-20, h + 20);
    const near = 1 - Math.min(1, Math.hypot(x - moonX, y - moonY) / moonR);
    const tone = Math.min(1, near * near * 1.25 + rng.range(-0.08, 0.12));
    ctx.strokeStyle = rgba(ramp([INDIGO, VIOLET, LAVENDER, STARLIGHT], tone), rng.range(0.08, 0.26) + near * 0.18);
    ctx.lineWidth = rng.range(0.6, 1.7) + near * 1.2;
    ctx.beginPath();
    ctx.moveTo(x, y);
    const steps = rng.int(40, 110);
    for (let s = 0; s < steps; s++) {
      const a = fieldAngle(x, y);
      x += Math.cos(a) * 3.2;
      y += Math.sin(a) * 3.2;
      ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  // A few long bright ribbons give the field readable lines to follow.
  for (let i = 0; i < 14; i++) {
    let x = rng.range(-60, w * 0.5);
    let y = rng.range(h * 0.15, h * 0.9);
    ctx.strokeStyle = rgba(i % 3 === 0 ? STARLIGHT : LAVENDER, rng.range(0.25, 0.5));
    ctx.lineWidth = rng.range(1.6, 3.4);
    ctx.beginPath();
    ctx.moveTo(x, y);
    for (let s = 0; s < 320; s++) {
      const a = fieldAngle(x, y);
      x += Math.cos(a) * 3;
      y += Math.sin(a) * 3;
      ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  // The moon: the focal area of the piece.
  glow(ctx, moonX, moonY, 260, LAVENDER, 0.55);
  glow(ctx, moonX, moonY, 120, STARLIGHT, 0.6);
  ctx.globalCompositeOperation = 'source-over';
  const disc = ctx.createRadialGradient(moonX - 14, moonY - 14, 4, moonX, moonY, 58);
  disc.addColorStop(0, '#ffffff');
  disc.addColorStop(0.85, STARLIGHT);
  disc.addColorStop(1, rgba(LAVENDER, 0.9));
  ctx.fillStyle = disc;
  ctx.beginPath();
  ctx.arc(moonX, moonY, 58, 0, Math.PI * 2);
  ctx.fill();
  // Thin halo rings give the moon a drawn, designed edge against the soft glow.
  ctx.lineWidth = 1;
  for (const [radius, alpha] of [[84, 0.45], [132, 0.25], [196, 0.12]] as const) {
    ctx.strokeStyle = rgba(STARLIGHT, alpha);
    ctx.beginPath();
    ctx.arc(moonX, moonY, radius, 0, Math.PI * 2);
    ctx.stroke();
  }

  // Stars: many specks, a handful with a soft halo and cross flare.
  ctx.globalCompositeOperation = 'screen';
  for (let i = 0; i < 900; i++) {
    const x = rng.range(0, w);
    const y = rng.range(0, h) * rng.range(0.35, 1);
    ctx.fillStyle = rgba(rng.chance(0.2) ? LAVENDER : STARLIGHT, rng.range(0.25, 0.95));
    ctx.beginPath();
    ctx.arc(x, y, rng.range(0.4, 1.5), 0, Math.PI * 2);
    ctx.fill();
  }
  for (let i = 0; i < 16; i++) {
    const x = rng.range(w * 0.04, w * 0.96);
    const y = rng.range(h * 0.04, h * 0.6);
    const r = rng.range(5, 14);
    glow(ctx, x, y, r * 3, LAVENDER, 0.5);
    ctx.strokeStyle = rgba(STARLIGHT, 0.7);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x - r, y);
    ctx.lineTo(x + r, y);
    ctx.moveTo(x, y - r);
    ctx.lineTo(x, y + r);
    ctx.stroke();
    ctx.fillStyle = STARLIGHT;
    ctx.beginPath();
    ctx.arc(x, y, 1.6, 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.globalCompositeOperation = 'source-over';

  vignette(ctx, w, h, 0.6, '#03030f');
  grain(ctx, w, h, 16, rng);
}

export const nocturne: ArtworkPiece = {
  id: 'nocturne',
  title: 'Nocturne',
  kind: 'graphic',
  width: 1280,
  height: 720,
  tags: ['night', 'moon', 'stars', 'blue', 'violet', 'indigo', 'calm', 'dreamy', 'flow', 'currents', 'drift', 'sky', 'dark', 'cosmic'],
  palette: PALETTE,
  seed: 0x6e6f6374,
  paint,
};
