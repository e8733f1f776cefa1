// Where the token buckets of the limits live: in this process (one node), or in
// Redis (scale-out), so that a member or an address has one allowance whichever
// node its requests reach. A take is all-or-nothing over several buckets (a member's
// and its address's), so that a refusal by one costs nothing from the other.
import type { RedisClientType } from 'redis';

export interface BucketSpec {
  key: string;
  capacity: number;
  refillPerSec: number;
}

/** `granted` tokens taken from every bucket (0: none, and `retryAfterMs` until one would fit; `index`: the bucket that lacked). */
export type BucketTake = { granted: number; index: number; retryAfterMs: number };

export interface BucketStore {
  readonly kind: 'local' | 'redis';
  /**
   * Takes the same number of tokens from every bucket: `max` when all hold that many, else as many
   * as all hold, whole, but at least `min`; or none.
   */
  take(buckets: readonly BucketSpec[], min: number, max: number): Promise<BucketTake>;
  close(): Promise<void>;
}

// Refill arithmetic in floating point can land a hair under a whole token.
const EPSILON = 1e-9;

interface Bucket {
  tokens: number;
  at: number;
  capacity: number;
  perMs: number;
}

/**
 * One process's buckets. A bucket that is full again is what an unknown key gets, so full ones are
 * dropped (a bounded sweep per call) and at most `maxKeys` are kept; there are no timers.
 */
export class LocalBucketStore implements BucketStore {
  readonly kind = 'local';
  readonly #buckets = new Map<string, Bucket>();
  readonly #now: () => number;
  readonly #maxKeys: number;

  constructor(opts: { now?: () => number; maxKeys?: number } = {}) {
    this.#now = opts.now ?? (() => performance.now());
    this.#maxKeys = opts.maxKeys ?? 200_000;
  }

  async take(buckets: readonly BucketSpec[], min: number, max: number): Promise<BucketTake> {
    return this.takeNow(buckets, min, max);
  }

  /** The same, at once (the local store needs no wait). */
  takeNow(buckets: readonly BucketSpec[], min: number, max: number): BucketTake {
    const now = this.#now();
    this.#sweep(now);
    let grant = max;
    const levels: number[] = [];
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      const known = this.#buckets.get(b.key);
      const level = known ? level_(known, now) : b.capacity;
      levels.push(level);
      const whole = Math.floor(level + EPSILON);
      if (whole < min) return { granted: 0, index: i, retryAfterMs: Math.max(1, Math.ceil((min - level) / (b.refillPerSec / 1000))) };
      grant = Math.min(grant, whole);
    }
    for (let i = 0; i < buckets.length; i++) {
      const b = buckets[i]!;
      const left = Math.max(0, levels[i]! - grant);
      this.#buckets.delete(b.key);
      if (left + EPSILON < b.capacity) this.#buckets.set(b.key, { tokens: left, at: now, capacity: b.capacity, perMs: b.refillPerSec / 1000 });
    }
    while (this.#buckets.size > this.#maxKeys) this.#buckets.delete(this.#buckets.keys().next().value!);
    return { granted: grant, index: -1, retryAfterMs: 0 };
  }

  get size(): number {
    return this.#buckets.size;
  }

  async close(): Promise<void> {
    this.#buckets.clear();
  }

  #sweep(now: number): void {
    let n = 0;
    for (const [key, b] of this.#buckets) {
      if (n++ >= 16) break;
      if (level_(b, now) + EPSILON >= b.capacity) this.#buckets.delete(key);
    }
  }
}

function level_(b: Bucket, now: number): number {
  return Math.min(b.capacity, b.tokens + Math.max(0, now - b.at) * b.perMs);
}

/**
 * KEYS: the buckets. ARGV: min, max, then capacity and tokens-per-ms of each. Redis's own clock, so
 * that nodes whose clocks differ share one allowance. Each bucket is a hash {t: tokens, at: ms},
 * expiring when it would be full again (an unknown bucket is a full one).
 */
const TAKE = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local min = tonumber(ARGV[1])
local grant = tonumber(ARGV[2])
local levels = {}
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  local v = redis.call('HMGET', key, 't', 'at')
  local level = cap
  if v[1] then level = math.min(cap, tonumber(v[1]) + math.max(0, now - tonumber(v[2])) * rate) end
  local whole = math.floor(level + 1e-9)
  if whole < min then return {0, i - 1, math.max(1, math.ceil((min - level) / rate))} end
  if whole < grant then grant = whole end
  levels[i] = level
end
for i, key in ipairs(KEYS) do
  local cap = tonumber(ARGV[1 + 2 * i])
  local rate = tonumber(ARGV[2 + 2 * i])
  local left = math.max(0, levels[i] - grant)
  redis.call('HSET', key, 't', string.format('%.6f', left), 'at', now)
  redis.call('PEXPIRE', key, math.ceil((cap - left) / rate) + 1000)
end
return {grant, -1, 0}
`;

/** How long a take may wait for Redis before this node decides alone. */
const REDIS_TAKE_TIMEOUT_MS = 250;

/**
 * Buckets in Redis (one Redis, not a Cluster: a take spans keys of several hash slots). While Redis
 * does not answer, each node keeps the limits by itself (a local store): a request is never held up
 * by an outage, and the limits still hold per node.
 */
export class RedisBucketStore implements BucketStore {
  readonly kind = 'redis';
  readonly #client: RedisClientType;
  readonly #prefix: string;
  readonly #fallback = new LocalBucketStore();
  readonly #onFallback: (err: Error) => void;
  #failing = false;

  constructor(client: RedisClientType, opts: { prefix?: string; onFallback?: (err: Error) => void } = {}) {
    this.#client = client;
    this.#prefix = opts.prefix ?? 'remixroom:limit:';
    this.#onFallback = opts.onFallback ?? (() => {});
  }

  async take(buckets: readonly BucketSpec[], min: number, max: number): Promise<BucketTake> {
    const args = [String(min), String(max)];
    for (const b of buckets) args.push(String(b.capacity), String(b.refillPerSec / 1000));
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = (await Promise.race([
        this.#client.eval(TAKE, { keys: buckets.map((b) => this.#prefix + b.key), arguments: args }),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`Redis did not answer within ${REDIS_TAKE_TIMEOUT_MS} ms`)), REDIS_TAKE_TIMEOUT_MS);
        }),
      ])) as [number, number, number];
      this.#failing = false;
      return { granted: Number(r[0]), index: Number(r[1]), retryAfterMs: Number(r[2]) };
    } catch (err) {
      // Said once per outage, not once per request.
      if (!this.#failing) this.#onFallback(err as Error);
      this.#failing = true;
      return this.#fallback.takeNow(buckets, min, max);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    // The client belongs to whoever made it.
  }
}
