// A forked child of the hls-viewers benchmark: `count` simulated viewers of one
// LL-HLS media playlist, each a bounded loop doing what hls.js does in
// low-latency mode, on its own keep-alive connection and with its own
// X-Forwarded-For address (a crowd comes from many addresses; the server trusts
// the header from loopback):
//   1. GET the playlist; start at its newest part;
//   2. GET the part (timed: request → last byte = "part fetch");
//   3. blocking reload for the next part (`_HLS_msn`/`_HLS_part`, timed: "reload wait");
//      the answer lists it (or more: the viewer is behind) → 2.
// Figures are kept only inside the measuring window; the child sends them to its
// parent over IPC and exits.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { HttpConn, nextPart, parseMediaPlaylist, type ListedPart } from './hls-playlist.ts';

export interface ViewerLoadConfig {
  host: string;
  port: number;
  /** The media playlist's path with its access query (`/api/rooms/…/hls/audio/index.m3u8?k=…`). */
  playlistPath: string;
  /** The first viewer's number (addresses are derived from it). */
  firstViewer: number;
  count: number;
  /** Date.now() at which viewers start (spread over rampMs). */
  startAtMs: number;
  rampMs: number;
  /** The measuring window, Date.now() values. */
  measureFromMs: number;
  measureToMs: number;
  /** A viewer whose newest listed part is more than this many parts past the one it wants has fallen behind (judged by the parent). */
  behindParts: number;
}

export interface ViewerLoadResult {
  partFetchMs: number[];
  reloadWaitMs: number[];
  /** At each part's last byte: how far behind the wall clock its end is (PDT + duration), ms. */
  edgeLatencyMs: number[];
  /** Per viewer: the most parts it was behind the newest listed one in the window. */
  maxLagParts: number[];
  /** Per viewer: parts fetched in the window. */
  partsPerViewer: number[];
  partBytes: number;
  /** Part fetches over 100 ms (at most 2,000): the part's index in its segment, time to first byte, total. */
  slow: { index: number; ttfbMs: number; totalMs: number }[];
  errors: Record<string, number>;
  cpuSec: number;
  loopDelayP99Ms: number;
  rssMb: number;
}

async function main(): Promise<void> {
  const cfg = JSON.parse(process.argv[2]!) as ViewerLoadConfig;
  const result: ViewerLoadResult = {
    partFetchMs: [],
    reloadWaitMs: [],
    edgeLatencyMs: [],
    maxLagParts: new Array<number>(cfg.count).fill(0),
    partsPerViewer: new Array<number>(cfg.count).fill(0),
    partBytes: 0,
    slow: [],
    errors: {},
    cpuSec: 0,
    loopDelayP99Ms: 0,
    rssMb: 0,
  };
  const error = (what: string) => {
    if (!inWindow()) return;
    result.errors[what] = (result.errors[what] ?? 0) + 1;
  };
  const inWindow = () => {
    const t = Date.now();
    return t >= cfg.measureFromMs && t < cfg.measureToMs;
  };
  const base = cfg.playlistPath.slice(0, cfg.playlistPath.lastIndexOf('/') + 1);
  const playlistBase = cfg.playlistPath.split('?')[0]!;
  const access = cfg.playlistPath.split('?')[1] ?? '';

  const viewer = async (v: number): Promise<void> => {
    const n = cfg.firstViewer + v;
    const http = new HttpConn(cfg.host, cfg.port, { 'X-Forwarded-For': `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`, 'User-Agent': 'hls-viewers-bench' });
    // A failed request (timeout, closed connection) counts as an error; the viewer starts again from a plain playlist request.
    const conn = {
      get: (kind: string, path: string) =>
        http.get(path).catch((err: unknown) => {
          error(`${kind}: ${err instanceof Error ? err.message : String(err)}`);
          return { status: 0, body: Buffer.alloc(0), firstByteAt: performance.now(), doneAt: performance.now() };
        }),
      close: () => http.close(),
    };
    try {
      await sleepUntil(cfg.startAtMs + (cfg.rampMs * v) / cfg.count);
      let want: { msn: number; index: number } | null = null;
      let listed: ListedPart | null = null;
      while (Date.now() < cfg.measureToMs) {
        if (!want) {
          const a = await conn.get('playlist', cfg.playlistPath);
          if (a.status !== 200) {
            if (a.status) error(`playlist ${a.status}`);
            await sleep(500);
            continue;
          }
          const pl = parseMediaPlaylist(a.body.toString('utf8'));
          listed = pl.parts.at(-1) ?? null;
          if (!listed) {
            await sleep(200);
            continue;
          }
          want = { msn: listed.msn, index: listed.index };
        }
        if (listed) {
          const t0 = performance.now();
          const a = await conn.get('part', base + listed.uri);
          if (a.status !== 200) {
            if (a.status) error(`part ${a.status}`);
            want = null;
            listed = null;
            continue;
          }
          if (inWindow()) {
            result.partFetchMs.push(a.doneAt - t0);
            if (a.doneAt - t0 > 100 && result.slow.length < 2000) result.slow.push({ index: listed.index, ttfbMs: a.firstByteAt - t0, totalMs: a.doneAt - t0 });
            result.edgeLatencyMs.push(Date.now() - (listed.startWallMs + listed.durationSec * 1000));
            result.partsPerViewer[v]!++;
            result.partBytes += a.body.length;
          }
        }
        // The blocking reload for the part after it (hls.js: the preload hint's msn/part when at the edge).
        const t1 = performance.now();
        const a = await conn.get('reload', `${playlistBase}?${access}&_HLS_msn=${want.msn}&_HLS_part=${want.index + 1}`);
        if (a.status !== 200) {
          if (a.status) error(`reload ${a.status}`);
          want = null;
          listed = null;
          continue;
        }
        const pl = parseMediaPlaylist(a.body.toString('utf8'));
        const next = nextPart(pl, want);
        const at = next ? pl.parts.findIndex((p) => p.msn === next.msn && p.index === next.index) : -1;
        if (!next || at < 0) {
          // Dropped from the window (fell far behind) or not there yet (should not happen after a blocking reload).
          error(next ? 'reload answered without the part' : 'part gone from the playlist');
          want = null;
          listed = null;
          continue;
        }
        if (inWindow()) {
          result.reloadWaitMs.push(a.doneAt - t1);
          const lag = pl.parts.length - 1 - at;
          if (lag > result.maxLagParts[v]!) result.maxLagParts[v] = lag;
        }
        want = next;
        listed = pl.parts[at]!;
      }
    } catch (err) {
      error(`exception: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      conn.close();
    }
  };

  const delay = monitorEventLoopDelay({ resolution: 10 });
  let cpuAtStart: NodeJS.CpuUsage | null = null;
  const window = (async () => {
    await sleepUntil(cfg.measureFromMs);
    cpuAtStart = process.cpuUsage();
    delay.enable();
    await sleepUntil(cfg.measureToMs);
    const cpu = process.cpuUsage(cpuAtStart);
    delay.disable();
    result.cpuSec = (cpu.user + cpu.system) / 1e6;
    result.loopDelayP99Ms = delay.percentile(99) / 1e6;
    result.rssMb = process.memoryUsage().rss / 2 ** 20;
  })();
  await Promise.all([...Array.from({ length: cfg.count }, (_, v) => viewer(v)), window]);
  process.send!({ type: 'result', result }, () => process.exit(0));
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const sleepUntil = (t: number) => sleep(Math.max(0, t - Date.now()));

// Only as a forked child (the parent kills it if it has not reported 30 s after the window).
if (process.send) await main();
