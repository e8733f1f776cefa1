// The visual model in a room, end to end on a real server: a model trained (tiny budget,
// real training in a child process) on a release's artwork; a prompt generates one texture
// (in the real worker) for the whole room; both members are told and read the same bytes,
// which are the ones every drawer of the server loads; a still's signed manifest names the
// model; withdrawing an artwork's consent retires the model and the room goes back to its
// artwork; prompts after that are drawn without a model.
import { expect } from 'chai';
import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { Hyperparameters } from '../../media/visuals/model/types.ts';
import { readTextChunks } from '../../media/visuals/still.ts';
import { DEMO_RELEASE_ID, DEMO_VISUAL_MODEL_DIR } from '../../server/catalog/demo-release.ts';
import { ingestRelease } from '../../server/catalog/ingest.ts';
import type { SignedManifest } from '../../server/clips/manifest.ts';
import { GENERATED_EFFECT } from '../../server/rooms/prompt-visuals.ts';
import { blobTextureLoader } from '../../server/work/generated-textures.ts';
import type { AppliedPrompt } from '../../shared/socket-events.ts';
import { isGeneratedArtworkId } from '../../shared/visual-params.ts';
import { api, connectMember, connectSocket, joinAs, nextEvent, openRoom, waitFor, type Member, type RoomSocket } from '../support/room-clients.ts';
import { writeFixtureRelease, type FixtureOptions } from '../support/release-fixture.ts';
import { tempDir } from '../support/temp.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const TINY: Partial<Hyperparameters> = { levels: [8, 6], code: 4, noise: [4, 2], scales: [[1, 1, 4], [1, 3, 8], [2, 3, 8]], banks: 2, quantiles: 256, batch: 2, crop: 16, trainScale: 32, dilations: [1, 1], margin: 1 };
const sha256 = (b: Uint8Array | Uint8ClampedArray) => crypto.createHash('sha256').update(b).digest('hex');
const RELEASE = 'modelroom';

function artwork(wavesConsent: boolean): NonNullable<FixtureOptions['artwork']> {
  return [
    { id: 'cover', width: 128, height: 128 },
    { id: 'waves', width: 160, height: 96, consent: wavesConsent },
  ];
}

describe('the visual model in a room (real server, real training and generation)', function () {
  this.timeout(120_000);
  let t: TestServer;
  let work: { path: string; remove(): Promise<void> };
  const sockets: RoomSocket[] = [];
  const members: Member[] = [];

  async function ingest(wavesConsent: boolean): Promise<void> {
    const folder = path.join(work.path, `release-${wavesConsent ? 'a' : 'b'}`);
    await writeFixtureRelease(folder, { id: RELEASE, stems: [{ id: 'a', seconds: 6 }], excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 6 }], artwork: artwork(wavesConsent) });
    await ingestRelease(folder, { store: t.server.store, layout: t.server.layout, ffmpeg: null, blobs: t.server.blobs, replace: !wavesConsent });
  }

  before(async () => {
    work = await tempDir('visual-model-room');
    t = await startTestServer({ visualModel: { train: 'off', steps: 3, seed: 1, mix: 0.4 } }, { visualModels: { hyperparameters: TINY, pollMs: 60_000 } });
    await ingest(true);
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    for (const m of members) m.destroy();
    await t?.close();
    await work?.remove();
  });

  it("the demo release's shipped model (this project's own training on the demo's own artwork) is installed on a fresh start, not trained again", async () => {
    const shipped = JSON.parse(await fsp.readFile(path.join(DEMO_VISUAL_MODEL_DIR, 'record.json'), 'utf8')) as { modelId: string; steps: number };
    const current = await t.server.visualModels.current(DEMO_RELEASE_ID);
    expect(current?.modelId, 'the shipped model no longer matches the demo artwork: retrain it (README, "The demo release")').to.equal(shipped.modelId);
    expect(sha256(await fsp.readFile(path.join(DEMO_VISUAL_MODEL_DIR, 'weights.bin')))).to.equal(shipped.modelId);
    expect((await t.server.visualModels.view(DEMO_RELEASE_ID))?.status).to.equal('ready');
  });

  it('without a model a prompt is drawn from the artwork alone, as before', async () => {
    const room = await openRoom(t.url, { releaseId: RELEASE });
    const host = await connectSocket(t.url, room.roomId, room.hostToken);
    sockets.push(host);
    const applied = nextEvent(host, 'prompt:applied');
    expect(await host.emitWithAck('prompt:submit', { text: 'stormy ocean waves' })).to.include({ ok: true, status: 'applied' });
    const [shown] = await applied;
    expect(shown.generated).to.equal(undefined);
    expect(shown.effects).to.not.include(GENERATED_EFFECT);
    const params = t.server.rooms.get(room.roomId)!.state().visual.params as { artworks: { id: string }[] };
    expect(params.artworks.some((a) => isGeneratedArtworkId(a.id))).to.equal(false);
  });

  it('with a model, one prompt generates one texture for the room: both members are told, read the same bytes, and so do the drawers; a still names the model', async () => {
    const record = await t.server.visualModels.train(RELEASE);
    expect((await t.server.visualModels.current(RELEASE))?.modelId).to.equal(record.modelId);
    const room = await openRoom(t.url, { releaseId: RELEASE });
    const host = await connectSocket(t.url, room.roomId, room.hostToken);
    const fan = await joinAs(t.url, room, 'remixer', 'Fan');
    const fanSocket = await connectSocket(t.url, room.roomId, fan.token);
    sockets.push(host, fanSocket);
    const doc = await connectMember(t.url, room.roomId, fan.token);
    members.push(doc);
    const toHost = nextEvent(host, 'prompt:applied');
    const toFan = nextEvent(fanSocket, 'prompt:applied');
    expect(await fanSocket.emitWithAck('prompt:submit', { text: 'stormy ocean waves' })).to.include({ ok: true, status: 'applied' });
    const [a] = (await toHost) as [AppliedPrompt];
    const [b] = (await toFan) as [AppliedPrompt];
    expect(a.generated).to.deep.equal(b.generated);
    expect(a.generated!.modelId).to.equal(record.modelId);
    expect(a.generated!.recordUrl).to.equal(`/api/releases/${RELEASE}/visual-model/${record.modelId}`);
    expect(a.effects).to.include(GENERATED_EFFECT);
    expect(a.summary).to.contain('a model trained only on it');
    // The room's document names the texture in the params, and the model beside them.
    await waitFor(() => (doc.doc.getMap('visual').get('model') as { modelId?: string } | null)?.modelId === record.modelId, 5000, 'the model in the document');
    const params = doc.doc.getMap('visual').get('params') as { artworks: { id: string; weight: number }[] };
    const gen = params.artworks.find((x) => isGeneratedArtworkId(x.id))!;
    expect(gen.id).to.equal(a.generated!.textureId);
    expect(gen.weight).to.equal(0.4);
    // Two members read the same bytes, as the server's drawers do.
    const url = `${t.url}/api/releases/${RELEASE}/visual-model/textures/${gen.id}`;
    const [r1, r2] = await Promise.all([fetch(url), fetch(url)]);
    expect(r1.status).to.equal(200);
    expect(r1.headers.get('cache-control')).to.contain('immutable');
    const [b1, b2] = [new Uint8Array(await r1.arrayBuffer()), new Uint8Array(await r2.arrayBuffer())];
    expect(b1.length).to.equal(512 * 512 * 4);
    expect(sha256(b2)).to.equal(sha256(b1));
    const loaded = await blobTextureLoader(t.server.blobs).load(RELEASE, gen.id);
    expect(loaded!.modelId).to.equal(record.modelId);
    expect(sha256(loaded!.artwork.rgba)).to.equal(sha256(b1));
    // Not a flat picture.
    const values = new Set<number>();
    for (let i = 0; i < b1.length; i += 4 * 97) values.add(b1[i]! * 65536 + b1[i + 1]! * 256 + b1[i + 2]!);
    expect(values.size).to.be.greaterThan(20);
    // The same prompt again: the same texture (kept under its key), nothing generated anew.
    const again = nextEvent(host, 'prompt:applied');
    await host.emitWithAck('prompt:submit', { text: 'stormy ocean waves' });
    expect((await again)[0].generated!.textureId).to.equal(gen.id);
    // A still of the room: its signed manifest names the model that drew part of it.
    const res = await fetch(`${t.url}/api/rooms/${room.roomId}/visuals.png?width=320&height=180`, { headers: { authorization: `Bearer ${fan.token}` } });
    expect(res.status).to.equal(200);
    const signed = JSON.parse(readTextChunks(Buffer.from(await res.arrayBuffer()))['remixroom:manifest']!) as SignedManifest;
    expect(signed.manifest.visualModels).to.deep.equal([{ id: record.modelId, method: record.method, record: `/api/releases/${RELEASE}/visual-model/${record.modelId}` }]);
    // Withdrawing an artwork's consent retires the model: the room goes back to its artwork.
    await ingest(false);
    await t.server.visualModels.reconcile(RELEASE);
    await waitFor(() => doc.doc.getMap('visual').get('model') === null, 10_000, 'the room to drop the retired model’s texture');
    const after = doc.doc.getMap('visual').get('params') as { artworks: { id: string }[] };
    expect(after.artworks.some((x) => isGeneratedArtworkId(x.id))).to.equal(false);
    expect(doc.doc.getMap('visual').get('summary'), 'the status line no longer says the model drew it').to.not.contain(GENERATED_EFFECT);
    expect(await t.server.visualModels.current(RELEASE)).to.equal(null);
    const view = (await api<{ history: { modelId: string; status: string; retired?: { because: string } }[] }>(t.url, 'GET', `/api/releases/${RELEASE}/visual-model`)).body;
    expect(view.history.find((m) => m.modelId === record.modelId)).to.include({ status: 'retired' });
    // A prompt now is drawn without a model; files made with the old one still name it (its record stays).
    const later = nextEvent(host, 'prompt:applied');
    await host.emitWithAck('prompt:submit', { text: 'golden calm sunrise' });
    expect((await later)[0].generated).to.equal(undefined);
    expect((await fetch(`${t.url}/api/releases/${RELEASE}/visual-model/${record.modelId}`)).status).to.equal(200);
  });
});
