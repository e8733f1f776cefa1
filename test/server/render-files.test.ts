// RenderFiles on the local disk (the embedded default): the contract, and the layout
// every earlier version used, DATA_DIR/renders/<id>/<name>, so that renders made
// before keep being served.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { LocalRenderFiles } from '../../server/clips/render-files.ts';
import { newRenderId } from '../../server/clips/render-job.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { tempDir } from '../support/temp.ts';
import { renderFilesContract } from './render-files.contract.ts';
import { LocalRenderQueue } from '../../server/clips/render-queue.ts';
import { stageAndCommit } from '../../server/clips/render-runner.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { RenderRecord } from '../../server/store/store.ts';
import { waitFor } from '../support/room-clients.ts';
import { pino } from 'pino';
import { BlobRenderFiles } from '../../server/clips/blob-render-files.ts';
import { BlobCache } from '../../server/store/blob-cache.ts';
import { S3BlobStore } from '../../server/store/blob-s3.ts';
import { requireComponent } from '../support/components.ts';
import { s3Available, sharedS3 } from '../support/s3.ts';

renderFilesContract('local disk', async () => {
  const dir = await tempDir('render-files');
  return { files: new LocalRenderFiles(new DataLayout(dir.path)), close: () => dir.remove() };
});

describe('render files on the local disk', () => {
  it('keeps DATA_DIR/renders/<id>/<name>: the render folder is its own staging folder, and a file there is served as it is', async () => {
    const dir = await tempDir('render-files');
    try {
      const layout = new DataLayout(dir.path);
      const files = new LocalRenderFiles(layout);
      const id = newRenderId();
      // A render made by an earlier version: the files in place, nothing staged.
      await fsp.mkdir(path.join(layout.rendersDir, id), { recursive: true });
      await fsp.writeFile(path.join(layout.rendersDir, id, 'clip.mp4'), 'old');
      expect(await files.localPath(id, 'clip.mp4')).to.equal(path.join(dir.path, 'renders', id, 'clip.mp4'));
      expect(await files.stagingDir(id)).to.equal(path.join(dir.path, 'renders', id));
      // Staged elsewhere on the same disk: moved into place by the commit.
      const elsewhere = path.join(dir.path, 'tmp', 'loop.gif');
      await fsp.mkdir(path.dirname(elsewhere), { recursive: true });
      await fsp.writeFile(elsewhere, 'gif');
      await files.commit(id, [{ name: 'loop.gif', path: elsewhere, contentType: 'image/gif' }]);
      expect(fs.existsSync(elsewhere)).to.equal(false);
      expect(fs.readdirSync(path.join(dir.path, 'renders', id)).sort()).to.deep.equal(['clip.mp4', 'loop.gif']);
    } finally {
      await dir.remove();
    }
  });
});

// The same contract with the files in a bucket (S3_BUCKET): a real Ceph radosgw.
describe('render files in S3', function () {
  this.timeout(120_000);
  before(async function () {
    requireComponent('radosgw', s3Available(), this);
  });

  async function inBucket(presign: boolean): Promise<{ files: BlobRenderFiles; store: S3BlobStore; dir: string; close(): Promise<void> }> {
    const s3 = await sharedS3();
    const dir = await tempDir('render-files-s3');
    const cache = await BlobCache.create({ dir: path.join(dir.path, 'cache'), maxBytes: 64 * 1024 * 1024, log: pino({ level: 'silent' }) });
    const store = new S3BlobStore({
      bucket: await s3.newBucket(),
      endpoint: s3.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      cache,
      log: pino({ level: 'silent' }),
    });
    const files = new BlobRenderFiles({ blobs: store, layout: new DataLayout(dir.path), presign });
    return { files, store, dir: dir.path, close: async () => { await store.close(); await dir.remove(); } };
  }

  renderFilesContract('S3 on radosgw', () => inBucket(false));

  it('keeps the files in the bucket only (the staging folder goes), and serves a download as an object streamed through the node', async () => {
    const h = await inBucket(false);
    try {
      const id = newRenderId();
      const staging = await h.files.stagingDir(id);
      await fsp.writeFile(path.join(staging, 'clip.mp4'), 'video');
      await fsp.writeFile(path.join(staging, 'manifest.json'), '{}');
      await h.files.commit(id, [
        { name: 'clip.mp4', path: path.join(staging, 'clip.mp4'), contentType: 'video/mp4' },
        { name: 'manifest.json', path: path.join(staging, 'manifest.json'), contentType: 'application/json' },
      ]);
      expect(fs.existsSync(staging)).to.equal(false);
      expect((await h.store.list(`renders/${id}/`)).map((o) => o.key)).to.deep.equal([`renders/${id}/clip.mp4`, `renders/${id}/manifest.json`]);
      expect(await h.store.head(`renders/${id}/clip.mp4`)).to.include({ size: 5, contentType: 'video/mp4' });
      const options = { expiresAtSec: Math.floor(Date.now() / 1000) + 600, contentType: 'video/mp4', contentDisposition: 'attachment; filename="c.mp4"' };
      expect(await h.files.download(id, 'clip.mp4', options)).to.deep.equal({ kind: 'object', blobs: h.store, key: `renders/${id}/clip.mp4` });
      expect(await h.files.download(id, 'clip.m4a', options)).to.equal(null);
      expect(await h.files.download('../../x', 'clip.mp4', options)).to.equal(null);
    } finally {
      await h.close();
    }
  });

  it('with S3_PUBLIC, a download is a presigned URL that serves the bytes under the link\'s name and ends with the link', async () => {
    const h = await inBucket(true);
    try {
      const id = newRenderId();
      const staging = await h.files.stagingDir(id);
      await fsp.writeFile(path.join(staging, 'clip.m4a'), 'audio bytes');
      await h.files.commit(id, [{ name: 'clip.m4a', path: path.join(staging, 'clip.m4a'), contentType: 'audio/mp4' }]);
      const nowSec = Math.floor(Date.now() / 1000);
      const download = await h.files.download(id, 'clip.m4a', { expiresAtSec: nowSec + 120, contentType: 'audio/mp4', contentDisposition: 'attachment; filename="Artist - Song.m4a"' });
      expect(download?.kind).to.equal('redirect');
      const url = new URL((download as { url: string }).url);
      // Signed for what is left of the link, not longer.
      expect(Number(url.searchParams.get('X-Amz-Expires'))).to.be.within(1, 120);
      const res = await fetch(url);
      expect(res.status).to.equal(200);
      expect(await res.text()).to.equal('audio bytes');
      expect(res.headers.get('content-disposition')).to.equal('attachment; filename="Artist - Song.m4a"');
      // A link that has already run out still gets a URL of a second at most (the route refuses it before).
      const late = await h.files.download(id, 'clip.m4a', { expiresAtSec: nowSec - 5, contentType: 'audio/mp4', contentDisposition: 'attachment' });
      expect(Number(new URL((late as { url: string }).url).searchParams.get('X-Amz-Expires'))).to.equal(1);
    } finally {
      await h.close();
    }
  });

  it('a render whose files cannot be stored while S3 is down waits, runs again, and is done once the store is back, however long it was down (queued meanwhile: no link serves a render before it is done)', async () => {
    const s3 = await sharedS3();
    const gateway = await s3.extraGateway();
    const dir = await tempDir('render-files-s3-down');
    const quiet = pino({ level: 'silent' });
    const store = await SqliteStore.open(':memory:');
    const cache = await BlobCache.create({ dir: path.join(dir.path, 'cache'), maxBytes: 16 * 1024 * 1024, log: quiet });
    const blobs = new S3BlobStore({
      bucket: await s3.newBucket(),
      endpoint: gateway.endpoint,
      region: s3.region,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
      cache,
      log: quiet,
      maxAttempts: 2,
      connectTimeoutMs: 1000,
      requestTimeoutMs: 3000,
    });
    const files = new BlobRenderFiles({ blobs, layout: new DataLayout(dir.path), presign: false });
    // The render itself (mixing, encoding) is not what is tested: it stages two small files; the commit goes to the real gateway.
    let attempts = 0;
    const runner = {
      render: (render: RenderRecord) =>
        stageAndCommit(files, render.id, async (staging) => {
          attempts++;
          await fsp.writeFile(path.join(staging, 'clip.mp4'), `video of ${render.id}`);
          await fsp.writeFile(path.join(staging, 'manifest.json'), '{}');
          return {
            result: { files: { video: 'clip.mp4' } },
            files: [
              { name: 'clip.mp4', path: path.join(staging, 'clip.mp4'), contentType: 'video/mp4' },
              { name: 'manifest.json', path: path.join(staging, 'manifest.json'), contentType: 'application/json' },
            ],
          };
        }),
    };
    const notes: string[] = [];
    // Two attempts only: an outage that outlasts them must still fail no render (its waits do not count).
    const queue = new LocalRenderQueue({ store, log: quiet, runner, concurrency: 1, maxAttempts: 2, retryBaseMs: 50 });
    queue.on('progress', (_room, p) => p.message && notes.push(p.message));
    try {
      await gateway.stop();
      const id = newRenderId();
      await store.createRender({ id, roomId: 'room', kind: 'clip', status: 'queued', request: { kind: 'clip' }, createdAt: new Date().toISOString() }, null);
      await queue.enqueue(id);
      // Four commits fail (waits of 50, 200 and 800 ms between them): twice the attempt limit.
      await waitFor(() => notes.filter((n) => /the file store is unreachable; the render waits and tries again in \d+ s/.test(n)).length >= 4, 60_000, 'four commits to fail');
      expect(attempts).to.be.at.least(4);
      expect((await store.getRender(id))!.status, 'waiting, not failed').to.equal('queued');
      expect(notes.some((n) => /failed/.test(n)), notes.join('\n')).to.equal(false);
      const before = attempts;
      await gateway.restart();
      await waitFor(() => attempts > before, 60_000, 'another attempt');
      for (let i = 0; i < 600 && (await store.getRender(id))!.status !== 'done'; i++) await new Promise((r) => setTimeout(r, 100));
      expect((await store.getRender(id))!.status).to.equal('done');
      const download = await files.download(id, 'clip.mp4', { expiresAtSec: Math.floor(Date.now() / 1000) + 60, contentType: 'video/mp4', contentDisposition: 'attachment' });
      expect(download).to.deep.include({ kind: 'object', key: `renders/${id}/clip.mp4` });
      const body = await blobs.read(`renders/${id}/clip.mp4`);
      const chunks: Buffer[] = [];
      for await (const c of body.stream) chunks.push(c as Buffer);
      expect(Buffer.concat(chunks).toString()).to.equal(`video of ${id}`);
    } finally {
      await queue.close();
      await blobs.close();
      await store.close();
      await gateway.stop();
      await dir.remove();
    }
  });

  it('a render written again replaces its files in place (nothing deleted first, so no moment without them), and this node serves the new bytes, not its cached copy', async () => {
    const h = await inBucket(false);
    try {
      const id = newRenderId();
      const commit = async (text: string) => {
        const staging = await h.files.stagingDir(id);
        await fsp.writeFile(path.join(staging, 'clip.mp4'), text);
        await h.files.commit(id, [{ name: 'clip.mp4', path: path.join(staging, 'clip.mp4'), contentType: 'video/mp4' }]);
      };
      const deleted: string[] = [];
      const del = h.store.delete.bind(h.store);
      h.store.delete = async (key: string) => {
        deleted.push(key);
        await del(key);
      };
      await commit('first take');
      const first = await h.files.localPath(id, 'clip.mp4');
      expect(await fsp.readFile(first!, 'utf8')).to.equal('first take');
      // Held by a reader (pinned) while the render is written again.
      const held = await h.store.localFile(`renders/${id}/clip.mp4`);
      await commit('second take, longer');
      expect(deleted, 'a re-put deletes nothing first').to.deep.equal([]);
      expect(await fsp.readFile((await h.files.localPath(id, 'clip.mp4'))!, 'utf8')).to.equal('second take, longer');
      const downloads = h.store.cache.downloads;
      // The old copy let go: the new one, fetched into the same place, stays.
      held.release();
      await new Promise((r) => setTimeout(r, 50));
      const again = await h.store.localFile(`renders/${id}/clip.mp4`);
      expect(await fsp.readFile(again.path, 'utf8')).to.equal('second take, longer');
      again.release();
      expect(h.store.cache.downloads, 'served from the cache').to.equal(downloads);
    } finally {
      await h.close();
    }
  });

  it('a commit refused right before it is made (the renderer lost its job) keeps nothing', async () => {
    const h = await inBucket(false);
    try {
      const id = newRenderId();
      let refused = 0;
      const attempt = stageAndCommit(
        h.files,
        id,
        async (staging) => {
          await fsp.writeFile(path.join(staging, 'clip.mp4'), 'the loser\'s take');
          return { result: { files: { video: 'clip.mp4' } }, files: [{ name: 'clip.mp4', path: path.join(staging, 'clip.mp4'), contentType: 'video/mp4' }] };
        },
        {
          beforeCommit: async () => {
            refused++;
            throw new Error('another renderer has this job now');
          },
        },
      );
      await attempt.then(
        () => expect.fail('the commit was made'),
        (err: Error) => expect(err.message).to.equal('another renderer has this job now'),
      );
      expect(refused).to.equal(1);
      expect(await h.store.list(`renders/${id}/`)).to.deep.equal([]);
    } finally {
      await h.close();
    }
  });
});

describe('the blob cache and an object written again', () => {
  it('a download under way when its key is forgotten (the object replaced) is not kept: the reader gets the new bytes', async () => {
    const dir = await tempDir('blob-cache-reput');
    try {
      const cache = await BlobCache.create({ dir: dir.path, maxBytes: 1024 * 1024, log: pino({ level: 'silent' }) });
      let object = 'old bytes';
      let forgotten!: () => void;
      const forgetDone = new Promise<void>((resolve) => (forgotten = resolve));
      let fetches = 0;
      const fetch = async (tmp: string) => {
        const body = object;
        fetches++;
        // The first download has read the old object when it is replaced and forgotten.
        if (fetches === 1) {
          object = 'new bytes';
          void cache.forget('renders/x/clip.mp4').then(forgotten);
          await forgetDone;
        }
        await fsp.writeFile(tmp, body);
      };
      const blob = await cache.get('renders/x/clip.mp4', fetch);
      expect(await fsp.readFile(blob.path, 'utf8')).to.equal('new bytes');
      expect(fetches).to.equal(2);
      blob.release();
      expect(cache.keys()).to.deep.equal(['renders/x/clip.mp4']);
    } finally {
      await dir.remove();
    }
  });
});
