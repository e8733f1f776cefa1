// The in-process render queue's retries (unit level: a store and a runner made for the test).
// A failed render waits, four times longer each time, and runs again up to the attempt limit;
// what is left waiting when the queue closes stays `queued` for the next process. A render stopped
// by a store that cannot be reached (S3, PostgreSQL) waits on the same schedule without spending attempts.
import { expect } from 'chai';
import { pino } from 'pino';
import { LocalRenderQueue, MAX_RETRY_DELAY_MS, retryDelayMs, unreachableStoreOf } from '../../server/clips/render-queue.ts';
import { BlobStoreUnavailableError } from '../../server/store/blob-store.ts';
import { StoreBusyError, StoreUnavailableError } from '../../server/store/pg-errors.ts';
import type { RenderRunner } from '../../server/clips/render-runner.ts';
import type { RenderRecord, Store } from '../../server/store/store.ts';
import type { RenderProgress } from '../../shared/socket-events.ts';
import { waitFor } from '../support/room-clients.ts';

const log = pino({ level: 'silent' });

function fakeStore(ids: string[]): { store: Store; rows: Map<string, RenderRecord> } {
  const rows = new Map<string, RenderRecord>();
  for (const id of ids) {
    rows.set(id, { id, roomId: 'room', kind: 'clip', status: 'queued', request: { kind: 'clip', seconds: 8 }, createdAt: new Date().toISOString() } as unknown as RenderRecord);
  }
  const store = {
    getRender: async (id: string) => rows.get(id) ?? null,
    updateRender: async (id: string, patch: Partial<RenderRecord>) => {
      const row = rows.get(id);
      if (row) rows.set(id, { ...row, ...patch });
    },
    listRenders: async (statuses: string[]) => [...rows.values()].filter((r) => statuses.includes(r.status)),
  } as unknown as Store;
  return { store, rows };
}

/** A runner whose renders fail `failures` times each, then succeed; it notes when each attempt started. */
function flakyRunner(failures: number): { runner: RenderRunner; starts: Map<string, number[]> } {
  const starts = new Map<string, number[]>();
  const runner = {
    render: async (render: RenderRecord) => {
      const list = starts.get(render.id) ?? [];
      list.push(performance.now());
      starts.set(render.id, list);
      if (list.length <= failures) throw new Error(`attempt ${list.length} fails`);
      return { files: {} };
    },
  } as unknown as RenderRunner;
  return { runner, starts };
}

describe('the in-process render queue: retries', function () {
  this.timeout(20_000);

  it('waits four times longer before each retry, up to ten minutes', () => {
    expect([1, 2, 3].map((a) => retryDelayMs(5000, a))).to.deep.equal([5000, 20_000, 80_000]);
    expect(retryDelayMs(5000, 9)).to.equal(MAX_RETRY_DELAY_MS);
    expect(retryDelayMs(0, 2)).to.equal(0);
  });

  it('runs a failed render again after its delay, and it ends done; the room hears that it is trying again', async () => {
    const { store, rows } = fakeStore(['a']);
    const { runner, starts } = flakyRunner(2);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 3, retryBaseMs: 100 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('a');
    await waitFor(() => rows.get('a')!.status === 'done', 10_000, 'the render to finish');
    const t = starts.get('a')!;
    expect(t).to.have.length(3);
    // Timers never fire early: the attempts are at least 100 and 400 ms apart.
    expect(t[1]! - t[0]!).to.be.at.least(99);
    expect(t[2]! - t[1]!).to.be.at.least(399);
    expect(heard.filter((p) => p.status === 'queued').map((p) => p.message)).to.deep.equal(['the render failed; trying again in 1 s', 'the render failed; trying again in 1 s']);
    expect(heard.at(-1)).to.deep.include({ status: 'done', progress: 1 });
    expect(await q.counts()).to.deep.equal({ queued: 0, running: 0, retrying: 0 });
    await q.close();
  });

  it('gives up after the attempt limit: the render ends failed, with its attempts, and the room is told', async () => {
    const { store, rows } = fakeStore(['b']);
    const { runner, starts } = flakyRunner(99);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 2, retryBaseMs: 50 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('b');
    await waitFor(() => rows.get('b')!.status === 'failed', 10_000, 'the render to fail');
    expect(starts.get('b')).to.have.length(2);
    expect(rows.get('b')!.result).to.deep.include({ error: 'the render failed', attempts: 2 });
    expect(heard.at(-1)).to.deep.include({ status: 'failed' });
    await q.close();
  });

  it('a render waiting to retry is counted as retrying, is not queued twice, and stays queued in the store when the queue closes', async () => {
    const { store, rows } = fakeStore(['c']);
    const { runner, starts } = flakyRunner(1);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 3, retryBaseMs: 60_000 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('c');
    await waitFor(() => heard.some((p) => p.status === 'queued'), 5000, 'the render to wait for its retry');
    await q.enqueue('c');
    expect(await q.counts()).to.deep.equal({ queued: 0, running: 0, retrying: 1 });
    await q.close();
    expect(rows.get('c')!.status).to.equal('queued');
    expect(starts.get('c')).to.have.length(1);
    expect(await q.counts()).to.deep.equal({ queued: 0, running: 0, retrying: 0 });
  });

  it('a render with nothing ahead of it is already running when enqueue answers; one behind another still waits its turn', async () => {
    const { store, rows } = fakeStore(['d', 'e']);
    let finish!: () => void;
    const runner = { render: () => new Promise((resolve) => (finish = () => resolve({ files: {} }))) } as unknown as RenderRunner;
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('d');
    // What a commit answers right after this: `running`, never "waiting its turn" with nothing queued.
    expect(rows.get('d')!.status).to.equal('running');
    expect(heard.map((p) => p.status)).to.deep.equal(['running']);
    await q.enqueue('e');
    expect(rows.get('e')!.status).to.equal('queued');
    expect(await q.counts()).to.deep.equal({ queued: 1, running: 1, retrying: 0 });
    finish();
    await waitFor(() => rows.get('e')!.status === 'running', 5000, 'the second render to start');
    finish();
    await waitFor(() => rows.get('e')!.status === 'done', 5000, 'the second render to finish');
    await q.close();
  });
});

/** A runner whose renders throw `script[i]` on their i-th attempt ('ok' or past the end: they succeed). */
function scriptedRunner(script: (Error | 'ok')[]): { runner: RenderRunner; starts: number[] } {
  const starts: number[] = [];
  const runner = {
    render: async () => {
      starts.push(performance.now());
      const step = script[starts.length - 1];
      if (step instanceof Error) throw step;
      return { files: {} };
    },
  } as unknown as RenderRunner;
  return { runner, starts };
}

/** What S3BlobStore throws when the gateway is down, as the commit hands it on (wrapped, to test the cause chain). */
const s3Down = () => new Error('committing the render failed', { cause: new BlobStoreUnavailableError('the object store s3://b/ at http://127.0.0.1:1 cannot be reached (put renders/x/clip.mp4)', { attempts: 2 }) });

describe('the in-process render queue: a store that cannot be reached', function () {
  this.timeout(20_000);

  it('tells which store an error (or its cause) says is unreachable, by class or, from a worker thread, by name', () => {
    expect(unreachableStoreOf(s3Down())).to.equal('files');
    expect(unreachableStoreOf(new StoreUnavailableError('connection refused'))).to.equal('database');
    expect(unreachableStoreOf(new StoreBusyError('pool exhausted'))).to.equal('database');
    const cloned = Object.assign(new Error('x'), { name: 'BlobStoreUnavailableError' });
    expect(unreachableStoreOf(cloned)).to.equal('files');
    expect(unreachableStoreOf(new Error('ffmpeg exited with code 1'))).to.equal(null);
    expect(unreachableStoreOf('a string')).to.equal(null);
    expect(unreachableStoreOf(undefined)).to.equal(null);
  });

  it('S3 down for longer than the attempts: the render waits, longer each time, without spending an attempt, and ends done; the room hears why it waits', async () => {
    const { store, rows } = fakeStore(['s']);
    // Four commits fail on an unreachable store with maxAttempts 2; the fifth attempt succeeds.
    const { runner, starts } = scriptedRunner([s3Down(), s3Down(), s3Down(), s3Down(), 'ok']);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 2, retryBaseMs: 20 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('s');
    await waitFor(() => rows.get('s')!.status === 'done' || rows.get('s')!.status === 'failed', 10_000, 'the render to end');
    expect(rows.get('s')!.status).to.equal('done');
    expect(starts).to.have.length(5);
    // The waits grow: 20, 80, 320, 1280 ms (timers never fire early).
    const gaps = starts.slice(1).map((t, i) => t - starts[i]!);
    [20, 80, 320, 1280].forEach((ms, i) => expect(gaps[i], `wait ${i + 1}`).to.be.at.least(ms - 1));
    expect(heard.filter((p) => p.status === 'queued').map((p) => p.message)).to.deep.equal([
      'the file store is unreachable; the render waits and tries again in 1 s',
      'the file store is unreachable; the render waits and tries again in 1 s',
      'the file store is unreachable; the render waits and tries again in 1 s',
      'the file store is unreachable; the render waits and tries again in 2 s',
    ]);
    expect(heard.at(-1)).to.deep.include({ status: 'done', progress: 1 });
    expect(await q.counts()).to.deep.equal({ queued: 0, running: 0, retrying: 0 });
    await q.close();
  });

  it('the waits do not spend attempts, and real failures still do: two waits then two failures end failed after 2 attempts', async () => {
    const { store, rows } = fakeStore(['f']);
    const { runner, starts } = scriptedRunner([s3Down(), new Error('encoder crashed'), s3Down(), new Error('encoder crashed again'), 'ok']);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 2, retryBaseMs: 10 });
    await q.enqueue('f');
    await waitFor(() => rows.get('f')!.status === 'failed' || rows.get('f')!.status === 'done', 10_000, 'the render to end');
    expect(rows.get('f')!.status).to.equal('failed');
    expect(rows.get('f')!.result).to.deep.include({ error: 'the render failed', attempts: 2 });
    expect(starts).to.have.length(4);
    await q.close();
  });

  it('PostgreSQL down: a render whose row cannot be read or marked waits (the database named), and runs once it is back', async () => {
    const { store, rows } = fakeStore(['p']);
    // The database is down for the first three reads of the render and the first mark.
    let reads = 0;
    let marks = 0;
    const getRender = store.getRender.bind(store);
    const updateRender = store.updateRender.bind(store);
    store.getRender = async (id: string) => {
      if (++reads <= 3) throw new StoreUnavailableError('the database cannot be reached (connect ECONNREFUSED)');
      return getRender(id);
    };
    store.updateRender = async (id, patch) => {
      if (patch.status === 'running' && ++marks <= 1) throw new StoreUnavailableError('the database cannot be reached (connect ECONNREFUSED)');
      return updateRender(id, patch);
    };
    const { runner, starts } = scriptedRunner([]);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 1, retryBaseMs: 10 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('p');
    await waitFor(() => rows.get('p')!.status === 'done' || rows.get('p')!.status === 'failed', 10_000, 'the render to end');
    expect(rows.get('p')!.status, 'one attempt allowed, and it was not spent on the outage').to.equal('done');
    expect(starts).to.have.length(1);
    // Only the wait whose render had been read tells the room (the others do not know the room yet).
    expect(heard.filter((p) => p.status === 'queued').map((p) => p.message)).to.deep.equal(['the database is unreachable; the render waits and tries again in 1 s']);
    await q.close();
  });

  it('a render waiting for the store is counted as retrying and stays queued in the store when the queue closes', async () => {
    const { store, rows } = fakeStore(['w']);
    const { runner, starts } = scriptedRunner([s3Down()]);
    const q = new LocalRenderQueue({ store, log, runner, concurrency: 1, maxAttempts: 3, retryBaseMs: 60_000 });
    const heard: RenderProgress[] = [];
    q.on('progress', (_room, p) => heard.push(p));
    await q.enqueue('w');
    await waitFor(() => heard.some((p) => p.status === 'queued'), 5000, 'the render to wait');
    for (let i = 0; i < 100 && (await q.counts()).running > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(await q.counts()).to.deep.equal({ queued: 0, running: 0, retrying: 1 });
    await q.enqueue('w');
    expect(await q.counts(), 'not queued twice while it waits').to.deep.equal({ queued: 0, running: 0, retrying: 1 });
    await q.close();
    expect(rows.get('w')!.status).to.equal('queued');
    expect(starts).to.have.length(1);
  });
});
