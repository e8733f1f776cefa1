// A real PostgreSQL server (Debian's package) for the suites that need one: started once per
// test run in a temporary folder on a free loopback port, stopped by its PID in the root afterAll.
// PostgreSQL refuses to run as root, so as root (CI) initdb and the server run as `postgres`.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './redis.ts';

/** The password of the `postgres` user in the test server (host connections need it: scram-sha-256). */
export const TEST_PG_PASSWORD = 'remixroom-test';

/** The newest installed PostgreSQL's bin folder, or null (not on PATH on Debian). */
export function postgresBinDir(): string | null {
  const base = '/usr/lib/postgresql';
  let versions: string[];
  try {
    versions = fs.readdirSync(base).filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  } catch {
    return null;
  }
  for (const v of versions) {
    const bin = path.join(base, v, 'bin');
    if (fs.existsSync(path.join(bin, 'pg_ctl')) && fs.existsSync(path.join(bin, 'initdb'))) return bin;
  }
  return null;
}

const isRoot = process.getuid?.() === 0;

function postgresUserIds(): { uid: number; gid: number } | null {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  if (uid.status !== 0 || gid.status !== 0) return null;
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** Whether a test PostgreSQL can be started here (the binaries, and the `postgres` user when running as root). */
export function postgresAvailable(): boolean {
  return postgresBinDir() !== null && (!isRoot || postgresUserIds() !== null);
}

export class TestPostgres {
  readonly root: string;
  readonly port: number;
  readonly #bin: string;
  readonly #durable: boolean;
  #running = false;

  private constructor(root: string, port: number, bin: string, durable: boolean) {
    this.root = root;
    this.port = port;
    this.#bin = bin;
    this.#durable = durable;
  }

  /**
   * Makes a cluster in a new temporary folder and starts it on a free port. Tests run it without
   * fsync (fast, nothing to lose); `durable` keeps PostgreSQL's own defaults (benchmarks).
   */
  static async create(options: { durable?: boolean } = {}): Promise<TestPostgres> {
    const bin = postgresBinDir();
    if (!bin) throw new Error('PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/pg_ctl); apt-get install postgresql');
    const root = await fsp.mkdtemp(path.join(os.tmpdir(), 'remixroom-pg-'));
    const ids = isRoot ? postgresUserIds() : null;
    if (isRoot && !ids) throw new Error('running as root needs the `postgres` user (Debian\'s postgresql package makes it)');
    await fsp.mkdir(path.join(root, 'sock'));
    await fsp.writeFile(path.join(root, 'pwfile'), `${TEST_PG_PASSWORD}\n`);
    if (ids) for (const p of [root, path.join(root, 'sock'), path.join(root, 'pwfile')]) await fsp.chown(p, ids.uid, ids.gid);
    const server = new TestPostgres(root, await freePort(), bin, options.durable === true);
    try {
      // Local socket: trust (the harness); TCP: a password, so that wrong credentials can be tested.
      server.#run('initdb', ['-D', server.dataDir, '-U', 'postgres', '--pwfile', path.join(root, 'pwfile'), '--auth-local=trust', '--auth-host=scram-sha-256', '--no-sync', '-E', 'UTF8', '--locale=C']);
      await server.start();
    } catch (err) {
      await fsp.rm(root, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get dataDir(): string {
    return path.join(this.root, 'data');
  }

  /** A URL for `database` (the server's own `postgres` when omitted). */
  url(database = 'postgres'): string {
    return `postgres://postgres:${TEST_PG_PASSWORD}@127.0.0.1:${this.port}/${database}`;
  }

  /** The postmaster's PID, from postmaster.pid; null when it is not running. */
  pid(): number | null {
    try {
      const first = fs.readFileSync(path.join(this.dataDir, 'postmaster.pid'), 'utf8').split('\n')[0];
      const pid = Number(first);
      return Number.isInteger(pid) && pid > 0 ? pid : null;
    } catch {
      return null;
    }
  }

  /** Starts the server (again, on the same port and data, after stop()). */
  async start(): Promise<void> {
    if (this.#running) return;
    const fast = this.#durable ? '' : ' -c fsync=off -c synchronous_commit=off -c full_page_writes=off';
    const options = `-p ${this.port} -k ${path.join(this.root, 'sock')} -c listen_addresses=127.0.0.1 -c max_connections=300${fast}`;
    this.#run('pg_ctl', ['-D', this.dataDir, '-l', path.join(this.root, 'server.log'), '-o', options, '-w', '-t', '30', 'start']);
    this.#running = true;
  }

  /** Stops the server by its PID (SIGINT: PostgreSQL's fast shutdown, what `pg_ctl stop -m fast` sends), waiting until it is gone. */
  async stop(): Promise<void> {
    const pid = this.pid();
    this.#running = false;
    if (pid === null) return;
    try {
      process.kill(pid, 'SIGINT');
    } catch {
      return;
    }
    const deadline = Date.now() + 15_000;
    while (alive(pid)) {
      if (Date.now() > deadline) {
        process.kill(pid, 'SIGKILL');
        break;
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Stops the server and removes its folder. */
  async remove(): Promise<void> {
    await this.stop();
    await fsp.rm(this.root, { recursive: true, force: true });
  }

  #run(tool: string, args: string[]): void {
    const file = path.join(this.#bin, tool);
    try {
      if (isRoot) execFileSync('runuser', ['-u', 'postgres', '--', file, ...args], { stdio: 'pipe', cwd: this.root });
      else execFileSync(file, args, { stdio: 'pipe', cwd: this.root });
    } catch (err) {
      const e = err as { stderr?: Buffer; stdout?: Buffer; message: string };
      let log = '';
      try {
        log = fs.readFileSync(path.join(this.root, 'server.log'), 'utf8').slice(-2000);
      } catch {
        // no log yet
      }
      throw new Error(`${tool} failed: ${e.stderr?.toString() || e.stdout?.toString() || e.message}${log ? `\n${log}` : ''}`);
    }
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

let shared: Promise<TestPostgres> | null = null;
let sharedServer: TestPostgres | null = null;

/** The run's one PostgreSQL server, started on first use. */
export function sharedPostgres(): Promise<TestPostgres> {
  shared ??= TestPostgres.create().then((server) => {
    sharedServer = server;
    // A run killed before its afterAll must not leave a postmaster behind.
    process.once('exit', () => {
      const pid = server.pid();
      if (pid !== null) {
        try {
          process.kill(pid, 'SIGQUIT');
        } catch {
          // gone already
        }
      }
    });
    return server;
  });
  return shared;
}

/** For the root afterAll: stops the shared server, if one was started, and removes its folder. */
export async function stopSharedPostgres(): Promise<void> {
  if (!shared) return;
  const started = shared;
  shared = null;
  await started.catch(() => null);
  const server = sharedServer;
  sharedServer = null;
  await server?.remove();
}

let databases = 0;

/** A new, empty database on the shared server for one caller; answers its URL. */
export async function freshDatabase(prefix = 't'): Promise<string> {
  const server = await sharedPostgres();
  const name = `${prefix}_${process.pid}_${++databases}_${Date.now().toString(36)}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const client = new pg.Client({ connectionString: server.url() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE "${name}"`);
  } finally {
    await client.end();
  }
  return server.url(name);
}
