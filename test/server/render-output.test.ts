// Render output goes through RenderFiles both ways, so that another keeping of the
// files (object storage) changes nothing else: the runner renders into the staging
// folder RenderFiles gives and commits every file it made, with its content type
// (real ffmpeg, the demo release); a signed download reads its file through
// RenderFiles, and a finished render whose file RenderFiles lacks is a clear
// "no such download", not a crash.
import { EventEmitter } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { expect } from 'chai';
import { pino } from 'pino';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { ClipError, ClipService } from '../../server/clips/clip-service.ts';
import { ManifestSigner, type SignedManifest } from '../../server/clips/manifest.ts';
import { LocalRenderFiles, type RenderDownloadOptions, type RenderFile, type RenderFiles } from '../../server/clips/render-files.ts';
import { newRenderId, type ClipResult, type LoopRequest } from '../../server/clips/render-job.ts';
import type { RenderQueue } from '../../server/clips/render-queue.ts';
import { RenderRunner } from '../../server/clips/render-runner.ts';
import { StemCache } from '../../server/live/stem-cache.ts';
import type { RoomManager } from '../../server/rooms/room-manager.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import type { RenderRecord } from '../../server/store/store.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';

const log = pino({ level: 'silent' });
const SECRET = 'render-output-test-secret-0123456789';

/** LocalRenderFiles that notes every call. */
class NotingFiles implements RenderFiles {
  readonly calls: { op: string; renderId: string; files?: RenderFile[]; name?: string }[] = [];
  readonly #inner: RenderFiles;
  constructor(inner: RenderFiles) {
    this.#inner = inner;
  }
  stagingDir(renderId: string) {
    this.calls.push({ op: 'stagingDir', renderId });
    return this.#inner.stagingDir(renderId);
  }
  commit(renderId: string, files: readonly RenderFile[]) {
    this.calls.push({ op: 'commit', renderId, files: [...files] });
    return this.#inner.commit(renderId, files);
  }
  localPath(renderId: string, name: string) {
    this.calls.push({ op: 'localPath', renderId, name });
    return this.#inner.localPath(renderId, name);
  }
  download(renderId: string, name: string, options: RenderDownloadOptions) {
    this.calls.push({ op: 'download', renderId, name });
    return this.#inner.download(renderId, name, options);
  }
  remove(renderId: string) {
    this.calls.push({ op: 'remove', renderId });
    return this.#inner.remove(renderId);
  }
}

/** A queue that takes ids and runs nothing (the service is tested alone). */
function idleQueue(): RenderQueue {
  return Object.assign(new EventEmitter(), {
    everyNodeHears: false,
    enqueue: async () => {},
    progressOf: async () => undefined,
    counts: async () => ({ queued: 0, running: 0, retrying: 0 }),
    resume: async () => {},
    close: async () => {},
  }) as unknown as RenderQueue;
}

describe('render output through RenderFiles', function () {
  this.timeout(60_000);
  let data: { path: string; remove(): Promise<void> };
  let layout: DataLayout;
  let store: SqliteStore;

  before(async () => {
    data = await demoDataDir();
    layout = new DataLayout(data.path);
    store = await SqliteStore.open(layout.database);
  });
  after(async () => {
    await store?.close();
    await data?.remove();
  });

  async function loopRender(): Promise<{ id: string; render: RenderRecord }> {
    const id = newRenderId();
    const request: LoopRequest = { kind: 'loop', releaseId: DEMO_RELEASE_ID, roomCreatedAtMs: 0, seconds: 1, requestedBy: { userId: 'u1', name: 'Uma' }, startMs: 0, visualParams: neutralVisualParams() };
    const { render } = await store.createRender({ id, roomId: 'room-1', kind: 'loop', status: 'queued', request, createdAt: new Date().toISOString() }, null);
    return { id, render };
  }

  it('the runner renders into the staging folder and commits every file it made, the manifest naming the others by hash', async function () {
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    const files = new NotingFiles(new LocalRenderFiles(layout));
    const runner = new RenderRunner({ store, layout, files, stems: new StemCache(layout), log, ffmpeg: native!.ffmpeg, signer: new ManifestSigner(SECRET), video: { width: 160, height: 90, fps: 10 } });
    const { id, render } = await loopRender();
    const result = await runner.render(render, new AbortController().signal, { onProgress: () => {}, onReport: () => {} });
    expect(files.calls.map((c) => c.op)).to.deep.equal(['stagingDir', 'commit']);
    const committed = files.calls[1]!.files!;
    expect(committed.map((f) => [f.name, f.contentType])).to.deep.equal([
      ['loop.mp4', 'video/mp4'],
      ['loop.gif', 'image/gif'],
      ['manifest.json', 'application/json'],
    ]);
    expect(result.files).to.deep.equal({ video: 'loop.mp4', gif: 'loop.gif', manifest: 'manifest.json' });
    // What the manifest says of each file is what was kept under its name.
    for (const f of result.manifest!.manifest.files!) {
      const kept = (await files.localPath(id, f.name))!;
      expect(crypto.createHash('sha256').update(fs.readFileSync(kept)).digest('hex'), f.name).to.equal(f.sha256);
    }
    const manifest = JSON.parse(fs.readFileSync((await files.localPath(id, 'manifest.json'))!, 'utf8')) as SignedManifest;
    expect(manifest.manifest.renderId).to.equal(id);
  });

  it('a signed download reads its file through RenderFiles; a finished render lacking the file is "no such download"', async () => {
    const files = new NotingFiles(new LocalRenderFiles(layout));
    const clips = new ClipService({ store, layout, manager: {} as RoomManager, log, ffmpeg: null, stillThreads: 1, signer: new ManifestSigner(SECRET), linkSecret: SECRET, queue: idleQueue(), files });
    try {
      const { id } = await loopRender();
      const dir = await files.stagingDir(id);
      fs.writeFileSync(`${dir}/loop.gif`, 'GIF89a');
      await files.commit(id, [{ name: 'loop.gif', path: `${dir}/loop.gif`, contentType: 'image/gif' }]);
      await store.updateRender(id, { status: 'done', result: { files: { video: 'loop.mp4', gif: 'loop.gif' } } satisfies ClipResult });
      const view = (await clips.renderView(id))!;
      const link = (role: string) => new URL(view.downloads![role]!, 'http://x');
      const file = async (role: string) => {
        const url = link(role);
        const name = url.pathname.split('/').pop()!;
        return clips.file(id, name, url.searchParams.get('expires')!, url.searchParams.get('sig')!);
      };
      files.calls.length = 0;
      const gif = await file('gif');
      expect(gif).to.deep.include({ download: { kind: 'file', path: await new LocalRenderFiles(layout).localPath(id, 'loop.gif') }, contentType: 'image/gif' });
      expect(files.calls).to.deep.equal([{ op: 'download', renderId: id, name: 'loop.gif' }]);
      // The MP4 was never kept: the link is well signed, the file is not there.
      let err: unknown;
      await file('video').catch((e: unknown) => (err = e));
      expect(err).to.be.instanceOf(ClipError);
      expect(err).to.include({ code: 'not_found', message: 'no such download' });
    } finally {
      await clips.close();
    }
  });
});
