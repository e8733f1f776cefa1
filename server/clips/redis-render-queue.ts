// Render jobs in Redis, run by separate renderer processes (`npm run renderer`):
// the web node's side. It queues renders and hears how they go (progress and
// results on a pub/sub channel: every node hears every render and tells its own
// sockets); it renders nothing. The queue's steps are in redis-job-queue.ts, the
// renderers' side in redis-render-worker.ts.
import { EventEmitter } from 'node:events';
import type { RedisClientType } from 'redis';
import type { Logger } from '../logger.ts';
import type { Store } from '../store/store.ts';
import { closeRedisClient } from '../util/redis-client.ts';
import { connect, DEFAULT_PREFIX, parseMessage, RedisJobQueue } from './redis-job-queue.ts';
import type { RenderJobCounts, RenderQueue, RenderQueueEvents } from './render-queue.ts';

/** A web node's side of the Redis queue: it queues renders and hears how they go; it renders nothing. */
export class RedisRenderQueue extends EventEmitter<RenderQueueEvents> implements RenderQueue {
  readonly everyNodeHears = true;
  readonly jobs: RedisJobQueue;
  readonly #client: RedisClientType;
  readonly #subscriber: RedisClientType;
  readonly #store: Store;
  readonly #log: Logger;
  #closed = false;

  private constructor(client: RedisClientType, subscriber: RedisClientType, store: Store, log: Logger, prefix: string) {
    super();
    this.#client = client;
    this.#subscriber = subscriber;
    this.#store = store;
    this.#log = log;
    this.jobs = new RedisJobQueue(client, prefix);
  }

  static async create(opts: { redisUrl: string; store: Store; log: Logger; prefix?: string }): Promise<RedisRenderQueue> {
    const { client, subscriber } = await connect(opts.redisUrl, opts.log, 'web');
    const queue = new RedisRenderQueue(client, subscriber, opts.store, opts.log, opts.prefix ?? DEFAULT_PREFIX);
    await subscriber.subscribe(queue.jobs.eventsChannel, (raw) => queue.#onMessage(raw));
    opts.log.info('render queue: Redis (renders run in `npm run renderer` processes)');
    return queue;
  }

  async enqueue(id: string): Promise<void> {
    if (this.#closed) return;
    await this.jobs.enqueue(id);
  }

  progressOf(id: string): Promise<number | undefined> {
    return this.jobs.progress(id);
  }

  counts(): Promise<RenderJobCounts> {
    return this.jobs.counts();
  }

  /** Renders the store says are waiting or running go into the queue unless they are in it already (Redis may have lost them). */
  async resume(): Promise<void> {
    let queued = 0;
    for (const r of await this.#store.listRenders(['queued', 'running'])) if (await this.jobs.enqueue(r.id)) queued++;
    if (queued > 0) this.#log.info({ queued }, 'render queue: queued renders the store had waiting');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#subscriber.unsubscribe(this.jobs.eventsChannel).catch(() => {});
    await closeRedisClient(this.#subscriber, this.#log, 'render queue subscriber');
    await closeRedisClient(this.#client, this.#log, 'render queue');
  }

  #onMessage(raw: string): void {
    const m = parseMessage(raw);
    if (!m) {
      this.#log.warn({ raw: raw.slice(0, 200) }, 'render queue: a message that is not one; ignored');
      return;
    }
    if (m.type === 'progress') this.emit('progress', m.roomId, m.progress);
    else
      this.#store.getRender(m.renderId).then(
        (render) => {
          if (render && render.status === 'done') this.emit('done', render);
        },
        (err: unknown) => this.#log.error({ err, renderId: m.renderId }, 'render queue: reading a finished render failed'),
      );
  }
}
