// Where a render's output files live: the one way in and out of them. The runner
// renders into a local staging folder and commits what it made; downloads ask for a
// local path to serve. Nothing else knows where render files are kept, so that
// another keeping (object storage, with a local cache) replaces this module alone.
//
// LocalRenderFiles is the embedded default: DATA_DIR/renders/<id>/<name>. Its
// staging folder is the render's own folder: the encoder writes each output under a
// temporary name (`*.part`) there and renames it into place when it is whole, so a
// file that exists under its name is whole, and commit has nothing left to move.
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { BlobStore } from '../store/blob-store.ts';
import type { DataLayout } from '../store/paths.ts';
import { RENDER_FILES, RENDER_ID } from './render-job.ts';

/** A file a render made, staged at `path`, to be kept as `name` (one of RENDER_FILES). */
export interface RenderFile {
  name: string;
  path: string;
  contentType: string;
}

export interface RenderFiles {
  /** A local folder to render into, made if need be and cleared of what a killed render left half-written. */
  stagingDir(renderId: string): Promise<string>;
  /** Makes the staged files the render's files under their names, each visible only whole. */
  commit(renderId: string, files: readonly RenderFile[]): Promise<void>;
  /** A local path to read the render's file from (fetched first where files are kept elsewhere), or null when there is none. */
  localPath(renderId: string, name: string): Promise<string | null>;
  /** How a download of the render's file is served (a local file, an object streamed through the node, or a presigned URL), or null when there is none. */
  download(renderId: string, name: string, options: RenderDownloadOptions): Promise<RenderDownload | null>;
  /** Removes all of a render's files. */
  remove(renderId: string): Promise<void>;
}

/** What a download link promises: when it ends, and what the file is called and is. */
export interface RenderDownloadOptions {
  /** Seconds since the epoch at which the signed link ends (a presigned URL ends with it). */
  expiresAtSec: number;
  contentType: string;
  contentDisposition: string;
}

export type RenderDownload =
  /** A whole file on this machine. */
  | { kind: 'file'; path: string }
  /** An object of the blob store, streamed through the node (ranges, HEAD). */
  | { kind: 'object'; blobs: BlobStore; key: string }
  /** A URL that serves the bytes without the node (S3_PUBLIC=1). */
  | { kind: 'redirect'; url: string };

export class RenderFilesError extends Error {
  override readonly name = 'RenderFilesError';
}

export class LocalRenderFiles implements RenderFiles {
  readonly #root: string;

  constructor(layout: DataLayout) {
    this.#root = layout.rendersDir;
  }

  async stagingDir(renderId: string): Promise<string> {
    const dir = this.#dir(renderId);
    await fsp.mkdir(dir, { recursive: true });
    // A renderer killed mid-job leaves its temporary files behind; they are never renamed into place, and go now.
    const entries = await fsp.readdir(dir);
    await Promise.all(entries.filter((name) => name.endsWith('.part')).map((name) => fsp.rm(path.join(dir, name), { force: true })));
    return dir;
  }

  async commit(renderId: string, files: readonly RenderFile[]): Promise<void> {
    const dir = this.#dir(renderId);
    for (const file of files) {
      if (!RENDER_FILES.has(file.name)) throw new RenderFilesError(`a render keeps no file named ${JSON.stringify(file.name)}`);
      const target = path.join(dir, file.name);
      // Staged elsewhere (not in the render's own folder): one rename on the same file system.
      if (path.resolve(file.path) !== target) await fsp.rename(file.path, target);
      const stat = await fsp.stat(target).catch(() => null);
      if (!stat?.isFile()) throw new RenderFilesError(`the render ${renderId} has no ${file.name} to keep`);
    }
  }

  async localPath(renderId: string, name: string): Promise<string | null> {
    if (!RENDER_ID.test(renderId) || !RENDER_FILES.has(name)) return null;
    const file = path.join(this.#dir(renderId), name);
    const stat = await fsp.stat(file).catch(() => null);
    return stat?.isFile() ? file : null;
  }

  async download(renderId: string, name: string): Promise<RenderDownload | null> {
    const file = await this.localPath(renderId, name);
    return file === null ? null : { kind: 'file', path: file };
  }

  async remove(renderId: string): Promise<void> {
    await fsp.rm(this.#dir(renderId), { recursive: true, force: true });
  }

  #dir(renderId: string): string {
    if (!RENDER_ID.test(renderId)) throw new RenderFilesError(`not a render id: ${JSON.stringify(renderId)}`);
    return path.join(this.#root, renderId);
  }
}
