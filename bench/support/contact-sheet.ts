// The visual-model bench's contact sheet: per release, the training artwork, then per prompt
// its text, the generated texture, a frame of the engine animating that texture alone, a frame
// of what a room draws (the texture blended with the prompt's artwork at VISUAL_MODEL_MIX), and
// (for the look test) a frame of today's engine for the same prompt on the artwork itself.
import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas';

export interface SheetImage {
  width: number;
  height: number;
  rgba: Uint8Array | Uint8ClampedArray;
}

export interface SheetRow {
  prompt: string;
  /** One line under the prompt: what the interpreter chose. */
  note: string;
  texture: SheetImage;
  generatedFrame: SheetImage;
  /** What a room draws: the texture blended with the prompt's artwork at VISUAL_MODEL_MIX. */
  roomFrame: SheetImage;
  todayFrame: SheetImage;
}

/** Two 64×64 patches side by side with a caption: what the novelty threshold separates. */
export interface SheetPair {
  label: string;
  a: SheetImage;
  b: SheetImage;
}

export interface SheetRelease {
  title: string;
  pairs: SheetPair[];
  /** One line of figures under the title. */
  summary: string;
  artwork: { id: string; image: SheetImage }[];
  rows: SheetRow[];
}

const THUMB = 140;
const FRAME_W = Math.round((THUMB * 16) / 9);
const TEXT_W = 250;
const GAP = 10;
const ROW_H = THUMB + GAP;
const PAIR = 70;
const PAIR_H = 22 + PAIR + 50;
const BG = '#16161a';
const FG = '#ececf0';
const DIM = '#9a9aa6';

function toCanvasImage(img: SheetImage) {
  const c = createCanvas(img.width, img.height);
  const ctx = c.getContext('2d');
  const data = ctx.createImageData(img.width, img.height);
  data.data.set(img.rgba);
  ctx.putImageData(data, 0, 0);
  return c;
}

function draw(ctx: SKRSContext2D, img: SheetImage, x: number, y: number, w: number, h: number): void {
  ctx.imageSmoothingEnabled = true;
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(toCanvasImage(img), x, y, w, h);
}

/** Word-wraps `text` into at most `lines` lines of `width` px. */
function wrap(ctx: SKRSContext2D, text: string, width: number, lines: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/)) {
    const next = cur ? `${cur} ${word}` : word;
    if (ctx.measureText(next).width > width && cur) {
      out.push(cur);
      cur = word;
      if (out.length === lines) return out;
    } else cur = next;
  }
  if (cur && out.length < lines) out.push(cur);
  return out;
}

/** Draws the sheet and encodes it as PNG. */
export async function drawContactSheet(releases: readonly SheetRelease[], heading: string, roomMix: number): Promise<Buffer> {
  const width = GAP + TEXT_W + GAP + THUMB + GAP + 3 * (FRAME_W + GAP);
  let height = 44;
  for (const r of releases) height += 56 + (THUMB * 0.75 + 28) + 22 + r.rows.length * ROW_H + GAP + (r.pairs.length > 0 ? PAIR_H : 0);
  const canvas = createCanvas(width, Math.ceil(height));
  const ctx = canvas.getContext('2d');
  ctx.fillStyle = BG;
  ctx.fillRect(0, 0, width, height);
  ctx.textBaseline = 'top';
  ctx.fillStyle = FG;
  ctx.font = 'bold 18px sans-serif';
  ctx.fillText(heading, GAP, 12);
  let y = 44;
  for (const r of releases) {
    ctx.fillStyle = FG;
    ctx.font = 'bold 16px sans-serif';
    ctx.fillText(r.title, GAP, y + 6);
    ctx.fillStyle = DIM;
    ctx.font = '12px sans-serif';
    ctx.fillText(r.summary, GAP, y + 28);
    y += 56;
    // The training artwork, each at its own aspect, in one row.
    const maxH = Math.round(THUMB * 0.75);
    const widthAtMax = r.artwork.reduce((t, a) => t + (maxH * a.image.width) / a.image.height + GAP, GAP);
    const artH = Math.floor(maxH * Math.min(1, width / widthAtMax));
    let x = GAP;
    ctx.font = '11px sans-serif';
    for (const a of r.artwork) {
      const w = Math.round((artH * a.image.width) / a.image.height);
      draw(ctx, a.image, x, y, w, artH);
      ctx.fillStyle = DIM;
      ctx.fillText(a.id, x, y + artH + 4);
      x += w + GAP;
    }
    y += artH + 28;
    ctx.fillStyle = DIM;
    ctx.font = '12px sans-serif';
    const colX = [GAP, GAP + TEXT_W + GAP, GAP + TEXT_W + GAP + THUMB + GAP, GAP + TEXT_W + GAP + THUMB + GAP + FRAME_W + GAP, GAP + TEXT_W + GAP + THUMB + GAP + 2 * (FRAME_W + GAP)];
    ctx.fillText('prompt', colX[0]!, y);
    ctx.fillText('generated texture', colX[1]!, y);
    ctx.fillText('engine animating it', colX[2]!, y);
    ctx.fillText(`in a room (mix ${roomMix})`, colX[3]!, y);
    ctx.fillText("today's engine, same prompt", colX[4]!, y);
    y += 22;
    for (const row of r.rows) {
      ctx.fillStyle = FG;
      ctx.font = '15px sans-serif';
      let ty = y + 4;
      for (const line of wrap(ctx, `“${row.prompt}”`, TEXT_W, 2)) {
        ctx.fillText(line, colX[0]!, ty);
        ty += 19;
      }
      ctx.fillStyle = DIM;
      ctx.font = '11px sans-serif';
      for (const line of wrap(ctx, row.note, TEXT_W, 6)) {
        ctx.fillText(line, colX[0]!, ty + 4);
        ty += 14;
      }
      draw(ctx, row.texture, colX[1]!, y, THUMB, THUMB);
      draw(ctx, row.generatedFrame, colX[2]!, y, FRAME_W, THUMB);
      draw(ctx, row.roomFrame, colX[3]!, y, FRAME_W, THUMB);
      draw(ctx, row.todayFrame, colX[4]!, y, FRAME_W, THUMB);
      y += ROW_H;
    }
    if (r.pairs.length > 0) {
      ctx.fillStyle = DIM;
      ctx.font = '12px sans-serif';
      ctx.fillText('novelty: 64×64 patch pairs and their RMS distance (near copy below the threshold)', GAP, y);
      let px = GAP;
      for (const pair of r.pairs) {
        draw(ctx, pair.a, px, y + 20, PAIR, PAIR);
        draw(ctx, pair.b, px + PAIR + 2, y + 20, PAIR, PAIR);
        ctx.fillStyle = DIM;
        ctx.font = '11px sans-serif';
        wrap(ctx, pair.label, PAIR * 2, 3).forEach((line, i) => ctx.fillText(line, px, y + 20 + PAIR + 4 + i * 13));
        px += PAIR * 2 + 2 + 14;
      }
      y += PAIR_H;
    }
    y += GAP;
  }
  // 5 bits per channel: hardly visible on these pictures, and the PNG shrinks by a fifth to a
  // third (generated textures are noisy, which deflate cannot compress): about 2 MB.
  const image = ctx.getImageData(0, 0, width, canvas.height);
  const d = image.data;
  for (let i = 0; i < d.length; i++) if ((i & 3) !== 3) d[i] = (d[i]! & 0xf8) | 4;
  ctx.putImageData(image, 0, 0);
  return canvas.encode('png');
}
