// Who this browser is in a room. Each tab keeps its own member (sessionStorage), so
// that a reload stays the same member and two tabs can be two members; the browser
// keeps every member it has been in each room (localStorage), so that a new tab, or
// the room's plain address opened again (a closed tab, a restarted browser), comes
// back as the same member without joining again: the room's creator first, then a
// host, then whoever was here last. Tokens are refreshed through
// POST /api/rooms/:roomId/members/me/token and saved in both places.
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
  /** When this browser last saved it (ms since the epoch). */
  savedAtMs?: number;
}

const tabKey = (roomId: string) => `remixroom.member.${roomId}`;
const browserKey = (roomId: string) => `remixroom.members.${roomId}`;
/** Members of one room this browser keeps at most (the oldest go first). */
const BROWSER_KEEP = 8;

export function saveMembership(m: Membership): void {
  m.savedAtMs = Date.now();
  try {
    sessionStorage.setItem(tabKey(m.roomId), JSON.stringify(m));
  } catch {
    // Private modes may refuse storage: the membership then lasts as long as the page.
  }
  try {
    const others = browserMemberships(m.roomId).filter((x) => x.userId !== m.userId);
    const kept = [m, ...others].sort((a, b) => (b.savedAtMs ?? 0) - (a.savedAtMs ?? 0)).slice(0, BROWSER_KEEP);
    localStorage.setItem(browserKey(m.roomId), JSON.stringify(kept));
  } catch {
    // Not kept for other tabs; this one still has it.
  }
}

/** This tab's member of the room, if it has one. */
export function loadMembership(roomId: string): Membership | null {
  try {
    const raw = sessionStorage.getItem(tabKey(roomId));
    return raw ? membershipOf(JSON.parse(raw)) : null;
  } catch {
    return null;
  }
}

/** The member this browser comes back as in the room: its creator, then a host, then the latest. */
export function knownMembership(roomId: string): Membership | null {
  const rank = (m: Membership) => (m.creator ? 0 : m.role === 'host' ? 1 : 2);
  return browserMemberships(roomId).sort((a, b) => rank(a) - rank(b) || (b.savedAtMs ?? 0) - (a.savedAtMs ?? 0))[0] ?? null;
}

function browserMemberships(roomId: string): Membership[] {
  try {
    const list = JSON.parse(localStorage.getItem(browserKey(roomId)) ?? '[]') as unknown;
    return Array.isArray(list) ? list.map(membershipOf).filter((m): m is Membership => m !== null && m.roomId === roomId) : [];
  } catch {
    return [];
  }
}

function membershipOf(raw: unknown): Membership | null {
  const m = raw as Partial<Membership> | null;
  if (!m || typeof m.token !== 'string' || typeof m.userId !== 'string' || typeof m.name !== 'string' || typeof m.role !== 'string' || typeof m.roomId !== 'string') return null;
  return m as Membership;
}

/** Forgets the member (a host removed them, the room is gone): in this tab and in the browser. */
export function forgetMembership(roomId: string, userId?: string): void {
  try {
    const tab = loadMembership(roomId);
    if (!userId || tab?.userId === userId) sessionStorage.removeItem(tabKey(roomId));
    const left = userId ? browserMemberships(roomId).filter((m) => m.userId !== userId) : [];
    if (left.length) localStorage.setItem(browserKey(roomId), JSON.stringify(left));
    else localStorage.removeItem(browserKey(roomId));
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
 * A fresh token for the member (kept in place in `m`, in this tab and in the browser), or why the member may
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
