// The sync endpoint: `/sync/:roomId?token=...`, the standard y-websocket protocol.
// Bad tokens are refused at the HTTP upgrade (401/403/404), never by accepting and
// then closing: that would reset a stock client's backoff and start a reconnect storm.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import { RateLimiter } from '../util/rate-limiter.ts';
import { ROOM_ID, RoomEndedError, RoomNotFoundError, type RoomManager } from './room-manager.ts';
import { SyncConnection, SyncSweep, type SyncConnectionOptions } from './sync-connection.ts';

export const SYNC_PATH = '/sync/';
/** The largest frame a member may send: a reconnecting client's whole offline state fits easily. */
export const MAX_SYNC_FRAME_BYTES = 1024 * 1024;

export interface SyncServerDeps {
  manager: RoomManager;
  signer: TokenSigner;
  log: Logger;
  metrics: Metrics;
}

export class SyncServer {
  readonly #wss: WebSocketServer;
  readonly #deps: SyncServerDeps;
  readonly #updateLimiter = new RateLimiter({ capacity: 240, refillPerSec: 120 });
  /** Pings every connection and arms its expiry, on one timer. */
  readonly #sweep = new SyncSweep();
  /** Given to every connection. */
  readonly #connectionOptions: SyncConnectionOptions;
  readonly #untrack: () => void;
  #closed = false;

  constructor(deps: SyncServerDeps) {
    this.#deps = deps;
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: MAX_SYNC_FRAME_BYTES, perMessageDeflate: false });
    this.#untrack = deps.metrics.trackConnections('sync', () => this.#wss.clients.size);
    this.#connectionOptions = {
      log: deps.log,
      updateLimiter: this.#updateLimiter,
      onMessageRefused: (reason) => deps.metrics.syncRefusals.inc({ reason }),
      sweep: this.#sweep,
    };
  }

  /**
   * Takes the upgrades for /sync/; leaves those under `otherPaths` (socket.io) to their
   * owners and answers any other upgrade with 404, so that no socket is left hanging.
   */
  attach(server: http.Server, otherPaths: string[] = ['/socket.io/']): void {
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (url.pathname.startsWith(SYNC_PATH)) {
        this.#upgrade(req, socket, head, url).catch((err: unknown) => {
          this.#deps.log.error({ err }, 'sync upgrade failed');
          if (!socket.destroyed) refuse(socket, 503, 'the room could not be joined; try again');
        });
      }
      else if (!otherPaths.some((p) => url.pathname.startsWith(p))) refuse(socket, 404, `nothing to upgrade to at ${url.pathname}`);
    });
  }

  get connections(): number {
    return this.#wss.clients.size;
  }

  close(): void {
    this.#closed = true;
    for (const ws of this.#wss.clients) ws.terminate();
    this.#sweep.stop();
    this.#wss.close();
    this.#untrack();
  }

  async #upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
    const { log, manager, signer, metrics } = this.#deps;
    // A plain function, not a closure: it stays on the socket for the connection's life, and a
    // closure here would keep this whole call's scope (the claims, the room) alive with it.
    socket.on('error', destroySelf);
    const roomId = decodeURIComponent(url.pathname.slice(SYNC_PATH.length));
    if (this.#closed) return refuse(socket, 503, 'the server is shutting down');
    if (!ROOM_ID.test(roomId)) return refuse(socket, 404, 'no such room');
    let claims;
    try {
      claims = signer.verify(url.searchParams.get('token'), roomId);
    } catch (err) {
      if (err instanceof TokenError) {
        metrics.syncRefusals.inc({ reason: err.reason });
        return refuse(socket, err.reason === 'wrong_room' ? 403 : 401, err.message);
      }
      throw err;
    }
    let room;
    try {
      room = await manager.open(roomId);
    } catch (err) {
      if (err instanceof RoomNotFoundError) return refuse(socket, 404, err.message);
      if (err instanceof RoomEndedError) return refuse(socket, 410, err.message);
      log.error({ err, roomId }, 'opening a room failed');
      return refuse(socket, 503, 'the room could not be opened; try again');
    }
    if (socket.destroyed) return;
    this.#wss.handleUpgrade(req, socket, head, (ws) => {
      if (room.closed) return ws.close(4503, 'the room is closing');
      const member = { sessionId: flatUUID(), userId: claims.sub, name: claims.name, tokenRole: claims.role };
      new SyncConnection(ws, room, member, claims.exp * 1000, this.#connectionOptions);
    });
  }
}

/**
 * A random UUID as one flat string. Node builds crypto.randomUUID() out of ~20 concatenations,
 * which V8 keeps as a rope of ~490 bytes for as long as the string lives (a connection's life);
 * copied once, it takes ~60.
 */
export function flatUUID(): string {
  return Buffer.from(crypto.randomUUID(), 'latin1').toString('latin1');
}

function destroySelf(this: Duplex): void {
  this.destroy();
}

function refuse(socket: Duplex, status: number, message: string): void {
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 410: 'Gone', 503: 'Service Unavailable' }[status] ?? 'Error';
  const body = JSON.stringify({ error: { code: status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 503 ? 'not_ready' : 'not_found', message } });
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`);
}
