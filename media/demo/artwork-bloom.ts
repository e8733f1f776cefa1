// "Bloom": flowers made of overlapping translucent circles on deep green,
// drifting seeds and thin stems around one large rosette.
import { glow, grain, rgba, vignette } from './artwork-paint.ts';
import type { ArtworkPiece, Ctx } from './artwork-paint.ts';
import type { Rng } from './artwork-random.ts';

const PALETTE = ['#12302a', '#ff6fa8', '#4fcf94', '#ffc1d8', '#d9f7c9'];
const [FOREST, PINK, LEAF, BLUSH, MINT] = PALETTE as [string, string, string, string, string];

/** A glassy disc: rim brighter than the centre, so overlaps build up like petals. */
function petal(ctx: Ctx, x: number, y: number, r: number, hex: string, alpha: number): void {
  const g = ctx.createRadialGradient(x, y, r * 0.1, x, y, r);
  g.addColorStop(0, rgba(hex, alpha * 0.25));
  g.addColorStop(0.8, rgba(hex, alpha * 0.7));
  g.addColorStop(1, rgba(hex, alpha));
  ctx.fillStyle = g;
  ctx.beginPath();
  ctx.arc(x, y, r, 0, Math.PI * 2);
  ctx.fill();
}

function rosette(
  ctx: Ctx,
  rng: Rng,
  x: number,
  y: number,
  size: number,
  outer: string,
  inner: string,
  core: string,
): void {
  ctx.globalCompositeOperation = 'screen';
  glow(ctx, x, y, size * 2.2, outer, 0.22);
  // Petals are laid normally so the pinks stay saturated instead of washing out to white.
  ctx.globalCompositeOperation = 'source-over';
  const rings: Array<[count: number, radius: number, offset: number, hex: string, alpha: number]> = [
    [8, size * 0.55, size * 0.55, outer, 0.3],
    [8, size * 0.38, size * 0.32, inner, 0.3],
    [6, size * 0.2, size * 0.14, core, 0.4],
  ];
  let turn = rng.range(0, Math.PI);
  for (const [count, radius, offset, hex, alpha] of rings) {
    turn += Math.PI / count;
    for (let i = 0; i < count; i++) {
      const a = turn + (i / count) * Math.PI * 2;
      petal(ctx, x + Math.cos(a) * offset, y + Math.sin(a) * offset, radius, hex, alpha);
    }
  }
  ctx.globalCompositeOperation = 'screen';
  glow(ctx, x, y, size * 0.3, MINT, 0.4);
  ctx.fillStyle = rgba(MINT, 0.95);
  ctx.beginPath();
  ctx.arc(x, y, size * 0.05, 0, Math.PI * 2);
  ctx.fill();
}

function paint(ctx: Ctx, rng: Rng): void {
  const w = 1024;
  const h = 1024;
  const mainX = w * 0.57;
  const mainY = h * 0.43;

  const ground = ctx.createRadialGradient(mainX, mainY, 30, mainX, mainY, 900);
  ground.addColorStop(0, '#24584a');
  ground.addColorStop(0.5, FOREST);
  ground.addColorStop(1, '#081915');
  ctx.fillStyle = ground;
  ctx.fillRect(0, 0, w, h);

  // Stems: slow curves joining the flowers, drawn first so the petals sit on top.
  ctx.lineCap = 'round';
  const stems: Array<[number, number, number, number]> = [
    [mainX, mainY, w * 0.42, h * 1.05],
    [w * 0.22, h * 0.76, w * 0.3, h * 1.05],
    [w * 0.84, h * 0.2, w * 0.66, h * 0.5],
  ];
  for (const [x0, y0, x1, y1] of stems) {
    for (let k = 0; k < 3; k++) {
      ctx.strokeStyle = rgba(LEAF, 0.35 - k * 0.1);
      ctx.lineWidth = 3 - k;
      ctx.beginPath();
      ctx.moveTo(x0, y0);
      ctx.bezierCurveTo(
        x0 + rng.range(-160, 160),
        y0 + (y1 - y0) * 0.4,
        x1 + rng.range(-160, 160),
        y0 + (y1 - y0) * 0.7,
        x1 + k * 10,
        y1,
      );
      ctx.stroke();
    }
  }

  ctx.globalCompositeOperation = 'screen';

  // Orbit lines around the main flower: a designed layer over the organic one.
  for (let i = 0; i < 5; i++) {
    ctx.strokeStyle = rgba(BLUSH, 0.22 - i * 0.03);
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.arc(mainX, mainY, 300 + i * 34 + i * i * 6, 0, Math.PI * 2);
    ctx.stroke();
  }

  // Drifting seeds: many translucent circles, more of them near the flowers.
  const centres: Array<[number, number]> = [
    [mainX, mainY],
    [w * 0.22, h * 0.76],
    [w * 0.84, h * 0.2],
  ];
  for (let i = 0; i < 240; i++) {
    const [ox, oy] = rng.pick(centres);
    const spread = rng.chance(0.3) ? 420 : 200;
    const x = ox + rng.gauss(0, spread);
    const y = oy + rng.gauss(0, spread);
    const r = 3 + 70 * Math.pow(rng.next(), 4);
    const hex = rng.pick([PINK, BLUSH, LEAF, MINT]);
    if (rng.chance(0.35)) {
      ctx.strokeStyle = rgba(hex, rng.range(0.25, 0.6));
      ctx.lineWidth = rng.range(0.8, 2);
      ctx.beginPath();
      ctx.arc(x, y, r, 0, Math.PI * 2);
      ctx.stroke();
    } else {
      petal(ctx, x, y, r, hex, rng.range(0.15, 0.45));
    }
  }

  rosette(ctx, rng, w * 0.22, h * 0.76, 150, LEAF, MINT, BLUSH);
  rosette(ctx, rng, w * 0.84, h * 0.2, 90, BLUSH, PINK, LEAF);
  rosette(ctx, rng, mainX, mainY, 300, PINK, BLUSH, LEAF);

  // Pollen: fine bright specks over everything.
  for (let i = 0; i < 500; i++) {
    const [ox, oy] = rng.pick(centres);
    ctx.fillStyle = rgba(rng.chance(0.5) ? MINT : BLUSH, rng.range(0.3, 0.9));
    ctx.beginPath();
    ctx.arc(ox + rng.gauss(0, 260), oy + rng.gauss(0, 260), rng.range(0.5, 1.8), 0, Math.PI * 2);
    ctx.fill();
  }
  ctx.globalCompositeOperation = 'source-over';

  vignette(ctx, w, h, 0.55, '#030a08');
  grain(ctx, w, h, 16, rng);
}

export const bloom: ArtworkPiece = {
  id: 'bloom',
  title: 'Bloom',
  kind: 'graphic',
  width: 1024,
  height: 1024,
  tags: ['flower', 'bloom', 'petals', 'garden', 'spring', 'pink', 'green', 'organic', 'soft', 'circles', 'bubbles', 'nature', 'growth', 'gentle', 'lush'],
  palette: PALETTE,
  seed: 0x626c6f6d,
  paint,
};
