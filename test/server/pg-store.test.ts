import { expect } from 'chai';
import net from 'node:net';
import path from 'node:path';
import pg from 'pg';
import { pino } from 'pino';
import { MIGRATIONS } from '../../server/store/migrations.ts';
import { PG_MIGRATIONS } from '../../server/store/pg-migrations.ts';
import { PgStore, PgStoreOpenError, StoreBusyError, StoreUnavailableError, type PgStoreOptions } from '../../server/store/pg-store.ts';
import { requireComponent } from '../support/components.ts';
import { freshDatabase, postgresAvailable, sharedPostgres, TEST_PG_PASSWORD } from '../support/postgres.ts';
import { freePort } from '../support/redis.ts';
import { ReleaseExistsError, StaleFenceError } from '../../server/store/store.ts';
import { ImportError, importSqliteIntoPostgres } from '../../server/store/pg-import-sqlite.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { tempDir } from '../support/temp.ts';
import { expectRejection, sampleRecord, storeContract } from './store.contract.ts';

const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
const OPTIONS: PgStoreOptions = { poolMax: 5, statementTimeoutMs: 5000, connectTimeoutMs: 3000, log };

describe('PgStore', function () {
  this.timeout(60_000);
  before(async function () {
    requireComponent('postgresql', postgresAvailable(), this);
    await sharedPostgres();
  });

  storeContract('postgres', async () => PgStore.open(await freshDatabase('contract'), OPTIONS));

  it('numbers its migrations as the SQLite ones, so that version N means the same in both', () => {
    expect(PG_MIGRATIONS.map((m) => [m.version, m.name])).to.deep.equal(MIGRATIONS.map((m) => [m.version, m.name]));
  });

  it('applies every migration once, and reopening applies none again', async () => {
    const url = await freshDatabase('migrate');
    const store = await PgStore.open(url, OPTIONS);
    await store.putRelease(sampleRecord('kept'), { place() {}, undo() {} });
    await store.close();
    const again = await PgStore.open(url, OPTIONS);
    expect(await again.schemaVersion()).to.equal(PG_MIGRATIONS.at(-1)!.version);
    expect((await again.getRelease('kept'))!.id).to.equal('kept');
    await again.close();
    expect(await versions(url)).to.deep.equal(PG_MIGRATIONS.map((m) => m.version));
  });

  it('opened by several nodes at once on an empty database: all open, the schema is migrated once', async () => {
    const url = await freshDatabase('concurrent');
    const stores = await Promise.all([1, 2, 3, 4, 5, 6].map(() => PgStore.open(url, OPTIONS)));
    try {
      for (const s of stores) expect(await s.schemaVersion()).to.equal(PG_MIGRATIONS.at(-1)!.version);
      // Each sees what another wrote: one schema, not six.
      await stores[0]!.putRelease(sampleRecord('shared'), { place() {}, undo() {} });
      expect((await stores[5]!.getRelease('shared'))!.id).to.equal('shared');
    } finally {
      await Promise.all(stores.map((s) => s.close()));
    }
    expect(await versions(url)).to.deep.equal(PG_MIGRATIONS.map((m) => m.version));
  });

  it('applies a later migration to a database made by an older build', async () => {
    const url = await freshDatabase('upgrade');
    await (await PgStore.open(url, { ...OPTIONS, migrations: PG_MIGRATIONS.slice(0, 1) })).close();
    const store = await PgStore.open(url, { ...OPTIONS, migrations: [...PG_MIGRATIONS, { version: 99, name: 'test column', sql: 'ALTER TABLE releases ADD COLUMN extra TEXT' }] });
    expect(await store.schemaVersion()).to.equal(99);
    await store.close();
  });

  it('refuses a database from a newer build, in one line, and changes nothing', async () => {
    const url = await freshDatabase('newer');
    await (await PgStore.open(url, { ...OPTIONS, migrations: [...PG_MIGRATIONS, { version: 1000, name: 'future', sql: 'SELECT 1' }] })).close();
    const err = await expectRejection(PgStore.open(url, OPTIONS), PgStoreOpenError);
    expect(err.message).to.match(/schema version 1000, newer than this build knows \(8\); run a newer Remixroom/);
    expect(err.message).to.not.include('\n');
    expect(err.message).to.not.include(TEST_PG_PASSWORD);
    expect((await versions(url)).at(-1)).to.equal(1000);
  });

  it('rolls back a migration that fails half way', async () => {
    const url = await freshDatabase('broken');
    const broken = [...PG_MIGRATIONS, { version: 50, name: 'broken', sql: 'CREATE TABLE t (a int); INSERT INTO nope VALUES (1);' }];
    await expectRejection(PgStore.open(url, { ...OPTIONS, migrations: broken }), /migration 50 \(broken\) failed: relation "nope" does not exist/);
    const store = await PgStore.open(url, OPTIONS);
    expect(await store.schemaVersion()).to.equal(PG_MIGRATIONS.at(-1)!.version);
    await store.close();
    const client = new pg.Client(url);
    await client.connect();
    const { rows } = await client.query("SELECT to_regclass('public.t') AS t");
    await client.end();
    expect(rows[0].t).to.equal(null);
  });

  describe('a wrong URL or credentials: one line naming the problem, no password, no stack', () => {
    let port: number;
    before(async () => {
      port = (await sharedPostgres()).port;
    });

    async function openError(url: string): Promise<string> {
      const err = await expectRejection(PgStore.open(url, { ...OPTIONS, connectTimeoutMs: 1500 }), PgStoreOpenError);
      expect(err.message).to.not.include('\n');
      expect(err.message).to.not.include('hunter2');
      return err.message;
    }

    it('a wrong password', async () => {
      const message = await openError(`postgres://postgres:hunter2@127.0.0.1:${port}/postgres`);
      expect(message).to.include(`127.0.0.1:${port} database "postgres"`);
      expect(message).to.match(/password authentication failed for user "postgres"/);
    });

    it('a database that does not exist', async () => {
      const message = await openError(`postgres://postgres:${TEST_PG_PASSWORD}@127.0.0.1:${port}/no_such_db`);
      expect(message).to.match(/database "no_such_db" does not exist/);
    });

    it('nothing listening there', async () => {
      const closed = await freePort();
      const message = await openError(`postgres://postgres:hunter2@127.0.0.1:${closed}/app`);
      expect(message).to.include(`127.0.0.1:${closed} database "app"`);
      expect(message).to.match(/connection refused.*is PostgreSQL running there\?/);
    });

    it('something else listening there', async () => {
      const sockets = new Set<net.Socket>();
      const other = net.createServer((socket) => {
        sockets.add(socket);
        socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
      });
      await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
      const otherPort = (other.address() as net.AddressInfo).port;
      try {
        const message = await openError(`postgres://postgres:hunter2@127.0.0.1:${otherPort}/app`);
        expect(message).to.include(`127.0.0.1:${otherPort} database "app"`);
        expect(message).to.match(/closed before PostgreSQL answered/);
      } finally {
        for (const s of sockets) s.destroy();
        await new Promise((resolve) => other.close(resolve));
      }
    });
  });

  it('cancels a statement that runs past the statement timeout, and keeps serving', async () => {
    const url = await freshDatabase('timeout');
    const store = await PgStore.open(url, { ...OPTIONS, statementTimeoutMs: 200 });
    try {
      // A save stuck behind a row lock held elsewhere waits no longer than the timeout.
      await store.putRelease(sampleRecord('rel'), { place() {}, undo() {} });
      await store.createRoom({ id: 'locked', releaseId: 'rel', createdAt: '2026-01-01T00:00:00.000Z', doc: null });
      const holder = new pg.Client(url);
      await holder.connect();
      try {
        await holder.query('BEGIN');
        await holder.query("SELECT * FROM rooms WHERE id = 'locked' FOR UPDATE");
        await expectRejection(store.saveRoomDoc('locked', new Uint8Array([1])), /canceling statement due to statement timeout/);
        await holder.query('ROLLBACK');
      } finally {
        await holder.end();
      }
      await store.saveRoomDoc('locked', new Uint8Array([2]));
      expect([...(await store.getRoom('locked'))!.doc!]).to.deep.equal([2]);
    } finally {
      await store.close();
    }
  });

  it('reports its pool and every query to an observer', async () => {
    const store = await PgStore.open(await freshDatabase('stats'), OPTIONS);
    try {
      const seen: boolean[] = [];
      store.observeQueries((seconds, ok) => {
        expect(seconds).to.be.at.least(0);
        seen.push(ok);
      });
      await Promise.all([1, 2, 3].map(() => store.listReleases()));
      await expectRejection(store.createRoom({ id: 'r', releaseId: 'missing', createdAt: '2026-01-01T00:00:00.000Z', doc: null }), /foreign key/);
      expect(seen.filter((ok) => ok)).to.have.length(3);
      expect(seen.filter((ok) => !ok)).to.have.length(1);
      const stats = store.poolStats();
      expect(stats.total).to.be.within(1, OPTIONS.poolMax);
      expect(stats.idle).to.be.at.most(stats.total);
      expect(stats.waiting).to.equal(0);
    } finally {
      await store.close();
    }
  });

  it('keeps chat history bounded and in order, and finds a member’s renders and orders by what the request says', async () => {
    const store = await PgStore.open(await freshDatabase('chat'), OPTIONS);
    try {
      for (let i = 0; i < 6; i++) {
        await store.addChatMessage('room', { id: `m${i}`, userId: 'u', name: 'U', role: 'remixer', text: `hi ${i}`, atMs: i < 3 ? 1000 : 1000 + i }, 4);
      }
      expect((await store.listChatMessages('room', 10)).map((m) => m.id)).to.deep.equal(['m2', 'm3', 'm4', 'm5']);
      expect((await store.listChatMessages('room', 2)).map((m) => m.id)).to.deep.equal(['m4', 'm5']);
      await store.createRender({ id: '0000000000000001', roomId: 'room', kind: 'clip', status: 'queued', request: { requestedBy: { userId: 'u' } }, createdAt: '2026-01-01T00:00:01.000Z' }, null);
      await store.createRender({ id: '0000000000000002', roomId: 'room', kind: 'full', status: 'queued', request: { requestedBy: { userId: 'u' } }, createdAt: '2026-01-01T00:00:02.000Z' }, null);
      await store.createRender({ id: '0000000000000003', roomId: 'room', kind: 'loop', status: 'queued', request: { requestedBy: { userId: 'v' } }, createdAt: '2026-01-01T00:00:03.000Z' }, null);
      expect((await store.listMemberRenders('room', 'u', 10)).map((r) => r.id)).to.deep.equal(['0000000000000001']);
      const order = { status: 'paid' as const, amountCents: 100, currency: 'EUR', paymentId: null, renderId: null };
      await store.createOrder({ ...order, id: 'o1', request: { roomId: 'room', buyer: { userId: 'u' } }, createdAt: '2026-01-01T00:00:01.000Z' }, 'k1');
      await store.createOrder({ ...order, id: 'o2', request: { roomId: 'room', buyer: { userId: 'u' } }, createdAt: '2026-01-01T00:00:02.000Z' }, 'k2');
      await store.createOrder({ ...order, id: 'o3', request: { roomId: 'other', buyer: { userId: 'u' } }, createdAt: '2026-01-01T00:00:03.000Z' }, 'k3');
      expect((await store.listMemberOrders('room', 'u', 10)).map((o) => o.id)).to.deep.equal(['o2', 'o1']);
      expect(await store.updateOrder('o1', ['payment_pending'], { status: 'fulfilled' })).to.equal(false);
      expect(await store.updateOrder('o1', ['paid', 'payment_pending'], { status: 'fulfilled', paymentId: 'pay_1' })).to.equal(true);
      expect(await store.getOrderByPayment('pay_1')).to.include({ id: 'o1', status: 'fulfilled' });
      // A cleared prompt leaves the takes that show it, and only those.
      const visual = (prompt: string | null, promptAtMs: number | null) => ({ visual: { prompt, params: { a: 1 }, summary: 's', promptBy: 'u', promptAtMs } });
      await store.createTake({ id: 't1', roomId: 'room', name: 'A', content: visual('sunset', 5000), createdBy: 'u', savedBy: 'U', createdAt: '2026-01-01T00:00:01.000Z' }, 10);
      await store.createTake({ id: 't2', roomId: 'room', name: 'B', content: visual('sunset', 6000), createdBy: 'u', savedBy: 'U', createdAt: '2026-01-01T00:00:02.000Z' }, 10);
      expect(await store.clearPromptFromTakes('room', { text: 'sunset', atMs: 5000 })).to.equal(1);
      expect((await store.getTake('room', 't1'))!.content).to.deep.equal({ visual: { prompt: null, params: null, summary: null, promptBy: null, promptAtMs: null } });
      expect((await store.getTake('room', 't2'))!.content).to.deep.equal(visual('sunset', 6000));
    } finally {
      await store.close();
    }
  });

  it('two nodes on one database: the newer fence wins, one render and one order per key, invites counted once', async () => {
    const url = await freshDatabase('nodes');
    const [a, b] = await Promise.all([PgStore.open(url, OPTIONS), PgStore.open(url, OPTIONS)]);
    try {
      await a.putRelease(sampleRecord('rel'), { place() {}, undo() {} });
      await a.createRoom({ id: 'room', releaseId: 'rel', createdAt: '2026-01-01T00:00:00.000Z', doc: null });
      const fenceA = await a.takeRoomFence('room');
      const fenceB = await b.takeRoomFence('room');
      await b.saveRoomDoc('room', new Uint8Array([2]), '{"by":"b"}', fenceB);
      await expectRejection(a.saveRoomDoc('room', new Uint8Array([1]), '{"by":"a"}', fenceA), StaleFenceError);
      expect(await a.getRoom('room')).to.deep.include({ doc: new Uint8Array([2]), timeline: '{"by":"b"}' });
      // The same request reaching both nodes at once makes one render and one order.
      const base = { roomId: 'room', kind: 'clip' as const, status: 'queued' as const, request: {}, createdAt: '2026-01-01T00:00:00.000Z' };
      const renders = await Promise.all([a.createRender({ ...base, id: '00000000000000a1' }, 'k'), b.createRender({ ...base, id: '00000000000000b1' }, 'k')]);
      expect(renders.filter((r) => r.created)).to.have.length(1);
      expect(renders[0].render.id).to.equal(renders[1].render.id);
      const order = { status: 'payment_pending' as const, amountCents: 1, currency: 'EUR', paymentId: null, renderId: null, request: {}, createdAt: '2026-01-01T00:00:00.000Z' };
      const orders = await Promise.all([a.createOrder({ ...order, id: 'oa' }, 'ok'), b.createOrder({ ...order, id: 'ob' }, 'ok')]);
      expect(orders.filter((o) => o.created)).to.have.length(1);
      expect(orders[0].order.id).to.equal(orders[1].order.id);
      await a.createInvite({ id: 'inv', roomId: 'room', role: 'remixer', maxUses: 3, createdBy: null, createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-08T00:00:00.000Z' });
      const uses = await Promise.all([a, b, a, b, a, b].map((s) => s.useInvite('inv')));
      expect(uses.filter((u) => u === 'ok')).to.have.length(3);
      const releases = await Promise.allSettled([a, b].map((s, i) => s.putRelease(sampleRecord('same', `T${i}`), { place() {}, undo() {} })));
      expect(releases.filter((r) => r.status === 'fulfilled')).to.have.length(1);
      expect(releases.filter((r) => r.status === 'rejected' && r.reason instanceof ReleaseExistsError)).to.have.length(1);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  describe('a connection that drops while the store holds it: the caller fails clearly, the process lives on', () => {
    let uncaught: unknown[];
    const spy = (err: unknown) => uncaught.push(err);
    beforeEach(() => {
      uncaught = [];
      process.on('uncaughtException', spy);
    });
    afterEach(() => {
      process.removeListener('uncaughtException', spy);
    });

    it('a transaction (createTake) whose backend is terminated while it waits for the room’s lock', async () => {
      const url = await freshDatabase('terminated');
      const store = await PgStore.open(url, OPTIONS);
      const holder = new pg.Client(url);
      await holder.connect();
      try {
        const take = (id: string) => ({ id, roomId: 'r1', name: id, content: {}, createdBy: 'u', savedBy: 'U', createdAt: '2026-01-01T00:00:01.000Z' });
        // createTake counts under the room's advisory lock; holding it keeps the transaction waiting on its connection.
        await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', ['takes:r1']);
        const saving = store.createTake(take('t1'), 10);
        saving.catch(() => {}); // awaited below; not unhandled meanwhile
        const pid = await waitingBackend(holder, 'pg_advisory_xact_lock');
        await holder.query('SELECT pg_terminate_backend($1)', [pid]);
        const err = await expectRejection(saving, StoreUnavailableError);
        expect(err.message).to.match(/terminating connection due to administrator command|Connection terminated/);
        await holder.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', ['takes:r1']);
        // The store serves again on a fresh connection, and nothing of the failed transaction was kept.
        expect(await store.createTake(take('t2'), 10)).to.equal(true);
        expect((await store.listTakes('r1')).map((t) => t.id)).to.deep.equal(['t2']);
        expect(uncaught).to.deep.equal([]);
      } finally {
        await holder.end();
        await store.close();
      }
    });

    it('opening: a migration whose backend is terminated while it runs', async () => {
      const url = await freshDatabase('terminated_open');
      const holder = new pg.Client(url);
      await holder.connect();
      try {
        // A migration that waits on a lock held here stays running until its backend is terminated.
        await holder.query('SELECT pg_advisory_lock(4242)');
        const waits = [...PG_MIGRATIONS, { version: 99, name: 'waits', sql: 'SELECT pg_advisory_xact_lock(4242)' }];
        const opening = PgStore.open(url, { ...OPTIONS, migrations: waits });
        opening.catch(() => {});
        const pid = await waitingBackend(holder, 'pg_advisory_xact_lock(4242)');
        await holder.query('SELECT pg_terminate_backend($1)', [pid]);
        const err = await expectRejection(opening, PgStoreOpenError);
        expect(err.message).to.match(/terminating connection due to administrator command|Connection terminated/);
        expect(err.message).to.not.include('\n');
        await holder.query('SELECT pg_advisory_unlock(4242)');
        // Nothing of the broken migration was kept; the next open applies it.
        const store = await PgStore.open(url, { ...OPTIONS, migrations: waits });
        expect(await store.schemaVersion()).to.equal(99);
        await store.close();
        expect(uncaught).to.deep.equal([]);
      } finally {
        await holder.end();
      }
    });

    it('the import from SQLite, whose backend is terminated while it waits to lock the tables', async () => {
      const url = await freshDatabase('terminated_import');
      const dir = await tempDir('pg-import-drop');
      const sqliteFile = path.join(dir.path, 'remixroom.sqlite');
      const source = await SqliteStore.open(sqliteFile);
      await source.putRelease(sampleRecord('rel'), { place() {}, undo() {} });
      await source.close();
      await (await PgStore.open(url, OPTIONS)).close();
      const holder = new pg.Client(url);
      await holder.connect();
      try {
        // A writer's lock on one table keeps the import waiting in its LOCK TABLE.
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE releases IN ROW EXCLUSIVE MODE');
        const importing = importSqliteIntoPostgres({ sqliteFile, url, log });
        importing.catch(() => {});
        const pid = await waitingBackend(holder, 'LOCK TABLE');
        await holder.query('SELECT pg_terminate_backend($1)', [pid]);
        const err = await expectRejection(importing, ImportError);
        expect(err.message).to.match(/nothing was committed: terminating connection due to administrator command/);
        await holder.query('ROLLBACK');
        // Nothing was copied, and the import runs through once nothing is in its way.
        expect((await holder.query('SELECT count(*)::int AS n FROM releases')).rows[0].n).to.equal(0);
        const counts = await importSqliteIntoPostgres({ sqliteFile, url, log });
        expect(counts.find((c) => c.table === 'releases')).to.deep.equal({ table: 'releases', rows: 1 });
        expect(uncaught).to.deep.equal([]);
      } finally {
        await holder.end();
        await dir.remove();
      }
    });
  });

  it('a full pool is busy, not unreachable: callers waiting for a connection get StoreBusyError', async () => {
    const url = await freshDatabase('busy');
    const store = await PgStore.open(url, { ...OPTIONS, poolMax: 2, connectTimeoutMs: 300 });
    const holder = new pg.Client(url);
    await holder.connect();
    try {
      // Both connections wait on a lock held elsewhere; the third caller times out waiting for the pool.
      await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', ['takes:r1']);
      const take = (id: string) => ({ id, roomId: 'r1', name: id, content: {}, createdBy: 'u', savedBy: 'U', createdAt: '2026-01-01T00:00:01.000Z' });
      const waiting = [store.createTake(take('a'), 10), store.createTake(take('b'), 10)];
      await waitingBackend(holder, 'pg_advisory_xact_lock', 2);
      const err = await expectRejection(store.listReleases(), StoreBusyError);
      expect(err.message).to.match(/all 2 connections to PostgreSQL at 127\.0\.0\.1:\d+ database "busy_[^"]+" stayed busy for 300 ms/);
      await holder.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', ['takes:r1']);
      expect(await Promise.all(waiting)).to.deep.equal([true, true]);
    } finally {
      await holder.end();
      await store.close();
    }
  });

  it('chat in a busy room holds no connection while its messages queue, and keeps the room’s newest', async () => {
    const url = await freshDatabase('chat_busy');
    const store = await PgStore.open(url, { ...OPTIONS, poolMax: 2 });
    const holder = new pg.Client(url);
    await holder.connect();
    try {
      // Many messages in one room at once on two connections: each is two short statements that
      // wait for no room lock (one held elsewhere holds none of them up), and the room keeps its newest.
      await holder.query('SELECT pg_advisory_lock(hashtextextended($1, 0))', ['chat:busy']);
      await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.addChatMessage('busy', { id: `m${i}`, userId: 'u', name: 'U', role: 'remixer', text: `${i}`, atMs: 1000 + i }, 5)),
      );
      expect((await store.listChatMessages('busy', 50)).map((m) => m.id)).to.deep.equal(['m15', 'm16', 'm17', 'm18', 'm19']);
    } finally {
      await holder.end();
      await store.close();
    }
  });

  it('counts takes against the cap atomically, even when saved at once', async () => {
    const store = await PgStore.open(await freshDatabase('takes'), OPTIONS);
    try {
      const results = await Promise.all(
        [1, 2, 3, 4, 5, 6].map((n) => store.createTake({ id: `tk${n}`, roomId: 'r', name: `T${n}`, content: {}, createdBy: 'u', savedBy: 'U', createdAt: `2026-01-01T00:00:0${n}.000Z` }, 3)),
      );
      expect(results.filter(Boolean)).to.have.length(3);
      expect(await store.listTakes('r')).to.have.length(3);
    } finally {
      await store.close();
    }
  });
});

/** The pid of the backend (or the `count` backends) waiting on a lock in a statement that mentions `what`. */
async function waitingBackend(observer: pg.Client, what: string, count = 1): Promise<number> {
  for (let i = 0; i < 200; i++) {
    // Inside a transaction the activity view is a snapshot taken once; each look needs a new one.
    await observer.query('SELECT pg_stat_clear_snapshot()');
    const { rows } = await observer.query<{ pid: number }>(
      "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE $1",
      [`%${what}%`],
    );
    if (rows.length >= count) return rows[0]!.pid;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`no backend came to wait on ${what}`);
}

async function versions(url: string): Promise<number[]> {
  const client = new pg.Client(url);
  await client.connect();
  try {
    const { rows } = await client.query<{ version: number }>('SELECT version FROM schema_migrations ORDER BY version');
    return rows.map((r) => r.version);
  } finally {
    await client.end();
  }
}
