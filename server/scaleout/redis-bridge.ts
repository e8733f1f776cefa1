// Scale-out: the nodes that serve one room share its document and awareness
// through Redis, and one of them at a time stores it. The bridge owns this node's
// two Redis connections (a publisher, which also runs the lease commands, and a
// subscriber) and one RoomLink per room open here.
//
//   channel  <prefix>:room:<roomId>        updates, awareness, sync between nodes (bridge-messages.ts)
//   key      <prefix>:room:<roomId>:lease  the id of the node that stores the room (room-lease.ts)
//
// The node that holds a room's lease saves it with a fencing token from the store
// (room-link.ts), which refuses the saves of a former holder.
//
// Redis only relays: every node still handles every message of the rooms it serves.
import crypto from 'node:crypto';
import os from 'node:os';
import { createClient, type RedisClientType } from 'redis';
import type { Logger } from '../logger.ts';
import { InvalidStateError, type Room, type RoomFencing } from '../rooms/room.ts';
import type { Store } from '../store/store.ts';
import { RoomLink, type LinkChannel } from './room-link.ts';

export const DEFAULT_LEASE_TTL_MS = 5000;
export const DEFAULT_LEASE_RENEW_MS = 1500;
const DEFAULT_CATCH_UP_TIMEOUT_MS = 1000;
const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
const RESYNC_MIN_INTERVAL_MS = 500;
import { REDIS_CLOSE_TIMEOUT_MS as CLIENT_CLOSE_TIMEOUT_MS, closeRedisClient } from '../util/redis-client.ts';

export interface RedisBridgeOptions {
  redisUrl: string;
  log: Logger;
  /** The rooms' store: it hands out their fencing tokens (and refuses saves with older ones). */
  store: Pick<Store, 'takeRoomFence' | 'getRoom'>;
  /** The store refused a stale save of a room (for the metrics). */
  onStaleSave?: () => void;
  /** Unique per process; by default host name, pid and a random part. */
  nodeId?: string;
  /** How long a room's storage lease lasts without renewal. */
  leaseTtlMs?: number;
  /** How often the holder renews (and others try to take a free lease); by default 30% of the ttl. */
  leaseRenewMs?: number;
  /** How long an opening room waits for the state of the nodes already serving it. */
  catchUpTimeoutMs?: number;
  /** How long create() waits for Redis before it gives up. */
  connectTimeoutMs?: number;
  /** Prefix of every channel and key, so that several deployments can share one Redis. */
  keyPrefix?: string;
}

export class RedisBridgeError extends Error {
  override readonly name = 'RedisBridgeError';
}

export class RedisBridge {
  readonly nodeId: string;
  readonly #opts: RedisBridgeOptions;
  readonly #log: Logger;
  readonly #publisher: RedisClientType;
  readonly #subscriber: RedisClientType;
  readonly #links = new Map<string, RoomLink>();
  /** Links still unsubscribing and releasing, by room id: a room reopened here waits for them. */
  readonly #unlinking = new Map<string, Promise<void>>();
  readonly #disposers: (() => void)[] = [];
  readonly #leaseTtlMs: number;
  readonly #leaseRenewMs: number;
  #closing: Promise<void> | null = null;

  private constructor(opts: RedisBridgeOptions, nodeId: string, log: Logger, publisher: RedisClientType, subscriber: RedisClientType) {
    this.#opts = opts;
    this.nodeId = nodeId;
    this.#log = log;
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#leaseTtlMs = opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    this.#leaseRenewMs = opts.leaseRenewMs ?? (opts.leaseTtlMs ? Math.round(opts.leaseTtlMs * 0.3) : DEFAULT_LEASE_RENEW_MS);
    // After the subscriber reconnects (node-redis resubscribes by itself), the
    // messages of the outage are gone: every room asks the others for what it missed.
    const onReady = () => {
      this.#log.info({ rooms: this.#links.size }, 'subscriber reconnected to Redis; resyncing the rooms');
      for (const link of this.#links.values()) link.resync();
    };
    subscriber.on('ready', onReady);
    this.#disposers.push(() => subscriber.off('ready', onReady));
  }

  /** Connects to Redis; rejects with RedisBridgeError when it cannot within connectTimeoutMs. */
  static async create(opts: RedisBridgeOptions): Promise<RedisBridge> {
    const nodeId = opts.nodeId ?? `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const log = opts.log.child({ component: 'scaleout', nodeId });
    const ttl = opts.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS;
    const renew = opts.leaseRenewMs ?? (opts.leaseTtlMs ? Math.round(opts.leaseTtlMs * 0.3) : DEFAULT_LEASE_RENEW_MS);
    if (!(renew > 0 && renew < ttl)) throw new RangeError(`the lease renew interval (${renew} ms) must be shorter than its ttl (${ttl} ms)`);
    const publisher: RedisClientType = createClient({
      url: opts.redisUrl,
      socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000) },
    });
    const subscriber: RedisClientType = publisher.duplicate();
    reportErrors(publisher, log, 'publisher');
    reportErrors(subscriber, log, 'subscriber');
    const timeoutMs = opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all([publisher.connect(), subscriber.connect()]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new RedisBridgeError(`no connection within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (err) {
      publisher.destroy();
      subscriber.destroy();
      throw new RedisBridgeError(`cannot reach Redis at ${redactUrl(opts.redisUrl)}: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
    log.info({ leaseTtlMs: ttl, leaseRenewMs: renew }, 'scale-out bridge connected to Redis');
    return new RedisBridge(opts, nodeId, log, publisher, subscriber);
  }

  /**
   * The RoomManager's hooks: link each room that opens here; save a room only with the fencing
   * token of its lease, while this node holds it.
   */
  hooks(): { onRoomOpened: (room: Room) => Promise<void>; fencing: (roomId: string) => RoomFencing } {
    return { onRoomOpened: (room) => this.attach(room), fencing: (roomId) => this.fencingOf(roomId) };
  }

  /** How the room of this id saves on this node (looked up at each save: its link comes and goes with the room). */
  fencingOf(roomId: string): RoomFencing {
    return {
      fence: () => this.#links.get(roomId)?.fence ?? null,
      refused: (err) => {
        const link = this.#links.get(roomId);
        if (link) link.fenceRefused(err);
        else this.#opts.onStaleSave?.();
      },
    };
  }

  /**
   * Links a room that opened on this node to the other nodes serving it; resolves
   * once it has caught up with them. The link closes when the room closes.
   */
  async attach(room: Room): Promise<void> {
    if (this.#closing) throw new InvalidStateError('the scale-out bridge is closed');
    if (this.#links.has(room.id)) throw new InvalidStateError(`room ${room.id} is linked already`);
    // A previous life of this room on this node may still be giving back its lease.
    await this.#unlinking.get(room.id);
    if (this.#closing) throw new InvalidStateError('the scale-out bridge is closed');
    if (room.closed) return;
    const link = new RoomLink({
      room,
      nodeId: this.nodeId,
      channel: this.#channel(room.id),
      leaseClient: this.#publisher,
      store: this.#opts.store,
      onStaleSave: this.#opts.onStaleSave,
      leaseKey: this.leaseKey(room.id),
      leaseTtlMs: this.#leaseTtlMs,
      leaseRenewMs: this.#leaseRenewMs,
      catchUpTimeoutMs: this.#opts.catchUpTimeoutMs ?? DEFAULT_CATCH_UP_TIMEOUT_MS,
      resyncMinIntervalMs: RESYNC_MIN_INTERVAL_MS,
      log: this.#log,
    });
    this.#links.set(room.id, link);
    room.once('close', (reason) => this.#unlink(link, reason));
    await link.open();
  }

  /** Whether this node writes the room's document now (it holds the room's lease and its fencing token). */
  shouldPersist(roomId: string): boolean {
    return this.#links.get(roomId)?.persists ?? false;
  }

  channelOf(roomId: string): string {
    return `${this.#prefix}:room:${roomId}`;
  }

  leaseKey(roomId: string): string {
    return `${this.#prefix}:room:${roomId}:lease`;
  }

  /** For tests: what the bridge still holds. */
  resources(): { rooms: number; subscriptions: number; leases: number; timers: number; unlinking: number } {
    let subscriptions = 0;
    let leases = 0;
    let timers = 0;
    for (const link of this.#links.values()) {
      const r = link.resources();
      if (r.subscribed) subscriptions++;
      if (r.lease) leases++;
      timers += r.timers;
    }
    return { rooms: this.#links.size, subscriptions, leases, timers, unlinking: this.#unlinking.size };
  }

  /** Unlinks every room (unsubscribes, gives leases back) and closes both connections. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    for (const link of [...this.#links.values()]) void this.#unlink(link, 'bridge-closed');
    // With Redis away, unsubscribing and releasing wait in the clients' queues: bounded, and leases expire by themselves.
    let timer: NodeJS.Timeout | undefined;
    const unlinked = await Promise.race([
      Promise.all([...this.#unlinking.values()]).then(() => true),
      new Promise<false>((resolve) => {
        timer = setTimeout(() => resolve(false), CLIENT_CLOSE_TIMEOUT_MS);
      }),
    ]);
    clearTimeout(timer);
    if (!unlinked) this.#log.warn({ rooms: this.#unlinking.size }, 'Redis did not confirm every unsubscribe and lease release in time; dropping the connections');
    for (const dispose of this.#disposers.splice(0).reverse()) dispose();
    await Promise.all([closeRedisClient(this.#subscriber, this.#log, 'subscriber'), closeRedisClient(this.#publisher, this.#log, 'publisher')]);
    this.#log.info('scale-out bridge closed');
  }

  get #prefix(): string {
    return this.#opts.keyPrefix ?? 'remixroom';
  }

  #unlink(link: RoomLink, reason: Parameters<RoomLink['close']>[0]): Promise<void> {
    const roomId = link.room.id;
    if (this.#links.get(roomId) === link) this.#links.delete(roomId);
    const unlinking = link.close(reason).finally(() => {
      if (this.#unlinking.get(roomId) === unlinking) this.#unlinking.delete(roomId);
    });
    this.#unlinking.set(roomId, unlinking);
    return unlinking;
  }

  #channel(roomId: string): LinkChannel {
    const name = this.channelOf(roomId);
    return {
      publish: (message) => this.#publisher.publish(name, message),
      subscribe: (listener) => this.#subscriber.subscribe(name, listener, true),
      unsubscribe: (listener) => this.#subscriber.unsubscribe(name, listener, true),
    };
  }
}

function reportErrors(client: RedisClientType, log: Logger, role: string): void {
  let reported = false;
  client.on('error', (err: Error) => {
    // The client reconnects by itself; say so once per outage, not once per attempt.
    if (!reported) log.warn({ err: err.message, role }, 'Redis unreachable; retrying');
    reported = true;
  });
  client.on('ready', () => {
    if (reported) log.info({ role }, 'Redis reachable again');
    reported = false;
  });
}

function redactUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
