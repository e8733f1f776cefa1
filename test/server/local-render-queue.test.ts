// The in-process render queue's retries (unit level: a store and a runner made for the test).
// A failed render waits, four times longer each time, and runs again up to the attempt limit;
// what is left waiting when the queue closes stays `queued` for the next process.
import { expect } from 'chai';
import { pino } from 'pino';
import { LocalRenderQueue, MAX_RETRY_DELAY_MS, retryDelayMs } from '../../server/clips/render-queue.ts';
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
