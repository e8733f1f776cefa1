// Artwork for the second demo release ("remixroom-demo-2"): three pastel pieces on
// paper, painted by the project itself, deterministic like the first release's (see
// artwork.ts). The visual model's bench trains on both releases and compares styles.
import { createCanvas } from '@napi-rs/canvas';
import type { DemoArtwork } from './artwork.ts';
import type { ArtworkPiece } from './artwork-paint.ts';
import { Rng } from './artwork-random.ts';
import { shorePiece, tilesPiece, washPiece } from './second-artwork-pieces.ts';

/** Cover first, then the graphics. */
const PIECES: readonly ArtworkPiece[] = [washPiece, shorePiece, tilesPiece];

/** Paints and PNG-encodes every piece of the second demo release (about 1-2 s). */
export async function paintSecondDemoArtwork(): Promise<DemoArtwork[]> {
  const encodes: Array<Promise<Buffer>> = [];
  for (const piece of PIECES) {
    const canvas = createCanvas(piece.width, piece.height);
    piece.paint(canvas.getContext('2d'), new Rng(piece.seed));
    encodes.push(canvas.encode('png'));
  }
  const pngs = await Promise.all(encodes);
  return PIECES.map((piece, i) => ({
    id: piece.id,
    title: piece.title,
    fileName: `${piece.id}.png`,
    kind: piece.kind,
    width: piece.width,
    height: piece.height,
    tags: [...piece.tags],
    palette: [...piece.palette],
    png: pngs[i]!,
  }));
}
