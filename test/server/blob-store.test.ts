// One contract for the blob store, run against local files and against a real S3
// server (Ceph radosgw, test/support/s3.ts); then the S3 store's cache and faults.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { expect } from 'chai';
import { pino } from 'pino';
import { BlobCache } from '../../server/store/blob-cache.ts';
import { LocalBlobStore } from '../../server/store/blob-local.ts';
import { S3BlobStore, type S3BlobStoreOptions } from '../../server/store/blob-s3.ts';
import { BlobNotFoundError, BlobStoreUnavailableError, InvalidBlobKeyError, type BlobStore } from '../../server/store/blob-store.ts';
import { requireComponent } from '../support/components.ts';
import { s3Available, sharedS3, type TestGateway, type TestS3 } from '../support/s3.ts';
import { tempDir } from '../support/temp.ts';

const log = pino({ level: 'silent' });

interface Harness {
  store: BlobStore;
  dir: string;
  close(): Promise<void>;
}

async function localHarness(): Promise<Harness> {
  const tmp = await tempDir('blobs-local');
  const store = new LocalBlobStore({ root: tmp.path, folders: ['renders', 'releases', 'uploads', 't'] });
  return { store, dir: tmp.path, close: async () => { await store.close(); await tmp.remove(); } };
}

async function s3Harness(s3: TestS3, options: Partial<S3BlobStoreOptions> & { cacheBytes?: number } = {}): Promise<Harness & { store: S3BlobStore; cache: BlobCache }> {
  const tmp = await tempDir('blobs-s3');
  const cache = await BlobCache.create({ dir: path.join(tmp.path, 'cache'), maxBytes: options.cacheBytes ?? 64 * 1024 * 1024, log });
  const store = new S3BlobStore({
    bucket: options.bucket ?? (await s3.newBucket()),
    endpoint: s3.endpoint,
    region: s3.region,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    cache,
    log,
    ...options,
  });
  return { store, cache, dir: tmp.path, close: async () => { await store.close(); await tmp.remove(); } };
}

function sha(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

async function writeFile(dir: string, name: string, data: Buffer): Promise<string> {
  const file = path.join(dir, name);
  await fsp.writeFile(file, data);
  return file;
}

const kinds: { name: string; make: () => Promise<Harness>; needsS3: boolean }[] = [
  { name: 'LocalBlobStore', make: localHarness, needsS3: false },
  { name: 'S3BlobStore on radosgw', make: async () => s3Harness(await sharedS3()), needsS3: true },
];

for (const kind of kinds) {
  describe(`blob store contract: ${kind.name}`, function () {
    this.timeout(120_000);
    let h: Harness;
    let work: { path: string; remove(): Promise<void> };

    before(async function () {
      if (kind.needsS3) requireComponent('radosgw', s3Available(), this);
    });
    beforeEach(async () => {
      h = await kind.make();
      work = await tempDir('blobs-work');
    });
    afterEach(async () => {
      await h?.close();
      await work?.remove();
    });

    it('stores a file and gives back the same bytes: as a local file, a download, and a stream', async () => {
      const data = crypto.randomBytes(300_000);
      await h.store.putFile('renders/r1/clip.mp4', await writeFile(work.path, 'in.mp4', data), { contentType: 'video/mp4' });
      const local = await h.store.localFile('renders/r1/clip.mp4');
      try {
        expect(local.size).to.equal(data.length);
        expect(sha(await fsp.readFile(local.path))).to.equal(sha(data));
      } finally {
        local.release();
      }
      const dest = path.join(work.path, 'out.mp4');
      await h.store.download('renders/r1/clip.mp4', dest);
      expect(sha(await fsp.readFile(dest))).to.equal(sha(data));
      const whole = await h.store.read('renders/r1/clip.mp4');
      expect(whole.size).to.equal(data.length);
      expect(whole.length).to.equal(data.length);
      const chunks: Buffer[] = [];
      for await (const c of whole.stream) chunks.push(c as Buffer);
      expect(sha(Buffer.concat(chunks))).to.equal(sha(data));
    });

    it('serves a byte range of an object', async () => {
      await h.store.putBuffer('renders/r2/clip.txt', Buffer.from('0123456789'), { contentType: 'text/plain' });
      const part = await h.store.read('renders/r2/clip.txt', { start: 2, end: 5 });
      expect(part.length).to.equal(4);
      expect(part.size).to.equal(10);
      expect(await text(part.stream)).to.equal('2345');
      const tail = await h.store.read('renders/r2/clip.txt', { start: 7 });
      expect(await text(tail.stream)).to.equal('789');
    });

    it('a folder is not an object, and a range past the end is a RangeError', async () => {
      await h.store.putBuffer('renders/r9/x/clip.txt', Buffer.from('abc'), { contentType: 'text/plain' });
      expect(await h.store.head('renders/r9/x')).to.equal(null);
      expect(await h.store.read('renders/r9/x').then(() => null, (e: unknown) => e)).to.be.instanceOf(BlobNotFoundError);
      expect(await h.store.localFile('renders/r9/x').then(() => null, (e: unknown) => e)).to.be.instanceOf(BlobNotFoundError);
      expect(await h.store.read('renders/r9/x/clip.txt', { start: 3 }).then(() => null, (e: unknown) => e)).to.be.instanceOf(RangeError);
    });

    it('answers head with the size, and null for a missing object', async () => {
      await h.store.putBuffer('renders/r3/a.png', Buffer.alloc(1234, 1), { contentType: 'image/png' });
      expect((await h.store.head('renders/r3/a.png'))?.size).to.equal(1234);
      expect(await h.store.head('renders/r3/nothing.png')).to.equal(null);
    });

    it('a missing object is a BlobNotFoundError for every way of reading it', async () => {
      for (const attempt of [() => h.store.localFile('renders/none/x.mp4'), () => h.store.read('renders/none/x.mp4'), () => h.store.download('renders/none/x.mp4', path.join(work.path, 'x'))]) {
        const err = await attempt().then(() => null, (e: unknown) => e);
        expect(err).to.be.instanceOf(BlobNotFoundError);
        expect((err as Error).message).to.include('renders/none/x.mp4');
      }
      expect(fs.existsSync(path.join(work.path, 'x'))).to.equal(false);
    });

    it('lists by folder, sorted, with sizes; deletes one object and a whole folder', async () => {
      await h.store.putBuffer('releases/rel1/v1/stems/drums.wav', Buffer.alloc(10), { contentType: 'audio/wav' });
      await h.store.putBuffer('releases/rel1/v1/stems/bass.wav', Buffer.alloc(20), { contentType: 'audio/wav' });
      await h.store.putBuffer('releases/rel1/v1/artwork/cover.png', Buffer.alloc(5), { contentType: 'image/png' });
      await h.store.putBuffer('releases/rel10/v1/stems/bass.wav', Buffer.alloc(1), { contentType: 'audio/wav' });
      expect(await h.store.list('releases/rel1/v1/stems/')).to.deep.equal([
        { key: 'releases/rel1/v1/stems/bass.wav', size: 20 },
        { key: 'releases/rel1/v1/stems/drums.wav', size: 10 },
      ]);
      // A folder prefix does not match a longer name beside it (rel1/ is not rel10/).
      expect((await h.store.list('releases/rel1/')).map((b) => b.key)).to.deep.equal([
        'releases/rel1/v1/artwork/cover.png',
        'releases/rel1/v1/stems/bass.wav',
        'releases/rel1/v1/stems/drums.wav',
      ]);
      expect(await h.store.list('releases/nothing/')).to.deep.equal([]);
      await h.store.delete('releases/rel1/v1/artwork/cover.png');
      await h.store.delete('releases/rel1/v1/artwork/cover.png');
      expect(await h.store.head('releases/rel1/v1/artwork/cover.png')).to.equal(null);
      expect(await h.store.deletePrefix('releases/rel1/')).to.equal(2);
      expect((await h.store.list('')).map((b) => b.key)).to.deep.equal(['releases/rel10/v1/stems/bass.wav']);
    });

    it('an object is replaced whole: a reader gets the old bytes or the new, never a mix', async () => {
      await h.store.putBuffer('uploads/u1/f.bin', Buffer.alloc(1000, 1), { contentType: 'application/octet-stream' });
      await h.store.putBuffer('uploads/u1/f.bin', Buffer.alloc(2000, 2), { contentType: 'application/octet-stream' });
      const r = await h.store.read('uploads/u1/f.bin');
      const chunks: Buffer[] = [];
      for await (const c of r.stream) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).equals(Buffer.alloc(2000, 2))).to.equal(true);
    });

    it('refuses path tricks and malformed keys before touching anything', async () => {
      const bad = ['../secrets.json', 'renders/../../etc/passwd', '/etc/passwd', 'renders//x', 'renders/./x', 'renders/.hidden', 'renders/a\0b', 'renders\\x\\y', 'renders/a b', 'noslash', '', 'renders/x/'];
      for (const key of bad) {
        for (const attempt of [
          () => h.store.putBuffer(key, Buffer.from('x'), { contentType: 'text/plain' }),
          () => h.store.read(key),
          () => h.store.head(key),
          () => h.store.localFile(key),
          () => h.store.delete(key),
        ]) {
          const err = await attempt().then(() => null, (e: unknown) => e);
          expect(err, `key ${JSON.stringify(key)}`).to.be.instanceOf(InvalidBlobKeyError);
        }
      }
      for (const prefix of ['../', 'renders', '/renders/', 'renders/../']) {
        const err = await h.store.list(prefix).then(() => null, (e: unknown) => e);
        expect(err, `prefix ${JSON.stringify(prefix)}`).to.be.instanceOf(InvalidBlobKeyError);
      }
      expect(await h.store.deletePrefix('').then(() => null, (e: unknown) => e)).to.be.instanceOf(InvalidBlobKeyError);
      expect(await h.store.list('')).to.deep.equal([]);
    });

    it('stores a 20 MB file (in parts on S3) and gives back the same bytes', async () => {
      const data = crypto.randomBytes(20 * 1024 * 1024 + 12345);
      await h.store.putFile('renders/big/clip.mp4', await writeFile(work.path, 'big.mp4', data), { contentType: 'video/mp4' });
      expect((await h.store.head('renders/big/clip.mp4'))?.size).to.equal(data.length);
      const dest = path.join(work.path, 'big-out.mp4');
      await h.store.download('renders/big/clip.mp4', dest);
      expect(sha(await fsp.readFile(dest))).to.equal(sha(data));
    });

    it(kind.needsS3 ? 'presigns a GET that serves the bytes without credentials, and names the file' : 'answers null for a presigned URL (the node proxies local files)', async () => {
      const data = crypto.randomBytes(5000);
      await h.store.putBuffer('renders/p1/clip.m4a', data, { contentType: 'audio/mp4' });
      const url = await h.store.presignGet('renders/p1/clip.m4a', 60, { fileName: 'my remix.m4a' });
      if (!kind.needsS3) {
        expect(url).to.equal(null);
        return;
      }
      expect(url).to.be.a('string');
      const res = await fetch(url!);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-disposition')).to.include('my remix.m4a');
      expect(sha(Buffer.from(await res.arrayBuffer()))).to.equal(sha(data));
      // The signature covers the key: another key with the same query is refused.
      const forged = url!.replace('renders/p1/clip.m4a', 'renders/p1/other.m4a');
      expect((await fetch(forged)).status).to.equal(403);
    });

    it('answers ping when usable', async () => {
      await h.store.ping();
    });
  });
}

describe('LocalBlobStore under DATA_DIR', () => {
  it('keeps keys inside its folders and away from the database and secrets', async () => {
    const tmp = await tempDir('blobs-dd');
    try {
      await fsp.writeFile(path.join(tmp.path, 'secrets.json'), '{}');
      const store = new LocalBlobStore({ root: tmp.path, folders: ['releases', 'renders', 'uploads'] });
      for (const key of ['tmp/x/y', 'sandbox-payments/a.json', 'secrets.json']) {
        const err = await store.head(key).then(() => null, (e: unknown) => e);
        expect(err, key).to.be.instanceOf(InvalidBlobKeyError);
      }
      await store.putBuffer('renders/r/clip.mp4', Buffer.from('x'), { contentType: 'video/mp4' });
      expect(fs.readFileSync(path.join(tmp.path, 'renders/r/clip.mp4'), 'utf8')).to.equal('x');
      // Nothing staged is left behind, and staging is not listed.
      expect(fs.readdirSync(path.join(tmp.path, 'tmp'))).to.deep.equal([]);
      expect((await store.list('')).map((b) => b.key)).to.deep.equal(['renders/r/clip.mp4']);
    } finally {
      await tmp.remove();
    }
  });
});

describe('S3BlobStore cache', function () {
  this.timeout(120_000);
  let s3: TestS3;

  before(async function () {
    requireComponent('radosgw', s3Available(), this);
    s3 = await sharedS3();
  });

  it('keeps the cache under its size limit, least recently used out, and never evicts a file in use', async () => {
    const h = await s3Harness(s3, { cacheBytes: 250_000 });
    try {
      for (const n of [1, 2, 3]) await h.store.putBuffer(`renders/c/${n}.bin`, Buffer.alloc(100_000, n), { contentType: 'application/octet-stream' });
      (await h.store.localFile('renders/c/1.bin')).release();
      (await h.store.localFile('renders/c/2.bin')).release();
      // 1 used again: 2 is now the least recently used.
      (await h.store.localFile('renders/c/1.bin')).release();
      const held = await h.store.localFile('renders/c/3.bin');
      expect(h.cache.keys()).to.deep.equal(['renders/c/1.bin', 'renders/c/3.bin']);
      expect(h.cache.bytes).to.be.at.most(250_000);
      // 3 is held while 1 and 2 come and go: its file stays.
      (await h.store.localFile('renders/c/2.bin')).release();
      (await h.store.localFile('renders/c/1.bin')).release();
      expect(fs.readFileSync(held.path).equals(Buffer.alloc(100_000, 3))).to.equal(true);
      expect(h.cache.has('renders/c/3.bin')).to.equal(true);
      held.release();
      expect(h.cache.bytes).to.be.at.most(250_000);
      expect(h.cache.downloads).to.equal(5);
    } finally {
      await h.close();
    }
  });

  it('concurrent fetches of one key share one download', async () => {
    const h = await s3Harness(s3);
    try {
      const data = crypto.randomBytes(2 * 1024 * 1024);
      await h.store.putBuffer('renders/s/one.bin', data, { contentType: 'application/octet-stream' });
      const blobs = await Promise.all(Array.from({ length: 8 }, () => h.store.localFile('renders/s/one.bin')));
      expect(h.cache.downloads).to.equal(1);
      expect(new Set(blobs.map((b) => b.path)).size).to.equal(1);
      expect(sha(await fsp.readFile(blobs[0]!.path))).to.equal(sha(data));
      for (const b of blobs) b.release();
    } finally {
      await h.close();
    }
  });

  it('a failed download leaves nothing in the cache, and the next use fetches again', async () => {
    const h = await s3Harness(s3);
    try {
      const err = await h.cache
        .get('renders/f/x.bin', async (tmp) => {
          await fsp.writeFile(tmp, 'half of it');
          throw new Error('connection reset');
        })
        .then(() => null, (e: unknown) => e);
      expect((err as Error).message).to.equal('connection reset');
      expect(h.cache.has('renders/f/x.bin')).to.equal(false);
      expect(h.cache.bytes).to.equal(0);
      const leftovers = await fsp.readdir(path.join(h.dir, 'cache'), { recursive: true });
      expect(leftovers.filter((f) => !['objects', 'tmp'].includes(String(f)))).to.deep.equal([]);
      await h.store.putBuffer('renders/f/x.bin', Buffer.from('whole'), { contentType: 'text/plain' });
      const blob = await h.store.localFile('renders/f/x.bin');
      expect(fs.readFileSync(blob.path, 'utf8')).to.equal('whole');
      blob.release();
    } finally {
      await h.close();
    }
  });

  it('a deleted object leaves the cache too', async () => {
    const h = await s3Harness(s3);
    try {
      await h.store.putBuffer('renders/d/x.bin', Buffer.from('abc'), { contentType: 'text/plain' });
      (await h.store.localFile('renders/d/x.bin')).release();
      expect(h.cache.has('renders/d/x.bin')).to.equal(true);
      await h.store.delete('renders/d/x.bin');
      expect(h.cache.has('renders/d/x.bin')).to.equal(false);
      expect(await h.store.localFile('renders/d/x.bin').then(() => null, (e: unknown) => e)).to.be.instanceOf(BlobNotFoundError);
    } finally {
      await h.close();
    }
  });

  it('a restarted node finds its complete cached files again, and no half-written ones', async () => {
    const h = await s3Harness(s3);
    try {
      await h.store.putBuffer('renders/k/x.bin', Buffer.from('kept'), { contentType: 'text/plain' });
      (await h.store.localFile('renders/k/x.bin')).release();
      await fsp.writeFile(path.join(h.dir, 'cache', 'tmp', 'half'), 'half');
      const again = await BlobCache.create({ dir: path.join(h.dir, 'cache'), maxBytes: 1_000_000, log });
      expect(again.keys()).to.deep.equal(['renders/k/x.bin']);
      expect(await fsp.readdir(path.join(h.dir, 'cache', 'tmp'))).to.deep.equal([]);
    } finally {
      await h.close();
    }
  });
});

describe('S3BlobStore faults', function () {
  this.timeout(120_000);
  let s3: TestS3;
  let gateway: TestGateway | null = null;

  before(async function () {
    requireComponent('radosgw', s3Available(), this);
    s3 = await sharedS3();
  });
  afterEach(async () => {
    await gateway?.stop();
    gateway = null;
  });

  async function storeOnGateway(g: TestGateway, bucket: string, requestTimeoutMs: number, requests?: { op: string; code: string | null }[]) {
    return s3Harness(s3, {
      bucket,
      endpoint: g.endpoint,
      maxAttempts: 3,
      requestTimeoutMs,
      connectTimeoutMs: 1000,
      ...(requests ? { observer: { request: (op, _s, code) => requests.push({ op, code }) } } : {}),
    });
  }

  it('with the gateway stopped, a call fails with a clear BlobStoreUnavailableError after its retries, and works again after a restart', async () => {
    gateway = await s3.extraGateway();
    const bucket = await s3.newBucket();
    const requests: { op: string; code: string | null }[] = [];
    const h = await storeOnGateway(gateway, bucket, 5000, requests);
    try {
      await h.store.putBuffer('renders/g/a.bin', Buffer.from('before'), { contentType: 'text/plain' });
      await gateway.stop();
      const err = await h.store.head('renders/g/a.bin').then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(BlobStoreUnavailableError);
      const e = err as BlobStoreUnavailableError;
      expect(e.attempts).to.equal(3);
      expect(e.message).to.include(gateway.endpoint);
      expect(e.message).to.include(bucket);
      expect(e.message).to.include('connection refused');
      expect(requests.at(-1)).to.deep.equal({ op: 'head', code: 'ECONNREFUSED' });
      const ping = await h.store.ping().then(() => null, (x: unknown) => x);
      expect(ping).to.be.instanceOf(BlobStoreUnavailableError);
      // Nothing was cached from the failed fetch.
      expect(await h.store.localFile('renders/g/a.bin').then(() => null, (x: unknown) => x)).to.be.instanceOf(BlobStoreUnavailableError);
      expect(h.cache.has('renders/g/a.bin')).to.equal(false);
      await gateway.restart();
      expect((await h.store.head('renders/g/a.bin'))?.size).to.equal(6);
      await h.store.ping();
    } finally {
      await h.close();
    }
  });

  it('with the gateway paused, a call times out (retried, then a clear error), and after SIGCONT it answers again', async () => {
    gateway = await s3.extraGateway();
    const bucket = await s3.newBucket();
    const h = await storeOnGateway(gateway, bucket, 800);
    try {
      await h.store.putBuffer('renders/p/a.bin', Buffer.from('paused'), { contentType: 'text/plain' });
      gateway.pause();
      const err = await h.store.head('renders/p/a.bin').then(() => null, (e: unknown) => e);
      expect(err).to.be.instanceOf(BlobStoreUnavailableError);
      expect((err as BlobStoreUnavailableError).attempts).to.equal(3);
      expect((err as Error).message).to.include('no answer in time');
      // A fetch for the cache fails the same way and leaves nothing behind.
      expect(await h.store.localFile('renders/p/a.bin').then(() => null, (x: unknown) => x)).to.be.instanceOf(BlobStoreUnavailableError);
      expect(h.cache.keys()).to.deep.equal([]);
      gateway.resume();
      expect((await h.store.head('renders/p/a.bin'))?.size).to.equal(6);
      const blob = await h.store.localFile('renders/p/a.bin');
      expect(fs.readFileSync(blob.path, 'utf8')).to.equal('paused');
      blob.release();
    } finally {
      await h.close();
    }
  });

  it('a download that stalls halfway is cut off by the idle limit, and nothing half-written is served', async () => {
    gateway = await s3.extraGateway();
    const g = gateway;
    const bucket = await s3.newBucket();
    // The gateway freezes the moment an answer's headers arrive, before most of its 24 MB body.
    let freezeOnGet = false;
    const h = await s3Harness(s3, {
      bucket,
      endpoint: g.endpoint,
      maxAttempts: 2,
      requestTimeoutMs: 1000,
      observer: {
        request: (op) => {
          if (op === 'get' && freezeOnGet) g.pause();
        },
      },
    });
    try {
      const data = crypto.randomBytes(24 * 1024 * 1024);
      await h.store.putBuffer('renders/h/big.bin', data, { contentType: 'application/octet-stream' });
      // A proxied download: the stream breaks off with an error, it does not just end short.
      freezeOnGet = true;
      const { stream } = await h.store.read('renders/h/big.bin');
      let got = 0;
      const streamErr = await (async () => {
        for await (const c of stream) got += (c as Buffer).length;
      })().then(() => null, (e: unknown) => e);
      expect(streamErr, `read ${got} of ${data.length} bytes`).to.be.instanceOf(Error);
      expect(got).to.be.below(data.length);
      g.resume();
      // Into the cache: the same stall fails the fetch and leaves no file.
      const err = await h.store.localFile('renders/h/big.bin').then(() => null, (e: unknown) => e);
      freezeOnGet = false;
      g.resume();
      expect(err).to.be.instanceOf(BlobStoreUnavailableError);
      expect((err as Error).message).to.include('broke off');
      expect(h.cache.has('renders/h/big.bin')).to.equal(false);
      expect(await fsp.readdir(path.join(h.dir, 'cache', 'tmp'))).to.deep.equal([]);
      const blob = await h.store.localFile('renders/h/big.bin');
      expect(sha(await fsp.readFile(blob.path))).to.equal(sha(data));
      blob.release();
    } finally {
      g.resume();
      await h.close();
    }
  });
});
