// Releases through the object store (a real radosgw): ingest uploads the files
// before it records the release; a node with another, empty DATA_DIR reads them
// into its cache for the live mix, the visuals and the artwork.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { pino } from 'pino';
import { readWavFloat32 } from '../../media/audio/wav.ts';
import { Catalog } from '../../server/catalog/catalog.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { ingestRelease } from '../../server/catalog/ingest.ts';
import { ReleaseFiles, releaseFilesPrefix } from '../../server/catalog/release-files.ts';
import type { S3Config } from '../../server/config.ts';
import { StemCache } from '../../server/live/stem-cache.ts';
import type { BlobStore } from '../../server/store/blob-store.ts';
import { openBlobStore } from '../../server/store/open-blobs.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { Store } from '../../server/store/store.ts';
import { EngineCache } from '../../server/work/engine-cache.ts';
import { requireComponent } from '../support/components.ts';
import { writeFixtureRelease } from '../support/release-fixture.ts';
import { s3Available, sharedS3, type TestS3 } from '../support/s3.ts';
import { REPO_ROOT } from '../support/server-process.ts';
import { tempDir } from '../support/temp.ts';
import { startTestServer } from '../support/test-server.ts';

const log = pino({ level: 'silent' });

describe('releases in S3', function () {
  this.timeout(120_000);
  let s3: TestS3;
  let work: { path: string; remove(): Promise<void> };
  let layoutA: DataLayout;
  let layoutB: DataLayout;
  /** Stands in for the store the nodes share (PostgreSQL at scale). */
  let store: SqliteStore;
  let bucket: string;
  const opened: BlobStore[] = [];

  before(async function () {
    requireComponent('radosgw', s3Available(), this);
    s3 = await sharedS3();
  });
  beforeEach(async () => {
    work = await tempDir('blob-release');
    layoutA = new DataLayout(path.join(work.path, 'node-a'));
    layoutB = new DataLayout(path.join(work.path, 'node-b'));
    await fsp.mkdir(layoutA.root, { recursive: true });
    await fsp.mkdir(layoutB.root, { recursive: true });
    store = await SqliteStore.open(path.join(work.path, 'shared.sqlite'));
    bucket = await s3.newBucket();
  });
  afterEach(async () => {
    for (const b of opened.splice(0)) await b.close();
    await store.close();
    await work.remove();
  });

  function s3Config(): S3Config {
    return { bucket, endpoint: s3.endpoint, public: false, cacheMb: 64, prefix: '', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, region: s3.region };
  }

  async function blobsOf(layout: DataLayout): Promise<BlobStore> {
    const b = await openBlobStore({ s3: s3Config() }, layout, log, null);
    opened.push(b);
    return b;
  }

  async function fixture(name: string, id = 'rel-s3'): Promise<string> {
    const folder = path.join(work.path, name);
    await writeFixtureRelease(folder, { id });
    return folder;
  }

  it('ingest stores every file before the record; a node with an empty DATA_DIR plays the stems, draws the visuals and serves the artwork', async () => {
    const blobsA = await blobsOf(layoutA);
    const folder = await fixture('src');
    // Every upload happens while the release is still unknown to the store.
    const recordSeenDuringUpload: boolean[] = [];
    const watching: BlobStore = Object.assign(Object.create(blobsA) as BlobStore, {
      putFile: async (key: string, file: string, o: { contentType: string }) => {
        recordSeenDuringUpload.push((await store.getRelease('rel-s3')) !== null);
        return blobsA.putFile(key, file, o);
      },
    });
    const { record } = await ingestRelease(folder, { store, layout: layoutA, ffmpeg: null, blobs: watching });
    expect(recordSeenDuringUpload.length).to.be.above(5);
    expect(recordSeenDuringUpload.every((seen) => !seen)).to.equal(true);
    expect(fs.existsSync(layoutA.releaseDir('rel-s3')), 'nothing under node A DATA_DIR/releases').to.equal(false);
    const prefix = releaseFilesPrefix(record);
    const keys = (await blobsA.list('releases/rel-s3/')).map((b) => b.key.slice(prefix.length));
    expect(keys).to.include.members(['stems/drums.wav', 'stems/bass.wav', 'stems/lead.wav', 'artwork/cover.png', 'artwork/waves.jpg', 'release.json', 'analysis.json']);
    expect(keys.some((k) => k.startsWith('visual-pack/'))).to.equal(true);

    // Node B: its own DATA_DIR, empty, and its own cache.
    const blobsB = await blobsOf(layoutB);
    const files = new ReleaseFiles({ store, blobs: blobsB, layout: layoutB, log });
    const stems = new StemCache(files);
    const pcm = await stems.acquire('rel-s3', ['drums', 'bass', 'lead']);
    expect(pcm.map((s) => s.pcm.length)).to.deep.equal([record.frames * 2, record.frames * 2, record.frames * 2]);
    const source = await readWavFloat32(path.join(folder, 'stems', 'drums.wav'));
    let maxDiff = 0;
    for (let i = 0; i < source.interleaved.length; i++) maxDiff = Math.max(maxDiff, Math.abs(source.interleaved[i]! - pcm[0]!.pcm[i]!));
    expect(maxDiff, 'the stem as ingested').to.be.below(1e-4);
    stems.release('rel-s3');
    const engine = await new EngineCache(files).get('rel-s3');
    expect(engine).to.be.an('object');
    const art = await new Catalog(store, layoutB, files).artworkFile('rel-s3', 'cover');
    expect(art?.mimeType).to.equal('image/png');
    expect(sha(await fsp.readFile(art!.path))).to.equal(sha(await fsp.readFile(path.join(folder, 'artwork', 'cover.png'))));
    expect(fs.existsSync(layoutB.releaseDir('rel-s3')), 'node B read through its cache, not DATA_DIR/releases').to.equal(false);
  });

  it('the visual engine (a still, a loop, a render thread) fetches only the visual pack: no stem reaches the cache for it', async () => {
    const { record } = await ingestRelease(await fixture('pack-only'), { store, layout: layoutA, ffmpeg: null, blobs: await blobsOf(layoutA) });
    const files = new ReleaseFiles({ store, blobs: await blobsOf(layoutB), layout: layoutB, log });
    const cached = async () => {
      const all: string[] = [];
      const walk = async (dir: string): Promise<void> => {
        for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
          if (e.isDirectory()) await walk(path.join(dir, e.name));
          else all.push(path.join(dir, e.name));
        }
      };
      await walk(path.join(layoutB.root, 'blob-cache', 'objects'));
      return all.map((f) => f.slice(f.indexOf(`${record.id}/`)));
    };
    expect(await new EngineCache(files).get(record.id)).to.be.an('object');
    const afterEngine = await cached();
    expect(afterEngine.some((f) => f.includes('/visual-pack/'))).to.equal(true);
    expect(afterEngine.filter((f) => f.includes('/stems/'))).to.deep.equal([]);
    // The mixer's stems come when asked for, and only they.
    const folder = await files.open(record.id, 'stems');
    folder.release();
    expect((await cached()).filter((f) => f.includes('/stems/'))).to.have.length(record.stems.length);
    expect((await cached()).some((f) => f.includes('/artwork/'))).to.equal(false);
  });

  it('an ingest whose record fails leaves no files in the bucket; --replace moves to new keys and removes the old ones', async () => {
    const blobs = await blobsOf(layoutA);
    const failing = new Proxy(store, {
      get(target, prop) {
        if (prop === 'putRelease') return async () => { throw new Error('the database went away'); };
        const value = Reflect.get(target, prop, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as Store;
    const err = await ingestRelease(await fixture('one'), { store: failing, layout: layoutA, ffmpeg: null, blobs }).then(() => null, (e: unknown) => e);
    expect((err as Error).message).to.equal('the database went away');
    expect(await blobs.list('releases/')).to.deep.equal([]);
    expect(await store.getRelease('rel-s3')).to.equal(null);

    const first = (await ingestRelease(await fixture('two'), { store, layout: layoutA, ffmpeg: null, blobs })).record;
    await new Promise((r) => setTimeout(r, 5));
    const second = (await ingestRelease(await fixture('three'), { store, layout: layoutA, ffmpeg: null, blobs, replace: true })).record;
    expect(releaseFilesPrefix(second)).not.to.equal(releaseFilesPrefix(first));
    expect(await blobs.list(releaseFilesPrefix(first))).to.deep.equal([]);
    expect((await blobs.list(releaseFilesPrefix(second))).length).to.be.above(5);
    const folder = await new ReleaseFiles({ store, blobs: await blobsOf(layoutB), layout: layoutB, log }).open('rel-s3');
    try {
      expect(folder.dir.endsWith(releaseFilesPrefix(second).slice(0, -1))).to.equal(true);
      expect(fs.existsSync(path.join(folder.dir, 'stems', 'drums.wav'))).to.equal(true);
    } finally {
      folder.release();
    }
  });

  it('npm run ingest with S3_BUCKET, S3_ENDPOINT and the AWS_* variables puts the files in the bucket', async () => {
    const folder = await fixture('cli', 'rel-cli');
    const child = spawn(process.execPath, ['server/catalog/ingest-cli.ts', folder], {
      cwd: REPO_ROOT,
      env: {
        PATH: process.env['PATH'] ?? '',
        DATA_DIR: layoutA.root,
        VISUAL_MODEL_TRAIN: 'off',
        S3_BUCKET: bucket,
        S3_ENDPOINT: s3.endpoint,
        AWS_ACCESS_KEY_ID: s3.accessKeyId,
        AWS_SECRET_ACCESS_KEY: s3.secretAccessKey,
        AWS_REGION: s3.region,
      },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c));
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code, stderr).to.equal(0);
    expect(stderr).to.include(`files into s3://${bucket}/`);
    expect(stdout).to.match(/^ingested "Fixture" by Test Artist as rel-cli/);
    const blobs = await blobsOf(layoutB);
    expect((await blobs.list('releases/rel-cli/')).map((b) => b.key)).to.satisfy((keys: string[]) => keys.some((k) => k.endsWith('/stems/drums.wav')));
    expect(fs.existsSync(path.join(layoutA.root, 'releases', 'rel-cli'))).to.equal(false);
  });

  it('a server with S3 on an empty DATA_DIR puts the demo release in the bucket; another node with only the record serves its artwork from there', async () => {
    const config = { s3: s3Config(), tokenSecret: 'x'.repeat(32) };
    const a = await startTestServer(config, { dataDir: layoutA.root });
    let coverUrl: string;
    let cover: Buffer;
    try {
      expect(fs.existsSync(layoutA.releaseDir(DEMO_RELEASE_ID)), 'no release files under DATA_DIR').to.equal(false);
      const record = await a.server.store.getRelease(DEMO_RELEASE_ID);
      expect((await a.server.blobs.list(releaseFilesPrefix(record!))).length).to.be.above(3);
      const view = (await (await fetch(`${a.url}/api/releases/${DEMO_RELEASE_ID}`)).json()) as { artwork: { url: string }[] };
      coverUrl = view.artwork[0]!.url;
      const res = await fetch(`${a.url}${coverUrl}`);
      expect(res.status).to.equal(200);
      cover = Buffer.from(await res.arrayBuffer());
      expect(cover.length).to.be.above(100);
    } finally {
      await a.close();
    }
    // Node B: the record alone (its store stands in for the shared one), no release files, its own cache.
    await fsp.copyFile(layoutA.database, layoutB.database);
    const b = await startTestServer(config, { dataDir: layoutB.root });
    try {
      expect(fs.existsSync(layoutB.releaseDir(DEMO_RELEASE_ID))).to.equal(false);
      const res = await fetch(`${b.url}${coverUrl}`);
      expect(res.status).to.equal(200);
      expect(sha(Buffer.from(await res.arrayBuffer()))).to.equal(sha(cover));
      const stemId = (await b.server.store.getRelease(DEMO_RELEASE_ID))!.stems[0]!.id;
      const stems = await b.server.live.stems.acquire(DEMO_RELEASE_ID, [stemId]);
      expect(stems[0]!.pcm.length).to.be.above(48_000);
      b.server.live.stems.release(DEMO_RELEASE_ID);
    } finally {
      await b.close();
    }
  });

  it('npm run ingest with a bucket it cannot use changes nothing and says why in one line', async () => {
    const folder = await fixture('cli-bad', 'rel-bad');
    const child = spawn(process.execPath, ['server/catalog/ingest-cli.ts', folder], {
      cwd: REPO_ROOT,
      env: { PATH: process.env['PATH'] ?? '', DATA_DIR: layoutA.root, VISUAL_MODEL_TRAIN: 'off', S3_BUCKET: 'no-such-bucket-at-all', S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c));
    const code = await new Promise<number | null>((r) => child.once('exit', r));
    expect(code).to.equal(1);
    expect(stderr).to.match(/ingest: cannot use the object store \(bucket "no-such-bucket-at-all" at http:\/\/127\.0\.0\.1:\d+\): no such bucket/);
  });
});

function sha(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}
