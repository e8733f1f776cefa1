// Moves an installation from the embedded SQLite store to PostgreSQL: every table of DATA_DIR's
// database, row by row and column by column (the two schemas share their names: pg-migrations.ts),
// into an empty PostgreSQL database, in one transaction, counts checked before it commits.
import { DatabaseSync } from 'node:sqlite';
import pg from 'pg';
import type { Logger } from '../logger.ts';
import { MIGRATIONS } from './migrations.ts';
import { PgStoreOpenError } from './pg-errors.ts';
import { describeUrl, PgStore } from './pg-store.ts';
import { SqliteStore } from './sqlite-store.ts';

/** Parents before children, so that foreign keys hold at every insert. */
const TABLE_ORDER = ['releases', 'rooms', 'renders', 'orders', 'entitlements', 'webhook_events', 'room_members', 'invites', 'room_takes', 'chat_messages'];

/** Rows per INSERT, and bytes at most (documents are large) before a batch is sent. */
const BATCH_ROWS = 500;
const BATCH_BYTES = 8 * 1024 * 1024;

export class ImportError extends Error {
  override readonly name = 'ImportError';
}

export interface TableCount {
  table: string;
  rows: number;
}

/**
 * Copies the SQLite database at `sqliteFile` into the PostgreSQL database at `url` (migrated first,
 * and refused unless empty). All or nothing: one transaction, which commits only when every table's
 * count in PostgreSQL equals SQLite's. ImportError (one line) for anything a person must fix.
 */
export async function importSqliteIntoPostgres(opts: { sqliteFile: string; url: string; log: Logger; onTable?: (count: TableCount) => void }): Promise<TableCount[]> {
  const where = describeUrl(opts.url);
  // Brings an older SQLite file up to this build's schema first (what starting the server would do).
  try {
    await (await SqliteStore.open(opts.sqliteFile)).close();
  } catch (err) {
    throw new ImportError(`cannot open the SQLite database ${opts.sqliteFile}: ${(err as Error).message}`);
  }
  try {
    await (await PgStore.open(opts.url, { poolMax: 1, statementTimeoutMs: 60_000, connectTimeoutMs: 5000, log: opts.log })).close();
  } catch (err) {
    throw new ImportError(err instanceof PgStoreOpenError ? err.message : `PostgreSQL at ${where}: ${(err as Error).message}`);
  }

  const source = new DatabaseSync(opts.sqliteFile, { readOnly: true });
  const client = new pg.Client({ connectionString: opts.url });
  // A connection that drops during the copy (a restart, a terminated backend) emits 'error'; with no
  // listener that ends the process. The pending query fails as well, and that failure is reported.
  client.on('error', (err) => opts.log.warn({ err: err.message }, 'postgres: the connection of the import failed'));
  try {
    await client.connect();
    // A snapshot of SQLite: a server still writing cannot make the copy inconsistent (stop it first anyway).
    source.exec('BEGIN');
    const tables = sourceTables(source);
    await client.query('BEGIN');
    try {
      await client.query('SET LOCAL statement_timeout = 0');
      // Nothing else writes into the target while it is filled.
      await client.query(`LOCK TABLE ${tables.map(quote).join(', ')} IN EXCLUSIVE MODE`);
      const occupied: string[] = [];
      for (const table of tables) {
        const { rows } = await client.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${quote(table)}`);
        if (Number(rows[0]!.n) > 0) occupied.push(`${table}: ${rows[0]!.n}`);
      }
      if (occupied.length > 0) {
        throw new ImportError(`PostgreSQL at ${where} already holds rows (${occupied.join(', ')}); migrate-store fills only an empty database, so nothing was copied`);
      }
      const counts: TableCount[] = [];
      for (const table of tables) {
        const rows = await copyTable(source, client, table);
        const { rows: check } = await client.query<{ n: string }>(`SELECT COUNT(*) AS n FROM ${quote(table)}`);
        if (Number(check[0]!.n) !== rows) throw new ImportError(`table ${table}: ${rows} rows in SQLite but ${check[0]!.n} in PostgreSQL after the copy; nothing was committed`);
        counts.push({ table, rows });
        opts.onTable?.({ table, rows });
      }
      await client.query('COMMIT');
      return counts;
    } catch (err) {
      await client.query('ROLLBACK').catch((rollbackErr: unknown) => opts.log.warn({ err: (rollbackErr as Error).message }, 'rollback failed; the connection is gone, so nothing was committed'));
      if (err instanceof ImportError) throw err;
      throw new ImportError(`copying into PostgreSQL at ${where} failed, nothing was committed: ${(err as Error).message.split('\n')[0]}`);
    }
  } catch (err) {
    if (err instanceof ImportError) throw err;
    throw new ImportError(`PostgreSQL at ${where}: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    if (source.isTransaction) source.exec('ROLLBACK');
    source.close();
    await client.end().catch(() => undefined);
  }
}

/** The SQLite file's tables, in copy order; refuses one this build does not know (a newer build's file). */
function sourceTables(db: DatabaseSync): string[] {
  const version = (db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null }).v ?? 0;
  const newest = MIGRATIONS.at(-1)!.version;
  if (version !== newest) throw new ImportError(`the SQLite database is at schema version ${version}, this build's is ${newest}; use the Remixroom build that wrote it`);
  const names = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name <> 'schema_migrations'").all() as { name: string }[]).map((r) => r.name);
  const unknown = names.filter((n) => !TABLE_ORDER.includes(n));
  if (unknown.length > 0) throw new ImportError(`the SQLite database has tables this build does not know (${unknown.join(', ')}); nothing was copied`);
  return TABLE_ORDER.filter((t) => names.includes(t));
}

/** Copies one table in SQLite's rowid order (chat_messages' seq follows it), in batches; answers the rows copied. */
async function copyTable(source: DatabaseSync, client: pg.Client, table: string): Promise<number> {
  const columns = (source.prepare(`PRAGMA table_info(${quote(table)})`).all() as { name: string }[]).map((c) => c.name);
  const list = columns.map(quote).join(', ');
  let batch: unknown[][] = [];
  let bytes = 0;
  let copied = 0;
  const flush = async () => {
    if (batch.length === 0) return;
    const values: unknown[] = [];
    const tuples = batch.map((row) => `(${row.map((v) => `$${values.push(v)}`).join(', ')})`);
    await client.query(`INSERT INTO ${quote(table)} (${list}) VALUES ${tuples.join(', ')}`, values);
    copied += batch.length;
    batch = [];
    bytes = 0;
  };
  for (const row of source.prepare(`SELECT ${list} FROM ${quote(table)} ORDER BY rowid`).iterate() as Iterable<Record<string, unknown>>) {
    const values = columns.map((c) => row[c] ?? null);
    for (const v of values) bytes += v instanceof Uint8Array ? v.byteLength : typeof v === 'string' ? v.length : 8;
    batch.push(values);
    if (batch.length >= BATCH_ROWS || bytes >= BATCH_BYTES) await flush();
  }
  await flush();
  return copied;
}

function quote(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}
