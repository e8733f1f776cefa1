// Objects in an S3-compatible bucket (AWS S3, MinIO, Ceph radosgw, R2), through
// @aws-sdk/client-s3. Credentials and region come from the SDK's standard sources
// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, profiles, instance roles)
// unless passed in (tests). Reads for local use go through a BlobCache.
//
// Every call has a time limit (connecting, and waiting for an answer; a body that
// stalls is cut by the idle-socket limit) and the SDK's retries with exponential
// backoff and jitter (`maxAttempts`); after the last attempt the error is a
// BlobStoreUnavailableError naming the endpoint, the bucket, the operation and
// the attempts, not the SDK's own error.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import { Readable } from 'node:stream';
import {
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import type { Logger } from '../logger.ts';
import { streamToFileAtomically } from './blob-local.ts';
import type { BlobCache } from './blob-cache.ts';
import {
  BlobNotFoundError,
  BlobStoreUnavailableError,
  validateBlobKey,
  validateBlobPrefix,
  type BlobHead,
  type BlobInfo,
  type BlobStore,
  type BlobStream,
  type ByteRange,
  type LocalBlob,
  type PresignOptions,
} from './blob-store.ts';

/** What the store reports of each call (the process's metrics implement it). */
export interface S3Observer {
  /** One call (all its attempts) took `seconds`; `errorCode` is null when it succeeded. */
  request(op: string, seconds: number, errorCode: string | null): void;
}

export interface S3BlobStoreOptions {
  bucket: string;
  /** Prepended to every key (several installations in one bucket); '' or a folder ending with '/'. */
  prefix?: string;
  /** For a store other than AWS; sets path-style addressing (bucket in the path, not the host name). */
  endpoint?: string | null;
  /** Default: the SDK's (AWS_REGION, profile), or us-east-1 when an endpoint is set and none is. */
  region?: string;
  /** Default: the SDK's chain (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile, role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  cache: BlobCache;
  log: Logger;
  observer?: S3Observer;
  /** Time to open a connection. Default 3 s. */
  connectTimeoutMs?: number;
  /** Time for an answer to start (headers), and most time a body may stall. Default 30 s. */
  requestTimeoutMs?: number;
  /** Attempts per call, backing off exponentially between them. Default 4. */
  maxAttempts?: number;
  /** Files larger than this go up in parts of this size (at least 5 MiB). Default 8 MiB. */
  partSizeBytes?: number;
}

const MIN_PART_BYTES = 5 * 1024 * 1024;

export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly prefix: string;
  readonly endpoint: string | null;
  readonly cache: BlobCache;
  readonly #client: S3Client;
  readonly #log: Logger;
  readonly #observer: S3Observer | null;
  readonly #maxAttempts: number;
  readonly #partSize: number;
  #closed = false;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = options.bucket;
    this.prefix = validateBlobPrefix(options.prefix ?? '', { allowEmpty: true });
    this.endpoint = options.endpoint ?? null;
    this.cache = options.cache;
    this.#log = options.log;
    this.#observer = options.observer ?? null;
    this.#maxAttempts = options.maxAttempts ?? 4;
    this.#partSize = Math.max(MIN_PART_BYTES, options.partSizeBytes ?? 8 * 1024 * 1024);
    const requestTimeout = options.requestTimeoutMs ?? 30_000;
    const config: S3ClientConfig = {
      maxAttempts: this.#maxAttempts,
      requestHandler: {
        connectionTimeout: options.connectTimeoutMs ?? 3000,
        requestTimeout,
        // Without it a request past its time limit is only logged as a warning.
        throwOnRequestTimeout: true,
        // Cuts a body that stops arriving (a store that hangs mid-download).
        socketTimeout: requestTimeout,
      },
      // Checksums only where S3 requires them: several S3-compatible stores refuse the
      // newer default (CRC trailers on every upload) or a checksum-mode parameter.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    };
    if (options.endpoint) {
      config.endpoint = options.endpoint;
      config.forcePathStyle = true;
    }
    const region = options.region ?? (options.endpoint ? 'us-east-1' : undefined);
    if (region) config.region = region;
    if (options.credentials) config.credentials = options.credentials;
    this.#client = new S3Client(config);
  }

  get description(): string {
    return `s3://${this.bucket}/${this.prefix}${this.endpoint ? ` at ${this.endpoint}` : ''}`;
  }

  async putFile(key: string, file: string, options: { contentType: string }): Promise<void> {
    const name = this.#name(key);
    const { size } = await fsp.stat(file);
    if (size <= this.#partSize) {
      // One request with the bytes in memory, so the SDK can retry it (a stream body it cannot).
      await this.putBuffer(key, await fsp.readFile(file), options);
      return;
    }
    // Multipart: each part is its own request, retried by itself; a failed upload is aborted (its parts removed).
    await this.#replacing(key, () => this.#call('multipart', key, async () => {
      const upload = new Upload({
        client: this.#client,
        params: { Bucket: this.bucket, Key: name, Body: fs.createReadStream(file), ContentType: options.contentType },
        partSize: this.#partSize,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done();
    }));
    // The ETag of a completed multipart upload can come back empty (Ceph); HeadObject tells what was stored.
    const head = await this.head(key);
    if (!head || head.size !== size) {
      throw new BlobStoreUnavailableError(`the object store ${this.description} holds ${head ? `${head.size} bytes` : 'nothing'} for "${key}" after uploading ${size} bytes`, { attempts: 1 });
    }
  }

  async putBuffer(key: string, data: Buffer, options: { contentType: string }): Promise<void> {
    const name = this.#name(key);
    // The store checks the bytes it received against this (checksums are otherwise off, see the constructor).
    const md5 = crypto.createHash('md5').update(data).digest('base64');
    await this.#replacing(key, () => this.#call('put', key, () => this.#client.send(new PutObjectCommand({ Bucket: this.bucket, Key: name, Body: data, ContentType: options.contentType, ContentMD5: md5 }))));
  }

  /**
   * A put replaces the object at once (S3 swaps it whole), but this node's cache would go on
   * serving the old bytes: drop its copy, whether the put went through or not (one that timed out
   * may have). Other nodes' caches are not reached: keys are written once, except the files of a
   * render run again before it is marked done (a retry; or a renderer that lost its job, which
   * checks its claim right before it commits), which no download link serves yet.
   */
  async #replacing(key: string, put: () => Promise<unknown>): Promise<void> {
    try {
      await put();
    } finally {
      await this.cache.forget(key);
    }
  }

  async localFile(key: string): Promise<LocalBlob> {
    this.#name(key);
    return this.cache.get(key, (tmp) => this.#downloadTo(key, tmp));
  }

  async download(key: string, dest: string): Promise<void> {
    const blob = await this.localFile(key);
    const tmp = `${dest}.${crypto.randomBytes(6).toString('hex')}.part`;
    try {
      await fsp.copyFile(blob.path, tmp);
      await fsp.rename(tmp, dest);
    } catch (err) {
      await fsp.rm(tmp, { force: true });
      throw err;
    } finally {
      blob.release();
    }
  }

  async read(key: string, range?: ByteRange): Promise<BlobStream> {
    const name = this.#name(key);
    const header = range ? `bytes=${range.start}-${range.end ?? ''}` : undefined;
    const res = await this.#call('get', key, () => this.#client.send(new GetObjectCommand({ Bucket: this.bucket, Key: name, Range: header })));
    const length = res.ContentLength ?? 0;
    // Content-Range: bytes 0-99/1234 names the whole size.
    const total = res.ContentRange ? Number(res.ContentRange.split('/')[1]) : length;
    return { stream: res.Body as Readable, length, size: Number.isFinite(total) ? total : length, contentType: res.ContentType ?? null };
  }

  async head(key: string): Promise<BlobHead | null> {
    const name = this.#name(key);
    try {
      const res = await this.#call('head', key, () => this.#client.send(new HeadObjectCommand({ Bucket: this.bucket, Key: name })));
      return { size: res.ContentLength ?? 0, contentType: res.ContentType ?? null };
    } catch (err) {
      if (err instanceof BlobNotFoundError) return null;
      throw err;
    }
  }

  async delete(key: string): Promise<void> {
    const name = this.#name(key);
    await this.#call('delete', key, () => this.#client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key: name })));
    await this.cache.forget(key);
  }

  async deletePrefix(prefix: string): Promise<number> {
    validateBlobPrefix(prefix, { allowEmpty: false });
    const keys = (await this.list(prefix)).map((b) => b.key);
    // DeleteObjects takes at most 1,000 keys a request.
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      const res = await this.#call('delete', prefix, () =>
        this.#client.send(new DeleteObjectsCommand({ Bucket: this.bucket, Delete: { Objects: batch.map((k) => ({ Key: this.prefix + k })), Quiet: true } })),
      );
      const failed = res.Errors ?? [];
      if (failed.length > 0) {
        throw new BlobStoreUnavailableError(`the object store ${this.description} did not delete ${failed.length} objects under "${prefix}" (first: ${failed[0]!.Key}: ${failed[0]!.Code ?? ''} ${failed[0]!.Message ?? ''})`, { attempts: 1 });
      }
    }
    for (const k of keys) await this.cache.forget(k);
    return keys.length;
  }

  async list(prefix: string): Promise<BlobInfo[]> {
    validateBlobPrefix(prefix, { allowEmpty: true });
    const out: BlobInfo[] = [];
    let token: string | undefined;
    do {
      const res = await this.#call('list', prefix, () =>
        this.#client.send(new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix + prefix, ContinuationToken: token })),
      );
      for (const o of res.Contents ?? []) {
        if (o.Key?.startsWith(this.prefix)) out.push({ key: o.Key.slice(this.prefix.length), size: o.Size ?? 0 });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  async presignGet(key: string, expiresInSec: number, options: PresignOptions = {}): Promise<string> {
    const name = this.#name(key);
    const disposition = options.contentDisposition ?? (options.fileName ? `attachment; filename="${options.fileName.replace(/["\\\r\n]/g, '_')}"` : undefined);
    // Signing is local: no request, nothing to time or retry.
    return getSignedUrl(this.#client, new GetObjectCommand({ Bucket: this.bucket, Key: name, ResponseContentDisposition: disposition, ResponseContentType: options.contentType }), { expiresIn: expiresInSec });
  }

  async ping(): Promise<void> {
    await this.#call('head-bucket', '', () => this.#client.send(new HeadBucketCommand({ Bucket: this.bucket })));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#client.destroy();
  }

  #name(key: string): string {
    return this.prefix + validateBlobKey(key);
  }

  async #downloadTo(key: string, file: string): Promise<void> {
    const { stream } = await this.read(key);
    const started = process.hrtime.bigint();
    try {
      await streamToFileAtomically(stream, file);
      this.#observe('get-body', started, null);
    } catch (err) {
      this.#observe('get-body', started, codeOf(err));
      throw new BlobStoreUnavailableError(`the download of "${key}" from the object store ${this.description} broke off: ${(err as Error).message}`, { attempts: 1, cause: err });
    }
  }

  /** Runs one SDK call with timing, metrics, and errors a person understands. */
  async #call<T>(op: string, key: string, send: () => Promise<T>): Promise<T> {
    const started = process.hrtime.bigint();
    try {
      const out = await send();
      this.#observe(op, started, null);
      return out;
    } catch (err) {
      let code = codeOf(err);
      // A bucket's HEAD answers a bare 404 when the bucket is missing.
      if (op === 'head-bucket' && code === 'NotFound') code = 'NoSuchBucket';
      if (code === 'NotFound' || code === 'NoSuchKey') {
        this.#observe(op, started, null);
        throw new BlobNotFoundError(key);
      }
      if (code === 'InvalidRange') {
        this.#observe(op, started, null);
        throw new RangeError(`the range asked for is outside "${key}"`);
      }
      this.#observe(op, started, code);
      const attempts = (err as { $metadata?: { attempts?: number } }).$metadata?.attempts ?? 1;
      const what = key ? `${op} of "${key}"` : op;
      const message = `the object store ${this.description} failed ${what} after ${attempts} attempt${attempts === 1 ? '' : 's'}: ${reasonOf(err, code)}`;
      this.#log.warn({ op, key, code, attempts }, 'object store call failed');
      throw new BlobStoreUnavailableError(message, { attempts, cause: err });
    }
  }

  #observe(op: string, started: bigint, code: string | null): void {
    this.#observer?.request(op, Number(process.hrtime.bigint() - started) / 1e9, code);
  }
}

function codeOf(err: unknown): string {
  const e = err as { name?: string; code?: string; Code?: string; $metadata?: { httpStatusCode?: number } };
  if (e.Code) return e.Code;
  // Node's network errors (ECONNREFUSED, ETIMEDOUT, …) before the SDK's names.
  if (e.code && /^E[A-Z]+$/.test(e.code)) return e.code;
  if (e.name && !['Error', 'UnknownError', 'Unknown'].includes(e.name)) return e.name;
  // HEAD answers carry no body, hence no error code: name them by status.
  const status = e.$metadata?.httpStatusCode;
  if (status === 404) return 'NotFound';
  if (status === 403 || status === 401) return 'Forbidden';
  return status ? `HTTP${status}` : 'Error';
}

function reasonOf(err: unknown, code: string): string {
  const e = err as Error & { $metadata?: { httpStatusCode?: number } };
  if (code === 'ECONNREFUSED') return 'connection refused (is the store running at that address?)';
  if (code === 'TimeoutError' || code === 'ETIMEDOUT') return `no answer in time (${e.message})`;
  if (['AccessDenied', 'InvalidAccessKeyId', 'SignatureDoesNotMatch', 'Forbidden'].includes(code)) return `the store refused our credentials (${code}); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY`;
  if (code === 'NoSuchBucket') return 'no such bucket; check S3_BUCKET (and S3_ENDPOINT)';
  const status = e.$metadata?.httpStatusCode;
  return `${code}${status ? ` (HTTP ${status})` : ''}${e.message && e.message !== code && e.message !== 'UnknownError' ? `: ${e.message}` : ''}`;
}
