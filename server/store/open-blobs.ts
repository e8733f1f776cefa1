// Picks where a process keeps its objects: files under DATA_DIR (the embedded
// default), or the S3 bucket of S3_BUCKET with a local cache under DATA_DIR.
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { BlobCache } from './blob-cache.ts';
import { LocalBlobStore } from './blob-local.ts';
import { S3BlobStore, type S3Observer } from './blob-s3.ts';
import type { BlobStore } from './blob-store.ts';
import type { DataLayout } from './paths.ts';

/** The top-level folders of object keys; under DATA_DIR these sit beside the database, which no key may reach. */
export const BLOB_FOLDERS = ['releases', 'renders', 'uploads', 'visual-models', 'visual-textures'] as const;

/** Opening the object store failed; the message is one line a person can act on. */
export class BlobStoreOpenError extends Error {
  override readonly name = 'BlobStoreOpenError';
}

/** Where the S3 store's local cache lives under DATA_DIR. */
export function blobCacheDir(layout: DataLayout): string {
  return path.join(layout.root, 'blob-cache');
}

/**
 * The process's blob store. With S3 it checks the bucket first (HeadBucket) and
 * throws BlobStoreOpenError naming the endpoint and the bucket when it cannot be used.
 */
export async function openBlobStore(config: Pick<Config, 's3'>, layout: DataLayout, log: Logger, metrics: Pick<Metrics, 's3Duration' | 's3Errors'> | null): Promise<BlobStore> {
  const s3 = config.s3;
  if (!s3) return new LocalBlobStore({ root: layout.root, tmpDir: layout.tmpDir, folders: BLOB_FOLDERS });
  const cache = await BlobCache.create({ dir: blobCacheDir(layout), maxBytes: s3.cacheMb * 1024 * 1024, log: log.child({ component: 'blob-cache' }) });
  const observer: S3Observer | undefined = metrics
    ? {
        request(op, seconds, errorCode) {
          metrics.s3Duration.observe({ op }, seconds);
          if (errorCode) metrics.s3Errors.inc({ op, code: errorCode });
        },
      }
    : undefined;
  const store = new S3BlobStore({
    bucket: s3.bucket,
    prefix: s3.prefix,
    endpoint: s3.endpoint,
    cache,
    log: log.child({ component: 'blobs' }),
    ...(observer ? { observer } : {}),
    ...(s3.credentials ? { credentials: s3.credentials } : {}),
    ...(s3.region ? { region: s3.region } : {}),
  });
  try {
    await store.ping();
  } catch (err) {
    await store.close();
    const where = `bucket "${s3.bucket}" at ${s3.endpoint ?? 'AWS S3'}`;
    throw new BlobStoreOpenError(`cannot use the object store (${where}): ${reasonOf(err)}; check S3_BUCKET, S3_ENDPOINT and the AWS_* credentials`);
  }
  log.info({ objects: store.description, cacheMb: s3.cacheMb }, 'objects in S3');
  return store;
}

function reasonOf(err: unknown): string {
  const message = (err as Error).message;
  // The store's own message repeats the place; keep what went wrong.
  const i = message.indexOf(': ');
  return i >= 0 && message.startsWith('the object store') ? message.slice(i + 2) : message;
}
