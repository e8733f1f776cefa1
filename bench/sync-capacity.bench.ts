// sync-capacity: idle members held by one node across many rooms, each member with
// its sync connection and its socket.io connection, and the server's memory for them.
// The server runs in a child process; the members are held by a few client processes
// (bench/support/capacity-clients.ts), so that no process runs out of file descriptors.
//
//   npm run bench -- sync-capacity [--members=10000] [--rooms=1000] [--clients=4]
//                                  [--concurrency=25] [--hold=10] [--heap-snapshot=DIR] [--cpu-prof=DIR]
//                                  [--server-node-options="--max-semi-space-size=8"] [--bare-node=1]
//
// The server runs with the node options of the `start` script of package.json (as deployed), then
// --server-node-options; --bare-node=1 leaves out those of the `start` script.
//
// Memory is the server's VmRSS: its median over a few samples when idle (before any
// room exists), and its median over the hold once every member is connected and the
// server has gone quiet. `rssMb` is the difference.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { ChildMessage, ClientStats, ConnectOrder, CapacityMember, ParentMessage } from './support/capacity-clients.ts';
import { cpuMeter, cpuSeconds, fdCount, fdLimit, intArg, mapLimit, median, membersTcpConnections, MIB, parseArgs, round, rssBytes, sleep } from './support/proc.ts';
import { joinWithInvite, metricValue, openBenchRoom, startBenchServer, startNodeOptions, type BenchRoom, type BenchServer } from './support/server.ts';

/** The goal (issue 3): 10,000 members across 1,000 rooms in under 150 MB above the idle process. */
const GOAL = { members: 10_000, rssMb: 150 };
/** Rooms one forwarded address may open before the server's rate limit (20 at once) applies. */
const ROOMS_PER_ADDRESS = 20;
/** File descriptors the server keeps for itself beyond its members' sockets (store, HTTP keep-alive, slack). */
const FD_MARGIN = 64;
const CONNECT_TIMEOUT_MS = 10 * 60_000;
const CLIENT_SCRIPT = fileURLToPath(new URL('./support/capacity-clients.ts', import.meta.url));

interface ClientProcess {
  child: ChildProcess;
  /** Resolves with the next message of `type`. */
  next(type: ChildMessage['type'], timeoutMs: number): Promise<ChildMessage>;
  last: ClientStats | null;
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['members', 'rooms', 'clients', 'concurrency', 'hold', 'heap-snapshot', 'cpu-prof', 'server-node-options', 'bare-node']);
  const requested = intArg(args, 'members', GOAL.members, 1, 100_000);
  const roomCount = intArg(args, 'rooms', 1000, 1, 10_000);
  const clientCount = intArg(args, 'clients', 4, 1, 32);
  const concurrency = intArg(args, 'concurrency', 25, 1, 1000);
  const holdSec = intArg(args, 'hold', 10, 1, 600);
  const heapSnapshotDir = args.get('heap-snapshot');
  const cpuProfileDir = args.get('cpu-prof');
  const serverNodeOptions = args.get('server-node-options');
  const bareNode = ['1', 'true', 'yes'].includes(args.get('bare-node') ?? process.env['BENCH_BARE_NODE'] ?? '');
  const serverNodeFlags = [...(bareNode ? [] : startNodeOptions()), ...(serverNodeOptions ? [serverNodeOptions] : [])];
  console.log(`sync-capacity: server node options: ${serverNodeFlags.join(' ') || '(none)'}${bareNode ? '' : ' (the start script\'s first)'}`);

  // Each client process holds two sockets a member, under its own file limit.
  const perClient = Math.floor((fdLimit(process.pid) - 200) / 2);
  if (Math.ceil(requested / clientCount) > perClient) throw new Error(`--clients=${clientCount} cannot hold ${requested} members (${perClient} each at most here); use more`);

  const server = await startBenchServer({
    ...(cpuProfileDir ? { cpuProfileDir } : {}),
    ...(heapSnapshotDir ? { heapSnapshotDir } : {}),
    ...(serverNodeOptions ? { nodeOptions: serverNodeOptions } : {}),
    bareNode,
  });
  const clients: ClientProcess[] = [];
  try {
    // Every member costs the server two sockets; its file limit is the ceiling here.
    const limit = fdLimit(server.pid);
    const idleFds = fdCount(server.pid);
    const fdCeiling = Math.floor((limit - idleFds - FD_MARGIN) / 2);
    const members = Math.min(requested, fdCeiling);
    if (members < requested) {
      console.log(`sync-capacity: the server may open ${limit} files (hard limit; raising it needs CAP_SYS_RESOURCE), ${idleFds} in use: holding ${members} members, not ${requested}`);
    }
    const rooms = Math.min(roomCount, members);

    await sleep(2000);
    const idleRss = await sampleRss(server.pid, 5, 500);
    const idleHeap = await heapOf(server);
    if (heapSnapshotDir) await heapSnapshot(server, heapSnapshotDir);
    console.log(`sync-capacity: idle server RSS ${round(idleRss / MIB, 1)} MB`);

    const mintStart = performance.now();
    const opened = await mapLimit(
      Array.from({ length: rooms }, (_, i) => i),
      8,
      (i) => openBenchRoom(server.url, `10.${Math.floor(i / ROOMS_PER_ADDRESS / 250)}.${Math.floor(i / ROOMS_PER_ADDRESS) % 250}.1`),
    );
    const roster: CapacityMember[] = await mapLimit(
      Array.from({ length: members }, (_, i) => i),
      32,
      async (i) => {
        const room: BenchRoom = opened[i % rooms]!;
        return { roomId: room.roomId, token: await joinWithInvite(server.url, room, `member ${i + 1}`) };
      },
    );
    const mintSec = (performance.now() - mintStart) / 1000;
    console.log(`sync-capacity: ${rooms} rooms and ${members} member tokens minted in ${round(mintSec, 1)} s`);
    // Let the minting's HTTP keep-alive connections to the server close.
    await sleep(6000);
    const mintedRss = await sampleRss(server.pid, 5, 500);

    const connectStart = performance.now();
    for (let c = 0; c < clientCount; c++) clients.push(startClient());
    await Promise.all(
      clients.map((client, c) => {
        const order: ConnectOrder = {
          type: 'connect',
          url: server.url,
          members: roster.filter((_, i) => i % clientCount === c),
          concurrency,
          // Each client process connects from its own loopback address, so that ephemeral ports do not run short.
          localAddress: `127.0.0.${2 + c}`,
        };
        client.child.send(order satisfies ParentMessage);
        return client.next('connected', CONNECT_TIMEOUT_MS);
      }),
    );
    const connectSec = (performance.now() - connectStart) / 1000;
    const afterConnect = await clientTotals(clients);
    console.log(
      `sync-capacity: connected in ${round(connectSec, 1)} s: ${afterConnect.syncOpen} sync and ${afterConnect.socketOpen} socket.io connections ` +
        `(${afterConnect.syncFailed + afterConnect.socketFailed} failed)`,
    );
    if (afterConnect.syncOpen === 0) throw new Error('no member could connect');

    const settleSec = await settle(server.pid);
    console.log(`sync-capacity: settled after ${round(settleSec, 1)} s; holding for ${holdSec} s`);
    const before = await serverCounts(server);
    const heldCpu = cpuMeter(server.pid);
    const samples: number[] = [];
    const holdEnd = performance.now() + holdSec * 1000;
    while (performance.now() < holdEnd) {
      samples.push(rssBytes(server.pid));
      if (samples.length % 5 === 0) console.log(`sync-capacity: held ${samples.length} s, server RSS ${round(samples[samples.length - 1]! / MIB, 1)} MB`);
      await sleep(1000);
    }
    const held = heldCpu.stop();
    const heldHeap = await heapOf(server);
    if (heapSnapshotDir) await heapSnapshot(server, heapSnapshotDir);
    const after = await serverCounts(server);
    const clientsAfter = await clientTotals(clients);
    const heldRss = median(samples);
    // A member is held when both its connections are.
    const heldMembers = Math.min(afterConnect.syncOpen, afterConnect.socketOpen);
    const held10k = ((heldRss - idleRss) / heldMembers) * GOAL.members;
    const stable =
      [before.sync, after.sync, before.socket, after.socket].every((n) => n === heldMembers) &&
      clientsAfter.syncClosed === 0 &&
      clientsAfter.socketClosed === 0;
    return {
      members: heldMembers,
      membersRequested: requested,
      rooms,
      rssMb: round((heldRss - idleRss) / MIB, 1),
      bytesPerMember: Math.round((heldRss - idleRss) / heldMembers),
      idleRssMb: round(idleRss / MIB, 1),
      heldRssMb: round(heldRss / MIB, 1),
      heldRssMaxMb: round(Math.max(...samples) / MIB, 1),
      /** Above the server after the HTTP minting of rooms and tokens, before any connection. */
      rssMbAboveMinted: round((heldRss - mintedRss) / MIB, 1),
      projectedRssMbFor10k: round(held10k / MIB, 1),
      /** V8's view, from the server's own metrics: the JS heap in use and memory outside it (buffers), idle → held. */
      heapUsedMb: [round(idleHeap.used / MIB, 1), round(heldHeap.used / MIB, 1)],
      heapTotalMb: [round(idleHeap.total / MIB, 1), round(heldHeap.total / MIB, 1)],
      externalMb: [round(idleHeap.external / MIB, 1), round(heldHeap.external / MIB, 1)],
      /** The young generation (V8's new space, both semi-spaces) idle → held: most of the gap between heapUsedMb and heapTotalMb. */
      newSpaceMb: [round(idleHeap.newSpace / MIB, 1), round(heldHeap.newSpace / MIB, 1)],
      goal: `${GOAL.members} members in < ${GOAL.rssMb} MB above idle`,
      goalMet: held10k / MIB < GOAL.rssMb,
      server: {
        syncConnections: [before.sync, after.sync],
        socketConnections: [before.socket, after.socket],
        socketCountFrom: after.socketFrom,
        fdLimit: limit,
        stableOverHold: stable,
        heldCpuPct: held.cpuPct,
      },
      clients: {
        processes: clientCount,
        syncOpen: clientsAfter.syncOpen,
        socketOpen: clientsAfter.socketOpen,
        failed: clientsAfter.syncFailed + clientsAfter.socketFailed,
        closedDuringHold: clientsAfter.syncClosed + clientsAfter.socketClosed,
        rssMb: round(clientsAfter.rssBytes / MIB, 1),
      },
      mintSec: round(mintSec, 1),
      connectSec: round(connectSec, 1),
      settleSec: round(settleSec, 1),
      holdSec,
      serverNodeOptions: serverNodeFlags.join(' '),
      ...(heapSnapshotDir ? { note: 'heap snapshots were taken: they inflate the RSS figures' } : {}),
    };
  } finally {
    await Promise.all(clients.map(stopClient));
    await server.stop();
  }
}

function startClient(): ClientProcess {
  const child = fork(CLIENT_SCRIPT, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const client: ClientProcess = {
    child,
    last: null,
    next(type, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`a client process sent no "${type}" within ${timeoutMs} ms`));
        }, timeoutMs);
        const onMessage = (m: ChildMessage) => {
          if (m.type !== type) return;
          cleanup();
          resolve(m);
        };
        const onExit = (code: number | null) => {
          cleanup();
          reject(new Error(`a client process exited (${code}) before sending "${type}"`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          child.off('message', onMessage);
          child.off('exit', onExit);
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
      });
    },
  };
  child.on('message', (m: ChildMessage) => {
    if (m.type !== 'closed') client.last = m;
  });
  return client;
}

async function stopClient(client: ClientProcess): Promise<void> {
  const { child } = client;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  if (child.connected) child.send({ type: 'close' } satisfies ParentMessage);
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

async function clientTotals(clients: ClientProcess[]): Promise<ClientStats> {
  const all = await Promise.all(
    clients.map((c) => {
      const reply = c.next('stats', 30_000);
      c.child.send({ type: 'stats' } satisfies ParentMessage);
      return reply as Promise<ClientStats>;
    }),
  );
  const sum: ClientStats = { syncOpen: 0, socketOpen: 0, syncFailed: 0, socketFailed: 0, syncClosed: 0, socketClosed: 0, connectMs: 0, rssBytes: 0 };
  for (const s of all) {
    sum.syncOpen += s.syncOpen;
    sum.socketOpen += s.socketOpen;
    sum.syncFailed += s.syncFailed;
    sum.socketFailed += s.socketFailed;
    sum.syncClosed += s.syncClosed;
    sum.socketClosed += s.socketClosed;
    sum.connectMs = Math.max(sum.connectMs, s.connectMs);
    sum.rssBytes += s.rssBytes;
  }
  return sum;
}

/**
 * What the server holds: sync connections from its gauge; socket.io connections from its gauge
 * when the server reports one, else the members' TCP connections to it less the sync ones.
 */
async function serverCounts(server: BenchServer): Promise<{ sync: number; socket: number; socketFrom: string }> {
  const sync = await metricValue(server.url, 'remixroom_sync_connections');
  const socket = await metricValue(server.url, 'remixroom_socket_connections');
  if (sync === null) throw new Error('the server reports no remixroom_sync_connections');
  if (socket !== null) return { sync, socket, socketFrom: 'gauge' };
  return { sync, socket: membersTcpConnections(Number(new URL(server.url).port)) - sync, socketFrom: 'tcp connections less sync' };
}

async function heapOf(server: BenchServer): Promise<{ used: number; total: number; external: number; newSpace: number }> {
  const [used, total, external] = await Promise.all(
    ['remixroom_nodejs_heap_size_used_bytes', 'remixroom_nodejs_heap_size_total_bytes', 'remixroom_nodejs_external_memory_bytes'].map((m) =>
      metricValue(server.url, m),
    ),
  );
  const metrics = await (await fetch(`${server.url}/metrics`)).text();
  const newSpace = /^remixroom_nodejs_heap_space_size_total_bytes\{space="new"\}\s+(\S+)/m.exec(metrics)?.[1];
  return { used: used ?? Number.NaN, total: total ?? Number.NaN, external: external ?? Number.NaN, newSpace: newSpace === undefined ? Number.NaN : Number(newSpace) };
}

/** Has the server write a heap snapshot (SIGUSR2, --heapsnapshot-signal) and waits until it is written. */
async function heapSnapshot(server: BenchServer, dir: string): Promise<void> {
  const before = new Set(fs.readdirSync(dir));
  process.kill(server.pid, 'SIGUSR2');
  console.log(`sync-capacity: heap snapshot requested into ${dir}`);
  const start = performance.now();
  // The file appears at once and grows until written; written when the server goes quiet again.
  while (performance.now() - start < 120_000 && !fs.readdirSync(dir).some((f) => !before.has(f))) await sleep(200);
  await settle(server.pid);
}

async function sampleRss(pid: number, count: number, everyMs: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    samples.push(rssBytes(pid));
    await sleep(everyMs);
  }
  return median(samples);
}

/** Waits until the server has gone quiet: below 10% of a core for two one-second windows (at most 60 s). */
async function settle(pid: number): Promise<number> {
  const start = performance.now();
  let quiet = 0;
  while (quiet < 2 && performance.now() - start < 60_000) {
    const c0 = cpuSeconds(pid);
    await sleep(1000);
    quiet = cpuSeconds(pid) - c0 < 0.1 ? quiet + 1 : 0;
  }
  return (performance.now() - start) / 1000;
}
