// A member's edits to a room, at the rate its limits allow: per member across all
// of its connections (and every node, when the limits live in Redis), and per
// address. An edit beyond the rate is not refused, which a stock client could not
// recover from (it keeps its edit; see PITFALLS.md): it waits, in order, on its
// connection, and the waiting edits go in together, merged into one update, when
// the allowance comes back. A connection whose waiting edits pass the cap is
// dropped instead; its client reconnects and sends what the room still lacks.
//
// The allowance is taken from the limits in small leases, so that an edit within
// the rate is applied at once, without a round trip to Redis for every edit.
import * as Y from 'yjs';
import type { Logger } from '../logger.ts';
import type { Limits } from '../limits/limits.ts';

const NAMES = ['sync.update.member', 'sync.update.address'] as const;
/** Edits leased at a time. */
const LEASE = 10;
/** A lease not used by then is let go (it was taken from the member's shared allowance). */
const LEASE_TTL_MS = 1000;

export interface ThrottledPeer {
  readonly member: { userId: string; address: string };
  /** Applies an update (one edit, or several merged) to the room. */
  applyUpdate(update: Uint8Array): void;
  readonly closed: boolean;
}

interface Allowance {
  tokens: number;
  until: number;
  leasing: Promise<void> | null;
  /** Connections of this member on this node that hold waiting edits. */
  users: number;
}

interface Queue {
  updates: Uint8Array[];
  timer: NodeJS.Timeout | null;
  draining: boolean;
}

export type Submitted = 'applied' | 'queued' | 'overflow';

export class UpdateThrottle {
  readonly #limits: Limits;
  readonly #log: Logger;
  readonly #maxPending: number;
  readonly #allowances = new Map<string, Allowance>();
  readonly #queues = new Map<ThrottledPeer, Queue>();
  #closed = false;

  readonly #count: (outcome: Submitted, n: number) => void;

  /** `count`: told how many edits were applied, queued or overflowed (the metrics). */
  constructor(limits: Limits, log: Logger, count: (outcome: Submitted, n: number) => void = () => {}) {
    this.#limits = limits;
    this.#log = log;
    this.#maxPending = limits.cap('sync.pending.connection');
    this.#count = count;
  }

  /** Applies the edit now when the member's allowance holds one, else queues it behind the connection's others. */
  submit(peer: ThrottledPeer, update: Uint8Array): Submitted {
    if (this.#closed || peer.closed) return 'overflow';
    const queue = this.#queues.get(peer);
    if (queue) {
      if (queue.updates.length >= this.#maxPending) return this.#counted('overflow');
      queue.updates.push(update);
      return this.#counted('queued');
    }
    const a = this.#allowance(peer.member.userId);
    if (a.tokens > 0 && performance.now() < a.until) {
      a.tokens--;
      peer.applyUpdate(update);
      return this.#counted('applied');
    }
    this.#queues.set(peer, { updates: [update], timer: null, draining: false });
    a.users++;
    void this.#drain(peer);
    return this.#counted('queued');
  }

  /** Forgets a closed connection's waiting edits (its client sends them again when it reconnects). */
  forget(peer: ThrottledPeer): void {
    const queue = this.#queues.get(peer);
    if (!queue) return;
    if (queue.timer) clearTimeout(queue.timer);
    this.#queues.delete(peer);
    const a = this.#allowances.get(peer.member.userId);
    if (a && --a.users <= 0 && a.tokens <= 0 && !a.leasing) this.#allowances.delete(peer.member.userId);
  }

  /** Edits waiting on a connection (for tests and metrics). */
  pending(peer: ThrottledPeer): number {
    return this.#queues.get(peer)?.updates.length ?? 0;
  }

  /** Connections with edits waiting. */
  get waiting(): number {
    return this.#queues.size;
  }

  #counted(outcome: Submitted): Submitted {
    this.#count(outcome, 1);
    return outcome;
  }

  close(): void {
    this.#closed = true;
    for (const q of this.#queues.values()) if (q.timer) clearTimeout(q.timer);
    this.#queues.clear();
    this.#allowances.clear();
  }

  #allowance(userId: string): Allowance {
    let a = this.#allowances.get(userId);
    if (!a) {
      a = { tokens: 0, until: 0, leasing: null, users: 0 };
      this.#allowances.set(userId, a);
    }
    return a;
  }

  async #drain(peer: ThrottledPeer): Promise<void> {
    try {
      await this.#drainQueue(peer);
    } catch (err) {
      // Nothing of a member's may end the process: its waiting edits go, its client sends them again.
      this.#log.error({ err, userId: peer.member.userId }, 'applying waiting edits failed; they are dropped');
      this.forget(peer);
    }
  }

  async #drainQueue(peer: ThrottledPeer): Promise<void> {
    const queue = this.#queues.get(peer);
    if (!queue || queue.draining) return;
    queue.draining = true;
    queue.timer = null;
    try {
      const { userId, address } = peer.member;
      const a = this.#allowance(userId);
      let waitMs = 0;
      if (!(a.tokens > 0 && performance.now() < a.until)) {
        a.tokens = 0;
        if (!a.leasing) {
          const want = Math.max(LEASE, queue.updates.length);
          a.leasing = this.#limits
            .takeUpTo(NAMES, { member: userId, address }, want)
            .then((r) => {
              a.tokens += r.granted;
              a.until = performance.now() + LEASE_TTL_MS;
              if (r.granted === 0) a.until = performance.now() + r.retryAfterMs;
            })
            .catch((err: unknown) => this.#log.warn({ err }, 'taking the update allowance failed'))
            .finally(() => {
              a.leasing = null;
            });
        }
        await a.leasing;
        if (a.tokens <= 0) waitMs = Math.max(1, a.until - performance.now());
      }
      if (this.#queues.get(peer) !== queue || peer.closed || this.#closed) return;
      if (a.tokens > 0) {
        const n = Math.min(a.tokens, queue.updates.length);
        a.tokens -= n;
        const batch = queue.updates.splice(0, n);
        const merged = batch.length === 1 ? batch[0]! : mergeOrNull(batch);
        // An edit that cannot be read (an attacker's bytes) cannot be merged: each goes alone then,
        // and the room refuses what it cannot read.
        if (merged) peer.applyUpdate(merged);
        else for (const u of batch) if (!peer.closed) peer.applyUpdate(u);
        this.#count('applied', n);
      }
      if (queue.updates.length === 0) {
        this.forget(peer);
        return;
      }
      queue.timer = setTimeout(() => void this.#drain(peer), waitMs);
    } finally {
      queue.draining = false;
    }
  }
}

function mergeOrNull(updates: Uint8Array[]): Uint8Array | null {
  try {
    return Y.mergeUpdates(updates);
  } catch {
    return null;
  }
}
