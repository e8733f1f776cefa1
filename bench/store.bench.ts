// `npm run bench -- store [rooms] [seconds]`: document saves of many busy rooms, SQLite and
// PostgreSQL side by side in one run.
//
// Each room saves its whole document and timeline (as Room.flush does), one save at a time per
// room. Two loads per store:
//  - busy: every room saves once per ROOM_SAVE_PERIOD_MS (a room edited without pause saves at
//    most that often: the room manager's longest wait), staggered; latency is measured from when
//    the save was due, so waiting for a pool connection counts;
//  - flat out: every room saves again as soon as its last save returned: the most saves a second
//    the store takes, and their latency under that load.
// SQLite is the embedded file (WAL, synchronous=NORMAL, in-process and synchronous); PostgreSQL is
// a fresh local server with its own durable defaults (fsync on, synchronous_commit on), reached
// over TCP through PgStore's pool (DATABASE_POOL_MAX's default), saves carrying fencing tokens as
// nodes with leases do. Latencies in ms; the load average is in the JSON.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import { PgStore } from '../server/store/pg-store.ts';
import { SqliteStore } from '../server/store/sqlite-store.ts';
import type { Store } from '../server/store/store.ts';
import { TestPostgres } from '../test/support/postgres.ts';
import { sampleRecord } from '../test/server/store.contract.ts';
import { tempDir } from '../test/support/temp.ts';

const ROOM_SAVE_PERIOD_MS = 3000;
const DOC_BYTES = 16 * 1024;
const TIMELINE_BYTES = 48 * 1024;
const POOL_MAX = 10;

interface Phase {
  saves: number;
  savesPerSec: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  failed: number;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const rooms = Number(args[0] ?? 1000);
  const seconds = Number(args[1] ?? 10);
  if (!Number.isInteger(rooms) || rooms < 1 || !(seconds > 0)) throw new Error('usage: npm run bench -- store [rooms] [seconds]');
  const dir = await tempDir('bench-store');
  const pg = await TestPostgres.create({ durable: true });
  const log = pino({ level: 'warn' });
  try {
    const sqlite = await SqliteStore.open(path.join(dir.path, 'remixroom.sqlite'));
    const sqliteResult = await bench('sqlite', sqlite, rooms, seconds);
    await sqlite.close();
    const postgres = await PgStore.open(pg.url(), { poolMax: POOL_MAX, statementTimeoutMs: 30_000, connectTimeoutMs: 5000, log });
    const version = (await postgresVersion(pg.url())).replace(/ on .*/, '');
    const pgResult = await bench('postgres', postgres, rooms, seconds);
    await postgres.close();
    return {
      rooms,
      secondsPerPhase: seconds,
      docBytes: DOC_BYTES,
      timelineBytes: TIMELINE_BYTES,
      busySavePeriodMs: ROOM_SAVE_PERIOD_MS,
      sqlite: sqliteResult,
      postgres: { ...pgResult, version, poolMax: POOL_MAX, durable: true },
      cores: os.availableParallelism(),
      tempFileSystem: fileSystemOf(dir.path),
      loadAverage: os.loadavg().map((x) => round(x, 2)),
    };
  } finally {
    await pg.remove();
    await dir.remove();
  }
}

async function bench(name: string, store: Store, rooms: number, seconds: number): Promise<{ busy: Phase; flatOut: Phase }> {
  await store.putRelease(sampleRecord('bench'), { place() {}, undo() {} });
  const ids: string[] = [];
  const fences = new Map<string, number>();
  for (let i = 0; i < rooms; i++) {
    const id = `room${i}`;
    await store.createRoom({ id, releaseId: 'bench', createdAt: new Date().toISOString(), doc: null });
    fences.set(id, await store.takeRoomFence(id));
    ids.push(id);
  }
  const doc = new Uint8Array(crypto.randomBytes(DOC_BYTES));
  const timeline = JSON.stringify({ v: 1, pad: 'x'.repeat(TIMELINE_BYTES) });
  const save = (id: string, n: number) => {
    const d = doc.slice();
    d[0] = n & 255; // a different document each time, as an edited room's
    return store.saveRoomDoc(id, d, timeline, fences.get(id));
  };
  // A short warm-up fills the pool and SQLite's page cache.
  await Promise.all(ids.slice(0, 50).map((id) => save(id, 0)));

  const busy = await phase(ids, seconds, save, ROOM_SAVE_PERIOD_MS);
  console.error(`store: ${name} busy: ${JSON.stringify(busy)}`);
  const flatOut = await phase(ids, seconds, save, 0);
  console.error(`store: ${name} flat out: ${JSON.stringify(flatOut)}`);
  return { busy, flatOut };
}

/** Every room saves in its own loop, one save at a time: every `periodMs` (staggered), or back to back (0). */
async function phase(ids: string[], seconds: number, save: (id: string, n: number) => Promise<void>, periodMs: number): Promise<Phase> {
  const latencies: number[] = [];
  let failed = 0;
  const start = performance.now();
  const end = start + seconds * 1000;
  await Promise.all(
    ids.map(async (id, i) => {
      let due = start + (periodMs * i) / ids.length;
      let n = 1;
      while (due < end) {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
        // SQLite's saves are synchronous: yield so that the rooms take turns as they would.
        else await new Promise((r) => setImmediate(r));
        const called = performance.now();
        try {
          await save(id, n++);
          const done = performance.now();
          // From when it was due (waiting counts), but never less than the call itself (a timer may fire a little early).
          latencies.push(periodMs > 0 ? Math.max(done - due, done - called) : done - called);
        } catch {
          failed++;
        }
        due = periodMs > 0 ? due + periodMs : performance.now();
      }
    }),
  );
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  return { saves: latencies.length, savesPerSec: round(latencies.length / elapsed, 1), p50Ms: round(at(0.5), 2), p99Ms: round(at(0.99), 2), maxMs: round(latencies.at(-1) ?? 0, 2), failed };
}

async function postgresVersion(url: string): Promise<string> {
  const { default: pg } = await import('pg');
  const client = new pg.Client(url);
  await client.connect();
  try {
    return (await client.query<{ version: string }>('SELECT version()')).rows[0]!.version;
  } finally {
    await client.end();
  }
}

/** What the data sits on (tmpfs makes every fsync free: say so beside the figures). */
function fileSystemOf(dir: string): string {
  const r = spawnSync('df', ['--output=fstype', dir], { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.trim().split('\n').at(-1) ?? 'unknown') : 'unknown';
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
