// The HTTP API as the web app calls it. Errors come back as ApiError with the
// server's own words ({ error: { code, message } }).
import type { InviteCheck, ReleaseListItem, ReleaseView } from '../../shared/api-types.ts';
import type { Role } from '../../shared/roles.ts';
import type { TakeReturn, TakeView } from '../../shared/takes.ts';

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
  userId: string;
  hostToken: string;
  joinUrl: string;
  joinRole: Role;
}

/** A member's fresh token (POST /api/rooms/:roomId/members/me/token). */
export interface RefreshedToken {
  token: string;
  userId: string;
  role: Role;
  name: string;
  expiresInSec: number;
  creator: boolean;
}

export interface JoinedRoom {
  token: string;
  userId: string;
  role: Role;
  name: string;
}

/** A render (clip or loop of the visuals) as the server shows it. */
export interface ClipView {
  clipId: string;
  roomId: string;
  status: 'queued' | 'running' | 'done' | 'failed';
  /** 0..1 */
  progress: number;
  seconds: number;
  createdAt: string;
  /** When done: signed, relative links that expire at `expiresAt` (re-read the clip for fresh ones). */
  downloads?: Record<string, string> & { expiresAt: string };
  error?: string;
}

/** A purchase of the longer version of a clip. */
export interface OrderView {
  orderId: string;
  status: 'payment_pending' | 'paid' | 'declined' | 'fulfilled' | 'failed' | 'refunded';
  amountCents: number;
  currency: string;
  clipId: string;
  createdAt: string;
  declineCode?: string;
  entitlement: { id: string; createdAt: string; revokedAt?: string } | null;
  render: ClipView | null;
}

/** A member's own things in a room (GET /api/rooms/:roomId/members/me/things). */
export interface MyThings {
  roomId: string;
  ended: boolean;
  member: { userId: string; name: string; role: Role };
  /** Clips, loops and stills, newest first; a still's `atMs` is the moment it shows. */
  clips: (ClipView & { kind: 'clip' | 'loop' | 'still'; atMs?: number | null })[];
  orders: OrderView[];
}

async function call<T>(method: string, path: string, body?: unknown, token?: string, idempotencyKey?: string): Promise<{ body: T; response: Response }> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: {
        accept: 'application/json',
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
        ...(token ? { authorization: `Bearer ${token}` } : {}),
        ...(idempotencyKey ? { 'idempotency-key': idempotencyKey } : {}),
      },
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

export interface BroadcastStatus {
  roomId: string;
  enabled: boolean;
  unavailable: string | null;
  live: boolean;
  failure: string | null;
  playlist?: string;
  renditions?: Record<string, string>;
}

export interface RtmpStatus {
  roomId: string;
  /** null: no push. The target is shown without its stream key. */
  push: { status: string; target: string; since: string; attempts: number; lastError: string | null; nextRetryInMs: number | null } | null;
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
  /** Whether a join link would let someone in, checked before they type a name (nothing is used). */
  async checkInvite(roomId: string, invite: string): Promise<InviteCheck> {
    return (await call<InviteCheck>('POST', `/api/rooms/${encodeURIComponent(roomId)}/invites/check`, { invite })).body;
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
  /** A fresh token for this member (the old one may have expired), while the room still lets them in. */
  async refreshToken(roomId: string, token: string): Promise<RefreshedToken> {
    return (await call<RefreshedToken>('POST', `/api/rooms/${encodeURIComponent(roomId)}/members/me/token`, undefined, token)).body;
  },
  /** A new join link, letting in at most `maxUses` people when given. */
  async newLink(roomId: string, hostToken: string, role: Role, maxUses?: number): Promise<{ invite: string; joinUrl: string; maxUses: number | null }> {
    return (await call<{ invite: string; joinUrl: string; maxUses: number | null }>('POST', `/api/rooms/${encodeURIComponent(roomId)}/tokens`, { role, ...(maxUses ? { maxUses } : {}) }, hostToken)).body;
  },
  /** `withdrawLink`: also withdraw the link they joined with (nobody can join through it any more). */
  async removeMember(roomId: string, hostToken: string, userId: string, withdrawLink = false): Promise<{ linkWithdrawn: boolean }> {
    return (await call<{ linkWithdrawn: boolean }>('DELETE', `/api/rooms/${encodeURIComponent(roomId)}/members/${encodeURIComponent(userId)}`, { withdrawLink }, hostToken)).body;
  },
  /** Locks the room to new people (members already in stay), or unlocks it. */
  async setLocked(roomId: string, hostToken: string, locked: boolean): Promise<void> {
    await call('PUT', `/api/rooms/${encodeURIComponent(roomId)}/lock`, { locked }, hostToken);
  },
  /** Takes one prompt out of the room's history, for everyone. */
  async clearPrompt(roomId: string, hostToken: string, entryId: string): Promise<{ visualsReset: boolean }> {
    return (await call<{ visualsReset: boolean }>('DELETE', `/api/rooms/${encodeURIComponent(roomId)}/prompts/${encodeURIComponent(entryId)}`, undefined, hostToken)).body;
  },
  async setRole(roomId: string, hostToken: string, userId: string, role: Role): Promise<void> {
    await call('PUT', `/api/rooms/${encodeURIComponent(roomId)}/members/${encodeURIComponent(userId)}/role`, { role }, hostToken);
  },
  /** Commits the last `seconds` of the room; `key` is made once per attempt, so that a retry never renders twice. */
  async commitClip(roomId: string, token: string, seconds: number, key: string): Promise<ClipView> {
    return (await call<ClipView>('POST', `/api/rooms/${encodeURIComponent(roomId)}/clips`, { seconds }, token, key)).body;
  },
  /** A vertical (1080x1920) version of a finished clip, for phones' short-video apps; rendered like a clip. */
  async commitVertical(clipId: string, token: string, key: string): Promise<ClipView> {
    return (await call<ClipView>('POST', `/api/clips/${encodeURIComponent(clipId)}/vertical`, undefined, token, key)).body;
  },
  /** A seamless loop of the room's visuals (MP4 and GIF). */
  async commitLoop(roomId: string, token: string, seconds: number, key: string): Promise<ClipView> {
    return (await call<ClipView>('POST', `/api/rooms/${encodeURIComponent(roomId)}/loops`, { seconds }, token, key)).body;
  },
  /** A clip's status and fresh links, to members of its room (their token). */
  async clip(clipId: string, token: string): Promise<ClipView> {
    return (await call<ClipView>('GET', `/api/clips/${encodeURIComponent(clipId)}`, undefined, token)).body;
  },
  /** Buys the longer version of a clip; `key` is made once per attempt, so that a retry never charges twice. */
  async placeOrder(clipId: string, card: string, token: string, key: string): Promise<OrderView> {
    return (await call<OrderView>('POST', '/api/orders', { clipId, card }, token, key)).body;
  },
  /** An order, to its buyer only (their member token). */
  async order(orderId: string, token: string): Promise<OrderView> {
    return (await call<OrderView>('GET', `/api/orders/${encodeURIComponent(orderId)}`, undefined, token)).body;
  },
  /** A PNG of the room's visuals now, as a Blob (the call needs the member token, so it cannot be a plain link). */
  async visualsStill(roomId: string, token: string, width = 1280, height = 720): Promise<Blob> {
    let response: Response;
    try {
      response = await fetch(`/api/rooms/${encodeURIComponent(roomId)}/visuals.png?width=${width}&height=${height}`, { headers: { authorization: `Bearer ${token}` } });
    } catch {
      throw new ApiError(0, 'network', 'the server could not be reached; check your connection and try again');
    }
    if (!response.ok) {
      const err = ((await response.json().catch(() => null)) as { error?: { code?: string; message?: string } } | null)?.error;
      throw new ApiError(response.status, err?.code ?? 'http_error', err?.message ?? `the server answered ${response.status}`);
    }
    return response.blob();
  },
  /** The room's takes, oldest first, and how many a room keeps. */
  async takes(roomId: string, token: string): Promise<{ takes: TakeView[]; max: number }> {
    return (await call<{ takes: TakeView[]; max: number }>('GET', `/api/rooms/${encodeURIComponent(roomId)}/takes`, undefined, token)).body;
  },
  async saveTake(roomId: string, name: string, token: string): Promise<TakeView> {
    return (await call<TakeView>('POST', `/api/rooms/${encodeURIComponent(roomId)}/takes`, { name }, token)).body;
  },
  /** Returns the room to a take, for everyone; says what the room's rules of now changed in it. */
  async returnToTake(roomId: string, takeId: string, token: string): Promise<TakeReturn> {
    return (await call<TakeReturn>('POST', `/api/rooms/${encodeURIComponent(roomId)}/takes/${encodeURIComponent(takeId)}/return`, undefined, token)).body;
  },
  /** What this member made and bought in the room, with fresh links (also after the room ended). */
  async myThings(roomId: string, token: string): Promise<MyThings> {
    return (await call<MyThings>('GET', `/api/rooms/${encodeURIComponent(roomId)}/members/me/things`, undefined, token)).body;
  },
  /** Whether the room is in broadcast mode, and (to members) its playlists' addresses with the listen key. */
  async broadcast(roomId: string, token: string): Promise<BroadcastStatus> {
    return (await call<BroadcastStatus>('GET', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, undefined, token)).body;
  },
  /** Host: the stage stays on WebRTC, listeners move to the room's HLS (or back). */
  async setBroadcast(roomId: string, hostToken: string, enabled: boolean): Promise<BroadcastStatus> {
    return (await call<BroadcastStatus>('PUT', `/api/rooms/${encodeURIComponent(roomId)}/broadcast`, { enabled }, hostToken)).body;
  },
  /** Host: the room's push to a streaming platform (RTMP), if one runs. */
  async rtmp(roomId: string, hostToken: string): Promise<RtmpStatus> {
    return (await call<RtmpStatus>('GET', `/api/rooms/${encodeURIComponent(roomId)}/rtmp`, undefined, hostToken)).body;
  },
  async startRtmp(roomId: string, hostToken: string, url: string, key: string): Promise<RtmpStatus> {
    return (await call<RtmpStatus>('PUT', `/api/rooms/${encodeURIComponent(roomId)}/rtmp`, { url, key }, hostToken)).body;
  },
  async stopRtmp(roomId: string, hostToken: string): Promise<RtmpStatus> {
    return (await call<RtmpStatus>('DELETE', `/api/rooms/${encodeURIComponent(roomId)}/rtmp`, undefined, hostToken)).body;
  },
  async endRoom(roomId: string, hostToken: string): Promise<void> {
    await call('DELETE', `/api/rooms/${encodeURIComponent(roomId)}`, undefined, hostToken);
  },
};
