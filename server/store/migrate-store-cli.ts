// `npm run migrate-store -- --to postgres://… [--data-dir DIR]`: moves an installation's store from
// the SQLite file under DATA_DIR into an empty PostgreSQL database. A command-line entry point, so it
// prints to the console.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.ts';
import { DataLayout } from './paths.ts';
import { ImportError, importSqliteIntoPostgres } from './pg-import-sqlite.ts';

const USAGE = `usage: npm run migrate-store -- --to postgres://user:password@host:5432/db [--data-dir DIR]

Copies every table of DIR's SQLite database (DATA_DIR when --data-dir is not given) into the
PostgreSQL database --to names: its schema is made first, then every row is copied in one
transaction and each table's count checked before it commits. The target must be empty; a target
that already holds rows is refused and nothing is changed. Stop the servers using DIR first, so
that nothing written after the copy is left behind; then start them with DATABASE_URL set.

Files stay where they are: releases (stems, artwork) and renders (clips, stills, manifests) are
files under DIR/releases and DIR/renders, and this command does not move them. Until object
storage is configured (S3_BUCKET), every node using the database must see that same DIR (one
machine, or one shared folder); with S3, put them in the bucket before nodes on other machines
serve these rooms.`;

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ options: { to: { type: 'string' }, 'data-dir': { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    console.error(`migrate-store: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.values.help) {
    console.log(USAGE);
    return 0;
  }
  const to = args.values.to;
  if (!to) {
    console.error(`migrate-store: --to is required (the PostgreSQL URL)\n${USAGE}`);
    return 2;
  }
  if (!URL.canParse(to) || !/^postgres(ql)?:$/.test(new URL(to).protocol)) {
    console.error('migrate-store: --to must be a URL like postgres://user:password@host:5432/remixroom (postgres:// or postgresql://)');
    return 2;
  }
  let dataDir = args.values['data-dir'];
  if (!dataDir) {
    try {
      dataDir = loadConfig().dataDir;
    } catch (err) {
      if (err instanceof ConfigError) {
        console.error(`migrate-store: bad configuration: ${err.message}`);
        return 2;
      }
      throw err;
    }
  }
  const layout = new DataLayout(path.resolve(dataDir));
  if (!fs.existsSync(layout.database)) {
    console.error(`migrate-store: no SQLite database at ${layout.database}; pass --data-dir with the DATA_DIR to move`);
    return 1;
  }
  const log = pino({ level: 'warn' }, pino.destination(2));
  console.error(`migrate-store: ${layout.database} into ${describe(to)}`);
  try {
    const counts = await importSqliteIntoPostgres({ sqliteFile: layout.database, url: to, log, onTable: (c) => console.error(`  ${c.table}: ${c.rows} rows`) });
    const total = counts.reduce((n, c) => n + c.rows, 0);
    console.log(`migrate-store: copied ${total} rows in ${counts.length} tables; every count checked. Files under ${layout.root} were not moved (see --help). Start the servers with DATABASE_URL set.`);
    return 0;
  } catch (err) {
    if (err instanceof ImportError) {
      console.error(`migrate-store: ${err.message}`);
      return 1;
    }
    throw err;
  }
}

function describe(url: string): string {
  const u = new URL(url);
  return `PostgreSQL at ${u.hostname}:${u.port || '5432'}${u.pathname}`;
}

process.exitCode = await main();
