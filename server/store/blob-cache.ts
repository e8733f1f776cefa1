// A node's bounded local copy of objects it fetched from the object store.
//
// What it promises, and how:
// - Bounded: the files' sizes add up to at most `maxBytes`, least recently used
//   out first. One object larger than the whole limit is still served (it is the
//   only way to use it) and goes again as soon as nobody holds it.
// - Nothing half-downloaded is ever served: a download writes to `tmp/` and is
//   renamed to its key's path only when complete; a failed one leaves nothing and
//   the next use tries again. Leftovers of a crash in `tmp/` are removed at start.
// - One download per key at a time: concurrent fetches of a key share it.
// - Files in use are not deleted under a reader: `get()` pins the file until its
//   `release()`; eviction skips pinned files (the cache may then stand above its
//   limit until they are released). Objects are immutable, so a file in the cache
//   stays valid for as long as its key exists; one whose object was deleted (or
//   replaced: a render run again) is dropped when its last holder lets go, and a
//   download that was under way when it was forgotten is not kept (it may hold the
//   old bytes): whoever waited for it fetches again.
// - Survives a restart: complete files found at start are indexed (oldest first).
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../logger.ts';
import { resolveInside } from './paths.ts';
import { validateBlobKey, type LocalBlob } from './blob-store.ts';

interface Entry {
  file: string;
  size: number;
  pins: number;
  /** Its object was deleted: remove the file when the last holder lets go. */
  doomed: boolean;
}

export interface BlobCacheOptions {
  dir: string;
  maxBytes: number;
  log: Logger;
}

export class BlobCache {
  readonly dir: string;
  readonly maxBytes: number;
  readonly #objectsDir: string;
  readonly #tmpDir: string;
  readonly #log: Logger;
  /** In least-recently-used order: a use moves the key to the end. */
  readonly #entries = new Map<string, Entry>();
  readonly #inFlight = new Map<string, Promise<Entry | null>>();
  /** Keys being downloaded now, and those of them forgotten meanwhile (that download is not kept). */
  readonly #downloading = new Set<string>();
  readonly #stale = new Set<string>();
  /** Files of forgotten entries still held; the path may be the key's again by the time they are let go. */
  readonly #doomed = new Set<Entry>();
  #bytes = 0;
  #downloads = 0;

  private constructor(options: BlobCacheOptions) {
    this.dir = path.resolve(options.dir);
    this.maxBytes = options.maxBytes;
    this.#objectsDir = path.join(this.dir, 'objects');
    this.#tmpDir = path.join(this.dir, 'tmp');
    this.#log = options.log;
  }

  static async create(options: BlobCacheOptions): Promise<BlobCache> {
    const cache = new BlobCache(options);
    await fsp.rm(cache.#tmpDir, { recursive: true, force: true });
    await fsp.mkdir(cache.#tmpDir, { recursive: true });
    await fsp.mkdir(cache.#objectsDir, { recursive: true });
    await cache.#index();
    return cache;
  }

  /** Downloads started since the cache opened (concurrent fetches of a key share one). */
  get downloads(): number {
    return this.#downloads;
  }

  /** Bytes held now. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Keys held now, least recently used first. */
  keys(): string[] {
    return [...this.#entries.keys()];
  }

  has(key: string): boolean {
    return this.#entries.has(key);
  }

  /**
   * The cached file for `key`, downloaded with `fetch(tmpFile)` when missing.
   * Pinned until `release()`.
   */
  async get(key: string, fetch: (tmpFile: string) => Promise<void>): Promise<LocalBlob> {
    validateBlobKey(key);
    for (;;) {
      const entry = this.#entries.get(key);
      if (entry) {
        this.#touch(key, entry);
        return this.#pin(key, entry);
      }
      let pending = this.#inFlight.get(key);
      if (!pending) {
        pending = this.#download(key, fetch).finally(() => this.#inFlight.delete(key));
        this.#inFlight.set(key, pending);
      }
      // A failed download throws here, to every caller that waited for it. A file
      // evicted again before this caller resumed is simply fetched once more.
      await pending;
    }
  }

  /** The object was deleted or replaced: drop its file (at once, or when its last holder lets go). */
  async forget(key: string): Promise<void> {
    if (this.#downloading.has(key)) this.#stale.add(key);
    const entry = this.#entries.get(key);
    if (!entry) return;
    this.#entries.delete(key);
    this.#bytes -= entry.size;
    if (entry.pins > 0) {
      entry.doomed = true;
      this.#doomed.add(entry);
    } else await fsp.rm(entry.file, { force: true });
  }

  /** Downloads `key` and indexes it; null when it was forgotten meanwhile (then nothing is kept). */
  async #download(key: string, fetch: (tmpFile: string) => Promise<void>): Promise<Entry | null> {
    this.#downloads++;
    this.#downloading.add(key);
    this.#stale.delete(key);
    const file = resolveInside(this.#objectsDir, ...key.split('/'));
    const tmp = path.join(this.#tmpDir, crypto.randomBytes(8).toString('hex'));
    try {
      await fetch(tmp);
      const { size } = await fsp.stat(tmp);
      await fsp.mkdir(path.dirname(file), { recursive: true });
      await fsp.rename(tmp, file);
      // Checked here, with nothing awaited between it and the indexing: a forget at any point of the download counts.
      if (this.#stale.delete(key)) {
        if (![...this.#doomed].some((d) => d.file === file)) await fsp.rm(file, { force: true });
        return null;
      }
      const entry: Entry = { file, size, pins: 0, doomed: false };
      this.#entries.set(key, entry);
      this.#bytes += size;
      // Pinned by the caller right after; evict around it.
      entry.pins++;
      await this.#evict();
      entry.pins--;
      return entry;
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    } finally {
      this.#downloading.delete(key);
      this.#stale.delete(key);
    }
  }

  #pin(key: string, entry: Entry): LocalBlob {
    entry.pins++;
    let released = false;
    return {
      path: entry.file,
      size: entry.size,
      release: () => {
        if (released) return;
        released = true;
        entry.pins--;
        if (entry.pins > 0) return;
        if (entry.doomed) {
          this.#doomed.delete(entry);
          // The key may have been fetched again into the same path (its object replaced), or be held
          // through another forgotten entry: that file is not this one's to remove.
          if (this.#entries.get(key)?.file === entry.file || [...this.#doomed].some((d) => d.file === entry.file)) return;
          void fsp.rm(entry.file, { force: true }).catch((err: unknown) => this.#log.warn({ err, key }, 'blob cache: could not remove a deleted object'));
        } else {
          void this.#evict().catch((err: unknown) => this.#log.warn({ err }, 'blob cache: eviction failed'));
        }
      },
    };
  }

  #touch(key: string, entry: Entry): void {
    this.#entries.delete(key);
    this.#entries.set(key, entry);
  }

  async #evict(): Promise<void> {
    if (this.#bytes <= this.maxBytes) return;
    for (const [key, entry] of this.#entries) {
      if (this.#bytes <= this.maxBytes) break;
      if (entry.pins > 0) continue;
      this.#entries.delete(key);
      this.#bytes -= entry.size;
      await fsp.rm(entry.file, { force: true });
      this.#log.debug({ key, size: entry.size }, 'blob cache: evicted');
    }
  }

  async #index(): Promise<void> {
    const found: { key: string; file: string; size: number; atimeMs: number }[] = [];
    const walk = async (dir: string, prefix: string): Promise<void> => {
      for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full, `${prefix}${entry.name}/`);
        else if (entry.isFile()) {
          const stat = await fsp.stat(full);
          found.push({ key: `${prefix}${entry.name}`, file: full, size: stat.size, atimeMs: Math.max(stat.atimeMs, stat.mtimeMs) });
        }
      }
    };
    await walk(this.#objectsDir, '');
    found.sort((a, b) => a.atimeMs - b.atimeMs);
    for (const f of found) {
      this.#entries.set(f.key, { file: f.file, size: f.size, pins: 0, doomed: false });
      this.#bytes += f.size;
    }
    await this.#evict();
  }
}
