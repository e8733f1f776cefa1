// still-isolation: does a flood of the largest stills in one room slow another
// room's edits? The server (a child process, as deployed) draws stills in its
// still threads with a bounded queue shared by every room; its main thread, which
// carries every room's sync, should not notice them.
//
//   npm run bench -- still-isolation [--members=6] [--seconds=60] [--baseline=200]
//
// Room A: `--members` members, each from its own address (X-Forwarded-For from
// loopback, which the server trusts), each asking for 3840x2160 stills at the
// highest rate its limit allows (still.member: a burst, then the refill; the
// client keeps the same bucket and ignores Retry-After), so that the still pool,
// not a rate limit, is what refuses; they run in a forked process
// (support/still-load.ts), so that receiving the PNGs does not slow the clients
// measured here. Room B: two stock y-websocket clients; one
// sets mix.master.reverbMix, the round trip ends when the other's document shows it
// (one every 50–100 ms). First `--baseline` round trips with no stills, then round
// trips for `--seconds` under the stills.
import { fork } from 'node:child_process';
import os from 'node:os';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { LIMITS } from '../shared/limits.ts';
import { connectClient, waitSynced, type Client } from './support/fanout-members.ts';
import { cpuMeter, intArg, parseArgs, round } from './support/proc.ts';
import { joinFrom, master, roundTrips } from './support/round-trips.ts';
import { metricValues, openBenchRoom, startBenchServer, type BenchRoom } from './support/server.ts';
import type { StillLoadOptions, StillLoadReply, StillLoadRequest, StillStats } from './support/still-load.ts';

const GOAL_P99_MS = 50;
const WIDTH = 3840;
const HEIGHT = 2160;
const LOAD_SCRIPT = fileURLToPath(new URL('./support/still-load.ts', import.meta.url));


export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['members', 'seconds', 'baseline']);
  const members = intArg(args, 'members', 6, 1, 50);
  const seconds = intArg(args, 'seconds', 60, 5, 600);
  const baselineCount = intArg(args, 'baseline', 200, 10, 2000);
  const rate = LIMITS['still.member'];

  const server = await startBenchServer();
  const clients: Client[] = [];
  try {
    const roomA = await openBenchRoom(server.url, '10.20.0.1');
    const roomB = await openBenchRoom(server.url, '10.20.0.2');
    const wsBase = server.url.replace(/^http/, 'ws') + '/sync';
    const connect = async (room: BenchRoom, name: string, address: string) => {
      const c = connectClient({ wsBase, roomId: room.roomId, awareness: false, wsClient: 'undici' }, await joinFrom(server.url, room, name, address));
      clients.push(c);
      return c;
    };
    // Room A is live and has recorded a moment: a still is of the room as it is.
    const inA = await connect(roomA, 'A', '10.21.0.1');
    const writer = await connect(roomB, 'B writer', '10.21.0.2');
    const reader = await connect(roomB, 'B reader', '10.21.0.3');
    await waitSynced(clients);
    master(inA).set('reverbMix', 0.3);
    const loaders: StillLoadOptions['members'] = [];
    for (let i = 0; i < members; i++) loaders.push({ token: await joinFrom(server.url, roomA, `still ${i + 1}`, memberAddress(i)), address: memberAddress(i) });
    // One small still first: it starts the still thread and reads the visual pack there.
    const warm = await joinFrom(server.url, roomA, 'warm-up', '10.21.0.4');
    const first = await requestStill(server.url, roomA.roomId, warm, '10.21.0.4', 320, 180);
    if (first.status !== 200) throw new Error(`the warm-up still failed (${first.status})`);

    let value = 0;
    // Distinct from the one before, within reverbMix's range, at 1/10000 steps (what the document keeps exactly).
    const nextValue = () => ((++value % 9999) + 1) / 10_000;
    console.log(`still-isolation: ${baselineCount} round trips in room B, no stills`);
    // This process's own lateness: a round trip is only as punctual as the clients that time it.
    const clientDelay = monitorEventLoopDelay({ resolution: 10 });
    await metricValues(server.url, ['remixroom_nodejs_eventloop_lag_max_seconds']);
    clientDelay.enable();
    const baseline = await roundTrips(writer, reader, nextValue, { count: baselineCount });
    clientDelay.disable();
    const clientBaseMaxMs = round(clientDelay.max / 1e6, 1);
    clientDelay.reset();
    const [baseLagMax] = await metricValues(server.url, ['remixroom_nodejs_eventloop_lag_max_seconds']);
    console.log(`still-isolation: baseline p50 ${baseline.p50Ms} ms, p99 ${baseline.p99Ms} ms, max ${baseline.maxMs} ms`);

    console.log(`still-isolation: ${members} members ask for ${WIDTH}x${HEIGHT} stills at their limit (${rate.capacity} at once, then ${round(rate.refillPerSec * 60, 1)} a minute) for ${seconds} s`);
    const cpu = cpuMeter(server.pid);
    const load = await forkLoad({ url: server.url, roomId: roomA.roomId, members: loaders, width: WIDTH, height: HEIGHT, rate: { capacity: rate.capacity, refillPerSec: rate.refillPerSec } });
    clientDelay.enable();
    const underLoad = await roundTrips(writer, reader, nextValue, { forMs: seconds * 1000 });
    clientDelay.disable();
    const [lagP99, lagMax] = await metricValues(server.url, ['remixroom_nodejs_eventloop_lag_p99_seconds', 'remixroom_nodejs_eventloop_lag_max_seconds']);
    const { cpuPct } = cpu.stop();
    const stills = await load.stop();
    const loadAvg = os.loadavg().map((x) => round(x, 2));
    console.log(`still-isolation: under stills p50 ${underLoad.p50Ms} ms, p99 ${underLoad.p99Ms} ms, max ${underLoad.maxMs} ms; stills ${stills.served} served, ${stills.refused} refused (503)`);
    return {
      p50Ms: underLoad.p50Ms,
      p99Ms: underLoad.p99Ms,
      maxMs: underLoad.maxMs,
      baseline,
      underLoad,
      stillSize: `${WIDTH}x${HEIGHT}`,
      members,
      seconds,
      stills,
      serverCpuPct: cpuPct,
      serverLoopDelayMaxMs: { baseline: msOf(baseLagMax ?? null), underLoad: msOf(lagMax ?? null) },
      serverLoopDelayP99MsUnderLoad: msOf(lagP99 ?? null),
      clientLoopDelayMaxMs: { baseline: clientBaseMaxMs, underLoad: round(clientDelay.max / 1e6, 1) },
      loadAvg,
      goal: `another room's edit round trip p99 < ${GOAL_P99_MS} ms while ${WIDTH}x${HEIGHT} stills are asked for at the highest allowed rate`,
      goalMet: underLoad.p99Ms < GOAL_P99_MS,
    };
  } finally {
    for (const c of clients) {
      c.provider.destroy();
      c.doc.destroy();
    }
    await server.stop();
  }
}

function memberAddress(i: number): string {
  return `10.22.${Math.floor(i / 250)}.${(i % 250) + 1}`;
}

function msOf(seconds: number | null): number | null {
  return seconds === null ? null : round(seconds * 1000, 1);
}


async function requestStill(url: string, roomId: string, token: string, address: string, width: number, height: number): Promise<{ status: number; retryAfter: string | null }> {
  const res = await fetch(`${url}/api/rooms/${roomId}/visuals.png?width=${width}&height=${height}`, { headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': address } });
  await res.arrayBuffer();
  return { status: res.status, retryAfter: res.headers.get('retry-after') };
}

/** The still load in a forked process; stop() waits for its stills in flight and answers their figures. */
async function forkLoad(opts: StillLoadOptions): Promise<{ stop(): Promise<StillStats> }> {
  const child = fork(LOAD_SCRIPT, [], { execArgv: [], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const ask = <T extends StillLoadReply['type']>(request: StillLoadRequest, type: T) =>
    new Promise<Extract<StillLoadReply, { type: T }>>((resolve, reject) => {
      const onMessage = (m: StillLoadReply) => {
        if (m.type !== type && m.type !== 'error') return;
        child.off('message', onMessage);
        child.off('exit', onExit);
        if (m.type === 'error') reject(new Error(`the still load failed: ${m.message}`));
        else resolve(m as Extract<StillLoadReply, { type: T }>);
      };
      const onExit = (code: number | null) => reject(new Error(`the still load exited (${code})`));
      child.on('message', onMessage);
      child.once('exit', onExit);
      child.send(request);
    });
  await ask({ type: 'start', opts }, 'started');
  return { stop: async () => (await ask({ type: 'stop' }, 'stopped')).stats };
}
