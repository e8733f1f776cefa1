// The Redis render queue with real parts: a real redis-server, a server process
// (`node server/main.ts`, REDIS_URL set, so RENDER_QUEUE defaults to redis and
// the server renders nothing itself) and renderer processes
// (`node server/renderer-main.ts`) sharing its DATA_DIR, and Debian's ffmpeg.
// The queue's Lua steps are tested on their own against the same redis-server.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { createClient, type RedisClientType } from 'redis';
import { io, type Socket } from 'socket.io-client';
import type * as Y from 'yjs';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import type { ClipResult } from '../../server/clips/render-job.ts';
import type { SignedManifest } from '../../server/clips/manifest.ts';
import { pino } from 'pino';
import { DEFAULT_PREFIX, RedisJobQueue } from '../../server/clips/redis-job-queue.ts';
import { RedisRenderQueue } from '../../server/clips/redis-render-queue.ts';
import { RenderWorker } from '../../server/clips/redis-render-worker.ts';
import type { RenderFiles } from '../../server/clips/render-files.ts';
import { newRenderId, type RenderHooks } from '../../server/clips/render-job.ts';
import { stageAndCommit } from '../../server/clips/render-runner.ts';
import { BlobStoreUnavailableError } from '../../server/store/blob-store.ts';
import type { RenderRecord } from '../../server/store/store.ts';
import { loadConfig } from '../../server/config.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { ClientToServerEvents, RenderProgress, ServerToClientEvents } from '../../shared/socket-events.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { api, connectMember, joinAs, masterMap, openRoom, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';
import { tempDir } from '../support/temp.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;
const LEASE_MS = 2000;
const MAX_ATTEMPTS = 3;
/** Wait before a failed render runs again (then 4x, 16x): short here, so that the attempts fit a test. */
const RETRY_MS = 200;
const VIDEO = { width: 640, height: 360, fps: 30 };

interface Renderer {
  id: string;
  process: ServerProcess;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Occurrences of a pattern in a process's log. */
const count = (p: ServerProcess, re: RegExp) => (p.output().match(new RegExp(re.source, 'g')) ?? []).length;
/** A process's log lines about one render (for assertion messages). */
const related = (p: ServerProcess, id: string) => p.output().split('\n').filter((l) => l.includes(id)).join('\n');

describe('render queue: configuration and a renderer started wrong', function () {
  this.timeout(30_000);
  const url = 'redis://127.0.0.1:6390';

  it('RENDER_QUEUE: redis by default with REDIS_URL, local without; redis without REDIS_URL is refused', () => {
    expect(loadConfig({}).renderQueue).to.equal('local');
    expect(loadConfig({ REDIS_URL: url }).renderQueue).to.equal('redis');
    expect(loadConfig({ REDIS_URL: url, RENDER_QUEUE: 'local' }).renderQueue).to.equal('local');
    expect(() => loadConfig({ RENDER_QUEUE: 'redis' })).to.throw(/RENDER_QUEUE="redis" needs REDIS_URL/);
    expect(() => loadConfig({ RENDER_QUEUE: 'bullmq' })).to.throw(/^RENDER_QUEUE="bullmq" must be local or redis/);
    expect(() => loadConfig({ RENDER_LEASE_MS: '10' })).to.throw(/^RENDER_LEASE_MS=/);
    expect(() => loadConfig({ RENDER_CONCURRENCY: '0' })).to.throw(/^RENDER_CONCURRENCY=/);
    expect(loadConfig({ RENDER_CONCURRENCY: '3', RENDER_MAX_ATTEMPTS: '5' })).to.include({ renderConcurrency: 3, renderMaxAttempts: 5, renderLeaseMs: 15_000 });
  });

  it('a renderer without REDIS_URL, or told RENDER_QUEUE=local, says why and exits', async () => {
    const dir = await tempDir('renderer');
    try {
      for (const [env, why] of [
        [{}, /set REDIS_URL/],
        [{ REDIS_URL: url, RENDER_QUEUE: 'local', TOKEN_SECRET: 'x'.repeat(32) }, /RENDER_QUEUE=local/],
        [{ REDIS_URL: url }, /TOKEN_SECRET must be set/],
      ] as const) {
        const p = spawnServer({ DATA_DIR: dir.path, ...env }, 'server/renderer-main.ts');
        expect((await p.exited).code).to.equal(1);
        expect(p.stderr()).to.match(why);
      }
    } finally {
      await dir.remove();
    }
  });
});

describe('render queue: the job steps (Lua) against a real redis-server', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let client: RedisClientType;
  let q: RedisJobQueue;

  before(async function () {
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await redis?.stop();
  });
  beforeEach(async () => {
    await client.flushAll();
    q = new RedisJobQueue(client, 'test:q:');
  });

  it('queues a render once, however often it is queued', async () => {
    expect(await q.enqueue('a')).to.equal(true);
    expect(await q.enqueue('a')).to.equal(false);
    expect(await q.pending()).to.deep.equal(['a']);
    expect(await q.job('a')).to.deep.equal({ attempts: 0, renderer: null, waits: 0 });
  });

  it('a claim gives a job to one renderer, with a lease; the others get nothing, cannot renew or complete it', async () => {
    await q.enqueue('a');
    expect(await q.claim('r1', 5000)).to.deep.equal({ id: 'a', attempts: 1 });
    expect(await q.claim('r2', 5000)).to.equal(null);
    expect(await q.active()).to.deep.equal({ a: 'r1' });
    expect(await q.renew('r2', 5000, ['a'])).to.deep.equal(['a']);
    expect(await q.renew('r1', 5000, ['a'])).to.deep.equal([]);
    expect(await q.complete('a', 'r2')).to.equal(false);
    expect(await q.reap(), 'a live lease is not reaped').to.deep.equal([]);
    expect(await q.complete('a', 'r1')).to.equal(true);
    expect(await q.job('a')).to.equal(null);
    expect(await q.active()).to.deep.equal({});
    // Gone from the queue, it can be queued again.
    expect(await q.enqueue('a')).to.equal(true);
  });

  it('a lease that runs out is reaped: the job goes back to run next, counting attempts; the old holder has lost it', async () => {
    await q.enqueue('a');
    await q.enqueue('b');
    expect(await q.claim('r1', 200)).to.deep.include({ id: 'a' });
    await sleep(400);
    expect(await q.reap()).to.deep.equal([{ id: 'a', renderer: 'r1' }]);
    expect(await q.reap()).to.deep.equal([]);
    expect(await q.renew('r1', 5000, ['a']), 'the dead renderer lost it').to.deep.equal(['a']);
    expect(await q.claim('r2', 5000), 'ahead of b, which waited less').to.deep.equal({ id: 'a', attempts: 2 });
    expect(await q.complete('a', 'r1')).to.equal(false);
    expect(await q.complete('a', 'r2')).to.equal(true);
    expect(await q.claim('r2', 5000)).to.deep.equal({ id: 'b', attempts: 1 });
  });

  it('a job handed back goes to the front, its attempt refunded or counted', async () => {
    await q.enqueue('a');
    await q.enqueue('b');
    await q.claim('r1', 5000);
    expect(await q.release('a', 'r2', { front: true, refund: true }), 'not r2 to hand back').to.equal(false);
    expect(await q.release('a', 'r1', { front: true, refund: true })).to.equal(true);
    expect(await q.claim('r2', 5000)).to.deep.equal({ id: 'a', attempts: 1 });
    expect(await q.release('a', 'r2', { front: false, refund: false })).to.equal(true);
    expect(await q.claim('r2', 5000), 'a went last').to.deep.equal({ id: 'b', attempts: 1 });
    expect(await q.claim('r2', 5000)).to.deep.equal({ id: 'a', attempts: 2 });
  });

  it('a failed job handed back with a delay waits it out, then runs ahead of the others; counts say where each job is', async () => {
    await q.enqueue('a');
    await q.enqueue('b');
    await q.claim('r1', 5000);
    expect(await q.counts()).to.deep.equal({ queued: 1, running: 1, retrying: 0 });
    expect(await q.release('a', 'r1', { front: false, refund: false, delayMs: 600 })).to.equal(true);
    expect(await q.counts()).to.deep.equal({ queued: 1, running: 0, retrying: 1 });
    expect((await q.delayed()).map((d) => d.id)).to.deep.equal(['a']);
    expect(await q.enqueue('a'), 'still in the queue while it waits').to.equal(false);
    expect(await q.claim('r2', 5000), 'a waits; b runs').to.deep.equal({ id: 'b', attempts: 1 });
    expect(await q.claim('r2', 5000), 'nothing else is due yet').to.equal(null);
    await q.enqueue('c');
    await sleep(800);
    expect(await q.claim('r2', 5000), 'a, due now, goes before c').to.deep.equal({ id: 'a', attempts: 2 });
    expect(await q.delayed()).to.deep.equal([]);
    expect(await q.counts()).to.deep.equal({ queued: 1, running: 2, retrying: 0 });
  });

  it('a job handed back to wait for a store: its attempt refunded, its waits counted, kept out of the queue for the delay', async () => {
    await q.enqueue('a');
    expect(await q.claim('r1', 5000)).to.deep.equal({ id: 'a', attempts: 1 });
    expect(await q.release('a', 'r1', { front: false, refund: true, delayMs: 300, waited: true })).to.equal(true);
    expect(await q.job('a')).to.deep.include({ attempts: 0, waits: 1 });
    expect(await q.claim('r1', 5000), 'still waiting').to.equal(null);
    await sleep(400);
    expect(await q.claim('r1', 5000)).to.deep.equal({ id: 'a', attempts: 1 });
    expect(await q.release('a', 'r1', { front: false, refund: true, delayMs: 1, waited: true })).to.equal(true);
    expect(await q.job('a')).to.deep.include({ attempts: 0, waits: 2 });
  });

  it('leftovers in the pending list (no job, or a job already running) are skipped', async () => {
    await client.lPush('test:q:pending', 'ghost');
    expect(await q.claim('r1', 5000)).to.equal(null);
    await q.enqueue('a');
    await q.claim('r1', 5000);
    await client.lPush('test:q:pending', 'a');
    expect(await q.claim('r2', 5000), 'a is running on r1').to.equal(null);
    expect(await q.active()).to.deep.equal({ a: 'r1' });
  });

  it("a web node's queue: a render done in another process reaches it as `done` (what orders wait for); progress as `progress`; junk is ignored", async () => {
    const dir = await tempDir('rq');
    const store = await SqliteStore.open(path.join(dir.path, 'db.sqlite'));
    const queue = await RedisRenderQueue.create({ redisUrl: redis.url, store, log: pino({ level: 'silent' }), prefix: 'test:web:' });
    try {
      const request = { kind: 'full', orderId: 'ord_1', seconds: 8 };
      const now = new Date().toISOString();
      await store.createRender({ id: 'aaaaaaaaaaaaaaaa', roomId: 'room1', kind: 'full', status: 'queued', request, createdAt: now }, null);
      await store.createRender({ id: 'bbbbbbbbbbbbbbbb', roomId: 'room1', kind: 'full', status: 'queued', request, createdAt: now }, null);
      await store.updateRender('aaaaaaaaaaaaaaaa', { status: 'done', result: { files: {} } });
      const done: RenderRecord[] = [];
      const heard: RenderProgress[] = [];
      queue.on('done', (r) => done.push(r));
      queue.on('progress', (_roomId, p) => heard.push(p));
      const jobs = new RedisJobQueue(client, 'test:web:');
      await client.publish(jobs.eventsChannel, 'not json');
      await client.publish(jobs.eventsChannel, JSON.stringify({ type: 'done', renderId: 'bbbbbbbbbbbbbbbb' }));
      await jobs.publish({ type: 'progress', roomId: 'room1', progress: { clipId: 'aaaaaaaaaaaaaaaa', kind: 'full', status: 'running', progress: 0.5 } });
      await jobs.publish({ type: 'done', renderId: 'aaaaaaaaaaaaaaaa' });
      await waitFor(() => done.length > 0 && heard.length > 0, 5000, 'the messages');
      expect(done.map((r) => r.id), 'a render the store does not have done is not announced').to.deep.equal(['aaaaaaaaaaaaaaaa']);
      expect(done[0]!.request).to.deep.include({ orderId: 'ord_1' });
      expect(heard).to.deep.equal([{ clipId: 'aaaaaaaaaaaaaaaa', kind: 'full', status: 'running', progress: 0.5 }]);
      // Queuing: once; the store's waiting renders are queued on resume, the done one not.
      await queue.enqueue('bbbbbbbbbbbbbbbb');
      await queue.resume();
      expect(await jobs.pending()).to.deep.equal(['bbbbbbbbbbbbbbbb']);
      await jobs.setProgress('bbbbbbbbbbbbbbbb', 0.25, 5000);
      expect(await queue.progressOf('bbbbbbbbbbbbbbbb')).to.equal(0.25);
      expect(await queue.progressOf('aaaaaaaaaaaaaaaa')).to.equal(undefined);
    } finally {
      await queue.close();
      await store.close();
      await dir.remove();
    }
  });

  it('many renderers claiming at once: each job goes to exactly one', async () => {
    const ids = ['j1', 'j2', 'j3', 'j4', 'j5'];
    for (const id of ids) await q.enqueue(id);
    const claims = await Promise.all(Array.from({ length: 20 }, (_, i) => q.claim(`r${i}`, 5000)));
    const got = claims.filter((c) => c !== null).map((c) => c!.id);
    expect(got.sort()).to.deep.equal(ids);
    expect(Object.keys(await q.active()).sort()).to.deep.equal(ids);
  });
});

/** A render row in an in-memory store, for a renderer to take up. */
async function queuedRender(store: SqliteStore): Promise<string> {
  const id = newRenderId();
  await store.createRender({ id, roomId: 'room1', kind: 'clip', status: 'queued', request: { kind: 'clip', seconds: 8 }, createdAt: new Date().toISOString() }, null);
  return id;
}

/** RenderFiles that stage nowhere and note what is committed; `commit` may be made to fail. */
function notedFiles(commit: (renderId: string) => void = () => {}): { files: RenderFiles; committed: string[] } {
  const committed: string[] = [];
  const files = {
    stagingDir: async () => '/nonexistent',
    commit: async (renderId: string) => {
      commit(renderId);
      committed.push(renderId);
    },
  } as unknown as RenderFiles;
  return { files, committed };
}

const stagedNothing = async () => ({ result: { files: {} }, files: [] });

describe('render queue: a renderer (RenderWorker) and a store that cannot be reached, or a job it lost', function () {
  this.timeout(60_000);
  let redis: TestRedis;
  let client: RedisClientType;
  const quiet = pino({ level: 'silent' });

  before(async function () {
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await redis?.stop();
  });
  beforeEach(() => client.flushAll());

  it('S3 down for longer than the attempts: the job waits, its attempts refunded, the room told why; it ends done once S3 is back', async () => {
    const prefix = 'test:down:';
    const store = await SqliteStore.open(':memory:');
    // The first four commits find the object store unreachable (what S3BlobStore throws), with two attempts allowed.
    let commits = 0;
    const { files, committed } = notedFiles(() => {
      if (++commits <= 4) throw new BlobStoreUnavailableError('the object store s3://b/ at http://127.0.0.1:1 cannot be reached (put)', { attempts: 2 });
    });
    const runner = { render: (render: RenderRecord, _signal: AbortSignal, hooks: RenderHooks) => stageAndCommit(files, render.id, stagedNothing, hooks) };
    const worker = await RenderWorker.create({ redisUrl: redis.url, store, log: quiet, runner, concurrency: 1, leaseMs: 2000, maxAttempts: 2, retryBaseMs: 20, prefix });
    const web = await RedisRenderQueue.create({ redisUrl: redis.url, store, log: quiet, prefix });
    const heard: RenderProgress[] = [];
    web.on('progress', (_room, p) => heard.push(p));
    const jobs = new RedisJobQueue(client, prefix);
    try {
      const id = await queuedRender(store);
      await web.enqueue(id);
      await worker.start();
      for (let i = 0; i < 300 && (await store.getRender(id))!.status !== 'done' && (await store.getRender(id))!.status !== 'failed'; i++) await sleep(50);
      const render = (await store.getRender(id))!;
      expect(render.status, heard.map((p) => p.message).join('\n')).to.equal('done');
      expect(commits).to.equal(5);
      expect(committed).to.deep.equal([id]);
      // Each wait gave its attempt back: the one that counted is the one that worked.
      expect(render.result).to.deep.include({ attempts: 1 });
      expect(await jobs.job(id)).to.equal(null);
      await waitFor(() => heard.some((p) => p.status === 'done'), 5000, 'the room to hear it is done');
      const waits = heard.filter((p) => p.status === 'queued').map((p) => p.message);
      expect(waits).to.have.length(4);
      for (const m of waits) expect(m).to.match(/^the file store is unreachable; the render waits and tries again in \d+ s$/);
    } finally {
      await worker.close();
      await web.close();
      await store.close();
    }
  });

  it('a renderer that lost its job (another has it now) keeps none of its files: the commit is refused right before it is made', async () => {
    const prefix = 'test:lost:';
    const store = await SqliteStore.open(':memory:');
    const { files, committed } = notedFiles();
    let finished = false;
    const runner = {
      render: (render: RenderRecord, _signal: AbortSignal, hooks: RenderHooks) =>
        stageAndCommit(
          files,
          render.id,
          async () => {
            // While it rendered, its heartbeat came late and the job went to another renderer.
            await client.hSet(`${prefix}active`, render.id, 'another-renderer');
            return stagedNothing();
          },
          hooks,
        ).finally(() => (finished = true)),
    };
    const worker = await RenderWorker.create({ redisUrl: redis.url, store, log: quiet, runner, concurrency: 1, leaseMs: 2000, maxAttempts: 2, retryBaseMs: 20, prefix });
    const jobs = new RedisJobQueue(client, prefix);
    try {
      const id = await queuedRender(store);
      await jobs.enqueue(id);
      await worker.start();
      await waitFor(() => finished, 10_000, 'the render to end');
      await waitFor(() => worker.running === 0, 5000, 'the renderer to let the job go');
      expect(committed, 'nothing kept').to.deep.equal([]);
      expect((await store.getRender(id))!.status, 'left to the renderer that has it').to.equal('running');
      expect(await jobs.active()).to.deep.equal({ [id]: 'another-renderer' });
    } finally {
      await worker.close();
      await store.close();
    }
  });
});

describe('render queue: a server and renderer processes through a real redis-server', function () {
  this.timeout(180_000);
  let native: NativeFfmpeg | null;
  let redis: TestRedis;
  let client: RedisClientType;
  let jobs: RedisJobQueue;
  let data: { path: string; remove(): Promise<void> };
  let store: SqliteStore;
  let server: ServerProcess;
  let url = '';
  let room: OpenedRoom;
  let member: Member;
  let token: string;
  let socket: Client;
  const progress: RenderProgress[] = [];
  const renderers: Renderer[] = [];
  const tokenSecret = crypto.randomBytes(32).toString('hex');
  let firstClip: ClipView;

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
    jobs = new RedisJobQueue(client, DEFAULT_PREFIX);
    data = await demoDataDir();
    server = spawnServer({ PORT: '0', DATA_DIR: data.path, REDIS_URL: redis.url, TOKEN_SECRET: tokenSecret, RENDER_VIDEO: `${VIDEO.width}x${VIDEO.height}@${VIDEO.fps}` });
    const listening = await server.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/);
    url = listening.slice(listening.indexOf('http'));
    expect(server.output()).to.match(/render queue: Redis/);
    store = await SqliteStore.open(new DataLayout(data.path).database);
    room = await openRoom(url);
    token = (await joinAs(url, room, 'remixer', 'Remi')).token;
    member = await connectMember(url, room.roomId, token);
    socket = io(url, { auth: { roomId: room.roomId, token }, transports: ['websocket'], reconnection: false });
    socket.on('render:progress', (p) => progress.push(p));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    member.doc.transact(() => (member.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
    await sleep(500);
    member.doc.transact(() => masterMap(member.doc).set('reverbMix', 0.3));
    // A clip is at least 8 s: let the room record that much.
    await sleep(8500);
  });

  after(async () => {
    socket?.disconnect();
    member?.destroy();
    for (const r of renderers) await stopChild(r.process.child);
    if (server) await stopChild(server.child);
    await store?.close();
    await client?.close();
    await redis?.stop();
    await data?.remove();
  });

  async function startRenderer(): Promise<Renderer> {
    const p = spawnServer(
      {
        DATA_DIR: data.path,
        REDIS_URL: redis.url,
        TOKEN_SECRET: tokenSecret,
        RENDER_VIDEO: `${VIDEO.width}x${VIDEO.height}@${VIDEO.fps}`,
        RENDER_LEASE_MS: String(LEASE_MS),
        RENDER_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        RENDER_RETRY_MS: String(RETRY_MS),
        RENDER_CONCURRENCY: '1',
      },
      'server/renderer-main.ts',
    );
    const started = await p.waitFor(/"rendererId":"[^"]+"[^\n]*renderer started/);
    const r = { id: /"rendererId":"([^"]+)"/.exec(started)![1]!, process: p };
    renderers.push(r);
    return r;
  }

  async function commit(key: string): Promise<ClipView> {
    const res = await fetch(`${url}/api/rooms/${room.roomId}/clips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': key },
      body: JSON.stringify({ seconds: 8 }),
    });
    const body = (await res.json()) as ClipView;
    expect(res.status, JSON.stringify(body)).to.equal(202);
    return body;
  }

  async function finished(clipId: string, timeoutMs = 120_000): Promise<ClipView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const view = (await api<ClipView>(url, 'GET', `/api/clips/${clipId}`, undefined, token)).body;
      if (view.status === 'done' || view.status === 'failed') return view;
      if (Date.now() > deadline) throw new Error(`the render did not finish: ${JSON.stringify(view)}`);
      await sleep(200);
    }
  }

  async function resultOf(id: string): Promise<ClipResult> {
    return (await store.getRender(id))!.result as ClipResult;
  }

  /** The files as served: an MP4 ffprobe accepts at the size asked, and a manifest naming exactly these bytes. */
  async function checkFiles(view: ClipView): Promise<void> {
    const get = async (u: string) => Buffer.from(await (await fetch(url + u)).arrayBuffer());
    const video = await get(view.downloads!.video!);
    const audio = await get(view.downloads!.audio!);
    const signed = JSON.parse((await get(view.downloads!.manifest!)).toString('utf8')) as SignedManifest;
    const file = path.join(data.path, `check-${view.clipId}.mp4`);
    fs.writeFileSync(file, video);
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]);
    const info = JSON.parse(probe.stdout) as { streams: { codec_name: string; width?: number; height?: number }[]; format: { duration: string } };
    expect(info.streams.map((s) => s.codec_name).sort()).to.deep.equal(['aac', 'h264']);
    expect(info.streams.find((s) => s.codec_name === 'h264')).to.include({ width: VIDEO.width, height: VIDEO.height });
    expect(Number(info.format.duration)).to.be.closeTo(8, 1 / VIDEO.fps + 0.03);
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    expect(signed.manifest.renderId).to.equal(view.clipId);
    expect(signed.manifest.files!.map((f) => f.sha256).sort()).to.deep.equal([sha(video), sha(audio)].sort());
    // Only whole files are left in the render's folder.
    expect(fs.readdirSync(path.join(data.path, 'renders', view.clipId)).sort()).to.deep.equal(['clip.m4a', 'clip.mp4', 'manifest.json']);
  }

  it('with no renderer running a clip stays queued; a renderer that starts renders it, and the room hears it', async () => {
    const clip = await commit('q-1');
    expect(clip.status).to.equal('queued');
    expect(await jobs.pending()).to.deep.equal([clip.clipId]);
    // Nothing takes it (the server renders nothing itself): still queued a moment later, on the API too.
    await sleep(1500);
    const waiting = (await api<ClipView>(url, 'GET', `/api/clips/${clip.clipId}`, undefined, token)).body;
    expect(waiting).to.include({ status: 'queued', progress: 0 });
    expect(server.output()).to.not.match(/"msg":"render done"/);
    const r1 = await startRenderer();
    const view = await finished(clip.clipId);
    expect(view.status, JSON.stringify(view)).to.equal('done');
    expect(view.progress).to.equal(1);
    expect(await resultOf(clip.clipId)).to.deep.include({ renderedBy: r1.id, attempts: 1 });
    expect(count(r1.process, new RegExp(`"renderId":"${clip.clipId}"[^\\n]*"msg":"render done"`))).to.equal(1);
    const mine = progress.filter((p) => p.clipId === clip.clipId);
    expect(mine.some((p) => p.status === 'running' && p.progress > 0), JSON.stringify(mine)).to.equal(true);
    expect(mine.filter((p) => p.status === 'done')).to.have.length(1);
    expect(await jobs.pending()).to.deep.equal([]);
    expect(await jobs.active()).to.deep.equal({});
    await checkFiles(view);
    firstClip = view;
  });

  it('a renderer SIGKILLed mid-job is noticed: the job runs again on another renderer and finishes once', async () => {
    await startRenderer();
    const clip = await commit('q-2');
    await waitFor(() => progress.some((p) => p.clipId === clip.clipId && p.status === 'running' && p.progress > 0), 60_000, 'progress over 0');
    const started = new RegExp(`"renderId":"${clip.clipId}"[^\\n]*"msg":"render started"`);
    const victim = renderers.find((r) => r.process.child.exitCode === null && started.test(r.process.output()))!;
    expect(victim, 'a renderer says it started the job').to.not.equal(undefined);
    victim.process.child.kill('SIGKILL');
    await victim.process.exited;
    const survivor = renderers.find((r) => r !== victim && r.process.child.exitCode === null)!;
    const view = await finished(clip.clipId);
    expect(view.status, JSON.stringify(view)).to.equal('done');
    expect(await resultOf(clip.clipId)).to.deep.include({ renderedBy: survivor.id, attempts: 2 });
    expect(count(victim.process, new RegExp(`"renderId":"${clip.clipId}"[^\\n]*"msg":"render done"`))).to.equal(0);
    expect(count(survivor.process, new RegExp(`"renderId":"${clip.clipId}"[^\\n]*"msg":"render done"`))).to.equal(1);
    expect(survivor.process.output(), related(survivor.process, clip.clipId)).to.match(new RegExp(`"renderId":"${clip.clipId}","deadRenderer":"${victim.id}"[^\\n]*stopped renewing`));
    const mine = progress.filter((p) => p.clipId === clip.clipId);
    expect(mine.filter((p) => p.status === 'done'), 'the room hears of it once').to.have.length(1);
    expect(mine.some((p) => p.status === 'queued'), 'the room hears it was queued again').to.equal(true);
    await checkFiles(view);
    expect(await jobs.job(clip.clipId)).to.equal(null);
  });

  it('a render that keeps failing ends failed after the attempt limit, and the room is told', async () => {
    // A render whose release is gone: every attempt throws.
    const id = crypto.randomBytes(8).toString('hex');
    await store.createRender(
      { id, roomId: room.roomId, kind: 'clip', status: 'queued', request: { kind: 'clip', releaseId: 'no-such-release', seconds: 8, window: { fromMs: 0, toMs: 8000, initial: {}, events: [] }, prompts: [] }, createdAt: new Date().toISOString() },
      null,
    );
    expect(await jobs.enqueue(id)).to.equal(true);
    const view = await finished(id);
    expect(view.status).to.equal('failed');
    expect(await resultOf(id)).to.deep.include({ attempts: MAX_ATTEMPTS });
    const failures = renderers.reduce((n, r) => n + count(r.process, new RegExp(`"renderId":"${id}"[^\\n]*"msg":"clip render failed"`)), 0);
    expect(failures).to.equal(MAX_ATTEMPTS);
    await waitFor(() => progress.some((p) => p.clipId === id && p.status === 'failed'), 10_000, 'the room to hear of the failure');
    const retries = progress.filter((p) => p.clipId === id && p.status === 'queued' && /trying again/.test(p.message ?? ''));
    expect(retries.map((p) => p.message)).to.deep.equal(['the render failed; trying again in 1 s', 'the render failed; trying again in 1 s']);
    // Each retry waited out its delay, four times longer than the one before (0.2 s, then 0.8 s): the
    // attempts' start times (pino's `time`, an ISO time in ms) are at least that far apart.
    const starts = renderers
      .flatMap((r) => r.process.output().split('\n'))
      .filter((l) => l.includes(`"renderId":"${id}"`) && l.includes('"msg":"render started"'))
      .map((l) => Date.parse((JSON.parse(l) as { time: string }).time))
      .sort((a, b) => a - b);
    expect(starts).to.have.length(MAX_ATTEMPTS);
    expect(starts[1]! - starts[0]!).to.be.at.least(RETRY_MS);
    expect(starts[2]! - starts[1]!).to.be.at.least(4 * RETRY_MS);
    expect(await jobs.job(id)).to.equal(null);
  });

  it('bad input to the queue (an unknown render, a malformed id, a render already done) is skipped and logged; the renderer keeps serving', async () => {
    const before = await store.getRender(firstClip.clipId);
    const unknown = crypto.randomBytes(8).toString('hex');
    for (const id of [unknown, '../../secrets', firstClip.clipId]) expect(await jobs.enqueue(id)).to.equal(true);
    await client.publish(jobs.eventsChannel, '{"type":"progress","roomId":');
    const alive = renderers.filter((r) => r.process.child.exitCode === null);
    const logged = (re: RegExp) => alive.some((r) => re.test(r.process.output()));
    await waitFor(
      () =>
        logged(new RegExp(`"renderId":"${unknown}"[^\\n]*the store does not have; skipped`)) &&
        logged(/"renderId":"\.\.\/\.\.\/secrets"[^\n]*not a render id; skipped/) &&
        logged(new RegExp(`"renderId":"${firstClip.clipId}"[^\\n]*already finished; skipped`)),
      20_000,
      'the skips to be logged',
    );
    expect(alive.every((r) => r.process.child.exitCode === null)).to.equal(true);
    expect(await store.getRender(firstClip.clipId)).to.deep.equal(before);
    expect(await jobs.pending()).to.deep.equal([]);
    expect(await jobs.active()).to.deep.equal({});
    expect((await api<ClipView>(url, 'GET', `/api/clips/${firstClip.clipId}`, undefined, token)).body.status).to.equal('done');
    expect(server.output()).to.match(/a message that is not one; ignored/);
  });

  it('SIGTERM mid-job: the renderer hands the job back (its attempt not counted) and exits; another renders it', async () => {
    for (const r of renderers) if (r.process.child.exitCode === null) await stopChild(r.process.child);
    const r = await startRenderer();
    const clip = await commit('q-3');
    await waitFor(() => progress.some((p) => p.clipId === clip.clipId && p.status === 'running' && p.progress > 0), 60_000, 'progress over 0');
    r.process.child.kill('SIGTERM');
    const exit = await r.process.exited;
    expect(exit.code).to.equal(0);
    expect(r.process.output()).to.match(/handed back to the queue/);
    expect((await store.getRender(clip.clipId))!.status).to.equal('queued');
    expect(await jobs.pending()).to.deep.equal([clip.clipId]);
    expect(await jobs.job(clip.clipId), related(r.process, clip.clipId)).to.deep.include({ attempts: 0 });
    const next = await startRenderer();
    const view = await finished(clip.clipId);
    expect(view.status).to.equal('done');
    expect(await resultOf(clip.clipId)).to.deep.include({ renderedBy: next.id, attempts: 1 });
    await checkFiles(view);
  });
});
