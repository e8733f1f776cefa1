// A split brain, for real: two `node server/main.ts` processes, a real redis-server
// and a short room lease. Node A stores a room and has an edit it has not saved yet
// when it is paused (SIGSTOP) past its lease; node B takes the lease, a newer fencing
// token and saves; A is resumed, and its late save is refused by the store itself
// and logged. Nothing B saved is overwritten. (The pieces are tested in one process
// in redis-bridge.test.ts.)
import { expect } from 'chai';
import crypto from 'node:crypto';
import { createClient, type RedisClientType } from 'redis';
import * as Y from 'yjs';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { PgStore } from '../../server/store/pg-store.ts';
import { importSqliteIntoPostgres } from '../../server/store/pg-import-sqlite.ts';
import { pino } from 'pino';
import { freshDatabase, postgresAvailable } from '../support/postgres.ts';
import type { Store } from '../../server/store/store.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { api, connectMember, joinAs, openRoom, stemMap, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

const LEASE_TTL_MS = 1000;
/** Longer than the time from an edit on A to A's pause, shorter than the room's longest wait (3 s): A's save is due while it sleeps. */
const SAVE_DEBOUNCE_MS = 2500;
const STALE_SAVE = 'the store refused a stale save: another node took a newer fencing token and stores the room now';

/**
 * The store both nodes write, and how the test reads it as a third party: one SQLite file
 * in a DATA_DIR the nodes share (one machine), or PostgreSQL with a DATA_DIR of each
 * node's own (separate machines; the release's files copied into each, no S3 needed).
 */
interface TestStore {
  /** The environment of one node. */
  env(node: string): Record<string, string>;
  open(): Promise<Store>;
  remove(): Promise<void>;
}

async function sqliteStore(): Promise<TestStore> {
  const data = await demoDataDir();
  return {
    env: () => ({ DATA_DIR: data.path }),
    open: () => SqliteStore.open(new DataLayout(data.path).database),
    remove: () => data.remove(),
  };
}

async function postgresStore(): Promise<TestStore> {
  const first = await demoDataDir();
  const dirs = new Map<string, { path: string; remove(): Promise<void> }>();
  const databaseUrl = await freshDatabase('split-brain');
  await importSqliteIntoPostgres({ sqliteFile: new DataLayout(first.path).database, url: databaseUrl, log: pino({ level: 'silent' }) });
  return {
    env: (node) => {
      const dir = dirs.get(node);
      if (!dir) throw new Error(`no DATA_DIR made for node ${node}`);
      return { DATA_DIR: dir.path, DATABASE_URL: databaseUrl };
    },
    open: async () => {
      // Each node's own DATA_DIR (the demo release's files in it; the records only in PostgreSQL).
      for (const node of ['A', 'B']) dirs.set(node, await demoDataDir());
      return PgStore.open(databaseUrl, { poolMax: 2, statementTimeoutMs: 5000, connectTimeoutMs: 5000, log: pino({ level: 'silent' }) });
    },
    remove: async () => {
      for (const d of dirs.values()) await d.remove();
      await first.remove();
    },
  };
}

const STORES: { name: string; make: () => Promise<TestStore>; needsPostgres: boolean }[] = [
  { name: 'one SQLite file the nodes share', make: sqliteStore, needsPostgres: false },
  { name: 'PostgreSQL, each node with its own DATA_DIR', make: postgresStore, needsPostgres: true },
];

interface Node {
  name: string;
  url: string;
  nodeId: string;
  process: ServerProcess;
}

/** The process's JSON log lines, parsed. */
function logLines(p: ServerProcess): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of p.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the read: not one of those looked for
    }
  }
  return lines;
}

for (const kind of STORES) describe(`a split brain (${kind.name}): a paused lease holder cannot overwrite the node that took over`, function () {
  this.timeout(120_000);
  let redis: TestRedis;
  let admin: RedisClientType;
  let shared: TestStore;
  let store: Store;
  const tokenSecret = crypto.randomBytes(32).toString('hex');
  const nodes: Node[] = [];
  const members: Member[] = [];

  before(async function () {
    requireComponent('redis-server', redisAvailable(), this);
    if (kind.needsPostgres) requireComponent('postgres', postgresAvailable(), this);
    redis = await startRedis();
    admin = createClient({ url: redis.url });
    await admin.connect();
    shared = await kind.make();
    store = await shared.open();
  });
  after(async () => {
    while (members.length) members.pop()!.destroy();
    for (const n of nodes) {
      // A stopped process would not act on SIGTERM.
      n.process.child.kill('SIGCONT');
      await stopChild(n.process.child);
    }
    await store?.close();
    await admin?.close();
    await redis?.stop();
    await shared?.remove();
  });

  async function spawnNode(name: string): Promise<Node> {
    const p = spawnServer({
      PORT: '0',
      REDIS_URL: redis.url,
      TOKEN_SECRET: tokenSecret,
      ROOM_SAVE_DEBOUNCE_MS: String(SAVE_DEBOUNCE_MS),
      ROOM_LEASE_TTL_MS: String(LEASE_TTL_MS),
      ...shared.env(name),
    });
    const node: Node = { name, url: '', nodeId: '', process: p };
    nodes.push(node);
    const listening = await p.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/);
    node.url = listening.slice(listening.indexOf('http'));
    const bridge = await p.waitFor(/"nodeId":"[^"]+"[^\n]*scale-out bridge connected/);
    node.nodeId = /"nodeId":"([^"]+)"/.exec(bridge)![1]!;
    return node;
  }

  async function member(node: Node, room: OpenedRoom, name: string): Promise<Member> {
    const { token } = await joinAs(node.url, room, 'remixer', name);
    const m = await connectMember(node.url, room.roomId, token);
    members.push(m);
    return m;
  }

  async function storedGain(roomId: string, stem: string): Promise<unknown> {
    const record = await store.getRoom(roomId);
    const doc = new Y.Doc();
    if (record?.doc) Y.applyUpdate(doc, record.doc);
    const gain = (doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>> | undefined)?.get(stem)?.get('gainDb');
    doc.destroy();
    return gain;
  }

  async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
    const start = Date.now();
    while (!(await check())) {
      if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** The fencing token the node took for the room, once it has taken one (the last one). */
  function tokenOf(node: Node, roomId: string): number | null {
    const taken = logLines(node.process).filter((l) => l['roomId'] === roomId && l['msg'] === 'fencing token taken; the room is saved with it');
    return taken.length ? (taken.at(-1)!['fence'] as number) : null;
  }

  const leaseHolder = (roomId: string) => admin.get(`remixroom:room:${roomId}:lease`);

  it("refuses and logs node A's late save after A was paused past its lease, and keeps what node B saved", async () => {
    const a = await spawnNode('A');
    const b = await spawnNode('B');
    const room = await openRoom(a.url);
    const roomId = room.roomId;
    const ana = await member(a, room, 'Ana');
    await eventually(async () => (await leaseHolder(roomId)) === a.nodeId && tokenOf(a, roomId) !== null, 10_000, 'A to take the lease and a fencing token');
    const tokenA = tokenOf(a, roomId)!;
    const bo = await member(b, room, 'Bo');

    // An edit on A that A has applied (B's member sees it, through Redis) but not saved when A is paused.
    // Should A save it before the pause lands (a very slow machine), A is resumed and it is tried again.
    let pausedAt = 0;
    let drums = 0;
    for (let attempt = 1; ; attempt++) {
      drums = -6 - attempt;
      stemMap(ana.doc, 'drums').set('gainDb', drums);
      await waitFor(() => stemMap(bo.doc, 'drums').get('gainDb') === drums, 5000, "A's edit to reach B");
      a.process.child.kill('SIGSTOP');
      pausedAt = Date.now();
      if ((await storedGain(roomId, 'drums')) !== drums) break;
      if (attempt === 5) throw new Error('node A saved each edit before it could be paused');
      a.process.child.kill('SIGCONT');
      await eventually(async () => (await leaseHolder(roomId)) === a.nodeId, 10_000, 'A to hold the lease again');
    }

    // While A sleeps: Bo edits on B; A's lease runs out; B takes it, a newer token, and saves.
    stemMap(bo.doc, 'bass').set('gainDb', -9);
    await eventually(async () => (await leaseHolder(roomId)) === b.nodeId, 10_000, 'B to take the lease');
    await eventually(() => (tokenOf(b, roomId) ?? 0) > tokenA, 10_000, 'B to take a newer fencing token');
    const tokenB = tokenOf(b, roomId)!;
    await eventually(async () => (await storedGain(roomId, 'bass')) === -9, 10_000, "B to save Bo's edit");
    // B had A's edit too (through Redis before the pause): saved by B.
    expect(await storedGain(roomId, 'drums')).to.equal(drums);
    // A's save, due at most SAVE_DEBOUNCE_MS after its edit, is overdue when it wakes: it is the first thing A does.
    const wake = pausedAt + SAVE_DEBOUNCE_MS + 500 - Date.now();
    if (wake > 0) await new Promise((r) => setTimeout(r, wake));
    expect(logLines(a.process).filter((l) => l['msg'] === STALE_SAVE), 'nothing refused before A wakes').to.deep.equal([]);

    a.process.child.kill('SIGCONT');
    await eventually(() => logLines(a.process).some((l) => l['msg'] === STALE_SAVE), 10_000, "A's late save to be refused and logged");
    const refused = logLines(a.process).filter((l) => l['msg'] === STALE_SAVE);
    expect(refused).to.have.length(1);
    expect(refused[0]).to.include({ level: 50, roomId, fence: tokenA, currentFence: tokenB });
    // Nothing overwritten: A's document did not have Bo's edit yet when it tried.
    expect(await storedGain(roomId, 'bass')).to.equal(-9);
    expect(await storedGain(roomId, 'drums')).to.equal(drums);
    expect(await leaseHolder(roomId)).to.equal(b.nodeId);

    // A serves on as a node that does not store the room: its members' edits reach the store through B.
    await waitFor(() => stemMap(ana.doc, 'bass').get('gainDb') === -9, 10_000, "Bo's edit to reach Ana on A");
    stemMap(ana.doc, 'lead').set('gainDb', -3);
    stemMap(bo.doc, 'harmony').set('gainDb', -4);
    await eventually(async () => (await storedGain(roomId, 'lead')) === -3 && (await storedGain(roomId, 'harmony')) === -4, 15_000, 'the edits made after A woke, saved by B');
    expect(await storedGain(roomId, 'bass')).to.equal(-9);
    expect(await storedGain(roomId, 'drums')).to.equal(drums);
    expect(logLines(a.process).filter((l) => l['msg'] === STALE_SAVE), 'A does not try its old token again').to.have.length(1);
    const metrics = await fetch(`${a.url}/metrics`).then((r) => r.text());
    expect(metrics).to.match(/^remixroom_store_stale_saves_total 1$/m);
    expect((await api(a.url, 'GET', `/api/rooms/${roomId}`)).status).to.equal(200);
  });
});
