// The sync endpoint: `/sync/:roomId?token=...`, the standard y-websocket protocol.
// Bad tokens are refused at the HTTP upgrade (401/403/404), never by accepting and
// then closing: that would reset a stock client's backoff and start a reconnect storm.
import crypto from 'node:crypto';
import type http from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { limitMessage } from '../../shared/limits.ts';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import type { MemberDirectory } from '../auth/members.ts';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import type { AddressConnections } from '../limits/address-connections.ts';
import type { Limits } from '../limits/limits.ts';
import { ROOM_ID, RoomEndedError, RoomNotFoundError, type RoomManager } from './room-manager.ts';
import { SyncConnection, SyncSweep, type SyncConnectionOptions } from './sync-connection.ts';
import { UpdateThrottle } from './update-throttle.ts';

export const SYNC_PATH = '/sync/';
/** The largest frame a member may send: a reconnecting client's whole offline state fits easily. */
export const MAX_SYNC_FRAME_BYTES = 1024 * 1024;

export interface SyncServerDeps {
  manager: RoomManager;
  signer: TokenSigner;
  members: MemberDirectory;
  limits: Limits;
  /** Shared with socket.io: connections per address. */
  connections: AddressConnections;
  log: Logger;
  metrics: Metrics;
}

/** How long a client refused for too many connections from its address is told to wait. */
const CONNECTIONS_RETRY_SEC = 30;

export class SyncServer {
  readonly #wss: WebSocketServer;
  readonly #deps: SyncServerDeps;
  /** Members' edits at the rate their limits allow (shared by every connection of the process). */
  readonly #throttle: UpdateThrottle;
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
    this.#throttle = new UpdateThrottle(deps.limits, deps.log, (outcome, n) => deps.metrics.syncEdits.inc({ outcome }, n));
    this.#connectionOptions = {
      log: deps.log,
      throttle: this.#throttle,
      signer: deps.signer,
      connections: deps.connections,
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
    this.#throttle.close();
    this.#wss.close();
    this.#untrack();
  }

  async #upgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer, url: URL): Promise<void> {
    const { log, manager, signer, metrics, members, connections, limits } = this.#deps;
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
    const address = limits.addressOf(req);
    if (!connections.acquire(address)) {
      metrics.syncRefusals.inc({ reason: 'rate_limited' });
      return refuse(socket, 429, limitMessage('connections.address', CONNECTIONS_RETRY_SEC * 1000), CONNECTIONS_RETRY_SEC);
    }
    // Given back below unless a connection takes it over.
    let held = true;
    const giveBack = () => {
      if (held) connections.release(address);
      held = false;
    };
    try {
      // The role comes from the store (every node's), never from the token.
      const standing = await members.standing(roomId, claims);
      if (!standing.ok) {
        metrics.syncRefusals.inc({ reason: standing.reason });
        return refuse(socket, standing.status, standing.message);
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
      const member = { sessionId: flatUUID(), userId: claims.sub, name: claims.name, baseRole: standing.role, address };
      const expiresAtMs = claims.exp * 1000;
      let adopted = false;
      this.#wss.handleUpgrade(req, socket, head, (ws) => {
        adopted = true;
        held = false;
        // Closing since it was opened for this member (saving on its way out): come back, it loads again.
        if (room.closing) {
          connections.release(address);
          return ws.close(SYNC_CLOSE.shuttingDown, 'the room is closing; reconnect');
        }
        // Removed between the check above and now: the rules already say so.
        if (room.isRemoved(member.userId)) {
          connections.release(address);
          return ws.close(SYNC_CLOSE.accessRevoked, 'a host removed you from this room');
        }
        // The connection gives the address's count back when it closes.
        new SyncConnection(ws, room, member, expiresAtMs, this.#connectionOptions);
      });
      // ws refused the upgrade itself (a malformed handshake), or has not finished it yet.
      if (!adopted && !socket.destroyed) {
        held = false;
        socket.once('close', () => {
          if (!adopted) connections.release(address);
        });
      }
    } finally {
      giveBack();
    }
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

function refuse(socket: Duplex, status: number, message: string, retryAfterSec?: number): void {
  const reason = { 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 410: 'Gone', 429: 'Too Many Requests', 503: 'Service Unavailable' }[status] ?? 'Error';
  const code = status === 401 ? 'unauthorized' : status === 403 ? 'forbidden' : status === 429 ? 'rate_limited' : status === 503 ? 'not_ready' : 'not_found';
  const body = JSON.stringify({ error: { code, message, ...(status === 429 ? { limit: 'connections.address' } : {}), ...(retryAfterSec ? { retryAfterSec } : {}) } });
  const retry = retryAfterSec ? `Retry-After: ${retryAfterSec}\r\n` : '';
  socket.end(`HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n${retry}Connection: close\r\n\r\n${body}`);
}
