import type { Logger } from '../logger.ts';

/** How long a Redis connection may take to close cleanly before it is dropped. */
export const REDIS_CLOSE_TIMEOUT_MS = 2000;

interface ClosableClient {
  close(): Promise<unknown>;
  destroy(): void;
}

/**
 * Closes a node-redis client, waiting for its replies; if Redis is unreachable that
 * wait has no end, so after `timeoutMs` the connection is dropped instead.
 */
export async function closeRedisClient(client: ClosableClient, log: Logger, role: string, timeoutMs = REDIS_CLOSE_TIMEOUT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      client.close(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`not closed within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
  } catch (err) {
    log.warn({ err: (err as Error).message, role }, 'closing the Redis connection failed; dropping it');
    client.destroy();
  } finally {
    clearTimeout(timer);
  }
}
