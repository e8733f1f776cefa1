import type { ReleaseListItem, ReleaseView } from '../../shared/api-types.ts';
import type { DataLayout } from '../store/paths.ts';
import type { ReleaseRecord, Store } from '../store/store.ts';
import type { ReleaseFiles } from './release-files.ts';

/** Read side of the catalog: what the API shows of the releases, and where their public files are. */
export class Catalog {
  readonly #store: Store;
  readonly #layout: DataLayout;
  readonly #files: ReleaseFiles | null;

  /** `files`: where artwork is read with a blob store (S3); without it, DATA_DIR/releases. */
  constructor(store: Store, layout: DataLayout, files: ReleaseFiles | null = null) {
    this.#store = store;
    this.#layout = layout;
    this.#files = files;
  }

  async list(): Promise<ReleaseListItem[]> {
    const summaries = await this.#store.listReleases();
    const items: ReleaseListItem[] = [];
    for (const s of summaries) {
      const record = await this.#store.getRelease(s.id);
      if (!record) continue;
      const cover = usableArtwork(record).find((a) => a.kind === 'cover');
      items.push({
        id: s.id,
        title: s.title,
        artist: s.artist,
        durationSec: s.durationSec,
        coverUrl: cover ? artworkUrl(s.id, cover.id) : null,
        url: `/api/releases/${encodeURIComponent(s.id)}`,
      });
    }
    return items;
  }

  async get(id: string): Promise<ReleaseView | null> {
    const r = await this.#store.getRelease(id);
    if (!r) return null;
    const m = r.manifest;
    return {
      id: r.id,
      title: r.title,
      artist: r.artist,
      year: m.year ?? null,
      bpm: m.bpm ?? null,
      key: m.key ?? null,
      description: m.description ?? null,
      credits: m.credits ?? null,
      durationSec: r.durationSec,
      sampleRate: 48000,
      stems: r.stems.map((s) => ({ id: s.id, title: s.title })),
      excerpts: m.excerpts.map((e) => ({ ...e })),
      artwork: usableArtwork(r).map((a) => ({
        id: a.id,
        title: a.title,
        kind: a.kind,
        tags: a.tags,
        width: a.width,
        height: a.height,
        url: artworkUrl(r.id, a.id),
      })),
      rules: m.rules,
    };
  }

  /** The file of an artwork image that may be shown, or null. */
  async artworkFile(releaseId: string, artworkId: string): Promise<{ path: string; mimeType: string } | null> {
    const r = await this.#store.getRelease(releaseId);
    const art = r && usableArtwork(r).find((a) => a.id === artworkId);
    if (!art) return null;
    const file = this.#files ? await this.#files.artworkFile(releaseId, art.fileName) : this.#layout.artworkFile(releaseId, art.fileName);
    return { path: file, mimeType: art.mimeType };
  }
}

function usableArtwork(r: ReleaseRecord) {
  return r.artwork.filter((a) => a.consent);
}

function artworkUrl(releaseId: string, artworkId: string): string {
  return `/api/releases/${encodeURIComponent(releaseId)}/artwork/${encodeURIComponent(artworkId)}`;
}
