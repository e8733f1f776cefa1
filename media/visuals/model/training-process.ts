// Training in a child process, so a five-minute training neither blocks the server's event
// loop nor shares its heap; progress comes over IPC. The child writes the weights to
// `weightsFile.tmp`, fsyncs and renames it, and only then answers: a killed or failed child
// leaves no file at `weightsFile` (its .tmp is removed here), and the next start trains again.
import { fork, type ChildProcess } from 'node:child_process';
import fsp from 'node:fs/promises';
import { VisualModelError } from './errors.ts';
import type { TrainConfig, TrainingImage, TrainProgress, TrainResult } from './types.ts';

export interface TrainJob {
  images: TrainingImage[];
  config: TrainConfig;
  weightsFile: string;
}

/** Messages from the child (serialization 'advanced', so Uint8Arrays pass as they are). */
export type TrainChildMessage =
  | { type: 'progress'; progress: TrainProgress }
  | { type: 'done'; result: TrainResult }
  | { type: 'error'; message: string; refused: boolean };

interface MinimalLog {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

export async function trainInChild(
  job: TrainJob,
  opts: { onProgress?: (p: TrainProgress) => void; signal?: AbortSignal; log?: MinimalLog; onSpawn?: (pid: number) => void } = {},
): Promise<TrainResult> {
  opts.signal?.throwIfAborted();
  const tmp = `${job.weightsFile}.tmp`;
  await fsp.rm(tmp, { force: true });
  const child = fork(new URL('./training-child.ts', import.meta.url), [], {
    execArgv: process.execArgv,
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  if (child.pid !== undefined) opts.onSpawn?.(child.pid);
  opts.log?.info({ pid: child.pid, images: job.images.length, steps: job.config.steps }, 'visual model training started');
  try {
    return await new Promise<TrainResult>((resolve, reject) => {
      let settled = false;
      const finish = (err: Error | null, result?: TrainResult) => {
        if (settled) return;
        settled = true;
        opts.signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve(result!);
      };
      const onAbort = () => {
        child.kill('SIGKILL');
        finish(opts.signal!.reason instanceof Error ? opts.signal!.reason : new Error('training aborted'));
      };
      opts.signal?.addEventListener('abort', onAbort, { once: true });
      child.on('message', (m: TrainChildMessage) => {
        if (m.type === 'progress') opts.onProgress?.(m.progress);
        else if (m.type === 'done') finish(null, { ...m.result, weights: new Uint8Array(m.result.weights) });
        else finish(m.refused ? new VisualModelError(m.message) : new Error(`visual model training failed: ${m.message}`));
      });
      child.once('error', (err) => finish(err));
      child.once('exit', (code, sig) => finish(new Error(`visual model training stopped before it finished (${sig ?? `exit ${code}`})`)));
      child.send({ type: 'train', job });
    });
  } catch (err) {
    await fsp.rm(tmp, { force: true });
    throw err;
  } finally {
    await stop(child);
  }
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGKILL');
  await exited;
}
