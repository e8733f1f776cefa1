import { expect } from 'chai';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import WebSocket from 'ws';
import * as Y from 'yjs';
import { TokenSigner } from '../../server/auth/tokens.ts';
import { readRoomState } from '../../shared/room-doc.ts';
import { transportPosition } from '../../shared/transport.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import {
  api,
  connectMember,
  joinAs,
  masterMap,
  openRoom,
  stemMap,
  upgradeStatus,
  waitFor,
  type Member,
  type OpenedRoom,
} from '../support/room-clients.ts';

describe('the sync endpoint with stock y-websocket clients', function () {
  this.timeout(30_000);
  let t: TestServer;
  let room: OpenedRoom;
  const members: Member[] = [];
  const sync = () => t.url.replace(/^http/, 'ws') + '/sync/';

  before(async () => {
    t = await startTestServer({}, { roomTimings: { graceMs: 300, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    room = await openRoom(t.url);
  });
  afterEach(() => {
    while (members.length) members.pop()!.destroy();
  });

  async function member(role: 'host' | 'remixer' | 'listener', name: string = role): Promise<Member & { userId: string }> {
    const { token, userId } = role === 'host' ? { token: room.hostToken, userId: 'host' } : await joinAs(t.url, room, role, name);
    const m = await connectMember(t.url, room.roomId, token);
    members.push(m);
    return Object.assign(m, { userId });
  }

  it('opens a room with a host token and a join link', async () => {
    expect(room.roomId).to.match(/^[\w-]{8,32}$/);
    expect(room.joinUrl).to.match(new RegExp(`/r/${room.roomId}#invite=rr1\\.`));
    const info = await api<{ releaseId: string; memberCount: number; ended: boolean }>(t.url, 'GET', `/api/rooms/${room.roomId}`);
    expect(info.body).to.include({ releaseId: 'remixroom-demo', memberCount: 0, ended: false });
  });

  it("shows one remixer's fader move to everyone", async () => {
    const a = await member('remixer', 'Ana');
    const b = await member('remixer', 'Bo');
    stemMap(a.doc, 'drums').set('gainDb', -6);
    await waitFor(() => stemMap(b.doc, 'drums').get('gainDb') === -6, 5000, 'B to see the fader');
  });

  it("refuses a listener's fader move: the listener is brought back and told why, nobody else sees it", async () => {
    const a = await member('remixer');
    const listener = await member('listener');
    const seenByA: unknown[] = [];
    stemMap(a.doc, 'drums').observe((e) => {
      if (e.keysChanged.has('gainDb')) seenByA.push(stemMap(a.doc, 'drums').get('gainDb'));
    });
    stemMap(listener.doc, 'drums').set('gainDb', -20);
    await waitFor(() => listener.refusals.length > 0, 5000, 'the refusal');
    expect(listener.refusals[0]!.code).to.equal('read_only');
    await waitFor(() => stemMap(listener.doc, 'drums').get('gainDb') === 0, 5000, 'the listener to be brought back');
    await new Promise((r) => setTimeout(r, 100));
    expect(seenByA.every((v) => v === 0)).to.equal(true);
    expect(stemMap(a.doc, 'drums').get('gainDb')).to.equal(0);
    expect(t.server.rooms.get(room.roomId)!.state().mix.stems['drums']!.gainDb).to.equal(0);
  });

  it('keeps the refused client in step after it reconnects (its own edit is not resurrected)', async () => {
    const listener = await member('listener');
    stemMap(listener.doc, 'bass').set('gainDb', -30);
    await waitFor(() => stemMap(listener.doc, 'bass').get('gainDb') === 0, 5000, 'the correction');
    listener.provider.disconnect();
    listener.provider.connect();
    await waitFor(() => listener.provider.synced, 5000, 'resync');
    await new Promise((r) => setTimeout(r, 100));
    expect(stemMap(listener.doc, 'bass').get('gainDb')).to.equal(0);
    expect(t.server.rooms.get(room.roomId)!.state().mix.stems['bass']!.gainDb).to.equal(0);
  });

  it('refuses out-of-range and wrong-typed values from a remixer with a named reason', async () => {
    const a = await member('remixer');
    masterMap(a.doc).set('tempo', 3);
    await waitFor(() => a.refusals.length === 1);
    expect(a.refusals[0]).to.deep.equal({ code: 'out_of_range', message: 'Tempo must be between 0.75 and 1.25 ×' });
    stemMap(a.doc, 'lead').set('pan', 'left');
    await waitFor(() => a.refusals.length === 2);
    expect(a.refusals[1]!.code).to.equal('invalid_value');
    await waitFor(() => masterMap(a.doc).get('tempo') === 1 && stemMap(a.doc, 'lead').get('pan') === 0);
  });

  it("applies the host's narrowed rule at once: the live value is clamped and wider values are refused", async () => {
    const host = await member('host');
    const a = await member('remixer');
    masterMap(a.doc).set('tempo', 1.2);
    await waitFor(() => masterMap(host.doc).get('tempo') === 1.2);
    host.doc.getMap('rules').set('masterRanges', { tempo: { min: 0.9, max: 1.1 } });
    await waitFor(() => masterMap(a.doc).get('tempo') === 1.1, 5000, 'the clamp');
    masterMap(a.doc).set('tempo', 1.15);
    await waitFor(() => a.refusals.length === 1);
    expect(a.refusals[0]!.message).to.equal('Tempo must be between 0.9 and 1.1 ×');
  });

  it('keeps the transport clock on the server: play anchors to server time, pause freezes the position', async () => {
    const a = await member('remixer');
    const b = await member('remixer');
    const transport = (m: Member) => m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>;
    const before = Date.now();
    transport(a).set('playing', true);
    await waitFor(() => transport(b).get('playing') === true && (transport(b).get('anchorMs') as number) >= before, 5000, 'the anchor');
    await new Promise((r) => setTimeout(r, 300));
    transport(a).set('playing', false);
    await waitFor(() => transport(b).get('playing') === false && (transport(b).get('positionSec') as number) > 0.2, 5000, 'the frozen position');
    expect(transport(b).get('positionSec') as number).to.be.below(2);
    expect(a.refusals).to.deep.equal([]);
  });

  it("keeps the transport position continuous when a member changes the tempo after the host's rules clamped it", async () => {
    const host = await member('host');
    const a = await member('remixer');
    const transport = (m: Member) => m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>;
    masterMap(a.doc).set('tempo', 1.2);
    await waitFor(() => masterMap(host.doc).get('tempo') === 1.2);
    const before = Date.now();
    transport(a).set('playing', true);
    await waitFor(() => transport(a).get('playing') === true && (transport(a).get('anchorMs') as number) >= before, 5000, 'the anchor');
    await new Promise((r) => setTimeout(r, 300));
    // The server clamps the tempo (its own change, not a member's).
    host.doc.getMap('rules').set('masterRanges', { tempo: { min: 0.9, max: 1.1 } });
    await waitFor(() => masterMap(a.doc).get('tempo') === 1.1, 5000, 'the clamp');
    await new Promise((r) => setTimeout(r, 700));
    const seen = readRoomState(a.doc);
    masterMap(a.doc).set('tempo', 1);
    await waitFor(() => (transport(a).get('anchorMs') as number) > seen.arrangement.transport.anchorMs, 5000, 'the re-anchor');
    // Re-anchored at the server's time, the position is where the clock, as everyone saw it, had got to.
    const anchorMs = transport(a).get('anchorMs') as number;
    const release = t.server.rooms.get(room.roomId)!.release;
    expect(transport(a).get('positionSec') as number).to.be.closeTo(transportPosition(seen, release, anchorMs), 1e-6);
    expect(transport(a).get('playing')).to.equal(true);
    expect(a.refusals).to.deep.equal([]);
  });

  it("re-anchors a playing transport when the host's rules clamp the tempo, so that no one's position jumps", async () => {
    const host = await member('host');
    const a = await member('remixer');
    const transport = (m: Member) => m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>;
    masterMap(a.doc).set('tempo', 1.25);
    await waitFor(() => masterMap(host.doc).get('tempo') === 1.25);
    const before = Date.now();
    transport(a).set('playing', true);
    await waitFor(() => transport(a).get('playing') === true && (transport(a).get('anchorMs') as number) >= before, 5000, 'the anchor');
    await new Promise((r) => setTimeout(r, 400));
    const seen = readRoomState(a.doc);
    host.doc.getMap('rules').set('masterRanges', { tempo: { min: 0.9, max: 1.0 } });
    await waitFor(() => masterMap(a.doc).get('tempo') === 1 && (transport(a).get('anchorMs') as number) > seen.arrangement.transport.anchorMs, 5000, 'the clamp and the re-anchor');
    // The position at the new anchor is where the clock had got to at the old tempo.
    const anchorMs = transport(a).get('anchorMs') as number;
    const release = t.server.rooms.get(room.roomId)!.release;
    expect(transport(a).get('positionSec') as number).to.be.closeTo(transportPosition(seen, release, anchorMs), 1e-6);
    expect(transport(a).get('positionSec') as number).to.be.above(0.3);
    expect(host.refusals).to.deep.equal([]);
  });

  it("refuses a remixer's attempt to change the rules", async () => {
    const a = await member('remixer');
    a.doc.getMap('rules').set('editableStems', []);
    await waitFor(() => a.refusals.length === 1);
    expect(a.refusals[0]!.code).to.equal('host_only');
  });

  it('lets the host lock a stem and demote a member, effective at once', async () => {
    const host = await member('host');
    const a = await member('remixer');
    host.doc.getMap('rules').set('editableStems', ['bass', 'harmony', 'lead']);
    await waitFor(() => (a.doc.getMap('rules').get('editableStems') as string[]).length === 3);
    stemMap(a.doc, 'drums').set('mute', true);
    await waitFor(() => a.refusals.length === 1);
    expect(a.refusals[0]).to.deep.equal({ code: 'stem_locked', message: 'the host has locked the drums' });
    const demoted = await api(t.url, 'PUT', `/api/rooms/${room.roomId}/members/${a.userId}/role`, { role: 'listener' }, room.hostToken);
    expect(demoted.status).to.equal(200);
    stemMap(a.doc, 'bass').set('mute', true);
    await waitFor(() => a.refusals.length === 2);
    expect(a.refusals[1]!.code).to.equal('read_only');
  });

  it('refuses forged, expired, wrong-room and invite tokens at the upgrade, before any WebSocket opens', async () => {
    const { token } = await joinAs(t.url, room, 'remixer', 'X');
    const [head, payload, mac] = token.split('.');
    const claims = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    const forged = `${head}.${Buffer.from(JSON.stringify({ ...claims, role: 'host' })).toString('base64url')}.${mac}`;
    const otherRoom = await openRoom(t.url);
    const wrongRoom = (await joinAs(t.url, otherRoom, 'remixer', 'Y')).token;
    const expired = new TokenSigner(t.server.secrets.tokenSecret, () => Date.now() - 3 * 86400_000).sign({
      room: room.roomId,
      sub: 'u_old',
      name: 'Old',
      role: 'remixer',
      ttlSec: 60,
    });
    const invite = decodeURIComponent(room.joinUrl.split('#invite=')[1]!);
    const url = (id: string, tok: string) => `${sync()}${id}?token=${encodeURIComponent(tok)}`;
    expect(await upgradeStatus(url(room.roomId, token))).to.equal(101);
    expect(await upgradeStatus(url(room.roomId, forged))).to.equal(401);
    expect(await upgradeStatus(url(room.roomId, expired))).to.equal(401);
    expect(await upgradeStatus(url(room.roomId, wrongRoom))).to.equal(403);
    expect(await upgradeStatus(url(room.roomId, invite))).to.equal(401);
    expect(await upgradeStatus(url(room.roomId, 'garbage'))).to.equal(401);
    expect(await upgradeStatus(`${sync()}${room.roomId}`)).to.equal(401);
    expect(await upgradeStatus(url('doesnotexist1', token))).to.equal(403);
    expect(await upgradeStatus(url('../../etc', token))).to.equal(404);
    expect(await upgradeStatus(url('%2e%2e%2f%2e%2e%2fetc', token))).to.equal(404);
    expect(await upgradeStatus(`${t.url.replace(/^http/, 'ws')}/elsewhere`)).to.equal(404);
  });

  it('ends a connection with "token expired" (4401, refresh and come back) when its token expires while connected', async () => {
    // A member the store knows, with a token that expires in about two seconds: near enough for a timer of its own at once.
    await t.server.members.admit({ roomId: room.roomId, userId: 'u_short', name: 'Short', role: 'remixer', inviteId: null, accessUntilMs: Date.now() + 60_000 });
    const short = new TokenSigner(t.server.secrets.tokenSecret).sign({ room: room.roomId, sub: 'u_short', name: 'Short', role: 'remixer', ttlSec: 2 });
    const ws = new WebSocket(`${sync()}${room.roomId}?token=${encodeURIComponent(short)}`);
    const opened = Date.now();
    const closed = await new Promise<{ code: number; reason: string }>((resolve, reject) => {
      ws.on('close', (code, reason) => resolve({ code, reason: reason.toString() }));
      ws.on('error', reject);
    });
    expect(closed.code).to.equal(SYNC_CLOSE.tokenExpired);
    expect(closed.reason).to.match(/expired/);
    expect(Date.now() - opened).to.be.below(5000);
  });

  it('survives malformed frames, unknown message types and oversized messages while serving everyone else', async () => {
    const a = await member('remixer');
    const b = await member('remixer');
    const { token } = await joinAs(t.url, room, 'remixer', 'Mallory');
    const raw = new WebSocket(`${sync()}${room.roomId}?token=${token}`);
    await new Promise((r) => raw.once('open', r));
    const closed = new Promise<number>((r) => raw.once('close', (code) => r(code)));
    raw.send(Buffer.from([0, 2, 200, 1, 2])); // a sync update whose length runs past the frame
    raw.send(Buffer.from([99, 1, 2])); // unknown message type
    raw.send('text frame');
    raw.send(Buffer.from([0, 2, 5, 1, 2, 3, 4, 5])); // bytes that are not a Yjs update
    stemMap(a.doc, 'harmony').set('gainDb', -3);
    await waitFor(() => stemMap(b.doc, 'harmony').get('gainDb') === -3, 5000, 'B to keep receiving');
    for (let i = 0; i < 60; i++) raw.send(Buffer.from([77]));
    expect(await closed).to.equal(4508);
    const big = new WebSocket(`${sync()}${room.roomId}?token=${token}`);
    await new Promise((r) => big.once('open', r));
    const bigClosed = new Promise<number>((r) => big.once('close', (code) => r(code)));
    big.send(Buffer.alloc(2 * 1024 * 1024, 1));
    expect(await bigClosed).to.equal(1009);
    stemMap(a.doc, 'harmony').set('gainDb', -4);
    await waitFor(() => stemMap(b.doc, 'harmony').get('gainDb') === -4, 5000, 'the room to keep serving');
  });

  it('stamps what a member holds in awareness with who they really are, and keeps listeners out of others\' view', async () => {
    const a = await member('remixer', 'Ana');
    const listener = await member('listener', 'Lee');
    const b = await member('remixer', 'Bo');
    a.provider.awareness.setLocalStateField('holding', 'mix.stems.drums.gainDb');
    a.provider.awareness.setLocalStateField('member', { userId: 'forged', name: 'The Host', role: 'host' });
    listener.provider.awareness.setLocalStateField('holding', 'nothing');
    await waitFor(() => [...b.provider.awareness.getStates().values()].some((s) => s['holding'] === 'mix.stems.drums.gainDb'));
    const seen = [...b.provider.awareness.getStates().values()].find((s) => s['holding'] === 'mix.stems.drums.gainDb')!;
    expect(seen['member']).to.deep.equal({ userId: a.userId, name: 'Ana', role: 'remixer' });
    await new Promise((r) => setTimeout(r, 100));
    expect([...b.provider.awareness.getStates().values()].some((s) => s['holding'] === 'nothing')).to.equal(false);
  });

  it('keeps a room through a restart of the server process, with the timeline of its recent changes', async () => {
    const a = await member('remixer');
    const changedAt = Date.now();
    stemMap(a.doc, 'lead').set('gainDb', -12);
    masterMap(a.doc).set('reverbMix', 0.4);
    await waitFor(() => t.server.rooms.get(room.roomId)!.state().mix.master.reverbMix === 0.4);
    a.destroy();
    members.length = 0;
    const first = t;
    await first.server.close();
    const second = await startTestServer({}, { dataDir: first.dataDir, roomTimings: { graceMs: 300, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
    // The restarted server uses the first one's DATA_DIR; closing it removes that folder.
    t = { ...second, close: async () => (await second.close(), await first.close()) };
    const again = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(again);
    expect(stemMap(again.doc, 'lead').get('gainDb')).to.equal(-12);
    expect(masterMap(again.doc).get('reverbMix')).to.equal(0.4);
    // A clip taken now can reach back before the restart: the changes come back with the document.
    const timeline = t.server.rooms.get(room.roomId)!.timeline;
    expect(timeline.oldestMs).to.be.at.most(changedAt);
    const w = timeline.window(timeline.oldestMs!, Date.now())!;
    const changes = w.events.filter((e) => e.tMs >= changedAt && e.tMs < changedAt + 5000);
    expect(changes.map((e) => [e.path, e.value])).to.deep.include.members([
      ['mix.stems.lead.gainDb', -12],
      ['mix.master.reverbMix', 0.4],
    ]);
  });

  it('unloads a room after the last member leaves and the grace period, leaving nothing running', async () => {
    const a = await member('remixer');
    const loaded = t.server.rooms.get(room.roomId)!;
    a.destroy();
    members.length = 0;
    await waitFor(() => loaded.closed, 5000, 'the room to unload');
    expect(t.server.rooms.get(room.roomId)).to.equal(undefined);
    expect(loaded.resources()).to.deep.equal({ timers: 0, peers: 0, holders: 0, disposers: 0 });
    expect(loaded.listenerCount('update')).to.equal(0);
  });

  it('ends a room for everyone when the host ends it, and refuses to reopen it', async () => {
    const a = await member('remixer');
    const closed = new Promise<number>((r) => a.provider.once('connection-close', (e) => r(e?.code ?? 0)));
    const ended = await api(t.url, 'DELETE', `/api/rooms/${room.roomId}`, undefined, room.hostToken);
    expect(ended.status).to.equal(200);
    expect(await closed).to.equal(4404);
    expect(await upgradeStatus(`${sync()}${room.roomId}?token=${room.hostToken}`)).to.equal(410);
  });
});
