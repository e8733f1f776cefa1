// sync-fanout: one writer and N members in one room, all stock y-websocket
// providers, the server in a child process. The writer moves mix.master.reverbMix
// to a new value every 50–100 ms; each member's document reports when it shows the
// value. Latency = that moment − the moment the writer set it. Every update goes
// through the server's DocGuard.
//
//   npm run bench -- sync-fanout [--members=50,500,1000] [--updates=200] [--warmup=10]
//                                [--batch=50] [--awareness=on|off] [--ws-client=undici|ws]
//                                [--client-procs=1] [--nodes=1|2] [--cpu-prof=DIR]
//
// --nodes=2 runs the room on two nodes in scale-out mode (support/fanout-cluster.ts):
// a real redis-server, two server children with REDIS_URL and one TOKEN_SECRET, over
// ONE shared SQLite DATA_DIR (`store: 'sqlite-shared'` in the figures: this measures
// the fan-out through Redis, not the store). The writer is on node A; the first half
// of the members connect to A, the second half to B, so B's members see each update
// after its trip A → Redis → B. Latency is measured as with one node, and reported
// per side (`bySide`: members on A, members on B) and over all.
//
// By default the members live in this process, as in the reference measurements (500
// stock providers in one process): their own serial work is then part of the figure.
// --client-procs=K spreads them over K forked processes (one clock: wall time).
// --awareness=on (the default) leaves each provider's awareness as the package makes
// it (a state of {} renewed every 15 s); off clears it before connecting.
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type * as Y from 'yjs';
import {
  FanoutMembers,
  VALUE_SCALE,
  connectClient,
  waitSynced,
  wallNow,
  type Client,
  type MembersOptions,
  type MembersReply,
  type MembersRequest,
  type MembersStatus,
} from './support/fanout-members.ts';
import { cpuMeter, cpuSeconds, intArg, mapLimit, MIB, parseArgs, percentile, round, rssBytes, sleep } from './support/proc.ts';
import { startFanoutCluster } from './support/fanout-cluster.ts';
import { joinWithInvite, metricValue, metricValues, openBenchRoom } from './support/server.ts';

/** The goal (DESIGN.md, "Performance budgets"): p99 under 50 ms at 500 members (one node or two). */
const GOAL = { members: 500, p99Ms: 50 };
const DELIVERY_TIMEOUT_MS = 15_000;
/** y-protocols renews a provider's awareness state every 15 s (half its 30 s timeout). */
const AWARENESS_RENEW_MS = 15_000;
const MEMBERS_SCRIPT = fileURLToPath(new URL('./support/fanout-members.ts', import.meta.url));

interface FanoutOptions {
  updates: number;
  warmup: number;
  batch: number;
  awareness: boolean;
  wsClient: 'undici' | 'ws';
  clientProcs: number;
  nodes: 1 | 2;
  cpuProfileDir?: string;
}

/** Latency figures over a set of deliveries. */
interface LatencySummary {
  members: number;
  samples: number;
  missing: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
  /**
   * The median over updates of the fastest delivery on this side: on B, the trip A → Redis → B
   * without the members' process's queue (it handles every side's deliveries one after another).
   */
  medianFirstDeliveryMs: number;
}

/** One node's own figures while the updates were sent. */
interface NodeFigures {
  node: string;
  members: number;
  cpuPct: number;
  loopDelayP99Ms: number | null;
  loopDelayMaxMs: number | null;
  rssMb: number;
}

interface FanoutResult {
  members: number;
  updates: number;
  samples: number;
  missing: number;
  /**
   * Updates that no member ever showed, most likely merged with the writer's next edit by the
   * server's edit throttle (the one place it merges updates: waiting edits go in together when
   * a lease of allowance comes back), so their value was superseded before it went out.
   * Each counts n times in `missing`.
   */
  updatesNoMemberShowed: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  maxMs: number;
  /** The median over updates of each update's fastest delivery: the server's turn-around plus one client's. */
  medianFirstDeliveryMs: number;
  /** Its p99 over updates: when it is high, whole updates were late before any member had them (server, writer, or this machine). */
  p99FirstDeliveryMs: number;
  /** The median over updates of each update's slowest delivery. */
  medianLastDeliveryMs: number;
  joinSec: number;
  settleSec: number;
  /** The server's CPU while the updates were sent, in % of one core (two nodes: their sum). */
  serverCpuPct: number;
  /** The server's event-loop delay over the same time (its own metrics, 10 ms resolution): how late it ran (two nodes: the worse). */
  serverLoopDelayP99Ms: number | null;
  serverLoopDelayMaxMs: number | null;
  /** The members' processes' CPU over the same time (this process included), in % of one core. */
  clientCpuPct: number;
  /** The worst event-loop delay p99 of the members' processes: how late the members' clients ran. */
  clientLoopDelayP99Ms: number;
  /** The server's RSS (two nodes: their sum). */
  serverRssMb: number;
  /** Two nodes: latency by the node the members are on (A: the writer's), and each node's own figures. */
  bySide?: Record<string, LatencySummary>;
  perNode?: NodeFigures[];
  /** Two nodes: redis-server's CPU while the updates were sent, in % of one core. */
  redisCpuPct?: number;
  /** Awareness updates all the members' providers applied per second while measuring (each one a message the server sent, and that the provider sent back). */
  clientAwarenessUpdatesPerSec: number;
}

/** Members in this process or in a forked one, behind one interface. */
interface MemberGroup {
  count: number;
  /** The node its members are connected to (0: A). */
  side: number;
  join(): Promise<void>;
  observe(total: number): Promise<void>;
  status(): Promise<MembersStatus>;
  seenAt(): Promise<Float64Array>;
  close(): Promise<void>;
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['members', 'updates', 'warmup', 'batch', 'awareness', 'ws-client', 'client-procs', 'nodes', 'cpu-prof']);
  const sizes = (args.get('members') ?? '50,500,1000').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 5000) throw new Error(`--members takes sizes from 1 to 5000, not "${s}"`);
    return n;
  });
  const updates = intArg(args, 'updates', 200, 1, 5000);
  const warmup = intArg(args, 'warmup', 10, 0, 1000);
  const batch = intArg(args, 'batch', 50, 1, 1000);
  const clientProcs = intArg(args, 'client-procs', 1, 1, 16);
  const nodes = intArg(args, 'nodes', 1, 1, 2) as 1 | 2;
  if (warmup + updates >= VALUE_SCALE) throw new Error(`--warmup + --updates must stay under ${VALUE_SCALE}`);
  const cpuProfileDir = args.get('cpu-prof');
  const awareness = args.get('awareness') ?? 'on';
  if (awareness !== 'on' && awareness !== 'off') throw new Error(`--awareness is on or off, not "${awareness}"`);
  const wsClient = args.get('ws-client') ?? 'undici';
  if (wsClient !== 'ws' && wsClient !== 'undici') throw new Error(`--ws-client is undici or ws, not "${wsClient}"`);

  if (nodes === 2 && sizes.some((n) => n < 2)) throw new Error('--nodes=2 needs at least 2 members (half on each node)');

  const loadBefore = loadAverage();
  const perN: FanoutResult[] = [];
  for (const n of sizes) {
    console.log(`sync-fanout: ${n} members, ${updates} updates${nodes === 2 ? ', two nodes (half the members on each)' : ''}`);
    const r = await fanout(n, {
      updates,
      warmup,
      batch,
      awareness: awareness === 'on',
      wsClient,
      clientProcs,
      nodes,
      ...(cpuProfileDir ? { cpuProfileDir } : {}),
    });
    console.log(`sync-fanout: ${n} members: p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, missing ${r.missing}, server CPU ${r.serverCpuPct}%`);
    for (const [side, s] of Object.entries(r.bySide ?? {})) {
      console.log(`sync-fanout: ${n} members: the ${s.members} on node ${side}: p50 ${s.p50Ms} ms, p99 ${s.p99Ms} ms, max ${s.maxMs} ms, missing ${s.missing}, fastest (median) ${s.medianFirstDeliveryMs} ms`);
    }
    perN.push(r);
  }
  const largest = perN.reduce((a, b) => (b.members > a.members ? b : a));
  const atGoal = perN.find((r) => r.members === GOAL.members);
  return {
    members: largest.members,
    p50Ms: largest.p50Ms,
    p99Ms: largest.p99Ms,
    awareness,
    wsClient,
    clientProcs,
    nodes,
    store: nodes === 2 ? 'sqlite-shared' : 'sqlite',
    ...(largest.bySide ? { bySide: largest.bySide } : {}),
    loadBefore,
    loadAfter: loadAverage(),
    goal: `p99 < ${GOAL.p99Ms} ms at ${GOAL.members} members`,
    goalMet: atGoal ? atGoal.p99Ms < GOAL.p99Ms && atGoal.missing === 0 : null,
    perN,
  };
}

async function fanout(n: number, opts: FanoutOptions): Promise<FanoutResult> {
  const cluster = await startFanoutCluster({ nodes: opts.nodes, ...(opts.cpuProfileDir ? { cpuProfileDir: opts.cpuProfileDir } : {}) });
  const nodes = cluster.nodes;
  const server = nodes[0]!;
  const sides = nodes.length;
  const sideName = (s: number) => String.fromCharCode(65 + s);
  /** Member i (0-based) is on node sideOf(i): the first half on A, the second on B. */
  const sideOf = (i: number) => Math.floor((i * sides) / n);
  let writer: Client | null = null;
  const groups: MemberGroup[] = [];
  try {
    const room = await openBenchRoom(server.url);
    const names = ['writer', ...Array.from({ length: n }, (_, i) => `member ${i + 1}`)];
    const joinStart = performance.now();
    // Each joins through the node it will connect to (one store and one TOKEN_SECRET: any node would do).
    const tokens = await mapLimit(names, 16, (name, j) => joinWithInvite(nodes[j === 0 ? 0 : sideOf(j - 1)]!.url, room, name));
    const baseOn = (s: number) => ({ wsBase: nodes[s]!.url.replace(/^http/, 'ws') + '/sync', roomId: room.roomId, awareness: opts.awareness, wsClient: opts.wsClient });

    const connectStart = performance.now();
    writer = connectClient(baseOn(0), tokens[0]!);
    await waitSynced([writer]);
    const memberTokens = tokens.slice(1);
    // Groups join at once: each gets its share of the batch, so as many connect together as with one group.
    const groupBatch = Math.max(1, Math.round(opts.batch / (opts.clientProcs * sides)));
    for (let s = 0; s < sides; s++) {
      const onSide = memberTokens.filter((_, i) => sideOf(i) === s);
      for (let g = 0; g < opts.clientProcs; g++) {
        const slice = onSide.filter((_, i) => i % opts.clientProcs === g);
        if (slice.length === 0) continue;
        const membersOpts: MembersOptions = { ...baseOn(s), tokens: slice, batch: groupBatch };
        groups.push(opts.clientProcs === 1 ? localGroup(membersOpts, s) : forkedGroup(membersOpts, s));
      }
    }
    // Members join in batches, each synced before the next, so the join burst is over before measuring.
    await Promise.all(groups.map((g) => g.join()));
    const joinSec = (performance.now() - joinStart) / 1000;
    console.log(`sync-fanout: ${n} members joined in ${round(joinSec, 1)} s`);
    // Providers renew their awareness every 15 s: measure in that steady state, not in the quiet before it.
    if (opts.awareness) await sleep(Math.max(0, AWARENESS_RENEW_MS + 1000 - (performance.now() - connectStart)));
    const settleSec = await settle(nodes.map((x) => x.pid));
    console.log(`sync-fanout: settled after ${round(settleSec, 1)} s; ${opts.warmup} warm-up updates`);

    const total = opts.warmup + opts.updates;
    await Promise.all(groups.map((g) => g.observe(total)));
    const sentAt = new Float64Array(total).fill(Number.NaN);
    const writerMaster = writer.doc.getMap('mix').get('master') as Y.Map<unknown>;
    const send = (k: number) => {
      sentAt[k] = wallNow();
      writerMaster.set('reverbMix', (k + 1) / VALUE_SCALE);
    };
    const seen = async () => (await Promise.all(groups.map((g) => g.status()))).reduce((s, st) => s + st.seen, 0);
    // A fixed spread of gaps between 50 and 100 ms, the same every run.
    const gapMs = (k: number) => 50 + ((k * 37) % 51);

    for (let k = 0; k < opts.warmup; k++) {
      send(k);
      await sleep(gapMs(k));
    }
    if (!(await waitUntil(async () => (await seen()) >= n * opts.warmup, DELIVERY_TIMEOUT_MS))) console.log('sync-fanout: warm-up deliveries missing');
    await sleep(500);
    console.log(`sync-fanout: measuring ${opts.updates} updates`);

    // The server's own event-loop delay histogram restarts at each scrape of its metrics.
    await Promise.all(nodes.map((x) => metricValue(x.url, 'remixroom_nodejs_eventloop_lag_p99_seconds')));
    const serverCpu = nodes.map((x) => cpuMeter(x.pid));
    const redisCpu = cluster.redisPid === null ? null : cpuMeter(cluster.redisPid);
    const status0 = await Promise.all(groups.map((g) => g.status()));
    const own0 = process.cpuUsage();
    const t0 = performance.now();
    // If the members cannot keep up (a saturated client, a starved machine), stop sending rather than run on.
    let expectedMs = 0;
    for (let k = opts.warmup; k < total; k++) expectedMs += gapMs(k);
    const deadline = t0 + 3 * expectedMs + 10_000;
    let sent = opts.warmup;
    for (let k = opts.warmup; k < total; k++) {
      if (performance.now() > deadline) {
        console.log(`sync-fanout: the members fell behind; stopped after ${k - opts.warmup} of ${opts.updates} updates`);
        break;
      }
      send(k);
      sent = k + 1;
      await sleep(gapMs(k));
    }
    const server1 = serverCpu.map((m) => m.stop());
    const redis1 = redisCpu?.stop() ?? null;
    const lags = await Promise.all(
      nodes.map((x) => metricValues(x.url, ['remixroom_nodejs_eventloop_lag_p99_seconds', 'remixroom_nodejs_eventloop_lag_max_seconds'])),
    );
    const worst = (i: number) => lags.reduce<number | null>((w, l) => (l[i] == null ? w : Math.max(w ?? 0, l[i]!)), null);
    const [serverLagP99, serverLagMax] = [worst(0), worst(1)];
    const wallSec = (performance.now() - t0) / 1000;
    const status1 = await Promise.all(groups.map((g) => g.status()));
    const own = process.cpuUsage(own0);
    // In-process members count this process's CPU already; forked ones add theirs to the writer's.
    const clientSec =
      opts.clientProcs === 1 ? (own.user + own.system) / 1e6 : (own.user + own.system) / 1e6 + status1.reduce((s, st, i) => s + st.cpuSec - status0[i]!.cpuSec, 0);
    const awarenessPerSec = status1.reduce((s, st, i) => s + st.awarenessEvents - status0[i]!.awarenessEvents, 0) / wallSec;
    const loopDelayP99 = Math.max(...status1.map((s) => s.loopDelayP99Ms));
    const delivered = await waitUntil(async () => (await seen()) >= n * sent, DELIVERY_TIMEOUT_MS);
    if (!delivered) console.log(`sync-fanout: deliveries still missing after ${DELIVERY_TIMEOUT_MS} ms`);

    const latencies: number[] = [];
    const lastPerUpdate: number[] = [];
    const firstPerUpdate: number[] = [];
    let missing = 0;
    const sideLatencies = Array.from({ length: sides }, () => [] as number[]);
    const sideMissing = new Array<number>(sides).fill(0);
    const sideFirsts = Array.from({ length: sides }, () => [] as number[]);
    const tables = await Promise.all(groups.map((g) => g.seenAt()));
    /** Updates no member ever showed (superseded before they went out?) and updates some members missed. */
    const missedByAll: number[] = [];
    const missedBySome: number[] = [];
    for (let k = opts.warmup; k < sent; k++) {
      let last = 0;
      let first = Number.POSITIVE_INFINITY;
      const missing0 = missing;
      const sideFirst = new Array<number>(sides).fill(Number.POSITIVE_INFINITY);
      for (const [g, table] of tables.entries()) {
        for (let i = 0; i < groups[g]!.count; i++) {
          const at = table[i * total + k]!;
          const side = groups[g]!.side;
          if (Number.isNaN(at)) {
            missing++;
            sideMissing[side]!++;
            continue;
          }
          const ms = at - sentAt[k]!;
          latencies.push(ms);
          sideLatencies[side]!.push(ms);
          if (ms < sideFirst[side]!) sideFirst[side] = ms;
          if (ms > last) last = ms;
          if (ms < first) first = ms;
        }
      }
      sideFirst.forEach((f, s) => f !== Number.POSITIVE_INFINITY && sideFirsts[s]!.push(f));
      if (missing - missing0 === n) missedByAll.push(k - opts.warmup);
      else if (missing > missing0) missedBySome.push(k - opts.warmup);
      lastPerUpdate.push(last);
      if (first !== Number.POSITIVE_INFINITY) firstPerUpdate.push(first);
    }
    if (missing > 0) {
      console.log(`sync-fanout: updates (0-based, measured) no member showed: [${missedByAll.join(', ')}]; some members missed: [${missedBySome.slice(0, 20).join(', ')}]`);
    }
    latencies.sort((a, b) => a - b);
    lastPerUpdate.sort((a, b) => a - b);
    firstPerUpdate.sort((a, b) => a - b);
    const rss = nodes.map((x) => rssBytes(x.pid) / MIB);
    const sideMembers = (s: number) => groups.filter((g) => g.side === s).reduce((sum, g) => sum + g.count, 0);
    const twoNodes =
      sides > 1
        ? {
            bySide: Object.fromEntries(sideLatencies.map((l, s) => [sideName(s), summarize(l, sideMembers(s), sideMissing[s]!, sideFirsts[s]!)])),
            perNode: nodes.map((_, s) => ({
              node: sideName(s),
              members: sideMembers(s),
              cpuPct: server1[s]!.cpuPct,
              loopDelayP99Ms: lags[s]![0] == null ? null : round(lags[s]![0]! * 1000),
              loopDelayMaxMs: lags[s]![1] == null ? null : round(lags[s]![1]! * 1000),
              rssMb: round(rss[s]!, 1),
            })),
            ...(redis1 ? { redisCpuPct: redis1.cpuPct } : {}),
          }
        : {};
    return {
      members: n,
      updates: sent - opts.warmup,
      samples: latencies.length,
      missing,
      updatesNoMemberShowed: missedByAll.length,
      p50Ms: round(percentile(latencies, 50)),
      p90Ms: round(percentile(latencies, 90)),
      p99Ms: round(percentile(latencies, 99)),
      maxMs: round(latencies[latencies.length - 1] ?? Number.NaN),
      medianFirstDeliveryMs: round(percentile(firstPerUpdate, 50)),
      p99FirstDeliveryMs: round(percentile(firstPerUpdate, 99)),
      medianLastDeliveryMs: round(percentile(lastPerUpdate, 50)),
      joinSec: round(joinSec, 1),
      settleSec: round(settleSec, 1),
      serverCpuPct: round(server1.reduce((sum, m) => sum + m.cpuPct, 0), 1),
      serverLoopDelayP99Ms: serverLagP99 == null ? null : round(serverLagP99 * 1000),
      serverLoopDelayMaxMs: serverLagMax == null ? null : round(serverLagMax * 1000),
      clientCpuPct: round((100 * clientSec) / wallSec, 1),
      clientLoopDelayP99Ms: round(loopDelayP99),
      serverRssMb: round(rss.reduce((a, b) => a + b, 0), 1),
      clientAwarenessUpdatesPerSec: Math.round(awarenessPerSec),
      ...twoNodes,
    };
  } finally {
    await Promise.all(groups.map((g) => g.close()));
    if (writer) {
      writer.provider.destroy();
      writer.doc.destroy();
    }
    await cluster.stop();
  }
}

function summarize(latencies: number[], members: number, missing: number, firsts: number[]): LatencySummary {
  const sorted = [...latencies].sort((a, b) => a - b);
  const firstSorted = [...firsts].sort((a, b) => a - b);
  return {
    members,
    samples: sorted.length,
    missing,
    p50Ms: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    maxMs: round(sorted[sorted.length - 1] ?? Number.NaN),
    medianFirstDeliveryMs: round(percentile(firstSorted, 50)),
  };
}

/** The 1-, 5- and 15-minute load averages: every figure is read against them. */
function loadAverage(): number[] {
  return os.loadavg().map((l) => round(l));
}

function localGroup(opts: MembersOptions, side: number): MemberGroup {
  const members = new FanoutMembers(opts);
  return {
    count: members.count,
    side,
    join: () => members.join(),
    observe: async (total) => members.observe(total),
    status: async () => members.status(),
    seenAt: async () => members.seenAt(),
    close: async () => members.close(),
  };
}

function forkedGroup(opts: MembersOptions, side: number): MemberGroup {
  const child: ChildProcess = fork(MEMBERS_SCRIPT, [], { execArgv: [], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  /** Sends a request and resolves with the reply of `type` (requests are answered in order). */
  const ask = <T extends MembersReply['type']>(request: MembersRequest, type: T, timeoutMs = 120_000) =>
    new Promise<Extract<MembersReply, { type: T }>>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`a members process sent no "${type}" within ${timeoutMs} ms`)), timeoutMs);
      const onMessage = (m: MembersReply) => {
        if (m.type === 'error') done(new Error(`a members process failed: ${m.message}`));
        else if (m.type === type) done(null, m as Extract<MembersReply, { type: T }>);
      };
      const onExit = (code: number | null) => done(new Error(`a members process exited (${code})`));
      const done = (err: Error | null, m?: Extract<MembersReply, { type: T }>) => {
        clearTimeout(timer);
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (err) reject(err);
        else resolve(m!);
      };
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(request);
    });
  return {
    count: opts.tokens.length,
    side,
    join: async () => {
      await ask({ type: 'join', opts }, 'joined');
    },
    observe: async (total) => {
      await ask({ type: 'observe', total }, 'observing');
    },
    status: async () => {
      const { seen, awarenessEvents, cpuSec, loopDelayP99Ms } = await ask({ type: 'status' }, 'status');
      return { seen, awarenessEvents, cpuSec, loopDelayP99Ms };
    },
    seenAt: async () => (await ask({ type: 'collect' }, 'collected')).seenAt,
    close: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      if (child.connected) child.send({ type: 'close' } satisfies MembersRequest);
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Waits until the join burst is over: every server below 10% of a core for two half-second windows (at most 30 s). */
async function settle(pids: number[]): Promise<number> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - start < 30_000) {
    const c0 = pids.map((pid) => cpuSeconds(pid));
    await sleep(500);
    quiet = pids.every((pid, i) => (cpuSeconds(pid) - c0[i]!) / 0.5 < 0.1) ? quiet + 1 : 0;
  }
  return (performance.now() - start) / 1000;
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const start = performance.now();
  while (!(await check())) {
    if (performance.now() - start > timeoutMs) return false;
    await sleep(20);
  }
  return true;
}
