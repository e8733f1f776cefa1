// What a process costs, read from /proc (Linux), and the statistics the
// benchmarks quote: medians and percentiles, never single timings.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';

let clockTicks: number | null = null;

/** Kernel clock ticks per second (the unit of utime/stime in /proc/<pid>/stat). */
function ticksPerSec(): number {
  if (clockTicks === null) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system) the process (or one of its threads, `tid`) has used so far. */
export function cpuSeconds(pid: number, tid?: number): number {
  const stat = fs.readFileSync(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`, 'utf8');
  // Fields after the command name, which is in parentheses and may hold spaces.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of stat; here, after the state field at index 0, 11 and 12.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSec();
}

/** Resident set size in bytes (VmRSS). */
export function rssBytes(pid: number): number {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) * 1024;
}

/** Open file descriptors (sockets included) of the process. */
export function fdCount(pid: number): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/**
 * Established TCP connections to 127.0.0.1:`port` from other loopback addresses than
 * 127.0.0.1 (the benchmark's members connect from 127.0.0.2 and up; its own HTTP calls
 * come from 127.0.0.1), read from the kernel's table.
 */
export function membersTcpConnections(port: number): number {
  let n = 0;
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[3] !== '01') continue;
    const [localIp, localPort] = f[1]!.split(':');
    const [remoteIp] = f[2]!.split(':');
    // Addresses are little-endian hex: 127.0.0.1 is 0100007F.
    if (localIp === '0100007F' && parseInt(localPort!, 16) === port && remoteIp !== '0100007F' && remoteIp!.endsWith('7F')) n++;
  }
  return n;
}

/** The soft limit on open files of the process. */
export function fdLimit(pid: number): number {
  const limits = fs.readFileSync(`/proc/${pid}/limits`, 'utf8');
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits);
  return !m || m[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m[1]);
}

/** Measures a process's CPU between start() and stop(), as a percentage of one core. */
export function cpuMeter(pid: number): { stop(): { cpuPct: number; cpuSec: number; wallSec: number } } {
  const cpu0 = cpuSeconds(pid);
  const t0 = performance.now();
  return {
    stop() {
      const cpuSec = cpuSeconds(pid) - cpu0;
      const wallSec = (performance.now() - t0) / 1000;
      return { cpuPct: round((100 * cpuSec) / Math.max(wallSec, 1e-3), 1), cpuSec: round(cpuSec, 2), wallSec: round(wallSec, 2) };
    },
  };
}

/** Nearest-rank percentile (p in 0..100) of numbers sorted ascending. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

export function median(values: number[]): number {
  return percentile([...values].sort((a, b) => a - b), 50);
}

export function round(x: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const MIB = 1024 * 1024;

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `fn` over `items` with at most `limit` calls in flight. */
export async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** `--key=value` arguments, each one of `known`; a bare `--flag` becomes "true". */
export function parseArgs(args: string[], known: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const a of args) {
    const m = /^--([a-z0-9-]+)(?:=(.*))?$/.exec(a);
    if (!m || !known.includes(m[1]!)) throw new Error(`unknown argument "${a}"; this benchmark takes ${known.map((k) => `--${k}=…`).join(' ')}`);
    out.set(m[1]!, m[2] ?? 'true');
  }
  return out;
}

export function intArg(args: Map<string, string>, name: string, fallback: number, min = 1, max = 1_000_000): number {
  const raw = args.get(name);
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name} must be a whole number from ${min} to ${max}, not "${raw}"`);
  return n;
}
