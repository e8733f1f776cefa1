// The still load of bench/still-isolation.bench.ts, in a process of its own (forked),
// so that receiving the PNGs does not slow the benchmark's own clients, whose round
// trips are what is measured. Each member asks for stills whenever its bucket (the
// server's still.member limit, kept here too, a little slower) has one; Retry-After
// is ignored, as a greedy client would.
import { fileURLToPath } from 'node:url';
import { percentile, sleep } from './proc.ts';

export interface StillLoadOptions {
  url: string;
  roomId: string;
  members: { token: string; address: string }[];
  width: number;
  height: number;
  rate: { capacity: number; refillPerSec: number };
}

export interface StillStats {
  requested: number;
  served: number;
  /** 503 with Retry-After: the still queue was full. */
  refused: number;
  /** 429: a rate limit (should stay near 0: the client keeps to them). */
  rateLimited: number;
  other: number;
  retryAfterSec: { min: number; max: number } | null;
  /** From asking to the last byte, for the stills served. */
  servedMs: { p50: number; max: number } | null;
}

export type StillLoadRequest = { type: 'start'; opts: StillLoadOptions } | { type: 'stop' };
export type StillLoadReply = { type: 'started' } | { type: 'stopped'; stats: StillStats } | { type: 'error'; message: string };

/** A client's bucket refills this much slower than the server's, so that their clocks never disagree into a 429. */
const REFILL_MARGIN = 0.95;

export function stillLoad(opts: StillLoadOptions): { stop(): Promise<StillStats> } {
  const stats: StillStats = { requested: 0, served: 0, refused: 0, rateLimited: 0, other: 0, retryAfterSec: null, servedMs: null };
  const servedMs: number[] = [];
  const inFlight = new Set<Promise<void>>();
  const refill = opts.rate.refillPerSec * REFILL_MARGIN;
  let stopped = false;
  const ask = async (token: string, address: string) => {
    const t0 = performance.now();
    try {
      const res = await fetch(`${opts.url}/api/rooms/${opts.roomId}/visuals.png?width=${opts.width}&height=${opts.height}`, {
        headers: { authorization: `Bearer ${token}`, 'x-forwarded-for': address },
      });
      await res.arrayBuffer();
      const retryAfter = res.headers.get('retry-after');
      if (res.status === 200) {
        stats.served++;
        servedMs.push(performance.now() - t0);
      } else if (res.status === 503 && retryAfter !== null) {
        stats.refused++;
        const s = Number(retryAfter);
        stats.retryAfterSec = { min: Math.min(stats.retryAfterSec?.min ?? s, s), max: Math.max(stats.retryAfterSec?.max ?? s, s) };
      } else if (res.status === 429) stats.rateLimited++;
      else stats.other++;
    } catch {
      stats.other++;
    }
  };
  const member = async (token: string, address: string) => {
    let bucket = opts.rate.capacity;
    let last = performance.now();
    while (!stopped) {
      const now = performance.now();
      bucket = Math.min(opts.rate.capacity, bucket + ((now - last) / 1000) * refill);
      last = now;
      if (bucket < 1) {
        await sleep(Math.min(500, ((1 - bucket) / refill) * 1000));
        continue;
      }
      bucket -= 1;
      stats.requested++;
      const p = ask(token, address);
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
    }
  };
  const running = opts.members.map((m) => member(m.token, m.address));
  return {
    async stop() {
      stopped = true;
      await Promise.all(running);
      await Promise.all([...inFlight]);
      const sorted = servedMs.sort((a, b) => a - b);
      stats.servedMs = sorted.length ? { p50: Math.round(percentile(sorted, 50)), max: Math.round(sorted.at(-1)!) } : null;
      return stats;
    },
  };
}

// ---------------------------------------------------------------- as a forked process

if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  let load: ReturnType<typeof stillLoad> | null = null;
  const reply = (m: StillLoadReply) => {
    if (process.connected) process.send!(m);
  };
  process.on('message', (m: StillLoadRequest) => {
    if (m.type === 'start') {
      load = stillLoad(m.opts);
      reply({ type: 'started' });
    } else if (m.type === 'stop') {
      if (!load) return reply({ type: 'error', message: 'stop before start' });
      load.stop().then(
        (stats) => {
          reply({ type: 'stopped', stats });
          process.disconnect();
        },
        (err: unknown) => reply({ type: 'error', message: (err as Error).message }),
      );
    }
  });
  // The benchmark went away.
  process.on('disconnect', () => setTimeout(() => process.exit(0), 200).unref());
}
