// The embedded default: objects are files under a folder (DATA_DIR), at their key's
// path, so that `releases/<id>/…` and `renders/<id>/…` are where they always were.
// A write goes to a temp name in the staging folder and is renamed into place,
// so a reader sees the whole file or none.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { resolveInside } from './paths.ts';
import {
  BlobNotFoundError,
  InvalidBlobKeyError,
  validateBlobKey,
  validateBlobPrefix,
  type BlobHead,
  type BlobInfo,
  type BlobStore,
  type BlobStream,
  type ByteRange,
  type LocalBlob,
} from './blob-store.ts';

export interface LocalBlobStoreOptions {
  /** The folder the keys are paths in. */
  root: string;
  /** Staging folder on the same file system (for the rename); default `<root>/tmp`. */
  tmpDir?: string;
  /**
   * The top-level folders keys may start with (DATA_DIR also holds the database and
   * the secrets, which no key may reach); any when omitted.
   */
  folders?: readonly string[];
}

export class LocalBlobStore implements BlobStore {
  readonly kind = 'local' as const;
  readonly root: string;
  readonly #tmpDir: string;
  readonly #folders: ReadonlySet<string> | null;

  constructor(options: LocalBlobStoreOptions) {
    this.root = path.resolve(options.root);
    this.#tmpDir = path.resolve(options.tmpDir ?? path.join(this.root, 'tmp'));
    this.#folders = options.folders ? new Set(options.folders) : null;
  }

  get description(): string {
    return this.root;
  }

  /** The file a key names (whether or not it exists); refuses keys that lead elsewhere. */
  pathOf(key: string): string {
    validateBlobKey(key);
    this.#checkFolder(key);
    return resolveInside(this.root, ...key.split('/'));
  }

  async putFile(key: string, file: string, _options: { contentType: string }): Promise<void> {
    const target = this.pathOf(key);
    await this.#atomically(target, (tmp) => fsp.copyFile(file, tmp));
  }

  async putBuffer(key: string, data: Buffer, _options: { contentType: string }): Promise<void> {
    const target = this.pathOf(key);
    await this.#atomically(target, (tmp) => fsp.writeFile(tmp, data));
  }

  async localFile(key: string): Promise<LocalBlob> {
    const file = this.pathOf(key);
    const stat = await statOrNull(file);
    if (!stat?.isFile()) throw new BlobNotFoundError(key);
    return { path: file, size: stat.size, release: () => {} };
  }

  async download(key: string, dest: string): Promise<void> {
    const file = this.pathOf(key);
    const tmp = `${dest}.${crypto.randomBytes(6).toString('hex')}.part`;
    try {
      await fsp.copyFile(file, tmp);
      await fsp.rename(tmp, dest);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !(await statOrNull(file))) throw new BlobNotFoundError(key);
      throw err;
    }
  }

  async read(key: string, range?: ByteRange): Promise<BlobStream> {
    const file = this.pathOf(key);
    // Open first: the stream then reads the file this call found, even if it is replaced meanwhile.
    let handle: fsp.FileHandle;
    try {
      handle = await fsp.open(file, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'EISDIR') throw new BlobNotFoundError(key);
      throw err;
    }
    const stat = await handle.stat();
    if (!stat.isFile()) {
      await handle.close();
      throw new BlobNotFoundError(key);
    }
    const size = stat.size;
    const start = range?.start ?? 0;
    const end = Math.min(range?.end ?? size - 1, size - 1);
    if (range && (start < 0 || start >= size || end < start)) {
      await handle.close();
      throw new RangeError(`range ${start}-${range.end ?? ''} is outside the ${size} bytes of "${key}"`);
    }
    if (size === 0) {
      await handle.close();
      return { stream: Readable.from([]), length: 0, size, contentType: null };
    }
    const stream = handle.createReadStream({ start, end, autoClose: true });
    return { stream, length: Math.max(0, end - start + 1), size, contentType: null };
  }

  async head(key: string): Promise<BlobHead | null> {
    const stat = await statOrNull(this.pathOf(key));
    return stat?.isFile() ? { size: stat.size, contentType: null } : null;
  }

  async delete(key: string): Promise<void> {
    await fsp.rm(this.pathOf(key), { force: true });
  }

  async deletePrefix(prefix: string): Promise<number> {
    const dir = this.#prefixDir(validateBlobPrefix(prefix, { allowEmpty: false }));
    const count = (await this.#walk(dir, prefix)).length;
    await fsp.rm(dir, { recursive: true, force: true });
    return count;
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    validateBlobPrefix(prefix, { allowEmpty: true });
    if (prefix === '') {
      const roots = this.#folders ? [...this.#folders] : (await fsp.readdir(this.root, { withFileTypes: true }).catch(() => [])).filter((e) => e.isDirectory() && this.#isOwnFolder(e.name)).map((e) => e.name);
      const all = await Promise.all(roots.map((r) => this.#walk(path.join(this.root, r), `${r}/`)));
      return all.flat().sort((a, b) => (a.key < b.key ? -1 : 1));
    }
    return (await this.#walk(this.#prefixDir(prefix), prefix)).sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async presignGet(): Promise<string | null> {
    return null;
  }

  async ping(): Promise<void> {
    await fsp.access(this.root, fs.constants.W_OK);
  }

  async close(): Promise<void> {}

  #checkFolder(key: string): void {
    const top = key.slice(0, key.indexOf('/'));
    if (this.#folders && !this.#folders.has(top)) throw new InvalidBlobKeyError(`object key "${key}" must start with one of ${[...this.#folders].map((f) => `${f}/`).join(', ')}`);
  }

  #isOwnFolder(name: string): boolean {
    return path.join(this.root, name) !== this.#tmpDir;
  }

  #prefixDir(prefix: string): string {
    this.#checkFolder(prefix);
    return resolveInside(this.root, ...prefix.slice(0, -1).split('/'));
  }

  async #walk(dir: string, prefix: string): Promise<BlobInfo[]> {
    const out: BlobInfo[] = [];
    const entries = await fsp.readdir(dir, { withFileTypes: true }).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT' || err.code === 'ENOTDIR') return [];
      throw err;
    });
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (full === this.#tmpDir) continue;
      if (entry.isDirectory()) out.push(...(await this.#walk(full, `${prefix}${entry.name}/`)));
      else if (entry.isFile()) out.push({ key: `${prefix}${entry.name}`, size: (await fsp.stat(full)).size });
    }
    return out;
  }

  async #atomically(target: string, write: (tmp: string) => Promise<void>): Promise<void> {
    await fsp.mkdir(this.#tmpDir, { recursive: true });
    const tmp = path.join(this.#tmpDir, `blob-${crypto.randomBytes(8).toString('hex')}`);
    try {
      await write(tmp);
      await fsp.mkdir(path.dirname(target), { recursive: true });
      await fsp.rename(tmp, target);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    }
  }
}

async function statOrNull(file: string): Promise<fs.Stats | null> {
  try {
    return await fsp.stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

/** Streams `from` into `dest` through a temp name beside it; nothing is left at `dest` when it fails. */
export async function streamToFileAtomically(from: NodeJS.ReadableStream, dest: string): Promise<number> {
  await fsp.mkdir(path.dirname(dest), { recursive: true });
  const tmp = `${dest}.${crypto.randomBytes(6).toString('hex')}.part`;
  try {
    await pipeline(from, fs.createWriteStream(tmp));
    const { size } = await fsp.stat(tmp);
    await fsp.rename(tmp, dest);
    return size;
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  }
}
