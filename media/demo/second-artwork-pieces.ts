// The second demo release's pieces: "Wash" (cover), "Shore" and "Tiles". Pale paper,
// pastel pigment, no glow and no black: the opposite corner of colour space from the
// first demo release (see media/demo/artwork*.ts), so that a model's style can be told
// apart across releases. Each piece paints from its own seeded stream.
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import { grain, rgba } from './artwork-paint.ts';
import type { Rng } from './artwork-random.ts';
import { blobOutline, deform, paper, wash } from './second-artwork-paint.ts';
import type { Pt } from './second-artwork-paint.ts';

export const SECOND_PALETTE = {
  paper: '#fbf6ee',
  peach: '#f4a98c',
  lilac: '#b9a3dc',
  mint: '#9fd8c0',
  sky: '#9cc3e8',
  butter: '#f3dc8c',
  rose: '#eeb3c8',
  ink: '#34405e',
} as const;
const P = SECOND_PALETTE;

function ground(ctx: Ctx, w: number, h: number): void {
  ctx.fillStyle = P.paper;
  ctx.fillRect(0, 0, w, h);
}

/** "Wash": overlapping pastel blooms drifting across the sheet, wet into wet. */
function paintWash(ctx: Ctx, rng: Rng): void {
  const w = 1024;
  const h = 1024;
  ground(ctx, w, h);
  const colours = [P.peach, P.lilac, P.mint, P.sky, P.butter, P.rose];
  // Big quiet shapes first, then smaller accents on top, as a painter works.
  for (let i = 0; i < 7; i++) {
    const cx = rng.range(w * 0.12, w * 0.88);
    const cy = rng.range(h * 0.12, h * 0.88);
    wash(ctx, blobOutline(cx, cy, rng.range(170, 290), 9, rng, rng.range(0.7, 1.2)), colours[i % colours.length]!, rng, { layers: 34, alpha: 0.05 });
  }
  for (let i = 0; i < 12; i++) {
    const cx = rng.range(w * 0.08, w * 0.92);
    const cy = rng.range(h * 0.08, h * 0.92);
    wash(ctx, blobOutline(cx, cy, rng.range(40, 110), 7, rng), rng.pick(colours), rng, { layers: 18, alpha: 0.035, spread: 0.7, multiply: true });
  }
  // Spatter: the drops that fall from a loaded brush.
  ctx.save();
  ctx.globalCompositeOperation = 'multiply';
  for (let i = 0; i < 140; i++) {
    ctx.fillStyle = rgba(rng.pick(colours), rng.range(0.25, 0.6));
    ctx.beginPath();
    ctx.arc(rng.range(0, w), rng.range(0, h), rng.chance(0.85) ? rng.range(1, 3.5) : rng.range(5, 9), 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.restore();
  paper(ctx, w, h, rng);
}

/** A wide band with a ragged top edge, filled down to the bottom of the sheet. */
function bandOutline(w: number, h: number, y: number, bumps: number, rng: Rng): Pt[] {
  const pts: Pt[] = [];
  for (let i = 0; i <= bumps; i++) {
    const x = -60 + ((w + 120) * i) / bumps;
    pts.push({ x, y: y + rng.gauss(0, 26), v: rng.range(0.3, 0.8) });
  }
  pts.push({ x: w + 60, y: h + 60, v: 0.05 }, { x: -60, y: h + 60, v: 0.05 });
  return pts;
}

/** "Shore": a pale landscape in horizontal washes, sky to sand, and a low sun. */
function paintShore(ctx: Ctx, rng: Rng): void {
  const w = 1280;
  const h = 720;
  ground(ctx, w, h);
  // The sky: a wide, very faint wash over the upper half.
  wash(ctx, [
    { x: -80, y: -80, v: 0.3 },
    { x: w + 80, y: -80, v: 0.3 },
    { x: w + 80, y: h * 0.55, v: 0.6 },
    { x: -80, y: h * 0.55, v: 0.6 },
  ], P.sky, rng, { layers: 30, alpha: 0.04, spread: 0.35 });
  wash(ctx, blobOutline(w * 0.7, h * 0.3, 70, 8, rng), P.butter, rng, { layers: 30, alpha: 0.07, spread: 0.5 });
  wash(ctx, blobOutline(w * 0.25, h * 0.2, 140, 8, rng, 0.35), P.rose, rng, { layers: 24, alpha: 0.035, spread: 0.6 });
  const bands: [number, string][] = [
    [h * 0.42, P.lilac],
    [h * 0.52, P.sky],
    [h * 0.62, P.mint],
    [h * 0.76, P.peach],
    [h * 0.88, P.butter],
  ];
  for (const [y, hex] of bands) wash(ctx, bandOutline(w, h, y, 9, rng), hex, rng, { layers: 28, alpha: 0.045, spread: 0.3 });
  // A few dry-brush marks along the water line.
  ctx.save();
  ctx.globalCompositeOperation = 'multiply';
  ctx.strokeStyle = rgba(P.lilac, 0.35);
  for (let i = 0; i < 26; i++) {
    const y = rng.range(h * 0.54, h * 0.7);
    const x = rng.range(0, w);
    ctx.lineWidth = rng.range(1, 2.5);
    ctx.beginPath();
    ctx.moveTo(x, y);
    ctx.lineTo(x + rng.range(30, 140), y + rng.gauss(0, 2));
    ctx.stroke();
  }
  ctx.restore();
  paper(ctx, w, h, rng);
}

/** "Tiles": a poster of flat, hard-edged pastel shapes on a square grid, a few in ink. */
function paintTiles(ctx: Ctx, rng: Rng): void {
  const w = 1024;
  const h = 1024;
  const n = 6;
  const margin = 56;
  const cell = (w - margin * 2) / n;
  ground(ctx, w, h);
  const colours = [P.peach, P.lilac, P.mint, P.sky, P.butter, P.rose];
  for (let r = 0; r < n; r++) {
    for (let c = 0; c < n; c++) {
      const x = margin + c * cell;
      const y = margin + r * cell;
      const back = rng.pick(colours);
      let front: string = rng.pick(colours);
      if (front === back) front = P.paper;
      if (rng.chance(0.09)) front = P.ink;
      ctx.fillStyle = back;
      ctx.fillRect(x, y, cell, cell);
      ctx.fillStyle = front;
      const kind = rng.int(0, 6);
      const turn = rng.int(0, 4) * (Math.PI / 2);
      ctx.save();
      ctx.translate(x + cell / 2, y + cell / 2);
      ctx.rotate(turn);
      const s = cell / 2;
      ctx.beginPath();
      if (kind === 0) {
        ctx.arc(0, 0, s * 0.78, 0, Math.PI * 2);
      } else if (kind === 1) {
        // A quarter circle from one corner.
        ctx.moveTo(-s, -s);
        ctx.arc(-s, -s, s * 2, 0, Math.PI / 2);
        ctx.closePath();
      } else if (kind === 2) {
        // A half disc on one side.
        ctx.arc(0, s, s, Math.PI, Math.PI * 2);
        ctx.closePath();
      } else if (kind === 3) {
        ctx.moveTo(-s, s);
        ctx.lineTo(s, s);
        ctx.lineTo(-s, -s);
        ctx.closePath();
      } else if (kind === 4) {
        // Stripes.
        for (let k = 0; k < 4; k++) ctx.rect(-s, -s + (k * 2 + 0.5) * (s / 4), s * 2, s / 4);
      } else {
        ctx.arc(0, 0, s * 0.78, 0, Math.PI * 2);
        ctx.arc(0, 0, s * 0.4, 0, Math.PI * 2, true);
      }
      ctx.fill();
      ctx.restore();
    }
  }
  // Thin ink rules between some cells, as on a printed poster.
  ctx.strokeStyle = rgba(P.ink, 0.85);
  ctx.lineWidth = 3;
  ctx.beginPath();
  for (let k = 0; k <= n; k++) {
    if (rng.chance(0.5)) {
      ctx.moveTo(margin + k * cell, margin);
      ctx.lineTo(margin + k * cell, h - margin);
    }
  }
  ctx.stroke();
  // A light wash of pigment over a corner, so the poster is not all flat.
  wash(ctx, deform(blobOutline(w * 0.78, h * 0.8, 220, 8, rng), 1, 0.4, rng), P.rose, rng, { layers: 16, alpha: 0.03 });
  grain(ctx, w, h, 8, rng);
}

export const washPiece: ArtworkPiece = {
  id: 'wash',
  title: 'Wash',
  kind: 'cover',
  width: 1024,
  height: 1024,
  tags: ['watercolour', 'watercolor', 'pastel', 'soft', 'paper', 'blooms', 'peach', 'lilac', 'mint', 'gentle', 'dreamy', 'light', 'airy', 'spring'],
  palette: [P.paper, P.peach, P.lilac, P.mint, P.sky, P.butter],
  seed: 0x77617368,
  paint: paintWash,
};

export const shorePiece: ArtworkPiece = {
  id: 'shore',
  title: 'Shore',
  kind: 'graphic',
  width: 1280,
  height: 720,
  tags: ['landscape', 'shore', 'sea', 'horizon', 'hills', 'sky', 'sun', 'pastel', 'watercolour', 'calm', 'morning', 'pale', 'blue', 'sand'],
  palette: [P.paper, P.sky, P.lilac, P.mint, P.peach, P.butter],
  seed: 0x73686f72,
  paint: paintShore,
};

export const tilesPiece: ArtworkPiece = {
  id: 'tiles',
  title: 'Tiles',
  kind: 'graphic',
  width: 1024,
  height: 1024,
  tags: ['geometric', 'tiles', 'shapes', 'circles', 'stripes', 'poster', 'flat', 'bauhaus', 'pastel', 'playful', 'grid', 'pattern', 'bold'],
  palette: [P.paper, P.peach, P.mint, P.sky, P.lilac, P.ink],
  seed: 0x74696c65,
  paint: paintTiles,
};
