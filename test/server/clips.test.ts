// Clips through a real server and Debian's ffmpeg: commit with an idempotency
// key, progress over socket.io and HTTP, signed downloads that ffprobe accepts,
// a manifest whose signature and file hashes check out, and refusals.
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { io, type Socket } from 'socket.io-client';
import type * as Y from 'yjs';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { verifyManifest, type SignedManifest } from '../../server/clips/manifest.ts';
import { readTextChunks } from '../../media/visuals/still.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import type { ClientToServerEvents, RenderProgress, ServerToClientEvents } from '../../shared/socket-events.ts';
import { requireComponent } from '../support/components.ts';
import { api, connectMember, from, joinAs, masterMap, openRoom, stemMap, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

async function commit(base: string, roomId: string, token: string | null, body: unknown, key: string | null) {
  const res = await fetch(`${base}/api/rooms/${roomId}/clips`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...(key ? { 'idempotency-key': key } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as ClipView & { error?: { code: string; message: string } } };
}

describe('clips (real server, native ffmpeg)', function () {
  this.timeout(120_000);
  let native: NativeFfmpeg | null;
  let t: TestServer;
  let room: OpenedRoom;
  let remixer: Member;
  let remixerToken: string;
  let socket: Client;
  const progress: RenderProgress[] = [];
  let clip: ClipView;

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    t = await startTestServer();
    room = await openRoom(t.url);
    remixerToken = (await joinAs(t.url, room, 'remixer', 'Remi')).token;
    remixer = await connectMember(t.url, room.roomId, remixerToken);
    socket = io(t.url, { auth: { roomId: room.roomId, token: remixerToken }, transports: ['websocket'], reconnection: false });
    socket.on('render:progress', (p) => progress.push(p));
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    // Something to hear and see: play, move things, prompt.
    remixer.doc.transact(() => (remixer.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
    await new Promise((r) => setTimeout(r, 400));
    remixer.doc.transact(() => stemMap(remixer.doc, 'drums').set('gainDb', -6));
    const prompted = await (socket.timeout(5000).emitWithAck as (ev: string, p: unknown) => Promise<{ ok: boolean }>)('prompt:submit', { text: 'stormy neon night' });
    expect(prompted.ok).to.equal(true);
    await new Promise((r) => setTimeout(r, 400));
    remixer.doc.transact(() => masterMap(remixer.doc).set('reverbMix', 0.4));
    // A clip is at least 8 s (a whole period of the watermark): let the room record that much.
    await new Promise((r) => setTimeout(r, 7000));
  });

  after(async () => {
    socket?.disconnect();
    remixer?.destroy();
    await t?.close();
  });

  it('refuses a commit without a token, a key, or within limits', async () => {
    expect((await commit(t.url, room.roomId, null, { seconds: 2 }, 'k0')).status).to.equal(401);
    expect((await commit(t.url, room.roomId, remixerToken, { seconds: 2 }, null)).status).to.equal(400);
    for (const seconds of [0, -3, 5, 31, 'ten']) {
      const r = await commit(t.url, room.roomId, remixerToken, { seconds }, `bad-${String(seconds)}`);
      expect(r.status, String(seconds)).to.equal(400);
      expect(r.body.error!.code).to.equal('invalid_body');
    }
    expect((await commit(t.url, room.roomId, remixerToken, { seconds: 2, extra: 1 }, 'k-extra')).status).to.equal(400);
    // A token of another room.
    const other = await openRoom(t.url);
    expect((await commit(t.url, room.roomId, other.hostToken, { seconds: 2 }, 'k-other')).status).to.equal(403);
    expect((await commit(t.url, 'nosuchroom123', remixerToken, { seconds: 2 }, 'k-none')).status).to.be.oneOf([403, 404]);
  });

  it('commits the last seconds at once; the same key answers the same clip, a different body is refused', async () => {
    // A change inside the window, so that the manifest has someone to name.
    remixer.doc.transact(() => masterMap(remixer.doc).set('gainDb', -2));
    await new Promise((r) => setTimeout(r, 300));
    const first = await commit(t.url, room.roomId, remixerToken, { seconds: 8 }, 'clip-key-1');
    expect(first.status, JSON.stringify(first.body)).to.equal(202);
    expect(first.body.clipId).to.match(/^[0-9a-f]{16}$/);
    expect(first.body.status).to.be.oneOf(['queued', 'running']);
    const again = await commit(t.url, room.roomId, remixerToken, { seconds: 8 }, 'clip-key-1');
    expect(again.status).to.equal(200);
    expect(again.body.clipId).to.equal(first.body.clipId);
    const different = await commit(t.url, room.roomId, remixerToken, { seconds: 9 }, 'clip-key-1');
    expect(different.status).to.equal(409);
    clip = first.body;
  });

  it('renders it: progress reaches the room and the status endpoint, then signed downloads appear', async () => {
    const deadline = Date.now() + 90_000;
    let view: ClipView;
    for (;;) {
      view = (await api<ClipView>(t.url, 'GET', `/api/clips/${clip.clipId}`, undefined, remixerToken)).body;
      if (view.status === 'done' || view.status === 'failed') break;
      if (Date.now() > deadline) throw new Error(`the clip did not finish: ${JSON.stringify(view)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(view.status, JSON.stringify(view)).to.equal('done');
    expect(view.progress).to.equal(1);
    expect(view.downloads).to.have.keys('video', 'audio', 'manifest', 'expiresAt');
    const mine = progress.filter((p) => p.clipId === clip.clipId);
    expect(mine.map((p) => p.status)).to.include('done');
    // Each report says what is rendered, so that the app can tell a clip from a loop or a bought version.
    expect(new Set(mine.map((p) => p.kind))).to.deep.equal(new Set(['clip']));
    clip = view;
  });

  it('the files: an MP4 ffprobe accepts (H.264 1280x720, AAC, the length asked), an audio file, and a manifest that verifies and matches them', async () => {
    const dir = fs.mkdtempSync(path.join(t.dataDir, 'dl-'));
    const get = async (url: string) => {
      const res = await fetch(t.url + url);
      expect(res.status, url).to.equal(200);
      return Buffer.from(await res.arrayBuffer());
    };
    const video = await get(clip.downloads!.video!);
    const audio = await get(clip.downloads!.audio!);
    const signed = JSON.parse((await get(clip.downloads!.manifest!)).toString('utf8')) as SignedManifest;
    // Saved under the release's name and the clip's time in the room, not an id.
    const { artist, title } = signed.manifest.release;
    const disposition = (await fetch(t.url + clip.downloads!.video!)).headers.get('content-disposition') ?? '';
    const named = /^attachment; filename="(.+) \(Remixroom clip (\d+)m(\d\d)s-(\d+)m(\d\d)s\)\.mp4"; filename\*=UTF-8''(\S+)$/.exec(disposition);
    expect(named, disposition).to.not.equal(null);
    expect(named![1]).to.equal(`${artist} - ${title}`);
    expect(decodeURIComponent(named![6]!)).to.equal(`${artist} - ${title} (Remixroom clip ${named![2]}m${named![3]}s-${named![4]}m${named![5]}s).mp4`);
    const [fromSec, toSec] = [Number(named![2]) * 60 + Number(named![3]), Number(named![4]) * 60 + Number(named![5])];
    expect(toSec - fromSec).to.be.within(7, 9);
    expect((await fetch(t.url + clip.downloads!.audio!)).headers.get('content-disposition')).to.include(`filename="${artist} - ${title} (Remixroom clip `).and.match(/\.m4a"; /);
    fs.writeFileSync(path.join(dir, 'v.mp4'), video);
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', path.join(dir, 'v.mp4')]);
    const info = JSON.parse(probe.stdout) as { streams: { codec_name: string; width?: number; height?: number }[]; format: { duration: string; tags?: Record<string, string> } };
    expect(info.streams.map((s) => s.codec_name).sort()).to.deep.equal(['aac', 'h264']);
    expect(info.streams.find((s) => s.codec_name === 'h264')).to.include({ width: 1280, height: 720 });
    expect(Number(info.format.duration)).to.be.closeTo(8, 1 / 30 + 0.03);
    // The manifest: signed with the server's published key, naming the files as served.
    const key = (await api<{ publicKey: string }>(t.url, 'GET', '/api/manifest-key')).body.publicKey;
    expect(verifyManifest(signed, key)).to.equal(true);
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    expect(signed.manifest.files!.map((f) => f.sha256).sort()).to.deep.equal([sha(video), sha(audio)].sort());
    expect(signed.manifest).to.include({ renderId: clip.clipId, kind: 'clip' });
    expect(signed.manifest.release.id).to.equal('remixroom-demo');
    expect(signed.manifest.room.id).to.equal(room.roomId);
    const remi = signed.manifest.contributors.find((c) => c.name === 'Remi');
    expect(remi, JSON.stringify(signed.manifest.contributors)).to.not.equal(undefined);
    // A tampered manifest does not verify.
    const tampered = structuredClone(signed);
    tampered.manifest.requestedBy.name = 'Mallory';
    expect(verifyManifest(tampered, key)).to.equal(false);
    // The copy inside the MP4 is signed too (without file hashes).
    const embedded = JSON.parse(info.format.tags?.['comment'] ?? 'null') as SignedManifest;
    expect(verifyManifest(embedded, key)).to.equal(true);
    expect(embedded.manifest.renderId).to.equal(clip.clipId);
  });

  it('a vertical version of the clip: 1080x1920, the same length, visuals recomposed (not letterboxed), named as such; the same key answers it again', async () => {
    // Another member of the room, from an address of their own (the clips so far used up Remi's share of the clip limit).
    const vera = await joinAs(t.url, room, 'remixer', 'Vera');
    const post = (clipId: string, token: string | null, key: string | null) =>
      fetch(`${t.url}/api/clips/${clipId}/vertical`, { method: 'POST', headers: { ...from(vera.address), ...(token ? { authorization: `Bearer ${token}` } : {}), ...(key ? { 'idempotency-key': key } : {}) } });
    expect((await post(clip.clipId, null, 'v1')).status).to.equal(401);
    expect((await post(clip.clipId, vera.token, null)).status).to.equal(400);
    expect((await post('0123456789abcdef', vera.token, 'v1')).status).to.equal(404);
    const other = await openRoom(t.url);
    expect((await post(clip.clipId, other.hostToken, 'v1')).status).to.equal(404);
    const first = await post(clip.clipId, vera.token, 'v1');
    const made = (await first.json()) as ClipView;
    expect(first.status, JSON.stringify(made)).to.equal(202);
    expect(made).to.include({ shape: 'vertical', sourceClipId: clip.clipId, seconds: clip.seconds });
    expect(made.clipId).to.not.equal(clip.clipId);
    const again = await post(clip.clipId, vera.token, 'v1');
    expect(again.status).to.equal(200);
    expect(((await again.json()) as ClipView).clipId).to.equal(made.clipId);
    // The vertical version of a vertical version is refused.
    expect((await post(made.clipId, vera.token, 'v2')).status).to.equal(400);
    const deadline = Date.now() + 110_000;
    let view: ClipView;
    for (;;) {
      view = (await api<ClipView>(t.url, 'GET', `/api/clips/${made.clipId}`, undefined, vera.token)).body;
      if (view.status === 'done' || view.status === 'failed') break;
      if (Date.now() > deadline) throw new Error(`the vertical version did not finish: ${JSON.stringify(view)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(view.status, JSON.stringify(view)).to.equal('done');
    const res = await fetch(t.url + view.downloads!.video!);
    expect(res.headers.get('content-disposition')).to.match(/filename="[^"]+ \(Remixroom vertical clip \d+m\d\ds-\d+m\d\ds\)\.mp4"/);
    const dir = fs.mkdtempSync(path.join(t.dataDir, 'dl-'));
    const file = path.join(dir, 'vertical.mp4');
    fs.writeFileSync(file, Buffer.from(await res.arrayBuffer()));
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]);
    const info = JSON.parse(probe.stdout) as { streams: { codec_name: string; width?: number; height?: number }[]; format: { duration: string } };
    expect(info.streams.find((x) => x.codec_name === 'h264')).to.include({ width: 1080, height: 1920 });
    expect(info.streams.map((x) => x.codec_name), 'the mix, as AAC').to.include('aac');
    // Made for sharing: within the size target of a 30 s clip (10 MB), per second.
    expect(fs.statSync(file).size / clip.seconds, 'bytes a second').to.be.below(10e6 / 30);
    expect(Number(info.format.duration)).to.be.closeTo(clip.seconds, 1 / 30 + 0.03);
    // Not letterboxed: the picture reaches above and below where a 16:9 picture would sit (a letterbox's bands
    // decode to flat black; the room's "stormy neon night" visuals are dark, so what counts is that something is drawn there).
    const frame = spawnSync(native!.ffmpeg, ['-v', 'error', '-ss', '2', '-i', file, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'gray', '-'], { maxBuffer: 64 << 20 });
    expect(frame.status, String(frame.stderr)).to.equal(0);
    const drawn = (fromRow: number, toRow: number) => {
      let n = 0;
      for (let i = fromRow * 1080; i < toRow * 1080; i++) if (frame.stdout[i]! > 4) n++;
      return n / ((toRow - fromRow) * 1080);
    };
    expect(drawn(0, 600), 'above a 16:9 band').to.be.greaterThan(0.005);
    expect(drawn(1300, 1750), 'below a 16:9 band (above the credit)').to.be.greaterThan(0.005);
  });

  it('refuses tampered and expired download links', async () => {
    const url = new URL(clip.downloads!.video!, t.url);
    const sig = url.searchParams.get('sig')!;
    const bad = new URL(url);
    bad.searchParams.set('sig', (sig[0] === 'a' ? 'b' : 'a') + sig.slice(1));
    expect((await fetch(bad)).status).to.equal(404);
    const longer = new URL(url);
    longer.searchParams.set('expires', String(Number(url.searchParams.get('expires')) + 3600));
    expect((await fetch(longer)).status).to.equal(404);
    const otherFile = new URL(url.toString().replace('clip.mp4', 'clip.m4a'));
    expect((await fetch(otherFile)).status).to.equal(404);
    const traversal = new URL(url.toString().replace('clip.mp4', '..%2F..%2Fsecrets.json'));
    expect((await fetch(traversal)).status).to.equal(404);
    // An expired link, signed with the server's own secret (as if issued an hour ago).
    const secret = (JSON.parse(fs.readFileSync(path.join(t.dataDir, 'secrets.json'), 'utf8')) as { tokenSecret: string }).tokenSecret;
    const expires = Math.floor(Date.now() / 1000) - 10;
    const expiredSig = crypto.createHmac('sha256', secret).update(`clip-file\n${clip.clipId}\nclip.mp4\n${expires}`).digest('hex');
    const expired = await fetch(`${t.url}/api/clips/${clip.clipId}/files/clip.mp4?expires=${expires}&sig=${expiredSig}`);
    expect(expired.status).to.equal(404);
    expect(((await expired.json()) as { error: { message: string } }).error.message).to.match(/expired/);
    const member = { headers: { authorization: `Bearer ${remixerToken}` } };
    expect((await fetch(`${t.url}/api/clips/ffffffffffffffff`, member)).status).to.equal(404);
    expect((await fetch(`${t.url}/api/clips/not-a-clip`, member)).status).to.equal(404);
    // A clip's id is in every copy of its file: alone, or with a token of another room, it gives nothing.
    expect((await fetch(`${t.url}/api/clips/${clip.clipId}`)).status).to.equal(401);
    const stranger = await openRoom(t.url);
    expect((await fetch(`${t.url}/api/clips/${clip.clipId}`, { headers: { authorization: `Bearer ${stranger.hostToken}` } })).status).to.equal(404);
    expect((await fetch(`${t.url}/api/clips/${clip.clipId}`, member)).status).to.equal(200);
  });

  it('a still of the visuals: a PNG of the moment with a signed manifest inside; bad sizes and moments refused', async () => {
    const res = await fetch(`${t.url}/api/rooms/${room.roomId}/visuals.png?width=640&height=360`, { headers: { authorization: `Bearer ${remixerToken}` } });
    expect(res.status).to.equal(200);
    expect(res.headers.get('content-type')).to.equal('image/png');
    const png = Buffer.from(await res.arrayBuffer());
    expect(png.subarray(1, 4).toString('latin1')).to.equal('PNG');
    expect(png.readUInt32BE(16)).to.equal(640);
    expect(png.readUInt32BE(20)).to.equal(360);
    const signed = JSON.parse(readTextChunks(png)['remixroom:manifest']!) as SignedManifest;
    const key = (await api<{ publicKey: string }>(t.url, 'GET', '/api/manifest-key')).body.publicKey;
    expect(verifyManifest(signed, key)).to.equal(true);
    expect(signed.manifest).to.include({ kind: 'still' });
    expect(signed.manifest.room.id).to.equal(room.roomId);
    const auth = { authorization: `Bearer ${remixerToken}` };
    for (const q of ['width=641&height=360', 'width=8&height=8', 'width=640&height=99999', 'atMs=1', `atMs=${Date.now() + 60_000}`, 'nonsense=1']) {
      const r = await fetch(`${t.url}/api/rooms/${room.roomId}/visuals.png?${q}`, { headers: auth });
      expect(r.status, q).to.equal(400);
    }
    expect((await fetch(`${t.url}/api/rooms/${room.roomId}/visuals.png`)).status).to.equal(401);
  });

  it('a loop of the visuals: an MP4 and a looping GIF, with a signed manifest naming both', async () => {
    const made = await fetch(`${t.url}/api/rooms/${room.roomId}/loops`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${remixerToken}`, 'idempotency-key': 'loop-1' },
      body: JSON.stringify({ seconds: 2 }),
    });
    expect(made.status).to.equal(202);
    const { clipId } = (await made.json()) as ClipView;
    const deadline = Date.now() + 90_000;
    let view: ClipView;
    for (;;) {
      view = (await api<ClipView>(t.url, 'GET', `/api/clips/${clipId}`, undefined, remixerToken)).body;
      if (view.status === 'done' || view.status === 'failed') break;
      if (Date.now() > deadline) throw new Error('the loop did not finish');
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(view.status).to.equal('done');
    expect(view.downloads).to.include.keys('video', 'gif', 'manifest');
    const gif = Buffer.from(await (await fetch(t.url + view.downloads!.gif!)).arrayBuffer());
    expect(gif.subarray(0, 6).toString('latin1')).to.equal('GIF89a');
    expect(gif.includes(Buffer.from('NETSCAPE2.0', 'latin1')), 'the GIF loops').to.equal(true);
    // Seamlessness is measured in test/media/loop-render.test.ts; here: the files as served and their manifest.
    const video = Buffer.from(await (await fetch(t.url + view.downloads!.video!)).arrayBuffer());
    const signed = JSON.parse(Buffer.from(await (await fetch(t.url + view.downloads!.manifest!)).arrayBuffer()).toString('utf8')) as SignedManifest;
    const key = (await api<{ publicKey: string }>(t.url, 'GET', '/api/manifest-key')).body.publicKey;
    expect(verifyManifest(signed, key)).to.equal(true);
    expect(signed.manifest.kind).to.equal('loop');
    const sha = (b: Buffer) => crypto.createHash('sha256').update(b).digest('hex');
    expect(signed.manifest.files!.map((f) => f.sha256).sort()).to.deep.equal([sha(video), sha(gif)].sort());
  });

  it('verify: the clip as downloaded is traced to its render with a genuine manifest; a re-encode is traced too; unmarked and non-media files are not', async () => {
    const verify = async (body: Buffer) => {
      const res = await fetch(`${t.url}/api/verify`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(body) });
      return { status: res.status, body: (await res.json()) as { found?: boolean; renderId?: string; manifestGenuine?: boolean; fileMatchesManifest?: boolean; render?: { roomId: string; releaseId: string }; error?: { code: string } } };
    };
    const view = (await api<ClipView>(t.url, 'GET', `/api/clips/${clip.clipId}`, undefined, remixerToken)).body;
    const video = Buffer.from(await (await fetch(t.url + view.downloads!.video!)).arrayBuffer());
    const direct = await verify(video);
    expect(direct.status).to.equal(200);
    expect(direct.body).to.include({ found: true, renderId: clip.clipId, manifestGenuine: true, fileMatchesManifest: true });
    expect(direct.body.render).to.include({ roomId: room.roomId, releaseId: 'remixroom-demo' });
    // Re-encoded to MP3 at 128 kbps: still traced, no longer the file the manifest names.
    const dir = fs.mkdtempSync(path.join(t.dataDir, 'verify-'));
    fs.writeFileSync(path.join(dir, 'clip.mp4'), video);
    const enc = await runCapture(native!.ffmpeg, ['-v', 'error', '-y', '-i', path.join(dir, 'clip.mp4'), '-vn', '-c:a', 'libmp3lame', '-b:a', '128k', path.join(dir, 'clip.mp3')]);
    expect(enc.code, enc.stderr).to.equal(0);
    const mp3 = await verify(fs.readFileSync(path.join(dir, 'clip.mp3')));
    expect(mp3.body).to.include({ found: true, renderId: clip.clipId, manifestGenuine: true, fileMatchesManifest: false });
    // Unmarked music (a stem of the release, never rendered here) is not identified.
    const stem = await runCapture(native!.ffmpeg, ['-v', 'error', '-y', '-i', path.join(t.dataDir, 'releases', 'remixroom-demo', 'stems', 'harmony.wav'), '-t', '12', '-c:a', 'libmp3lame', '-b:a', '128k', path.join(dir, 'stem.mp3')]);
    expect(stem.code, stem.stderr).to.equal(0);
    expect((await verify(fs.readFileSync(path.join(dir, 'stem.mp3')))).body.found).to.equal(false);
    // Not media at all, and nothing.
    const text = await verify(Buffer.from('this is not a media file at all'.repeat(100)));
    expect(text.status).to.equal(400);
    expect((await verify(Buffer.alloc(0))).status).to.equal(400);
  });
});

describe('clips: a retried commit once the room has left this node', function () {
  this.timeout(120_000);
  let t: TestServer;

  before(async function () {
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    t = await startTestServer({}, { roomTimings: { graceMs: 200 } });
  });
  after(async () => {
    await t?.close();
  });

  it('answers the first clip for the same key (not "the room is not live"); a new key is refused', async () => {
    const room = await openRoom(t.url);
    const { token } = await joinAs(t.url, room, 'remixer', 'Rae');
    const member = await connectMember(t.url, room.roomId, token);
    member.doc.transact(() => stemMap(member.doc, 'bass').set('gainDb', -3));
    await new Promise((r) => setTimeout(r, 8500));
    const first = await commit(t.url, room.roomId, token, { seconds: 8 }, 'retry-key');
    expect(first.status, JSON.stringify(first.body)).to.equal(202);
    member.destroy();
    const deadline = Date.now() + 10_000;
    while (t.server.rooms.get(room.roomId)) {
      if (Date.now() > deadline) throw new Error('the room did not unload');
      await new Promise((r) => setTimeout(r, 50));
    }
    const again = await commit(t.url, room.roomId, token, { seconds: 8 }, 'retry-key');
    expect(again.status, JSON.stringify(again.body)).to.equal(200);
    expect(again.body.clipId).to.equal(first.body.clipId);
    // (Three commits a minute per member: this is the third.)
    const fresh = await commit(t.url, room.roomId, token, { seconds: 8 }, 'another-key');
    expect(fresh.status).to.equal(409);
    expect(fresh.body.error!.message).to.match(/not live/);
  });
});
