// Which store a process uses: PostgreSQL when DATABASE_URL is set (nodes on separate machines share
// it), otherwise the embedded SQLite file under DATA_DIR.
import type { Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { DataLayout } from './paths.ts';
import { PgStore } from './pg-store.ts';
import { SqliteStore } from './sqlite-store.ts';
import type { Store } from './store.ts';

/** How long a node waits for a new PostgreSQL connection before calling the database unreachable. */
const PG_CONNECT_TIMEOUT_MS = 5000;

/** Opens the configured store; throws an Error whose message is one line a person can act on. */
export async function openStore(config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'databaseStatementTimeoutMs'>, layout: DataLayout, log: Logger): Promise<Store> {
  if (config.databaseUrl) {
    try {
      const store = await PgStore.open(config.databaseUrl, {
        poolMax: config.databasePoolMax,
        statementTimeoutMs: config.databaseStatementTimeoutMs,
        connectTimeoutMs: PG_CONNECT_TIMEOUT_MS,
        log: log.child({ component: 'store' }),
      });
      log.info({ database: store.where, poolMax: config.databasePoolMax }, 'using PostgreSQL');
      return store;
    } catch (err) {
      throw new Error(`cannot open the database: ${(err as Error).message}; check DATABASE_URL`);
    }
  }
  try {
    return await SqliteStore.open(layout.database);
  } catch (err) {
    throw new Error(`cannot open the database ${layout.database}: ${(err as Error).message}`);
  }
}
