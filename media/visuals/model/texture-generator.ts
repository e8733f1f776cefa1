// Generating textures off the event loop: one worker thread that loads tfjs-wasm once, keeps a
// few models' weights loaded (LRU by id, in the worker), and runs one job at a time. An error in
// the worker rejects its job and the next job starts a fresh worker.
import { Worker } from 'node:worker_threads';
import { VisualModelError } from './errors.ts';
import { GENERATED_TEXTURE_SIZE, type Conditioning } from './types.ts';

export type GeneratorRequest = {
  type: 'generate';
  job: number;
  /** Weights are sent only when the worker may not hold the model (it answers 'missing' otherwise). */
  model: { id: string; weights: Uint8Array | null };
  cond: Conditioning;
  seed: number;
  size: number;
};
export type GeneratorReply =
  | { type: 'done'; job: number; rgba: Uint8Array; cpuMs: number }
  | { type: 'missing'; job: number }
  | { type: 'error'; job: number; message: string; refused: boolean };

/** Models the worker holds (LRU by id); the worker keeps the same list by the same rule. */
export const MODELS_KEPT = 4;

interface MinimalLog {
  warn(obj: object, msg?: string): void;
}

const MAX_SIZE = 2048;
/** A job's longest wait: a 512² texture takes about 0.1 s, loading tfjs and a model about 1 s; 2048² about 2 s. */
const JOB_TIMEOUT_MS = 30_000;

function touch(list: string[], id: string): void {
  const i = list.indexOf(id);
  if (i >= 0) list.splice(i, 1);
  list.push(id);
  while (list.length > MODELS_KEPT) list.shift();
}

export class TextureGenerator {
  readonly #log: MinimalLog | undefined;
  #worker: Worker | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #jobs = 0;
  #closed = false;
  #current: { req: GeneratorRequest; weights: Uint8Array; resolve: (r: Uint8Array) => void; reject: (e: Error) => void } | null = null;
  /** Ids the worker holds, as far as this side knows; a wrong guess costs one 'missing' round trip. */
  #held: string[] = [];

  constructor(opts: { log?: MinimalLog } = {}) {
    this.#log = opts.log;
  }

  /** RGBA size×size×4 (alpha 255); the same (weights, conditioning, seed, size) gives the same bytes. */
  generate(model: { id: string; weights: Uint8Array }, cond: Conditioning, seed: number, size = GENERATED_TEXTURE_SIZE): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new VisualModelError('the texture generator is closed'));
    if (!Number.isInteger(size) || size < 8 || size > MAX_SIZE) return Promise.reject(new VisualModelError(`texture size ${size} is not 8..${MAX_SIZE}`));
    const run = () => this.#run({ type: 'generate', job: ++this.#jobs, model: { id: model.id, weights: null }, cond, seed: seed >>> 0, size }, model.weights);
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #run(req: GeneratorRequest, weights: Uint8Array): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new VisualModelError('the texture generator is closed'));
    const worker = this.#ensureWorker();
    // Referenced only while a job runs: an idle generator does not keep the process alive.
    worker.ref();
    return new Promise<Uint8Array>((resolve, reject) => {
      const held = this.#held.includes(req.model.id);
      touch(this.#held, req.model.id);
      // A job that never answers (a hung worker) must not hold every later one: the worker is ended
      // (its 'exit' rejects the job) and the next job starts a fresh one.
      const timer = setTimeout(() => {
        this.#log?.warn({ jobMs: JOB_TIMEOUT_MS }, 'a texture generation did not answer in time; its worker is ended');
        void worker.terminate();
      }, JOB_TIMEOUT_MS);
      timer.unref();
      this.#current = {
        req,
        weights,
        resolve: (r) => {
          clearTimeout(timer);
          worker.unref();
          resolve(r);
        },
        reject: (e) => {
          clearTimeout(timer);
          worker.unref();
          reject(e);
        },
      };
      // The weights are copied (not transferred): the caller keeps its bytes.
      worker.postMessage(held ? req : { ...req, model: { id: req.model.id, weights } });
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./texture-generator.worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (m: GeneratorReply) => {
      const cur = this.#current;
      if (!cur || cur.req.job !== m.job) return;
      if (m.type === 'missing') {
        worker.postMessage({ ...cur.req, model: { id: cur.req.model.id, weights: cur.weights } });
        return;
      }
      this.#current = null;
      if (m.type === 'done') cur.resolve(m.rgba);
      else cur.reject(m.refused ? new VisualModelError(m.message) : new Error(`texture generation failed: ${m.message}`));
    });
    const fail = (err: Error) => {
      if (this.#worker === worker) {
        this.#worker = null;
        this.#held = [];
      }
      const cur = this.#current;
      this.#current = null;
      if (!this.#closed && cur) this.#log?.warn({ err }, 'texture generator worker stopped; the next job starts a new one');
      cur?.reject(err);
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`texture generator worker stopped (exit ${code})`)));
    this.#worker = worker;
    return worker;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const worker = this.#worker;
    this.#worker = null;
    if (worker) await worker.terminate();
  }
}
