// Scale-out for socket.io: room events (chat, presence, prompts, notices) reach the
// members of a room on every node, through the socket.io Redis adapter.
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import type { Logger } from '../logger.ts';
import { closeRedisClient } from '../util/redis-client.ts';

export interface SocketAdapter {
  adapter: ReturnType<typeof createAdapter>;
  close(): Promise<void>;
}

export async function connectSocketAdapter(redisUrl: string, log: Logger): Promise<SocketAdapter> {
  const pub = createClient({ url: redisUrl, socket: { connectTimeout: 5000, reconnectStrategy: (n) => Math.min(100 * 2 ** n, 5000) } });
  const sub = pub.duplicate();
  for (const [name, client] of [['publisher', pub], ['subscriber', sub]] as const) {
    client.on('error', (err: Error) => log.warn({ err: err.message, client: name }, 'socket.io Redis adapter: connection problem; retrying'));
  }
  await Promise.all([pub.connect(), sub.connect()]);
  // The adapter fires many commands without waiting for them (publish, subscribe). While
  // Redis is away those fail; each failure is noted here, so that none becomes an
  // unhandled rejection. The caller still sees the rejection where it does wait.
  const watched = <T extends object>(client: T, role: string): T =>
    new Proxy(client, {
      get(target, prop, receiver) {
        const value: unknown = Reflect.get(target, prop, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          const result: unknown = (value as (...a: unknown[]) => unknown).apply(target, args);
          if (result instanceof Promise) result.catch((err: unknown) => log.debug({ err: (err as Error).message, role }, 'socket.io Redis adapter: a command failed'));
          return result;
        };
      },
    });
  return {
    adapter: createAdapter(watched(pub, 'publisher'), watched(sub, 'subscriber'), { key: 'remixroom:io' }),
    async close() {
      await Promise.all([closeRedisClient(pub, log, 'socket.io publisher'), closeRedisClient(sub, log, 'socket.io subscriber')]);
    },
  };
}
