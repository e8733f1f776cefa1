// `npm run bench -- verify-memory [--clients=8] [--mb=60] [--after-sec=4]`
//
// What concurrent uploads to POST /api/verify cost the server in memory. The real
// server runs as a child process (bench/support/server.ts, the start script's node
// flags, plus --inspect on loopback so that the bench can ask it for a full garbage
// collection); its RSS is read from /proc/<pid>/status:
//   baseline  after a warm-up (a few small checks) and a collection
//   peak      the highest of samples every 50 ms while the uploads run
//   after     `after-sec` seconds after the last answer, then a collection, then again
// `clients` clients each upload `mb` MB of random bytes at once, each from its own
// X-Forwarded-For address (the server trusts loopback proxies), streamed from a shared
// pool of random bytes (the bench holds 8 MB, not a file per client). A client stops
// sending when it is answered early (a refusal) and records the status.
// Goal (issue 13): peak − baseline < 100 MB, and after within 20 MB of baseline.
import crypto from 'node:crypto';
import http from 'node:http';
import os from 'node:os';
import WebSocket from 'ws';
import { freePort } from '../test/support/redis.ts';
import { intArg, MIB, parseArgs, round, rssBytes, sleep } from './support/proc.ts';
import { startBenchServer } from './support/server.ts';

const SAMPLE_MS = 50;
const POOL = crypto.randomBytes(8 * MIB);
const CHUNK = 256 * 1024;

interface UploadOutcome {
  /** The HTTP status, or the error the client met (e.g. ECONNRESET). */
  status: number | string;
  /** Bytes the client wrote before it was answered or cut off. */
  sentBytes: number;
  ms: number;
}

/** Streams `bytes` random bytes with Content-Length, stopping when answered. */
function upload(url: string, address: string, bytes: number, seed: number): Promise<UploadOutcome> {
  const { hostname, port } = new URL(url);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let sent = 0;
    let done = false;
    const finish = (status: number | string) => {
      if (done) return;
      done = true;
      resolve({ status, sentBytes: sent, ms: round(performance.now() - t0, 0) });
    };
    const req = http.request({
      host: hostname,
      port,
      method: 'POST',
      path: '/api/verify',
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(bytes), 'x-forwarded-for': address },
    });
    req.once('error', (err: NodeJS.ErrnoException) => finish(err.code ?? err.message));
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => {
        finish(res.statusCode ?? 0);
        req.destroy();
      });
    });
    let offset = (seed * 1_234_567) % (POOL.length - CHUNK);
    const write = () => {
      while (!done && sent < bytes) {
        const n = Math.min(CHUNK, bytes - sent);
        const chunk = POOL.subarray(offset, offset + n);
        offset = (offset + 7919 * (seed + 1)) % (POOL.length - CHUNK);
        sent += n;
        if (!req.write(chunk)) return void req.once('drain', write);
      }
      if (!done) req.end();
    };
    write();
  });
}

/** A full collection in the server, through its inspector (HeapProfiler.collectGarbage). */
async function collectGarbage(inspectPort: number): Promise<boolean> {
  try {
    const targets = (await (await fetch(`http://127.0.0.1:${inspectPort}/json/list`)).json()) as { webSocketDebuggerUrl: string }[];
    const ws = new WebSocket(targets[0]!.webSocketDebuggerUrl);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    await new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        const m = JSON.parse(String(data)) as { id?: number; error?: { message: string } };
        if (m.id === 1) return m.error ? reject(new Error(m.error.message)) : resolve();
      });
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
    ws.close();
    return true;
  } catch (err) {
    console.log(`verify-memory: no garbage collection through the inspector (${err instanceof Error ? err.message : String(err)})`);
    return false;
  }
}

/** The median of a few RSS samples, in MB. */
async function steadyRssMb(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssBytes(pid));
    await sleep(100);
  }
  samples.sort((a, b) => a - b);
  return samples[2]! / MIB;
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['clients', 'mb', 'after-sec']);
  const clients = intArg(args, 'clients', 8, 1, 64);
  const mb = intArg(args, 'mb', 60, 1, 1024);
  const afterSec = intArg(args, 'after-sec', 4, 0, 120);
  const inspectPort = await freePort();
  const server = await startBenchServer({ nodeOptions: `--inspect=127.0.0.1:${inspectPort}` });
  try {
    // Warm-up: the route, ffmpeg's first start, a small upload through the whole path.
    for (let i = 0; i < 3; i++) await upload(server.url, '10.255.0.1', 1 * MIB, 1000 + i);
    await sleep(1000);
    let gc = await collectGarbage(inspectPort);
    await sleep(500);
    const baselineMb = await steadyRssMb(server.pid);
    console.log(`verify-memory: baseline ${round(baselineMb, 1)} MB RSS; ${clients} clients × ${mb} MB`);

    let peakBytes = rssBytes(server.pid);
    const sampler = setInterval(() => {
      try {
        peakBytes = Math.max(peakBytes, rssBytes(server.pid));
      } catch {
        // The server is gone; the uploads will say so.
      }
    }, SAMPLE_MS);
    const t0 = performance.now();
    const outcomes = await Promise.all(Array.from({ length: clients }, (_, i) => upload(server.url, `10.1.${Math.floor(i / 250)}.${(i % 250) + 1}`, mb * MIB, i)));
    const wallSec = (performance.now() - t0) / 1000;
    clearInterval(sampler);
    peakBytes = Math.max(peakBytes, rssBytes(server.pid));
    const peakMb = peakBytes / MIB;

    await sleep(afterSec * 1000);
    const afterNoGcMb = await steadyRssMb(server.pid);
    gc = (await collectGarbage(inspectPort)) && gc;
    await sleep(500);
    const afterMb = await steadyRssMb(server.pid);

    const statuses: Record<string, number> = {};
    for (const o of outcomes) statuses[String(o.status)] = (statuses[String(o.status)] ?? 0) + 1;
    // Read to the end and checked (random bytes are not media: 400), against refused before or while reading.
    const accepted = outcomes.filter((o) => o.status === 200 || o.status === 400).length;
    for (const o of outcomes) console.log(`verify-memory: ${o.status} after ${o.ms} ms, ${round(o.sentBytes / MIB, 1)} MB sent`);
    const peakDeltaMb = peakMb - baselineMb;
    const afterDeltaMb = afterMb - baselineMb;
    return {
      clients,
      mbPerUpload: mb,
      baselineMb: round(baselineMb, 1),
      peakMb: round(peakMb, 1),
      afterMb: round(afterMb, 1),
      afterNoGcMb: round(afterNoGcMb, 1),
      peakDeltaMb: round(peakDeltaMb, 1),
      afterDeltaMb: round(afterDeltaMb, 1),
      accepted,
      refused: clients - accepted,
      statuses,
      wallSec: round(wallSec, 2),
      /** Whether the collections before the baseline and the last figure ran (through the inspector). */
      gc,
      loadAvg: os.loadavg().map((l) => round(l, 2)),
      goalMet: peakDeltaMb < 100 && Math.abs(afterDeltaMb) <= 20,
    };
  } finally {
    await server.stop();
  }
}
