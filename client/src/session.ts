// Who this tab is in a room: kept in sessionStorage, so that a reload stays in
// the room and two tabs of one browser can be two different members.
import type { Role } from '../../shared/roles.ts';

export interface Membership {
  roomId: string;
  token: string;
  userId: string;
  name: string;
  /** The role the token was issued with (the room's rules may override it). */
  role: Role;
  /** For the host: the link to share. */
  joinUrl?: string;
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
