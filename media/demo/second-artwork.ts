// Artwork for the second demo release ("remixroom-demo-2"): three pastel pieces on
// paper, painted by the project itself, deterministic like the first release's (see
// artwork.ts). The visual model's bench trains on both releases and compares styles.
import { paintPieces, type DemoArtwork } from './artwork.ts';
import type { ArtworkPiece } from './artwork-paint.ts';
import { shorePiece, tilesPiece, washPiece } from './second-artwork-pieces.ts';

/** Cover first, then the graphics. */
const PIECES: readonly ArtworkPiece[] = [washPiece, shorePiece, tilesPiece];

/** Paints and PNG-encodes every piece of the second demo release (about 1-2 s). */
export function paintSecondDemoArtwork(): Promise<DemoArtwork[]> {
  return paintPieces(PIECES);
}
