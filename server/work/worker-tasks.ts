// The worker side of WorkerPool (worker-pool.ts): the messages between a pool and
// its threads, and serveTasks(), which a worker's entry file calls once with its
// task handler. A worker runs one task at a time (the pool hands it no more).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parentPort } from 'node:worker_threads';

/** Pool → worker. `nice` comes first, before any task. */
export type PoolRequest<Task> = { type: 'run'; id: number; task: Task } | { type: 'abort'; id: number } | { type: 'nice'; value: number };

/** Worker → pool. */
export type PoolReply<Result, Note> =
  | { type: 'done'; id: number; result: Result }
  | { type: 'failed'; id: number; error: { name: string; message: string; stack?: string } }
  | { type: 'note'; id: number; note: Note };

export interface TaskContext<Note> {
  /** Aborted when the caller gave up on the task (or the pool is closing): stop soon. */
  signal: AbortSignal;
  /** Tells the caller something before the result (progress). */
  note(note: Note): void;
  /** Moves these buffers with the result instead of copying them. */
  transfer(...buffers: ArrayBuffer[]): void;
}

export function serveTasks<Task, Result, Note = never>(handle: (task: Task, ctx: TaskContext<Note>) => Promise<Result>): void {
  const port = parentPort;
  if (!port) throw new Error('serveTasks() runs in a worker thread');
  const running = new Map<number, AbortController>();
  const reply = (m: PoolReply<Result, Note>, transfer: ArrayBuffer[] = []) => port.postMessage(m, transfer);
  port.on('message', (m: PoolRequest<Task>) => {
    if (m.type === 'nice') {
      niceThisThread(m.value);
      return;
    }
    if (m.type === 'abort') {
      running.get(m.id)?.abort(new DOMException('the task was aborted', 'AbortError'));
      return;
    }
    const controller = new AbortController();
    running.set(m.id, controller);
    const transfer: ArrayBuffer[] = [];
    const ctx: TaskContext<Note> = {
      signal: controller.signal,
      note: (note) => reply({ type: 'note', id: m.id, note }),
      transfer: (...buffers) => transfer.push(...buffers),
    };
    handle(m.task, ctx).then(
      (result) => {
        running.delete(m.id);
        reply({ type: 'done', id: m.id, result }, transfer);
      },
      (err: unknown) => {
        running.delete(m.id);
        const e = err instanceof Error ? err : new Error(String(err));
        reply({ type: 'failed', id: m.id, error: { name: e.name, message: e.message, ...(e.stack ? { stack: e.stack } : {}) } });
      },
    );
  });
}

/**
 * Lowers this thread's scheduling priority (Linux: setpriority on a thread id changes that thread alone;
 * threads and processes it starts later inherit it). Elsewhere the thread keeps the process's priority.
 */
function niceThisThread(value: number): void {
  if (process.platform !== 'linux') return;
  const tid = Number(path.basename(fs.readlinkSync('/proc/thread-self')));
  os.setPriority(tid, Math.min(19, os.getPriority(tid) + value));
}

/** An ArrayBuffer holding exactly `bytes` (copied when they are a view into a larger or shared one), fit to transfer. */
export function ownBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) return bytes.buffer;
  const copy = new Uint8Array(bytes.byteLength);
  copy.set(bytes);
  return copy.buffer;
}
