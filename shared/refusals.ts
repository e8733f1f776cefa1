// Why the server refused something a member did. Clients branch on the code and
// show the message, which names the thing ("the host has locked the drums").

export const REFUSAL_CODES = [
  'read_only',
  'stem_locked',
  'out_of_range',
  'invalid_value',
  'server_managed',
  'host_only',
  'rules_widen',
  'unknown_field',
  'malformed',
  'too_large',
  'rate_limited',
  'missing_history',
  'prompts_closed',
  'blocked_words',
  'too_long',
  'empty',
  'not_found',
  /** A request that does not fit where the exchange is (e.g. a media answer before an offer). */
  'out_of_order',
  /** Something the server could not do just now (the live stream failed to start); try again. */
  'unavailable',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

export interface Refusal {
  code: RefusalCode;
  message: string;
}

export function refusal(code: RefusalCode, message: string): Refusal {
  return { code, message };
}

/** WebSocket close codes of the sync endpoint. 44xx: do not reconnect (y-websocket honours this). */
export const SYNC_CLOSE = {
  /** The room was closed by its host. */
  roomClosed: 4404,
  /** The member's access was revoked, or its token expired while connected. */
  accessRevoked: 4403,
  /** Too many refused or malformed messages: the connection is dropped; it may come back. */
  tooManyRefusals: 4508,
  /** The server is shutting down; reconnect (to another node). */
  shuttingDown: 4503,
  /** A message over the size limit. */
  messageTooLarge: 1009,
} as const;
