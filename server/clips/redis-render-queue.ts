// Render jobs in Redis, run by separate renderer processes (`npm run renderer`).
//
// A small reliable queue (BullMQ needs ioredis; this is the part of it we need),
// every step one Lua script, so that no two processes see a job half-moved:
//   pending   a list of render ids waiting (LPUSH in, RPOP out; a job taken back goes to the RPOP end)
//   job:<id>  a hash per waiting or running job: attempts, enqueuedAt, renderer. A job is in the
//             queue exactly while this exists, so queuing it again changes nothing.
//   active    a hash: render id → the renderer running it (its processing set)
//   lease:<id> the running renderer's claim, `SET … PX leaseMs`, renewed by its heartbeat
//   delayed   a sorted set: render id → when (Redis's own clock, ms) a failed job may run again;
//             the next claim after that moves it to the front of `pending`
// A renderer that dies (SIGKILL, a lost machine) stops renewing; when the lease has
// expired, any renderer's reaper moves the job from `active` back to `pending` and
// it runs again elsewhere. A renderer renews only a job `active` still gives to it,
// and records a result only after checking that, so a job never runs twice at once
// to completion. Every claim counts an attempt; past the limit the render fails.
// Progress and results reach the web nodes on a pub/sub channel (every node hears
// every render and tells its own sockets); progress is also kept in a key with a
// TTL so that GET /api/clips/:id on any node can answer it.
// The scripts build key names from the prefix: one Redis, not a Redis Cluster.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import os from 'node:os';
import { Worker } from 'node:worker_threads';
import { createClient, type RedisClientType } from 'redis';
import type { RenderProgress } from '../../shared/socket-events.ts';
import type { Logger } from '../logger.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import { closeRedisClient } from '../util/redis-client.ts';
import type { ClipRequest, ClipResult, FullRequest, LoopRequest } from './clip-service.ts';
import { reportOf, retryDelayMs, type RenderJobCounts, type RenderQueue, type RenderQueueEvents } from './render-queue.ts';
import type { RenderRunner } from './render-runner.ts';
import type { LeaseKeeperData, LeaseKeeperIn, LeaseKeeperOut } from './lease-keeper.worker.ts';

export const DEFAULT_PREFIX = 'remixroom:renders:';
const RENDER_ID = /^[0-9a-f]{16}$/;
const POLL_MS = 1000;
const PROGRESS_STORE_EVERY_MS = 500;

// KEYS: job, pending. ARGV: prefix, id, now.
const ENQUEUE = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'attempts', 0, 'enqueuedAt', ARGV[3])
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('PUBLISH', ARGV[1] .. 'wake', ARGV[2])
return 1`;

// KEYS: pending, active, delayed. ARGV: prefix, renderer, leaseMs. Jobs whose retry delay is over
// go to the front first. Skips ids whose job is gone or already running (leftovers).
const CLAIM = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 100)
for _, id in ipairs(due) do
  redis.call('ZREM', KEYS[3], id)
  redis.call('RPUSH', KEYS[1], id)
end
while true do
  local id = redis.call('RPOP', KEYS[1])
  if not id then return false end
  local job = ARGV[1] .. 'job:' .. id
  if redis.call('EXISTS', job) == 1 and redis.call('HEXISTS', KEYS[2], id) == 0 then
    local attempts = redis.call('HINCRBY', job, 'attempts', 1)
    redis.call('HSET', job, 'renderer', ARGV[2])
    redis.call('HSET', KEYS[2], id, ARGV[2])
    redis.call('SET', ARGV[1] .. 'lease:' .. id, ARGV[2], 'PX', ARGV[3])
    return {id, attempts}
  end
end`;

// KEYS: active. ARGV: prefix, renderer, leaseMs, ids… Answers the ids that are no longer this renderer's.
const RENEW = `
local lost = {}
for i = 4, #ARGV do
  local id = ARGV[i]
  if redis.call('HGET', KEYS[1], id) == ARGV[2] then
    redis.call('SET', ARGV[1] .. 'lease:' .. id, ARGV[2], 'PX', ARGV[3])
  else
    table.insert(lost, id)
  end
end
return lost`;

// KEYS: active. ARGV: prefix, id, renderer. The job leaves the queue (done, failed, or skipped).
const COMPLETE = `
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[1] .. 'lease:' .. ARGV[2], ARGV[1] .. 'job:' .. ARGV[2])
return 1`;

// KEYS: active, pending, delayed. ARGV: prefix, id, renderer, front (1: next to run; 0: last),
// refund (1: the attempt does not count), delayMs (> 0: into `delayed` until then, not `pending`).
const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[1] .. 'lease:' .. ARGV[2])
if ARGV[5] == '1' then redis.call('HINCRBY', ARGV[1] .. 'job:' .. ARGV[2], 'attempts', -1) end
local delay = tonumber(ARGV[6])
if delay > 0 then
  local t = redis.call('TIME')
  redis.call('ZADD', KEYS[3], tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay, ARGV[2])
  return 1
end
if ARGV[4] == '1' then redis.call('RPUSH', KEYS[2], ARGV[2]) else redis.call('LPUSH', KEYS[2], ARGV[2]) end
redis.call('PUBLISH', ARGV[1] .. 'wake', ARGV[2])
return 1`;

// KEYS: active, pending. ARGV: prefix. Jobs whose renderer's lease expired go back to run next; answers [id, renderer]….
const REAP = `
local reaped = {}
local active = redis.call('HGETALL', KEYS[1])
for i = 1, #active, 2 do
  local id = active[i]
  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. id) == 0 then
    redis.call('HDEL', KEYS[1], id)
    redis.call('RPUSH', KEYS[2], id)
    table.insert(reaped, id)
    table.insert(reaped, active[i + 1])
  end
end
if #reaped > 0 then redis.call('PUBLISH', ARGV[1] .. 'wake', 'reaped') end
return reaped`;

type QueueMessage = { type: 'progress'; roomId: string; progress: RenderProgress } | { type: 'done'; renderId: string };

/** The queue's atomic steps (each one Lua script) over one Redis connection. */
export class RedisJobQueue {
  readonly #client: RedisClientType;
  readonly prefix: string;

  constructor(client: RedisClientType, prefix = DEFAULT_PREFIX) {
    this.#client = client;
    this.prefix = prefix;
  }

  get eventsChannel(): string {
    return `${this.prefix}events`;
  }

  get wakeChannel(): string {
    return `${this.prefix}wake`;
  }

  /** Queues a render id; false when it is already waiting or running. */
  async enqueue(id: string): Promise<boolean> {
    return (await this.#eval(ENQUEUE, [this.#key('job', id), this.#k('pending')], [this.prefix, id, String(Date.now())])) === 1;
  }

  /** Takes the next job for `renderer`, with a lease of `leaseMs`; null when none waits. */
  async claim(renderer: string, leaseMs: number): Promise<{ id: string; attempts: number } | null> {
    const r = (await this.#eval(CLAIM, [this.#k('pending'), this.#k('active'), this.#k('delayed')], [this.prefix, renderer, String(leaseMs)])) as [string, number] | null;
    return r ? { id: String(r[0]), attempts: Number(r[1]) } : null;
  }

  /** Renews `renderer`'s leases; answers the ids it no longer holds. */
  async renew(renderer: string, leaseMs: number, ids: readonly string[]): Promise<string[]> {
    if (ids.length === 0) return [];
    return ((await this.#eval(RENEW, [this.#k('active')], [this.prefix, renderer, String(leaseMs), ...ids])) as string[]).map(String);
  }

  /** Removes a job `renderer` holds from the queue; false when it does not hold it. */
  async complete(id: string, renderer: string): Promise<boolean> {
    return (await this.#eval(COMPLETE, [this.#k('active')], [this.prefix, id, renderer])) === 1;
  }

  /**
   * Puts a job `renderer` holds back: next to run (`front`) or last; `refund` does not count the
   * attempt; `delayMs` keeps it out of the queue that long first (then it runs next).
   */
  async release(id: string, renderer: string, opts: { front: boolean; refund: boolean; delayMs?: number }): Promise<boolean> {
    const delay = Math.max(0, Math.round(opts.delayMs ?? 0));
    const keys = [this.#k('active'), this.#k('pending'), this.#k('delayed')];
    return (await this.#eval(RELEASE, keys, [this.prefix, id, renderer, opts.front ? '1' : '0', opts.refund ? '1' : '0', String(delay)])) === 1;
  }

  /** Puts back every job whose renderer's lease has expired; answers them with the renderer that had each. */
  async reap(): Promise<{ id: string; renderer: string }[]> {
    const flat = ((await this.#eval(REAP, [this.#k('active'), this.#k('pending')], [this.prefix])) as string[]).map(String);
    const out: { id: string; renderer: string }[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: flat[i]!, renderer: flat[i + 1]! });
    return out;
  }

  async pending(): Promise<string[]> {
    return this.#client.lRange(this.#k('pending'), 0, -1);
  }

  async active(): Promise<Record<string, string>> {
    return this.#client.hGetAll(this.#k('active'));
  }

  /** Jobs waiting out a retry delay, with when (ms, Redis's clock) each may run again. */
  async delayed(): Promise<{ id: string; dueMs: number }[]> {
    return (await this.#client.zRangeWithScores(this.#k('delayed'), 0, -1)).map((e) => ({ id: e.value, dueMs: e.score }));
  }

  /** How many jobs wait, run, and wait out a retry delay (the same figures on every node). */
  async counts(): Promise<RenderJobCounts> {
    const [queued, running, retrying] = await Promise.all([this.#client.lLen(this.#k('pending')), this.#client.hLen(this.#k('active')), this.#client.zCard(this.#k('delayed'))]);
    return { queued, running, retrying };
  }

  async job(id: string): Promise<{ attempts: number; renderer: string | null } | null> {
    const h = await this.#client.hGetAll(this.#key('job', id));
    if (!h || Object.keys(h).length === 0) return null;
    return { attempts: Number(h['attempts'] ?? 0), renderer: h['renderer'] ?? null };
  }

  async setProgress(id: string, fraction: number, ttlMs: number): Promise<void> {
    await this.#client.set(this.#key('progress', id), String(Math.round(fraction * 1000) / 1000), { expiration: { type: 'PX', value: ttlMs } });
  }

  async progress(id: string): Promise<number | undefined> {
    const v = await this.#client.get(this.#key('progress', id));
    return v === null || !Number.isFinite(Number(v)) ? undefined : Number(v);
  }

  async publish(message: QueueMessage): Promise<void> {
    await this.#client.publish(this.eventsChannel, JSON.stringify(message));
  }

  #k(name: string): string {
    return `${this.prefix}${name}`;
  }

  #key(kind: string, id: string): string {
    return `${this.prefix}${kind}:${id}`;
  }

  #eval(script: string, keys: string[], args: string[]): Promise<unknown> {
    return this.#client.eval(script, { keys, arguments: args });
  }
}

async function connect(redisUrl: string, log: Logger, role: string, timeoutMs = 5000): Promise<{ client: RedisClientType; subscriber: RedisClientType }> {
  const client: RedisClientType = createClient({ url: redisUrl, socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000) } });
  const subscriber: RedisClientType = client.duplicate();
  for (const [c, name] of [[client, 'commands'], [subscriber, 'subscriber']] as const) {
    let reported = false;
    c.on('error', (err: Error) => {
      if (!reported) log.warn({ err: err.message, role, connection: name }, 'render queue: Redis unreachable; retrying');
      reported = true;
    });
    c.on('ready', () => (reported = false));
  }
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      Promise.all([client.connect(), subscriber.connect()]),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no connection within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    client.destroy();
    subscriber.destroy();
    throw err;
  } finally {
    clearTimeout(timer);
  }
  return { client, subscriber };
}

function parseMessage(raw: string): QueueMessage | null {
  try {
    const m = JSON.parse(raw) as Partial<QueueMessage> & Record<string, unknown>;
    if (m.type === 'done' && typeof m['renderId'] === 'string') return m as QueueMessage;
    if (m.type === 'progress' && typeof m['roomId'] === 'string' && m['progress'] && typeof (m['progress'] as RenderProgress).clipId === 'string') return m as QueueMessage;
  } catch {
    // not JSON
  }
  return null;
}

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
  runner: RenderRunner;
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
    try {
      if (!RENDER_ID.test(id)) {
        log.warn('a job that is not a render id; skipped');
        await this.jobs.complete(id, this.id);
        return;
      }
      const render = await store.getRender(id);
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
      const request = render.request as ClipRequest | FullRequest | LoopRequest;
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
            this.#publishProgress(render.roomId, reportOf(render, 'running', fraction)).catch(() => {});
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
        if (reason instanceof LeaseLost) {
          log.warn('lost the claim on this job (a late heartbeat); left to the renderer that has it now');
          return;
        }
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
      // Left in `active`: with no heartbeat for it, its lease runs out and the job runs again.
      log.error({ err }, 'render job failed unexpectedly');
    }
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
