// A second demo release: the demo's music with the second demo artwork (pastel pieces
// on paper, media/demo/second-artwork.ts), so that a visual model's style can be
// compared across two releases. Not made at startup: the visual-model bench writes it,
// and a person can ingest it by hand (`npm run ingest -- <folder>`).
import { paintSecondDemoArtwork } from '../../media/demo/second-artwork.ts';
import type { ReleaseManifest } from '../../shared/release-manifest.ts';
import { writeDemoMusicFolder } from './demo-release.ts';

export const SECOND_DEMO_RELEASE_ID = 'remixroom-demo-2';

/** Writes the second demo release as an ordinary release folder (manifest, WAV stems, PNG artwork) into `folder`. */
export async function writeSecondDemoReleaseFolder(folder: string): Promise<ReleaseManifest> {
  return writeDemoMusicFolder(folder, {
    id: SECOND_DEMO_RELEASE_ID,
    titleSuffix: ' (Paper Edition)',
    description: 'The demo piece again, with other artwork: pastel washes and flat shapes on paper. Made to compare visual models across releases.',
    artwork: await paintSecondDemoArtwork(),
  });
}
