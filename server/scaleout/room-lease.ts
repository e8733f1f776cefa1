// Which node stores a room's document: the one whose id is the value of the
// room's lease key in Redis. Taken with SET NX PX, renewed by its holder well
// inside the ttl, given back on close; a holder that dies (SIGKILL) simply stops
// renewing, and the key expires for another node to take.
//
// The holder counts its lease from the moment it *sent* the command that set or
// renewed the key, so it believes it holds the lease a little less long than Redis
// keeps the key, never longer: when Redis cannot be reached, the node stops
// writing before any other node can have taken over.
import type { Logger } from '../logger.ts';

/** The commands a lease needs (a node-redis client has them). */
export interface LeaseClient {
  set(key: string, value: string, options: { expiration: { type: 'PX'; value: number }; condition: 'NX' }): Promise<unknown>;
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export interface RoomLeaseOptions {
  client: LeaseClient;
  key: string;
  nodeId: string;
  ttlMs: number;
  /** How often the holder renews, and how often a non-holder tries to take it. Well inside ttlMs. */
  renewMs: number;
  log: Logger;
  now?: () => number;
  /** This node took the lease (after it was free or had expired). */
  onAcquired?: () => void;
  /** This node lost the lease (another node holds it, or Redis could not confirm it in time). */
  onLost?: () => void;
}

// Compare-and-extend and compare-and-delete: only the holder may renew or release.
const RENEW_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";
const RELEASE_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

export class RoomLease {
  readonly #opts: RoomLeaseOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | null = null;
  #held = false;
  /** Local time until which the lease is surely ours. */
  #validUntil = 0;
  #tick: Promise<void> | null = null;
  #failing = false;
  #closing: Promise<void> | null = null;

  constructor(opts: RoomLeaseOptions) {
    if (!(opts.renewMs > 0 && opts.renewMs < opts.ttlMs)) throw new RangeError(`the renew interval (${opts.renewMs} ms) must be shorter than the ttl (${opts.ttlMs} ms)`);
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
  }

  /** Tries to take the lease now, then renews it (or keeps trying) every renewMs. */
  start(): Promise<void> {
    if (this.#closing || this.#timer) return Promise.resolve();
    this.#timer = setInterval(() => void this.#run(), this.#opts.renewMs);
    return this.#run();
  }

  /** Whether this node holds the lease now. */
  get holds(): boolean {
    return this.#held && this.#now() < this.#validUntil;
  }

  /** Tries at once (a holder said it let go) instead of at the next interval. */
  tryNow(): Promise<void> {
    if (this.#closing || !this.#timer || this.holds) return Promise.resolve();
    return this.#run();
  }

  /**
   * Gives the lease up at once, though Redis may still name this node (the store refused this
   * node's fencing token: another node took a newer one). It stops counting itself the holder,
   * deletes the key if it is still its own, and competes for the lease again like any other node.
   */
  letGo(why: string): void {
    if (!this.#held || this.#closing) return;
    this.#lose(why);
    const { client, key, nodeId, log } = this.#opts;
    // On the same connection as any renewal in flight, so it lands after it.
    client.eval(RELEASE_SCRIPT, { keys: [key], arguments: [nodeId] }).catch((err: unknown) => log.warn({ err, key }, 'giving the lease up failed; it expires by itself'));
  }

  /** For tests: the timers this lease keeps. */
  get timers(): number {
    return this.#timer ? 1 : 0;
  }

  /** Stops renewing and gives the lease back if held. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
    await this.#tick;
    if (!this.#held) return;
    this.#held = false;
    const { client, key, nodeId, log } = this.#opts;
    try {
      await client.eval(RELEASE_SCRIPT, { keys: [key], arguments: [nodeId] });
      log.info({ key }, 'lease released');
    } catch (err) {
      // It expires by itself within the ttl.
      log.warn({ err, key }, 'releasing the lease failed; it expires by itself');
    }
  }

  #run(): Promise<void> {
    // One command in flight at a time: a slow Redis must not pile up ticks.
    this.#tick ??= this.#step().finally(() => {
      this.#tick = null;
    });
    return this.#tick;
  }

  async #step(): Promise<void> {
    if (this.#closing) return;
    const { client, key, nodeId, ttlMs, log } = this.#opts;
    const sentAt = this.#now();
    try {
      if (this.#held) {
        const renewed = await client.eval(RENEW_SCRIPT, { keys: [key], arguments: [nodeId, String(ttlMs)] });
        // Given up meanwhile (letGo): the release it sent after this renewal deletes the key.
        if (!this.#held) return;
        if (Number(renewed) === 1) this.#validUntil = sentAt + ttlMs;
        else this.#lose('its key expired or another node holds it');
      } else {
        const reply = await client.set(key, nodeId, { expiration: { type: 'PX', value: ttlMs }, condition: 'NX' });
        if (reply === 'OK' && !this.#closing) {
          this.#held = true;
          this.#validUntil = sentAt + ttlMs;
          log.info({ key, ttlMs }, 'lease acquired; this node stores the room');
          this.#opts.onAcquired?.();
        } else if (reply === 'OK') {
          // Closed while the command was in flight: close() gives it back.
          this.#held = true;
        }
      }
      if (this.#failing) log.info({ key }, 'lease commands work again');
      this.#failing = false;
    } catch (err) {
      if (!this.#failing) log.warn({ err, key }, 'lease command failed; retrying');
      this.#failing = true;
      if (this.#held && !this.holds) this.#lose('the lease could not be renewed within its ttl');
    }
  }

  #lose(why: string): void {
    this.#held = false;
    this.#validUntil = 0;
    this.#opts.log.warn({ key: this.#opts.key }, `lease lost: ${why}`);
    this.#opts.onLost?.();
  }
}
