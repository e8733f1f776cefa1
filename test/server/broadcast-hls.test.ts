// A room in broadcast mode, against a real server with a real ffmpeg: the host
// switches it on, the room's mix (and visuals) are encoded once into LL-HLS,
// members get the playlist with the room's listen key, and a player's requests
// are answered as RFC 8216bis says (parts, preload hint, blocking reloads).
// What the playlists carry is the room's mix: decoded back with ffmpeg, it is
// loud while the stems play and silent once a remixer mutes them all. A listener
// is refused WebRTC in broadcast mode (the stage is for hosts and remixers) and
// may ask to join the stage; an encoder that dies comes back after a
// discontinuity, with the numbering going on. Bad requests change nothing.
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { ffmpegCannotBroadcast } from '../../media/live/broadcast-encoder.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { api, connectMember, connectSocket, from, joinAs, nextEvent, openRoom, stemMap, strangerAddress, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';
import { tempDir } from '../support/temp.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { listenToRoom, type WeriftListener } from '../support/werift-listener.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface BroadcastStatus {
  roomId: string;
  enabled: boolean;
  live: boolean;
  unavailable: string | null;
  playlist?: string;
  renditions?: Record<string, string>;
}

interface PlaylistView {
  text: string;
  map: string | null;
  parts: { uri: string; msn: number; index: number; duration: number; independent: boolean }[];
  segments: { uri: string; msn: number }[];
  mediaSequence: number;
  discontinuities: number;
  preloadHint: string | null;
  ended: boolean;
}

/** A media playlist read as a player reads it. */
function readPlaylist(text: string): PlaylistView {
  const lines = text.split('\n');
  const mediaSequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? NaN);
  const parts: PlaylistView['parts'] = [];
  const segments: PlaylistView['segments'] = [];
  let map: string | null = null;
  let msn = mediaSequence;
  let index = 0;
  for (const line of lines) {
    const m = /#EXT-X-MAP:URI="([^"]+)"/.exec(line);
    if (m) map = m[1]!;
    const p = /#EXT-X-PART:DURATION=([\d.]+),URI="([^"]+)"(,INDEPENDENT=YES)?/.exec(line);
    if (p) parts.push({ uri: p[2]!, msn, index: index++, duration: Number(p[1]), independent: Boolean(p[3]) });
    if (line && !line.startsWith('#')) {
      segments.push({ uri: line, msn });
      msn++;
      index = 0;
    }
  }
  return {
    text,
    map,
    parts,
    segments,
    mediaSequence,
    discontinuities: lines.filter((l) => l === '#EXT-X-DISCONTINUITY').length,
    preloadHint: /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)?.[1] ?? null,
    ended: text.includes('#EXT-X-ENDLIST'),
  };
}

for (const adapter of SFU_ADAPTERS) describe(adapterTitle('broadcast mode: the room as LL-HLS, encoded once', adapter), function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  let listener: { token: string; userId: string; address: string };
  let remixer: Member;
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const sockets: RoomSocket[] = [];

  before(async function () {
    await requireSfuAdapter(adapter, this);
    requireComponent('ffmpeg', commandExists('ffmpeg') && (await ffmpegCannotBroadcast('ffmpeg')) === null, this);
    t = await startTestServer({}, { adapter, live: { broadcast: { ffmpeg: 'ffmpeg', segmentSec: 1, endedKeepMs: 60_000, restart: { initialMs: 200, maxMs: 400, maxFailures: 4, healthyMs: 60_000 } } } });
    room = await openRoom(t.url);
    dir = await tempDir('broadcast-hls');
    listener = await joinAs(t.url, room, 'listener', 'Audience');
    const remixerToken = (await joinAs(t.url, room, 'remixer', 'Mixer')).token;
    remixer = await connectMember(t.url, room.roomId, remixerToken);
    remixer.doc.transact(() => (remixer.doc.getMap('arrangement').get('transport') as import('yjs').Map<unknown>).set('playing', true));
  });

  after(async () => {
    for (const s of sockets) s.disconnect();
    remixer?.destroy();
    await t?.close();
    await dir?.remove();
  });

  const get = (p: string, headers: Record<string, string> = {}) => fetch(`${t.url}${p}`, { headers });
  const status = (token?: string) => api<BroadcastStatus>(t.url, 'GET', `/api/rooms/${room.roomId}/broadcast`, undefined, token);
  let audioPlaylist = '';

  /** The rendition's playlist once it lists at least `parts` parts after `afterMsn`. */
  async function playlistWith(url: string, parts: number, afterMsn = -1, timeoutMs = 30_000): Promise<PlaylistView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const res = await get(url);
      if (res.status === 200) {
        const view = readPlaylist(await res.text());
        if (view.parts.filter((p) => p.msn > afterMsn).length >= parts) return view;
      } else await res.arrayBuffer();
      if (Date.now() > deadline) throw new Error(`the playlist ${url} did not reach ${parts} parts in time`);
      await sleep(200);
    }
  }

  const resolveUri = (playlistUrl: string, uri: string) => new URL(uri, `${t.url}${playlistUrl}`).pathname + new URL(uri, `${t.url}${playlistUrl}`).search;

  /** The audio's mean level (dBFS) over the given parts, decoded by ffmpeg from init + parts. */
  async function meanVolume(playlistUrl: string, view: PlaylistView, parts: PlaylistView['parts']): Promise<number> {
    const bytes: Buffer[] = [Buffer.from(await (await get(resolveUri(playlistUrl, view.map!))).arrayBuffer())];
    for (const p of parts) {
      const res = await get(resolveUri(playlistUrl, p.uri));
      expect(res.status, `part ${p.uri}`).to.equal(200);
      bytes.push(Buffer.from(await res.arrayBuffer()));
    }
    const file = path.join(dir.path, `audio-${Date.now()}.mp4`);
    await fsp.writeFile(file, Buffer.concat(bytes));
    const { stderr } = await run('ffmpeg', ['-hide_banner', '-nostats', '-i', file, '-af', 'volumedetect', '-f', 'null', '-']);
    const mean = /mean_volume: (-?[\d.]+|-inf) dB/.exec(stderr)?.[1];
    return mean === undefined || mean === '-inf' ? -120 : Number(mean);
  }

  it('the host switches it on; listeners and strangers cannot; members get the playlist with the listen key, the public only whether it is on', async () => {
    const before = await status();
    expect(before.status).to.equal(200);
    expect(before.body).to.include({ enabled: false, live: false, unavailable: null });
    const byListener = await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, listener.token);
    expect(byListener.status).to.equal(403);
    const forged = await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, `${room.hostToken}x`);
    expect(forged.status).to.equal(401);
    const malformed = await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: 'yes' }, room.hostToken);
    expect(malformed.status).to.equal(400);
    expect((await status()).body.enabled, 'refused switches change nothing').to.equal(false);

    const on = await api<BroadcastStatus>(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, room.hostToken);
    expect(on.status).to.equal(200);
    expect(on.body.enabled).to.equal(true);
    const publicView = await status();
    expect(publicView.body.enabled).to.equal(true);
    expect(publicView.body.playlist, 'no listen key for a stranger').to.equal(undefined);
    const memberView = await status(listener.token);
    expect(memberView.body.playlist).to.match(new RegExp(`^/api/rooms/${room.roomId}/hls/index\\.m3u8\\?k=[\\w-]{22}$`));
    audioPlaylist = memberView.body.renditions!['audio']!;
    expect(audioPlaylist).to.match(/\/hls\/audio\/index\.m3u8\?k=/);
    expect(memberView.body.renditions!['video'], 'the demo release has artwork: a video rendition too').to.match(/\/hls\/video\/index\.m3u8\?k=/);
    // The rules carry it to every member: the remixer's document says so too.
    const rules = () => remixer.doc.getMap('rules').get('broadcast');
    const deadline = Date.now() + 5000;
    while (rules() !== true && Date.now() < deadline) await sleep(20);
    expect(rules()).to.equal(true);
  });

  it('the playlists are low-latency HLS: parts, a preload hint, blocking reloads; media is immutable, playlists short-lived', async () => {
    const multivariant = await get((await status(listener.token)).body.playlist!);
    expect(multivariant.status).to.equal(200);
    expect(multivariant.headers.get('content-type')).to.match(/mpegurl/);
    await playlistWith(audioPlaylist, 2);
    const mv = await (await get((await status(listener.token)).body.playlist!)).text();
    expect(mv).to.match(/#EXT-X-STREAM-INF:[^\n]*CODECS="mp4a\.40\.2"/);
    expect(mv).to.match(/#EXT-X-STREAM-INF:[^\n]*CODECS="avc1\.[0-9a-fA-F]{6},mp4a\.40\.2"[^\n]*RESOLUTION=640x360/);
    // What a player does with the listen link: every variant's address, relative to the playlist, is a live playlist.
    const multivariantUrl = (await status(listener.token)).body.playlist!;
    const variants = mv.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(variants).to.have.length(2);
    for (const v of variants) {
      const res = await get(resolveUri(multivariantUrl, v));
      expect(res.status, v).to.equal(200);
      expect(await res.text()).to.match(/#EXT-X-PART:/);
    }

    const view = await playlistWith(audioPlaylist, 6);
    expect(view.text).to.match(/#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=/);
    expect(view.text).to.match(/#EXT-X-PART-INF:PART-TARGET=/);
    expect(view.text).to.match(/#EXT-X-PROGRAM-DATE-TIME:/);
    expect(view.map).to.match(/^init-\d+\.mp4\?k=/);
    expect(view.preloadHint).to.match(/^part-\d+\.\d+\.m4s\?k=/);
    for (const p of view.parts) expect(p.duration).to.be.within(0.1, 1.1);
    const res = await get(resolveUri(audioPlaylist, view.parts.at(-1)!.uri));
    expect(res.status).to.equal(200);
    expect(res.headers.get('cache-control')).to.match(/immutable/);
    expect(res.headers.get('content-type')).to.match(/mp4/);
    expect((await get(audioPlaylist)).headers.get('cache-control')).to.match(/max-age=1\b/);

    // A blocking reload for the part after the last one returns once it exists, and lists it.
    const last = view.parts.at(-1)!;
    const next = `${audioPlaylist}&_HLS_msn=${last.msn}&_HLS_part=${last.index + 1}`;
    const started = Date.now();
    const blocked = await get(next);
    expect(blocked.status).to.equal(200);
    const after = readPlaylist(await blocked.text());
    const waited = Date.now() - started;
    expect(after.parts.some((p) => (p.msn === last.msn && p.index === last.index + 1) || p.msn > last.msn), `the reload lists the next part (waited ${waited} ms)`).to.equal(true);
  });

  it('the audio is the room’s mix: loud while the stems play, silent soon after a remixer mutes them all', async () => {
    const loud = await playlistWith(audioPlaylist, 4);
    const loudDb = await meanVolume(audioPlaylist, loud, loud.parts.slice(-4));
    expect(loudDb, 'the playing mix').to.be.above(-40);
    const release = (await api<{ stems: { id: string }[] }>(t.url, 'GET', `/api/releases/${DEMO_RELEASE_ID}`)).body;
    expect(release.stems.length).to.be.greaterThan(0);
    const mutedAt = Date.now();
    remixer.doc.transact(() => {
      for (const s of release.stems) stemMap(remixer.doc, s.id).set('mute', true);
    });
    // Parts made from a second after the mute on: the encoder's delay is well under that.
    await sleep(1000);
    const base = readPlaylist(await (await get(audioPlaylist)).text());
    const lastMsn = base.parts.at(-1)!.msn;
    const quiet = await playlistWith(audioPlaylist, 4, lastMsn);
    const quietDb = await meanVolume(audioPlaylist, quiet, quiet.parts.filter((p) => p.msn > lastMsn).slice(0, 4));
    expect(quietDb, `muted ${Date.now() - mutedAt} ms ago`).to.be.below(-70);
    remixer.doc.transact(() => {
      for (const s of release.stems) stemMap(remixer.doc, s.id).set('mute', false);
    });
  });

  it('refuses what a player should not ask, without work: a wrong key, parts not made or dropped, bad reload numbers, path tricks', async () => {
    const k = /\?k=([\w-]+)/.exec(audioPlaylist)![1]!;
    const base = `/api/rooms/${room.roomId}/hls`;
    expect((await get(`${base}/audio/index.m3u8?k=${'A'.repeat(22)}`)).status).to.equal(403);
    expect((await get(`${base}/audio/index.m3u8`)).status).to.equal(403);
    expect((await get(`${base}/index.m3u8?k=${k}x`)).status).to.equal(403);
    expect((await get(`${base}/index.m3u8?k=${encodeURIComponent('é'.repeat(22))}`)).status, 'a key of other characters').to.equal(403);
    const view = readPlaylist(await (await get(audioPlaylist)).text());
    const ahead = view.parts.at(-1)!.msn + 50;
    const notYet = await get(`${base}/audio/part-${ahead}.0.m4s?k=${k}`);
    expect(notYet.status).to.equal(404);
    expect(notYet.headers.get('cache-control')).to.equal('no-cache');
    // Once the window has moved on, the oldest parts are gone.
    let listed = view;
    const start = view.mediaSequence;
    while (listed.mediaSequence < start + 3) {
      await sleep(500);
      listed = readPlaylist(await (await get(audioPlaylist)).text());
    }
    expect((await get(`${base}/audio/part-${start}.0.m4s?k=${k}`)).status, 'dropped from the window').to.equal(404);
    expect((await get(`${base}/audio/index.m3u8?k=${k}&_HLS_msn=abc`)).status).to.equal(400);
    expect((await get(`${base}/audio/index.m3u8?k=${k}&_HLS_msn=${ahead}`)).status, 'more than two segments ahead').to.equal(400);
    expect((await get(`${base}/audio/index.m3u8?k=${k}&_HLS_part=1`)).status, '_HLS_part alone').to.equal(400);
    expect((await get(`${base}/audio/..%2F..%2Fetc%2Fpasswd?k=${k}`)).status).to.equal(404);
    expect((await get(`${base}/subtitles/index.m3u8?k=${k}`)).status).to.equal(404);
    expect((await get(`${base}/audio/init-1.mp4.exe?k=${k}`)).status).to.equal(404);
    // The broadcast goes on.
    expect((await get(audioPlaylist)).status).to.equal(200);
  });

  it('a flood of playlist requests from one address is limited; other addresses go on', async () => {
    const flooder = strangerAddress();
    const codes: number[] = [];
    for (let i = 0; i < 120; i++) {
      const res = await get(audioPlaylist, from(flooder));
      codes.push(res.status);
      await res.arrayBuffer();
    }
    expect(codes.filter((c) => c === 429).length, 'the flood is limited').to.be.greaterThan(0);
    const limited = await get(audioPlaylist, from(flooder));
    if (limited.status === 429) expect(limited.headers.get('retry-after')).to.match(/^\d+$/);
    expect((await get(audioPlaylist, from(strangerAddress()))).status, 'another address').to.equal(200);
  });

  it('a listener is refused WebRTC in broadcast mode and may ask to join the stage; the hosts hear it; a remixer joins WebRTC', async () => {
    const listenerSocket = await connectSocket(t.url, room.roomId, listener.token, { address: listener.address });
    sockets.push(listenerSocket);
    const host = await connectSocket(t.url, room.roomId, room.hostToken);
    sockets.push(host);
    const refused = (await listenerSocket.timeout(10_000).emitWithAck('stream:signal', { type: 'join' })) as { ok: boolean; refusal?: { code: string } };
    expect(refused.ok).to.equal(false);
    expect(refused.refusal?.code).to.equal('broadcast');
    const heard = nextEvent(host, 'stage:requested');
    const asked = (await listenerSocket.timeout(10_000).emitWithAck('stage:request', {})) as { ok: boolean };
    expect(asked.ok).to.equal(true);
    const [request] = await heard;
    expect(request).to.include({ userId: listener.userId, name: 'Audience' });
    // Asking over and over is limited.
    let limited = false;
    for (let i = 0; i < 6 && !limited; i++) limited = !((await listenerSocket.timeout(10_000).emitWithAck('stage:request', {})) as { ok: boolean }).ok;
    expect(limited).to.equal(true);
    // The host brings them on stage: a remixer's join is answered by the SFU.
    expect((await api(t.url, 'PUT', `/api/rooms/${room.roomId}/members/${listener.userId}/role`, { role: 'remixer' }, room.hostToken)).status).to.equal(200);
    await sleep(200);
    const joined = (await listenerSocket.timeout(15_000).emitWithAck('stream:signal', { type: 'join' })) as { ok: boolean; signal?: { type: string } };
    expect(joined.ok, JSON.stringify(joined)).to.equal(true);
    await listenerSocket.timeout(10_000).emitWithAck('stream:signal', { type: 'leave' });
  });

  it('an encoder that dies comes back: the playlist goes on after a discontinuity, with a new init and the numbering continued', async () => {
    const before = await playlistWith(audioPlaylist, 2);
    const lastMsn = before.parts.at(-1)!.msn;
    t.server.live.broadcast(room.roomId)!.killEncoderForTest();
    const deadline = Date.now() + 30_000;
    let view = before;
    while (Date.now() < deadline) {
      view = readPlaylist(await (await get(audioPlaylist)).text());
      if (view.discontinuities > before.discontinuities && view.parts.some((p) => p.msn > lastMsn + 1)) break;
      await sleep(250);
    }
    expect(view.discontinuities, view.text).to.be.greaterThan(before.discontinuities);
    // A new init (the same bytes keep their name: a CDN's copy stays right) and a discontinuity before it.
    expect(view.text).to.match(/#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="init-\d+\.mp4/);
    expect(view.parts.at(-1)!.msn).to.be.greaterThan(lastMsn);
    const st = await t.server.live.broadcast(room.roomId)!.status();
    expect(st.encoder?.encoders).to.be.at.least(2);
  });

  it('switched off: the encoder stops and the playlist ends (players see EXT-X-ENDLIST); the room is a party again', async () => {
    const off = await api<BroadcastStatus>(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: false }, room.hostToken);
    expect(off.status).to.equal(200);
    const deadline = Date.now() + 10_000;
    let ended = false;
    while (!ended && Date.now() < deadline) {
      const res = await get(audioPlaylist);
      ended = res.status === 200 && readPlaylist(await res.text()).ended;
      if (!ended) await sleep(100);
    }
    expect(ended).to.equal(true);
    expect(t.server.live.broadcast(room.roomId)?.live ?? false).to.equal(false);
    expect((await status()).body).to.include({ enabled: false, live: false });
  });

  it('switched on again at once after off: it broadcasts (a release waiting for the encoder does not undo the new hold), with new names', async () => {
    const before = readPlaylist(await (await get(audioPlaylist)).text());
    expect((await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, room.hostToken)).status).to.equal(200);
    expect((await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: false }, room.hostToken)).status).to.equal(200);
    expect((await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, room.hostToken)).status).to.equal(200);
    const view = await playlistWith(audioPlaylist, 3, before.parts.at(-1)!.msn);
    expect(view.ended).to.equal(false);
    await sleep(1500);
    expect(t.server.live.broadcast(room.roomId)?.live, 'the encoder runs').to.equal(true);
    expect((await status()).body).to.include({ enabled: true });
    // Parts of this broadcast never have the name of an earlier one's (players and CDNs keep them for good).
    const oldNames = new Set(before.parts.map((p) => p.uri.split('?')[0]));
    const lastBefore = before.parts.at(-1)!.msn;
    for (const p of view.parts.filter((p) => p.msn > lastBefore)) expect(oldNames.has(p.uri.split('?')[0]), p.uri).to.equal(false);
    expect((await api(t.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: false }, room.hostToken)).status).to.equal(200);
  });

  it('the public status does not load a room (a loaded room in broadcast mode would start an encoder)', async () => {
    const other = await openRoom(t.url);
    const anon = await api<BroadcastStatus>(t.url, 'GET', `/api/rooms/${other.roomId}/broadcast`);
    expect(anon.status).to.equal(200);
    expect(anon.body).to.include({ enabled: false });
    expect(t.server.rooms.get(other.roomId), 'not loaded by a stranger’s status request').to.equal(undefined);
    expect((await api(t.url, 'GET', `/api/rooms/nosuchroom123/broadcast`)).status).to.equal(404);
  });
});

for (const adapter of SFU_ADAPTERS) describe(adapterTitle('broadcast mode: a crowd on WebRTC switches the room by itself (BROADCAST_AUTO_LISTENERS)', adapter), function () {
  this.timeout(60_000);
  let t: TestServer;
  const listeners: WeriftListener[] = [];

  before(async function () {
    await requireSfuAdapter(adapter, this);
    requireComponent('ffmpeg', commandExists('ffmpeg') && (await ffmpegCannotBroadcast('ffmpeg')) === null, this);
    t = await startTestServer({}, { adapter, live: { broadcast: { ffmpeg: 'ffmpeg', autoListeners: 2, maxRooms: 1 } } });
  });

  after(async () => {
    for (const l of listeners) await l.close().catch(() => {});
    await t?.close();
  });

  it('stays a party up to the limit; one more listener and it broadcasts, moving its WebRTC listeners to the HLS', async () => {
    const room = await openRoom(t.url);
    const rules = async () => (await api<BroadcastStatus>(t.url, 'GET', `/api/rooms/${room.roomId}/broadcast`)).body.enabled;
    const remixer = await joinAs(t.url, room, 'remixer', 'On stage');
    const fans = await Promise.all([1, 2, 3].map((i) => joinAs(t.url, room, 'listener', `Fan ${i}`)));
    listeners.push(await listenToRoom(t.url, room.roomId, remixer.token));
    listeners.push(await listenToRoom(t.url, room.roomId, fans[0]!.token));
    await sleep(500);
    expect(await rules(), 'two listeners: still a party').to.equal(false);
    listeners.push(await listenToRoom(t.url, room.roomId, fans[1]!.token));
    const deadline = Date.now() + 10_000;
    while (!(await rules()) && Date.now() < deadline) await sleep(100);
    expect(await rules(), 'three listeners: the room broadcasts').to.equal(true);
    // The listeners' WebRTC sessions end (their pages move to the HLS); the remixer (the stage) stays.
    const moved = Date.now() + 10_000;
    while (t.server.live.status(room.roomId).listeners > 1 && Date.now() < moved) await sleep(100);
    expect(t.server.live.status(room.roomId).listeners).to.equal(1);
    const heard = listeners[0]!.heard.length;
    await sleep(500);
    expect(listeners[0]!.heard.length, 'the stage (the remixer) still receives the mix over WebRTC').to.be.greaterThan(heard + 10);
    // A listener's new join is refused now.
    const fourth = await connectSocket(t.url, room.roomId, fans[2]!.token, { address: fans[2]!.address });
    const again = (await fourth.timeout(10_000).emitWithAck('stream:signal', { type: 'join' })) as { ok: boolean; refusal?: { code: string } };
    expect(again.refusal?.code).to.equal('broadcast');
    fourth.disconnect();
    // This node may broadcast one room at once: another room's host is refused, with the reason.
    const other = await openRoom(t.url);
    const refused = await api<{ error: { message: string } }>(t.url, 'PUT', `/api/rooms/${other.roomId}/broadcast`, { enabled: true }, other.hostToken);
    expect(refused.status).to.equal(503);
    expect(refused.body.error.message).to.match(/BROADCAST_MAX_ROOMS/);
    expect((await api<BroadcastStatus>(t.url, 'GET', `/api/rooms/${other.roomId}/broadcast`, undefined, other.hostToken)).body.enabled).to.equal(false);
  });
});
