// Render files in object storage (S3_BUCKET): what a renderer on any machine makes
// is kept in the bucket under `renders/<id>/<name>`, and any node serves it. The
// renderer renders into a local staging folder (its DATA_DIR's tmp), then uploads
// each file whole (the manifest last, as the runner hands them over) and drops the
// staging folder. A download is streamed from the bucket through the node, or, with
// S3_PUBLIC=1, redirected to a presigned URL that ends when the signed link does.
//
// Keys are otherwise written once; a render that runs again (a retry after a failed
// attempt, never a render already done) writes its keys again. A put replaces the object
// whole (S3 never shows a half-written or missing one in between) and the store drops its
// cached copy (S3BlobStore), so nothing is deleted first: a delete would open a window in
// which the key is gone.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from '../store/blob-store.ts';
import { BlobNotFoundError } from '../store/blob-store.ts';
import type { DataLayout } from '../store/paths.ts';
import { RENDER_FILES, RENDER_ID } from './render-job.ts';
import { LocalRenderFiles, RenderFilesError, type RenderDownload, type RenderDownloadOptions, type RenderFile, type RenderFiles } from './render-files.ts';

/** How long a file handed out by local path stays pinned in the cache: its reader opens it at once. */
const LOCAL_PIN_MS = 60_000;

export class BlobRenderFiles implements RenderFiles {
  readonly #blobs: BlobStore;
  readonly #staging: string;
  readonly #presign: boolean;
  readonly #now: () => number;

  /** `presign`: downloads are presigned URLs of the store (S3_PUBLIC=1) rather than proxied. */
  constructor(options: { blobs: BlobStore; layout: DataLayout; presign: boolean; now?: () => number }) {
    this.#blobs = options.blobs;
    this.#staging = path.join(options.layout.tmpDir, 'renders');
    this.#presign = options.presign;
    this.#now = options.now ?? Date.now;
  }

  async stagingDir(renderId: string): Promise<string> {
    const dir = this.#dir(renderId);
    // Whatever a killed render left here is half-made: each attempt starts afresh.
    await fsp.rm(dir, { recursive: true, force: true });
    await fsp.mkdir(dir, { recursive: true });
    return dir;
  }

  async commit(renderId: string, files: readonly RenderFile[]): Promise<void> {
    for (const file of files) {
      if (!RENDER_FILES.has(file.name)) throw new RenderFilesError(`a render keeps no file named ${JSON.stringify(file.name)}`);
      const stat = await fsp.stat(file.path).catch(() => null);
      if (!stat?.isFile()) throw new RenderFilesError(`the render ${renderId} has no ${file.name} to keep`);
    }
    for (const file of files) {
      await this.#blobs.putFile(keyOf(renderId, file.name), file.path, { contentType: file.contentType });
    }
    await fsp.rm(this.#dir(renderId), { recursive: true, force: true });
  }

  async localPath(renderId: string, name: string): Promise<string | null> {
    if (!RENDER_ID.test(renderId) || !RENDER_FILES.has(name)) return null;
    try {
      const blob = await this.#blobs.localFile(keyOf(renderId, name));
      setTimeout(() => blob.release(), LOCAL_PIN_MS).unref();
      return blob.path;
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      throw err;
    }
  }

  async download(renderId: string, name: string, options: RenderDownloadOptions): Promise<RenderDownload | null> {
    if (!RENDER_ID.test(renderId) || !RENDER_FILES.has(name)) return null;
    const key = keyOf(renderId, name);
    if (!(await this.#blobs.head(key))) return null;
    if (this.#presign) {
      // The store's link ends when ours does (at least a second, so that it can be followed at all).
      const expiresInSec = Math.max(1, options.expiresAtSec - Math.floor(this.#now() / 1000));
      const url = await this.#blobs.presignGet(key, expiresInSec, { contentDisposition: options.contentDisposition, contentType: options.contentType });
      if (url) return { kind: 'redirect', url };
    }
    return { kind: 'object', blobs: this.#blobs, key };
  }

  async remove(renderId: string): Promise<void> {
    if (!RENDER_ID.test(renderId)) throw new RenderFilesError(`not a render id: ${JSON.stringify(renderId)}`);
    await this.#blobs.deletePrefix(`renders/${renderId}/`);
    await fsp.rm(this.#dir(renderId), { recursive: true, force: true });
  }

  #dir(renderId: string): string {
    if (!RENDER_ID.test(renderId)) throw new RenderFilesError(`not a render id: ${JSON.stringify(renderId)}`);
    return path.join(this.#staging, renderId);
  }
}

function keyOf(renderId: string, name: string): string {
  return `renders/${renderId}/${name}`;
}

/** The process's render files: DATA_DIR/renders as always, or the bucket when objects are in S3. */
export function renderFilesFor(blobs: BlobStore, layout: DataLayout, options: { presign: boolean }): RenderFiles {
  return blobs.kind === 'local' ? new LocalRenderFiles(layout) : new BlobRenderFiles({ blobs, layout, presign: options.presign });
}
