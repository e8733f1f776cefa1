// Who this tab is in a room: kept in sessionStorage, so that a reload stays in
// the room and two tabs of one browser can be two different members.
import type { Role } from '../../shared/roles.ts';
import { api, ApiError } from './api.ts';

export interface Membership {
  roomId: string;
  token: string;
  userId: string;
  name: string;
  /** The role the token was issued with (the room's rules may override it). */
  role: Role;
  /** For the host: the link to share. */
  joinUrl?: string;
  /** Whether this member opened the room (only they can end it). */
  creator?: boolean;
}

const key = (roomId: string) => `remixroom.member.${roomId}`;

export function saveMembership(m: Membership): void {
  try {
    sessionStorage.setItem(key(m.roomId), JSON.stringify(m));
  } catch {
    // Private modes may refuse storage: the membership then lasts as long as the page.
  }
}

export function loadMembership(roomId: string): Membership | null {
  try {
    const raw = sessionStorage.getItem(key(roomId));
    if (!raw) return null;
    const m = JSON.parse(raw) as Partial<Membership>;
    if (typeof m.token !== 'string' || typeof m.userId !== 'string' || typeof m.name !== 'string' || typeof m.role !== 'string') return null;
    return m as Membership;
  } catch {
    return null;
  }
}

export function forgetMembership(roomId: string): void {
  try {
    sessionStorage.removeItem(key(roomId));
  } catch {
    // Nothing to forget.
  }
}

/** The claims inside a room token ("rr1.<base64url(JSON)>.<mac>"), read without checking: the server checks. */
export function tokenClaims(token: string): { sub: string; name: string; role: Role } | null {
  const payload = token.split('.')[1];
  if (!payload) return null;
  try {
    const json = atob(payload.replace(/-/g, '+').replace(/_/g, '/'));
    const bytes = Uint8Array.from(json, (c) => c.charCodeAt(0));
    return JSON.parse(new TextDecoder().decode(bytes)) as { sub: string; name: string; role: Role };
  } catch {
    return null;
  }
}

/** When a token expires (ms since the epoch), read from its claims; null when unreadable. */
export function tokenExpiryMs(token: string): number | null {
  const exp = (tokenClaims(token) as { exp?: unknown } | null)?.exp;
  return typeof exp === 'number' ? exp * 1000 : null;
}

/**
 * A fresh token for the member (kept in place in `m`, and in the session), or why the member may
 * not come back: a refusal by the server (removed, access over, room ended) is for good; a network
 * problem or a limit is not (the caller tries again).
 */
export async function refreshMembership(m: Membership): Promise<{ token: string } | { refused: string }> {
  try {
    const r = await api.refreshToken(m.roomId, m.token);
    m.token = r.token;
    m.role = r.role;
    m.creator = r.creator;
    saveMembership(m);
    return { token: r.token };
  } catch (err) {
    if (err instanceof ApiError && (err.status === 401 || err.status === 403 || err.status === 404 || err.status === 410)) {
      return { refused: `Your access to this room has ended: ${err.message}.` };
    }
    throw err;
  }
}
