// A local folder holding a release's files as ingest stored them (stems/<id>.wav,
// artwork/<file>, visual-pack/, analysis.json, release.json), on any node.
//
// With local files that is DATA_DIR/releases/<id>, as it always was. With S3, the
// files are the objects under `releases/<id>/<version>/` (the version is named by
// the record, so a release ingested again gets new keys and no node serves a mix
// of two ingests); they are fetched into the node's blob cache on first use and
// pinned there while the folder is open. A release ingested before S3 was
// configured is still read from DATA_DIR when the bucket has nothing for it.
import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { BlobNotFoundError, type BlobInfo, type BlobStore } from '../store/blob-store.ts';
import type { DataLayout } from '../store/paths.ts';
import type { ReleaseRecord, Store } from '../store/store.ts';

/** An open release folder; `release()` lets its files go from the cache again. */
export interface ReleaseFolder {
  readonly dir: string;
  release(): void;
}

/** A folder of a release's files that a reader needs alone (the mixer its stems, the visual engine its pack). */
export type ReleasePart = 'stems' | 'visual-pack';

/** Where the live mixer, the visual engine and the catalog find a release's files. */
export interface ReleaseFolders {
  /**
   * The release's folder; with `part`, only that subfolder's files need be there (S3: only they are
   * fetched and pinned, so that a still or a loop does not pull every stem into the cache).
   */
  open(releaseId: string, part?: ReleasePart): Promise<ReleaseFolder>;
}

/** The files' version of an ingest: derived from the record's ingest time, so the record names it. */
export function releaseFilesVersion(record: Pick<ReleaseRecord, 'ingestedAt'>): string {
  return `v${record.ingestedAt.replace(/[^0-9]/g, '')}`;
}

/** The object keys' folder of one ingest of a release. */
export function releaseFilesPrefix(record: Pick<ReleaseRecord, 'id' | 'ingestedAt'>): string {
  return `releases/${record.id}/${releaseFilesVersion(record)}/`;
}

/** Today's folders under DATA_DIR, for processes without a blob store (render threads, tests). */
export function localReleaseFolders(layout: DataLayout): ReleaseFolders {
  return { open: async (releaseId) => ({ dir: layout.releaseDir(releaseId), release: () => {} }) };
}

export class UnknownReleaseError extends Error {
  override readonly name = 'UnknownReleaseError';
}

/** How long an artwork file handed out by path stays pinned: the HTTP response opens it at once. */
const ARTWORK_PIN_MS = 60_000;

export class ReleaseFiles implements ReleaseFolders {
  readonly #store: Store;
  readonly #blobs: BlobStore;
  readonly #layout: DataLayout;
  readonly #log: Logger;
  /** Object listings per ingest version: immutable, so kept. */
  readonly #listings = new Map<string, Promise<BlobInfo[]>>();

  constructor(options: { store: Store; blobs: BlobStore; layout: DataLayout; log: Logger }) {
    this.#store = options.store;
    this.#blobs = options.blobs;
    this.#layout = options.layout;
    this.#log = options.log;
  }

  async open(releaseId: string, part?: ReleasePart): Promise<ReleaseFolder> {
    const local = { dir: this.#layout.releaseDir(releaseId), release: () => {} };
    if (this.#blobs.kind === 'local') return local;
    const record = await this.#record(releaseId);
    const prefix = releaseFilesPrefix(record);
    const listed = await this.#list(prefix);
    const objects = part ? listed.filter((o) => o.key.startsWith(`${prefix}${part}/`)) : listed;
    if (listed.length === 0) {
      if (fs.existsSync(local.dir)) return local;
      throw new BlobNotFoundError(prefix);
    }
    if (objects.length === 0) throw new BlobNotFoundError(`${prefix}${part}/`);
    // Each file is fetched once per node, however many rooms open the release at once.
    const results = await Promise.allSettled(objects.map((o) => this.#blobs.localFile(o.key)));
    const held = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) {
      for (const h of held) h.release();
      throw failed.reason;
    }
    // The cache keeps a file at its key's path, so the folder of the prefix holds them all.
    const relative = objects[0]!.key.slice(prefix.length);
    const dir = held[0]!.path.slice(0, held[0]!.path.length - relative.length - 1);
    let released = false;
    return {
      dir,
      release: () => {
        if (released) return;
        released = true;
        for (const h of held) h.release();
      },
    };
  }

  /** A local path of one artwork file, for an HTTP response that opens it at once. */
  async artworkFile(releaseId: string, fileName: string): Promise<string> {
    if (this.#blobs.kind === 'local') return this.#layout.artworkFile(releaseId, fileName);
    const record = await this.#record(releaseId);
    const prefix = releaseFilesPrefix(record);
    const objects = await this.#list(prefix);
    if (objects.length === 0) return this.#layout.artworkFile(releaseId, fileName);
    const blob = await this.#blobs.localFile(`${prefix}artwork/${fileName}`);
    // Released after a while rather than after the response: long enough for it to open the file.
    setTimeout(() => blob.release(), ARTWORK_PIN_MS).unref();
    return blob.path;
  }

  async #record(releaseId: string): Promise<ReleaseRecord> {
    const record = await this.#store.getRelease(releaseId);
    if (!record) throw new UnknownReleaseError(`no release "${releaseId}"`);
    return record;
  }

  #list(prefix: string): Promise<BlobInfo[]> {
    let listing = this.#listings.get(prefix);
    if (!listing) {
      listing = this.#blobs.list(prefix);
      // A failed or empty listing is asked again next time (the store may be back, the ingest may be done).
      listing.then(
        (l) => {
          if (l.length === 0) this.#listings.delete(prefix);
        },
        () => this.#listings.delete(prefix),
      );
      this.#listings.set(prefix, listing);
    }
    return listing.catch((err: unknown) => {
      this.#log.warn({ err, prefix }, 'release files: cannot list the release in the object store');
      throw err;
    });
  }
}

/** Content types of a release's stored files. */
export function releaseFileType(file: string): string {
  switch (path.extname(file).toLowerCase()) {
    case '.wav':
      return 'audio/wav';
    case '.png':
      return 'image/png';
    case '.jpg':
    case '.jpeg':
      return 'image/jpeg';
    case '.json':
      return 'application/json';
    default:
      return 'application/octet-stream';
  }
}
