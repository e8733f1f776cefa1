// A host's moderation: locking the room to new people (every link refused, members
// already in stay; kept in the store, so every node and a restart see it), muting
// chat, clearing one prompt from the history for everyone, and removing a member
// together with the link they came with. Co-hosts may do all of it; anyone else gets
// 403 and nothing changes; bad input changes nothing.
import { expect } from 'chai';
import type * as Y from 'yjs';
import type { HistoryEntry } from '../../shared/room-doc.ts';
import { api, connectMember, connectSocket, from, joinAs, openRoom, strangerAddress, waitFor, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

describe('moderation: lock, mute, clear a prompt, remove with the link', function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  const sockets: RoomSocket[] = [];
  const members: Member[] = [];

  before(async () => {
    t = await startTestServer({}, { roomTimings: { graceMs: 150, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    room = await openRoom(t.url, { hostName: 'Creator' });
  });
  afterEach(() => {
    while (sockets.length) sockets.pop()!.disconnect();
    while (members.length) members.pop()!.destroy();
  });

  const rooms = () => `/api/rooms/${room.roomId}`;
  const link = () => new URL(room.joinUrl).hash.slice('#invite='.length);
  const join = (name: string, invite = link()) => api<{ token: string; userId: string; error?: { code: string; message: string } }>(t.url, 'POST', `${rooms()}/join`, { invite, name }, undefined, from(strangerAddress()));
  const check = (invite = link()) => api<{ ok: boolean; reason?: string }>(t.url, 'POST', `${rooms()}/invites/check`, { invite }, undefined, from(strangerAddress()));
  const lock = (locked: unknown, token = room.hostToken) => api<{ locked?: boolean; error?: { code: string; message: string } }>(t.url, 'PUT', `${rooms()}/lock`, { locked }, token);
  const socket = async (token: string) => {
    const s = await connectSocket(t.url, room.roomId, token);
    sockets.push(s);
    return s;
  };
  const member = async (token: string) => {
    const m = await connectMember(t.url, room.roomId, token);
    members.push(m);
    return m;
  };
  const history = (doc: Y.Doc) => (doc.getMap('visual').get('history') as Y.Map<HistoryEntry> | undefined)?.toJSON() as Record<string, HistoryEntry> | undefined;

  it('a locked room refuses joins through any link with a plain message, keeps its members, and lets people in again when unlocked', async () => {
    const inside = await join('Inside');
    expect(inside.status).to.equal(201);
    const s = await socket(inside.body.token);
    const m = await member(inside.body.token);
    const other = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'listener', maxUses: 1 }, room.hostToken);

    const locked = await lock(true);
    expect(locked.status).to.equal(200);
    expect(locked.body.locked).to.equal(true);
    for (const invite of [link(), other.body.invite]) {
      const refused = await join('Late', invite);
      expect(refused.status).to.equal(403);
      expect(refused.body.error!.message).to.equal('the host has locked this room to new people');
      expect((await check(invite)).body).to.deep.equal({ ok: false, reason: 'locked' });
    }
    // Members already in stay: the document says the room is locked, chat goes on, a reconnection is let in.
    await waitFor(() => m.doc.getMap('rules').get('locked') === true, 5000, 'the lock in the rules');
    expect(s.connected).to.equal(true);
    expect((await s.emitWithAck('chat:send', { text: 'still here' })).ok).to.equal(true);
    s.disconnect();
    expect((await socket(inside.body.token)).connected).to.equal(true);

    expect((await lock(false)).status).to.equal(200);
    expect((await check()).body).to.include({ ok: true });
    expect((await join('Welcome')).status).to.equal(201);
    // The refused joins used nothing of the one-use link.
    expect((await join('One use', other.body.invite)).status).to.equal(201);
    await waitFor(() => m.doc.getMap('rules').get('locked') === false, 5000, 'the unlock in the rules');
  });

  it('a co-host may lock; a remixer or listener gets 403 and nothing changes; bad input is refused and changes nothing', async () => {
    const co = await api<{ token: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'host', name: 'Co' }, room.hostToken);
    const remixer = await joinAs(t.url, room, 'remixer', 'Remixer');
    const listener = await joinAs(t.url, room, 'listener', 'Listener');
    for (const who of [remixer, listener]) {
      const r = await lock(true, who.token);
      expect(r.status).to.equal(403);
      expect(r.body.error!.message).to.equal('only a host can do this');
    }
    for (const bad of ['yes', 1, null]) {
      const r = await lock(bad);
      expect(r.status).to.equal(400);
      expect(r.body.error!.message).to.match(/^locked: /);
    }
    const extra = await api<{ error: { code: string } }>(t.url, 'PUT', `${rooms()}/lock`, { locked: true, forever: true }, room.hostToken);
    expect(extra.status).to.equal(400);
    expect((await t.server.store.getRoomSummary(room.roomId))!.lockedAt).to.equal(null);
    expect((await check()).body.ok).to.equal(true);
    expect((await lock(true, co.body.token)).status).to.equal(200);
    expect((await check()).body.reason).to.equal('locked');
  });

  it('the lock is in the store, not only the document: it holds after a restart, and a host cannot write it in the document', async () => {
    const host = await member(room.hostToken);
    host.doc.getMap('rules').set('locked', true);
    await waitFor(() => host.refusals.some((r) => r.code === 'server_managed'), 5000, 'the document write to be refused');
    expect((await check()).body.ok).to.equal(true);
    expect((await lock(true)).status).to.equal(200);
    members.pop()!.destroy();

    const first = t;
    await first.server.close();
    const second = await startTestServer({}, { dataDir: first.dataDir, roomTimings: { graceMs: 150, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
    t = { ...second, close: async () => (await second.close(), await first.close()) };
    expect((await check()).body.reason).to.equal('locked');
    expect((await join('After restart')).status).to.equal(403);
    const again = await member(room.hostToken);
    await waitFor(() => again.doc.getMap('rules').get('locked') === true, 5000, 'the lock in the reloaded rules');
    expect((await lock(false)).status).to.equal(200);
    expect((await join('Now')).status).to.equal(201);
  });

  it('muted chat refuses messages on the server, with a plain reason, and nobody receives them', async () => {
    const fan = await joinAs(t.url, room, 'remixer', 'Fan');
    const fanSocket = await socket(fan.token);
    const hostSocket = await socket(room.hostToken);
    const host = await member(room.hostToken);
    const heard: string[] = [];
    hostSocket.on('chat:message', (msg) => heard.push(msg.text));
    host.doc.getMap('rules').set('chatEnabled', false);
    await waitFor(() => t.server.rooms.get(room.roomId)?.rules.chatEnabled === false, 5000, 'chat to be muted');
    const refused = await fanSocket.emitWithAck('chat:send', { text: 'can anyone hear me' });
    expect(refused).to.deep.equal({ ok: false, refusal: { code: 'read_only', message: 'the host has turned chat off' } });
    host.doc.getMap('rules').set('chatEnabled', true);
    await waitFor(() => t.server.rooms.get(room.roomId)?.rules.chatEnabled === true, 5000, 'chat to be on again');
    expect((await fanSocket.emitWithAck('chat:send', { text: 'back on' })).ok).to.equal(true);
    await waitFor(() => heard.includes('back on'), 5000, 'the message after unmuting');
    expect(heard).to.deep.equal(['back on']);
  });

  it('a host clears one prompt from the history for everyone; clearing the prompt on show takes the visuals back to the release’s look', async () => {
    const fan = await joinAs(t.url, room, 'remixer', 'Fan');
    const fanSocket = await socket(fan.token);
    const watcher = await member(fan.token);
    for (const text of ['stormy blue sea', 'golden slow glow']) expect((await fanSocket.emitWithAck('prompt:submit', { text })).ok).to.equal(true);
    await waitFor(() => Object.keys(history(watcher.doc) ?? {}).length === 2, 5000, 'two prompts in the history');
    const [older, newer] = Object.keys(history(watcher.doc)!).sort();
    // A take saved while the newer prompt is on show: clearing that prompt must not let the take bring it back.
    const saved = await api<{ takeId: string }>(t.url, 'POST', `${rooms()}/takes`, { name: 'Golden' }, room.hostToken);
    expect(saved.status).to.equal(201);

    // Refused and nothing changes: a remixer, an unknown entry, a malformed one.
    const asFan = await api<{ error: { message: string } }>(t.url, 'DELETE', `${rooms()}/prompts/${older}`, undefined, fan.token);
    expect(asFan.status).to.equal(403);
    expect(asFan.body.error.message).to.equal('only a host can do this');
    expect((await api(t.url, 'DELETE', `${rooms()}/prompts/000000000000000-0000`, undefined, room.hostToken)).status).to.equal(404);
    expect((await api(t.url, 'DELETE', `${rooms()}/prompts/__proto__`, undefined, room.hostToken)).status).to.equal(404);
    expect(Object.keys(t.server.rooms.get(room.roomId)!.state().visual.history)).to.have.length(2);

    // The older one: gone for everyone, the visuals unchanged.
    const params = JSON.stringify(watcher.doc.getMap('visual').get('params'));
    const first = await api<{ visualsReset: boolean }>(t.url, 'DELETE', `${rooms()}/prompts/${older}`, undefined, room.hostToken);
    expect(first.status).to.equal(200);
    expect(first.body.visualsReset).to.equal(false);
    await waitFor(() => !(older! in (history(watcher.doc) ?? {})), 5000, 'the prompt gone from another member’s history');
    expect(Object.keys(history(watcher.doc)!)).to.deep.equal([newer]);
    expect(JSON.stringify(watcher.doc.getMap('visual').get('params'))).to.equal(params);
    expect(watcher.doc.getMap('visual').get('prompt')).to.equal('golden slow glow');

    // The one on show: its words go, and the visuals go back to the release's own look.
    const second = await api<{ visualsReset: boolean }>(t.url, 'DELETE', `${rooms()}/prompts/${newer}`, undefined, room.hostToken);
    expect(second.body.visualsReset).to.equal(true);
    await waitFor(() => watcher.doc.getMap('visual').get('prompt') === null, 5000, 'the active prompt cleared');
    expect(history(watcher.doc)).to.deep.equal({});
    expect(watcher.doc.getMap('visual').get('params')).to.equal(null);
    expect(watcher.doc.getMap('visual').get('summary')).to.equal(null);
    // Clearing it again: there is no such prompt any more.
    expect((await api(t.url, 'DELETE', `${rooms()}/prompts/${newer}`, undefined, room.hostToken)).status).to.equal(404);

    // The take keeps its mix but not the cleared prompt: returning to it leaves the release's look on show.
    expect((await api(t.url, 'POST', `${rooms()}/takes/${saved.body.takeId}/return`, undefined, room.hostToken)).status).to.equal(200);
    await new Promise((r) => setTimeout(r, 300));
    expect(t.server.rooms.get(room.roomId)!.state().visual.prompt).to.equal(null);
    expect(watcher.doc.getMap('visual').get('prompt')).to.equal(null);
  });

  it('removing a member can withdraw the link they came with, so that it lets nobody in again; without it the link still works', async () => {
    const kept = await join('Kept link');
    const extra = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'remixer' }, room.hostToken);
    const gone = await join('Gone with link', extra.body.invite);
    const s = await socket(gone.body.token);
    // Bad input: refused, and the member is still in.
    const bad = await api(t.url, 'DELETE', `${rooms()}/members/${gone.body.userId}`, { withdrawLink: 'yes' }, room.hostToken);
    expect(bad.status).to.equal(400);
    expect((await t.server.store.getMember(room.roomId, gone.body.userId))!.removedAt).to.equal(null);
    expect((await t.server.store.getInvite((await t.server.store.getMember(room.roomId, gone.body.userId))!.inviteId!))!.revokedAt).to.equal(null);

    const ended = new Promise<string>((resolve) => s.once('session:ended', (info) => resolve(info.reason)));
    const removed = await api<{ linkWithdrawn: boolean }>(t.url, 'DELETE', `${rooms()}/members/${gone.body.userId}`, { withdrawLink: true }, room.hostToken);
    expect(removed.status).to.equal(200);
    expect(removed.body).to.deep.include({ removed: true, linkWithdrawn: true });
    expect(await ended).to.equal('removed');
    const again = await join('Gone with link', extra.body.invite);
    expect(again.status).to.equal(403);
    expect((await check(extra.body.invite)).body.reason).to.equal('revoked');

    // Removed without withdrawing: the room's own link goes on letting people in.
    const plain = await api<{ linkWithdrawn: boolean }>(t.url, 'DELETE', `${rooms()}/members/${kept.body.userId}`, undefined, room.hostToken);
    expect(plain.body.linkWithdrawn).to.equal(false);
    expect((await join('Next')).status).to.equal(201);
  });

  it('moderation is rate-limited per member (room.moderate.member), by name', async () => {
    const statuses: number[] = [];
    let limit: string | undefined;
    for (let i = 0; i < 40 && limit === undefined; i++) {
      const r = await api<{ error?: { limit?: string } }>(t.url, 'PUT', `${rooms()}/lock`, { locked: i % 2 === 0 }, room.hostToken);
      statuses.push(r.status);
      limit = r.body.error?.limit;
    }
    expect(statuses.at(-1)).to.equal(429);
    expect(limit).to.equal('room.moderate.member');
  });
});
