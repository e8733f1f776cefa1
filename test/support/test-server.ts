import { pino } from 'pino';
import type { VisualModelsOptions } from '../../server/catalog/visual-models.ts';
import { configFor, type Config } from '../../server/config.ts';
import type { LiveStreamsOptions } from '../../server/live/live-streams.ts';
import type { RoomTimings } from '../../server/rooms/room-manager.ts';
import { RemixroomServer } from '../../server/server.ts';
import type { SfuKind } from '../../media/sfu/sfu.ts';
import { demoDataDir } from './demo-data.ts';
import { adapterConfig } from './sfu-adapters.ts';

export interface TestServer {
  server: RemixroomServer;
  url: string;
  dataDir: string;
  close(): Promise<void>;
}

export interface TestServerOptions {
  roomTimings?: Partial<RoomTimings>;
  dataDir?: string;
  live?: Pick<LiveStreamsOptions, 'sfu' | 'idleStopMs' | 'video' | 'broadcast'>;
  /**
   * The SFU its live streams use (default embedded). mediasoup takes the
   * worker named by MEDIASOUP_WORKER_BIN (test/support/sfu-adapters.ts); a
   * server that fell back to the embedded SFU instead fails to start here.
   */
  adapter?: SfuKind;
  /** The visual models' options (tests train a tiny model: `hyperparameters`). */
  visualModels?: Pick<VisualModelsOptions, 'hyperparameters' | 'code' | 'pollMs'>;
}

/** A real server on 127.0.0.1, port 0, over a fresh DATA_DIR holding the demo release. */
export async function startTestServer(overrides: Partial<Config> = {}, options: TestServerOptions = {}): Promise<TestServer> {
  const adapter = options.adapter ?? 'embedded';
  const data = options.dataDir ? { path: options.dataDir, remove: async () => {} } : await demoDataDir();
  const config = configFor({ dataDir: data.path, port: 0, host: '127.0.0.1', logLevel: 'silent', ...adapterConfig(adapter), ...overrides });
  const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
  const startOptions = {
    ...(options.roomTimings ? { roomTimings: options.roomTimings } : {}),
    ...(options.live ? { live: options.live } : {}),
    ...(options.visualModels ? { visualModels: options.visualModels } : {}),
  };
  const server = await RemixroomServer.start(config, log, undefined, startOptions).catch(async (err: unknown) => {
    await data.remove();
    throw err;
  });
  // selectSfu falls back to the embedded SFU when mediasoup's worker does not
  // start (right for a server, wrong for a test that says it ran mediasoup).
  if (server.live.sfu.kind !== adapter) {
    await server.close();
    await data.remove();
    throw new Error(`the test server was asked for the ${adapter} SFU but its live streams use the ${server.live.sfu.kind} SFU (see its log: TEST_LOG_LEVEL=info)`);
  }
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
