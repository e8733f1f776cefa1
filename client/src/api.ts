// The HTTP API as the web app calls it. Errors come back as ApiError with the
// server's own words ({ error: { code, message } }).
import type { ReleaseListItem, ReleaseView } from '../../shared/api-types.ts';
import type { Role } from '../../shared/roles.ts';

export class ApiError extends Error {
  override readonly name = 'ApiError';
  readonly status: number;
  readonly code: string;
  constructor(status: number, code: string, message: string) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export interface RoomInfo {
  roomId: string;
  releaseId: string;
  createdAt: string | number;
  ended: boolean;
  memberCount: number;
  live: boolean;
  listeners: number;
  streamAdapter: string | null;
}

export interface OpenedRoom {
  roomId: string;
  hostToken: string;
  joinUrl: string;
  joinRole: Role;
}

export interface JoinedRoom {
  token: string;
  userId: string;
  role: Role;
  name: string;
}

async function call<T>(method: string, path: string, body?: unknown, token?: string): Promise<{ body: T; response: Response }> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: { accept: 'application/json', ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...(token ? { authorization: `Bearer ${token}` } : {}) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch {
    throw new ApiError(0, 'network', 'the server could not be reached; check your connection and try again');
  }
  const json = (await response.json().catch(() => null)) as unknown;
  if (!response.ok) {
    const err = (json as { error?: { code?: string; message?: string } } | null)?.error;
    throw new ApiError(response.status, err?.code ?? 'http_error', err?.message ?? `the server answered ${response.status}`);
  }
  return { body: json as T, response };
}

export const api = {
  async releases(): Promise<ReleaseListItem[]> {
    return (await call<{ releases: ReleaseListItem[] }>('GET', '/api/releases')).body.releases;
  },
  async release(id: string): Promise<ReleaseView> {
    return (await call<ReleaseView>('GET', `/api/releases/${encodeURIComponent(id)}`)).body;
  },
  async openRoom(releaseId: string, hostName: string, joinRole: 'remixer' | 'listener'): Promise<OpenedRoom> {
    return (await call<OpenedRoom>('POST', '/api/rooms', { releaseId, hostName, joinRole })).body;
  },
  async join(roomId: string, invite: string, name: string): Promise<JoinedRoom> {
    return (await call<JoinedRoom>('POST', `/api/rooms/${encodeURIComponent(roomId)}/join`, { invite, name })).body;
  },
  /** The room's public state, and the server's clock as its Date header gives it (ms, to the second). */
  async room(roomId: string): Promise<{ info: RoomInfo; serverDateMs: number | null; sentMs: number; receivedMs: number }> {
    const sentMs = Date.now();
    const { body, response } = await call<RoomInfo>('GET', `/api/rooms/${encodeURIComponent(roomId)}`);
    const receivedMs = Date.now();
    const date = response.headers.get('date');
    return { info: body, serverDateMs: date ? Date.parse(date) : null, sentMs, receivedMs };
  },
  async invite(roomId: string, hostToken: string, role: Role): Promise<{ invite: string; joinUrl: string }> {
    return (await call<{ invite: string; joinUrl: string }>('POST', `/api/rooms/${encodeURIComponent(roomId)}/tokens`, { role }, hostToken)).body;
  },
  async setRole(roomId: string, hostToken: string, userId: string, role: Role): Promise<void> {
    await call('PUT', `/api/rooms/${encodeURIComponent(roomId)}/members/${encodeURIComponent(userId)}/role`, { role }, hostToken);
  },
  async endRoom(roomId: string, hostToken: string): Promise<void> {
    await call('DELETE', `/api/rooms/${encodeURIComponent(roomId)}`, undefined, hostToken);
  },
};
