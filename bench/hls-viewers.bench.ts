// `npm run bench -- hls-viewers [--steps=50,100,250,500,1000,2000,4000,8000] [--procs=2]
//                               [--warmup=8] [--seconds=15] [--rendition=audio|video]
//                               [--behind-parts=4] [--cpu-prof=DIR] [--keep-going]`
//
// How many LL-HLS viewers one node serves. A real server (child process, demo
// release) broadcasts one room (transport playing, broadcast mode switched on by
// the host: one ffmpeg encodes it). For each step of N viewers, `--procs` forked
// children (bench/support/hls-viewer-load.ts) run N/procs simulated viewers each:
// a bounded loop per viewer doing what hls.js does in low-latency mode — part GET,
// blocking reload for the next part (`_HLS_msn`/`_HLS_part`), part GET … — each
// viewer on its own keep-alive connection with its own X-Forwarded-For address.
// Viewers start spread over 3 s (2 ms apart beyond 1,500 viewers); figures are
// taken over `--seconds` after `--warmup` seconds (at least 5 s after the last start).
//
// Figures per step:
//  - part fetch: from the request of a part the playlist listed to its last byte
//    (p50/p90/p99/max over every part every viewer fetched in the window);
//  - reload wait: the blocking reload, request to last byte (mostly the wait for
//    the encoder's next part: ~one part duration when at the live edge);
//  - edge latency: at a part's last byte, now − the wall clock of the part's end
//    (its PROGRAM-DATE-TIME + offset + duration): encoder + packaging + delivery;
//  - lag: how many parts the newest listed one was past the one a viewer wanted
//    (0 at the edge); a viewer more than `--behind-parts` behind, or that fetched
//    fewer than half the parts the window held, has fallen behind;
//  - CPU (from /proc, over the window): the server process, split by thread name
//    (MainThread; broadcast-encod = the room's mixer + visuals for the encoder;
//    embedded-sfu; V8 and libuv helpers), the encoder's ffmpeg, and the viewers'
//    own processes (with their event-loop delay p99: if they ran late, so do the timings);
//  - slowFetches: part fetches over 100 ms by the part's index in its segment and
//    the share of their time before the first byte (1 = all of it: waiting on the
//    server or the scheduler, not the transfer); listenOverflows: the kernel's
//    count of connections dropped at a full accept queue (machine-wide) — a
//    viewer whose first request is unanswered for 10 s is usually one of these.
// (Per-core figures count the viewers served: those that fetched a part in the window.)
// A step passes with part fetch p99 < 100 ms, no errors and no viewer behind; the
// steps stop at the first that fails (`--keep-going` runs them all, to see where
// the server's CPU, not the latency, runs out). viewersPerCore = N / the server process's
// cores at the largest passing step (the goal: ≥ 5,000); also N / the
// cores of the threads that serve HTTP (the process minus broadcast-encod and
// embedded-sfu, which cost the same with 0 viewers); and capacityViewersPerCore =
// N / (the server's CPU − its CPU with the room idle): what a core would hold if
// latency did not matter (the throughput limit, not the goal's measure).
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { cpuSeconds, intArg, parseArgs, percentile, round, rssBytes, sleep, MIB } from './support/proc.ts';
import { encoderPids, forkChild, openBroadcastRoom, threadCpu } from './support/broadcast-room.ts';
import type { ViewerLoadConfig, ViewerLoadResult } from './support/hls-viewer-load.ts';
import { startBenchServer } from './support/server.ts';

const GOAL_VIEWERS_PER_CORE = 5000;
const PART_FETCH_P99_MS = 100;
/** Viewers start spread over max(3 s, 2 ms each): at most 500 new connections a second (a surge beyond overflows the server's accept queue, see listenOverflows). */
const rampMsFor = (n: number) => Math.max(3000, 2 * n);
const ENCODER_THREADS = ['broadcast-encod', 'embedded-sfu'];

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['steps', 'procs', 'warmup', 'seconds', 'rendition', 'behind-parts', 'cpu-prof', 'baseline', 'keep-going']);
  const keepGoing = args.get('keep-going') === 'true';
  const steps = (args.get('steps') ?? '50,100,250,500,1000,2000,4000,8000').split(',').map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1 || n > 50_000) throw new Error(`--steps: "${s}" is not a number of viewers (1..50000)`);
    return n;
  });
  const procs = intArg(args, 'procs', 2, 1, 16);
  const warmupSec = intArg(args, 'warmup', 8, 4, 120);
  const seconds = intArg(args, 'seconds', 15, 3, 600);
  const baselineSec = intArg(args, 'baseline', 6, 2, 60);
  const behindParts = intArg(args, 'behind-parts', 4, 1, 100);
  const rendition = args.get('rendition') ?? 'audio';
  if (rendition !== 'audio' && rendition !== 'video') throw new Error('--rendition must be audio or video');
  const cpuProf = args.get('cpu-prof');

  const server = await startBenchServer(cpuProf ? { cpuProfileDir: cpuProf } : {});
  const children = new Set<ChildProcess>();
  const killChildren = () => children.forEach((c) => c.kill('SIGKILL'));
  process.once('exit', killChildren);
  let room: Awaited<ReturnType<typeof openBroadcastRoom>> | null = null;
  try {
    room = await openBroadcastRoom(server.url);
    const path = room.renditions[rendition];
    if (!path) throw new Error(`the broadcast has no ${rendition} rendition`);
    const { hostname, port } = new URL(server.url);
    const ffmpeg = encoderPids(server.pid);
    if (ffmpeg.length === 0) throw new Error("no ffmpeg child of the server reads '-f s16le': the encoder is not running");

    // The room's cost with nobody watching: the encoder's ffmpeg, the broadcast thread, the SFU thread.
    await sleep(2000);
    const base = snapshot(server.pid, ffmpeg, []);
    await sleep(baselineSec * 1000);
    const idle = usage(base, snapshot(server.pid, ffmpeg, []));
    const ffmpegRssMb = round(ffmpeg.reduce((a, p) => a + rssBytes(p), 0) / MIB, 1);
    const encoderPidsSeen = new Set(ffmpeg);
    console.log(`hls-viewers: idle room: server ${idle.serverPct}% (${JSON.stringify(idle.threadsPct)}), ffmpeg ${idle.ffmpegPct}%`);

    const perStep: Record<string, unknown>[] = [];
    let largestPassing: Record<string, unknown> | null = null;
    for (const n of steps) {
      const overflows0 = listenOverflows();
      const startAtMs = Date.now() + 1000;
      const rampMs = rampMsFor(n);
      const measureFromMs = startAtMs + Math.max(warmupSec * 1000, rampMs + 5000);
      const measureToMs = measureFromMs + seconds * 1000;
      const results: Promise<ViewerLoadResult>[] = [];
      const pids: number[] = [];
      let first = 0;
      for (let p = 0; p < procs; p++) {
        const count = Math.floor(n / procs) + (p < n % procs ? 1 : 0);
        if (count === 0) continue;
        const cfg: ViewerLoadConfig = { host: hostname, port: Number(port), playlistPath: path, firstViewer: 1000 + first + 100_000 * perStep.length, count, startAtMs, rampMs, measureFromMs, measureToMs, behindParts };
        first += count;
        const child = forkChild(new URL('./support/hls-viewer-load.ts', import.meta.url), JSON.stringify(cfg));
        children.add(child);
        pids.push(child.pid!);
        results.push(
          new Promise<ViewerLoadResult>((resolve, reject) => {
            child.once('message', (m: { type: string; result: ViewerLoadResult }) => resolve(m.result));
            child.once('exit', (code) => reject(new Error(`a viewers' process exited (${code}) before it reported`)));
          }),
        );
      }
      await sleep(Math.max(0, measureFromMs - Date.now()));
      // The encoder may have been restarted (the server restarts an ffmpeg that fails or falls behind).
      const encoders = encoderPids(server.pid);
      encoders.forEach((p) => encoderPidsSeen.add(p));
      const s0 = snapshot(server.pid, encoders, pids);
      await sleep(Math.max(0, measureToMs - Date.now()));
      const u = usage(s0, snapshot(server.pid, encoders, pids));
      encoderPids(server.pid).forEach((p) => encoderPidsSeen.add(p));
      const serverRssMb = round(rssBytes(server.pid) / MIB, 1);
      const got = await withTimeout(Promise.all(results), 30_000, "the viewers' processes did not report");
      for (const c of children) c.kill('SIGKILL');
      children.clear();

      const partFetch = sortedAll(got.map((r) => r.partFetchMs));
      const reloadWait = sortedAll(got.map((r) => r.reloadWaitMs));
      const edge = sortedAll(got.map((r) => r.edgeLatencyMs));
      const maxLag = sortedAll(got.map((r) => r.maxLagParts));
      const partsPer = sortedAll(got.map((r) => r.partsPerViewer));
      const errors: Record<string, number> = {};
      for (const r of got) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
      const errorCount = Object.values(errors).reduce((a, b) => a + b, 0);
      const expectedParts = (seconds * 1000) / 512;
      const behind = got.reduce((a, r) => a + r.maxLagParts.filter((l, i) => l > behindParts || r.partsPerViewer[i]! < expectedParts / 2).length, 0);
      const p99 = round(percentile(partFetch, 99));
      // Viewers that fetched a part in the window (in a failing step some may never have got in): the per-core figures count these.
      const served = partsPer.filter((x) => x > 0).length;
      const passed = p99 < PART_FETCH_P99_MS && errorCount === 0 && behind === 0;
      const serverCores = u.serverPct / 100;
      const servingCores = (u.serverPct - ENCODER_THREADS.reduce((a, t) => a + (u.threadsPct[t] ?? 0), 0)) / 100;
      const step = {
        viewers: n,
        viewersServed: served,
        passed,
        partFetchMs: { p50: round(percentile(partFetch, 50)), p90: round(percentile(partFetch, 90)), p99, max: round(partFetch.at(-1) ?? Number.NaN) },
        reloadWaitMs: { p50: round(percentile(reloadWait, 50)), p99: round(percentile(reloadWait, 99)), max: round(reloadWait.at(-1) ?? Number.NaN) },
        edgeLatencyMs: { p50: round(percentile(edge, 50)), p99: round(percentile(edge, 99)) },
        lagParts: { median: percentile(maxLag, 50), max: maxLag.at(-1) ?? 0 },
        viewersBehind: behind,
        partsPerViewer: { min: partsPer[0] ?? 0, median: percentile(partsPer, 50), expected: round(expectedParts, 1) },
        partsFetched: partFetch.length,
        requestsPerSec: round((partFetch.length + reloadWait.length) / seconds),
        partMbitPerSec: round((got.reduce((a, r) => a + r.partBytes, 0) * 8) / seconds / 1e6, 1),
        errors,
        // Part fetches over 100 ms: how many, by the part's index in its segment (0 = the one that opens a segment), and the median share of the time spent before the first byte.
        slowFetches: slowSummary(got.flatMap((r) => r.slow)),
        // Connections the kernel dropped because a listening socket's accept queue was full (the whole machine's counter, over the step).
        listenOverflows: listenOverflows() - overflows0,
        serverCpuPct: u.serverPct,
        serverThreadsCpuPct: u.threadsPct,
        ffmpegCpuPct: u.ffmpegPct,
        viewersCpuPct: u.childrenPct,
        viewersLoopDelayP99Ms: round(Math.max(...got.map((r) => r.loopDelayP99Ms))),
        viewersRssMb: round(got.reduce((a, r) => a + r.rssMb, 0), 1),
        serverRssMb,
        viewersPerCore: round(served / serverCores, 0),
        viewersPerServingCore: round(served / servingCores, 0),
        // What the viewers add to the idle room: the server's marginal cost per viewer, and the viewers a core would hold at that cost.
        marginalCpuPctPerViewer: round((u.serverPct - idle.serverPct) / Math.max(1, served), 4),
        capacityViewersPerCore: round(served / Math.max(1e-3, (u.serverPct - idle.serverPct) / 100), 0),
        loadAfter: (await import('node:os')).loadavg().map((x) => round(x)),
      };
      perStep.push(step);
      console.log(`hls-viewers: ${JSON.stringify(step)}`);
      if (!passed && !keepGoing) break;
      if (passed && (largestPassing === null || perStep.every((x) => x === step || x['passed']))) largestPassing = step;
      await sleep(2000);
    }

    const top = largestPassing as { viewers: number; viewersPerCore: number; viewersPerServingCore: number; serverCpuPct: number; partFetchMs: { p99: number } } | null;
    return {
      rendition,
      procs,
      largestPassingViewers: top?.viewers ?? 0,
      viewersPerCore: top?.viewersPerCore ?? 0,
      viewersPerServingCore: top?.viewersPerServingCore ?? 0,
      serverCpuPctAtLargest: top?.serverCpuPct ?? null,
      partFetchP99MsAtLargest: top?.partFetchMs.p99 ?? null,
      encoderPerRoom: {
        ffmpegCpuPct: idle.ffmpegPct,
        broadcastThreadCpuPct: idle.threadsPct['broadcast-encod'] ?? null,
        sfuThreadCpuPct: idle.threadsPct['embedded-sfu'] ?? null,
        ffmpegRssMb,
      },
      // ffmpeg processes seen beyond the first: encoder restarts during the run (the server's warnings below say why).
      encoderRestarts: encoderPidsSeen.size - 1,
      serverWarnings: server.proc
        .output()
        .split('\n')
        .filter((l) => /"level":(40|50|60)/.test(l))
        .slice(-5)
        .map((l) => l.slice(0, 400)),
      idleServerCpuPct: idle.serverPct,
      idleServerThreadsCpuPct: idle.threadsPct,
      cores: (await import('node:os')).cpus().length,
      goal: `≥ ${GOAL_VIEWERS_PER_CORE} viewers per core with part fetch p99 < ${PART_FETCH_P99_MS} ms`,
      goalMet: (top?.viewersPerCore ?? 0) >= GOAL_VIEWERS_PER_CORE,
      perStep,
    };
  } finally {
    killChildren();
    process.off('exit', killChildren);
    room?.close();
    await server.stop();
  }
}

interface Snapshot {
  at: number;
  server: number;
  threads: Map<string, number>;
  ffmpeg: number;
  children: number;
}

function snapshot(serverPid: number, ffmpeg: number[], children: number[]): Snapshot {
  const sum = (pids: number[]) =>
    pids.reduce((a, p) => {
      try {
        return a + cpuSeconds(p);
      } catch {
        return a;
      }
    }, 0);
  return { at: performance.now(), server: cpuSeconds(serverPid), threads: threadCpu(serverPid), ffmpeg: sum(ffmpeg), children: sum(children) };
}

function usage(a: Snapshot, b: Snapshot) {
  const sec = (b.at - a.at) / 1000;
  const pct = (x: number) => round((100 * x) / sec, 1);
  // Threads of a kind (V8Worker, libuv-worker …) are summed under their name.
  const threadsPct: Record<string, number> = {};
  for (const [name, v] of b.threads) {
    const d = pct(v - (a.threads.get(name) ?? 0));
    if (d > 0) threadsPct[name] = d;
  }
  return { serverPct: pct(b.server - a.server), threadsPct, ffmpegPct: pct(b.ffmpeg - a.ffmpeg), childrenPct: pct(b.children - a.children) };
}

/** TcpExt ListenOverflows from /proc/net/netstat (machine-wide). */
function listenOverflows(): number {
  const lines = fs.readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
  const keys = lines[0]?.split(/\s+/) ?? [];
  const values = lines[1]?.split(/\s+/) ?? [];
  const i = keys.indexOf('ListenOverflows');
  return i < 0 ? 0 : Number(values[i]);
}

function slowSummary(slow: ViewerLoadResult['slow']) {
  const byIndex: Record<string, number> = {};
  for (const x of slow) byIndex[x.index] = (byIndex[x.index] ?? 0) + 1;
  const share = slow.map((x) => x.ttfbMs / x.totalMs).sort((a, b) => a - b);
  return { count: slow.length, byPartIndex: byIndex, medianTtfbShare: slow.length ? round(percentile(share, 50)) : null };
}

function sortedAll(arrays: number[][]): number[] {
  return arrays.flat().sort((x, y) => x - y);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

