// "Tide": layered sine-wave swells rolling towards the viewer under a pale
// sun, each band engraved with fine contour lines.
import { glow, grain, mixHex, ramp, rgba, vignette } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#0b5d63', '#04262c', '#18a39a', '#7fe0cf', '#e6fff8'];
const [TEAL, ABYSS, LAGOON, SEAFOAM, MIST] = PALETTE as [string, string, string, string, string];

interface Swell {
  amp: number;
  freq: number;
  phase: number;
}

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1280;
  const h = 720;
  const horizon = h * 0.36;
  const sunX = w * 0.36;
  const sunY = horizon - 70;

  const sky = ctx.createLinearGradient(0, 0, 0, horizon);
  sky.addColorStop(0, mixHex(TEAL, ABYSS, 0.2));
  sky.addColorStop(0.7, mixHex(LAGOON, SEAFOAM, 0.6));
  sky.addColorStop(1, mixHex(SEAFOAM, MIST, 0.5));
  ctx.fillStyle = sky;
  ctx.fillRect(0, 0, w, horizon + 2);
  glow(ctx, sunX, sunY, 420, MIST, 0.55);
  ctx.fillStyle = rgba(MIST, 0.95);
  ctx.beginPath();
  ctx.arc(sunX, sunY, 46, 0, Math.PI * 2);
  ctx.fill();

  // Thin horizontal haze lines across the sky, echoing the water.
  for (let i = 0; i < 7; i++) {
    const y = horizon - 18 - i * i * 3 - i * 8;
    const len = rng.range(w * 0.15, w * 0.45);
    const x = sunX + rng.range(-0.8, 0.4) * len;
    const haze = ctx.createLinearGradient(x, 0, x + len, 0);
    haze.addColorStop(0, rgba(MIST, 0));
    haze.addColorStop(0.5, rgba(MIST, 0.3 + rng.range(0, 0.2)));
    haze.addColorStop(1, rgba(MIST, 0));
    ctx.fillStyle = haze;
    ctx.fillRect(x, y, len, rng.range(1.5, 3));
  }

  // Swells: far ones are low, flat and light; near ones tall and dark, which gives depth without perspective maths.
  const layers = 13;
  for (let l = 0; l < layers; l++) {
    const t = l / (layers - 1);
    const top = horizon + Math.pow(t, 1.35) * (h - horizon) * 0.92;
    const swells: Swell[] = [0, 1, 2].map((k) => ({
      amp: (3 + 34 * t) * [1, 0.45, 0.2][k]!,
      freq: ((Math.PI * 2) / w) * rng.range(1, 2.4) * (k * 1.9 + 1) * (1.6 - t * 0.6),
      phase: rng.range(0, Math.PI * 2),
    }));
    const edge = (x: number): number => {
      let y = top;
      for (const s of swells) y += Math.sin(x * s.freq + s.phase) * s.amp;
      return y;
    };
    const bandColour = ramp([SEAFOAM, LAGOON, TEAL, ABYSS], Math.pow(t, 0.7));
    const body = ctx.createLinearGradient(0, top - 40, 0, top + 160 * (0.4 + t));
    body.addColorStop(0, mixHex(bandColour, SEAFOAM, 0.15));
    body.addColorStop(1, mixHex(bandColour, ABYSS, 0.6));
    ctx.fillStyle = body;
    ctx.beginPath();
    ctx.moveTo(0, h);
    for (let x = 0; x <= w; x += 8) ctx.lineTo(x, edge(x));
    ctx.lineTo(w, h);
    ctx.closePath();
    ctx.fill();

    // Engraved contour lines following the swell's shape, fading with depth into the band.
    const lines = 4 + Math.round(t * 6);
    for (let k = 1; k <= lines; k++) {
      ctx.strokeStyle = rgba(MIST, 0.22 * (1 - k / (lines + 1)) * (0.5 + t));
      ctx.lineWidth = 0.8;
      ctx.beginPath();
      const off = k * (3 + t * 7);
      for (let x = 0; x <= w; x += 8) {
        const y = edge(x) + off;
        if (x === 0) ctx.moveTo(x, y);
        else ctx.lineTo(x, y);
      }
      ctx.stroke();
    }
    // Foam crest.
    ctx.strokeStyle = rgba(MIST, 0.55 + 0.35 * (1 - t));
    ctx.lineWidth = 1 + t * 2.2;
    ctx.beginPath();
    for (let x = 0; x <= w; x += 8) {
      const y = edge(x);
      if (x === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    }
    ctx.stroke();
  }

  // The sun's glitter path on the water: the piece's focal column.
  ctx.globalCompositeOperation = 'screen';
  for (let i = 0; i < 200; i++) {
    const y = horizon + Math.pow(rng.next(), 1.6) * (h - horizon);
    const spread = 14 + (y - horizon) * 0.45;
    const x = sunX + rng.gauss(0, spread * 0.5);
    const len = rng.range(6, 30) * (0.5 + (y - horizon) / (h - horizon));
    ctx.fillStyle = rgba(MIST, rng.range(0.25, 0.7) * (1 - (y - horizon) / (h - horizon) * 0.6));
    ctx.fillRect(x - len / 2, y, len, rng.range(1, 2.2));
  }
  glow(ctx, sunX, horizon + 10, 240, SEAFOAM, 0.35);
  ctx.globalCompositeOperation = 'source-over';

  vignette(ctx, w, h, 0.5, ABYSS);
  grain(ctx, w, h, 14, rng);
}

export const tide: ArtworkPiece = {
  id: 'tide',
  title: 'Tide',
  kind: 'graphic',
  width: 1280,
  height: 720,
  tags: ['ocean', 'sea', 'waves', 'tide', 'water', 'teal', 'aqua', 'green', 'cool', 'calm', 'flowing', 'lines', 'sun', 'horizon', 'serene'],
  palette: PALETTE,
  seed: 0x74696465,
  paint,
};
