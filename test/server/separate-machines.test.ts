// Nodes as on separate machines: no shared DATA_DIR. Every `node server/main.ts`, the
// renderer and the ingest run with an empty DATA_DIR of their own; what they share is
// what separate machines share: a real PostgreSQL (DATABASE_URL), a real redis-server
// (REDIS_URL: scale-out bridge, leases, render queue) and Ceph's radosgw (S3_*). Each
// piece is tested on its own elsewhere (pg-server, scaleout, blob-release, render-queue);
// this suite proves they add up to nodes that need nothing from one another's disk. Per
// SFU adapter (test/support/sfu-adapters.ts): a listener hears the room through its node's SFU.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { pino } from 'pino';
import { createClient, type RedisClientType } from 'redis';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { MIN_CLIP_SEC, type ClipView } from '../../server/clips/clip-service.ts';
import type { SignedManifest } from '../../server/clips/manifest.ts';
import type { ClipResult } from '../../server/clips/render-job.ts';
import { PgStore } from '../../server/store/pg-store.ts';
import { requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterEnv, adapterLogLine, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { freshDatabase, postgresAvailable } from '../support/postgres.ts';
import { redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { writeFixtureRelease } from '../support/release-fixture.ts';
import { api, connectMember, joinAs, openRoom, stemMap, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { s3Available, sharedS3, type TestS3 } from '../support/s3.ts';
import { REPO_ROOT, spawnServer, type ServerProcess } from '../support/server-process.ts';
import { tempDir } from '../support/temp.ts';
import { listenToRoom } from '../support/werift-listener.ts';

interface Node {
  name: string;
  url: string;
  nodeId: string;
  dataDir: string;
  process: ServerProcess;
}

const LEASE_TTL_MS = 3000;
const RELEASE_ID = 'rel-far';
const RENDER_NAMES = ['clip.m4a', 'clip.mp4', 'manifest.json'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');

/** Every file under a folder, relative, sorted (none when the folder does not exist). */
function filesUnder(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return (fs.readdirSync(root, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(root, path.join(e.parentPath, e.name)))
    .sort();
}

async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle("nodes on separate machines: PostgreSQL, Redis and Ceph's S3, no shared DATA_DIR", adapter), function () {
    this.timeout(180_000);
    let redis: TestRedis;
    let admin: RedisClientType;
    let s3: TestS3;
    let s3Client: S3Client;
    let bucket: string;
    let databaseUrl: string;
    let store: PgStore;
    let work: { path: string; remove(): Promise<void> };
    const tokenSecret = crypto.randomBytes(32).toString('hex');
    const nodes: Node[] = [];
    const renderers: ServerProcess[] = [];
    const members: Member[] = [];
    const closers: (() => Promise<void>)[] = [];
    let dirs = 0;
    let a: Node;
    let b: Node;
    // Carried from one test to the next: the clip of test 2 and the room of test 3, for the node started in test 4.
    let clip: { id: string; token: string; videoSha: string } | null = null;
    let killedRoom: { room: OpenedRoom; expected: Record<string, number> } | null = null;

    before(async function () {
      this.timeout(420_000);
      await requireSfuAdapter(adapter, this);
      requireComponent('redis-server', redisAvailable(), this);
      requireComponent('postgresql', postgresAvailable(), this);
      requireComponent('radosgw', s3Available(), this);
      work = await tempDir('separate');
      redis = await startRedis();
      admin = createClient({ url: redis.url });
      await admin.connect();
      s3 = await sharedS3();
      bucket = await s3.newBucket();
      s3Client = new S3Client({ endpoint: s3.endpoint, region: s3.region, forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
      databaseUrl = await freshDatabase('separate');
      // A starts alone: it builds the demo release into PostgreSQL and the bucket; B then finds it there.
      a = await spawnNode('A', 300_000);
      b = await spawnNode('B');
      // The test reads the shared store as a third machine would.
      store = await PgStore.open(databaseUrl, { poolMax: 2, statementTimeoutMs: 5000, connectTimeoutMs: 3000, log: pino({ level: 'silent' }) });
    });

    afterEach(async function () {
      while (members.length) members.pop()!.destroy();
      for (const close of closers.splice(0)) await close();
      if (this.currentTest?.state === 'failed') {
        for (const p of [...nodes.map((n) => ({ name: `node ${n.name}`, process: n.process })), ...renderers.map((r, i) => ({ name: `renderer ${i + 1}`, process: r }))]) {
          const bad = p.process.output().split('\n').filter((l) => /"level":(40|50|60)\b/.test(l));
          if (bad.length) console.log(`--- ${p.name}: warnings and errors ---\n${bad.slice(-30).join('\n')}`);
        }
      }
    });

    after(async () => {
      while (members.length) members.pop()!.destroy();
      for (const close of closers.splice(0)) await close();
      const logDir = process.env['TEST_LOG_DIR'];
      if (logDir) {
        fs.mkdirSync(logDir, { recursive: true });
        // The embedded run keeps its old names; another adapter's run names itself.
        const run = adapter === 'embedded' ? '' : `${adapter}-`;
        for (const n of nodes) fs.writeFileSync(path.join(logDir, `${run}node-${n.name}.log`), n.process.output());
        renderers.forEach((r, i) => fs.writeFileSync(path.join(logDir, `${run}renderer-${i + 1}.log`), r.output()));
      }
      for (const r of renderers) await stopChild(r.child);
      for (const n of nodes) await stopChild(n.process.child);
      await store?.close();
      s3Client?.destroy();
      await admin?.close();
      await redis?.stop();
      await work?.remove();
    });

    /** A new, empty DATA_DIR: the disk of a machine of its own. */
    function newDataDir(name: string): string {
      const dir = path.join(work.path, `${++dirs}-${name}`);
      fs.mkdirSync(dir);
      return dir;
    }

    /** What every process on every machine is told: the shared services, nothing about disks. */
    function sharedEnv(): Record<string, string> {
      return {
        DATABASE_URL: databaseUrl,
        REDIS_URL: redis.url,
        TOKEN_SECRET: tokenSecret,
        S3_BUCKET: bucket,
        S3_ENDPOINT: s3.endpoint,
        S3_PUBLIC: '0',
        S3_CACHE_MB: '256',
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
      };
    }

    async function spawnNode(name: string, startTimeoutMs = 60_000): Promise<Node> {
      const dataDir = newDataDir(`node-${name}`);
      const p = spawnServer({
        ...sharedEnv(),
        PORT: '0',
        DATA_DIR: dataDir,
        RENDER_QUEUE: 'redis',
        ROOM_GRACE_MS: '500',
        ROOM_SAVE_DEBOUNCE_MS: '1500',
        ROOM_LEASE_TTL_MS: String(LEASE_TTL_MS),
        ...adapterEnv(adapter),
      });
      const node: Node = { name, url: '', nodeId: '', dataDir, process: p };
      nodes.push(node);
      const listening = await p.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/, startTimeoutMs);
      // Not the embedded SFU that a server falls back to when mediasoup's worker does not start.
      await p.waitFor(adapterLogLine(adapter), 1000);
      node.url = listening.slice(listening.indexOf('http'));
      const bridge = await p.waitFor(/"nodeId":"[^"]+"[^\n]*scale-out bridge connected/);
      node.nodeId = /"nodeId":"([^"]+)"/.exec(bridge)![1]!;
      return node;
    }

    async function startRenderer(): Promise<{ id: string; process: ServerProcess; dataDir: string }> {
      const dataDir = newDataDir('renderer');
      const p = spawnServer({ ...sharedEnv(), DATA_DIR: dataDir, RENDER_QUEUE: 'redis', RENDER_VIDEO: '640x360@30', RENDER_CONCURRENCY: '1' }, 'server/renderer-main.ts');
      renderers.push(p);
      const started = await p.waitFor(/"rendererId":"[^"]+"[^\n]*renderer started/, 60_000);
      return { id: /"rendererId":"([^"]+)"/.exec(started)![1]!, process: p, dataDir };
    }

    async function member(node: Node, room: OpenedRoom, role: 'remixer' | 'listener', name: string): Promise<Member> {
      const { token } = await joinAs(node.url, room, role, name);
      const m = await connectMember(node.url, room.roomId, token);
      members.push(m);
      return m;
    }

    const play = (m: Member) => m.doc.transact(() => (m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
    const leaseHolder = (roomId: string) => admin.get(`remixroom:room:${roomId}:lease`);
    /** The last fencing token the node took for the room, from its log. */
    const fenceTaken = (node: Node, roomId: string): number | null => {
      const m = [...node.process.output().matchAll(new RegExp(`"roomId":"${roomId}"[^\\n]*"fence":(\\d+)[^\\n]*fencing token taken`, 'g'))].at(-1);
      return m ? Number(m[1]) : null;
    };

    async function storedGains(roomId: string, stems: readonly string[]): Promise<Record<string, unknown>> {
      const record = await store.getRoom(roomId);
      const doc = new Y.Doc();
      if (record?.doc) Y.applyUpdate(doc, record.doc);
      const gains = Object.fromEntries(stems.map((s) => [s, (doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>> | undefined)?.get(s)?.get('gainDb')]));
      doc.destroy();
      return gains;
    }

    async function bucketKeys(prefix = ''): Promise<string[]> {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await s3Client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        keys.push(...(page.Contents ?? []).map((o) => o.Key!));
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    }

    async function download(node: Node, link: string): Promise<Buffer> {
      const res = await fetch(node.url + link);
      const body = Buffer.from(await res.arrayBuffer());
      expect(res.status, `${link} from node ${node.name}: ${body.toString('utf8', 0, 200)}`).to.equal(200);
      expect(body.length, `${link} from node ${node.name}`).to.be.above(0);
      return body;
    }

    it('a release ingested by a third process with its own DATA_DIR is listed and playable on both nodes', async function () {
      const folder = path.join(work.path, 'release-src');
      await writeFixtureRelease(folder, { id: RELEASE_ID });
      const ingestDir = newDataDir('ingest');
      const child = spawn(process.execPath, ['server/catalog/ingest-cli.ts', folder], {
        cwd: REPO_ROOT,
        env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...sharedEnv(), DATA_DIR: ingestDir, VISUAL_MODEL_TRAIN: 'off' },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c));
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      expect(code, stderr).to.equal(0);
      expect(stdout).to.match(new RegExp(`^ingested "Fixture" by Test Artist as ${RELEASE_ID}`));
      expect(filesUnder(path.join(ingestDir, 'releases')), "nothing under the ingest's DATA_DIR/releases").to.deep.equal([]);
      expect((await bucketKeys(`releases/${RELEASE_ID}/`)).some((k) => k.endsWith('/stems/drums.wav'))).to.equal(true);

      for (const node of [a, b]) {
        const listed = await api<{ releases: { id: string }[] }>(node.url, 'GET', '/api/releases');
        expect(listed.status).to.equal(200);
        expect(listed.body.releases.map((r) => r.id), `on node ${node.name}`).to.include(RELEASE_ID);
      }

      // A room on B; a remixer on B starts it playing; a listener on A hears it, mixed by A from its own cache.
      const room = await openRoom(b.url, { releaseId: RELEASE_ID });
      const remi = await member(b, room, 'remixer', 'Remi');
      play(remi);
      const { token } = await joinAs(a.url, room, 'listener', 'Lee');
      const lee = await listenToRoom(a.url, room.roomId, token);
      closers.push(() => lee.close());
      await eventually(() => lee.heard.length > 40, 30_000, 'the stream from node A');
      await eventually(() => lee.peakDbOver(500) > -50, 15_000, 'the fixture tones, mixed by node A');
      const heardDb = lee.peakDbOver(500);
      const onA = await api<{ live: boolean; listeners: number }>(a.url, 'GET', `/api/rooms/${room.roomId}`);
      expect(onA.body).to.include({ live: true, listeners: 1 });
      // A read the stems from the bucket into its cache; neither node has a release folder of it.
      const cachedOnA = filesUnder(a.dataDir).filter((f) => f.includes(RELEASE_ID));
      expect(cachedOnA.filter((f) => /stems\/drums\.wav$/.test(f)), cachedOnA.join('\n')).to.have.length(1);
      expect(cachedOnA.every((f) => f.startsWith(`blob-cache${path.sep}`)), cachedOnA.join('\n')).to.equal(true);
      for (const node of [a, b]) expect(fs.existsSync(path.join(node.dataDir, 'releases', RELEASE_ID)), `node ${node.name}`).to.equal(false);
      this.test!.title += ` (heard ${heardDb.toFixed(1)} dBFS)`;
    });

    it('a clip committed on one node is rendered by a renderer with its own empty DATA_DIR and downloaded from the other node', async () => {
      const room = await openRoom(b.url);
      const { token } = await joinAs(b.url, room, 'remixer', 'Remi');
      const remi = await connectMember(b.url, room.roomId, token);
      members.push(remi);
      play(remi);
      const renderer = await startRenderer();
      // A clip is at least MIN_CLIP_SEC long: let the room on B record that much.
      await sleep(MIN_CLIP_SEC * 1000 + 500);
      const res = await fetch(`${b.url}/api/rooms/${room.roomId}/clips`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'separate-1' },
        body: JSON.stringify({ seconds: MIN_CLIP_SEC }),
      });
      const committed = (await res.json()) as ClipView;
      expect(res.status, JSON.stringify(committed)).to.equal(202);
      const clipId = committed.clipId;

      // Followed and downloaded through node A, which neither took the commit nor rendered it.
      let view = null as ClipView | null;
      await eventually(async () => {
        const r = await api<ClipView>(a.url, 'GET', `/api/clips/${clipId}`, undefined, token);
        expect(r.status, JSON.stringify(r.body)).to.equal(200);
        view = r.body;
        return view.status === 'done' || view.status === 'failed';
      }, 150_000, 'the clip to be rendered');
      const done = view!;
      expect(done.status, `${JSON.stringify(done)}\n${renderer.process.output().split('\n').filter((l) => l.includes(clipId)).join('\n')}`).to.equal('done');
      expect((await store.getRender(clipId))!.result as ClipResult, 'rendered by the renderer process').to.deep.include({ renderedBy: renderer.id });
      const video = await download(a, done.downloads!.video!);
      const audio = await download(a, done.downloads!.audio!);
      const signed = JSON.parse((await download(a, done.downloads!.manifest!)).toString('utf8')) as SignedManifest;
      expect(video.toString('latin1', 4, 8), 'an MP4 begins with its ftyp box').to.equal('ftyp');
      expect(audio.toString('latin1', 4, 8), 'an M4A begins with its ftyp box').to.equal('ftyp');
      expect(signed.manifest.renderId).to.equal(clipId);
      expect(signed.manifest.files!.map((f) => f.sha256).sort()).to.deep.equal([sha(video), sha(audio)].sort());

      // The bytes came through the bucket: the render's objects are there, and no DATA_DIR has them outside its cache.
      const keys = (await bucketKeys()).filter((k) => k.includes(clipId));
      expect(keys.map((k) => path.posix.basename(k)).sort(), keys.join('\n')).to.include.members(RENDER_NAMES);
      for (const [who, dir] of [['node A', a.dataDir], ['node B', b.dataDir], ['the renderer', renderer.dataDir]] as const) {
        const held = filesUnder(dir).filter((f) => f.includes(clipId));
        expect(held.filter((f) => !f.startsWith(`blob-cache${path.sep}`)), `${who} holds the render's files outside its cache`).to.deep.equal([]);
        expect(filesUnder(path.join(dir, 'renders')), `${who}'s DATA_DIR/renders`).to.deep.equal([]);
      }
      expect(filesUnder(b.dataDir).filter((f) => f.includes(clipId)), 'node B never touched the files').to.deep.equal([]);
      clip = { id: clipId, token, videoSha: sha(video) };
    });

    it('loses nothing any member saw applied when node A is SIGKILLed', async () => {
      const room = await openRoom(a.url);
      const tokens = await Promise.all(['Ana', 'Abe'].map((n) => joinAs(a.url, room, 'remixer', n)));
      const onA1 = await connectMember(a.url, room.roomId, tokens[0]!.token);
      const onA2 = await connectMember(a.url, room.roomId, tokens[1]!.token);
      members.push(onA1, onA2);
      await eventually(async () => (await leaseHolder(room.roomId)) === a.nodeId, 5000, 'A to take the lease');
      await eventually(() => fenceTaken(a, room.roomId) !== null, 5000, 'A to take a fencing token');
      const onB = await member(b, room, 'remixer', 'Bo');
      // Each member moves its own fader, again and again; `last` is what each wrote last.
      const writers = [
        { m: onA1, stem: 'drums', last: 0, offline: 0 },
        { m: onA2, stem: 'bass', last: 0, offline: 0 },
        { m: onB, stem: 'lead', last: 0, offline: 0 },
      ];
      let killed = false;
      let step = 0;
      const edits = setInterval(() => {
        step++;
        for (const w of writers) {
          w.last = -((step % 100) * 0.5 + 0.5);
          stemMap(w.m.doc, w.stem).set('gainDb', w.last);
          if (killed && w.m !== onB) w.offline++;
        }
      }, 25);
      try {
        await sleep(800);
        a.process.child.kill('SIGKILL');
        await a.process.exited;
        killed = true;
        await sleep(300);
        // Behind a load balancer, A's members reconnect to B: a new provider on the same document.
        for (const [i, m] of [onA1, onA2].entries()) {
          m.provider.destroy();
          const provider = new WebsocketProvider(b.url.replace(/^http/, 'ws') + '/sync', room.roomId, m.doc, {
            params: { token: tokens[i]!.token },
            disableBc: true,
            maxBackoffTime: 500,
          });
          m.provider = provider;
          members.push({ ...m, provider, destroy: () => provider.destroy() });
          await waitFor(() => provider.synced, 10_000, 'the member to sync with B');
        }
        await sleep(500);
      } finally {
        clearInterval(edits);
      }
      expect(writers[0]!.offline, 'edits made while A was dead').to.be.greaterThan(0);
      const expected = Object.fromEntries(writers.map((w) => [w.stem, w.last]));
      for (const w of writers) {
        for (const other of writers) {
          await waitFor(() => stemMap(w.m.doc, other.stem).get('gainDb') === other.last, 5000, `every member to hold ${other.stem}'s last value`);
        }
      }
      // B holds all of it: a fresh member on B sees every member's last edit.
      const late = await member(b, room, 'remixer', 'Lu');
      for (const w of writers) expect(stemMap(late.doc, w.stem).get('gainDb'), w.stem).to.equal(w.last);
      // B takes the lease once A's has expired, with a newer fencing token, and PostgreSQL holds every last edit.
      await eventually(async () => (await leaseHolder(room.roomId)) === b.nodeId, LEASE_TTL_MS * 2 + 2000, 'B to take the lease');
      await eventually(() => (fenceTaken(b, room.roomId) ?? 0) > (fenceTaken(a, room.roomId) ?? Infinity), 5000, 'B to take a newer fencing token than A had');
      await eventually(async () => {
        const g = await storedGains(room.roomId, Object.keys(expected));
        return Object.entries(expected).every(([stem, v]) => g[stem] === v);
      }, 10_000, 'PostgreSQL to hold every last edit');
      killedRoom = { room, expected };
    });

    it('a new node started with an empty DATA_DIR serves an existing room and its clip', async function () {
      if (!killedRoom || !clip) throw new Error('needs the room of the SIGKILL test and the clip of the render test (run the whole file)');
      const c = await spawnNode('C');
      expect(filesUnder(path.join(c.dataDir, 'releases')), "C's DATA_DIR/releases").to.deep.equal([]);
      const { room, expected } = killedRoom;
      const cy = await member(c, room, 'remixer', 'Cy');
      for (const [stem, v] of Object.entries(expected)) expect(stemMap(cy.doc, stem).get('gainDb'), stem).to.equal(v);
      // The clip, rendered elsewhere and first served by A (dead now), is followed and downloaded through C.
      const r = await api<ClipView>(c.url, 'GET', `/api/clips/${clip.id}`, undefined, clip.token);
      expect(r.status, JSON.stringify(r.body)).to.equal(200);
      expect(r.body.status).to.equal('done');
      const video = await download(c, r.body.downloads!.video!);
      expect(sha(video)).to.equal(clip.videoSha);
      expect(filesUnder(path.join(c.dataDir, 'renders')), "C's DATA_DIR/renders").to.deep.equal([]);
    });
  });
}
