// The members of the sync-fanout benchmark: stock y-websocket providers, each with
// its own document, recording when their document first shows each update. They
// live in the benchmark's own process, or (--client-procs) in forked processes
// that run this file and answer the benchmark over IPC (advanced serialization). Times are wall-clock
// milliseconds with sub-millisecond resolution (performance.timeOrigin + now()),
// the same clock in every process of the machine.
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';
import WebSocket from 'ws';

/** reverbMix values are (update index + 1) / VALUE_SCALE. */
export const VALUE_SCALE = 10_000;
const SYNC_TIMEOUT_MS = 60_000;

export const wallNow = (): number => performance.timeOrigin + performance.now();

export interface MembersOptions {
  wsBase: string;
  roomId: string;
  tokens: string[];
  /** Whether providers keep the awareness state the package gives them ({}), renewed every 15 s. */
  awareness: boolean;
  /** The WebSocket the providers use: Node's own (undici; what a provider uses by default) or `ws`. */
  wsClient: 'undici' | 'ws';
  /** Members connecting at once; each batch syncs before the next starts. */
  batch: number;
}

export interface Client {
  doc: Y.Doc;
  provider: WebsocketProvider;
}

export interface MembersStatus {
  seen: number;
  awarenessEvents: number;
  cpuSec: number;
  /** Event-loop delay p99 since observe(), ms: how late this process ran. */
  loopDelayP99Ms: number;
}

/** A stock provider on its own document. */
export function connectClient(opts: Pick<MembersOptions, 'wsBase' | 'roomId' | 'awareness' | 'wsClient'>, token: string): Client {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(opts.wsBase, opts.roomId, doc, {
    params: { token },
    disableBc: true,
    maxBackoffTime: 2000,
    connect: false,
    ...(opts.wsClient === 'ws' ? { WebSocketPolyfill: WebSocket as unknown as typeof globalThis.WebSocket } : {}),
  });
  if (!opts.awareness) provider.awareness.setLocalState(null);
  provider.connect();
  return { doc, provider };
}

export async function waitSynced(group: Client[]): Promise<void> {
  const start = performance.now();
  while (!group.every((c) => c.provider.synced)) {
    if (performance.now() - start > SYNC_TIMEOUT_MS) {
      throw new Error(`${group.filter((c) => !c.provider.synced).length} members did not sync within ${SYNC_TIMEOUT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
}

export class FanoutMembers {
  readonly #opts: MembersOptions;
  readonly #clients: Client[] = [];
  #seenAt = new Float64Array(0);
  #total = 0;
  #seen = 0;
  #awarenessEvents = 0;
  #loop: ReturnType<typeof monitorEventLoopDelay> | null = null;

  constructor(opts: MembersOptions) {
    this.#opts = opts;
    // Every stock provider adds a process "exit" listener of its own (and with two nodes, two groups share this process).
    process.setMaxListeners(process.getMaxListeners() + opts.tokens.length + 50);
  }

  get count(): number {
    return this.#opts.tokens.length;
  }

  async join(): Promise<void> {
    const { tokens, batch } = this.#opts;
    for (let i = 0; i < tokens.length; i += batch) {
      const group = tokens.slice(i, i + batch).map((t) => connectClient(this.#opts, t));
      this.#clients.push(...group);
      for (const m of group) m.provider.awareness.on('update', () => this.#awarenessEvents++);
      await waitSynced(group);
    }
  }

  /** From now on, records for each member when its document first shows each of `total` updates. */
  observe(total: number): void {
    this.#total = total;
    this.#seenAt = new Float64Array(this.#clients.length * total).fill(Number.NaN);
    this.#clients.forEach((m, i) => {
      const master = m.doc.getMap('mix').get('master') as Y.Map<unknown>;
      master.observe((event) => {
        if (!event.keysChanged.has('reverbMix')) return;
        const value = master.get('reverbMix');
        const k = typeof value === 'number' ? Math.round(value * VALUE_SCALE) - 1 : -1;
        const slot = i * total + k;
        if (k < 0 || k >= total || !Number.isNaN(this.#seenAt[slot]!)) return;
        this.#seenAt[slot] = wallNow();
        this.#seen++;
      });
    });
    this.#loop = monitorEventLoopDelay({ resolution: 5 });
    this.#loop.enable();
  }

  status(): MembersStatus {
    const u = process.cpuUsage();
    return {
      seen: this.#seen,
      awarenessEvents: this.#awarenessEvents,
      cpuSec: (u.user + u.system) / 1e6,
      loopDelayP99Ms: this.#loop ? this.#loop.percentile(99) / 1e6 : 0,
    };
  }

  /** When member i first saw update k, at [i * total + k] (NaN: not seen). */
  seenAt(): Float64Array {
    return this.#seenAt;
  }

  get total(): number {
    return this.#total;
  }

  close(): void {
    this.#loop?.disable();
    for (const c of this.#clients) {
      c.provider.destroy();
      c.doc.destroy();
    }
    this.#clients.length = 0;
  }
}

// ---------------------------------------------------------------- as a forked process

export type MembersRequest =
  | { type: 'join'; opts: MembersOptions }
  | { type: 'observe'; total: number }
  | { type: 'status' }
  | { type: 'collect' }
  | { type: 'close' };
export type MembersReply =
  | { type: 'joined' }
  | { type: 'observing' }
  | ({ type: 'status' } & MembersStatus)
  | { type: 'collected'; seenAt: Float64Array }
  | { type: 'error'; message: string };

if (process.send && process.argv[1] === fileURLToPath(import.meta.url)) {
  let members: FanoutMembers | null = null;
  const reply = (m: MembersReply) => {
    if (process.connected) process.send!(m);
  };
  const end = () => {
    members?.close();
    setTimeout(() => process.exit(0), 200).unref();
  };
  process.on('message', (m: MembersRequest) => {
    try {
      if (m.type === 'join') {
        members = new FanoutMembers(m.opts);
        members.join().then(
          () => reply({ type: 'joined' }),
          (err: unknown) => reply({ type: 'error', message: (err as Error).message }),
        );
      } else if (m.type === 'observe') {
        members!.observe(m.total);
        reply({ type: 'observing' });
      } else if (m.type === 'status') reply({ type: 'status', ...members!.status() });
      else if (m.type === 'collect') reply({ type: 'collected', seenAt: members!.seenAt() });
      else if (m.type === 'close') {
        end();
        process.disconnect();
      }
    } catch (err) {
      reply({ type: 'error', message: (err as Error).message });
    }
  });
  // The benchmark went away.
  process.on('disconnect', end);
}
