// member-flood: one member floods a room with edits from several connections
// (the attack of issue 13: 8 connections got 780 edits a second through, and a
// benign edit in another room took 842 ms at the median). Its edits are let
// through at its rate (sync.update.member), the rest wait and go in merged; the
// server's other rooms should not notice.
//
//   npm run bench -- member-flood [--connections=8] [--seconds=20] [--per-tick=5] [--baseline=200]
//
// Room A: the flooder, `--connections` stock providers of one member token from one
// address, each setting a fader `--per-tick` times every 10 ms (in a forked process,
// support/flood-load.ts). Room B: two stock providers; one sets a value, the round
// trip ends when the other shows it (one every 50–100 ms), first `--baseline` with no
// flood, then for `--seconds` under it.
import { spawn } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { LIMITS } from '../shared/limits.ts';
import { connectClient, waitSynced, type Client } from './support/fanout-members.ts';
import { cpuMeter, intArg, parseArgs, round } from './support/proc.ts';
import { joinFrom, roundTrips } from './support/round-trips.ts';
import { openBenchRoom, startBenchServer } from './support/server.ts';

const GOAL_P99_MS = 50;
const FLOOD_SCRIPT = fileURLToPath(new URL('./support/flood-load.ts', import.meta.url));

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['connections', 'seconds', 'per-tick', 'baseline']);
  const connections = intArg(args, 'connections', 8, 1, 64);
  const seconds = intArg(args, 'seconds', 20, 3, 600);
  const perTick = intArg(args, 'per-tick', 5, 1, 100);
  const baselineCount = intArg(args, 'baseline', 200, 10, 2000);

  const server = await startBenchServer();
  const clients: Client[] = [];
  try {
    const roomA = await openBenchRoom(server.url, '10.30.0.1');
    const roomB = await openBenchRoom(server.url, '10.30.0.2');
    const wsBase = server.url.replace(/^http/, 'ws') + '/sync';
    const writer = connectClient({ wsBase, roomId: roomB.roomId, awareness: false, wsClient: 'undici' }, await joinFrom(server.url, roomB, 'B writer', '10.31.0.2'));
    const reader = connectClient({ wsBase, roomId: roomB.roomId, awareness: false, wsClient: 'undici' }, await joinFrom(server.url, roomB, 'B reader', '10.31.0.3'));
    clients.push(writer, reader);
    await waitSynced(clients);
    let value = 0;
    const nextValue = () => ((++value % 9999) + 1) / 10_000;
    console.log(`member-flood: ${baselineCount} round trips in room B, no flood`);
    const baseline = await roundTrips(writer, reader, nextValue, { count: baselineCount });
    console.log(`member-flood: baseline p50 ${baseline.p50Ms} ms, p99 ${baseline.p99Ms} ms`);

    const address = '10.32.0.1';
    const token = await joinFrom(server.url, roomA, 'Flooder', address);
    const [applied0, queued0, overflow0] = await edits(server.url);
    const cpu = cpuMeter(server.pid);
    console.log(`member-flood: one member, ${connections} connections, ${perTick} edits each every 10 ms, for ${seconds} s`);
    const flood = spawn(process.execPath, [FLOOD_SCRIPT, JSON.stringify({ wsBase, roomId: roomA.roomId, token, address, connections, seconds, perTick })], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    flood.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const floodDone = new Promise<number | null>((resolve) => flood.once('exit', resolve));
    // Round trips while the flood runs (it needs a moment to connect first).
    await new Promise((r) => setTimeout(r, 1500));
    const t0 = performance.now();
    const underFlood = await roundTrips(writer, reader, nextValue, { forMs: Math.max(1000, seconds * 1000 - 1500) });
    const floodSec = (performance.now() - t0) / 1000;
    const [applied1] = await edits(server.url);
    const code = await floodDone;
    const { cpuPct } = cpu.stop();
    const [, queued1, overflow1] = await edits(server.url);
    if (code !== 0) throw new Error(`the flood process exited with ${code}`);
    const sent = JSON.parse(out.trim().split('\n').pop() ?? '{}') as { sent: number; sentPerSec: number; disconnectedAtEnd: number };
    const appliedPerSec = round((applied1 - applied0) / floodSec, 1);
    const spec = LIMITS['sync.update.member'];
    console.log(`member-flood: under the flood p50 ${underFlood.p50Ms} ms, p99 ${underFlood.p99Ms} ms; ${appliedPerSec} edits/s applied of ${sent.sentPerSec} sent`);
    return {
      p50Ms: underFlood.p50Ms,
      p99Ms: underFlood.p99Ms,
      maxMs: underFlood.maxMs,
      baseline,
      underFlood,
      flood: { connections, perTick, seconds, ...sent },
      appliedPerSec,
      memberRate: { capacity: spec.capacity, refillPerSec: spec.refillPerSec },
      queued: queued1 - queued0,
      overflowed: overflow1 - overflow0,
      serverCpuPct: cpuPct,
      loadAvg: os.loadavg().map((x) => round(x, 2)),
      goal: `another room's edit round trip p99 < ${GOAL_P99_MS} ms, and the flooder's applied edits near its rate (${spec.refillPerSec}/s)`,
      goalMet: underFlood.p99Ms < GOAL_P99_MS && appliedPerSec <= spec.refillPerSec * 1.5 + spec.capacity / floodSec,
    };
  } finally {
    for (const c of clients) {
      c.provider.destroy();
      c.doc.destroy();
    }
    await server.stop();
  }
}

/** The server's edit counters: applied, queued, overflow. */
async function edits(url: string): Promise<[number, number, number]> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const of = (outcome: string) => Number(text.split('\n').find((l) => l.startsWith(`remixroom_sync_edits_total{outcome="${outcome}"}`))?.split(' ').pop() ?? 0);
  return [of('applied'), of('queued'), of('overflow')];
}
