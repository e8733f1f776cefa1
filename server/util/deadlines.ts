// Deadlines for many objects on one timer: each object is put in the bucket of
// the second its deadline falls in, and one interval, running only while there
// are deadlines, hands the due ones to `onDue`. At thousands of connections this
// costs two map entries each instead of a timer and its closure each.

export class Deadlines<T> {
  readonly #onDue: (item: T) => void;
  readonly #tickMs: number;
  readonly #now: () => number;
  readonly #bucketOf = new Map<T, number>();
  readonly #buckets = new Map<number, Set<T>>();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(onDue: (item: T) => void, opts: { tickMs?: number; now?: () => number } = {}) {
    this.#onDue = onDue;
    this.#tickMs = opts.tickMs ?? 1000;
    this.#now = opts.now ?? Date.now;
  }

  /** Sets (or moves) `item`'s deadline to `atMs` (ms since the epoch). */
  set(item: T, atMs: number): void {
    if (this.#closed) return;
    this.delete(item);
    const bucket = Math.ceil(atMs / this.#tickMs);
    let set = this.#buckets.get(bucket);
    if (!set) {
      set = new Set();
      this.#buckets.set(bucket, set);
    }
    set.add(item);
    this.#bucketOf.set(item, bucket);
    this.#timer ??= setInterval(() => this.#tick(), this.#tickMs);
  }

  delete(item: T): void {
    const bucket = this.#bucketOf.get(item);
    if (bucket === undefined) return;
    this.#bucketOf.delete(item);
    const set = this.#buckets.get(bucket);
    set?.delete(item);
    if (set && set.size === 0) this.#buckets.delete(bucket);
    if (this.#bucketOf.size === 0) this.#stop();
  }

  get size(): number {
    return this.#bucketOf.size;
  }

  close(): void {
    this.#closed = true;
    this.#bucketOf.clear();
    this.#buckets.clear();
    this.#stop();
  }

  #tick(): void {
    const now = Math.floor(this.#now() / this.#tickMs);
    for (const [bucket, set] of this.#buckets) {
      if (bucket > now) continue;
      this.#buckets.delete(bucket);
      for (const item of set) {
        this.#bucketOf.delete(item);
        this.#onDue(item);
      }
    }
    if (this.#bucketOf.size === 0) this.#stop();
  }

  #stop(): void {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = null;
  }
}
