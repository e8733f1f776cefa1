import { expect } from 'chai';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { MIGRATIONS } from '../../server/store/migrations.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { tempDir } from '../support/temp.ts';
import { expectRejection, sampleRecord, storeContract } from './store.contract.ts';

describe('SqliteStore', () => {
  let dir: { path: string; remove(): Promise<void> };
  before(async () => {
    dir = await tempDir('sqlite');
  });
  after(async () => {
    await dir.remove();
  });

  let n = 0;
  storeContract('sqlite file', () => SqliteStore.open(path.join(dir.path, `contract-${++n}.sqlite`)));
  storeContract('sqlite in memory', () => SqliteStore.open(':memory:'));

  it('applies every migration once, and reopening applies none again', async () => {
    const file = path.join(dir.path, 'migrate.sqlite');
    const store = await SqliteStore.open(file);
    await store.putRelease(sampleRecord('kept'), { place() {}, undo() {} });
    await store.close();
    const again = await SqliteStore.open(file);
    expect(await again.schemaVersion()).to.equal(MIGRATIONS.at(-1)!.version);
    expect((await again.getRelease('kept'))!.id).to.equal('kept');
    await again.close();
    const db = new DatabaseSync(file);
    const rows = db.prepare('SELECT version FROM schema_migrations').all() as { version: number }[];
    db.close();
    expect(rows.map((r) => r.version)).to.deep.equal(MIGRATIONS.map((m) => m.version));
  });

  it('applies a later migration to a database made by an older build', async () => {
    const file = path.join(dir.path, 'upgrade.sqlite');
    const first = MIGRATIONS.slice(0, 1);
    await (await SqliteStore.open(file, first)).close();
    const next = [...first, { version: 99, name: 'test column', sql: 'ALTER TABLE releases ADD COLUMN extra TEXT' }];
    const store = await SqliteStore.open(file, next);
    expect(await store.schemaVersion()).to.equal(99);
    await store.close();
  });

  it('refuses a database from a newer build instead of guessing', async () => {
    const file = path.join(dir.path, 'newer.sqlite');
    await (await SqliteStore.open(file, [...MIGRATIONS, { version: 1000, name: 'future', sql: 'SELECT 1' }])).close();
    await expectRejection(SqliteStore.open(file), /newer than this build knows/);
  });

  it('rolls back a migration that fails half way', async () => {
    const file = path.join(dir.path, 'broken.sqlite');
    const broken = [...MIGRATIONS, { version: 50, name: 'broken', sql: 'CREATE TABLE t (a); INSERT INTO nope VALUES (1);' }];
    await expectRejection(SqliteStore.open(file, broken), /nope/);
    const store = await SqliteStore.open(file);
    expect(await store.schemaVersion()).to.equal(MIGRATIONS.at(-1)!.version);
    await store.close();
    const db = new DatabaseSync(file);
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 't'").get()).to.equal(undefined);
    db.close();
  });
});
