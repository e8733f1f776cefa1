import { expect } from 'chai';
import { execFile } from 'node:child_process';
import crypto from 'node:crypto';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { pino } from 'pino';
import pg from 'pg';
import { DataLayout } from '../../server/store/paths.ts';
import { PgStore } from '../../server/store/pg-store.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { Store } from '../../server/store/store.ts';
import { requireComponent } from '../support/components.ts';
import { freshDatabase, postgresAvailable, sharedPostgres, TEST_PG_PASSWORD } from '../support/postgres.ts';
import { tempDir } from '../support/temp.ts';
import { sampleRecord } from './store.contract.ts';

const CLI = path.resolve('server/store/migrate-store-cli.ts');
const log = pino({ level: 'silent' });
const TABLES = ['releases', 'rooms', 'renders', 'orders', 'entitlements', 'webhook_events', 'room_members', 'invites', 'room_takes', 'chat_messages'];

function migrateStore(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, DATA_DIR: '' } }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

/** A DATA_DIR's store with something in every table, as a running installation would have it. */
async function populate(store: Store): Promise<void> {
  const place = { place() {}, undo() {} };
  await store.putRelease(sampleRecord('rel-a', 'Album A'), place);
  await store.putRelease(sampleRecord('rel-b', 'Album B'), place);
  for (let r = 0; r < 3; r++) {
    const id = `room${r}`;
    await store.createRoom({ id, releaseId: r === 2 ? 'rel-b' : 'rel-a', createdAt: `2026-01-0${r + 1}T00:00:00.000Z`, doc: new Uint8Array([r]), creatorId: `u_host${r}` });
    const fence = await store.takeRoomFence(id);
    await store.takeRoomFence(id);
    // A document of realistic size (bytes of every value), saved with the newer token.
    await store.saveRoomDoc(id, new Uint8Array(crypto.randomBytes(150_000 + r)), JSON.stringify({ v: 1, changes: [r] }), fence + 1);
    await store.addMember({ roomId: id, userId: `u_host${r}`, name: 'Host', role: 'host', inviteId: null, accessUntil: '2026-02-01T00:00:00.000Z', createdAt: '2026-01-01T00:00:00.000Z' });
    for (let m = 0; m < 4; m++) {
      await store.addMember({ roomId: id, userId: `u_${r}_${m}`, name: `Fan ${m} “ü”`, role: 'remixer', inviteId: `inv${r}`, accessUntil: '2026-02-01T00:00:00.000Z', createdAt: `2026-01-01T00:00:0${m}.000Z` });
    }
    await store.setMemberRole(id, `u_${r}_1`, 'host', `u_host${r}`);
    await store.removeMember(id, `u_${r}_2`, `u_host${r}`);
    await store.createInvite({ id: `inv${r}`, roomId: id, role: 'remixer', maxUses: r === 0 ? null : 5, createdBy: `u_host${r}`, createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-08T00:00:00.000Z' });
    await store.useInvite(`inv${r}`);
    await store.createTake({ id: `tk_${r}`, roomId: id, name: `Take ${r}`, content: { mix: { gainDb: -3 + r }, visual: { prompt: 'sunset', promptAtMs: 1000 } }, createdBy: `u_host${r}`, savedBy: 'Host', createdAt: '2026-01-01T00:01:00.000Z' }, 10);
    // More messages than one insert batch, with ties of at_ms (kept in their order).
    for (let c = 0; c < 260; c++) {
      await store.addChatMessage(id, { id: `c${r}_${c}`, userId: `u_${r}_0`, name: 'Fan 0', role: 'remixer', text: `message ${c} ✓`, atMs: 1_000_000 + Math.floor(c / 3) }, 1000);
    }
    for (let k = 0; k < 3; k++) {
      const renderId = `${r}${k}`.padStart(16, '0');
      await store.createRender(
        { id: renderId, roomId: id, kind: k === 2 ? 'full' : 'clip', status: 'queued', request: { requestedBy: { userId: `u_${r}_0` }, fromMs: k * 1000 }, createdAt: `2026-01-01T00:0${k}:00.000Z` },
        k === 1 ? null : `u_${r}_0:key${k}`,
      );
      if (k === 0) await store.updateRender(renderId, { status: 'done', result: { files: ['clip.mp4'], seconds: 30 } });
    }
    const { order } = await store.createOrder(
      { id: `ord_${r}`, status: 'payment_pending', amountCents: 199 + r, currency: 'EUR', paymentId: null, renderId: null, request: { roomId: id, buyer: { userId: `u_${r}_0` } }, createdAt: '2026-01-01T00:05:00.000Z' },
      `buyer${r}:k`,
    );
    await store.updateOrder(order.id, ['payment_pending'], { status: 'paid', paymentId: `pay_${r}` });
    await store.createEntitlement({ id: `ent_${r}`, orderId: order.id, renderId: `${r}2`.padStart(16, '0') });
    if (r === 1) await store.revokeEntitlement(order.id);
    await store.recordWebhookEvent(`evt_${r}`);
  }
  await store.endRoom('room1');
  await store.setRoomLocked('room2', true);
}

describe('npm run migrate-store: SQLite DATA_DIR into PostgreSQL', function () {
  this.timeout(120_000);
  let dir: { path: string; remove(): Promise<void> };
  let layout: DataLayout;

  before(async function () {
    requireComponent('postgresql', postgresAvailable(), this);
    await sharedPostgres();
    dir = await tempDir('migrate-store');
    layout = new DataLayout(dir.path);
    const store = await SqliteStore.open(layout.database);
    await populate(store);
    await store.close();
  });
  after(async () => {
    await dir?.remove();
  });

  it('copies every table row by row, and a PgStore reads back the same records as the SqliteStore', async () => {
    const url = await freshDatabase('migrate');
    const run = await migrateStore(['--to', url, '--data-dir', dir.path]);
    expect(run.code, run.stderr).to.equal(0);
    expect(run.stdout).to.match(/copied \d+ rows in 10 tables; every count checked/);
    expect(run.stderr).to.include('chat_messages: 780 rows');
    expect(`${run.stdout}${run.stderr}`).to.not.include(TEST_PG_PASSWORD);

    // Row by row, column by column, in each table's key order.
    const sqlite = new DatabaseSync(layout.database, { readOnly: true });
    const client = new pg.Client(url);
    await client.connect();
    try {
      for (const table of TABLES) {
        const columns = (sqlite.prepare(`PRAGMA table_info(${table})`).all() as { name: string; pk: number }[]);
        const names = columns.map((c) => c.name);
        const key = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk).map((c) => c.name).join(', ');
        const fromSqlite = (sqlite.prepare(`SELECT ${names.join(', ')} FROM ${table} ORDER BY ${key}`).all() as Record<string, unknown>[]).map(normalise);
        const fromPg = (await client.query(`SELECT ${names.join(', ')} FROM ${table} ORDER BY ${names.filter((n) => key.split(', ').includes(n)).map((n) => `${n} COLLATE "C"`).join(', ')}`)).rows.map(normalise);
        expect(fromSqlite.length, table).to.be.greaterThan(0);
        expect(fromPg, table).to.deep.equal(fromSqlite);
      }
    } finally {
      sqlite.close();
      await client.end();
    }

    // The records every caller reads are the same from either store.
    const a = await SqliteStore.open(layout.database);
    const b = await PgStore.open(url, { poolMax: 2, statementTimeoutMs: 5000, connectTimeoutMs: 3000, log });
    try {
      expect(await b.listReleases()).to.deep.equal(await a.listReleases());
      for (const id of ['rel-a', 'rel-b']) expect(await b.getRelease(id)).to.deep.equal(await a.getRelease(id));
      for (const r of [0, 1, 2]) {
        const id = `room${r}`;
        expect(await b.getRoom(id)).to.deep.equal(await a.getRoom(id));
        expect(await b.listMemberChanges(id)).to.deep.equal(await a.listMemberChanges(id));
        for (const m of [0, 1, 2, 3]) expect(await b.getMember(id, `u_${r}_${m}`)).to.deep.equal(await a.getMember(id, `u_${r}_${m}`));
        expect(await b.getInvite(`inv${r}`)).to.deep.equal(await a.getInvite(`inv${r}`));
        expect(await b.listTakes(id)).to.deep.equal(await a.listTakes(id));
        expect(await b.listChatMessages(id, 100)).to.deep.equal(await a.listChatMessages(id, 100));
        expect(await b.listMemberRenders(id, `u_${r}_0`, 10)).to.deep.equal(await a.listMemberRenders(id, `u_${r}_0`, 10));
        expect(await b.listMemberOrders(id, `u_${r}_0`, 10)).to.deep.equal(await a.listMemberOrders(id, `u_${r}_0`, 10));
        expect(await b.getOrderByPayment(`pay_${r}`)).to.deep.equal(await a.getOrderByPayment(`pay_${r}`));
        expect(await b.getEntitlementByOrder(`ord_${r}`)).to.deep.equal(await a.getEntitlementByOrder(`ord_${r}`));
        expect(await b.findRenderByKey(`u_${r}_0:key0`)).to.deep.equal(await a.findRenderByKey(`u_${r}_0:key0`));
      }
      expect(await b.listRenders(['queued', 'running', 'done', 'failed'])).to.deep.equal(await a.listRenders(['queued', 'running', 'done', 'failed']));
      expect(await b.listOrders(['paid'])).to.deep.equal(await a.listOrders(['paid']));
      // What the copy carried keeps working: fences continue past the old ones, keys stay taken, events stay seen.
      expect(await b.takeRoomFence('room0')).to.equal(await a.takeRoomFence('room0'));
      expect((await b.createRender({ id: 'ffffffffffffff00', roomId: 'room0', kind: 'clip', status: 'queued', request: {}, createdAt: '2026-02-01T00:00:00.000Z' }, 'u_0_0:key0')).created).to.equal(false);
      expect(await b.recordWebhookEvent('evt_1')).to.equal(false);
      // Chat keeps its order, also past the copy.
      await b.addChatMessage('room0', { id: 'after', userId: 'u', name: 'U', role: 'remixer', text: 'later', atMs: 1_000_086 }, 1000);
      expect((await b.listChatMessages('room0', 3)).map((m) => m.id)).to.deep.equal(['c0_258', 'c0_259', 'after']);
    } finally {
      await a.close();
      await b.close();
    }
  });

  it('refuses a target that holds rows, and changes nothing there', async () => {
    const url = await freshDatabase('occupied');
    const pgStore = await PgStore.open(url, { poolMax: 1, statementTimeoutMs: 5000, connectTimeoutMs: 3000, log });
    await pgStore.putRelease(sampleRecord('already-here'), { place() {}, undo() {} });
    await pgStore.close();
    const run = await migrateStore(['--to', url, '--data-dir', dir.path]);
    expect(run.code).to.equal(1);
    expect(run.stderr.trim().split('\n').at(-1)).to.match(/^migrate-store: PostgreSQL at 127\.0\.0\.1:\d+ database "occupied_[^"]+" already holds rows \(releases: 1\); migrate-store fills only an empty database, so nothing was copied$/);
    const client = new pg.Client(url);
    await client.connect();
    const { rows } = await client.query('SELECT (SELECT COUNT(*) FROM releases) AS releases, (SELECT COUNT(*) FROM rooms) AS rooms');
    await client.end();
    expect(rows[0]).to.deep.equal({ releases: '1', rooms: '0' });
  });

  it('says in one line what is wrong with a bad target or a missing DATA_DIR database', async () => {
    const port = (await sharedPostgres()).port;
    const wrongPassword = await migrateStore(['--to', `postgres://postgres:hunter2@127.0.0.1:${port}/postgres`, '--data-dir', dir.path]);
    expect(wrongPassword.code).to.equal(1);
    expect(wrongPassword.stderr.trim().split('\n').at(-1)).to.match(/^migrate-store: PostgreSQL at 127\.0\.0\.1:\d+ database "postgres": password authentication failed for user "postgres"$/);
    expect(wrongPassword.stderr).to.not.include('hunter2');
    const notPg = await migrateStore(['--to', 'mysql://x@127.0.0.1/db', '--data-dir', dir.path]);
    expect(notPg.code).to.equal(2);
    expect(notPg.stderr).to.match(/--to must be a URL like postgres:\/\//);
    const empty = await tempDir('migrate-empty');
    try {
      const missing = await migrateStore(['--to', `postgres://postgres:${TEST_PG_PASSWORD}@127.0.0.1:${port}/postgres`, '--data-dir', empty.path]);
      expect(missing.code).to.equal(1);
      expect(missing.stderr).to.match(/no SQLite database at .*remixroom\.sqlite; pass --data-dir/);
    } finally {
      await empty.remove();
    }
    const help = await migrateStore(['--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.match(/S3_BUCKET/);
  });
});

/** One representation for both drivers: bytes as hex, whole numbers as numbers (pg gives BIGINT as text). */
function normalise(row: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(row)) {
    if (v instanceof Uint8Array) out[k] = Buffer.from(v).toString('hex');
    else if (typeof v === 'string' && /^-?\d+$/.test(v) && ['frames', 'amount_cents', 'at_ms', 'fence'].includes(k)) out[k] = Number(v);
    else out[k] = v;
  }
  return out;
}
