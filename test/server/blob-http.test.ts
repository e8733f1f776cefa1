// Proxied downloads (sendBlob) over a real HTTP server, from local files and from
// radosgw: whole, ranges, HEAD, 416, missing; a body that breaks off is not
// mistaken for a whole file.
import crypto from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { expect } from 'chai';
import { pino } from 'pino';
import { BlobCache } from '../../server/store/blob-cache.ts';
import { sendBlob, parseRange } from '../../server/store/blob-http.ts';
import { LocalBlobStore } from '../../server/store/blob-local.ts';
import { S3BlobStore } from '../../server/store/blob-s3.ts';
import { BlobNotFoundError, type BlobStore } from '../../server/store/blob-store.ts';
import { requireComponent } from '../support/components.ts';
import { s3Available, sharedS3, type TestGateway } from '../support/s3.ts';
import { tempDir } from '../support/temp.ts';

const log = pino({ level: 'silent' });

describe('parseRange', () => {
  it('reads one range of bytes, and answers the whole object for what it does not understand', () => {
    expect(parseRange(undefined, 10)).to.deep.equal({ kind: 'whole' });
    expect(parseRange('bytes=2-5', 10)).to.deep.equal({ kind: 'range', range: { start: 2, end: 5 } });
    expect(parseRange('bytes=7-', 10)).to.deep.equal({ kind: 'range', range: { start: 7, end: 9 } });
    expect(parseRange('bytes=-3', 10)).to.deep.equal({ kind: 'range', range: { start: 7, end: 9 } });
    expect(parseRange('bytes=-30', 10)).to.deep.equal({ kind: 'range', range: { start: 0, end: 9 } });
    expect(parseRange('bytes=5-100', 10)).to.deep.equal({ kind: 'range', range: { start: 5, end: 9 } });
    expect(parseRange('bytes=10-', 10)).to.deep.equal({ kind: 'unsatisfiable' });
    expect(parseRange('bytes=-0', 10)).to.deep.equal({ kind: 'unsatisfiable' });
    for (const odd of ['bytes=0-1,3-4', 'items=0-1', 'bytes=5-2', 'bytes=-', 'bytes=a-b']) expect(parseRange(odd, 10), odd).to.deep.equal({ kind: 'whole' });
  });
});

const kinds: { name: string; needsS3: boolean }[] = [
  { name: 'LocalBlobStore', needsS3: false },
  { name: 'S3BlobStore on radosgw', needsS3: true },
];

for (const kind of kinds) {
  describe(`sendBlob: ${kind.name}`, function () {
    this.timeout(60_000);
    let tmp: { path: string; remove(): Promise<void> };
    let store: BlobStore;
    let server: http.Server;
    let url: string;
    const data = crypto.randomBytes(100_000);

    before(async function () {
      if (kind.needsS3) requireComponent('radosgw', s3Available(), this);
      tmp = await tempDir('blob-http');
      if (kind.needsS3) {
        const s3 = await sharedS3();
        const cache = await BlobCache.create({ dir: path.join(tmp.path, 'cache'), maxBytes: 10_000_000, log });
        store = new S3BlobStore({ bucket: await s3.newBucket(), endpoint: s3.endpoint, region: s3.region, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, cache, log });
      } else {
        store = new LocalBlobStore({ root: tmp.path });
      }
      await store.putBuffer('renders/h1/clip.mp4', data, { contentType: 'video/mp4' });
      server = http.createServer((req, res) => {
        sendBlob(req, res, store, decodeURIComponent(req.url!.slice(1)), { contentType: 'video/mp4', contentDisposition: 'attachment; filename="clip.mp4"' }).catch((err: unknown) => {
          res.statusCode = err instanceof BlobNotFoundError ? 404 : 503;
          res.end((err as Error).message);
        });
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(async () => {
      server?.close();
      await store?.close();
      await tmp?.remove();
    });

    it('sends the whole object with its length, type and name', async () => {
      const res = await fetch(`${url}/renders/h1/clip.mp4`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-length')).to.equal(String(data.length));
      expect(res.headers.get('content-type')).to.equal('video/mp4');
      expect(res.headers.get('content-disposition')).to.equal('attachment; filename="clip.mp4"');
      expect(res.headers.get('accept-ranges')).to.equal('bytes');
      expect(Buffer.from(await res.arrayBuffer()).equals(data)).to.equal(true);
    });

    it('sends one range as 206, a range past the end as 416, and HEAD without a body', async () => {
      const part = await fetch(`${url}/renders/h1/clip.mp4`, { headers: { range: 'bytes=1000-1999' } });
      expect(part.status).to.equal(206);
      expect(part.headers.get('content-range')).to.equal(`bytes 1000-1999/${data.length}`);
      expect(Buffer.from(await part.arrayBuffer()).equals(data.subarray(1000, 2000))).to.equal(true);
      const tail = await fetch(`${url}/renders/h1/clip.mp4`, { headers: { range: 'bytes=-10' } });
      expect(tail.status).to.equal(206);
      expect(Buffer.from(await tail.arrayBuffer()).equals(data.subarray(data.length - 10))).to.equal(true);
      const past = await fetch(`${url}/renders/h1/clip.mp4`, { headers: { range: `bytes=${data.length}-` } });
      expect(past.status).to.equal(416);
      expect(past.headers.get('content-range')).to.equal(`bytes */${data.length}`);
      const head = await fetch(`${url}/renders/h1/clip.mp4`, { method: 'HEAD' });
      expect(head.status).to.equal(200);
      expect(head.headers.get('content-length')).to.equal(String(data.length));
    });

    it('a missing object is the caller’s 404, before anything is sent', async () => {
      const res = await fetch(`${url}/renders/none/clip.mp4`);
      expect(res.status).to.equal(404);
    });
  });
}

describe('sendBlob when the store stalls halfway', function () {
  this.timeout(60_000);
  let gateway: TestGateway | null = null;

  before(function () {
    requireComponent('radosgw', s3Available(), this);
  });
  after(async () => {
    await gateway?.stop();
  });

  it('aborts the response: the client gets an error, never a short file that looks whole', async () => {
    const s3 = await sharedS3();
    gateway = await s3.extraGateway();
    const g = gateway;
    const tmp = await tempDir('blob-http-stall');
    let freeze = false;
    const cache = await BlobCache.create({ dir: path.join(tmp.path, 'cache'), maxBytes: 10_000_000, log });
    const store = new S3BlobStore({
      bucket: await s3.newBucket(),
      endpoint: g.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      cache,
      log,
      requestTimeoutMs: 1000,
      maxAttempts: 2,
      observer: { request: (op) => void (op === 'get' && freeze && g.pause()) },
    });
    const results: boolean[] = [];
    const server = http.createServer((req, res) => {
      void sendBlob(req, res, store, 'renders/big/clip.mp4', { contentType: 'video/mp4' }).then((complete) => results.push(complete));
    });
    try {
      const data = crypto.randomBytes(24 * 1024 * 1024);
      await store.putBuffer('renders/big/clip.mp4', data, { contentType: 'video/mp4' });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      freeze = true;
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-length')).to.equal(String(data.length));
      const err = await res.arrayBuffer().then(() => null, (e: unknown) => e);
      expect(err, 'the body must fail, not end short').to.be.instanceOf(Error);
      for (let i = 0; i < 100 && results.length === 0; i++) await new Promise((r) => setTimeout(r, 50));
      expect(results, 'sendBlob says the body did not go out whole').to.deep.equal([false]);
    } finally {
      g.resume();
      server.close();
      await store.close();
      await tmp.remove();
    }
  });
});
