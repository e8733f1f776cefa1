// One room's link to the other nodes that serve it: its Redis channel (updates,
// awareness, sync between nodes), its storage lease and the fencing token that
// goes with the lease. Made by the RedisBridge when a room opens on this node;
// closed when the room closes, leaving no subscription, lease or timer behind.
//
// Fencing: each time this node takes the lease it takes the room's next token from
// the store, and every save carries it until the node learns it lost the lease. The
// store refuses a token older than the newest, so a node that was paused, cut off
// or wrong about the time cannot write over its successor: the lease decides who
// should write, the store's token who can.
import * as Y from 'yjs';
import * as awarenessProtocol from 'y-protocols/awareness';
import type { Logger } from '../logger.ts';
import { InvalidStateError, type Room, type RoomCloseReason } from '../rooms/room.ts';
import type { StaleFenceError, Store } from '../store/store.ts';
import { BridgeMessageError, decodeBridgeMessage, encodeBridgeMessage, type BridgeMessage } from './bridge-messages.ts';
import { RoomLease, type LeaseClient } from './room-lease.ts';

/** Origin of transactions applied from another node: never published again. */
export interface RemoteOrigin {
  readonly kind: 'remote';
  readonly nodeId: string;
}

export interface LinkChannel {
  publish(message: Buffer): Promise<number>;
  subscribe(listener: (message: Buffer) => void): Promise<void>;
  unsubscribe(listener: (message: Buffer) => void): Promise<void>;
}

export interface RoomLinkOptions {
  room: Room;
  nodeId: string;
  channel: LinkChannel;
  leaseClient: LeaseClient;
  /** Where the room's fencing tokens come from, and its stored document (merged in with each new token). */
  store: Pick<Store, 'takeRoomFence' | 'getRoom'>;
  leaseKey: string;
  leaseTtlMs: number;
  leaseRenewMs: number;
  /** How long an opening room waits for the other nodes' state before members are let in. */
  catchUpTimeoutMs: number;
  /** Least time between two sync requests made because of a gap. */
  resyncMinIntervalMs: number;
  log: Logger;
  /** The store refused a save of this room as stale (for the metrics). */
  onStaleSave?: () => void;
}

/** Retries of a token the store could not hand out: from this delay, doubling, up to the next. */
const FENCE_RETRY_MIN_MS = 200;
const FENCE_RETRY_MAX_MS = 5000;

/** Origin of what the store held that this node's document did not: published to the other nodes like a member's change. */
const STORE_ORIGIN = Object.freeze({ kind: 'store' as const });

/** How long an opening room waits for Redis to confirm its subscription before it gives up (the member may retry). */
const SUBSCRIBE_TIMEOUT_MS = 5000;

export class RoomLink {
  readonly room: Room;
  readonly #opts: RoomLinkOptions;
  readonly #log: Logger;
  readonly #origin: RemoteOrigin;
  readonly #lease: RoomLease;
  readonly #listener = (message: Buffer) => this.#onMessage(message);
  readonly #disposers: (() => void)[] = [];
  #subscribed = false;
  #subscribing: Promise<void> | null = null;
  /** While opening: the nodes whose state this one still waits for. */
  #catchUp: { expected: number; replied: Set<string>; done: () => void } | null = null;
  #catchUpTimer: NodeJS.Timeout | null = null;
  #resyncTimer: NodeJS.Timeout | null = null;
  #lastResyncAt = 0;
  #endedElsewhere = false;
  #closing: Promise<void> | null = null;
  /** The token of this holding of the lease; null while not holding it, or not yet given one. */
  #fence: number | null = null;
  /** Counts each taking and loss of the lease, so that a token that comes late for an earlier holding is dropped. */
  #tenure = 0;
  #fenceRetryTimer: NodeJS.Timeout | null = null;

  constructor(opts: RoomLinkOptions) {
    this.room = opts.room;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: opts.room.id });
    this.#origin = Object.freeze({ kind: 'remote' as const, nodeId: opts.nodeId });
    this.#lease = new RoomLease({
      client: opts.leaseClient,
      key: opts.leaseKey,
      nodeId: opts.nodeId,
      ttlMs: opts.leaseTtlMs,
      renewMs: opts.leaseRenewMs,
      log: this.#log,
      onAcquired: () => {
        this.#tenure++;
        this.#fence = null;
        this.#clearFenceRetry();
        void this.#takeFence(this.#tenure, 0);
      },
      onLost: () => {
        this.#tenure++;
        this.#fence = null;
        this.#clearFenceRetry();
      },
    });
  }

  /** Whether this node stores the room's document now: it holds the lease and has its token. */
  get persists(): boolean {
    return this.#lease.holds && this.#fence !== null && !this.#closing;
  }

  /**
   * The token the room saves with: from the moment it was taken until this node learns that it
   * lost the lease. Not bounded by the lease's local clock on purpose: a save that comes late
   * (after a pause) goes to the store, which refuses it if another node took a newer token, and
   * takes it if none did (then no other node has written since).
   */
  get fence(): number | null {
    return this.#closing ? null : this.#fence;
  }

  /**
   * The store refused a save with this node's token: another node took a newer one, so this
   * node's lease is gone whatever Redis or its clock said. It lets the lease go and competes for
   * it again; only a newer token (after taking the lease again) saves the room from here on.
   */
  fenceRefused(err: StaleFenceError): void {
    this.#opts.onStaleSave?.();
    // A refusal of a token from an earlier holding (a save in flight across a loss) says nothing about this one.
    if (this.#fence === null || err.fence !== this.#fence) return;
    this.#log.warn({ fence: err.fence, currentFence: err.current }, 'a newer fencing token was taken by another node; giving the lease up');
    this.#lease.letGo('the store refused its fencing token');
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /**
   * Subscribes, catches up with the nodes that already serve the room (two-step
   * sync, awareness), then starts the lease. Resolves when the room may be joined.
   */
  async open(): Promise<void> {
    const room = this.room;
    const onUpdate = (update: Uint8Array, origin: unknown) => {
      if (origin !== this.#origin) this.#publish({ type: 'update', from: this.#opts.nodeId, to: '', update });
    };
    const onAwareness = (update: Uint8Array, origin: unknown) => {
      if (origin !== this.#origin) this.#publish({ type: 'awareness', from: this.#opts.nodeId, to: '', update });
    };
    room.on('update', onUpdate);
    room.on('awareness', onAwareness);
    this.#disposers.push(
      () => room.off('update', onUpdate),
      () => room.off('awareness', onAwareness),
    );

    this.#subscribing = this.#opts.channel.subscribe(this.#listener).then(() => {
      this.#subscribed = true;
    });
    // While Redis is away the subscription waits in the client's queue; the room is not served meanwhile.
    await withTimeout(this.#subscribing, SUBSCRIBE_TIMEOUT_MS, 'Redis did not confirm the room subscription in time');
    if (this.#closing) return;
    const caughtUp = new Promise<void>((resolve) => {
      this.#catchUp = { expected: 0, replied: new Set(), done: resolve };
    });
    // PUBLISH answers how many subscribers got it: this node's own plus one per other node of the room.
    const receivers = await this.#requestSync();
    const others = Math.max(0, receivers - 1);
    if (this.#catchUp && others > 0 && !this.#closing) {
      this.#catchUp.expected = others;
      if (this.#catchUp.replied.size < others) {
        this.#catchUpTimer = setTimeout(() => {
          this.#catchUpTimer = null;
          this.#log.warn({ expected: others, replied: this.#catchUp?.replied.size ?? 0 }, 'not every node answered the sync request in time; going on');
          this.#endCatchUp();
        }, this.#opts.catchUpTimeoutMs);
        await caughtUp;
      }
    }
    this.#endCatchUp();
    if (this.#closing) return;
    this.#log.debug({ otherNodes: others }, 'room linked to the other nodes');
    await this.#lease.start();
  }

  /** Asks the other nodes for whatever this one lacks (after a gap, or a reconnect to Redis). */
  resync(): void {
    if (this.#closing || !this.#subscribed) return;
    void this.#requestSync();
  }

  /** For tests: what the link holds. */
  resources(): { subscribed: boolean; timers: number; lease: boolean } {
    return {
      subscribed: this.#subscribed,
      timers: this.#lease.timers + (this.#catchUpTimer ? 1 : 0) + (this.#resyncTimer ? 1 : 0) + (this.#fenceRetryTimer ? 1 : 0),
      lease: this.#lease.holds,
    };
  }

  /** Unsubscribes and gives the lease back. Idempotent. */
  close(reason: RoomCloseReason | 'bridge-closed' = 'bridge-closed'): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: RoomCloseReason | 'bridge-closed'): Promise<void> {
    this.#endCatchUp();
    if (this.#resyncTimer) clearTimeout(this.#resyncTimer);
    this.#resyncTimer = null;
    this.#clearFenceRetry();
    for (const dispose of this.#disposers.splice(0).reverse()) dispose();
    const held = this.#lease.holds;
    await this.#lease.close();
    const from = this.#opts.nodeId;
    // Said before unsubscribing; the other nodes' own messages are of no use any more.
    if (reason === 'ended' && !this.#endedElsewhere) await this.#publishNow({ type: 'room-ended', from, to: '' });
    else if (held) await this.#publishNow({ type: 'lease-released', from, to: '' });
    // A close during open waits for the subscription in flight, so that it can undo it.
    await this.#subscribing?.catch((err: unknown) => this.#log.debug({ err }, 'the subscription had failed (reported by open)'));
    if (this.#subscribed) {
      try {
        await this.#opts.channel.unsubscribe(this.#listener);
      } catch (err) {
        this.#log.warn({ err }, 'unsubscribing from the room channel failed');
      }
      this.#subscribed = false;
    }
    this.#log.debug({ reason }, 'room unlinked from the other nodes');
  }

  #endCatchUp(): void {
    if (this.#catchUpTimer) clearTimeout(this.#catchUpTimer);
    this.#catchUpTimer = null;
    const catchUp = this.#catchUp;
    this.#catchUp = null;
    catchUp?.done();
  }

  #requestSync(): Promise<number> {
    this.#lastResyncAt = Date.now();
    const stateVector = Y.encodeStateVector(this.room.doc);
    return this.#publishNow({ type: 'sync-request', from: this.#opts.nodeId, to: '', stateVector });
  }

  /** A remote update left the document waiting for changes it never got: ask for them (not more than once per interval). */
  #resyncSoon(): void {
    if (this.#resyncTimer || this.#closing) return;
    const wait = Math.max(0, this.#lastResyncAt + this.#opts.resyncMinIntervalMs - Date.now());
    this.#resyncTimer = setTimeout(() => {
      this.#resyncTimer = null;
      if (hasGap(this.room.doc)) {
        this.#log.info('the document misses changes from another node; asking for them');
        this.resync();
      }
    }, wait);
  }

  #onMessage(raw: Buffer): void {
    if (this.#closing || this.room.closed) return;
    let m: BridgeMessage;
    try {
      m = decodeBridgeMessage(raw);
    } catch (err) {
      if (!(err instanceof BridgeMessageError)) throw err;
      this.#log.warn({ err: err.message, bytes: raw.length }, 'unreadable message on the room channel; ignored');
      return;
    }
    const me = this.#opts.nodeId;
    if (m.from === me || (m.to !== '' && m.to !== me)) return;
    try {
      this.#handle(m);
    } catch (err) {
      // The room is closing on this node: what it misses, the others still have.
      if (err instanceof InvalidStateError) this.#log.debug({ type: m.type }, 'message for a closing room dropped');
      else this.#log.error({ err, type: m.type, from: m.from }, 'applying a message from another node failed');
    }
  }

  #handle(m: BridgeMessage): void {
    const room = this.room;
    const me = this.#opts.nodeId;
    switch (m.type) {
      case 'update':
        room.applyRemoteUpdate(m.update, this.#origin);
        if (hasGap(room.doc)) this.#resyncSoon();
        return;
      case 'awareness':
        room.applyRemoteAwareness(m.update, this.#origin);
        return;
      case 'sync-request': {
        const update = Y.encodeStateAsUpdate(room.doc, m.stateVector);
        this.#publish({ type: 'sync-reply', from: me, to: m.from, update, stateVector: Y.encodeStateVector(room.doc) });
        const clients = [...room.awareness.getStates().keys()];
        if (clients.length > 0) {
          this.#publish({ type: 'awareness', from: me, to: m.from, update: awarenessProtocol.encodeAwarenessUpdate(room.awareness, clients) });
        }
        return;
      }
      case 'sync-reply':
        room.applyRemoteUpdate(m.update, this.#origin);
        this.#publish({ type: 'sync-step2', from: me, to: m.from, update: Y.encodeStateAsUpdate(room.doc, m.stateVector) });
        if (this.#catchUp) {
          this.#catchUp.replied.add(m.from);
          if (this.#catchUp.expected > 0 && this.#catchUp.replied.size >= this.#catchUp.expected) this.#endCatchUp();
        }
        return;
      case 'sync-step2':
        room.applyRemoteUpdate(m.update, this.#origin);
        return;
      case 'lease-released':
        void this.#lease.tryNow();
        return;
      case 'room-ended':
        this.#endedElsewhere = true;
        this.#log.info({ by: m.from }, 'the room was ended on another node; closing it here');
        void room.close('ended');
        return;
    }
  }

  /**
   * Takes the room's next fencing token for this holding of the lease, merges in what the store
   * holds, then saves at once what changed while no node could store it. While the store cannot
   * be reached the room keeps playing from memory, unsaved, and this retries with backoff for as
   * long as the lease is held.
   *
   * The merge: once this token is taken no older one can write, so the document read after it is
   * the last one any former holder saved. Whatever of it never reached this node through Redis
   * (its holder was cut off from Redis, not from the store) is kept, not overwritten by this
   * node's first save.
   */
  async #takeFence(tenure: number, attempt: number): Promise<void> {
    if (this.#closing || tenure !== this.#tenure) return;
    let fence: number;
    let stored: Uint8Array | null;
    try {
      fence = await this.#opts.store.takeRoomFence(this.room.id);
      stored = (await this.#opts.store.getRoom(this.room.id))?.doc ?? null;
    } catch (err) {
      if (this.#closing || tenure !== this.#tenure) return;
      const retryInMs = Math.min(FENCE_RETRY_MIN_MS * 2 ** attempt, FENCE_RETRY_MAX_MS);
      // Once per outage at warn level; the retries after it at debug.
      if (attempt === 0) this.#log.warn({ err, retryInMs }, 'taking a fencing token from the store failed; the room is not saved until one is taken');
      else this.#log.debug({ err: (err as Error).message, attempt, retryInMs }, 'taking a fencing token failed again');
      this.#fenceRetryTimer = setTimeout(() => {
        this.#fenceRetryTimer = null;
        void this.#takeFence(tenure, attempt + 1);
      }, retryInMs);
      return;
    }
    if (this.#closing || tenure !== this.#tenure) {
      // Lost while the store answered: of no use to this node. If another node took the lease
      // meanwhile, its own token is now older and refused; it then takes the lease and a token again.
      if (!this.#closing) this.#log.warn({ fence }, 'the lease was lost while taking a fencing token; the token is not used');
      return;
    }
    if (stored && !this.room.closed) {
      try {
        this.room.applyRemoteUpdate(stored, STORE_ORIGIN);
      } catch (err) {
        // Closing meanwhile (InvalidStateError), or a document that cannot be read: this node's own stands.
        this.#log.warn({ err }, 'merging the stored document after taking the lease failed');
      }
    }
    this.#fence = fence;
    this.#log.info({ fence }, 'fencing token taken; the room is saved with it');
    try {
      await this.room.flush();
    } catch (err) {
      this.#log.error({ err }, 'saving the room after taking the lease failed');
    }
  }

  #clearFenceRetry(): void {
    if (this.#fenceRetryTimer) clearTimeout(this.#fenceRetryTimer);
    this.#fenceRetryTimer = null;
  }

  /** Fire and forget, in order (one connection); a failure is logged. */
  #publish(m: BridgeMessage): void {
    void this.#publishNow(m);
  }

  async #publishNow(m: BridgeMessage): Promise<number> {
    try {
      return await this.#opts.channel.publish(encodeBridgeMessage(m));
    } catch (err) {
      this.#log.warn({ err, type: m.type }, 'publishing to the room channel failed');
      return 0;
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Whether the document holds changes that wait for others it never got. */
function hasGap(doc: Y.Doc): boolean {
  return doc.store.pendingStructs !== null || doc.store.pendingDs !== null;
}
