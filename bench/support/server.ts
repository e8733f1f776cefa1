// The server under test: `node server/main.ts` as a child process, on a free
// loopback port, over a fresh DATA_DIR holding the demo release. It is stopped,
// and its data removed, by stop() — or killed when the benchmark process exits.
import fs from 'node:fs';
import path from 'node:path';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { demoDataDir, removeDemoTemplate } from '../../test/support/demo-data.ts';
import { freePort, stopChild } from '../../test/support/redis.ts';
import { spawnServer, type ServerProcess } from '../../test/support/server-process.ts';
import { sleep } from './proc.ts';

export interface BenchServer {
  url: string;
  pid: number;
  proc: ServerProcess;
  /** Stops the server (SIGTERM, then SIGKILL) and removes its data. Idempotent. */
  stop(): Promise<void>;
}

export interface BenchServerOptions {
  env?: Record<string, string>;
  /**
   * A DATA_DIR the caller made and owns (several nodes sharing one store): the server
   * runs over it and stop() leaves it, and the demo template, to the caller.
   */
  dataDir?: string;
  /** Writes a V8 CPU profile of the server into this folder when it exits (`--cpu-prof`). */
  cpuProfileDir?: string;
  /** Writes a heap snapshot of the server into this folder on SIGUSR2 (`--heapsnapshot-signal`). */
  heapSnapshotDir?: string;
  /** More options for the server's node, e.g. `--max-semi-space-size=16` (after those of `npm start`, so they win). */
  nodeOptions?: string;
  /** Leave out the node options of the `start` script (see startNodeOptions); default: BENCH_BARE_NODE=1 in the environment. */
  bareNode?: boolean;
}

/**
 * The node options the `start` script of package.json gives the server (`node --flag ... server/main.ts`),
 * so that a benchmark measures the server as it is deployed.
 */
export function startNodeOptions(): string[] {
  const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { scripts?: Record<string, string> };
  const words = (pkg.scripts?.['start'] ?? '').split(/\s+/);
  if (words[0] !== 'node') return [];
  const flags: string[] = [];
  for (const w of words.slice(1)) {
    if (!w.startsWith('--')) break;
    flags.push(w);
  }
  return flags;
}

export async function startBenchServer(opts: BenchServerOptions = {}): Promise<BenchServer> {
  const owned = opts.dataDir === undefined;
  const data = owned ? await demoDataDir() : { path: opts.dataDir!, remove: async () => {} };
  const port = await freePort();
  const nodeOptions = [
    ...((opts.bareNode ?? process.env['BENCH_BARE_NODE'] === '1') ? [] : startNodeOptions()),
    ...(opts.cpuProfileDir ? [`--cpu-prof`, `--cpu-prof-dir=${path.resolve(opts.cpuProfileDir)}`] : []),
    ...(opts.heapSnapshotDir ? [`--heapsnapshot-signal=SIGUSR2`, `--diagnostic-dir=${path.resolve(opts.heapSnapshotDir)}`] : []),
    ...(opts.nodeOptions ? [opts.nodeOptions] : []),
  ].join(' ');
  const proc = spawnServer({
    DATA_DIR: data.path,
    PORT: String(port),
    HOST: '127.0.0.1',
    LOG_LEVEL: 'warn',
    // Short so that a benchmark's rooms do not outlive it by much; members never leave during a run.
    ROOM_GRACE_MS: '2000',
    // One process here stands for many fans: their connections all come from this machine.
    MAX_CONNECTIONS_PER_ADDRESS: '1000000',
    ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}),
    ...opts.env,
  });
  const pid = proc.child.pid;
  if (pid === undefined) throw new Error('the server process did not start');
  const kill = () => proc.child.kill('SIGKILL');
  process.once('exit', kill);
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // A server holding thousands of connections may take a while to save and close them.
      await stopChild(proc.child, 'SIGTERM');
      process.off('exit', kill);
      if (owned) {
        await data.remove();
        await removeDemoTemplate();
      }
    })();
    return stopping;
  };
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitReady(url, proc);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url, pid, proc, stop };
}

async function waitReady(url: string, proc: ServerProcess, timeoutMs = 120_000): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (proc.child.exitCode !== null || proc.child.signalCode !== null) throw new Error(`the server exited while starting:\n${proc.output()}`);
    try {
      const res = await fetch(`${url}/readyz`);
      await res.arrayBuffer();
      if (res.ok) return;
    } catch {
      // Not listening yet.
    }
    if (Date.now() - start > timeoutMs) throw new Error(`the server was not ready within ${timeoutMs} ms:\n${proc.output()}`);
    await sleep(100);
  }
}

export interface BenchRoom {
  roomId: string;
  hostToken: string;
  /** The room's invite (from its join link): anyone holding it may /join as a remixer. */
  invite: string;
}

/**
 * Opens a room on the demo release. Rooms opened from one address are rate-limited;
 * `forwardedFor` lets a benchmark stand for many fans behind a loopback proxy
 * (the server trusts X-Forwarded-For from loopback only).
 */
export async function openBenchRoom(url: string, forwardedFor?: string): Promise<BenchRoom> {
  const res = await fetch(`${url}/api/rooms`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(forwardedFor ? { 'x-forwarded-for': forwardedFor } : {}) },
    body: JSON.stringify({ releaseId: DEMO_RELEASE_ID, joinRole: 'remixer' }),
  });
  const body = (await res.json()) as { roomId: string; hostToken: string; joinUrl: string };
  if (res.status !== 201) throw new Error(`opening a room failed (${res.status}): ${JSON.stringify(body)}`);
  const invite = new URL(body.joinUrl).hash.replace(/^#invite=/, '');
  if (!invite) throw new Error(`no invite in the join link ${body.joinUrl}`);
  return { roomId: body.roomId, hostToken: body.hostToken, invite };
}

let fans = 0;

/** A member token through the room's invite flow (POST /api/rooms/:id/join), as a fan at an address of its own. */
export async function joinWithInvite(url: string, room: BenchRoom, name: string): Promise<string> {
  const n = ++fans;
  const forwardedFor = `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
  for (let attempt = 1; ; attempt++) {
    const res = await fetch(`${url}/api/rooms/${room.roomId}/join`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': forwardedFor },
      body: JSON.stringify({ invite: room.invite, name }),
    });
    const body = (await res.json()) as { token?: string };
    if (res.status === 201 && body.token) return body.token;
    if (attempt >= 3 || res.status < 500) throw new Error(`joining room ${room.roomId} failed (${res.status}): ${JSON.stringify(body)}`);
    await sleep(100 * attempt);
  }
}

/** A metric's value from the server's /metrics (the sum over its labels), or null when it is not exported. */
export async function metricValue(url: string, name: string): Promise<number | null> {
  return (await metricValues(url, [name]))[0]!;
}

/** Several metrics from one scrape (a scrape restarts some, like the event-loop delay). */
export async function metricValues(url: string, names: string[]): Promise<(number | null)[]> {
  const res = await fetch(`${url}/metrics`);
  const text = await res.text();
  const sums = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{[^}]*\})?\s+(\S+)/.exec(line);
    if (m && names.includes(m[1]!)) sums.set(m[1]!, (sums.get(m[1]!) ?? 0) + Number(m[2]));
  }
  return names.map((n) => sums.get(n) ?? null);
}
