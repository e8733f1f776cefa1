// Request/response over a worker thread's port, with the worker's own events
// beside the replies. Errors cross the thread as { name, message, code } and are
// rebuilt on this side (SignalError and InvalidStateError keep their class).
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import { InvalidStateError, SignalError } from './sfu.ts';

export interface RpcErrorShape {
  name: string;
  message: string;
  code?: string;
}

export type RpcReply = { type: 'reply'; id: number; ok: true; result: unknown } | { type: 'reply'; id: number; ok: false; error: RpcErrorShape };
export type RpcRequest = { type: 'request'; id: number; op: string; args: unknown };
export type RpcEvent = { type: 'event'; event: string; data: unknown };

export function toRpcError(err: unknown): RpcErrorShape {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { name: err.name, message: err.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(err) };
}

export function fromRpcError(shape: RpcErrorShape): Error {
  if (shape.name === 'SignalError') return new SignalError(shape.code as SignalError['code'], shape.message);
  if (shape.name === 'InvalidStateError') return new InvalidStateError(shape.message);
  const err = new Error(shape.message);
  err.name = shape.name;
  return err;
}

export type WorkerRpcEvents = {
  event: [name: string, data: unknown];
  /** The worker ended without being asked to (crash, uncaught error). */
  died: [error: Error];
};

export class WorkerRpc extends EventEmitter<WorkerRpcEvents> {
  readonly #worker: Worker;
  readonly #pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  #nextId = 1;
  #ended = false;

  constructor(worker: Worker) {
    super();
    this.#worker = worker;
    worker.on('message', (message: RpcReply | RpcEvent) => {
      if (message.type === 'reply') {
        const pending = this.#pending.get(message.id);
        if (!pending) return;
        this.#pending.delete(message.id);
        if (message.ok) pending.resolve(message.result);
        else pending.reject(fromRpcError(message.error));
      } else if (message.type === 'event') {
        this.emit('event', message.event, message.data);
      }
    });
    let lastError: Error | null = null;
    worker.on('error', (err) => (lastError = err));
    worker.on('exit', (code) => {
      const wasEnded = this.#ended;
      this.#ended = true;
      const error = lastError ?? new Error(`worker exited with code ${code}`);
      this.#rejectAll(wasEnded ? new InvalidStateError('the worker was stopped') : error);
      if (!wasEnded) this.emit('died', error);
    });
  }

  get ended(): boolean {
    return this.#ended;
  }

  get threadId(): number {
    return this.#worker.threadId;
  }

  request<T>(op: string, args: unknown, transferList: readonly Transferable[] = []): Promise<T> {
    if (this.#ended) return Promise.reject(new InvalidStateError('the worker has ended'));
    const id = this.#nextId++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.#worker.postMessage({ type: 'request', id, op, args } satisfies RpcRequest, transferList as never);
    });
  }

  /** Ends the worker; pending requests fail with InvalidStateError. */
  async terminate(): Promise<void> {
    this.#ended = true;
    await this.#worker.terminate();
    this.#rejectAll(new InvalidStateError('the worker was stopped'));
  }

  #rejectAll(err: Error): void {
    for (const { reject } of this.#pending.values()) reject(err);
    this.#pending.clear();
  }
}
