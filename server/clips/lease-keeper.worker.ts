// A renderer's heartbeat, in its own thread: rendering blocks the main thread for
// seconds at a time (mixing and watermarking a whole piece is synchronous), and a
// lease renewed from there would run out while the job is alive and well. This
// thread renews the leases of the jobs the main thread says it runs, and tells
// it of any it no longer holds.
import { parentPort, workerData } from 'node:worker_threads';
import { createClient, type RedisClientType } from 'redis';
import { RedisJobQueue } from './redis-job-queue.ts';

export interface LeaseKeeperData {
  redisUrl: string;
  prefix: string;
  rendererId: string;
  leaseMs: number;
}
export type LeaseKeeperIn = { type: 'add'; id: string } | { type: 'remove'; id: string };
export type LeaseKeeperOut = { type: 'ready' } | { type: 'lost'; ids: string[] } | { type: 'error'; message: string };

const data = workerData as LeaseKeeperData;
const port = parentPort!;
const post = (m: LeaseKeeperOut) => port.postMessage(m);
const ids = new Set<string>();
const client: RedisClientType = createClient({ url: data.redisUrl, socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 1000) } });
let reported = false;
client.on('error', (err: Error) => {
  if (!reported) post({ type: 'error', message: `Redis: ${err.message}` });
  reported = true;
});
client.on('ready', () => (reported = false));
await client.connect();
const queue = new RedisJobQueue(client, data.prefix);
let renewing = false;

port.on('message', (m: LeaseKeeperIn) => {
  if (m.type === 'add') ids.add(m.id);
  else if (m.type === 'remove') ids.delete(m.id);
});

setInterval(
  () => {
    if (ids.size === 0 || renewing) return;
    renewing = true;
    queue
      .renew(data.rendererId, data.leaseMs, [...ids])
      .then(
        (lost) => {
          for (const id of lost) ids.delete(id);
          if (lost.length > 0) post({ type: 'lost', ids: lost });
        },
        (err: unknown) => post({ type: 'error', message: `renewing leases failed: ${(err as Error).message}` }),
      )
      .finally(() => (renewing = false));
  },
  Math.max(50, Math.floor(data.leaseMs / 3)),
);
post({ type: 'ready' });
