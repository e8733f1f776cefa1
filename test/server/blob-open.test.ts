// Choosing and opening the blob store from the configuration; the server's
// readiness and metrics with S3 (a real radosgw, test/support/s3.ts).
import { expect } from 'chai';
import { pino } from 'pino';
import { ConfigError, loadConfig, type S3Config } from '../../server/config.ts';
import { Metrics } from '../../server/metrics.ts';
import { LocalBlobStore } from '../../server/store/blob-local.ts';
import { S3BlobStore } from '../../server/store/blob-s3.ts';
import { BlobStoreOpenError, openBlobStore } from '../../server/store/open-blobs.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { StartupError } from '../../server/server.ts';
import { requireComponent } from '../support/components.ts';
import { s3Available, sharedS3, type TestGateway, type TestS3 } from '../support/s3.ts';
import { tempDir } from '../support/temp.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const log = pino({ level: 'silent' });

describe('S3 configuration', () => {
  it('is off without S3_BUCKET, and read whole with it', () => {
    expect(loadConfig({}, '/', false).s3).to.equal(null);
    const c = loadConfig({ S3_BUCKET: 'remix-prod', S3_ENDPOINT: 'http://127.0.0.1:9000', S3_PUBLIC: '1', S3_CACHE_MB: '512', S3_PREFIX: 'tenants/a' }, '/', false);
    expect(c.s3).to.deep.equal({ bucket: 'remix-prod', endpoint: 'http://127.0.0.1:9000', public: true, cacheMb: 512, prefix: 'tenants/a/' });
    expect(loadConfig({ S3_BUCKET: 'remix-prod' }, '/', false).s3).to.deep.equal({ bucket: 'remix-prod', endpoint: null, public: false, cacheMb: 2048, prefix: '' });
  });

  it('refuses what cannot be right, naming the variable', () => {
    const cases: [Record<string, string>, RegExp][] = [
      [{ S3_BUCKET: 'Bad_Bucket' }, /^S3_BUCKET="Bad_Bucket" must be an S3 bucket name/],
      [{ S3_BUCKET: 'ok-bucket', S3_ENDPOINT: 'ftp://x' }, /^S3_ENDPOINT="ftp:\/\/x" must start with http/],
      [{ S3_BUCKET: 'ok-bucket', S3_PUBLIC: 'yes' }, /^S3_PUBLIC="yes" must be 1/],
      [{ S3_BUCKET: 'ok-bucket', S3_CACHE_MB: '1' }, /^S3_CACHE_MB="1" must be at least 16/],
      [{ S3_BUCKET: 'ok-bucket', S3_PREFIX: '../up' }, /^S3_PREFIX="..\/up" must be folder names/],
      [{ S3_ENDPOINT: 'http://127.0.0.1:9000' }, /^S3_ENDPOINT=.* needs S3_BUCKET/],
      [{ S3_PUBLIC: '1' }, /^S3_PUBLIC="1" needs S3_BUCKET/],
    ];
    for (const [env, message] of cases) {
      expect(() => loadConfig(env, '/', false), JSON.stringify(env)).to.throw(ConfigError, message);
    }
  });
});

describe('openBlobStore', function () {
  this.timeout(60_000);
  let s3: TestS3;
  let tmp: { path: string; remove(): Promise<void> };

  before(async function () {
    requireComponent('radosgw', s3Available(), this);
    s3 = await sharedS3();
  });
  beforeEach(async () => {
    tmp = await tempDir('blob-open');
  });
  afterEach(async () => {
    await tmp.remove();
  });

  function s3Config(overrides: Partial<S3Config>): S3Config {
    return { bucket: 'x', endpoint: s3.endpoint, public: false, cacheMb: 64, prefix: '', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, region: s3.region, ...overrides };
  }

  it('opens local files under DATA_DIR without S3_BUCKET', async () => {
    const store = await openBlobStore({ s3: null }, new DataLayout(tmp.path), log, null);
    expect(store).to.be.instanceOf(LocalBlobStore);
    expect(store.kind).to.equal('local');
  });

  it('opens the bucket, keeping its keys under S3_PREFIX, and counts its calls in the metrics', async () => {
    const bucket = await s3.newBucket();
    const metrics = new Metrics({ releaseCount: async () => 0 });
    const store = await openBlobStore({ s3: s3Config({ bucket, prefix: 'inst-a/' }) }, new DataLayout(tmp.path), log, metrics);
    try {
      expect(store).to.be.instanceOf(S3BlobStore);
      await store.putBuffer('renders/x/a.txt', Buffer.from('a'), { contentType: 'text/plain' });
      expect(await store.list('')).to.deep.equal([{ key: 'renders/x/a.txt', size: 1 }]);
      // Another installation's prefix in the same bucket sees nothing of it.
      const other = await openBlobStore({ s3: s3Config({ bucket, prefix: 'inst-b/' }) }, new DataLayout(tmp.path), log, null);
      expect(await other.list('')).to.deep.equal([]);
      await other.close();
      expect(await store.head('renders/x/missing.txt')).to.equal(null);
      const text = await metrics.registry.metrics();
      expect(text).to.match(/remixroom_s3_request_duration_seconds_count\{op="put"\} 1/);
      expect(text).to.match(/remixroom_s3_request_duration_seconds_count\{op="head-bucket"\} 1/);
      // A missing object is an answer, not an error of the store.
      expect(text).not.to.match(/remixroom_s3_errors_total\{/);
    } finally {
      await store.close();
    }
  });

  it('refuses to start on a missing bucket or an unreachable endpoint, with one line naming both', async () => {
    const missing = await openBlobStore({ s3: s3Config({ bucket: 'no-such-bucket-here' }) }, new DataLayout(tmp.path), log, null).then(() => null, (e: unknown) => e);
    expect(missing).to.be.instanceOf(BlobStoreOpenError);
    expect((missing as Error).message).to.include('"no-such-bucket-here"').and.include(s3.endpoint).and.include('no such bucket');
    expect((missing as Error).message).not.to.include('\n');
    const gone = await openBlobStore({ s3: s3Config({ bucket: 'any-bucket', endpoint: 'http://127.0.0.1:9' }) }, new DataLayout(tmp.path), log, null).then(() => null, (e: unknown) => e);
    expect(gone).to.be.instanceOf(BlobStoreOpenError);
    expect((gone as Error).message).to.include('http://127.0.0.1:9').and.include('connection refused');
  });

  it('refuses wrong credentials, saying which variables to check', async () => {
    const bucket = await s3.newBucket();
    const err = await openBlobStore({ s3: s3Config({ bucket, credentials: { accessKeyId: 'WRONGKEY', secretAccessKey: 'wrong' } }) }, new DataLayout(tmp.path), log, null).then(() => null, (e: unknown) => e);
    expect(err).to.be.instanceOf(BlobStoreOpenError);
    expect((err as Error).message, (err as Error).message).to.match(/refused our credentials .*AWS_ACCESS_KEY_ID/);
  });
});

describe('server with S3', function () {
  this.timeout(120_000);
  let s3: TestS3;
  let t: TestServer | null = null;
  let gateway: TestGateway | null = null;

  before(async function () {
    requireComponent('radosgw', s3Available(), this);
    s3 = await sharedS3();
  });
  afterEach(async () => {
    await t?.close();
    await gateway?.stop();
    t = null;
    gateway = null;
  });

  function s3Config(bucket: string, endpoint: string): S3Config {
    return { bucket, endpoint, public: false, cacheMb: 64, prefix: '', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, region: s3.region };
  }

  it('exposes the bucket as server.blobs and checks it in /readyz: not ready while the store is down, ready again after', async () => {
    gateway = await s3.extraGateway();
    const bucket = await s3.newBucket();
    t = await startTestServer({ s3: s3Config(bucket, gateway.endpoint) });
    expect(t.server.blobs.kind).to.equal('s3');
    const up = await fetch(`${t.url}/readyz`);
    expect(up.status).to.equal(200);
    expect(await up.json()).to.deep.equal({ status: 'ready', checks: { store: 'ok', objects: 'ok' } });
    await gateway.stop();
    const down = await fetch(`${t.url}/readyz`);
    expect(down.status).to.equal(503);
    const body = (await down.json()) as { checks: Record<string, string> };
    expect(body.checks['store']).to.equal('ok');
    expect(body.checks['objects']).to.match(/^unreachable: .*connection refused/);
    expect((await fetch(`${t.url}/healthz`)).status).to.equal(200);
    // A file that must come from the bucket: 503 with the reason and Retry-After, not a 500.
    const release = (await (await fetch(`${t.url}/api/releases/remixroom-demo`)).json()) as { artwork: { id: string }[] };
    const art = await fetch(`${t.url}/api/releases/remixroom-demo/artwork/${release.artwork[0]!.id}`);
    expect(art.status).to.equal(503);
    expect(art.headers.get('retry-after')).to.equal('5');
    expect(JSON.stringify(await art.json())).to.include('the file store is unreachable');
    await gateway.restart();
    expect((await fetch(`${t.url}/readyz`)).status).to.equal(200);
    expect(await (await fetch(`${t.url}/metrics`)).text()).to.match(/remixroom_s3_errors_total\{op="head-bucket",code="ECONNREFUSED"\} 1/);
  });

  it('does not start with a bucket it cannot use: a StartupError of one line', async () => {
    const err = await startTestServer({ s3: s3Config('missing-bucket-x', s3.endpoint) }).then(
      async (started) => {
        await started.close();
        return null;
      },
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(StartupError);
    expect((err as Error).message).to.match(/^cannot use the object store \(bucket "missing-bucket-x" at http:\/\/127\.0\.0\.1:\d+\): no such bucket/);
  });
});
