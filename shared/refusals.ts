// Why the server refused something a member did. Clients branch on the code and
// show the message, which names the thing ("the host has locked the drums").
import { limitMessage, type LimitName } from './limits.ts';

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
  /** The room is in broadcast mode: a listener hears it through its HLS, not WebRTC (the stage is for hosts and remixers). */
  'broadcast',
] as const;
export type RefusalCode = (typeof REFUSAL_CODES)[number];

export interface Refusal {
  code: RefusalCode;
  message: string;
  /** For a limit: which one (shared/limits.ts). */
  limit?: LimitName;
  /** For a limit: when trying again would succeed. */
  retryAfterMs?: number;
}

export function refusal(code: RefusalCode, message: string): Refusal {
  return { code, message };
}

/** A refusal by a limit: names it and says when to try again (null: not by waiting). */
export function limitRefusal(limit: LimitName, retryAfterMs: number | null): Refusal {
  return { code: 'rate_limited', message: limitMessage(limit, retryAfterMs), limit, ...(retryAfterMs !== null ? { retryAfterMs: Math.ceil(retryAfterMs) } : {}) };
}

/** WebSocket close codes of the sync endpoint. 44xx: do not reconnect (y-websocket honours this). */
export const SYNC_CLOSE = {
  /** The room was closed by its host. */
  roomClosed: 4404,
  /** The member was removed from the room, or may not come back. */
  accessRevoked: 4403,
  /** The member's token expired while connected: refresh it (POST /api/rooms/:roomId/members/me/token) and connect again. */
  tokenExpired: 4401,
  /** Too many refused or malformed messages: the connection is dropped; it may come back. */
  tooManyRefusals: 4508,
  /** The server is shutting down; reconnect (to another node). */
  shuttingDown: 4503,
  /** A message over the size limit. */
  messageTooLarge: 1009,
} as const;
