// Artwork for the original demo release, painted by the project itself so the
// demo ships without downloads or third-party rights. Deterministic: every
// piece draws from its own seeded stream, with no Math.random and no clock.
import { createCanvas } from '@napi-rs/canvas';
import { bloom } from './artwork-bloom.ts';
import { cover } from './artwork-cover.ts';
import { ember } from './artwork-ember.ts';
import { grid } from './artwork-grid.ts';
import { nocturne } from './artwork-nocturne.ts';
import type { ArtworkPiece } from './artwork-paint.ts';
import { Rng } from './artwork-random.ts';
import { tide } from './artwork-tide.ts';

export interface DemoArtwork {
  /** Lowercase a-z0-9-. */
  id: string;
  title: string;
  /** `${id}.png` */
  fileName: string;
  kind: 'cover' | 'graphic';
  width: number;
  height: number;
  /** Words a fan might type in a prompt: mood, colour, shapes, nature. */
  tags: string[];
  /** 4-6 '#rrggbb' colours the piece was painted with, dominant first. */
  palette: string[];
  /** The encoded PNG. */
  png: Buffer;
}

/** Cover first, then the graphics. */
const PIECES: readonly ArtworkPiece[] = [cover, nocturne, ember, tide, bloom, grid];

/**
 * Paints every piece of the demo release and encodes it as PNG.
 *
 * Asynchronous because PNG encoding runs on libuv's thread pool, so the
 * pieces encode in parallel; painting itself is synchronous. The same
 * machine always gets byte-identical PNGs. Takes roughly 1-2 s in all, so
 * callers should paint once and keep the result.
 */
export async function paintDemoArtwork(): Promise<DemoArtwork[]> {
  return paintPieces(PIECES);
}

/** Paints and PNG-encodes `pieces` (each from its own seed), in their order: any demo release's artwork. */
export async function paintPieces(pieces: readonly ArtworkPiece[]): Promise<DemoArtwork[]> {
  const encodes: Array<Promise<Buffer>> = [];
  for (const piece of pieces) {
    const canvas = createCanvas(piece.width, piece.height);
    piece.paint(canvas.getContext('2d'), new Rng(piece.seed));
    encodes.push(canvas.encode('png'));
  }
  const pngs = await Promise.all(encodes);
  return pieces.map((piece, i) => ({
    id: piece.id,
    title: piece.title,
    fileName: `${piece.id}.png`,
    kind: piece.kind,
    width: piece.width,
    height: piece.height,
    // Copies, so a caller editing its tags cannot change the next call's result.
    tags: [...piece.tags],
    palette: [...piece.palette],
    png: pngs[i]!,
  }));
}
