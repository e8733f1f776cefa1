// Immutable named objects (renders, release assets, uploads in flight) in one of
// two places: files under DATA_DIR (LocalBlobStore, the embedded default) or an
// S3-compatible bucket (S3BlobStore, with a bounded local cache). Both keep the
// same contract, tested by one suite against both (test/server/blob-store.test.ts).
//
// Keys are written once and never changed in place: `renders/<id>/clip.mp4`,
// `releases/<id>/<version>/stems/bass.wav`. A new version gets a new key, which
// is what lets every node cache an object for as long as it likes.
import type { Readable } from 'node:stream';

export interface BlobInfo {
  key: string;
  /** Bytes. */
  size: number;
}

export interface BlobHead {
  size: number;
  contentType: string | null;
}

/** A local copy of an object: the file stays at `path` until `release()` (S3: pinned in the cache). */
export interface LocalBlob {
  readonly path: string;
  readonly size: number;
  /** Lets the cache evict the file again; idempotent. Local files are not cached, and release does nothing. */
  release(): void;
}

export interface BlobStream {
  stream: Readable;
  /** Bytes in `stream`. */
  length: number;
  /** Bytes of the whole object. */
  size: number;
  contentType: string | null;
}

/** Inclusive byte range, as in an HTTP Range header; `end` past the last byte is cut to it. */
export interface ByteRange {
  start: number;
  end?: number;
}

export interface BlobStore {
  /** `local` (files under DATA_DIR) or `s3`. */
  readonly kind: 'local' | 's3';
  /** Where the objects live, for logs and messages (a folder, or `s3://bucket/prefix` at an endpoint). */
  readonly description: string;
  /** Stores a local file under `key`; the object appears whole or not at all. */
  putFile(key: string, file: string, options: { contentType: string }): Promise<void>;
  putBuffer(key: string, data: Buffer, options: { contentType: string }): Promise<void>;
  /** A local file with the object's bytes (S3: fetched into the cache on first use). Release it when done. */
  localFile(key: string): Promise<LocalBlob>;
  /** Copies the object to `dest` (written to a temp name beside it, then renamed). */
  download(key: string, dest: string): Promise<void>;
  /** The object's bytes, or one range of them (for proxied downloads). */
  read(key: string, range?: ByteRange): Promise<BlobStream>;
  /** Size and type, or null when there is no such object. */
  head(key: string): Promise<BlobHead | null>;
  /** Removes the object; removing one that is not there is no error. */
  delete(key: string): Promise<void>;
  /** Removes every object under `prefix` (a folder: it ends with `/`); answers how many. */
  deletePrefix(prefix: string): Promise<number>;
  /** Every object under `prefix` (a folder ending with `/`, or '' for all), sorted by key. */
  list(prefix: string): Promise<BlobInfo[]>;
  /**
   * A URL that serves the object's bytes without us until `expiresInSec` from now
   * (S3 only: a presigned GET). Null where the store cannot make one (local files):
   * the node proxies the download then.
   */
  presignGet(key: string, expiresInSec: number, options?: PresignOptions): Promise<string | null>;
  /** Throws BlobStoreUnavailableError when the store cannot be used (for /readyz). */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface PresignOptions {
  /** The whole Content-Disposition the download gets (e.g. contentDisposition() of server/clips/download-name.ts). */
  contentDisposition?: string;
  /** Shorthand: `attachment; filename="<fileName>"`. */
  fileName?: string;
  /** The Content-Type the download gets (S3 otherwise answers the one stored). */
  contentType?: string;
}

export class BlobStoreError extends Error {
  override readonly name: string = 'BlobStoreError';
}

export class BlobNotFoundError extends BlobStoreError {
  override readonly name = 'BlobNotFoundError';
  readonly key: string;
  constructor(key: string) {
    super(`no object "${key}" in the object store`);
    this.key = key;
  }
}

/** The store could not be reached, timed out, or refused us; `attempts` says how often we tried. */
export class BlobStoreUnavailableError extends BlobStoreError {
  override readonly name = 'BlobStoreUnavailableError';
  readonly attempts: number;
  constructor(message: string, options: { attempts: number; cause?: unknown }) {
    super(message, { cause: options.cause });
    this.attempts = options.attempts;
  }
}

export class InvalidBlobKeyError extends BlobStoreError {
  override readonly name = 'InvalidBlobKeyError';
}

const SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9._-]*$/;
const MAX_KEY_BYTES = 512;

/**
 * Keys are folders and a name, each of letters, digits, `.`, `_` and `-`, not
 * starting with a dot: the same rules for S3 and files, so that no key can mean
 * a different thing in the two (no `..`, no absolute paths, no empty parts, no
 * backslashes or control characters). Throws InvalidBlobKeyError.
 */
export function validateBlobKey(key: string): string {
  if (typeof key !== 'string' || key.length === 0) throw new InvalidBlobKeyError('an object key must not be empty');
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new InvalidBlobKeyError(`object key "${key.slice(0, 40)}…" is longer than ${MAX_KEY_BYTES} bytes`);
  const parts = key.split('/');
  if (parts.length < 2) throw new InvalidBlobKeyError(`object key "${printable(key)}" needs a folder and a name, like renders/<id>/clip.mp4`);
  for (const part of parts) {
    if (!SEGMENT.test(part)) throw new InvalidBlobKeyError(`object key "${printable(key)}" has a part "${printable(part)}" that is not letters, digits, ".", "_" or "-" (or starts with a dot)`);
  }
  return key;
}

/** A prefix is '' (everything) or a folder: key parts ending with '/'. */
export function validateBlobPrefix(prefix: string, options: { allowEmpty: boolean }): string {
  if (prefix === '') {
    if (options.allowEmpty) return prefix;
    throw new InvalidBlobKeyError('an empty prefix (every object) is not allowed here');
  }
  if (!prefix.endsWith('/')) throw new InvalidBlobKeyError(`prefix "${printable(prefix)}" must be a folder ending with "/"`);
  for (const part of prefix.slice(0, -1).split('/')) {
    if (!SEGMENT.test(part)) throw new InvalidBlobKeyError(`prefix "${printable(prefix)}" has a part "${printable(part)}" that is not letters, digits, ".", "_" or "-" (or starts with a dot)`);
  }
  return prefix;
}

function printable(s: string): string {
  return s.replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`).slice(0, 120);
}
