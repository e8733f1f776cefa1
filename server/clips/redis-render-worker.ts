// Render jobs in Redis: a renderer process's side (`npm run renderer`). It claims
// jobs (up to its concurrency at once), runs them through its Renderer, records how
// each went in the store, keeps its leases from a thread of its own
// (lease-keeper.worker.ts), and reaps the jobs of renderers that died. The queue's
// steps are in redis-job-queue.ts, the web nodes' side in redis-render-queue.ts.
import crypto from 'node:crypto';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import type { RedisClientType } from 'redis';
import type { RenderProgress } from '../../shared/socket-events.ts';
import type { Logger } from '../logger.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import { closeRedisClient } from '../util/redis-client.ts';
import type { LeaseKeeperData, LeaseKeeperIn, LeaseKeeperOut } from './lease-keeper.worker.ts';
import { connect, DEFAULT_PREFIX, RedisJobQueue } from './redis-job-queue.ts';
import { RENDER_ID, type ClipResult, type Renderer, type RenderRequest } from './render-job.ts';
import { reportOf, retryDelayMs, unreachableStoreOf, waitingMessage } from './render-queue.ts';

const POLL_MS = 1000;
const PROGRESS_STORE_EVERY_MS = 500;

class Shutdown extends Error {
  override readonly name = 'Shutdown';
}
class LeaseLost extends Error {
  override readonly name = 'LeaseLost';
}

export interface RenderWorkerOptions {
  redisUrl: string;
  store: Store;
  log: Logger;
  runner: Renderer;
  concurrency: number;
  leaseMs: number;
  maxAttempts: number;
  /** Wait before a failed render's first retry; each later retry waits four times longer (see retryDelayMs). */
  retryBaseMs: number;
  rendererId?: string;
  prefix?: string;
}

/** A renderer process's side: claims jobs (up to `concurrency` at once), renders them, keeps its leases, reaps dead renderers' jobs. */
export class RenderWorker {
  readonly id: string;
  readonly jobs: RedisJobQueue;
  readonly #o: RenderWorkerOptions;
  readonly #client: RedisClientType;
  readonly #subscriber: RedisClientType;
  readonly #log: Logger;
  readonly #running = new Map<string, { controller: AbortController; done: Promise<void> }>();
  readonly #timers: NodeJS.Timeout[] = [];
  /** The heartbeat, in its own thread (lease-keeper.worker.ts). */
  #keeper: Worker | null = null;
  #closed = false;
  #pumping = false;
  #again = false;
  /** Taking jobs fails (Redis is away): said once until it works again. */
  #claimFailing = false;

  private constructor(o: RenderWorkerOptions, id: string, client: RedisClientType, subscriber: RedisClientType) {
    this.#o = o;
    this.id = id;
    this.#client = client;
    this.#subscriber = subscriber;
    this.#log = o.log.child({ rendererId: id });
    this.jobs = new RedisJobQueue(client, o.prefix ?? DEFAULT_PREFIX);
  }

  static async create(o: RenderWorkerOptions): Promise<RenderWorker> {
    const id = o.rendererId ?? `${os.hostname()}-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
    const { client, subscriber } = await connect(o.redisUrl, o.log, 'renderer');
    return new RenderWorker(o, id, client, subscriber);
  }

  get running(): number {
    return this.#running.size;
  }

  async start(): Promise<void> {
    this.#keeper = await this.#startKeeper();
    await this.#subscriber.subscribe(this.jobs.wakeChannel, () => this.#pump());
    await this.#reap();
    const lease = this.#o.leaseMs;
    this.#timers.push(setInterval(() => void this.#reap(), Math.max(100, Math.floor(lease / 2))));
    this.#timers.push(setInterval(() => this.#pump(), POLL_MS));
    this.#log.info({ concurrency: this.#o.concurrency, leaseMs: lease, maxAttempts: this.#o.maxAttempts }, 'renderer started; taking render jobs from Redis');
    this.#pump();
  }

  /** Stops taking jobs; the ones running stop and go back to the front of the queue (their attempt not counted). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const t of this.#timers) clearInterval(t);
    for (const { controller } of this.#running.values()) controller.abort(new Shutdown('the renderer is shutting down'));
    await Promise.all([...this.#running.values()].map((r) => r.done));
    await this.#keeper?.terminate();
    await this.#subscriber.unsubscribe(this.jobs.wakeChannel).catch(() => {});
    await closeRedisClient(this.#subscriber, this.#log, 'renderer subscriber');
    await closeRedisClient(this.#client, this.#log, 'renderer');
  }

  #pump(): void {
    if (this.#closed) return;
    if (this.#pumping) {
      this.#again = true;
      return;
    }
    this.#pumping = true;
    void (async () => {
      try {
        do {
          this.#again = false;
          while (!this.#closed && this.#running.size < this.#o.concurrency) {
            const job = await this.jobs.claim(this.id, this.#o.leaseMs);
            this.#claimFailing = false;
            if (!job) break;
            if (this.#closed) {
              await this.jobs.release(job.id, this.id, { front: true, refund: true });
              break;
            }
            const controller = new AbortController();
            const entry = { controller, done: Promise.resolve() };
            this.#running.set(job.id, entry);
            this.#keep({ type: 'add', id: job.id });
            entry.done = this.#handle(job, controller).finally(() => {
              this.#running.delete(job.id);
              this.#keep({ type: 'remove', id: job.id });
              this.#pump();
            });
          }
        } while (this.#again && !this.#closed);
      } catch (err) {
        if (!this.#claimFailing) this.#log.warn({ err: (err as Error).message }, 'taking a render job failed; trying again every second');
        this.#claimFailing = true;
      } finally {
        this.#pumping = false;
      }
    })();
  }

  #startKeeper(): Promise<Worker> {
    const data: LeaseKeeperData = { redisUrl: this.#o.redisUrl, prefix: this.jobs.prefix, rendererId: this.id, leaseMs: this.#o.leaseMs };
    const keeper = new Worker(new URL('./lease-keeper.worker.ts', import.meta.url), { workerData: data, name: 'lease-keeper' });
    return new Promise((resolve, reject) => {
      keeper.once('error', reject);
      keeper.on('message', (m: LeaseKeeperOut) => {
        if (m.type === 'ready') {
          keeper.off('error', reject);
          keeper.on('error', (err) => this.#log.error({ err }, 'the lease keeper died: running jobs will be taken up by other renderers'));
          resolve(keeper);
        } else if (m.type === 'lost') {
          for (const id of m.ids) this.#running.get(id)?.controller.abort(new LeaseLost('another renderer has this job now'));
        } else this.#log.warn({ err: m.message }, 'lease keeper');
      });
    });
  }

  #keep(m: LeaseKeeperIn): void {
    this.#keeper?.postMessage(m);
  }

  async #reap(): Promise<void> {
    try {
      for (const { id, renderer } of await this.jobs.reap()) {
        this.#log.warn({ renderId: id, deadRenderer: renderer }, 'a renderer stopped renewing its job (it died?); the job is queued again');
        const render = RENDER_ID.test(id) ? await this.#o.store.getRender(id) : null;
        if (render && render.status === 'running') {
          await this.#o.store.updateRender(id, { status: 'queued' });
          await this.#publishProgress(render.roomId, reportOf(render, 'queued', 0, 'the renderer stopped; the render is queued again'));
        }
      }
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'reaping render jobs failed');
    }
  }

  async #handle(job: { id: string; attempts: number }, controller: AbortController): Promise<void> {
    const { store, runner, maxAttempts, leaseMs } = this.#o;
    const { id, attempts } = job;
    const log = this.#log.child({ renderId: id, attempt: attempts });
    let render: RenderRecord | null = null;
    try {
      if (!RENDER_ID.test(id)) {
        log.warn('a job that is not a render id; skipped');
        await this.jobs.complete(id, this.id);
        return;
      }
      render = await store.getRender(id);
      if (!render) {
        log.warn('a job for a render the store does not have; skipped');
        await this.jobs.complete(id, this.id);
        return;
      }
      if (render.status === 'done' || render.status === 'failed') {
        log.warn({ status: render.status }, 'a job for a render already finished; skipped');
        await this.jobs.complete(id, this.id);
        return;
      }
      if (attempts > maxAttempts) {
        log.error({ maxAttempts }, 'the render was taken up too many times (its renderers died); given up');
        await this.#fail(render, attempts, `given up after ${maxAttempts} attempts`);
        return;
      }
      const current = render;
      const request = render.request as RenderRequest;
      await store.updateRender(id, { status: 'running' });
      await this.jobs.setProgress(id, 0, this.#progressTtl());
      log.info({ kind: render.kind, roomId: render.roomId }, 'render started');
      await this.#publishProgress(render.roomId, reportOf(render, 'running', 0));
      const started = performance.now();
      let lastStored = 0;
      const storeProgress = (fraction: number) => {
        const t = performance.now();
        if (t - lastStored < PROGRESS_STORE_EVERY_MS) return;
        lastStored = t;
        this.jobs.setProgress(id, fraction, this.#progressTtl()).catch(() => {});
      };
      let result: ClipResult;
      try {
        result = await runner.render(render, controller.signal, {
          onProgress: storeProgress,
          onReport: (fraction) => {
            this.jobs.setProgress(id, fraction, this.#progressTtl()).catch(() => {});
            this.#publishProgress(current.roomId, reportOf(current, 'running', fraction)).catch(() => {});
          },
          // Still ours? A renderer whose heartbeat came late may have lost the job to another, which
          // may have finished it: keeping our files now would overwrite the ones it marked done.
          beforeCommit: async () => {
            if ((await this.jobs.renew(this.id, leaseMs, [id])).length > 0) throw new LeaseLost('another renderer has this job now');
          },
        });
      } catch (err) {
        const reason: unknown = controller.signal.aborted ? controller.signal.reason : null;
        if (reason instanceof Shutdown) {
          if (await this.jobs.release(id, this.id, { front: true, refund: true })) {
            await store.updateRender(id, { status: 'queued' });
            await this.#publishProgress(render.roomId, reportOf(render, 'queued', 0));
          }
          log.info('renderer shutting down: the job is handed back to the queue');
          return;
        }
        if (reason instanceof LeaseLost || err instanceof LeaseLost) {
          log.warn('lost the claim on this job (a late heartbeat); its files are not kept, left to the renderer that has it now');
          return;
        }
        // A store that cannot be reached is no fault of the render: it waits (below).
        if (unreachableStoreOf(err)) throw err;
        log.error({ err }, 'clip render failed');
        if (attempts < maxAttempts) {
          // A failure may pass (a full disk, a crashed encoder): the job waits before it runs again,
          // longer each time, rather than spending every attempt within seconds.
          const delayMs = retryDelayMs(this.#o.retryBaseMs, attempts);
          if (await this.jobs.release(id, this.id, { front: false, refund: false, delayMs })) {
            await store.updateRender(id, { status: 'queued' });
            await this.#publishProgress(render.roomId, reportOf(render, 'queued', 0, `the render failed; trying again in ${Math.ceil(delayMs / 1000)} s`));
          }
          return;
        }
        await this.#fail(render, attempts, 'the render failed');
        return;
      }
      // Still ours? A renderer whose heartbeat came too late may have lost the job to another.
      if ((await this.jobs.renew(this.id, leaseMs, [id])).length > 0) {
        log.warn('finished a job another renderer has now; the result is left to it');
        return;
      }
      await store.updateRender(id, { status: 'done', result: { ...result, renderedBy: this.id, attempts } satisfies ClipResult });
      await this.jobs.complete(id, this.id);
      await this.jobs.setProgress(id, 1, this.#progressTtl());
      await this.#publishProgress(render.roomId, reportOf(render, 'done', 1));
      await this.jobs.publish({ type: 'done', renderId: id });
      log.info({ kind: render.kind, roomId: render.roomId, seconds: request.seconds, ms: Math.round(performance.now() - started) }, 'render done');
    } catch (err) {
      const which = unreachableStoreOf(err);
      if (which) {
        await this.#waitForStore(id, render, which, err, log).catch((e: unknown) => log.error({ err: e }, 'handing a waiting render job back failed; its lease runs out and it runs again'));
        return;
      }
      // Left in `active`: with no heartbeat for it, its lease runs out and the job runs again.
      log.error({ err }, 'render job failed unexpectedly');
    }
  }

  /**
   * A store is unreachable (S3 or PostgreSQL down): the job goes back to wait, longer each time it
   * has (retryDelayMs on the job's `waits`, capped), its attempt refunded, so that an outage longer
   * than the retries fails no render. The row goes back to `queued` when the database can be told.
   */
  async #waitForStore(id: string, render: RenderRecord | null, which: 'files' | 'database', err: unknown, log: Logger): Promise<void> {
    const waits = ((await this.jobs.job(id))?.waits ?? 0) + 1;
    const delayMs = retryDelayMs(this.#o.retryBaseMs, waits);
    if (!(await this.jobs.release(id, this.id, { front: false, refund: true, delayMs, waited: true }))) {
      log.warn({ err: (err as Error).message, store: which }, 'a store is unreachable, and the job is no longer ours; left to the renderer that has it');
      return;
    }
    log.warn({ err: (err as Error).message, store: which, waits, delayMs }, 'a store is unreachable; the render waits and runs again (its attempt not counted)');
    await this.#o.store.updateRender(id, { status: 'queued' }).catch(() => {});
    if (render) await this.#publishProgress(render.roomId, reportOf(render, 'queued', 0, waitingMessage(which, delayMs)));
  }

  async #fail(render: RenderRecord, attempts: number, why: string): Promise<void> {
    await this.#o.store.updateRender(render.id, { status: 'failed', result: { error: 'the render failed', attempts } satisfies ClipResult });
    await this.jobs.complete(render.id, this.id);
    await this.#publishProgress(render.roomId, reportOf(render, 'failed', 0, 'the render failed; try again'));
    this.#log.error({ renderId: render.id, attempts, why }, 'render failed');
  }

  #publishProgress(roomId: string, progress: RenderProgress): Promise<void> {
    return this.jobs.publish({ type: 'progress', roomId, progress });
  }

  #progressTtl(): number {
    return Math.max(60_000, this.#o.leaseMs * 4);
  }
}
