// A real server on PostgreSQL: the demo DATA_DIR's store moved into a fresh database of the run's
// PostgreSQL (the way an installation moves, npm run migrate-store), files left in DATA_DIR.
import path from 'node:path';
import { pino } from 'pino';
import type { Config } from '../../server/config.ts';
import type { RoomTimings } from '../../server/rooms/room-manager.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { importSqliteIntoPostgres } from '../../server/store/pg-import-sqlite.ts';
import { demoDataDir } from './demo-data.ts';
import { freshDatabase } from './postgres.ts';
import { startTestServer, type TestServer } from './test-server.ts';

export async function startPgTestServer(overrides: Partial<Config> = {}, options: { roomTimings?: Partial<RoomTimings> } = {}): Promise<TestServer & { databaseUrl: string }> {
  const data = await demoDataDir();
  try {
    const databaseUrl = await freshDatabase('server');
    await importSqliteIntoPostgres({ sqliteFile: new DataLayout(data.path).database, url: databaseUrl, log: pino({ level: 'silent' }) });
    const t = await startTestServer({ databaseUrl, tokenSecret: 'p'.repeat(32), ...overrides }, { ...options, dataDir: path.resolve(data.path) });
    return {
      ...t,
      databaseUrl,
      async close() {
        await t.close();
        await data.remove();
      },
    };
  } catch (err) {
    await data.remove();
    throw err;
  }
}
