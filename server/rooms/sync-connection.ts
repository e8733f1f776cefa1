// One member's y-websocket connection to a room: reads the standard protocol
// (sync, awareness, query-awareness), rate-limits it, and hands each message to
// the room. A malformed or unknown frame is refused and counted; too many and
// the connection is dropped, while the room goes on serving everyone else.
import type { WebSocket } from 'ws';
import * as decoding from 'lib0/decoding';
import { SYNC_CLOSE, refusal, type Refusal } from '../../shared/refusals.ts';
import type { Logger } from '../logger.ts';
import { RateLimiter } from '../util/rate-limiter.ts';
import {
  MESSAGE_AUTH,
  MESSAGE_AWARENESS,
  MESSAGE_QUERY_AWARENESS,
  MESSAGE_SYNC,
  refusalMessage,
  type Member,
  type Room,
  type SyncPeer,
} from './room.ts';

/** Refused or malformed messages tolerated per window before the connection is dropped. */
const STRIKE_LIMIT = 50;
const STRIKE_WINDOW_MS = 10_000;
/** A peer that cannot keep up with the room's updates is dropped rather than buffered without end. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
const PING_EVERY_MS = 30_000;

export interface SyncConnectionOptions {
  log: Logger;
  /** Shared by all connections of the process: updates per member. */
  updateLimiter: RateLimiter;
  /** When the member's token expires, the connection ends. */
  expiresAtMs: number;
  now?: () => number;
  onMessageRefused?: (reason: Refusal['code']) => void;
}

export class SyncConnection implements SyncPeer {
  readonly member: Member;
  readonly #ws: WebSocket;
  readonly #room: Room;
  readonly #opts: SyncConnectionOptions;
  readonly #log: Logger;
  readonly #timers: NodeJS.Timeout[] = [];
  #strikes: number[] = [];
  #alive = true;
  #closed = false;

  constructor(ws: WebSocket, room: Room, member: Member, opts: SyncConnectionOptions) {
    this.#ws = ws;
    this.#room = room;
    this.member = member;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: room.id, sessionId: member.sessionId });
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data, isBinary) => this.#onMessage(data as Buffer, isBinary));
    ws.on('close', () => this.#onClose());
    ws.on('error', (err) => this.#log.debug({ err: err.message }, 'sync socket error'));
    ws.on('pong', () => {
      this.#alive = true;
    });
    const now = opts.now ?? Date.now;
    this.#timers.push(
      setInterval(() => {
        if (!this.#alive) return this.#ws.terminate();
        this.#alive = false;
        this.#ws.ping();
      }, PING_EVERY_MS),
      setTimeout(() => this.close(SYNC_CLOSE.accessRevoked, 'your access to the room has expired'), Math.max(0, opts.expiresAtMs - now())),
    );
    room.addPeer(this);
  }

  send(message: Uint8Array): void {
    if (this.#closed || this.#ws.readyState !== this.#ws.OPEN) return;
    if (this.#ws.bufferedAmount > MAX_BUFFERED_BYTES) {
      this.#log.warn({ buffered: this.#ws.bufferedAmount }, 'peer cannot keep up; dropping it');
      this.#ws.terminate();
      return;
    }
    this.#ws.send(message);
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#ws.close(code, reason);
    this.#onClose();
  }

  #onClose(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.length = 0;
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
          const update = decoding.readVarUint8Array(dec);
          if (step === 2) {
            const limited = this.#opts.updateLimiter.take(this.member.sessionId);
            if (!limited.ok) {
              // Refusing costs as much as checking, and a stock client would keep the edit anyway;
              // so the update is still checked, and a flood counts strikes until the connection drops.
              return this.#room.applyMemberUpdate(this, update) ?? refusal('rate_limited', 'too many changes at once; slow down');
            }
          }
          this.#room.applyMemberUpdate(this, update);
          return null;
        }
        return refusal('malformed', `unknown sync step ${step}`);
      }
      case MESSAGE_AWARENESS:
        return this.#room.applyMemberAwareness(this, decoding.readVarUint8Array(dec));
      case MESSAGE_QUERY_AWARENESS:
        this.#room.queryAwarenessFor(this);
        return null;
      case MESSAGE_AUTH:
        return null;
      default:
        return refusal('malformed', `unknown message type ${type}`);
    }
  }

  #strike(problem: Refusal): void {
    this.#opts.onMessageRefused?.(problem.code);
    const now = (this.#opts.now ?? Date.now)();
    this.#strikes = this.#strikes.filter((t) => now - t < STRIKE_WINDOW_MS);
    this.#strikes.push(now);
    if (problem.code === 'malformed' || problem.code === 'too_large') this.send(refusalMessage(problem));
    if (this.#strikes.length > STRIKE_LIMIT) {
      this.#log.warn({ strikes: this.#strikes.length, last: problem.code }, 'too many refused messages; dropping the connection');
      this.close(SYNC_CLOSE.tooManyRefusals, 'too many refused messages');
    }
  }
}
