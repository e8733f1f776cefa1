// The Redis render queue's atomic steps, shared by the web nodes' side
// (redis-render-queue.ts), the renderers' side (redis-render-worker.ts) and the
// renderers' lease keeper thread (lease-keeper.worker.ts).
//
// A small reliable queue (BullMQ needs ioredis; this is the part of it we need),
// every step one Lua script, so that no two processes see a job half-moved:
//   pending   a list of render ids waiting (LPUSH in, RPOP out; a job taken back goes to the RPOP end)
//   job:<id>  a hash per waiting or running job: attempts, enqueuedAt, renderer, and waits (how often
//             it was handed back to wait for an unreachable store, which sets how long the next wait
//             is). A job is in the queue exactly while this exists, so queuing it again changes nothing.
//   active    a hash: render id → the renderer running it (its processing set)
//   lease:<id> the running renderer's claim, `SET … PX leaseMs`, renewed by its heartbeat
//   delayed   a sorted set: render id → when (Redis's own clock, ms) a failed job may run again;
//             the next claim after that moves it to the front of `pending`
// A renderer that dies (SIGKILL, a lost machine) stops renewing; when the lease has
// expired, any renderer's reaper moves the job from `active` back to `pending` and
// it runs again elsewhere. A renderer renews only a job `active` still gives to it,
// and records a result only after checking that, so a job never runs twice at once
// to completion. Every claim counts an attempt; past the limit the render fails. A job
// handed back unfinished through no fault of its own (its renderer shutting down, a
// store unreachable) has its attempt refunded.
// Progress and results reach the web nodes on a pub/sub channel (every node hears
// every render and tells its own sockets); progress is also kept in a key with a
// TTL so that GET /api/clips/:id on any node can answer it.
import { createClient, type RedisClientType } from 'redis';
import type { RenderProgress } from '../../shared/socket-events.ts';
import type { Logger } from '../logger.ts';
import type { RenderJobCounts } from './render-queue.ts';

export const DEFAULT_PREFIX = 'remixroom:renders:';

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
// refund (1: the attempt does not count), delayMs (> 0: into `delayed` until then, not `pending`),
// waited (1: it waits for an unreachable store: counted in the job's `waits`).
const RELEASE = `
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('DEL', ARGV[1] .. 'lease:' .. ARGV[2])
if ARGV[5] == '1' then redis.call('HINCRBY', ARGV[1] .. 'job:' .. ARGV[2], 'attempts', -1) end
if ARGV[7] == '1' then redis.call('HINCRBY', ARGV[1] .. 'job:' .. ARGV[2], 'waits', 1) end
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

export type QueueMessage = { type: 'progress'; roomId: string; progress: RenderProgress } | { type: 'done'; renderId: string };

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
   * attempt; `delayMs` keeps it out of the queue that long first (then it runs next); `waited`
   * counts one more wait for an unreachable store in the job's `waits`.
   */
  async release(id: string, renderer: string, opts: { front: boolean; refund: boolean; delayMs?: number; waited?: boolean }): Promise<boolean> {
    const delay = Math.max(0, Math.round(opts.delayMs ?? 0));
    const keys = [this.#k('active'), this.#k('pending'), this.#k('delayed')];
    const args = [this.prefix, id, renderer, opts.front ? '1' : '0', opts.refund ? '1' : '0', String(delay), opts.waited ? '1' : '0'];
    return (await this.#eval(RELEASE, keys, args)) === 1;
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

  /** A job's attempts so far, the renderer that last took it, and how often it waited for an unreachable store. */
  async job(id: string): Promise<{ attempts: number; renderer: string | null; waits: number } | null> {
    const h = await this.#client.hGetAll(this.#key('job', id));
    if (!h || Object.keys(h).length === 0) return null;
    return { attempts: Number(h['attempts'] ?? 0), renderer: h['renderer'] ?? null, waits: Number(h['waits'] ?? 0) };
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

export async function connect(redisUrl: string, log: Logger, role: string, timeoutMs = 5000): Promise<{ client: RedisClientType; subscriber: RedisClientType }> {
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

export function parseMessage(raw: string): QueueMessage | null {
  try {
    const m = JSON.parse(raw) as Partial<QueueMessage> & Record<string, unknown>;
    if (m.type === 'done' && typeof m['renderId'] === 'string') return m as QueueMessage;
    if (m.type === 'progress' && typeof m['roomId'] === 'string' && m['progress'] && typeof (m['progress'] as RenderProgress).clipId === 'string') return m as QueueMessage;
  } catch {
    // not JSON
  }
  return null;
}
