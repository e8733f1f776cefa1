// One member's y-websocket connection to a room: reads the standard protocol
// (sync, awareness, query-awareness), rate-limits it, and hands each message to
// the room. A malformed or unknown frame is refused and counted; too many and
// the connection is dropped, while the room goes on serving everyone else.
import type { Socket } from 'node:net';
import type { WebSocket } from 'ws';
import * as decoding from 'lib0/decoding';
import { SYNC_CLOSE, refusal, type Refusal } from '../../shared/refusals.ts';
import type { Logger } from '../logger.ts';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import type { AddressConnections } from '../limits/address-connections.ts';
import type { UpdateThrottle, ThrottledPeer } from './update-throttle.ts';
import {
  MESSAGE_AUTH,
  MESSAGE_AWARENESS,
  MESSAGE_QUERY_AWARENESS,
  MESSAGE_SYNC,
  refusalMessage,
  type Broadcast,
  type Member,
  type Room,
  type SyncPeer,
} from './room.ts';

/** What sendBroadcast reads of a ws 8 WebSocket (private: checked on every use, never assumed). */
interface WsInternals {
  _socket?: Socket;
  _sender?: { _state?: number; _queue?: unknown[] };
}
/** ws's Sender state when it is neither compressing nor reading a Blob (lib/sender.js, DEFAULT). */
const WS_SENDER_IDLE = 0;

/** Refused or malformed messages tolerated per window before the connection is dropped. */
const STRIKE_LIMIT = 50;
const STRIKE_WINDOW_MS = 10_000;
/** A peer that cannot keep up with the room's updates is dropped rather than buffered without end. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Each connection is pinged about this often; one that has not answered the last ping by the next is dropped. */
export const PING_EVERY_MS = 30_000;
/** The sweep's tick: every tick pings its share of the connections, so that pings are spread out. */
const SWEEP_TICK_MS = 1000;

/** Shared by all the connections of a server (one object, not one per connection). */
export interface SyncConnectionOptions {
  log: Logger;
  /** Members' edits at the rate their limits allow, across their connections. */
  throttle: UpdateThrottle;
  /** Checks the fresh token a member sends to stay connected past its old one's expiry. */
  signer: TokenSigner;
  /** The count of connections per address, which this connection gives back when it closes. */
  connections: AddressConnections;
  now?: () => number;
  onMessageRefused?: (reason: Refusal['code']) => void;
  /** Pings the connections and arms their expiry (one timer for all of them). */
  sweep: SyncSweep;
}

/**
 * The keep-alive of every sync connection of a server, on one timer instead of one or two per
 * connection (at 10,000 members those timers and their closures cost megabytes). Each tick visits
 * its share of the connections, so that each is visited about every PING_EVERY_MS, and the pings
 * go out spread over that time rather than all at once. The timer runs only while there are
 * connections.
 */
export class SyncSweep {
  /** About how often each connection is visited. */
  readonly everyMs: number;
  readonly #tickMs: number;
  /**
   * A connection's expiry gets a timer of its own once it is this near: well within two visits,
   * so that it is armed in time (and a timer never has to wait longer than Node allows).
   */
  readonly armWithinMs: number;
  readonly #connections = new Set<SyncConnection>();
  #timer: NodeJS.Timeout | null = null;
  /** Where the current round is; a Set's iterator sees what is added or removed meanwhile. */
  #round: Iterator<SyncConnection> | null = null;
  /** When the next round may start (performance.now()): rounds start everyMs apart. */
  #nextRoundAt = 0;

  constructor(opts: { everyMs?: number; tickMs?: number } = {}) {
    this.everyMs = opts.everyMs ?? PING_EVERY_MS;
    this.#tickMs = opts.tickMs ?? SWEEP_TICK_MS;
    this.armWithinMs = 2 * this.everyMs + this.#tickMs;
  }

  get size(): number {
    return this.#connections.size;
  }

  /** For tests: whether the timer runs. */
  get running(): boolean {
    return this.#timer !== null;
  }

  add(connection: SyncConnection): void {
    this.#connections.add(connection);
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs);
  }

  delete(connection: SyncConnection): void {
    this.#connections.delete(connection);
    if (this.#connections.size === 0) this.stop();
  }

  /** Stops the timer (connections added later start it again). */
  stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    this.#round = null;
  }

  #tick(): void {
    const now = performance.now();
    if (this.#round === null) {
      if (now < this.#nextRoundAt) return;
      this.#round = this.#connections.values();
      this.#nextRoundAt = now + this.everyMs;
    }
    // Each tick takes its share, so that a round is over within everyMs.
    let left = Math.ceil((this.#connections.size * this.#tickMs) / this.everyMs);
    const nowSec = Math.floor(now / 1000);
    while (left-- > 0) {
      const next = this.#round.next();
      if (next.done) {
        this.#round = null;
        return;
      }
      next.value.heartbeat(nowSec, this.everyMs);
    }
  }
}

export class SyncConnection implements SyncPeer, ThrottledPeer {
  readonly member: Member;
  readonly #ws: WebSocket;
  readonly #room: Room;
  readonly #opts: SyncConnectionOptions;
  /** When the member's token expires; the connection ends then, unless a fresh token came meanwhile. */
  #expiresAtMs: number;
  /** Made when first needed: most connections never log anything. */
  #logger: Logger | null = null;
  /** Armed at once or by the sweep, once the expiry is near (see SyncSweep.armWithinMs). */
  #expiryTimer: NodeJS.Timeout | null = null;
  #strikes: number[] | null = null;
  #alive = true;
  /** When the last ping went out, in whole seconds of performance.now() (a small integer, stored unboxed). */
  #pingedAtSec = 0;
  #closed = false;

  constructor(ws: WebSocket, room: Room, member: Member, expiresAtMs: number, opts: SyncConnectionOptions) {
    this.#ws = ws;
    this.#room = room;
    this.member = member;
    this.#opts = opts;
    this.#expiresAtMs = expiresAtMs;
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.#onClose());
    ws.on('error', (err) => this.#log.debug({ err: err.message }, 'sync socket error'));
    ws.on('pong', () => {
      this.#alive = true;
    });
    this.#armExpiry();
    opts.sweep.add(this);
    room.addPeer(this);
  }

  get #log(): Logger {
    this.#logger ??= this.#opts.log.child({ roomId: this.#room.id, sessionId: this.member.sessionId });
    return this.#logger;
  }

  /**
   * Called by the sweep about every `everyMs`: drops a connection that has not answered the last
   * ping (given at least half that time to), pings the others, and arms the expiry timer once it is near.
   */
  heartbeat(nowSec: number, everyMs: number): void {
    if (this.#closed) return;
    if (!this.#alive) {
      if ((nowSec - this.#pingedAtSec) * 1000 < everyMs / 2) return;
      this.#ws.terminate();
      return;
    }
    this.#alive = false;
    this.#pingedAtSec = nowSec;
    this.#ws.ping();
    this.#armExpiry();
  }

  /** Sets the timer that ends the connection when the token expires, once that is near (see SyncSweep.armWithinMs). */
  #armExpiry(): void {
    if (this.#expiryTimer || this.#closed) return;
    const left = this.#expiresAtMs - (this.#opts.now ?? Date.now)();
    if (left > this.#opts.sweep.armWithinMs) return;
    this.#expiryTimer = setTimeout(() => this.#expire(), Math.max(0, left));
  }

  #expire(): void {
    this.#expiryTimer = null;
    // A fresh token may have moved the expiry on since the timer was set.
    if (this.#expiresAtMs > (this.#opts.now ?? Date.now)()) return this.#armExpiry();
    this.close(SYNC_CLOSE.tokenExpired, 'your token has expired; refresh it and connect again');
  }

  /** A fresh token of the same member (refreshed through POST /api/rooms/:roomId/members/me/token) moves the expiry on. */
  #renew(token: string): Refusal | null {
    let claims;
    try {
      claims = this.#opts.signer.verify(token, this.#room.id, 'member');
    } catch (err) {
      if (err instanceof TokenError) return refusal('malformed', `the fresh token was refused: ${err.message}`);
      throw err;
    }
    if (claims.sub !== this.member.userId) return refusal('malformed', 'the fresh token is of another member');
    if (claims.exp * 1000 > this.#expiresAtMs) {
      this.#expiresAtMs = claims.exp * 1000;
      if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
      this.#expiryTimer = null;
      this.#armExpiry();
    }
    return null;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** An edit (or several, merged) whose turn came: checked and applied by the room. */
  applyUpdate(update: Uint8Array): void {
    if (this.#closed || this.#room.closed) return;
    try {
      this.#room.applyMemberUpdate(this, update);
    } catch (err) {
      // Called when the member's turn comes, outside the message handler's own catch.
      this.#log.debug({ err: (err as Error).message }, 'malformed sync update');
      this.#strike(refusal('malformed', 'the message could not be read'));
    }
  }

  send(message: Uint8Array): void {
    if (!this.#writable()) return;
    this.#ws.send(message);
  }

  /**
   * A broadcast's ready-made frame, written straight to the socket when ws has nothing of its own
   * in flight (it compresses nothing here, so its queue is empty but for a Blob being read); any
   * other time, or if ws's internals are not as expected, through ws.send like any message.
   */
  sendBroadcast(broadcast: Broadcast): void {
    if (!this.#writable()) return;
    const { _socket: socket, _sender: sender } = this.#ws as unknown as WsInternals;
    if (socket && !socket.destroyed && sender && sender._state === WS_SENDER_IDLE && sender._queue?.length === 0) socket.write(broadcast.frame);
    else this.#ws.send(broadcast.message);
  }

  #writable(): boolean {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return false;
    if (this.#ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#log.warn({ buffered: this.#ws.bufferedAmount }, 'peer cannot keep up; dropping it');
      this.#ws.terminate();
      return false;
    }
    return true;
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#ws.close(code, reason);
    this.#onClose();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#expiryTimer) clearTimeout(this.#expiryTimer);
    this.#expiryTimer = null;
    this.#opts.sweep.delete(this);
    this.#opts.throttle.forget(this);
    this.#opts.connections.release(this.member.address);
    this.#room.removePeer(this);
  }

  #onMessage(data: Buffer, isBinary: boolean): void {
    if (this.#closed || this.#room.closed) return;
    if (!isBinary) return this.#strike(refusal('malformed', 'the sync endpoint speaks the binary y-websocket protocol'));
    let problem: Refusal | null = null;
    try {
      problem = this.#handle(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    } catch (err) {
      this.#log.debug({ err: (err as Error).message }, 'malformed sync frame');
      problem = refusal('malformed', 'the message could not be read');
    }
    if (problem) this.#strike(problem);
  }

  #handle(frame: Uint8Array): Refusal | null {
    const dec = decoding.createDecoder(frame);
    const type = decoding.readVarUint(dec);
    switch (type) {
      case MESSAGE_SYNC: {
        const step = decoding.readVarUint(dec);
        if (step === 0) {
          this.send(this.#room.syncStep2For(decoding.readVarUint8Array(dec)));
          return null;
        }
        if (step === 1 || step === 2) {
          // In turn, at the rate the member's limits allow; beyond what may wait, the connection goes.
          if (this.#opts.throttle.submit(this, decoding.readVarUint8Array(dec)) === 'overflow') {
            this.#log.warn({ userId: this.member.userId }, 'too many edits waiting; dropping the connection');
            this.close(SYNC_CLOSE.tooManyRefusals, 'too many changes at once; slow down');
          }
          return null;
        }
        return refusal('malformed', `unknown sync step ${step}`);
      }
      case MESSAGE_AWARENESS:
        return this.#room.applyMemberAwareness(this, decoding.readVarUint8Array(dec));
      case MESSAGE_QUERY_AWARENESS:
        this.#room.queryAwarenessFor(this);
        return null;
      case MESSAGE_AUTH: {
        // y-protocols' auth message, sent by a member: [2][varString fresh token] renews the connection.
        if (!decoding.hasContent(dec)) return null;
        return this.#renew(decoding.readVarString(dec));
      }
      default:
        return refusal('malformed', `unknown message type ${type}`);
    }
  }

  #strike(problem: Refusal): void {
    this.#opts.onMessageRefused?.(problem.code);
    const now = (this.#opts.now ?? Date.now)();
    this.#strikes = (this.#strikes ?? []).filter((t) => now - t < STRIKE_WINDOW_MS);
    this.#strikes.push(now);
    if (problem.code === 'malformed' || problem.code === 'too_large') this.send(refusalMessage(problem));
    if (this.#strikes.length > STRIKE_LIMIT) {
      this.#log.warn({ strikes: this.#strikes.length, last: problem.code }, 'too many refused messages; dropping the connection');
      this.close(SYNC_CLOSE.tooManyRefusals, 'too many refused messages');
    }
  }
}
