// The visual pack: what a release's artwork becomes for the visual engine. For every
// image the artist consented to: a 512x512 RGBA texture, a thumbnail, its dominant
// colours, the regions worth moving on their own, and the artist's tags; plus a record
// of every asset offered, used or excluded (an asset without consent is listed and
// never decoded).
//
// One call from ingest: `buildVisualPack(images)`, then `writeVisualPack(dir, pack)`;
// the room loads it with `readVisualPack(dir)` and hands `engineArtwork(pack)` to the
// VisualEngine.
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import zlib from 'node:zlib';
import { createCanvas, loadImage } from '@napi-rs/canvas';
import { z } from 'zod';
import { TEXTURE_SIZE, type EngineArtwork } from '../../shared/visual-engine.ts';

export const VISUAL_PACK_VERSION = 1;
export const PACK_FILE = 'pack.json';
export const THUMBNAIL_SIDE = 256;
const MAX_IMAGE_BYTES = 40 * 1024 * 1024;
const MAX_IMAGE_SIDE = 8192;
const MIN_IMAGE_SIDE = 16;
const PALETTE_SIZE = 5;
const MAX_REGIONS = 6;
/** Side of the grid on which saliency and palettes are computed. */
const ANALYSIS_SIDE = 64;
/** Palettes are taken from every PALETTE_STEP-th texel each way (128x128 samples). */
const PALETTE_STEP = 4;
const ID = /^[a-z0-9][a-z0-9_-]{0,63}$/;

export interface VisualPackImage {
  id: string;
  tags: string[];
  consent: boolean;
  bytes: Buffer | Uint8Array;
  mimeType: string;
}

export interface PaletteColour {
  /** '#rrggbb' */
  hex: string;
  /** Share of the picture, 0..1. */
  share: number;
}

/** A salient area, in 0..1 units of the image (x right, y down). */
export interface PackRegion {
  x: number;
  y: number;
  width: number;
  height: number;
  /** Share of the image's saliency inside the region, 0..1. */
  score: number;
}

export interface PackArtwork {
  id: string;
  tags: string[];
  /** The original's size. */
  width: number;
  height: number;
  aspect: number;
  /** TEXTURE_SIZE x TEXTURE_SIZE RGBA, the original squeezed to a square (see `aspect`). */
  texture: Uint8Array;
  textureSize: number;
  /** PNG, at most THUMBNAIL_SIDE on its longer side. */
  thumbnail: Buffer;
  thumbnailWidth: number;
  thumbnailHeight: number;
  palette: PaletteColour[];
  regions: PackRegion[];
}

export interface PackAsset {
  id: string;
  mimeType: string;
  bytes: number;
  sha256: string;
  consent: boolean;
  used: boolean;
  /** Why an asset is not used. */
  excludedBecause?: string;
}

export interface VisualPack {
  version: typeof VISUAL_PACK_VERSION;
  artwork: PackArtwork[];
  assets: PackAsset[];
}

/** An image or pack refused, naming the asset. */
export class VisualPackError extends Error {
  override readonly name = 'VisualPackError';
  readonly assetId: string | null;
  constructor(assetId: string | null, message: string) {
    super(assetId ? `artwork "${assetId}": ${message}` : message);
    this.assetId = assetId;
  }
}

// ---------------------------------------------------------------- building

export async function buildVisualPack(images: readonly VisualPackImage[]): Promise<VisualPack> {
  const seen = new Set<string>();
  const assets: PackAsset[] = [];
  const artwork: PackArtwork[] = [];
  for (const img of images) {
    if (typeof img.id !== 'string' || !ID.test(img.id)) throw new VisualPackError(null, `artwork id ${JSON.stringify(img.id)} must be lowercase letters, digits, - or _`);
    if (seen.has(img.id)) throw new VisualPackError(img.id, 'appears twice');
    seen.add(img.id);
    const bytes = Buffer.from(img.bytes.buffer, img.bytes.byteOffset, img.bytes.byteLength);
    const asset: PackAsset = {
      id: img.id,
      mimeType: img.mimeType,
      bytes: bytes.length,
      sha256: crypto.createHash('sha256').update(bytes).digest('hex'),
      consent: img.consent === true,
      used: false,
    };
    assets.push(asset);
    if (!asset.consent) {
      asset.excludedBecause = 'no consent from the artist';
      continue;
    }
    artwork.push(await analyseImage(img.id, img.tags, bytes));
    asset.used = true;
  }
  if (artwork.length === 0) throw new VisualPackError(null, 'no artwork has the artist\'s consent; the visuals need at least one image');
  return { version: VISUAL_PACK_VERSION, artwork, assets };
}

function sniff(b: Buffer): 'image/png' | 'image/jpeg' | 'image/webp' | null {
  if (b.length >= 8 && b.readUInt32BE(0) === 0x89504e47 && b.readUInt32BE(4) === 0x0d0a1a0a) return 'image/png';
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'image/jpeg';
  if (b.length >= 12 && b.toString('latin1', 0, 4) === 'RIFF' && b.toString('latin1', 8, 12) === 'WEBP') return 'image/webp';
  return null;
}

/** The size from the header, so that a huge image is refused before it is decoded. */
export function headerSize(b: Buffer, type: 'image/png' | 'image/jpeg' | 'image/webp'): { width: number; height: number } | null {
  if (type === 'image/png') {
    if (b.length < 24 || b.toString('latin1', 12, 16) !== 'IHDR') return null;
    return { width: b.readUInt32BE(16), height: b.readUInt32BE(20) };
  }
  if (type === 'image/jpeg') {
    let i = 2;
    while (i + 9 < b.length) {
      if (b[i] !== 0xff) return null;
      const marker = b[i + 1]!;
      if (marker === 0xff) {
        i++;
        continue;
      }
      const len = b.readUInt16BE(i + 2);
      const isSof = marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
      if (isSof) return { height: b.readUInt16BE(i + 5), width: b.readUInt16BE(i + 7) };
      if (len < 2) return null;
      i += 2 + len;
    }
    return null;
  }
  return null; // WebP: left to the decoder (its sizes are capped at 16383 by the format)
}

/**
 * Decoders fill a truncated or corrupted image with blank pixels rather than fail, so
 * the container is checked first: every PNG chunk's CRC and the end chunk; a JPEG's
 * end-of-image marker.
 */
function structuralDamage(b: Buffer, type: 'image/png' | 'image/jpeg' | 'image/webp'): string | null {
  if (type === 'image/png') {
    let i = 8;
    let sawData = false;
    while (i + 12 <= b.length) {
      const len = b.readUInt32BE(i);
      const name = b.toString('latin1', i + 4, i + 8);
      if (i + 12 + len > b.length) return `the ${name} chunk is cut short`;
      const crc = b.readUInt32BE(i + 8 + len);
      if (zlib.crc32(b.subarray(i + 4, i + 8 + len)) !== crc) return `the ${name} chunk fails its checksum`;
      if (name === 'IDAT') sawData = true;
      if (name === 'IEND') return sawData ? null : 'it holds no image data';
      i += 12 + len;
    }
    return 'it ends before its end marker (the file is cut short)';
  }
  if (type === 'image/jpeg') {
    for (let i = b.length - 2; i >= Math.max(2, b.length - 65536); i--) if (b[i] === 0xff && b[i + 1] === 0xd9) return null;
    return 'it has no end-of-image marker (the file is cut short)';
  }
  if (b.length < 12 || b.readUInt32LE(4) + 8 > b.length) return 'the file is cut short';
  return null;
}

async function analyseImage(id: string, tags: string[], bytes: Buffer): Promise<PackArtwork> {
  if (bytes.length === 0) throw new VisualPackError(id, 'is empty');
  if (bytes.length > MAX_IMAGE_BYTES) throw new VisualPackError(id, `is ${bytes.length} bytes; at most ${MAX_IMAGE_BYTES} are accepted`);
  const type = sniff(bytes);
  if (!type) throw new VisualPackError(id, 'is not a PNG, JPEG or WebP image (its first bytes say otherwise)');
  const size = headerSize(bytes, type);
  if (type !== 'image/webp' && !size) throw new VisualPackError(id, 'has a damaged header; its size cannot be read');
  if (size && (size.width > MAX_IMAGE_SIDE || size.height > MAX_IMAGE_SIDE)) {
    throw new VisualPackError(id, `is ${size.width}x${size.height}; at most ${MAX_IMAGE_SIDE}x${MAX_IMAGE_SIDE} is accepted`);
  }
  const damage = structuralDamage(bytes, type);
  if (damage) throw new VisualPackError(id, `is damaged: ${damage}`);
  let image;
  try {
    image = await loadImage(bytes);
  } catch (err) {
    throw new VisualPackError(id, `is damaged: it cannot be decoded as an image (${(err as Error).message})`);
  }
  const width = image.width;
  const height = image.height;
  if (!(width >= MIN_IMAGE_SIDE && height >= MIN_IMAGE_SIDE)) throw new VisualPackError(id, `is ${width}x${height}; at least ${MIN_IMAGE_SIDE}x${MIN_IMAGE_SIDE} is needed`);
  if (width > MAX_IMAGE_SIDE || height > MAX_IMAGE_SIDE) throw new VisualPackError(id, `is ${width}x${height}; at most ${MAX_IMAGE_SIDE}x${MAX_IMAGE_SIDE} is accepted`);

  const texCanvas = createCanvas(TEXTURE_SIZE, TEXTURE_SIZE);
  const tctx = texCanvas.getContext('2d');
  tctx.imageSmoothingEnabled = true;
  tctx.imageSmoothingQuality = 'high';
  tctx.fillStyle = '#000000';
  tctx.fillRect(0, 0, TEXTURE_SIZE, TEXTURE_SIZE);
  tctx.drawImage(image, 0, 0, TEXTURE_SIZE, TEXTURE_SIZE);
  const texture = new Uint8Array(tctx.getImageData(0, 0, TEXTURE_SIZE, TEXTURE_SIZE).data);
  for (let i = 3; i < texture.length; i += 4) texture[i] = 255;

  const scale = Math.min(1, THUMBNAIL_SIDE / Math.max(width, height));
  const tw = Math.max(1, Math.round(width * scale));
  const th = Math.max(1, Math.round(height * scale));
  const thumbCanvas = createCanvas(tw, th);
  const thctx = thumbCanvas.getContext('2d');
  thctx.imageSmoothingQuality = 'high';
  thctx.drawImage(image, 0, 0, tw, th);
  const thumbnail = await thumbCanvas.encode('png');

  const grid = downsample(texture, TEXTURE_SIZE, ANALYSIS_SIDE);
  return {
    id,
    tags: [...new Set(tags.map((t) => t.trim().toLowerCase()).filter((t) => t.length > 0 && t.length <= 64))],
    width,
    height,
    aspect: width / height,
    texture,
    textureSize: TEXTURE_SIZE,
    thumbnail,
    thumbnailWidth: tw,
    thumbnailHeight: th,
    palette: extractPalette(pointSample(texture, TEXTURE_SIZE, PALETTE_STEP), PALETTE_SIZE),
    regions: findRegions(grid, ANALYSIS_SIDE, MAX_REGIONS),
  };
}

/** RGB of every `step`-th pixel each way, unaveraged, so that thin bright lines keep their colour. */
function pointSample(rgba: Uint8Array, n: number, step: number): Float64Array {
  const side = Math.floor(n / step);
  const out = new Float64Array(side * side * 3);
  let o = 0;
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const i = (y * step * n + x * step) * 4;
      out[o++] = rgba[i]!;
      out[o++] = rgba[i + 1]!;
      out[o++] = rgba[i + 2]!;
    }
  }
  return out;
}

/** Box-averaged RGB (3 floats per cell) of an n x n RGBA texture on a side x side grid. */
function downsample(rgba: Uint8Array, n: number, side: number): Float64Array {
  const out = new Float64Array(side * side * 3);
  const k = n / side;
  for (let gy = 0; gy < side; gy++) {
    for (let gx = 0; gx < side; gx++) {
      let r = 0;
      let g = 0;
      let b = 0;
      for (let y = gy * k; y < (gy + 1) * k; y++) {
        for (let x = gx * k; x < (gx + 1) * k; x++) {
          const i = (y * n + x) * 4;
          r += rgba[i]!;
          g += rgba[i + 1]!;
          b += rgba[i + 2]!;
        }
      }
      const o = (gy * side + gx) * 3;
      out[o] = r / (k * k);
      out[o + 1] = g / (k * k);
      out[o + 2] = b / (k * k);
    }
  }
  return out;
}

// ---------------------------------------------------------------- palette

/**
 * Dominant colours: median cut (deterministic) refined by a few k-means steps, then the
 * most common and most distinct of those clusters. Dominant first.
 */
export function extractPalette(rgb: Float64Array, count: number): PaletteColour[] {
  const n = rgb.length / 3;
  const idx = Array.from({ length: n }, (_, i) => i);
  let boxes: number[][] = [idx];
  while (boxes.length < count * 3) {
    // Split the box with the widest channel range (ties: the larger box).
    let best = -1;
    let bestRange = -1;
    let bestCh = 0;
    boxes.forEach((box, bi) => {
      if (box.length < 2) return;
      for (let ch = 0; ch < 3; ch++) {
        let lo = 255;
        let hi = 0;
        for (const i of box) {
          const v = rgb[i * 3 + ch]!;
          if (v < lo) lo = v;
          if (v > hi) hi = v;
        }
        const range = (hi - lo) * Math.sqrt(box.length);
        if (range > bestRange) {
          bestRange = range;
          best = bi;
          bestCh = ch;
        }
      }
    });
    if (best < 0 || bestRange <= 0) break;
    const box = [...boxes[best]!].sort((a, b) => rgb[a * 3 + bestCh]! - rgb[b * 3 + bestCh]! || a - b);
    const mid = box.length >> 1;
    boxes = [...boxes.slice(0, best), box.slice(0, mid), box.slice(mid), ...boxes.slice(best + 1)];
  }
  let centres = boxes.filter((b) => b.length > 0).map((b) => mean(rgb, b));
  // k-means refinement.
  const assign = new Int32Array(n);
  for (let iter = 0; iter < 8; iter++) {
    for (let i = 0; i < n; i++) {
      let bi = 0;
      let bd = Infinity;
      centres.forEach((c, ci) => {
        const d = dist2(rgb, i, c);
        if (d < bd) {
          bd = d;
          bi = ci;
        }
      });
      assign[i] = bi;
    }
    centres = centres.map((c, ci) => {
      const members: number[] = [];
      for (let i = 0; i < n; i++) if (assign[i] === ci) members.push(i);
      return members.length > 0 ? mean(rgb, members) : c;
    });
  }
  const counts = new Array<number>(centres.length).fill(0);
  for (let i = 0; i < n; i++) counts[assign[i]!]!++;
  const clusters = centres.map((c, i) => ({ c, count: counts[i]! })).filter((x) => x.count > 0);
  // Dominant first, then each next colour by its share times how different it is from
  // those already chosen, so that a small bright accent beats a third shade of the
  // background.
  const chosen: { c: [number, number, number]; count: number }[] = [];
  const left = [...clusters].sort((a, b) => b.count - a.count);
  while (chosen.length < count && left.length > 0) {
    let best = 0;
    let bestScore = -1;
    left.forEach((cl, i) => {
      let nearest = Infinity;
      for (const ch of chosen) nearest = Math.min(nearest, Math.sqrt((ch.c[0] - cl.c[0]) ** 2 + (ch.c[1] - cl.c[1]) ** 2 + (ch.c[2] - cl.c[2]) ** 2));
      const apart = chosen.length === 0 ? 1 : Math.min(1, nearest / 120);
      const score = cl.count * apart * apart;
      if (score > bestScore) {
        bestScore = score;
        best = i;
      }
    });
    const pick = left.splice(best, 1)[0]!;
    const nearestChosen = chosen.find((ch) => (ch.c[0] - pick.c[0]) ** 2 + (ch.c[1] - pick.c[1]) ** 2 + (ch.c[2] - pick.c[2]) ** 2 < 20 * 20);
    if (nearestChosen) nearestChosen.count += pick.count;
    else chosen.push({ c: pick.c, count: pick.count });
  }
  // Shares count every pixel: each goes to its nearest chosen colour.
  const shares = new Array<number>(chosen.length).fill(0);
  for (let i = 0; i < n; i++) {
    let bi = 0;
    let bd = Infinity;
    chosen.forEach((ch, ci) => {
      const d = dist2(rgb, i, ch.c);
      if (d < bd) {
        bd = d;
        bi = ci;
      }
    });
    shares[bi]!++;
  }
  return chosen.map((ch, i) => ({ hex: toHex(ch.c), share: Math.round((shares[i]! / n) * 1000) / 1000 }));
}

function mean(rgb: Float64Array, members: number[]): [number, number, number] {
  let r = 0;
  let g = 0;
  let b = 0;
  for (const i of members) {
    r += rgb[i * 3]!;
    g += rgb[i * 3 + 1]!;
    b += rgb[i * 3 + 2]!;
  }
  return [r / members.length, g / members.length, b / members.length];
}

function dist2(rgb: Float64Array, i: number, c: [number, number, number]): number {
  const dr = rgb[i * 3]! - c[0];
  const dg = rgb[i * 3 + 1]! - c[1];
  const db = rgb[i * 3 + 2]! - c[2];
  return dr * dr + dg * dg + db * db;
}

function toHex(c: [number, number, number]): string {
  return `#${c.map((v) => Math.max(0, Math.min(255, Math.round(v))).toString(16).padStart(2, '0')).join('')}`;
}

// ---------------------------------------------------------------- regions

/**
 * Salient regions: a saliency map (colour distance from the picture's mean, local
 * contrast, saturation) thresholded at mean + 1 standard deviation, cut into 4-connected
 * components; each component's bounding box, scored by its share of the saliency.
 */
export function findRegions(rgb: Float64Array, side: number, max: number): PackRegion[] {
  const n = side * side;
  const avg = mean(rgb, Array.from({ length: n }, (_, i) => i));
  const sal = new Float64Array(n);
  for (let y = 0; y < side; y++) {
    for (let x = 0; x < side; x++) {
      const i = y * side + x;
      const r = rgb[i * 3]!;
      const g = rgb[i * 3 + 1]!;
      const b = rgb[i * 3 + 2]!;
      const distinct = Math.sqrt(dist2(rgb, i, avg));
      let contrast = 0;
      let cnt = 0;
      for (let dy = -2; dy <= 2; dy++) {
        for (let dx = -2; dx <= 2; dx++) {
          const yy = y + dy;
          const xx = x + dx;
          if (yy < 0 || xx < 0 || yy >= side || xx >= side) continue;
          contrast += Math.sqrt(dist2(rgb, yy * side + xx, [r, g, b]));
          cnt++;
        }
      }
      const sat = Math.max(r, g, b) - Math.min(r, g, b);
      sal[i] = distinct + (contrast / cnt) * 1.5 + sat * 0.3;
    }
  }
  let sum = 0;
  let sum2 = 0;
  for (let i = 0; i < n; i++) {
    sum += sal[i]!;
    sum2 += sal[i]! * sal[i]!;
  }
  const m = sum / n;
  const sd = Math.sqrt(Math.max(0, sum2 / n - m * m));
  const threshold = m + sd;
  const label = new Int32Array(n).fill(-1);
  const regions: (PackRegion & { cells: number })[] = [];
  for (let start = 0; start < n; start++) {
    if (label[start] !== -1 || sal[start]! < threshold) continue;
    const id = regions.length;
    const stack = [start];
    label[start] = id;
    let x0 = side;
    let y0 = side;
    let x1 = 0;
    let y1 = 0;
    let score = 0;
    let cells = 0;
    while (stack.length > 0) {
      const i = stack.pop()!;
      const x = i % side;
      const y = (i - x) / side;
      x0 = Math.min(x0, x);
      y0 = Math.min(y0, y);
      x1 = Math.max(x1, x);
      y1 = Math.max(y1, y);
      score += sal[i]!;
      cells++;
      const next = [x > 0 ? i - 1 : -1, x < side - 1 ? i + 1 : -1, y > 0 ? i - side : -1, y < side - 1 ? i + side : -1];
      for (const j of next) {
        if (j >= 0 && label[j] === -1 && sal[j]! >= threshold) {
          label[j] = id;
          stack.push(j);
        }
      }
    }
    regions.push({ x: x0 / side, y: y0 / side, width: (x1 - x0 + 1) / side, height: (y1 - y0 + 1) / side, score: score / sum, cells });
  }
  return regions
    .filter((r) => r.cells >= 4)
    .sort((a, b) => b.score - a.score || a.y - b.y || a.x - b.x)
    .slice(0, max)
    .map((r) => ({
      x: round4(r.x),
      y: round4(r.y),
      width: round4(r.width),
      height: round4(r.height),
      score: round4(r.score),
    }));
}

function round4(x: number): number {
  return Math.round(x * 10000) / 10000;
}

// ---------------------------------------------------------------- for the engine

/** The pack's artwork as the engine takes it; each piece's top region becomes its focus. */
export function engineArtwork(pack: VisualPack): EngineArtwork[] {
  return pack.artwork.map((a) => {
    const top = a.regions[0];
    const art: EngineArtwork = { id: a.id, width: a.textureSize, height: a.textureSize, rgba: a.texture, aspect: a.aspect };
    if (top) art.focus = { x: round4(top.x + top.width / 2), y: round4(top.y + top.height / 2) };
    return art;
  });
}

// ---------------------------------------------------------------- storage

const PaletteSchema = z.object({ hex: z.string().regex(/^#[0-9a-f]{6}$/), share: z.number().min(0).max(1) }).strict();
const RegionSchema = z
  .object({ x: z.number().min(0).max(1), y: z.number().min(0).max(1), width: z.number().gt(0).max(1), height: z.number().gt(0).max(1), score: z.number().min(0).max(1) })
  .strict();
const PackJsonSchema = z
  .object({
    version: z.literal(VISUAL_PACK_VERSION),
    artwork: z
      .array(
        z
          .object({
            id: z.string().regex(ID),
            tags: z.array(z.string().max(64)).max(256),
            width: z.number().int().min(1).max(MAX_IMAGE_SIDE),
            height: z.number().int().min(1).max(MAX_IMAGE_SIDE),
            aspect: z.number().gt(0),
            textureSize: z.literal(TEXTURE_SIZE),
            textureFile: z.string(),
            thumbnailFile: z.string(),
            thumbnailWidth: z.number().int().min(1).max(THUMBNAIL_SIDE),
            thumbnailHeight: z.number().int().min(1).max(THUMBNAIL_SIDE),
            palette: z.array(PaletteSchema).max(16),
            regions: z.array(RegionSchema).max(64),
          })
          .strict(),
      )
      .min(1),
    assets: z.array(
      z
        .object({
          id: z.string(),
          mimeType: z.string(),
          bytes: z.number().int().min(0),
          sha256: z.string().regex(/^[0-9a-f]{64}$/),
          consent: z.boolean(),
          used: z.boolean(),
          excludedBecause: z.string().optional(),
        })
        .strict(),
    ),
  })
  .strict();

/** Writes pack.json, `<id>.rgba` (raw texture) and `<id>.thumb.png` into `dir` (created if missing). */
export async function writeVisualPack(dir: string, pack: VisualPack): Promise<void> {
  await fsp.mkdir(dir, { recursive: true });
  const json = {
    version: pack.version,
    artwork: pack.artwork.map((a) => ({
      id: a.id,
      tags: a.tags,
      width: a.width,
      height: a.height,
      aspect: a.aspect,
      textureSize: a.textureSize,
      textureFile: `${a.id}.rgba`,
      thumbnailFile: `${a.id}.thumb.png`,
      thumbnailWidth: a.thumbnailWidth,
      thumbnailHeight: a.thumbnailHeight,
      palette: a.palette,
      regions: a.regions,
    })),
    assets: pack.assets,
  };
  for (const a of pack.artwork) {
    await fsp.writeFile(path.join(dir, `${a.id}.rgba`), a.texture);
    await fsp.writeFile(path.join(dir, `${a.id}.thumb.png`), a.thumbnail);
  }
  // The index last, so that a pack.json never names a file that is not there yet.
  const tmp = path.join(dir, `${PACK_FILE}.tmp`);
  await fsp.writeFile(tmp, JSON.stringify(json, null, 2));
  await fsp.rename(tmp, path.join(dir, PACK_FILE));
}

export async function readVisualPack(dir: string): Promise<VisualPack> {
  let raw: string;
  try {
    raw = await fsp.readFile(path.join(dir, PACK_FILE), 'utf8');
  } catch {
    throw new VisualPackError(null, `${path.join(dir, PACK_FILE)} is missing or unreadable`);
  }
  let parsedJson: unknown;
  try {
    parsedJson = JSON.parse(raw);
  } catch (err) {
    throw new VisualPackError(null, `${PACK_FILE} is not valid JSON (${(err as Error).message})`);
  }
  const parsed = PackJsonSchema.safeParse(parsedJson);
  if (!parsed.success) throw new VisualPackError(null, `${PACK_FILE} is not a visual pack: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  const artwork: PackArtwork[] = [];
  for (const a of parsed.data.artwork) {
    if (a.textureFile !== `${a.id}.rgba` || a.thumbnailFile !== `${a.id}.thumb.png`) throw new VisualPackError(a.id, 'names files outside the pack');
    const texture = new Uint8Array(await fsp.readFile(path.join(dir, a.textureFile)));
    if (texture.length !== TEXTURE_SIZE * TEXTURE_SIZE * 4) throw new VisualPackError(a.id, `texture holds ${texture.length} bytes; ${TEXTURE_SIZE * TEXTURE_SIZE * 4} expected`);
    const thumbnail = await fsp.readFile(path.join(dir, a.thumbnailFile));
    artwork.push({
      id: a.id,
      tags: a.tags,
      width: a.width,
      height: a.height,
      aspect: a.aspect,
      texture,
      textureSize: a.textureSize,
      thumbnail,
      thumbnailWidth: a.thumbnailWidth,
      thumbnailHeight: a.thumbnailHeight,
      palette: a.palette,
      regions: a.regions,
    });
  }
  const assets: PackAsset[] = parsed.data.assets.map((x) => {
    const asset: PackAsset = { id: x.id, mimeType: x.mimeType, bytes: x.bytes, sha256: x.sha256, consent: x.consent, used: x.used };
    if (x.excludedBecause !== undefined) asset.excludedBecause = x.excludedBecause;
    return asset;
  });
  return { version: VISUAL_PACK_VERSION, artwork, assets };
}
