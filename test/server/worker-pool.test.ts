// WorkerPool (server/work/worker-pool.ts) at the unit level, with real threads
// running test/support/pool-test-worker.ts: results and transfers, the bounded
// queue, crashes, aborts, and a close that leaves no thread behind.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { PoolClosedError, PoolFullError, WorkerCrashedError, WorkerPool, type WorkerPoolOptions } from '../../server/work/worker-pool.ts';
import type { PoolTestResult, PoolTestTask } from '../support/pool-test-worker.ts';
import { waitFor } from '../support/room-clients.ts';
import { tempDir } from '../support/temp.ts';

const SCRIPT = new URL('../support/pool-test-worker.ts', import.meta.url);
const NAME = 'pool-test';

/** The process's OS threads named after the pool (Node names a worker's thread after its `name`). */
function poolThreads(): number {
  return fs.readdirSync('/proc/self/task').filter((t) => {
    try {
      return fs.readFileSync(`/proc/self/task/${t}/comm`, 'utf8').trim() === NAME;
    } catch {
      return false; // it ended while we looked
    }
  }).length;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('it did not fail');
}

describe('WorkerPool', function () {
  this.timeout(20_000);
  const pools: WorkerPool<PoolTestTask, PoolTestResult, number>[] = [];
  const pool = (opts: Partial<WorkerPoolOptions> = {}) => {
    const p = new WorkerPool<PoolTestTask, PoolTestResult, number>({ name: NAME, script: SCRIPT, size: 1, maxQueued: 2, expectedTaskMs: 200, ...opts });
    pools.push(p);
    return p;
  };
  afterEach(async () => {
    for (const p of pools.splice(0)) await p.close();
  });

  it('runs tasks in threads, up to its size at once, and moves buffers back', async () => {
    const p = pool({ size: 2 });
    const results = await Promise.all([1, 2, 3, 4].map((value) => p.run({ op: 'echo', value })));
    expect(results.map((r) => r.value)).to.deep.equal([1, 2, 3, 4]);
    expect(new Set(results.map((r) => r.threadId)).size).to.be.within(1, 2);
    expect(results.every((r) => r.threadId !== 0), 'not the main thread').to.equal(true);
    const { bytes } = await p.run({ op: 'bytes', length: 1 << 20 });
    expect(bytes).to.be.instanceOf(Uint8Array);
    expect(bytes!.byteLength).to.equal(1 << 20);
    expect(bytes![1000]).to.equal(1000 % 251);
    const notes: number[] = [];
    await p.run({ op: 'notes', count: 3 }, { onNote: (n) => notes.push(n) });
    expect(notes).to.deep.equal([1, 2, 3]);
  });

  it('a task that fails comes back as an error with its name and message; the thread goes on', async () => {
    const p = pool();
    const err = await rejection(p.run({ op: 'fail', message: 'out of range' }));
    expect(err).to.include({ name: 'RangeError', message: 'out of range' });
    expect((await p.run({ op: 'echo', value: 'after' })).value).to.equal('after');
  });

  it('a full queue refuses at once with PoolFullError and an estimate of when to try again; what it took still runs', async () => {
    const p = pool({ size: 1, maxQueued: 2 });
    expect(() => p.throwIfFull()).to.not.throw();
    const taken = [p.run({ op: 'sleep', ms: 300 }), p.run({ op: 'sleep', ms: 300 }), p.run({ op: 'sleep', ms: 300 })];
    expect(p.stats).to.deep.include({ running: 1, queued: 2 });
    // What run() would answer, asked before preparing a task.
    expect(() => p.throwIfFull()).to.throw(PoolFullError);
    const t0 = performance.now();
    const refused = await rejection(p.run({ op: 'echo', value: 'one too many' }));
    expect(performance.now() - t0, 'refused at once').to.be.below(50);
    expect(refused).to.be.instanceOf(PoolFullError);
    // Three tasks ahead on one thread, 200 ms each as far as it knows.
    expect((refused as PoolFullError).retryAfterMs).to.be.within(600, 1000);
    await Promise.all(taken);
    expect((await p.run({ op: 'echo', value: 'room again' })).value).to.equal('room again');
  });

  it('a thread that dies fails its task with WorkerCrashedError and is replaced', async () => {
    const crashes: Error[] = [];
    const p = pool({ size: 1, onCrash: (err) => crashes.push(err) });
    const before = (await p.run({ op: 'echo', value: 0 })).threadId;
    const crashed = rejection(p.run({ op: 'crash' }));
    const queued = p.run({ op: 'echo', value: 'queued behind the crash' });
    const err = await crashed;
    expect(err).to.be.instanceOf(WorkerCrashedError);
    expect(err.message).to.match(/pool-test thread died while working \(the test worker crashes\)/);
    expect(crashes).to.have.length(1);
    // The task waiting behind it runs on the replacement.
    const after = await queued;
    expect(after.value).to.equal('queued behind the crash');
    expect(after.threadId).to.not.equal(before);
  });

  it('an abort takes a waiting task out of the queue, and stops a running one (terminating a thread that does not stop)', async () => {
    const p = pool({ size: 1, maxQueued: 2, abortGraceMs: 200 });
    const first = new AbortController();
    const running = rejection(p.run({ op: 'until-aborted' }, { signal: first.signal }));
    const second = new AbortController();
    const waiting = rejection(p.run({ op: 'echo', value: 'never' }, { signal: second.signal }));
    second.abort(new Error('changed my mind'));
    expect((await waiting).message).to.equal('changed my mind');
    expect(p.stats.queued).to.equal(0);
    first.abort();
    expect((await running).name).to.equal('AbortError');
    // One that cannot stop: its thread is terminated after the grace, and the task fails with the abort's reason.
    const third = new AbortController();
    let spinning = false;
    const stuck = p.run({ op: 'spin', ms: 5000 }, { signal: third.signal, onNote: () => (spinning = true) });
    await waitFor(() => spinning, 10_000, 'the task to start');
    const t0 = performance.now();
    third.abort(new Error('stop spinning'));
    expect((await rejection(stuck)).message).to.equal('stop spinning');
    expect(performance.now() - t0).to.be.below(2000);
    expect((await p.run({ op: 'echo', value: 'fresh thread' })).value).to.equal('fresh thread');
  });

  it('close refuses what waits with PoolClosedError, stops what runs, ends every thread, and is idempotent', async () => {
    const p = pool({ size: 2, maxQueued: 4, abortGraceMs: 300 });
    let started = 0;
    const onNote = () => started++;
    const running = [rejection(p.run({ op: 'until-aborted' }, { onNote })), rejection(p.run({ op: 'spin', ms: 10_000 }, { onNote }))];
    const waiting = [rejection(p.run({ op: 'echo', value: 1 })), rejection(p.run({ op: 'echo', value: 2 }))];
    await waitFor(() => started === 2, 10_000, 'both tasks to start');
    expect(poolThreads()).to.equal(2);
    const closing = p.close();
    expect(p.close()).to.equal(closing);
    for (const w of waiting) expect(await w).to.be.instanceOf(PoolClosedError);
    await closing;
    expect((await running[0]!).name).to.equal('AbortError');
    // The spinning one did not stop: terminated at the grace.
    expect(await running[1]!).to.be.instanceOf(PoolClosedError);
    expect(p.stats).to.deep.equal({ threads: 0, running: 0, queued: 0 });
    expect(poolThreads(), 'no thread of the pool is left').to.equal(0);
    expect(await rejection(p.run({ op: 'echo', value: 'late' }))).to.be.instanceOf(PoolClosedError);
    expect(() => p.throwIfFull()).to.throw(PoolClosedError);
  });

  it('with nice, its threads run below the main thread (Linux), which keeps its priority', async () => {
    const p = pool({ nice: 7 });
    const base = os.getPriority();
    expect((await p.run({ op: 'nice' })).value).to.equal(Math.min(19, base + 7));
    expect(os.getPriority(), 'the main thread keeps its priority').to.equal(base);
  });

  it('with idleMs, a thread idle that long ends; the next task starts another', async () => {
    const p = pool({ idleMs: 100 });
    const first = (await p.run({ op: 'echo', value: 1 })).threadId;
    await waitFor(() => p.stats.threads === 0, 5000, 'the idle thread to end');
    expect(poolThreads()).to.equal(0);
    const second = await p.run({ op: 'echo', value: 2 });
    expect(second.value).to.equal(2);
    expect(second.threadId).to.not.equal(first);
  });

  it('idle threads do not hold the process open (a process that forgets close() still ends)', async () => {
    const pool = new URL('../../server/work/worker-pool.ts', import.meta.url).href;
    const code = `
      import { WorkerPool } from ${JSON.stringify(pool)};
      const p = new WorkerPool({ name: 'pool-test', script: new URL(${JSON.stringify(SCRIPT.href)}), size: 1, maxQueued: 1, expectedTaskMs: 100 });
      console.log(JSON.stringify(await p.run({ op: 'echo', value: 'ran' })));
    `;
    // A file, not -e: the pool's threads take the process's node options, and --input-type is not for them.
    const dir = await tempDir('pool');
    try {
      const file = path.join(dir.path, 'forgets-close.mjs');
      await fsp.writeFile(file, code);
      const child = spawn(process.execPath, [file], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const [exitCode] = (await once(child, 'exit')) as [number | null];
      clearTimeout(timer);
      expect(out).to.contain('"value":"ran"');
      expect(exitCode, 'it ended by itself').to.equal(0);
    } finally {
      await dir.remove();
    }
  });
});
