// Token-bucket rate limiting per key (a member, a session, an address).
//
// A bucket holds up to `capacity` tokens and gains `refillPerSec` tokens a second;
// each action takes `cost` tokens or is refused with the time until it would fit.
// A key that has not acted recently has a full bucket, which is exactly what an
// unknown key gets, so full buckets are dropped instead of kept: memory follows
// the keys that are being limited right now, and at most `maxKeys` are kept at all.
// There are no timers, so there is nothing to close.

export interface RateLimit {
  /** Largest burst: the number of tokens a full bucket holds. */
  capacity: number;
  /** Tokens regained per second. */
  refillPerSec: number;
}

export type TakeResult = { ok: true } | { ok: false; retryAfterMs: number };

export interface RateLimiterOptions {
  /** Milliseconds on a monotonic-enough clock; injectable for tests. Default `performance.now()`. */
  now?: () => number;
  /** Most keys kept at once; beyond it the least recently used is forgotten. Default 100 000. */
  maxKeys?: number;
}

interface Bucket {
  tokens: number;
  /** When `tokens` was last brought up to date. */
  at: number;
}

// Refill arithmetic in floating point can land a hair under a whole token.
const EPSILON = 1e-9;
// Full buckets dropped per take at most, so that one call never does a long sweep.
const SWEEP_PER_TAKE = 16;

const OK: { ok: true } = Object.freeze({ ok: true });

export class RateLimiter {
  readonly #capacity: number;
  readonly #perMs: number;
  readonly #now: () => number;
  readonly #maxKeys: number;
  /** In least-recently-used order: every take moves its key to the end. */
  readonly #buckets = new Map<string, Bucket>();

  constructor(limit: RateLimit, opts: RateLimiterOptions = {}) {
    if (!(Number.isFinite(limit.capacity) && limit.capacity > 0)) {
      throw new RangeError(`rate limit capacity must be a positive number, not ${limit.capacity}`);
    }
    if (!(Number.isFinite(limit.refillPerSec) && limit.refillPerSec > 0)) {
      throw new RangeError(`rate limit refillPerSec must be a positive number, not ${limit.refillPerSec}`);
    }
    const maxKeys = opts.maxKeys ?? 100_000;
    if (!(Number.isInteger(maxKeys) && maxKeys >= 1)) {
      throw new RangeError(`maxKeys must be a positive integer, not ${maxKeys}`);
    }
    this.#capacity = limit.capacity;
    this.#perMs = limit.refillPerSec / 1000;
    this.#now = opts.now ?? (() => performance.now());
    this.#maxKeys = maxKeys;
  }

  /**
   * Takes `cost` tokens (default 1) from `key`'s bucket, or refuses without taking any and
   * says how long until the bucket holds enough. A refused attempt costs nothing, so a
   * client that retries after `retryAfterMs` succeeds.
   */
  take(key: string, cost = 1): TakeResult {
    // A cost the bucket can never hold is the caller's mistake, not the member's.
    if (!(Number.isFinite(cost) && cost >= 0 && cost <= this.#capacity)) {
      throw new RangeError(`cost must be between 0 and the capacity ${this.#capacity}, not ${cost}`);
    }
    const now = this.#now();
    this.#sweep(now);
    const bucket = this.#buckets.get(key);
    const tokens = bucket ? this.#level(bucket, now) : this.#capacity;
    const ok = tokens + EPSILON >= cost;
    const left = ok ? Math.max(0, tokens - cost) : tokens;
    // Re-inserted at the recent end: a key being refused is busy too, and must not be the
    // first evicted (eviction would hand a flooding member a fresh bucket).
    if (bucket) this.#buckets.delete(key);
    if (left + EPSILON < this.#capacity) {
      const b = bucket ?? { tokens: 0, at: 0 };
      b.tokens = left;
      b.at = now;
      this.#buckets.set(key, b);
      this.#evictOverflow();
    }
    if (ok) return OK;
    return { ok: false, retryAfterMs: Math.max(1, Math.ceil((cost - tokens) / this.#perMs)) };
  }

  /** Forgets `key`: its next take starts from a full bucket. */
  reset(key: string): void {
    this.#buckets.delete(key);
  }

  /** Keys currently held (full buckets may linger until a later take drops them). */
  size(): number {
    return this.#buckets.size;
  }

  #level(bucket: Bucket, now: number): number {
    // A clock that steps backwards refills nothing rather than draining.
    const elapsed = Math.max(0, now - bucket.at);
    return Math.min(this.#capacity, bucket.tokens + elapsed * this.#perMs);
  }

  /** Drops full buckets among the least recently used few; a bounded amount of work per call. */
  #sweep(now: number): void {
    let n = 0;
    for (const [key, bucket] of this.#buckets) {
      if (n++ >= SWEEP_PER_TAKE) break;
      if (this.#level(bucket, now) + EPSILON >= this.#capacity) this.#buckets.delete(key);
    }
  }

  #evictOverflow(): void {
    while (this.#buckets.size > this.#maxKeys) {
      const oldest = this.#buckets.keys().next();
      if (oldest.done) return;
      this.#buckets.delete(oldest.value);
    }
  }
}
