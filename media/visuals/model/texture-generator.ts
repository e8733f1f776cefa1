// Generating textures off the event loop: one worker thread that loads tfjs-wasm once, keeps a
// few models' weights loaded (LRU by id, in the worker), and runs one job at a time. An error in
// the worker rejects its job and the next job starts a fresh worker.
import { Worker } from 'node:worker_threads';
import { VisualModelError } from './errors.ts';
import { GENERATED_TEXTURE_SIZE, type Conditioning } from './types.ts';

export type GeneratorRequest = {
  type: 'generate';
  job: number;
  model: { id: string; weights: Uint8Array };
  cond: Conditioning;
  seed: number;
  size: number;
};
export type GeneratorReply = { type: 'done'; job: number; rgba: Uint8Array; cpuMs: number } | { type: 'error'; job: number; message: string; refused: boolean };

interface MinimalLog {
  warn(obj: object, msg?: string): void;
}

const MAX_SIZE = 2048;

export class TextureGenerator {
  readonly #log: MinimalLog | undefined;
  #worker: Worker | null = null;
  #queue: Promise<unknown> = Promise.resolve();
  #jobs = 0;
  #closed = false;
  #current: { job: number; resolve: (r: Uint8Array) => void; reject: (e: Error) => void } | null = null;

  constructor(opts: { log?: MinimalLog } = {}) {
    this.#log = opts.log;
  }

  /** RGBA size×size×4 (alpha 255); the same (weights, conditioning, seed, size) gives the same bytes. */
  generate(model: { id: string; weights: Uint8Array }, cond: Conditioning, seed: number, size = GENERATED_TEXTURE_SIZE): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new VisualModelError('the texture generator is closed'));
    if (!Number.isInteger(size) || size < 8 || size > MAX_SIZE) return Promise.reject(new VisualModelError(`texture size ${size} is not 8..${MAX_SIZE}`));
    const run = () => this.#run({ type: 'generate', job: ++this.#jobs, model, cond, seed: seed >>> 0, size });
    const p = this.#queue.then(run, run);
    this.#queue = p.catch(() => undefined);
    return p;
  }

  #run(req: GeneratorRequest): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new VisualModelError('the texture generator is closed'));
    const worker = this.#ensureWorker();
    // Referenced only while a job runs: an idle generator does not keep the process alive.
    worker.ref();
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#current = {
        job: req.job,
        resolve: (r) => {
          worker.unref();
          resolve(r);
        },
        reject: (e) => {
          worker.unref();
          reject(e);
        },
      };
      // The weights are copied (not transferred): the caller keeps its bytes.
      worker.postMessage(req);
    });
  }

  #ensureWorker(): Worker {
    if (this.#worker) return this.#worker;
    const worker = new Worker(new URL('./texture-generator.worker.ts', import.meta.url));
    worker.unref();
    worker.on('message', (m: GeneratorReply) => {
      const cur = this.#current;
      if (!cur || cur.job !== m.job) return;
      this.#current = null;
      if (m.type === 'done') cur.resolve(m.rgba);
      else cur.reject(m.refused ? new VisualModelError(m.message) : new Error(`texture generation failed: ${m.message}`));
    });
    const fail = (err: Error) => {
      if (this.#worker === worker) this.#worker = null;
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
