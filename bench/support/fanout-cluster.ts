// The servers under test of sync-fanout: one embedded server (as before), or two
// nodes in scale-out mode: a real redis-server on a free loopback port, two
// `node server/main.ts` children with REDIS_URL and one TOKEN_SECRET, over ONE
// shared SQLite DATA_DIR. Sharing the store is fine for this benchmark, which
// measures the fan-out through Redis (a room's updates from node A to members on
// node B), not the store; nodes on separate machines would use PostgreSQL.
// Everything is stopped by stop(): the nodes and redis-server by their PIDs, the
// folder removed — or killed when the benchmark process exits.
import crypto from 'node:crypto';
import { demoDataDir, removeDemoTemplate } from '../../test/support/demo-data.ts';
import { redisAvailable, startRedis, type TestRedis } from '../../test/support/redis.ts';
import { startBenchServer, type BenchServer } from './server.ts';

export interface FanoutCluster {
  /** Node A first: the writer's node. */
  nodes: BenchServer[];
  /** The redis-server's PID (two nodes only), to measure its CPU. */
  redisPid: number | null;
  /** `sqlite` (one embedded server) or `sqlite-shared` (two nodes over one DATA_DIR). */
  store: 'sqlite' | 'sqlite-shared';
  /** Stops the nodes, then redis-server, and removes the shared folder. Idempotent. */
  stop(): Promise<void>;
}

export interface ClusterOptions {
  nodes: 1 | 2;
  cpuProfileDir?: string;
}

export async function startFanoutCluster(opts: ClusterOptions): Promise<FanoutCluster> {
  const profile = opts.cpuProfileDir ? { cpuProfileDir: opts.cpuProfileDir } : {};
  if (opts.nodes === 1) {
    const server = await startBenchServer(profile);
    return { nodes: [server], redisPid: null, store: 'sqlite', stop: () => server.stop() };
  }
  if (!redisAvailable()) throw new Error('--nodes=2 needs redis-server on the PATH (Debian: apt-get install redis-server)');

  const nodes: BenchServer[] = [];
  let redis: TestRedis | null = null;
  let data: { path: string; remove(): Promise<void> } | null = null;
  let killRedis: (() => void) | null = null;
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      // The nodes first: a node whose Redis went away first would log reconnects while closing.
      await Promise.all(nodes.map((n) => n.stop()));
      if (redis) await redis.stop();
      if (killRedis) process.off('exit', killRedis);
      if (data) await data.remove();
      await removeDemoTemplate();
    })();
    return stopping;
  };
  try {
    redis = await startRedis();
    const child = redis.process;
    killRedis = () => child.kill('SIGKILL');
    process.once('exit', killRedis);
    data = await demoDataDir();
    const env = { REDIS_URL: redis.url, TOKEN_SECRET: crypto.randomBytes(32).toString('hex') };
    // One after the other: the first runs the store's migrations, the second finds them done.
    for (let i = 0; i < 2; i++) nodes.push(await startBenchServer({ ...profile, dataDir: data.path, env }));
    return { nodes, redisPid: child.pid ?? null, store: 'sqlite-shared', stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
