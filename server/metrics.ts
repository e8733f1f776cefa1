import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Values the metrics read at scrape time from their owners. */
export interface MetricSources {
  releaseCount(): Promise<number>;
}

/** A store with a connection pool (PostgreSQL): what /metrics reads of it. */
export interface PooledDatabase {
  poolStats(): { total: number; idle: number; waiting: number };
  observeQueries(observer: ((seconds: number, ok: boolean) => void) | null): void;
}

/** Long-lived connections a server holds: y-websocket sync, socket.io. */
export type ConnectionKind = 'sync' | 'socket';

/** The process's metrics: Node's own and the project's counters, in one registry (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly releases: Gauge;
  readonly ingests: Counter<'result'>;
  readonly syncRefusals: Counter<'reason'>;
  readonly syncEdits: Counter<'outcome'>;
  readonly limitRefusals: Counter<'limit'>;
  readonly staleSaves: Counter;
  /** Object store calls (all attempts of one call), by operation: put, multipart, get, head, list, delete, head-bucket; get-body: a download's body into the cache. */
  readonly s3Duration: Histogram<'op'>;
  /** Object store calls that failed after their retries, by operation and error code. */
  readonly s3Errors: Counter<'op' | 'code'>;
  #renderJobs: (() => Promise<{ queued: number; running: number; retrying: number }>) | null = null;
  /** Per kind: the counts of the servers holding such connections, summed at scrape time. */
  readonly #connectionSources = new Map<ConnectionKind, Set<() => number>>();

  constructor(sources: MetricSources) {
    collectDefaultMetrics({ register: this.registry, prefix: 'remixroom_' });
    this.httpRequests = new Counter({
      name: 'remixroom_http_requests_total',
      help: 'HTTP requests answered, by route and status',
      labelNames: ['method', 'route', 'status'],
      registers: [this.registry],
    });
    this.httpDuration = new Histogram({
      name: 'remixroom_http_request_duration_seconds',
      help: 'Time to answer an HTTP request',
      labelNames: ['method', 'route'],
      buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers: [this.registry],
    });
    this.releases = new Gauge({
      name: 'remixroom_releases',
      help: 'Releases in the catalog',
      registers: [this.registry],
      async collect() {
        this.set(await sources.releaseCount());
      },
    });
    this.syncRefusals = new Counter({
      name: 'remixroom_sync_refusals_total',
      help: 'Sync connections and messages refused, by reason',
      labelNames: ['reason'],
      registers: [this.registry],
    });
    this.syncEdits = new Counter({
      name: 'remixroom_sync_edits_total',
      help: "Members' document edits by what became of them: applied (at once, or later in a merged batch), queued (waiting for the member's rate), overflow (too many waiting: the connection was dropped)",
      labelNames: ['outcome'],
      registers: [this.registry],
    });
    this.limitRefusals = new Counter({
      name: 'remixroom_limit_refusals_total',
      help: 'Actions refused by a limit (shared/limits.ts), by limit',
      labelNames: ['limit'],
      registers: [this.registry],
    });
    this.s3Duration = new Histogram({
      name: 'remixroom_s3_request_duration_seconds',
      help: 'Time of an object store call, retries included, by operation',
      labelNames: ['op'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [this.registry],
    });
    this.s3Errors = new Counter({
      name: 'remixroom_s3_errors_total',
      help: 'Object store calls that failed after their retries, by operation and error code',
      labelNames: ['op', 'code'],
      registers: [this.registry],
    });
    const metrics = this;
    new Gauge({
      name: 'remixroom_render_jobs',
      help: "Render jobs in the queue by state (queued, running, retrying: waiting out a retry delay); with the Redis queue every node reports the whole queue",
      labelNames: ['state'],
      registers: [this.registry],
      async collect() {
        const source = metrics.#renderJobs;
        if (!source) return;
        // A queue that cannot be read (Redis away) leaves the last figures; the rest of the scrape still answers.
        const c = await source().catch(() => null);
        if (!c) return;
        this.set({ state: 'queued' }, c.queued);
        this.set({ state: 'running' }, c.running);
        this.set({ state: 'retrying' }, c.retrying);
      },
    });
    this.ingests = new Counter({
      name: 'remixroom_ingests_total',
      help: 'Release ingests by this process, by result',
      labelNames: ['result'],
      registers: [this.registry],
    });
    this.staleSaves = new Counter({
      name: 'remixroom_store_stale_saves_total',
      help: "Room saves the store refused because their fencing token was stale (scale-out: another node took the room's lease)",
      registers: [this.registry],
    });
  }

  /**
   * PostgreSQL's pool (connections in use, idle, and callers waiting for one) and the latency of
   * every query, as remixroom_db_pool_connections{state} and remixroom_db_query_duration_seconds{outcome}.
   * Only a pooled store reports them, so the embedded SQLite mode shows neither.
   */
  trackDatabase(db: PooledDatabase): void {
    new Gauge({
      name: 'remixroom_db_pool_connections',
      help: "The database pool's connections by state: total (open), idle, waiting (callers waiting for one)",
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const s = db.poolStats();
        this.set({ state: 'total' }, s.total);
        this.set({ state: 'idle' }, s.idle);
        this.set({ state: 'waiting' }, s.waiting);
      },
    });
    const latency = new Histogram({
      name: 'remixroom_db_query_duration_seconds',
      help: 'Time of a database query, from asking the pool to the answer, by outcome (ok, error)',
      labelNames: ['outcome'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [this.registry],
    });
    db.observeQueries((seconds, ok) => latency.observe({ outcome: ok ? 'ok' : 'error' }, seconds));
  }

  /** Where `remixroom_render_jobs` reads the queue's counts at scrape time. */
  trackRenderJobs(counts: () => Promise<{ queued: number; running: number; retrying: number }>): void {
    this.#renderJobs = counts;
  }

  /**
   * A server reports how many connections of `kind` it holds now; read at scrape time into
   * `remixroom_<kind>_connections`. The gauge exists once a server of that kind reports, so
   * an unwired server never shows as zero. Returns the function that stops the reporting.
   */
  trackConnections(kind: ConnectionKind, count: () => number): () => void {
    let sources = this.#connectionSources.get(kind);
    if (!sources) {
      const all = new Set<() => number>();
      sources = all;
      this.#connectionSources.set(kind, all);
      new Gauge({
        name: `remixroom_${kind}_connections`,
        help: kind === 'sync' ? 'y-websocket sync connections held now' : 'socket.io connections held now',
        registers: [this.registry],
        collect() {
          let n = 0;
          for (const c of all) n += c();
          this.set(n);
        },
      });
    }
    sources.add(count);
    const own = sources;
    return () => {
      own.delete(count);
    };
  }
}
