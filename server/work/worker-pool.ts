// A pool of worker threads for CPU work a request would otherwise do on the main
// thread (stills, renders), so that no request stalls the event loop that every
// room's sync and signaling share. At most `size` threads, each running one task
// at a time; tasks beyond them wait in a bounded queue, and a task that finds the
// queue full is refused at once (PoolFullError, with an estimate of when to try
// again) rather than waiting without end.
//
// Threads start on demand, idle ones do not hold the process open, and with
// `idleMs` an idle thread ends (its heap and caches go with it). A thread
// that dies (an uncaught error, an exit) fails its task with WorkerCrashedError
// and is replaced when there is work. A task's signal aborts it: a waiting one
// leaves the queue, a running one is asked to stop and, if it has not within
// `abortGraceMs`, its thread is terminated. close() refuses what waits
// (PoolClosedError), stops what runs the same way, and ends every thread.
//
// The worker's entry file calls serveTasks() (worker-tasks.ts) with its handler.
import { Worker } from 'node:worker_threads';
import type { PoolReply, PoolRequest } from './worker-tasks.ts';

export class PoolFullError extends Error {
  override readonly name = 'PoolFullError';
  /** About when the work ahead will have been done. */
  readonly retryAfterMs: number;
  constructor(pool: string, retryAfterMs: number) {
    super(`the ${pool} pool's queue is full; try again in ${Math.ceil(retryAfterMs / 1000)} s`);
    this.retryAfterMs = retryAfterMs;
  }
}

export class PoolClosedError extends Error {
  override readonly name = 'PoolClosedError';
  constructor(pool: string) {
    super(`the ${pool} pool is closed`);
  }
}

export class WorkerCrashedError extends Error {
  override readonly name = 'WorkerCrashedError';
}

export interface WorkerPoolOptions {
  /** Names the threads and the errors. */
  name: string;
  /** The worker's entry file; it calls serveTasks(). */
  script: URL;
  workerData?: unknown;
  /** Threads at most. */
  size: number;
  /** Tasks waiting for a thread at most (beyond the running ones). */
  maxQueued: number;
  /** A task's expected duration until some have been timed (for PoolFullError's estimate). */
  expectedTaskMs: number;
  /** How long an aborted task may take to stop before its thread is terminated (default 5 s). */
  abortGraceMs?: number;
  /** A thread idle this long ends, and gives back its memory (default: never). */
  idleMs?: number;
  /**
   * Raises the threads' nice value by this much (Linux), so that when the cores are short the main
   * thread, which serves every room, runs first (default 0). What they start (ffmpeg) inherits it.
   */
  nice?: number;
  /** Told of every thread that died, for the log. */
  onCrash?: (err: Error) => void;
}

export interface RunOptions<Note> {
  /** Buffers moved to the worker with the task instead of copied. */
  transfer?: ArrayBuffer[];
  signal?: AbortSignal;
  onNote?: (note: Note) => void;
}

interface Pending<Task, Result, Note> {
  id: number;
  task: Task;
  transfer: ArrayBuffer[];
  onNote: ((note: Note) => void) | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | null;
  resolve(result: Result): void;
  reject(err: unknown): void;
}

interface Thread<Task, Result, Note> {
  worker: Worker;
  pending: Pending<Task, Result, Note> | null;
  startedAt: number;
  /** Why the thread is being terminated (the running task fails with it). */
  ending: Error | null;
  /** The uncaught error the thread reported before it exited. */
  error: Error | null;
  abortTimer: NodeJS.Timeout | null;
  idleTimer: NodeJS.Timeout | null;
  exited: Promise<void>;
}

/** Weight of the newest task in the running mean of task durations. */
const DURATION_WEIGHT = 0.3;

export class WorkerPool<Task, Result, Note = never> {
  readonly #opts: Required<Omit<WorkerPoolOptions, 'workerData' | 'onCrash' | 'idleMs'>> & Pick<WorkerPoolOptions, 'workerData' | 'onCrash' | 'idleMs'>;
  readonly #threads = new Set<Thread<Task, Result, Note>>();
  readonly #queue: Pending<Task, Result, Note>[] = [];
  #nextId = 1;
  #meanTaskMs: number;
  #closing: Promise<void> | null = null;

  constructor(options: WorkerPoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError(`a pool needs at least one thread, not ${options.size}`);
    if (!(options.maxQueued >= 0)) throw new RangeError(`maxQueued must be ≥ 0, not ${options.maxQueued}`);
    this.#opts = { abortGraceMs: 5000, nice: 0, ...options };
    this.#meanTaskMs = options.expectedTaskMs;
  }

  get size(): number {
    return this.#opts.size;
  }

  /** Threads alive, tasks running, tasks waiting. */
  get stats(): { threads: number; running: number; queued: number } {
    let running = 0;
    for (const t of this.#threads) if (t.pending) running++;
    return { threads: this.#threads.size, running, queued: this.#queue.length };
  }

  get closed(): boolean {
    return this.#closing !== null;
  }

  /** Throws what run() would refuse with now (PoolClosedError, PoolFullError): a caller can refuse before preparing a task. */
  throwIfFull(): void {
    if (this.#closing) throw new PoolClosedError(this.#opts.name);
    if (!this.#hasRoom()) throw new PoolFullError(this.#opts.name, this.#retryAfterMs());
  }

  /** Runs `task` on a thread; refuses at once with PoolFullError when every thread is busy and the queue is full. */
  run(task: Task, opts: RunOptions<Note> = {}): Promise<Result> {
    if (this.#closing) return Promise.reject(new PoolClosedError(this.#opts.name));
    if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
    if (!this.#hasRoom()) return Promise.reject(new PoolFullError(this.#opts.name, this.#retryAfterMs()));
    const idle = this.#idleThread();
    return new Promise<Result>((resolve, reject) => {
      const pending: Pending<Task, Result, Note> = { id: this.#nextId++, task, transfer: opts.transfer ?? [], onNote: opts.onNote, signal: opts.signal, onAbort: null, resolve, reject };
      if (opts.signal) {
        pending.onAbort = () => this.#abort(pending);
        opts.signal.addEventListener('abort', pending.onAbort, { once: true });
      }
      if (idle) this.#dispatch(idle, pending);
      else this.#queue.push(pending);
    });
  }

  /** Idempotent: refuses what waits, stops what runs (asking first, then terminating), and ends every thread. */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    const closed = new PoolClosedError(this.#opts.name);
    for (const p of this.#queue.splice(0)) this.#settle(p, () => p.reject(closed));
    const exits: Promise<void>[] = [];
    for (const t of this.#threads) {
      exits.push(t.exited);
      if (t.pending) this.#stop(t, closed);
      else this.#terminate(t, closed);
    }
    await Promise.all(exits);
  }

  #hasRoom(): boolean {
    if (this.#queue.length < this.#opts.maxQueued || this.#threads.size < this.#opts.size) return true;
    for (const t of this.#threads) if (!t.pending && !t.ending) return true;
    return false;
  }

  /** An idle thread, or a new one while there are fewer than `size`. */
  #idleThread(): Thread<Task, Result, Note> | null {
    for (const t of this.#threads) if (!t.pending && !t.ending) return t;
    return this.#threads.size < this.#opts.size ? this.#spawn() : null;
  }

  #spawn(): Thread<Task, Result, Note> {
    const worker = new Worker(this.#opts.script, { workerData: this.#opts.workerData, name: this.#opts.name });
    let exited!: () => void;
    const thread: Thread<Task, Result, Note> = {
      worker,
      pending: null,
      startedAt: 0,
      ending: null,
      error: null,
      abortTimer: null,
      idleTimer: null,
      exited: new Promise((r) => (exited = r)),
    };
    this.#threads.add(thread);
    worker.unref();
    if (this.#opts.nice > 0) worker.postMessage({ type: 'nice', value: this.#opts.nice } satisfies PoolRequest<Task>);
    worker.on('message', (m: PoolReply<Result, Note>) => this.#onReply(thread, m));
    worker.on('messageerror', (err) => this.#finish(thread, (p) => p.reject(err)));
    worker.on('error', (err) => (thread.error = err));
    worker.on('exit', (code) => {
      this.#threads.delete(thread);
      if (thread.abortTimer) clearTimeout(thread.abortTimer);
      if (thread.idleTimer) clearTimeout(thread.idleTimer);
      const p = thread.pending;
      thread.pending = null;
      if (p) {
        const why = thread.ending ?? new WorkerCrashedError(`a ${this.#opts.name} thread died while working (${thread.error ? thread.error.message : `exit ${code}`})`, { cause: thread.error ?? undefined });
        this.#settle(p, () => p.reject(why));
      }
      if (!thread.ending) this.#opts.onCrash?.(thread.error ?? new WorkerCrashedError(`a ${this.#opts.name} thread exited (${code})`));
      exited();
      // Its replacement, if there is work for it.
      this.#pump();
    });
    return thread;
  }

  #dispatch(thread: Thread<Task, Result, Note>, p: Pending<Task, Result, Note>): void {
    if (thread.idleTimer) clearTimeout(thread.idleTimer);
    thread.idleTimer = null;
    thread.pending = p;
    thread.startedAt = performance.now();
    thread.worker.ref();
    try {
      thread.worker.postMessage({ type: 'run', id: p.id, task: p.task } satisfies PoolRequest<Task>, p.transfer);
    } catch (err) {
      // A task that cannot be sent (not cloneable): it fails, the thread stays.
      this.#finish(thread, (q) => q.reject(err));
    }
  }

  #onReply(thread: Thread<Task, Result, Note>, m: PoolReply<Result, Note>): void {
    const p = thread.pending;
    if (!p || p.id !== m.id) return;
    if (m.type === 'note') {
      p.onNote?.(m.note);
      return;
    }
    const ms = performance.now() - thread.startedAt;
    if (m.type === 'done') {
      this.#meanTaskMs += DURATION_WEIGHT * (ms - this.#meanTaskMs);
      this.#finish(thread, (q) => q.resolve(m.result));
    } else {
      const err = new Error(m.error.message);
      err.name = m.error.name;
      if (m.error.stack) err.stack = m.error.stack;
      this.#finish(thread, (q) => q.reject(err));
    }
  }

  /** The thread's task is over: settle it, and give the thread the next one. */
  #finish(thread: Thread<Task, Result, Note>, settle: (p: Pending<Task, Result, Note>) => void): void {
    const p = thread.pending;
    if (!p) return;
    thread.pending = null;
    if (thread.abortTimer) clearTimeout(thread.abortTimer);
    thread.abortTimer = null;
    this.#settle(p, () => settle(p));
    if (thread.ending) return;
    thread.worker.unref();
    if (this.#closing) {
      this.#terminate(thread, new PoolClosedError(this.#opts.name));
      return;
    }
    this.#pump();
    if (!thread.pending && this.#opts.idleMs !== undefined) {
      thread.idleTimer = setTimeout(() => this.#terminate(thread, new Error('idle')), this.#opts.idleMs);
      thread.idleTimer.unref();
    }
  }

  #settle(p: Pending<Task, Result, Note>, settle: () => void): void {
    if (p.onAbort) p.signal?.removeEventListener('abort', p.onAbort);
    p.onAbort = null;
    settle();
  }

  #pump(): void {
    while (!this.#closing && this.#queue.length > 0) {
      const thread = this.#idleThread();
      if (!thread) return;
      this.#dispatch(thread, this.#queue.shift()!);
    }
  }

  #abort(p: Pending<Task, Result, Note>): void {
    const at = this.#queue.indexOf(p);
    if (at >= 0) {
      this.#queue.splice(at, 1);
      this.#settle(p, () => p.reject(p.signal!.reason));
      return;
    }
    for (const t of this.#threads) if (t.pending === p) this.#stop(t, p.signal!.reason as Error);
  }

  /** Asks the thread's task to stop; terminates the thread if it has not within the grace. */
  #stop(thread: Thread<Task, Result, Note>, why: Error): void {
    const p = thread.pending;
    if (!p || thread.abortTimer) return;
    thread.worker.postMessage({ type: 'abort', id: p.id } satisfies PoolRequest<Task>);
    thread.abortTimer = setTimeout(() => {
      thread.abortTimer = null;
      if (thread.pending === p) this.#terminate(thread, why);
    }, this.#opts.abortGraceMs);
  }

  #terminate(thread: Thread<Task, Result, Note>, why: Error): void {
    if (thread.ending) return;
    thread.ending = why;
    void thread.worker.terminate();
  }

  #retryAfterMs(): number {
    const ahead = this.#queue.length + this.#opts.size;
    return Math.max(1000, Math.round(this.#meanTaskMs * Math.ceil(ahead / this.#opts.size)));
  }
}
