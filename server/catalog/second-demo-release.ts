// A second demo release: the demo's music with the second demo artwork (pastel pieces
// on paper, media/demo/second-artwork.ts), so that a visual model's style can be
// compared across two releases. Not made at startup: the visual-model bench writes it,
// and a person can ingest it by hand (`npm run ingest -- <folder>`).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { writeWavFloat32 } from '../../media/audio/wav.ts';
import { paintSecondDemoArtwork } from '../../media/demo/second-artwork.ts';
import { composeDemoMusic } from '../../media/demo/music.ts';
import { MANIFEST_FILE_NAME, MANIFEST_SCHEMA_VERSION, type ReleaseManifest } from '../../shared/release-manifest.ts';

export const SECOND_DEMO_RELEASE_ID = 'remixroom-demo-2';

const STEM_TITLES: Record<string, string> = { drums: 'Drums', bass: 'Bass', harmony: 'Harmony', lead: 'Lead' };

/** Writes the second demo release as an ordinary release folder (manifest, WAV stems, PNG artwork) into `folder`. */
export async function writeSecondDemoReleaseFolder(folder: string): Promise<ReleaseManifest> {
  const [music, artwork] = await Promise.all([Promise.resolve().then(composeDemoMusic), paintSecondDemoArtwork()]);
  await fsp.mkdir(path.join(folder, 'stems'), { recursive: true });
  await fsp.mkdir(path.join(folder, 'artwork'), { recursive: true });
  for (const [id, pcm] of Object.entries(music.stems)) {
    await writeWavFloat32(path.join(folder, 'stems', `${id}.wav`), pcm, music.sampleRate, music.channels);
  }
  for (const art of artwork) await fsp.writeFile(path.join(folder, 'artwork', art.fileName), art.png);

  const manifest: ReleaseManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    id: SECOND_DEMO_RELEASE_ID,
    title: `${music.title} (Paper Edition)`,
    artist: 'Remixroom House Band',
    year: 2026,
    bpm: music.bpm,
    key: music.key,
    description: 'The demo piece again, with other artwork: pastel washes and flat shapes on paper. Made to compare visual models across releases.',
    credits: 'Composed and painted by code in media/demo/. No samples, no outside material.',
    stems: Object.keys(music.stems).map((id) => ({ id, title: STEM_TITLES[id] ?? id, file: `stems/${id}.wav` })),
    excerpts: music.excerpts.map((e) => ({ ...e })),
    artwork: artwork.map((a) => ({
      id: a.id,
      title: a.title,
      file: `artwork/${a.fileName}`,
      kind: a.kind,
      tags: a.tags,
      consent: true,
    })),
    rules: {
      stemRanges: {},
      masterRanges: {},
      prompts: { policy: 'open', maxLength: 200, blockedWords: [], blockedNames: [], blockOtherArtists: true },
      clips: { freeSeconds: 30, downloads: true },
      purchase: { enabled: true, priceCents: 199, currency: 'USD' },
    },
  };
  await fsp.writeFile(path.join(folder, MANIFEST_FILE_NAME), JSON.stringify(manifest, null, 2));
  return manifest;
}
