// A worker for WorkerPool's tests (test/server/worker-pool.test.ts): each task says what to do.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { serveTasks } from '../../server/work/worker-tasks.ts';

export type PoolTestTask =
  | { op: 'echo'; value: unknown }
  | { op: 'sleep'; ms: number }
  /** Busy for `ms` without looking at its signal (a task that cannot be stopped); notes 0 when it starts. */
  | { op: 'spin'; ms: number }
  /** Notes 0, waits for its signal, then ends as aborted. */
  | { op: 'until-aborted' }
  | { op: 'fail'; message: string }
  /** An uncaught error: the thread dies. */
  | { op: 'crash' }
  | { op: 'bytes'; length: number }
  | { op: 'notes'; count: number }
  /** This thread's nice value (Linux). */
  | { op: 'nice' };

export type PoolTestResult = { threadId: number; value?: unknown; bytes?: Uint8Array };

serveTasks<PoolTestTask, PoolTestResult, number>(async (task, ctx) => {
  switch (task.op) {
    case 'echo':
      return { threadId, value: task.value };
    case 'sleep':
      await new Promise((r) => setTimeout(r, task.ms));
      return { threadId };
    case 'spin': {
      ctx.note(0);
      const end = performance.now() + task.ms;
      while (performance.now() < end);
      return { threadId };
    }
    case 'until-aborted':
      ctx.note(0);
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
      throw ctx.signal.reason;
    case 'fail':
      throw new RangeError(task.message);
    case 'crash':
      setImmediate(() => {
        throw new Error('the test worker crashes');
      });
      return new Promise(() => {});
    case 'bytes': {
      const bytes = new Uint8Array(task.length).map((_, i) => i % 251);
      ctx.transfer(bytes.buffer);
      return { threadId, bytes };
    }
    case 'nice':
      return { threadId, value: os.getPriority(Number(path.basename(fs.readlinkSync('/proc/thread-self')))) };
    case 'notes':
      for (let i = 1; i <= task.count; i++) ctx.note(i);
      return { threadId };
  }
});
