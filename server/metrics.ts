import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Values the metrics read at scrape time from their owners. */
export interface MetricSources {
  releaseCount(): Promise<number>;
}

/** The process's metrics: Node's own and the project's counters, in one registry (no global state). */
export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests: Counter<'method' | 'route' | 'status'>;
  readonly httpDuration: Histogram<'method' | 'route'>;
  readonly releases: Gauge;
  readonly ingests: Counter<'result'>;
  readonly syncRefusals: Counter<'reason'>;

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
    this.ingests = new Counter({
      name: 'remixroom_ingests_total',
      help: 'Release ingests by this process, by result',
      labelNames: ['result'],
      registers: [this.registry],
    });
  }
}
