import type { ErrorCode } from '../../shared/errors.ts';
import { StoreUnavailableError } from '../store/pg-errors.ts';
import { BlobNotFoundError, BlobStoreUnavailableError, InvalidBlobKeyError } from '../store/blob-store.ts';
import { limitMessage, retryAfterSec, type LimitName } from '../../shared/limits.ts';

const STATUS: Record<ErrorCode, number> = {
  bad_request: 400,
  invalid_body: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  payload_too_large: 413,
  rate_limited: 429,
  not_ready: 503,
  internal: 500,
};

/** An error meant for the caller: its message is shown to them as is. */
export class HttpError extends Error {
  override readonly name = 'HttpError';
  readonly code: ErrorCode;
  readonly status: number;
  /** Sent as Retry-After (whole seconds) and in the body. */
  readonly retryAfterSec: number | null;
  /** The limit that refused the request (shared/limits.ts). */
  readonly limit: LimitName | null;

  constructor(code: ErrorCode, message: string, extra: { retryAfterMs?: number | null; limit?: LimitName; status?: 429 | 503 } = {}) {
    super(message);
    this.code = code;
    this.status = extra.status ?? STATUS[code];
    this.retryAfterSec = extra.retryAfterMs === undefined || extra.retryAfterMs === null ? null : retryAfterSec(extra.retryAfterMs);
    this.limit = extra.limit ?? null;
  }

  /** 429 naming the limit and when to try again (503 for a process-wide queue that is full). */
  static limited(limit: LimitName, retryAfterMs: number | null, status: 429 | 503 = 429): HttpError {
    return new HttpError(status === 503 ? 'not_ready' : 'rate_limited', limitMessage(limit, retryAfterMs), { retryAfterMs, limit, status });
  }
}

/** The message a caller gets while the shared database cannot be reached (rooms already open keep playing). */
export const STORE_UNAVAILABLE_MESSAGE = 'the database is unreachable; try again shortly';

/** A store that cannot be reached becomes 503 with a reason and Retry-After, not 500; any other error passes as it is. */
export const OBJECTS_UNAVAILABLE_MESSAGE = 'the file store is unreachable; try again shortly';

/** An engine that is away is a 503 with Retry-After (the database, the object store); an object that is not there, a 404. */
export function storeErrorToHttp(err: unknown): unknown {
  if (err instanceof StoreUnavailableError) return new HttpError('not_ready', STORE_UNAVAILABLE_MESSAGE, { status: 503, retryAfterMs: 5000 });
  if (err instanceof BlobStoreUnavailableError) return new HttpError('not_ready', OBJECTS_UNAVAILABLE_MESSAGE, { status: 503, retryAfterMs: 5000 });
  if (err instanceof BlobNotFoundError || err instanceof InvalidBlobKeyError) return new HttpError('not_found', 'no such file');
  return err;
}
