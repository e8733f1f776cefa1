// One member's connection to a room: the room document over y-websocket and the
// room's socket.io channel. It owns both and closes both (close() is idempotent).
// Refusals arrive both as y-websocket "auth" messages (type 2) and as socket.io
// `room:refused`; both reach `onRefusal`, once per refusal.
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import * as decoding from 'lib0/decoding';
import { io, type Socket } from 'socket.io-client';
import type { Refusal } from '../../shared/refusals.ts';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import type { ClientToServerEvents, ServerToClientEvents, StreamSignalReply } from '../../shared/socket-events.ts';

export type RoomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

export type LinkState = 'connecting' | 'connected' | 'disconnected' | 'closed';

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
  #lastRefusal: { key: string; atMs: number } | null = null;

  constructor(roomId: string, token: string) {
    this.roomId = roomId;
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
      else if (code === SYNC_CLOSE.accessRevoked) this.#set({ sync: 'closed', closedReason: 'Your access to this room ended (the link may have expired). Ask the host for a new link.' });
      else if (code >= 4400 && code < 4500) this.#set({ sync: 'closed', closedReason: `The room closed the connection (${event?.reason || code}).` });
    });

    this.socket = io(location.origin, { auth: { roomId, token }, transports: ['websocket'], reconnectionDelayMax: 5000 });
    this.socket.on('connect', () => this.#set({ socket: 'connected', socketError: null }));
    this.socket.on('disconnect', (reason) => {
      if (this.#closed) return;
      // "io server disconnect": the server will not take us back by itself (e.g. the room ended).
      this.#set({ socket: reason === 'io server disconnect' ? 'closed' : 'connecting' });
    });
    this.socket.on('connect_error', (err) => this.#set({ socket: this.socket.active ? 'connecting' : 'closed', socketError: err.message }));
    this.socket.on('room:refused', (r) => this.#refused(r));
    this.socket.on('room:ended', () => this.#set({ closedReason: 'The host ended this room.' }));
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
    const r = await this.socket.timeout(10_000).emitWithAck('stream:signal', message as { type: string });
    if (!r.ok) throw new Error(r.refusal.message);
    return r.signal;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
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
