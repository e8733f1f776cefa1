// The server side of a release's visual model: training into the blob store (weights,
// then the record), the record's contents and hashes, the HTTP routes, consent
// withdrawal retiring a model, a training killed midway, the shipped demo model and
// the command-line tools. Real training (media/visuals/model/) in a real child
// process, with a tiny budget: a few steps of a small model.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { pino } from 'pino';
import type { Hyperparameters } from '../../media/visuals/model/types.ts';
import { ingestRelease } from '../../server/catalog/ingest.ts';
import { ReleaseFiles } from '../../server/catalog/release-files.ts';
import { VisualModels, type VisualModelCode, type VisualModelsOptions } from '../../server/catalog/visual-models.ts';
import { DEFAULT_STEPS } from '../../media/visuals/model/types.ts';
import { trainInChild } from '../../media/visuals/model/training-process.ts';
import { describeWeights } from '../../media/visuals/model/weights.ts';
import type { VisualModelRecord } from '../../server/catalog/visual-model-record.ts';
import { ConfigError, DEFAULT_VISUAL_MODEL_MIX, configFor, loadConfig } from '../../server/config.ts';
import { RemixroomServer } from '../../server/server.ts';
import type { BlobStore } from '../../server/store/blob-store.ts';
import { openBlobStore } from '../../server/store/open-blobs.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { S3Config } from '../../server/config.ts';
import { requireComponent } from '../support/components.ts';
import { s3Available, sharedS3 } from '../support/s3.ts';
import { REPO_ROOT } from '../support/server-process.ts';
import { writeFixtureRelease, type FixtureOptions } from '../support/release-fixture.ts';
import { tempDir } from '../support/temp.ts';

/** A tiny model: a training of a few steps takes a second or two. */
const TINY: Partial<Hyperparameters> = { levels: [8, 6], code: 4, noise: [4, 2], scales: [[1, 1, 4], [1, 3, 8], [2, 3, 8]], banks: 2, quantiles: 256, batch: 2, crop: 16, trainScale: 32, dilations: [1, 1], margin: 1 };
const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

const sha256 = (b: Uint8Array) => crypto.createHash('sha256').update(b).digest('hex');

const ARTWORK: NonNullable<FixtureOptions['artwork']> = [
  { id: 'cover', width: 128, height: 128 },
  { id: 'waves', width: 160, height: 96, format: 'jpeg' },
  { id: 'sketch', width: 96, height: 96, consent: false },
];

/** A DATA_DIR with a store, its blobs and one ingested fixture release. */
async function harness(work: string, opts: { artwork?: FixtureOptions['artwork']; manifest?: FixtureOptions['manifest'] } = {}) {
  const layout = new DataLayout(path.join(work, 'data'));
  await fsp.mkdir(layout.tmpDir, { recursive: true });
  const store = await SqliteStore.open(layout.database);
  const blobs = await openBlobStore({ s3: null }, layout, log, null);
  const folder = path.join(work, 'release');
  await writeFixtureRelease(folder, { id: 'fixture', stems: [{ id: 'a', seconds: 6 }], excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 6 }], artwork: opts.artwork ?? ARTWORK, ...(opts.manifest ? { manifest: opts.manifest } : {}) });
  await ingestRelease(folder, { store, layout, ffmpeg: null, blobs });
  const opened: VisualModels[] = [];
  return {
    layout,
    store,
    blobs,
    folder,
    models(o: Partial<VisualModelsOptions> & { train?: 'auto' | 'off'; steps?: number } = {}) {
      const m = new VisualModels({
        store,
        blobs,
        layout,
        folders: new ReleaseFiles({ store, blobs, layout, log }),
        log,
        config: { train: o.train ?? 'off', steps: o.steps ?? 3, seed: 1, mix: 0.4 },
        hyperparameters: TINY,
        ...o,
      });
      opened.push(m);
      return m;
    },
    /** Ingests the release folder again, after `edit` changed its manifest. */
    async reingest(edit: (m: { artwork: { id: string; consent: boolean }[] }) => void) {
      const file = path.join(folder, 'release.json');
      const manifest = JSON.parse(await fsp.readFile(file, 'utf8'));
      edit(manifest);
      await fsp.writeFile(file, JSON.stringify(manifest));
      await ingestRelease(folder, { store, layout, ffmpeg: null, blobs, replace: true });
    },
    async close() {
      for (const m of opened) await m.close();
      await blobs.close();
      await store.close();
    },
  };
}

async function modelFiles(blobs: BlobStore, releaseId = 'fixture'): Promise<string[]> {
  return (await blobs.list(`visual-models/${releaseId}/`)).map((o) => o.key.slice(`visual-models/${releaseId}/`.length));
}

describe('visual models (server side)', function () {
  this.timeout(120_000);
  let work: { path: string; remove(): Promise<void> };
  let h: Awaited<ReturnType<typeof harness>> | null = null;

  beforeEach(async () => {
    work = await tempDir('visual-model');
  });
  afterEach(async () => {
    await h?.close();
    h = null;
    await work.remove();
  });

  it('training stores the weights, then the record, which names every consented artwork by its hash', async () => {
    h = await harness(work.path, { manifest: (m) => ({ ...m, artwork: (m['artwork'] as Record<string, unknown>[]).map((a) => (a['id'] === 'cover' ? { ...a, consentBy: 'Jo Artist (Label Ltd)', consentAt: '2026-03-01' } : a)) }) });
    // The order of writes, seen through the store's own methods.
    const writes: string[] = [];
    const { putFile, putBuffer } = h.blobs;
    h.blobs.putFile = (key, file, o) => (writes.push(key), putFile.call(h!.blobs, key, file, o));
    h.blobs.putBuffer = (key, data, o) => (writes.push(key), putBuffer.call(h!.blobs, key, data, o));
    const models = h.models();
    const steps: number[] = [];
    const record = await models.train('fixture', { onProgress: (p) => steps.push(p.step) });

    expect(steps.at(-1)).to.equal(3);
    const weightsKey = `visual-models/fixture/${record.modelId}/weights.bin`;
    const recordKey = `visual-models/fixture/${record.modelId}/record.json`;
    expect(writes.filter((k) => !k.endsWith('training.json'))).to.deep.equal([weightsKey, recordKey]);
    const weights = await fsp.readFile(path.join(h.layout.root, weightsKey));
    expect(record.modelId).to.equal(sha256(weights));
    expect(record.weights).to.include({ sha256: record.modelId, bytes: weights.length });
    expect(record.weights.format).to.be.a('string').and.not.equal('');
    const stored = JSON.parse(await fsp.readFile(path.join(h.layout.root, recordKey), 'utf8')) as VisualModelRecord;
    expect(stored).to.deep.equal(record);

    // Assets: the consented files as ingested, hashed; the one without consent is named as excluded.
    const fileHash = async (f: string) => sha256(await fsp.readFile(path.join(h!.folder, f)));
    expect(record.assets.map((a) => a.id)).to.deep.equal(['cover', 'waves']);
    const cover = record.assets.find((a) => a.id === 'cover')!;
    expect(cover).to.deep.include({ file: 'artwork/cover.png', sha256: await fileHash('artwork/cover.png'), consent: true, consentBy: 'Jo Artist (Label Ltd)', consentAt: '2026-03-01' });
    expect(cover.bytes).to.equal((await fsp.stat(path.join(h.folder, 'artwork/cover.png'))).size);
    const waves = record.assets.find((a) => a.id === 'waves')!;
    const release = await h.store.getRelease('fixture');
    expect(waves).to.deep.include({ sha256: await fileHash('artwork/waves.jpg'), consentBy: "the release's manifest", consentAt: release!.ingestedAt });
    expect(record.excluded).to.deep.equal([{ id: 'sketch', file: 'artwork/sketch.png', sha256: await fileHash('artwork/sketch.png'), because: 'no consent from the artist' }]);

    expect(record).to.include({ releaseId: 'fixture', method: 'sw-patch-generator', methodVersion: 1, seed: 1, steps: 3, ingestedAt: release!.ingestedAt });
    expect(record.software['remixroom']).to.match(/^0\.1\.0(\+[0-9a-f]{7,})?$/);
    expect(record.software['node']).to.be.a('string');
    expect(record.hyperparameters).to.include({ crop: TINY.crop, batch: TINY.batch });
    expect(record.lossCurve.length).to.be.greaterThan(0);
    expect(record.lossCurve.every(([s, l]) => Number.isInteger(s) && Number.isFinite(l))).to.equal(true);
    expect(Date.parse(record.startedAt)).to.be.a('number').and.not.NaN;
    expect(await models.current('fixture')).to.deep.equal(record);
    expect(Buffer.from(await models.weights('fixture', record.modelId)).equals(weights)).to.equal(true);

    // The same seed and steps make the same model again: stored once.
    const again = await models.train('fixture');
    expect(again.modelId).to.equal(record.modelId);
    expect((await modelFiles(h.blobs)).filter((k) => k.endsWith('record.json'))).to.have.length(1);
  });

  it('consent withdrawn at a re-ingest retires the model (kept in the history) and trains one without that artwork', async () => {
    h = await harness(work.path);
    const first = await h.models().train('fixture');
    const models = h.models({ train: 'auto', pollMs: 60_000 });
    expect((await models.view('fixture'))!.status).to.equal('ready');
    const changed: string[] = [];
    models.on('changed', (id) => changed.push(id));

    await h.reingest((m) => {
      m.artwork.find((a) => a.id === 'waves')!.consent = false;
    });
    // Noticed at the next question (as an ingest by another process would be).
    expect(await models.current('fixture')).to.equal(null);
    expect(changed).to.include('fixture');
    const retired = JSON.parse(await fsp.readFile(path.join(h.layout.root, `visual-models/fixture/${first.modelId}/retired.json`), 'utf8'));
    expect(retired.because).to.equal('consent withdrawn for artwork "waves"');
    expect(Date.parse(retired.at)).to.not.be.NaN;
    // The retired model's files stay: clips made with it still name it.
    expect(await modelFiles(h.blobs)).to.include.members([`${first.modelId}/weights.bin`, `${first.modelId}/record.json`]);

    const next = await models.ensure('fixture');
    expect(next).to.not.equal(null);
    expect(next!.modelId).to.not.equal(first.modelId);
    expect(next!.assets.map((a) => a.id)).to.deep.equal(['cover']);
    expect(next!.excluded.map((a) => a.id).sort()).to.deep.equal(['sketch', 'waves']);
    expect(await models.current('fixture')).to.deep.equal(next);
    const view = (await models.view('fixture'))!;
    expect(view.status).to.equal('ready');
    expect(view.history.map((m) => [m.modelId, m.status])).to.deep.equal([
      [next!.modelId, 'ready'],
      [first.modelId, 'retired'],
    ]);
    expect(view.history[1]!.retired!.because).to.equal('consent withdrawn for artwork "waves"');
    expect((await models.model('fixture', first.modelId))!.retired!.because).to.match(/waves/);

    // Consent given again: the same seed trains the very model retired, which stays retired; another seed trains anew.
    await h.reingest((m) => {
      m.artwork.find((a) => a.id === 'waves')!.consent = true;
    });
    expect(await models.ensure('fixture')).to.equal(null);
    const failed = (await models.view('fixture'))!;
    expect(failed.status).to.equal('failed');
    expect(failed.failure).to.include(`training made model ${first.modelId} again, which was retired`);
    const reseeded = await h.models({ config: { train: 'off', steps: 3, seed: 2, mix: 0.4 } }).train('fixture');
    expect(reseeded.modelId).to.not.equal(first.modelId);
    expect(reseeded.assets.map((a) => a.id)).to.deep.equal(['cover', 'waves']);
    expect((await h.models().current('fixture'))!.modelId).to.equal(reseeded.modelId);
  });

  it('notices an ingest made by another process by itself: the poll retires the model and says the release changed', async () => {
    h = await harness(work.path);
    const first = await h.models().train('fixture');
    const models = h.models({ train: 'off', pollMs: 100 });
    await models.start();
    expect((await models.view('fixture'))!.current!.modelId).to.equal(first.modelId);
    const changed = new Promise<string>((resolve) => models.once('changed', resolve));
    await h.reingest((m) => {
      m.artwork.find((a) => a.id === 'cover')!.consent = false;
    });
    expect(await changed).to.equal('fixture');
    expect(JSON.parse(await fsp.readFile(path.join(h.layout.root, `visual-models/fixture/${first.modelId}/retired.json`), 'utf8')).because).to.equal('consent withdrawn for artwork "cover"');
    // Training is off here: no model, and none queued.
    expect((await models.view('fixture'))!).to.deep.include({ status: 'none', current: null });

    // A model trained by another process (npm run train-visuals) is announced too.
    const again = new Promise<string>((resolve) => models.once('changed', resolve));
    const second = await h.models().train('fixture');
    expect(await again).to.equal('fixture');
    expect((await models.current('fixture'))!.modelId).to.equal(second.modelId);
  });

  it('VISUAL_MODEL_TRAIN, VISUAL_MODEL_STEPS, VISUAL_MODEL_SEED and VISUAL_MODEL_MIX are read and checked', () => {
    expect(loadConfig({}).visualModel).to.deep.equal({ train: 'auto', steps: null, seed: 1, mix: DEFAULT_VISUAL_MODEL_MIX });
    expect(loadConfig({ VISUAL_MODEL_TRAIN: 'off', VISUAL_MODEL_STEPS: '300', VISUAL_MODEL_SEED: '7', VISUAL_MODEL_MIX: '0' }).visualModel).to.deep.equal({ train: 'off', steps: 300, seed: 7, mix: 0 });
    expect(() => loadConfig({ VISUAL_MODEL_MIX: '1.5' })).to.throw(ConfigError, /^VISUAL_MODEL_MIX="1.5" must be a number from 0 to 1/);
    expect(() => loadConfig({ VISUAL_MODEL_TRAIN: 'yes' })).to.throw(ConfigError, /^VISUAL_MODEL_TRAIN="yes" must be auto/);
    expect(() => loadConfig({ VISUAL_MODEL_STEPS: '0' })).to.throw(ConfigError, /^VISUAL_MODEL_STEPS="0" must be a whole number of steps/);
    expect(() => loadConfig({ VISUAL_MODEL_STEPS: '2.5' })).to.throw(ConfigError, /^VISUAL_MODEL_STEPS=/);
    expect(() => loadConfig({ VISUAL_MODEL_SEED: '-1' })).to.throw(ConfigError, /^VISUAL_MODEL_SEED="-1"/);
    // Tests and tools never train unless they ask.
    expect(configFor({ dataDir: work.path }).visualModel.train).to.equal('off');
  });

  it('a training whose child is killed midway leaves no record, and the next ensure trains again', async () => {
    h = await harness(work.path);
    // The real training in its real child, whose pid is kept: only that process is killed.
    let childPid = 0;
    const code: VisualModelCode = {
      train: (job, opts) => trainInChild(job, { ...opts, onSpawn: (pid) => (childPid = pid) }),
      weightsFormat: (w) => describeWeights(w).format,
      defaultSteps: async () => DEFAULT_STEPS,
    };
    const models = h.models({ train: 'auto', steps: 400, code });
    const started = new Promise<void>((resolve) => models.once('progress', () => resolve()));
    const ensured = models.ensure('fixture');
    await started;
    expect((await models.view('fixture'))!.status).to.equal('training');
    expect(childPid).to.be.greaterThan(0);
    process.kill(childPid, 'SIGKILL');
    expect(await ensured).to.equal(null);
    const view = (await models.view('fixture'))!;
    expect(view.status).to.equal('failed');
    expect(view.failure).to.equal("the training stopped before it finished (the server's log says why)");
    expect((await modelFiles(h.blobs)).filter((k) => /record\.json|weights\.bin/.test(k))).to.deep.equal([]);
    // Nothing half-made is left in the staging folder either.
    expect((await fsp.readdir(h.layout.tmpDir)).filter((f) => f.startsWith('visual-model-'))).to.deep.equal([]);

    const fresh = h.models({ train: 'auto', steps: 3 });
    const record = await fresh.ensure('fixture');
    expect(record).to.not.equal(null);
    expect(await modelFiles(h.blobs)).to.include(`${record!.modelId}/record.json`);
  });

  it('installs a shipped model only when it was trained on the release\'s artwork as it is now', async () => {
    h = await harness(work.path);
    const record = await h.models().train('fixture');
    const shipped = path.join(work.path, 'shipped');
    await fsp.mkdir(shipped);
    await fsp.copyFile(path.join(h.layout.root, `visual-models/fixture/${record.modelId}/weights.bin`), path.join(shipped, 'weights.bin'));
    await fsp.copyFile(path.join(h.layout.root, `visual-models/fixture/${record.modelId}/record.json`), path.join(shipped, 'record.json'));
    await h.close();

    // A fresh DATA_DIR with the same release: the shipped model is installed, nothing is trained.
    h = await harness(path.join(work.path, 'second'));
    const models = h.models({ train: 'off' });
    expect(await models.installShipped('fixture', shipped)).to.deep.equal({ installed: true, reason: 'installed' });
    expect((await models.current('fixture'))!.modelId).to.equal(record.modelId);
    expect(await models.installShipped('fixture', path.join(work.path, 'nothing-here'))).to.include({ installed: false });

    // Weights that do not match their record are refused.
    await fsp.writeFile(path.join(shipped, 'weights.bin'), Buffer.from('not the weights'));
    expect((await models.installShipped('fixture', shipped)).reason).to.match(/do not match/);
    await h.close();

    // The same release with other artwork: the shipped model does not fit it.
    await fsp.copyFile(path.join(h.layout.root, `visual-models/fixture/${record.modelId}/weights.bin`), path.join(shipped, 'weights.bin'));
    h = await harness(path.join(work.path, 'third'), { artwork: [{ id: 'cover', width: 200, height: 128 }] });
    const other = h.models({ train: 'off' });
    expect((await other.installShipped('fixture', shipped)).reason).to.match(/other artwork/);
    expect(await other.current('fixture')).to.equal(null);
  });

  describe('HTTP', () => {
    let server: RemixroomServer;
    let record: VisualModelRecord;
    let untrained: unknown;
    let dir: { path: string; remove(): Promise<void> };
    const key = 'ab'.repeat(32);
    const rgba = new Uint8Array(8 * 8 * 4).map((_, i) => (i * 7) & 255);

    before(async function () {
      this.timeout(120_000);
      dir = await tempDir('visual-model-http');
      const made = await harness(dir.path);
      await made.close();
      server = await RemixroomServer.start(configFor({ dataDir: made.layout.root, port: 0, host: '127.0.0.1', logLevel: 'silent' }), log, undefined, { visualModels: { hyperparameters: TINY } });
      untrained = await (await fetch(`${server.url}/api/releases/fixture/visual-model`)).json();
      record = await server.visualModels.train('fixture');
      await server.visualModels.saveTexture('fixture', key, record.modelId, { artworks: [{ id: 'cover', weight: 1 }], detail: 0.5, busy: 0.5 }, 7, rgba);
    });
    after(async () => {
      await server?.close();
      await dir?.remove();
    });

    const get = (p: string, headers: Record<string, string> = {}) => fetch(`${server.url}${p}`, { headers });

    it('GET /api/releases/:id/visual-model answers the status, the current record and the history', async () => {
      const res = await get('/api/releases/fixture/visual-model');
      expect(res.status).to.equal(200);
      const body = await res.json();
      expect(body.status).to.equal('ready');
      expect(body.current).to.deep.equal(record);
      expect(body.history).to.deep.equal([{ modelId: record.modelId, status: 'ready', startedAt: record.startedAt, record: `/api/releases/fixture/visual-model/${record.modelId}` }]);
      expect((await get('/api/releases/no-such-release/visual-model')).status).to.equal(404);
      // Before it was trained (training is off in tests), the release had none.
      expect(untrained).to.deep.include({ status: 'none', current: null, history: [] });
    });

    it('GET …/visual-model/:modelId answers that record; bad ids 400, unknown 404', async () => {
      const res = await get(`/api/releases/fixture/visual-model/${record.modelId}`);
      expect(res.status).to.equal(200);
      expect(await res.json()).to.deep.equal({ ...record, retired: null });
      expect((await get(`/api/releases/fixture/visual-model/${'0'.repeat(64)}`)).status).to.equal(404);
      expect((await get('/api/releases/fixture/visual-model/not-a-model')).status).to.equal(400);
      expect((await get(`/api/releases/fixture/visual-model/${record.modelId.toUpperCase()}`)).status).to.equal(400);
    });

    it('GET …/visual-model/textures/:textureId answers the bytes, immutable, with an ETag and the size', async () => {
      const id = `gen-${key.slice(0, 32)}`;
      const res = await get(`/api/releases/fixture/visual-model/textures/${id}`);
      expect(res.status).to.equal(200);
      expect(res.headers.get('content-type')).to.equal('application/octet-stream');
      expect(res.headers.get('cache-control')).to.equal('public, max-age=31536000, immutable');
      expect(res.headers.get('x-texture-size')).to.equal('8');
      expect(res.headers.get('x-visual-model')).to.equal(record.modelId);
      const etag = res.headers.get('etag');
      expect(etag).to.equal(`"${sha256(rgba)}"`);
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(rgba))).to.equal(true);
      expect((await get(`/api/releases/fixture/visual-model/textures/${id}`, { 'if-none-match': etag! })).status).to.equal(304);
      expect((await get(`/api/releases/fixture/visual-model/textures/gen-${'c'.repeat(32)}`)).status).to.equal(404);
      expect((await get(`/api/releases/remixroom-demo/visual-model/textures/${id}`)).status).to.equal(404);
      expect((await get(`/api/releases/no-such-release/visual-model/textures/${id}`)).status).to.equal(404);
    });

    it('refuses texture ids that are not gen-<32 hex>, and path tricks', async () => {
      for (const bad of [`gen-${'a'.repeat(31)}`, `gen-${'a'.repeat(33)}`, `gen-${'A'.repeat(32)}`, `${'a'.repeat(32)}`, `gen-${'a'.repeat(31)}g`, '..%2F..%2Fsecrets.json', `gen-${'a'.repeat(28)}%2e%2e%2f`, '%00']) {
        const res = await get(`/api/releases/fixture/visual-model/textures/${bad}`);
        expect(res.status, bad).to.equal(400);
        expect((await res.json()).error.code, bad).to.equal('bad_request');
      }
      for (const trick of ['/api/releases/..%2F..%2Fsecrets.json/visual-model', '/api/releases/fixture/visual-model/textures/..%2f..%2f..%2fremixroom.sqlite', '/api/releases/..%2fdata/visual-model/textures/gen-' + 'a'.repeat(32)]) {
        const res = await get(trick);
        expect([400, 404], trick).to.include(res.status);
        expect(res.headers.get('content-type'), trick).to.match(/json/);
      }
    });
  });

  describe('npm run ingest and npm run train-visuals', () => {
    async function run(script: string, args: string[], env: Record<string, string>) {
      const child = spawn(process.execPath, [script, ...args], { cwd: REPO_ROOT, env: { PATH: process.env['PATH'] ?? '', DATA_DIR: path.join(work.path, 'data'), ...env } });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c));
      child.stderr.on('data', (c: Buffer) => (stderr += c));
      const code = await new Promise<number | null>((r) => child.once('exit', r));
      return { code, stdout, stderr };
    }

    it('ingest trains the model with a progress bar; train-visuals trains it again by name', async () => {
      const folder = path.join(work.path, 'release');
      await writeFixtureRelease(folder, { id: 'cli-release', stems: [{ id: 'a', seconds: 6 }], excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 6 }], artwork: [{ id: 'cover', width: 96, height: 96 }, { id: 'extra', width: 96, height: 96 }] });
      const ingest = await run('server/catalog/ingest-cli.ts', [folder], { VISUAL_MODEL_STEPS: '2' });
      expect(ingest.code, ingest.stderr).to.equal(0);
      expect(ingest.stderr).to.match(/^train visual model 100% step 2\/2 loss /m);
      const id = /^visual model ([0-9a-f]{64}) of cli-release/m.exec(ingest.stdout)?.[1];
      expect(id, ingest.stdout).to.be.a('string');
      expect(ingest.stdout).to.match(/trained on 2 artwork images: cover \(.*\), extra \(/);
      const stored = JSON.parse(await fsp.readFile(path.join(work.path, 'data', 'visual-models', 'cli-release', id!, 'record.json'), 'utf8'));
      expect(stored).to.include({ modelId: id, steps: 2, seed: 1 });

      const out = path.join(work.path, 'shipped');
      const again = await run('server/catalog/train-visuals-cli.ts', ['cli-release', '--out', out], { VISUAL_MODEL_STEPS: '2' });
      expect(again.code, again.stderr).to.equal(0);
      expect(again.stdout).to.include(`visual model ${id} of cli-release`);
      // --out: the files a shipped model is made of.
      expect(sha256(await fsp.readFile(path.join(out, 'weights.bin')))).to.equal(id);
      expect(JSON.parse(await fsp.readFile(path.join(out, 'record.json'), 'utf8'))).to.deep.equal(stored);

      const unknown = await run('server/catalog/train-visuals-cli.ts', ['no-such-release'], {});
      expect(unknown.code).to.equal(1);
      expect(unknown.stderr).to.include('no release "no-such-release"');

      const off = await run('server/catalog/ingest-cli.ts', [folder, '--replace', '--no-train'], {});
      expect(off.code, off.stderr).to.equal(0);
      // The same artwork: the model trained before still fits it.
      expect(off.stdout).to.include(`visual model ${id}: already trained on this artwork`);

      // Consent withdrawn for one image: the model is retired at once, even without training.
      const manifestFile = path.join(folder, 'release.json');
      const manifest = JSON.parse(await fsp.readFile(manifestFile, 'utf8'));
      manifest.artwork[1].consent = false;
      await fsp.writeFile(manifestFile, JSON.stringify(manifest));
      const withdrawn = await run('server/catalog/ingest-cli.ts', [folder, '--replace', '--no-train'], {});
      expect(withdrawn.code, withdrawn.stderr).to.equal(0);
      expect(withdrawn.stderr).to.include(`note: visual model ${id} is retired: consent withdrawn for artwork "extra"`);
      expect(withdrawn.stderr).to.include('note: no visual model trained (--no-train); npm run train-visuals -- cli-release trains one');
    });
  });

  describe('in an S3 bucket (Ceph radosgw), across two nodes', () => {
    before(async function () {
      requireComponent('radosgw', s3Available(), this);
    });

    it('one node trains into the bucket; another serves the model, and both see its retirement', async () => {
      const s3 = await sharedS3();
      const config: S3Config = { bucket: await s3.newBucket(), endpoint: s3.endpoint, public: false, cacheMb: 64, prefix: '', credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }, region: s3.region };
      const store = await SqliteStore.open(path.join(work.path, 'shared.sqlite'));
      const nodes = await Promise.all(
        ['a', 'b'].map(async (name) => {
          const layout = new DataLayout(path.join(work.path, name));
          await fsp.mkdir(layout.tmpDir, { recursive: true });
          const blobs = await openBlobStore({ s3: config }, layout, log, null);
          const models = new VisualModels({ store, blobs, layout, folders: new ReleaseFiles({ store, blobs, layout, log }), log, config: { train: 'off', steps: 3, seed: 1, mix: 0.4 }, hyperparameters: TINY, pollMs: 60_000 });
          return { layout, blobs, models };
        }),
      );
      try {
        const [a, b] = nodes as [(typeof nodes)[0], (typeof nodes)[0]];
        const folder = path.join(work.path, 'release');
        await writeFixtureRelease(folder, { id: 'fixture', stems: [{ id: 'a', seconds: 6 }], excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 6 }], artwork: ARTWORK });
        await ingestRelease(folder, { store, layout: a.layout, ffmpeg: null, blobs: a.blobs });
        const record = await a.models.train('fixture');
        const keys = (await a.blobs.list('visual-models/fixture/')).map((o) => o.key);
        expect(keys).to.include.members([`visual-models/fixture/${record.modelId}/weights.bin`, `visual-models/fixture/${record.modelId}/record.json`]);
        // Nothing of it under node A's DATA_DIR but its cache: the bucket holds the model.
        expect(await fsp.readdir(a.layout.root).catch(() => [])).to.not.include('visual-models');

        expect(await b.models.current('fixture')).to.deep.equal(record);
        expect(sha256(await b.models.weights('fixture', record.modelId))).to.equal(record.modelId);
        const rgba = new Uint8Array(4 * 4 * 4).fill(9);
        await a.models.saveTexture('fixture', 'cd'.repeat(32), record.modelId, { artworks: [], detail: 0, busy: 1 }, 3, rgba);
        expect((await b.models.readTexture('fixture', 'cd'.repeat(16)))!.meta).to.include({ modelId: record.modelId, size: 4, seed: 3 });

        const file = path.join(folder, 'release.json');
        const manifest = JSON.parse(await fsp.readFile(file, 'utf8'));
        manifest.artwork.find((x: { id: string }) => x.id === 'cover').consent = false;
        await fsp.writeFile(file, JSON.stringify(manifest));
        await ingestRelease(folder, { store, layout: a.layout, ffmpeg: null, blobs: a.blobs, replace: true });
        expect(await a.models.current('fixture')).to.equal(null);
        expect(await b.models.current('fixture')).to.equal(null);
        const view = (await b.models.view('fixture'))!;
        expect(view.history).to.have.length(1);
        expect(view.history[0]).to.deep.include({ modelId: record.modelId, status: 'retired' });
        expect(view.history[0]!.retired!.because).to.equal('consent withdrawn for artwork "cover"');
      } finally {
        for (const n of nodes) {
          await n.models.close();
          await n.blobs.close();
        }
        await store.close();
      }
    });
  });
});
