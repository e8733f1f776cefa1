import { pino } from 'pino';
import { configFor, type Config } from '../../server/config.ts';
import type { LiveStreamsOptions } from '../../server/live/live-streams.ts';
import type { RoomTimings } from '../../server/rooms/room-manager.ts';
import { RemixroomServer } from '../../server/server.ts';
import { demoDataDir } from './demo-data.ts';

export interface TestServer {
  server: RemixroomServer;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

/** A real server on 127.0.0.1, port 0, over a fresh DATA_DIR holding the demo release. */
export async function startTestServer(
  overrides: Partial<Config> = {},
  options: { roomTimings?: Partial<RoomTimings>; dataDir?: string; live?: Pick<LiveStreamsOptions, 'sfu' | 'idleStopMs' | 'video' | 'broadcast'> } = {},
): Promise<TestServer> {
  const data = options.dataDir ? { path: options.dataDir, remove: async () => {} } : await demoDataDir();
  const config = configFor({ dataDir: data.path, port: 0, host: '127.0.0.1', logLevel: 'silent', ...overrides });
  const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const startOptions = { ...(options.roomTimings ? { roomTimings: options.roomTimings } : {}), ...(options.live ? { live: options.live } : {}) };
  const server = await RemixroomServer.start(config, log, undefined, startOptions).catch(async (err: unknown) => {
    await data.remove();
    throw err;
  });
  return {
    server,
    url: server.url,
    dataDir: data.path,
    async close() {
      await server.close();
      await data.remove();
    },
  };
}
