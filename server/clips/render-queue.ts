// Where renders wait and who runs them. ClipService records a render row and
// hands its id to a RenderQueue; the queue runs it through a Renderer (here, in
// this process, in worker threads: server/work/threaded-render-runner.ts) or
// through Redis and separate renderer processes (redis-render-queue.ts for the web
// nodes' side, redis-render-worker.ts for the renderers'), records how it went in
// the store (running, done, failed, queued again: the queue owns the attempts and
// the leases that decide it), and tells whoever listens (`progress`, `done`).
import { EventEmitter } from 'node:events';
import type { RenderProgress } from '../../shared/socket-events.ts';
import type { Logger } from '../logger.ts';
import { BlobStoreUnavailableError } from '../store/blob-store.ts';
import { StoreUnavailableError } from '../store/pg-errors.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import type { ClipResult, Renderer, RenderRequest } from './render-job.ts';

export type RenderQueueEvents = { progress: [roomId: string, progress: RenderProgress]; done: [render: RenderRecord] };

/** Render jobs by state: waiting to run, running, and waiting out a retry delay after a failure. */
export interface RenderJobCounts {
  queued: number;
  running: number;
  retrying: number;
}

/** The longest wait before a retry, whatever the attempt. */
export const MAX_RETRY_DELAY_MS = 10 * 60_000;

/** The wait before running a render again after its `attempt`-th attempt failed: `baseMs`, then four times longer each time. */
export function retryDelayMs(baseMs: number, attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, baseMs * 4 ** Math.max(0, attempt - 1));
}

/**
 * Which store `err` (or an error that caused it) says cannot be reached now: the object store
 * (`files`: S3 down, a commit or a release's files failed) or the database (`database`: PostgreSQL
 * down). Such a render did not fail: it waits for the store and runs again, its attempt not counted,
 * so that an outage longer than the retries fails no render (bought versions included).
 * Matched by name too: an error handed over from a worker thread loses its class.
 */
export function unreachableStoreOf(err: unknown): 'files' | 'database' | null {
  let e: unknown = err;
  for (let depth = 0; depth < 8 && e instanceof Error; depth++) {
    if (e instanceof BlobStoreUnavailableError || e.name === 'BlobStoreUnavailableError') return 'files';
    if (e instanceof StoreUnavailableError || e.name === 'StoreUnavailableError' || e.name === 'StoreBusyError') return 'database';
    e = e.cause;
  }
  return null;
}

/** What the room is told while a render waits for a store to come back. */
export function waitingMessage(which: 'files' | 'database', delayMs: number): string {
  return `the ${which === 'files' ? 'file store' : 'database'} is unreachable; the render waits and tries again in ${Math.ceil(delayMs / 1000)} s`;
}

export interface RenderQueue extends EventEmitter<RenderQueueEvents> {
  /**
   * Whether every node hears every event of every render (Redis): then each node
   * tells only its own sockets; otherwise the one node that hears tells the room everywhere.
   */
  readonly everyNodeHears: boolean;
  /**
   * Queues a render row that is `queued`; queuing one that is already waiting or running changes nothing.
   * A queue that starts it at once (a free slot in this process) has marked it `running` when this resolves,
   * so that the answer to a commit says so rather than "waiting its turn".
   */
  enqueue(id: string): Promise<void>;
  /** How far a render is (0..1), when the queue knows. */
  progressOf(id: string): Promise<number | undefined>;
  /** The jobs in the queue by state (for the metrics). */
  counts(): Promise<RenderJobCounts>;
  /** Picks up what a previous process left queued or running. */
  resume(): Promise<void>;
  close(): Promise<void>;
}

export function reportOf(render: Pick<RenderRecord, 'id' | 'kind'>, status: RenderProgress['status'], progress: number, message?: string): RenderProgress {
  return { clipId: render.id, kind: render.kind, status, progress: Math.round(progress * 1000) / 1000, ...(message ? { message } : {}) };
}

/**
 * The default: renders run in this process (the runner takes them off the main thread), at most
 * `concurrency` at a time. A render that fails runs again after a delay (retryDelayMs), up to
 * `maxAttempts` attempts in this process. One that failed because a store is unreachable
 * (unreachableStoreOf) waits on the same growing schedule, as often as it takes, its attempt not counted.
 */
export class LocalRenderQueue extends EventEmitter<RenderQueueEvents> implements RenderQueue {
  readonly everyNodeHears = false;
  readonly #store: Store;
  readonly #log: Logger;
  readonly #runner: Renderer;
  readonly #concurrency: number;
  readonly #queue: string[] = [];
  readonly #running = new Map<string, AbortController>();
  /** Per running render: settles once it has been marked `running` (or found to need no run). */
  readonly #started = new Map<string, Promise<void>>();
  readonly #progress = new Map<string, number>();
  readonly #maxAttempts: number;
  readonly #retryBaseMs: number;
  /** Attempts so far of the renders queued, running or waiting to retry. */
  readonly #attempts = new Map<string, number>();
  /** Renders waiting out a retry delay. */
  readonly #retries = new Map<string, NodeJS.Timeout>();
  /** How often each render has waited for an unreachable store so far (its waits grow with it). */
  readonly #waits = new Map<string, number>();
  #closed = false;
  #drained: Promise<void> = Promise.resolve();

  constructor(deps: { store: Store; log: Logger; runner: Renderer; concurrency: number; maxAttempts?: number; retryBaseMs?: number }) {
    super();
    this.#store = deps.store;
    this.#log = deps.log;
    this.#runner = deps.runner;
    this.#concurrency = Math.max(1, deps.concurrency);
    this.#maxAttempts = Math.max(1, deps.maxAttempts ?? 3);
    this.#retryBaseMs = Math.max(0, deps.retryBaseMs ?? 5000);
  }

  async enqueue(id: string): Promise<void> {
    if (this.#closed || this.#queue.includes(id) || this.#running.has(id) || this.#retries.has(id)) return;
    this.#queue.push(id);
    this.#progress.set(id, 0);
    this.#pump();
    // Started at once (nothing ahead of it): answer once the row says `running`.
    await this.#started.get(id);
  }

  async progressOf(id: string): Promise<number | undefined> {
    return this.#progress.get(id);
  }

  async counts(): Promise<RenderJobCounts> {
    return { queued: this.#queue.length, running: this.#running.size, retrying: this.#retries.size };
  }

  async resume(): Promise<void> {
    for (const r of await this.#store.listRenders(['queued', 'running'])) {
      if (r.status === 'running') await this.#store.updateRender(r.id, { status: 'queued' });
      await this.enqueue(r.id);
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    // Renders waiting to retry stay `queued` in the store: the next process takes them up (resume()).
    for (const t of this.#retries.values()) clearTimeout(t);
    this.#retries.clear();
    for (const c of this.#running.values()) c.abort(new Error('the server is shutting down'));
    await this.#drained;
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < this.#concurrency && this.#queue.length > 0) {
      const id = this.#queue.shift()!;
      const controller = new AbortController();
      this.#running.set(id, controller);
      let started!: () => void;
      this.#started.set(id, new Promise<void>((resolve) => (started = resolve)));
      const job = this.#run(id, controller.signal, started)
        .catch((err: unknown) => this.#log.error({ err, renderId: id }, 'clip job failed unexpectedly'))
        .finally(() => {
          started();
          this.#started.delete(id);
          this.#running.delete(id);
          this.#pump();
        });
      const previous = this.#drained;
      this.#drained = Promise.all([previous, job]).then(() => {});
    }
  }

  async #run(id: string, signal: AbortSignal, started: () => void): Promise<void> {
    const store = this.#store;
    const log = this.#log;
    let render: RenderRecord | null = null;
    /** Whether this run took an attempt (given back when it ends waiting for a store). */
    let counted = false;
    try {
      const found = await store.getRender(id);
      if (!found || found.status === 'done' || found.status === 'failed') return;
      render = found;
      const request = render.request as RenderRequest;
      const attempt = (this.#attempts.get(id) ?? 0) + 1;
      this.#attempts.set(id, attempt);
      counted = true;
      await store.updateRender(id, { status: 'running' });
      started();
      this.emit('progress', render.roomId, reportOf(render, 'running', 0));
      const startedAt = performance.now();
      try {
        const result = await this.#runner.render(render, signal, {
          onProgress: (fraction) => this.#progress.set(id, fraction),
          onReport: (fraction) => this.emit('progress', found.roomId, reportOf(found, 'running', fraction)),
        });
        await store.updateRender(id, { status: 'done', result });
        this.#attempts.delete(id);
        this.#waits.delete(id);
        this.#progress.set(id, 1);
        this.emit('progress', render.roomId, reportOf(render, 'done', 1));
        this.emit('done', render);
        log.info({ renderId: id, kind: render.kind, roomId: render.roomId, seconds: request.seconds, ms: Math.round(performance.now() - startedAt) }, 'render done');
      } catch (err) {
        if (signal.aborted) {
          // Shutting down: left queued for the next process (resume()).
          await store.updateRender(id, { status: 'queued' }).catch(() => {});
          return;
        }
        // A store that cannot be reached is no fault of the render: it waits (below).
        if (unreachableStoreOf(err)) throw err;
        log.error({ err, renderId: id, attempt }, 'clip render failed');
        if (attempt < this.#maxAttempts && !this.#closed) {
          // A failure may pass (a full disk, a crashed encoder): wait, longer each time, then run it again.
          const delayMs = retryDelayMs(this.#retryBaseMs, attempt);
          await store.updateRender(id, { status: 'queued' });
          this.emit('progress', render.roomId, reportOf(render, 'queued', 0, `the render failed; trying again in ${Math.ceil(delayMs / 1000)} s`));
          this.#retryIn(id, delayMs);
          return;
        }
        await store.updateRender(id, { status: 'failed', result: { error: 'the render failed', attempts: attempt } satisfies ClipResult });
        this.#attempts.delete(id);
        this.#waits.delete(id);
        this.emit('progress', render.roomId, reportOf(render, 'failed', this.#progress.get(id) ?? 0, 'the render failed; try again'));
      }
    } catch (err) {
      const which = unreachableStoreOf(err);
      if (!which) throw err;
      if (signal.aborted || this.#closed) {
        // Shutting down: left queued for the next process (resume()), as any render running then.
        await store.updateRender(id, { status: 'queued' }).catch(() => {});
        return;
      }
      await this.#waitForStore(id, render, which, counted, err);
    } finally {
      this.#progress.delete(id);
    }
  }

  /**
   * The render could not go on because a store is unreachable (S3 or PostgreSQL down): it runs again
   * after a wait that grows with each one (retryDelayMs, capped), however many it takes; the attempt
   * is given back, so that an outage fails no render.
   */
  async #waitForStore(id: string, render: RenderRecord | null, which: 'files' | 'database', counted: boolean, err: unknown): Promise<void> {
    if (counted) this.#attempts.set(id, (this.#attempts.get(id) ?? 1) - 1);
    const waits = (this.#waits.get(id) ?? 0) + 1;
    this.#waits.set(id, waits);
    const delayMs = retryDelayMs(this.#retryBaseMs, waits);
    this.#retryIn(id, delayMs);
    this.#log.warn({ renderId: id, err: (err as Error).message, store: which, waits, delayMs }, 'a store is unreachable; the render waits and runs again (its attempt not counted)');
    if (render) this.emit('progress', render.roomId, reportOf(render, 'queued', 0, waitingMessage(which, delayMs)));
    // The store down may be the database itself: the row says `running` until it can be told otherwise
    // (resume() of the next process treats both alike).
    await this.#store.updateRender(id, { status: 'queued' }).catch(() => {});
  }

  #retryIn(id: string, delayMs: number): void {
    this.#retries.set(
      id,
      setTimeout(() => {
        this.#retries.delete(id);
        void this.enqueue(id);
      }, delayMs),
    );
  }
}
