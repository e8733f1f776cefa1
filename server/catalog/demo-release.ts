// The demo release: an original piece and artwork the project makes itself,
// deterministically, the first time a server needs it. It goes through the same
// ingest as any artist's release.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeWavFloat32 } from '../../media/audio/wav.ts';
import { paintDemoArtwork } from '../../media/demo/artwork.ts';
import { composeDemoMusic } from '../../media/demo/music.ts';
import { MANIFEST_FILE_NAME, MANIFEST_SCHEMA_VERSION, type ReleaseManifest } from '../../shared/release-manifest.ts';
import { WAIT_STEP, type Logger } from '../logger.ts';
import type { DataLayout } from '../store/paths.ts';
import type { Store } from '../store/store.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { IngestError, ingestRelease } from './ingest.ts';

export const DEMO_RELEASE_ID = 'remixroom-demo';

/**
 * The demo's visual model as shipped in the repository (weights.bin + record.json, made by this
 * project's own training on the demo's own artwork), installed instead of training at every fresh start.
 */
export const DEMO_VISUAL_MODEL_DIR = fileURLToPath(new URL('../../media/demo/visual-model/', import.meta.url));

const STEM_TITLES: Record<string, string> = { drums: 'Drums', bass: 'Bass', harmony: 'Harmony', lead: 'Lead' };

/** Writes the demo release as an ordinary release folder (manifest, WAV stems, PNG artwork) into `folder`. */
export async function writeDemoReleaseFolder(folder: string): Promise<ReleaseManifest> {
  return writeDemoMusicFolder(folder, {
    id: DEMO_RELEASE_ID,
    description: 'An original piece made by Remixroom itself, in four stems, for trying the room out. Free to remix.',
    artwork: await paintDemoArtwork(),
  });
}

/** A painted piece of a demo's artwork (media/demo). */
export interface DemoArtworkPiece {
  id: string;
  title: string;
  kind: ReleaseManifest['artwork'][number]['kind'];
  tags: string[];
  fileName: string;
  png: Buffer;
}

/** Writes the demo's music with `artwork` as a release folder: the demo, and other demos for comparing (the second demo). */
export async function writeDemoMusicFolder(folder: string, opts: { id: string; titleSuffix?: string; description: string; artwork: readonly DemoArtworkPiece[] }): Promise<ReleaseManifest> {
  const music = composeDemoMusic();
  await fsp.mkdir(path.join(folder, 'stems'), { recursive: true });
  await fsp.mkdir(path.join(folder, 'artwork'), { recursive: true });
  for (const [id, pcm] of Object.entries(music.stems)) {
    await writeWavFloat32(path.join(folder, 'stems', `${id}.wav`), pcm, music.sampleRate, music.channels);
  }
  for (const art of opts.artwork) await fsp.writeFile(path.join(folder, 'artwork', art.fileName), art.png);

  const manifest: ReleaseManifest = {
    schemaVersion: MANIFEST_SCHEMA_VERSION,
    id: opts.id,
    title: `${music.title}${opts.titleSuffix ?? ''}`,
    artist: 'Remixroom House Band',
    year: 2026,
    bpm: music.bpm,
    key: music.key,
    description: opts.description,
    credits: 'Composed and painted by code in media/demo/. No samples, no outside material.',
    stems: Object.keys(music.stems).map((id) => ({ id, title: STEM_TITLES[id] ?? id, file: `stems/${id}.wav` })),
    excerpts: music.excerpts.map((e) => ({ ...e })),
    artwork: opts.artwork.map((a) => ({
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

/** Makes and ingests the demo release unless the catalog has it. */
export async function ensureDemoRelease(opts: {
  store: Store;
  layout: DataLayout;
  ffmpeg: string | null;
  log: Logger;
  /** With S3, the demo's files go to the bucket like any release's. */
  blobs?: BlobStore;
  signal?: AbortSignal;
}): Promise<void> {
  if (await opts.store.getRelease(DEMO_RELEASE_ID)) return;
  const started = performance.now();
  opts.log.info(WAIT_STEP, 'making the demo release (first start only)');
  await fsp.mkdir(opts.layout.tmpDir, { recursive: true });
  const folder = await fsp.mkdtemp(path.join(opts.layout.tmpDir, 'demo-source-'));
  try {
    await writeDemoReleaseFolder(folder);
    opts.signal?.throwIfAborted();
    const { record } = await ingestRelease(folder, {
      store: opts.store,
      layout: opts.layout,
      ffmpeg: opts.ffmpeg,
      ...(opts.blobs ? { blobs: opts.blobs } : {}),
      ...(opts.signal ? { signal: opts.signal } : {}),
    });
    opts.log.info(
      { releaseId: record.id, durationSec: record.durationSec, ms: Math.round(performance.now() - started) },
      'demo release ready',
    );
  } catch (err) {
    // Another process sharing DATA_DIR may have made it meanwhile.
    if (err instanceof IngestError && (await opts.store.getRelease(DEMO_RELEASE_ID))) return;
    throw err;
  } finally {
    await fsp.rm(folder, { recursive: true, force: true });
  }
}
