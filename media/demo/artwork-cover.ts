// "Afterimage" (the release cover): a sliced gradient sun on warm paper with
// the ink ring it leaves behind, halftone texture and print marks.
import { grain, rgba } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#efe6d6', '#ff4a1c', '#6b2cf5', '#16141a', '#ffb000'];
const [PAPER, VERMILION, VIOLET, INK, SAFFRON] = PALETTE as [string, string, string, string, string];

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1024;
  const h = 1024;
  const cx = w * 0.55;
  const cy = h * 0.45;
  const r = 300;

  // Paper: flat cream, a touch darker towards the edges like an old sleeve.
  ctx.fillStyle = PAPER;
  ctx.fillRect(0, 0, w, h);
  const edge = ctx.createRadialGradient(w / 2, h / 2, w * 0.3, w / 2, h / 2, w * 0.75);
  edge.addColorStop(0, rgba('#c9b89c', 0));
  edge.addColorStop(1, rgba('#c9b89c', 0.45));
  ctx.fillStyle = edge;
  ctx.fillRect(0, 0, w, h);

  // Halftone field fading out from the lower left: texture for the empty corner.
  const step = 16;
  ctx.fillStyle = rgba(INK, 0.85);
  for (let y = step / 2; y < h; y += step) {
    for (let x = step / 2; x < w; x += step) {
      const d = Math.hypot(x - w * 0.02, y - h * 1.02) / (w * 0.75);
      const size = (1 - d) * step * 0.42;
      if (size < 0.6) continue;
      ctx.beginPath();
      ctx.arc(x + ((y / step) % 2) * (step / 2), y, size, 0, Math.PI * 2);
      ctx.fill();
    }
  }

  // The afterimage: the ink ring left behind, offset up and left of the sun.
  ctx.strokeStyle = INK;
  ctx.lineWidth = 3;
  ctx.beginPath();
  ctx.arc(cx - 58, cy - 52, r, 0, Math.PI * 2);
  ctx.stroke();

  // The sun, painted once per slice so each slice can slip sideways.
  const sun = ctx.createLinearGradient(0, cy - r, 0, cy + r);
  sun.addColorStop(0, SAFFRON);
  sun.addColorStop(0.45, VERMILION);
  sun.addColorStop(1, VIOLET);
  let y = cy - r;
  let slice = 0;
  while (y < cy + r) {
    // Slices thin out towards the bottom, so the disc seems to dissolve downwards.
    const t = (y - (cy - r)) / (2 * r);
    const sh = Math.max(8, 70 * (1 - t) + rng.range(-6, 6));
    const shift = slice < 2 ? 0 : rng.chance(0.45) ? rng.range(-70, 70) * t : 0;
    ctx.save();
    ctx.beginPath();
    ctx.rect(0, y, w, sh - 4 * t);
    ctx.clip();
    ctx.fillStyle = sun;
    ctx.beginPath();
    ctx.arc(cx + shift, cy, r, 0, Math.PI * 2);
    ctx.fill();
    ctx.restore();
    y += sh;
    slice++;
  }

  // Shine on the upper sun: a soft lighter crescent.
  const shine = ctx.createRadialGradient(cx - r * 0.3, cy - r * 0.45, 10, cx - r * 0.3, cy - r * 0.45, r * 0.9);
  shine.addColorStop(0, rgba('#fff3cf', 0.4));
  shine.addColorStop(1, rgba('#fff3cf', 0));
  ctx.save();
  ctx.beginPath();
  ctx.arc(cx, cy, r, 0, Math.PI * 2);
  ctx.clip();
  ctx.fillStyle = shine;
  ctx.fillRect(cx - r, cy - r, r * 2, r * 2);
  ctx.restore();

  // Print marks: a hairline, a tick column and a colour key of the palette, as on a printer's proof.
  ctx.fillStyle = INK;
  ctx.fillRect(64, cy + r + 70, w - 128, 2);
  for (let i = 0; i < 12; i++) ctx.fillRect(64, 96 + i * 14, i % 4 === 0 ? 28 : 14, 2);
  const dots = [SAFFRON, VERMILION, VIOLET, INK, PAPER];
  dots.forEach((hex, i) => {
    const x = w - 84 - i * 34;
    const dy = cy + r + 120;
    ctx.fillStyle = hex;
    ctx.beginPath();
    ctx.arc(x, dy, 11, 0, Math.PI * 2);
    ctx.fill();
    ctx.strokeStyle = INK;
    ctx.lineWidth = 2;
    ctx.stroke();
  });
  ctx.fillStyle = INK;
  ctx.fillRect(w - 112, 64, 48, 48);
  ctx.fillStyle = VERMILION;
  ctx.fillRect(w - 112 + 14, 64 + 14, 20, 20);

  grain(ctx, w, h, 22, rng);
}

export const cover: ArtworkPiece = {
  id: 'afterimage',
  title: 'Afterimage',
  kind: 'cover',
  width: 1024,
  height: 1024,
  tags: ['cover', 'sun', 'circle', 'retro', 'print', 'poster', 'warm', 'orange', 'red', 'violet', 'yellow', 'cream', 'stripes', 'halftone', 'dots', 'minimal', 'bold'],
  palette: PALETTE,
  seed: 0x61667465,
  paint,
};
