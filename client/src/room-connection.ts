// One member's connection to a room: the room document over y-websocket and the
// room's socket.io channel. It owns both and closes both (close() is idempotent).
// Refusals arrive both as y-websocket "auth" messages (type 2) and as socket.io
// `room:refused`; both reach `onRefusal`, once per refusal.
//
// The member's token expires; before it does, a fresh one is fetched and handed to
// both open connections (socket.io `session:renew`, a y-websocket auth message), so
// that nothing reconnects. If it expired anyway (a laptop asleep), the server ends
// both connections with "token expired": a fresh token is fetched and both connect
// again. When the member may not come back (removed, access over), it says why.
//
// A server that restarts (a deploy, a move to another node) says so first (room notice
// `server_restarting`, or `room_closing` for one room) and then disconnects: both
// connections come back by themselves, with backoff, for as long as it takes. A server
// killed without a word drops the transport, which socket.io and y-websocket retry by
// themselves. Only a real end (the room ended, the member removed) is final.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { io, type Socket } from 'socket.io-client';
import type { Refusal } from '../../shared/refusals.ts';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import type { ClientToServerEvents, ConnectRefusal, ServerToClientEvents, StreamSignalReply } from '../../shared/socket-events.ts';
import { tokenExpiryMs } from './session.ts';

export type RoomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'closed';

/** The member's credentials: the token now, and how to get a fresh one (null: the member may not come back, and why). */
export interface Credentials {
  token(): string;
  refresh(): Promise<{ token: string } | { refused: string }>;
}

/** Refresh this long before the token expires (at 80% of its life for a token shorter than twice that). */
const REFRESH_AHEAD_MS = 5 * 60_000;
/** Soonest a refresh is tried again after one failed for a passing reason. */
const REFRESH_RETRY_MS = 10_000;
/**
 * First try to connect again after the server said it is restarting (then socket.io's own
 * backoff, up to 5 s between tries, until it is back), spread so that a room's members do
 * not all arrive in the same instant.
 */
const RESTART_RETRY_MS = 500;
const RESTART_JITTER_MS = 1000;

export interface ConnectionState {
  sync: LinkState;
  synced: boolean;
  socket: LinkState;
  /** Why the connection is closed for good, in words (room ended, access revoked…). */
  closedReason: string | null;
  socketError: string | null;
}

export class RoomConnection {
  readonly doc = new Y.Doc();
  readonly provider: WebsocketProvider;
  readonly socket: RoomSocket;
  readonly roomId: string;
  readonly state: ConnectionState = { sync: 'connecting', synced: false, socket: 'connecting', closedReason: null, socketError: null };
  /** Server clock minus this browser's clock (ms); 0 unless they clearly differ. */
  serverOffsetMs = 0;
  #closed = false;
  readonly #stateListeners = new Set<(s: ConnectionState) => void>();
  readonly #refusalListeners = new Set<(r: Refusal) => void>();
  readonly #reconnectListeners = new Set<() => void>();
  #lastRefusal: { key: string; atMs: number } | null = null;
  readonly #credentials: Credentials;
  #refreshTimer: ReturnType<typeof setTimeout> | null = null;
  #refreshing: Promise<boolean> | null = null;
  #comingBack: Promise<void> | null = null;
  /** The server said the room or the server is restarting: the disconnect that follows is not the end. */
  #restarting = false;
  /** Every socket.io connect after the first is a reconnection (a new session on the server). */
  #connectedBefore = false;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(roomId: string, credentials: Credentials) {
    this.roomId = roomId;
    this.#credentials = credentials;
    const token = credentials.token();
    const wsOrigin = location.origin.replace(/^http/, 'ws');
    this.provider = new WebsocketProvider(`${wsOrigin}/sync`, roomId, this.doc, { params: { token }, disableBc: true, maxBackoffTime: 5000 });
    // The server's refusals: [type 2][varuint 0 = permission denied][JSON refusal].
    this.provider.messageHandlers[2] = (_encoder, decoder) => {
      decoding.readVarUint(decoder);
      const text = decoding.readVarString(decoder);
      try {
        this.#refused(JSON.parse(text) as Refusal);
      } catch {
        this.#refused({ code: 'malformed', message: text });
      }
    };
    this.provider.on('status', ({ status }: { status: string }) => {
      if (this.state.sync === 'closed') return;
      this.#set({ sync: status === 'connected' ? 'connected' : status === 'connecting' ? 'connecting' : 'disconnected' });
    });
    this.provider.on('sync', (synced: boolean) => this.#set({ synced }));
    this.provider.on('connection-close', (event: CloseEvent | null) => {
      const code = event?.code ?? 0;
      if (code === SYNC_CLOSE.roomClosed) this.#set({ sync: 'closed', closedReason: 'The host ended this room.' });
      else if (code === SYNC_CLOSE.tokenExpired) void this.#comeBack();
      else if (code === SYNC_CLOSE.accessRevoked) this.#set({ sync: 'closed', closedReason: event?.reason ? `${capital(event.reason)}.` : 'Your access to this room ended. Ask the host for a new link.' });
      else if (code >= 4400 && code < 4500) this.#set({ sync: 'closed', closedReason: `The room closed the connection (${event?.reason || code}).` });
    });

    this.socket = io(location.origin, { auth: { roomId, token }, transports: ['websocket'], reconnectionDelayMax: 5000 });
    this.socket.on('connect', () => {
      this.#restarting = false;
      this.#set({ socket: 'connected', socketError: null });
      if (this.#connectedBefore) this.#reconnected();
      this.#connectedBefore = true;
    });
    this.socket.on('disconnect', (reason) => {
      if (this.#closed) return;
      // The room or the server restarts: ask again until it takes us back (socket.io's backoff
      // goes on by itself after a first try that finds no server).
      if (reason === 'io server disconnect' && this.#restarting) {
        this.#set({ socket: 'connecting' });
        if (this.#retryTimer) clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(
          () => {
            this.#retryTimer = null;
            if (!this.#closed && !this.socket.active) this.socket.connect();
          },
          RESTART_RETRY_MS + Math.random() * RESTART_JITTER_MS,
        );
        return;
      }
      // Ended because the token expired: #comeBack connects again with a fresh one.
      if (reason === 'io server disconnect' && this.#comingBack) return this.#set({ socket: 'connecting' });
      // "io server disconnect": the server will not take us back by itself (e.g. the room ended).
      this.#set({ socket: reason === 'io server disconnect' ? 'closed' : 'connecting' });
    });
    this.socket.on('room:notice', (n) => {
      if (n.code === 'room_closing' || n.code === 'server_restarting') this.#restarting = true;
    });
    this.socket.on('connect_error', (err) => {
      const data = (err as Error & { data?: ConnectRefusal }).data;
      // An expired token: fetch a fresh one and try again.
      if (data?.reason === 'expired') return void this.#comeBack();
      if (data?.reason === 'removed') return this.#set({ socket: 'closed', closedReason: 'A host removed you from this room.' });
      // While it retries, a server that is not there yet ("websocket error") is no news for the fan: the state says reconnecting.
      this.#set({ socket: this.socket.active ? 'connecting' : 'closed', socketError: data || !this.socket.active ? err.message : null });
    });
    this.socket.on('session:ended', (info) => {
      if (info.reason === 'token_expired') void this.#comeBack();
      else this.#set({ socket: 'closed', closedReason: `${capital(info.message)}.` });
    });
    this.socket.on('room:refused', (r) => this.#refused(r));
    this.socket.on('room:ended', () => this.#set({ closedReason: 'The host ended this room.' }));
    this.#scheduleRefresh();
  }

  /** After the socket.io channel connected again, however it came back (a new session on the server). */
  onReconnected(fn: () => void): () => void {
    this.#reconnectListeners.add(fn);
    return () => this.#reconnectListeners.delete(fn);
  }

  /** Fetches a fresh token before this one expires, and hands it to both open connections. */
  #scheduleRefresh(delayMs?: number): void {
    if (this.#closed) return;
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    const expMs = tokenExpiryMs(this.#credentials.token());
    if (expMs === null) return;
    const life = expMs - Date.now();
    const wait = delayMs ?? Math.max(1000, life > 2 * REFRESH_AHEAD_MS ? life - REFRESH_AHEAD_MS : life * 0.8);
    this.#refreshTimer = setTimeout(() => {
      this.#refreshTimer = null;
      void this.#refresh().then((ok) => {
        if (ok) this.#renew();
        else if (!this.state.closedReason) this.#scheduleRefresh(REFRESH_RETRY_MS);
      });
    }, wait);
  }

  /** One refresh at a time; false when it failed (for a passing reason, or for good: then closedReason says why). */
  #refresh(): Promise<boolean> {
    this.#refreshing ??= this.#credentials
      .refresh()
      .then(
        (r) => {
          if ('refused' in r) {
            this.#set({ sync: 'closed', socket: 'closed', closedReason: r.refused });
            return false;
          }
          this.provider.params = { ...this.provider.params, token: r.token };
          this.socket.auth = { roomId: this.roomId, token: r.token };
          this.#scheduleRefresh();
          return true;
        },
        () => false,
      )
      .finally(() => {
        this.#refreshing = null;
      });
    return this.#refreshing;
  }

  /** Hands the fresh token to the open connections, so that they outlive the old one. */
  #renew(): void {
    const token = this.#credentials.token();
    const ws = this.provider.ws;
    if (ws && ws.readyState === WebSocket.OPEN) {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, 2);
      encoding.writeVarString(enc, token);
      ws.send(encoding.toUint8Array(enc));
    }
    if (this.socket.connected) this.socket.emit('session:renew', { token }, () => undefined);
  }

  /** The server ended a connection because the token expired: a fresh token, then both connect again (once for both). */
  #comeBack(): Promise<void> {
    this.#comingBack ??= this.#refresh()
      .then((ok) => {
        if (this.#closed) return;
        if (!ok) {
          if (!this.state.closedReason) this.#retryTimer = setTimeout(() => void this.#comeBack(), REFRESH_RETRY_MS);
          return;
        }
        if (!this.provider.wsconnected && !this.provider.wsconnecting) this.provider.connect();
        if (!this.socket.connected) this.socket.connect();
      })
      .finally(() => {
        this.#comingBack = null;
      });
    return this.#comingBack;
  }

  #reconnected(): void {
    for (const fn of this.#reconnectListeners) fn();
  }

  onState(fn: (s: ConnectionState) => void): () => void {
    this.#stateListeners.add(fn);
    fn(this.state);
    return () => this.#stateListeners.delete(fn);
  }

  onRefusal(fn: (r: Refusal) => void): () => void {
    this.#refusalListeners.add(fn);
    return () => this.#refusalListeners.delete(fn);
  }

  /** Server time now, as well as this browser can tell. */
  serverNow(): number {
    return Date.now() + this.serverOffsetMs;
  }

  /** One signaling round trip of the live stream, over this member's socket. */
  async signal(message: unknown): Promise<StreamSignalReply> {
    // Never buffered for later: sent after a reconnect, it would reach the next session (a stale 'leave' ending its new stream).
    if (!this.socket.connected) throw new Error('the live channel is not connected');
    const r = await this.socket.timeout(10_000).emitWithAck('stream:signal', message as { type: string });
    if (!r.ok) throw Object.assign(new Error(r.refusal.message), { code: r.refusal.code });
    return r.signal;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#refreshTimer) clearTimeout(this.#refreshTimer);
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#refreshTimer = null;
    this.#retryTimer = null;
    this.#reconnectListeners.clear();
    this.socket.removeAllListeners();
    this.socket.disconnect();
    this.provider.destroy();
    this.doc.destroy();
    this.#stateListeners.clear();
    this.#refusalListeners.clear();
  }

  #set(patch: Partial<ConnectionState>): void {
    Object.assign(this.state, patch);
    for (const fn of this.#stateListeners) fn(this.state);
  }

  #refused(r: Refusal): void {
    // The same refusal arrives on both channels; say it once.
    const key = `${r.code}:${r.message}`;
    const now = Date.now();
    if (this.#lastRefusal && this.#lastRefusal.key === key && now - this.#lastRefusal.atMs < 1500) return;
    this.#lastRefusal = { key, atMs: now };
    for (const fn of this.#refusalListeners) fn(r);
  }
}

function capital(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
