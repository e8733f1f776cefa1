// Scale-out for socket.io: room events (chat, presence, prompts, notices) reach the
// members of a room on every node, through the socket.io Redis adapter.
import { createAdapter } from '@socket.io/redis-adapter';
import { createClient } from 'redis';
import type { Logger } from '../logger.ts';

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
  return {
    adapter: createAdapter(pub, sub, { key: 'remixroom:io' }),
    async close() {
      await Promise.allSettled([pub.close(), sub.close()]);
    },
  };
}
