// The limits of shared/limits.ts, enforced: one object per process that every
// route and channel asks. A take names the limits that apply (a member's and its
// address's, say) and the subject; it takes from all of them or from none, and a
// refusal names the limit that refused and when to try again.
import { LIMITS, type CapName, type RateLimitName, type RateLimitSpec } from '../../shared/limits.ts';
import { limitRefusal, type Refusal } from '../../shared/refusals.ts';
import { ProxyTrust } from './address.ts';
import type { BucketSpec, BucketStore } from './bucket-store.ts';

/** Who is acting; each limit is keyed by the part its scope names (a limit whose part is missing does not apply). */
export interface LimitSubject {
  /** The member's user id (a person in a room, whatever connection or node). */
  member?: string;
  /** From limitAddress()/addressOf(). */
  address?: string;
  /** The invite's id (its token's subject). */
  invite?: string;
  room?: string;
}

export type LimitVerdict = { ok: true } | { ok: false; limit: RateLimitName; retryAfterMs: number };

const OK: LimitVerdict = Object.freeze({ ok: true });

export interface LimitsOptions {
  /** Caps that the configuration overrides (e.g. MAX_CONNECTIONS_PER_ADDRESS). */
  caps?: Partial<Record<CapName, number>>;
  /** Told of every refusal (the metrics count them by limit). */
  onRefused?: (limit: RateLimitName) => void;
  /** Whose X-Forwarded-For names the client (TRUSTED_PROXIES); loopback only by default. */
  proxies?: ProxyTrust;
}

export class Limits {
  readonly store: BucketStore;
  readonly #caps: Partial<Record<CapName, number>>;
  readonly #onRefused: (limit: RateLimitName) => void;
  readonly #proxies: ProxyTrust;

  constructor(store: BucketStore, opts: LimitsOptions = {}) {
    this.store = store;
    this.#proxies = opts.proxies ?? new ProxyTrust();
    this.#caps = opts.caps ?? {};
    this.#onRefused = opts.onRefused ?? (() => {});
  }

  /** The address a request's address limits count (the peer, or what a trusted proxy forwarded). */
  addressOf(req: Parameters<ProxyTrust['addressOf']>[0]): string {
    return this.#proxies.addressOf(req);
  }

  /** Whether `address` is a proxy whose X-Forwarded-For is believed (what Express's req.ip follows too). */
  trustsProxy(address: string): boolean {
    return this.#proxies.isTrusted(address);
  }

  /** The number a cap stands at here (the configuration's, else shared/limits.ts's). */
  cap(name: CapName): number {
    return this.#caps[name] ?? LIMITS[name].max;
  }

  /** Takes `cost` from each named limit that applies to `subject`, or nothing. */
  async take(names: readonly RateLimitName[], subject: LimitSubject, cost = 1): Promise<LimitVerdict> {
    const { buckets, named } = this.#buckets(names, subject);
    if (buckets.length === 0) return OK;
    const r = await this.store.take(buckets, cost, cost);
    if (r.granted >= cost) return OK;
    this.#onRefused(named[r.index]!);
    return { ok: false, limit: named[r.index]!, retryAfterMs: r.retryAfterMs };
  }

  /** Takes as many as all the named limits allow, up to `max` (at least one), or none with the wait. */
  async takeUpTo(names: readonly RateLimitName[], subject: LimitSubject, max: number): Promise<{ granted: number; limit?: RateLimitName; retryAfterMs: number }> {
    const { buckets, named } = this.#buckets(names, subject);
    if (buckets.length === 0) return { granted: max, retryAfterMs: 0 };
    const r = await this.store.take(buckets, 1, max);
    return r.granted > 0 ? { granted: r.granted, retryAfterMs: 0 } : { granted: 0, limit: named[r.index]!, retryAfterMs: r.retryAfterMs };
  }

  /** The same as take(), answering the refusal to send (null when allowed). */
  async refusalFor(names: readonly RateLimitName[], subject: LimitSubject, cost = 1): Promise<Refusal | null> {
    const v = await this.take(names, subject, cost);
    return v.ok ? null : limitRefusal(v.limit, v.retryAfterMs);
  }

  async close(): Promise<void> {
    await this.store.close();
  }

  #buckets(names: readonly RateLimitName[], subject: LimitSubject): { buckets: BucketSpec[]; named: RateLimitName[] } {
    const buckets: BucketSpec[] = [];
    const named: RateLimitName[] = [];
    for (const name of names) {
      const spec: RateLimitSpec = LIMITS[name];
      // A connection's caps are counted by whoever holds the connection, never through here.
      const part = spec.scope === 'process' ? 'all' : spec.scope === 'connection' ? undefined : subject[spec.scope];
      if (part === undefined) continue;
      buckets.push({ key: `${name}:${part}`, capacity: spec.capacity, refillPerSec: spec.refillPerSec });
      named.push(name);
    }
    return { buckets, named };
  }
}
