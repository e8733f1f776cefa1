// Error codes that cross the wire. Clients show `message`; they branch on `code`.

export const ERROR_CODES = [
  'bad_request',
  'invalid_body',
  'unauthorized',
  'forbidden',
  'not_found',
  'conflict',
  'payload_too_large',
  'rate_limited',
  'not_ready',
  'internal',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** The body of every error answer of the HTTP API. */
export interface ApiErrorBody {
  error: {
    code: ErrorCode;
    message: string;
    /** For a refusal by a limit: which one (shared/limits.ts). */
    limit?: string;
    /** For a refusal by a limit or a full queue: seconds to wait (also the Retry-After header). */
    retryAfterSec?: number;
  };
}
