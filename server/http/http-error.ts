import type { ErrorCode } from '../../shared/errors.ts';

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

  constructor(code: ErrorCode, message: string) {
    super(message);
    this.code = code;
    this.status = STATUS[code];
  }
}
