// Real clients of a room: stock y-websocket providers and raw WebSockets, against a real server.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';
import * as decoding from 'lib0/decoding';
import { io, type Socket } from 'socket.io-client';
import type { Refusal } from '../../shared/refusals.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';

export interface OpenedRoom {
  roomId: string;
  hostToken: string;
  joinUrl: string;
}

export async function api<T>(
  base: string,
  method: string,
  path: string,
  body?: unknown,
  token?: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: T; headers: Headers }> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: (await res.json()) as T, headers: res.headers };
}

let strangers = 0;
/**
 * A new address for a stranger: the server trusts loopback proxies, so a request from a test that
 * sends it as X-Forwarded-For counts as coming from there (every person has an address of their own).
 */
export function strangerAddress(): string {
  const n = ++strangers;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
}

/** Headers that make a request come from `address` (see strangerAddress). */
export function from(address: string): Record<string, string> {
  return { 'x-forwarded-for': address };
}

export async function openRoom(base: string, body: Record<string, unknown> = {}): Promise<OpenedRoom> {
  const r = await api<OpenedRoom>(base, 'POST', '/api/rooms', { releaseId: DEMO_RELEASE_ID, ...body });
  if (r.status !== 201) throw new Error(`opening a room failed: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** A member token through the room's own invite flow, joined from an address of the member's own. */
export async function joinAs(
  base: string,
  room: OpenedRoom,
  role: 'host' | 'remixer' | 'listener',
  name: string,
  address = strangerAddress(),
): Promise<{ token: string; userId: string; address: string }> {
  const minted = await api<{ invite: string }>(base, 'POST', `/api/rooms/${room.roomId}/tokens`, { role }, room.hostToken);
  if (minted.status !== 201) throw new Error(`minting failed: ${JSON.stringify(minted.body)}`);
  const joined = await api<{ token: string; userId: string }>(base, 'POST', `/api/rooms/${room.roomId}/join`, { invite: minted.body.invite, name }, undefined, from(address));
  if (joined.status !== 201) throw new Error(`joining failed: ${JSON.stringify(joined.body)}`);
  return { ...joined.body, address };
}

export interface Member {
  doc: Y.Doc;
  provider: WebsocketProvider;
  refusals: Refusal[];
  destroy(): void;
}

/** A WebSocket class that connects as coming from `address` (X-Forwarded-For through a loopback proxy). */
export function webSocketFrom(address: string): typeof WebSocket {
  return class extends WebSocket {
    constructor(url: string | URL, protocols?: string | string[]) {
      super(url, protocols, { headers: from(address) });
    }
  } as unknown as typeof WebSocket;
}

/**
 * A stock WebsocketProvider, as API.md documents it; refusals (auth messages) are collected instead
 * of logged. `address`: where the member connects from (default: this machine, as the test runs).
 */
export async function connectMember(base: string, roomId: string, token: string, opts: { awareness?: Record<string, unknown>; address?: string } = {}): Promise<Member> {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(base.replace(/^http/, 'ws') + '/sync', roomId, doc, {
    params: { token },
    disableBc: true,
    maxBackoffTime: 500,
    ...(opts.address ? { WebSocketPolyfill: webSocketFrom(opts.address) as never } : {}),
  });
  const refusals: Refusal[] = [];
  provider.messageHandlers[2] = (_enc, dec) => {
    decoding.readVarUint(dec);
    refusals.push(JSON.parse(decoding.readVarString(dec)) as Refusal);
  };
  if (opts.awareness) provider.awareness.setLocalState(opts.awareness);
  await waitFor(() => provider.synced, 10_000, 'the provider to sync');
  return {
    doc,
    provider,
    refusals,
    destroy() {
      provider.destroy();
      doc.destroy();
    },
  };
}

export async function waitFor(check: () => boolean, timeoutMs = 5000, what = 'a condition'): Promise<void> {
  const start = Date.now();
  while (!check()) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The HTTP status with which an upgrade to the sync endpoint is answered (101 when it is accepted). */
export function upgradeStatus(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.on('open', () => {
      ws.close();
      resolve(101);
    });
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
      ws.terminate();
    });
    ws.on('error', (err) => reject(err));
  });
}

export function stemMap(doc: Y.Doc, stemId: string): Y.Map<unknown> {
  return (doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get(stemId)!;
}

export function masterMap(doc: Y.Doc): Y.Map<unknown> {
  return doc.getMap('mix').get('master') as Y.Map<unknown>;
}

export type RoomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** A socket.io client of a room, connected (rejects with the connect_error); `address`: where it connects from. */
export async function connectSocket(base: string, roomId: string, token: string, opts: { address?: string } = {}): Promise<RoomSocket> {
  const s: RoomSocket = io(base, { auth: { roomId, token }, transports: ['websocket'], reconnection: false, ...(opts.address ? { extraHeaders: from(opts.address) } : {}) });
  await new Promise<void>((resolve, reject) => {
    s.once('connect', () => resolve());
    s.once('connect_error', (err) => {
      s.disconnect();
      reject(err);
    });
  });
  return s;
}

/** The next `event` on the socket that `match` accepts. */
export function nextEvent<E extends keyof ServerToClientEvents>(s: RoomSocket, event: E, match: (...args: Parameters<ServerToClientEvents[E]>) => boolean = () => true) {
  return new Promise<Parameters<ServerToClientEvents[E]>>((resolve) => {
    const handler = (...args: Parameters<ServerToClientEvents[E]>) => {
      if (!match(...args)) return;
      s.off(event, handler as never);
      resolve(args);
    };
    s.on(event, handler as never);
  });
}
