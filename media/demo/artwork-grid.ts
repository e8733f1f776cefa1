// "Grid": a neon cell matrix on black that swells into a bright cluster
// around a ring, then is torn by glitch slices, colour split and scanlines.
import { glow, grain, rgba } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import { fbm, gradientNoise } from './artwork-random.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#07060b', '#ff2bd6', '#19f0ff', '#7a3cff', '#b6ff3b'];
const [VOID, MAGENTA, CYAN, VIOLET, LIME] = PALETTE as [string, string, string, string, string];

/** Pixel pass: shifts random bands sideways with a red/blue split, and darkens every third row. */
function glitch(ctx: Ctx, w: number, h: number, rng: Rng): void {
  const image = ctx.getImageData(0, 0, w, h);
  const src = image.data;
  const out = new Uint8ClampedArray(src);
  const bands = 14;
  for (let b = 0; b < bands; b++) {
    const y0 = rng.int(0, h);
    const bh = rng.int(2, rng.chance(0.3) ? 60 : 14);
    const shift = rng.int(-90, 90);
    const split = rng.int(3, 12);
    for (let y = y0; y < Math.min(h, y0 + bh); y++) {
      const row = y * w * 4;
      for (let x = 0; x < w; x++) {
        const i = row + x * 4;
        const sr = Math.min(w - 1, Math.max(0, x - shift - split));
        const sg = Math.min(w - 1, Math.max(0, x - shift));
        const sb = Math.min(w - 1, Math.max(0, x - shift + split));
        out[i] = src[row + sr * 4]!;
        out[i + 1] = src[row + sg * 4 + 1]!;
        out[i + 2] = src[row + sb * 4 + 2]!;
      }
    }
  }
  for (let y = 0; y < h; y += 3) {
    const row = y * w * 4;
    for (let x = 0; x < w; x++) {
      const i = row + x * 4;
      out[i] = out[i]! * 0.72;
      out[i + 1] = out[i + 1]! * 0.72;
      out[i + 2] = out[i + 2]! * 0.72;
    }
  }
  image.data.set(out);
  ctx.putImageData(image, 0, 0);
}

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1280;
  const h = 720;
  const cell = 40;
  const cols = w / cell;
  const rows = h / cell;
  const focusX = w * 0.62;
  const focusY = h * 0.5;

  ctx.fillStyle = VOID;
  ctx.fillRect(0, 0, w, h);
  glow(ctx, focusX, focusY, 520, VIOLET, 0.28);

  // Faint lattice over the whole frame.
  ctx.strokeStyle = rgba(VIOLET, 0.22);
  ctx.lineWidth = 1;
  ctx.beginPath();
  for (let c = 0; c <= cols; c++) {
    ctx.moveTo(c * cell + 0.5, 0);
    ctx.lineTo(c * cell + 0.5, h);
  }
  for (let r = 0; r <= rows; r++) {
    ctx.moveTo(0, r * cell + 0.5);
    ctx.lineTo(w, r * cell + 0.5);
  }
  ctx.stroke();

  // Cells: activity is noise plus a pull towards the focus, so the matrix has one clear bright mass.
  const noise = gradientNoise(rng);
  const hueNoise = gradientNoise(rng);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < cols; c++) {
      const x = c * cell;
      const y = r * cell;
      const d = Math.hypot(x + cell / 2 - focusX, (y + cell / 2 - focusY) * 1.3) / 520;
      const activity = fbm(noise, c * 0.16, r * 0.16, 3) * 0.9 + (1 - d) * 0.85 + rng.range(-0.08, 0.08);
      const hue = hueNoise(c * 0.09 + 3.1, r * 0.09);
      const hex = hue > 0.22 ? CYAN : hue < -0.25 ? LIME : MAGENTA;
      if (activity > 0.78) {
        const g = ctx.createLinearGradient(x, y, x + cell, y + cell);
        g.addColorStop(0, rgba(hex, 0.95));
        g.addColorStop(1, rgba(hex, 0.55));
        ctx.fillStyle = g;
        ctx.fillRect(x + 3, y + 3, cell - 6, cell - 6);
      } else if (activity > 0.55) {
        ctx.fillStyle = rgba(hex, 0.8);
        const s = cell * (activity - 0.4);
        ctx.fillRect(x + (cell - s) / 2, y + (cell - s) / 2, s, s);
      } else if (activity > 0.38) {
        ctx.strokeStyle = rgba(hex, 0.7);
        ctx.lineWidth = 1.5;
        ctx.strokeRect(x + 6.5, y + 6.5, cell - 13, cell - 13);
      } else if (activity > 0.1) {
        ctx.fillStyle = rgba(hex, 0.6);
        ctx.fillRect(x - 1.5, y - 1.5, 3, 3);
      }
    }
  }

  // The ring: a neon outline around the cluster, with a soft bloom.
  ctx.globalCompositeOperation = 'screen';
  ctx.shadowColor = CYAN;
  ctx.shadowBlur = 28;
  ctx.strokeStyle = rgba(CYAN, 0.95);
  ctx.lineWidth = 5;
  ctx.beginPath();
  ctx.arc(focusX, focusY, 230, 0, Math.PI * 2);
  ctx.stroke();
  ctx.shadowColor = MAGENTA;
  ctx.strokeStyle = rgba(MAGENTA, 0.9);
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.arc(focusX + 8, focusY - 4, 262, -0.4, Math.PI * 1.35);
  ctx.stroke();
  ctx.shadowBlur = 0;
  ctx.shadowColor = 'rgba(0,0,0,0)';

  // Crosshair ticks and data bars: a hint of interface, reading as "signal".
  ctx.fillStyle = rgba(LIME, 0.9);
  for (let i = 0; i < 34; i++) {
    const bw = rng.chance(0.3) ? 6 : 2;
    ctx.fillRect(60 + i * 8, h - 92, bw, rng.range(10, 36));
  }
  ctx.strokeStyle = rgba(CYAN, 0.8);
  ctx.lineWidth = 2;
  ctx.beginPath();
  ctx.moveTo(focusX - 300, focusY);
  ctx.lineTo(focusX - 250, focusY);
  ctx.moveTo(focusX + 250, focusY);
  ctx.lineTo(focusX + 300, focusY);
  ctx.moveTo(focusX, focusY - 300);
  ctx.lineTo(focusX, focusY - 250);
  ctx.moveTo(focusX, focusY + 250);
  ctx.lineTo(focusX, focusY + 300);
  ctx.stroke();
  glow(ctx, focusX, focusY, 200, MAGENTA, 0.3);
  ctx.globalCompositeOperation = 'source-over';

  glitch(ctx, w, h, rng);
  grain(ctx, w, h, 12, rng);
}

export const grid: ArtworkPiece = {
  id: 'grid',
  title: 'Grid',
  kind: 'graphic',
  width: 1280,
  height: 720,
  tags: ['neon', 'grid', 'glitch', 'digital', 'cyber', 'electric', 'magenta', 'cyan', 'lime', 'black', 'geometric', 'squares', 'pixels', 'ring', 'energetic', 'futuristic'],
  palette: PALETTE,
  seed: 0x67726964,
  paint,
};
