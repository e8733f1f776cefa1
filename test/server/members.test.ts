// Roles come from the room (the store's record of each member), never from an old
// token: a demoted host stays demoted whether or not the room is loaded; a co-host
// runs the session but cannot touch the room's creator; a removed member's
// connections end and its tokens stop working; tokens are refreshed while the
// member may stay, and open sessions end when their token does.
import { expect } from 'chai';
import { LIMITS } from '../../shared/limits.ts';
import WebSocket from 'ws';
import { io } from 'socket.io-client';
import * as encoding from 'lib0/encoding';
import { TokenSigner } from '../../server/auth/tokens.ts';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import type { Notice, SessionEnded } from '../../shared/socket-events.ts';
import { api, connectMember, connectSocket, from, nextEvent, joinAs, openRoom, stemMap, strangerAddress, upgradeStatus, waitFor, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Client = RoomSocket;

describe('members: roles from the room, removal, token refresh and expiry', function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  const sockets: Client[] = [];
  const members: Member[] = [];
  const raw: WebSocket[] = [];

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
    while (raw.length) raw.pop()!.terminate();
  });

  const rooms = () => `/api/rooms/${room.roomId}`;
  const creatorId = () => (room as OpenedRoom & { userId: string }).userId;

  async function mint(role: 'host' | 'remixer' | 'listener', name: string, by = room.hostToken, body: Record<string, unknown> = {}) {
    return api<{ token: string; userId: string; error?: { code: string; message: string } }>(t.url, 'POST', `${rooms()}/tokens`, { role, name, ...body }, by);
  }

  async function connect(token: string): Promise<Client> {
    const s = await connectSocket(t.url, room.roomId, token);
    sockets.push(s);
    return s;
  }


  async function unloaded(): Promise<void> {
    await waitFor(() => t.server.rooms.get(room.roomId) === undefined, 5000, 'the room to unload');
  }

  it("a demoted co-host's old host token gives nothing, loaded or not: no tokens, no role back, no demoting the creator, no ending the room", async () => {
    const co = await mint('host', 'Co');
    expect(co.status).to.equal(201);
    // As a co-host it could make a remixer's token.
    expect((await mint('remixer', 'Friend', co.body.token)).status).to.equal(201);
    expect((await api(t.url, 'PUT', `${rooms()}/members/${co.body.userId}/role`, { role: 'remixer' }, room.hostToken)).status).to.equal(200);
    const attempts = async () => ({
      mint: (await mint('host', 'Sneaky', co.body.token)).status,
      restoreSelf: (await api(t.url, 'PUT', `${rooms()}/members/${co.body.userId}/role`, { role: 'host' }, co.body.token)).status,
      demoteCreator: (await api(t.url, 'PUT', `${rooms()}/members/${creatorId()}/role`, { role: 'listener' }, co.body.token)).status,
      end: (await api(t.url, 'DELETE', rooms(), undefined, co.body.token)).status,
    });
    // The room is loaded here (the role change opened it) ...
    expect(await attempts()).to.deep.equal({ mint: 403, restoreSelf: 403, demoteCreator: 403, end: 403 });
    // ... and after it unloaded, when only the store knows.
    await unloaded();
    expect(await attempts()).to.deep.equal({ mint: 403, restoreSelf: 403, demoteCreator: 403, end: 403 });
    expect((await t.server.store.getMember(room.roomId, creatorId()))!.role).to.equal('host');
    expect((await t.server.store.getRoomSummary(room.roomId))!.closedAt).to.equal(null);
    // Its sync connection comes in with the store's role: its rule change is refused.
    const m = await connectMember(t.url, room.roomId, co.body.token);
    members.push(m);
    m.doc.getMap('rules').set('chatEnabled', false);
    await waitFor(() => m.refusals.some((r) => r.code === 'host_only'), 5000, 'the rule change to be refused');
  });

  it('a co-host runs the session but cannot change or remove the creator, end the room or make host links', async () => {
    const co = await mint('host', 'Co');
    const guest = await joinAs(t.url, room, 'remixer', 'Guest');
    const as = (method: string, path: string, body?: unknown) => api(t.url, method, `${rooms()}${path}`, body, co.body.token).then((r) => r.status);
    expect(await as('PUT', `/members/${guest.userId}/role`, { role: 'listener' })).to.equal(200);
    expect(await as('PUT', `/members/${creatorId()}/role`, { role: 'remixer' })).to.equal(403);
    expect(await as('DELETE', `/members/${creatorId()}`)).to.equal(403);
    expect(await as('DELETE', '')).to.equal(403);
    expect(await as('POST', '/tokens', { role: 'host' })).to.equal(403);
    expect(await as('POST', '/tokens', { role: 'listener' })).to.equal(201);
    // The creator cannot be demoted by itself either, and stays host.
    expect((await api(t.url, 'PUT', `${rooms()}/members/${creatorId()}/role`, { role: 'remixer' }, room.hostToken)).status).to.equal(403);
    expect(await as('DELETE', `/members/${guest.userId}`)).to.equal(200);
    expect((await t.server.store.getMember(room.roomId, guest.userId))!.removedAt).to.be.a('string');
  });

  it('a demotion reaches open sockets at once; a promotion gives the host panel its queue', async () => {
    const co = await mint('host', 'Co');
    const s = await connect(co.body.token);
    const m = await connectMember(t.url, room.roomId, co.body.token);
    members.push(m);
    const notice = nextEvent(s, 'room:notice', (n: Notice) => n.code === 'role_changed');
    expect((await api(t.url, 'PUT', `${rooms()}/members/${co.body.userId}/role`, { role: 'listener' }, room.hostToken)).status).to.equal(200);
    expect((await notice)[0].message).to.match(/listener/);
    // The document says so for everyone, and the member's next edit is refused as a listener's.
    await waitFor(() => (m.doc.getMap('rules').get('roles') as Record<string, string> | undefined)?.[co.body.userId] === 'listener', 5000, 'the role in the rules');
    stemMap(m.doc, 'drums').set('gainDb', -4);
    await waitFor(() => m.refusals.some((r) => r.code === 'read_only'), 5000, 'the listener edit to be refused');
    const queue = nextEvent(s, 'prompt:queue');
    expect((await api(t.url, 'PUT', `${rooms()}/members/${co.body.userId}/role`, { role: 'host' }, room.hostToken)).status).to.equal(200);
    expect((await queue)[0]).to.be.an('array');
  });

  it("roles and removals in the document are the server's: a host writing them there is refused", async () => {
    const guest = await joinAs(t.url, room, 'remixer', 'Guest');
    const host = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(host);
    host.doc.getMap('rules').set('roles', { [guest.userId]: 'host' });
    host.doc.getMap('rules').set('removed', [creatorId()]);
    await waitFor(() => host.refusals.filter((r) => r.code === 'server_managed').length >= 2, 5000, 'both writes to be refused');
    expect((await t.server.store.getMember(room.roomId, guest.userId))!.role).to.equal('remixer');
    expect(t.server.rooms.get(room.roomId)!.rules.roles).to.deep.equal({});
    expect(t.server.rooms.get(room.roomId)!.rules.removed).to.deep.equal([]);
  });

  it("a removed member's connections end, and no token of theirs works again", async () => {
    const guest = await joinAs(t.url, room, 'remixer', 'Guest');
    const s = await connect(guest.token);
    const ended = nextEvent(s, 'session:ended');
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${guest.token}`);
    raw.push(ws);
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    expect((await api(t.url, 'DELETE', `${rooms()}/members/${guest.userId}`, undefined, room.hostToken)).status).to.equal(200);
    expect(((await ended)[0] as SessionEnded).reason).to.equal('removed');
    expect(await closed).to.equal(SYNC_CLOSE.accessRevoked);
    expect(await upgradeStatus(`${t.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${guest.token}`)).to.equal(403);
    const again: Client = io(t.url, { auth: { roomId: room.roomId, token: guest.token }, transports: ['websocket'], reconnection: false });
    sockets.push(again);
    const err = await new Promise<Error & { data?: { reason?: string } }>((r) => again.once('connect_error', r));
    expect(err.data?.reason).to.equal('removed');
    expect((await api(t.url, 'POST', `${rooms()}/members/me/token`, undefined, guest.token)).status).to.equal(403);
    expect((await api(t.url, 'POST', `${rooms()}/clips`, { seconds: 10 }, guest.token, { 'idempotency-key': 'k1' })).status).to.equal(403);
  });

  it('refreshes a token, expired or not, while the member may stay; not after its access ends', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    await t.server.members.admit({ roomId: room.roomId, userId: 'u_refresh', name: 'Ref', role: 'remixer', inviteId: null, accessUntilMs: Date.now() + 3000 });
    const expired = signer.sign({ room: room.roomId, sub: 'u_refresh', name: 'Ref', role: 'host', ttlSec: -10 });
    const fresh = await api<{ token: string; role: string; expiresInSec: number }>(t.url, 'POST', `${rooms()}/members/me/token`, undefined, expired);
    expect(fresh.status).to.equal(201);
    // The role is the store's, not the one the old token claimed.
    expect(fresh.body.role).to.equal('remixer');
    expect(fresh.body.expiresInSec).to.be.within(1, 3);
    expect(signer.verify(fresh.body.token, room.roomId).sub).to.equal('u_refresh');
    // A token that was never signed here, or for another room, refreshes nothing.
    expect((await api(t.url, 'POST', `${rooms()}/members/me/token`, undefined, new TokenSigner('y'.repeat(32)).sign({ room: room.roomId, sub: 'u_refresh', name: 'x', role: 'host', ttlSec: 60 }))).status).to.equal(401);
    const other = await openRoom(t.url);
    expect((await api(t.url, 'POST', `/api/rooms/${other.roomId}/members/me/token`, undefined, fresh.body.token)).status).to.equal(403);
    await new Promise((r) => setTimeout(r, 3200));
    const late = await api<{ error: { message: string } }>(t.url, 'POST', `${rooms()}/members/me/token`, undefined, fresh.body.token);
    expect(late.status).to.equal(403);
    expect(late.body.error.message).to.match(/access/);
  });

  it('ends a socket.io session when its token expires (chat refused after), and a fresh token sent in time keeps it', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    for (const id of ['u_short', 'u_renewed']) {
      await t.server.members.admit({ roomId: room.roomId, userId: id, name: id, role: 'remixer', inviteId: null, accessUntilMs: Date.now() + 600_000 });
    }
    const short = await connect(signer.sign({ room: room.roomId, sub: 'u_short', name: 'Short', role: 'remixer', ttlSec: 2 }));
    const renewed = await connect(signer.sign({ room: room.roomId, sub: 'u_renewed', name: 'Renewed', role: 'remixer', ttlSec: 2 }));
    const ended = nextEvent(short, 'session:ended');
    const disconnected = new Promise<string>((r) => short.once('disconnect', (reason) => r(reason)));
    // The renewal: a fresh token of the same member; another member's token is refused.
    const wrong = await renewed.emitWithAck('session:renew', { token: signer.sign({ room: room.roomId, sub: 'u_short', name: 'x', role: 'remixer', ttlSec: 60 }) });
    expect(wrong.ok).to.equal(false);
    const ok = await renewed.emitWithAck('session:renew', { token: signer.sign({ room: room.roomId, sub: 'u_renewed', name: 'Renewed', role: 'remixer', ttlSec: 60 }) });
    expect(ok.ok).to.equal(true);
    expect((await ended)[0]).to.deep.include({ reason: 'token_expired' });
    expect(await disconnected).to.equal('io server disconnect');
    await new Promise((r) => setTimeout(r, 1500));
    expect(renewed.connected).to.equal(true);
    const chat = await renewed.timeout(5000).emitWithAck('chat:send', { text: 'still here' });
    expect(chat.ok).to.equal(true);
  });

  it('a sync connection outlives its first token when the member sends a fresh one (an auth message)', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    await t.server.members.admit({ roomId: room.roomId, userId: 'u_sync', name: 'S', role: 'remixer', inviteId: null, accessUntilMs: Date.now() + 600_000 });
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${signer.sign({ room: room.roomId, sub: 'u_sync', name: 'S', role: 'remixer', ttlSec: 2 })}`);
    raw.push(ws);
    await new Promise((r) => ws.once('open', r));
    let closedWith: number | null = null;
    ws.once('close', (code) => (closedWith = code));
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, 2);
    encoding.writeVarString(enc, signer.sign({ room: room.roomId, sub: 'u_sync', name: 'S', role: 'remixer', ttlSec: 60 }));
    ws.send(encoding.toUint8Array(enc));
    await new Promise((r) => setTimeout(r, 3500));
    expect(closedWith).to.equal(null);
  });

  it('an invite lets in as many people as the host allowed, and none after it is withdrawn', async () => {
    const link = await api<{ invite: string; maxUses: number }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'listener', maxUses: 2 }, room.hostToken);
    expect(link.body.maxUses).to.equal(2);
    const join = (invite: string, name: string) => api<{ error?: { message: string } }>(t.url, 'POST', `${rooms()}/join`, { invite, name }, undefined, from(strangerAddress()));
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((n) => join(link.body.invite, n)));
    expect(results.map((r) => r.status).sort()).to.deep.equal([201, 201, 403, 403]);
    expect(results.find((r) => r.status === 403)!.body.error!.message).to.match(/used as many times/);
    const open = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'listener' }, room.hostToken);
    expect((await join(open.body.invite, 'e')).status).to.equal(201);
    const inviteId = JSON.parse(Buffer.from(open.body.invite.split('.')[1]!, 'base64url').toString()).sub as string;
    expect((await api(t.url, 'DELETE', `${rooms()}/invites/${inviteId}`, undefined, room.hostToken)).status).to.equal(200);
    const withdrawn = await join(open.body.invite, 'f');
    expect(withdrawn.status).to.equal(403);
    expect(withdrawn.body.error!.message).to.match(/withdrawn/);
    // Only a host may withdraw a link, and only its room's.
    const guest = await joinAs(t.url, room, 'remixer', 'G');
    expect((await api(t.url, 'DELETE', `${rooms()}/invites/${inviteId}`, undefined, guest.token)).status).to.equal(403);
  });

  it('checks a join link before anyone types a name, without using it: fine, used up, withdrawn, expired, forged, another room’s, room ended, no such room', async () => {
    const check = (invite: string, roomId = room.roomId) => api<{ ok: boolean; reason?: string; role?: string; error?: { code: string } }>(t.url, 'POST', `/api/rooms/${roomId}/invites/check`, { invite });
    const link = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'listener', maxUses: 1 }, room.hostToken);
    const fine = await check(link.body.invite);
    expect(fine.status).to.equal(200);
    expect(fine.body).to.include({ ok: true, role: 'listener' });
    // Checking twice uses nothing: the one-person link still lets its person in.
    expect((await check(link.body.invite)).body.ok).to.equal(true);
    const join = (invite: string, name: string) => api(t.url, 'POST', `${rooms()}/join`, { invite, name }, undefined, from(strangerAddress()));
    expect((await join(link.body.invite, 'one')).status).to.equal(201);
    expect((await check(link.body.invite)).body).to.deep.equal({ ok: false, reason: 'used_up' });

    const open = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'remixer' }, room.hostToken);
    const inviteId = JSON.parse(Buffer.from(open.body.invite.split('.')[1]!, 'base64url').toString()).sub as string;
    await api(t.url, 'DELETE', `${rooms()}/invites/${inviteId}`, undefined, room.hostToken);
    expect((await check(open.body.invite)).body).to.deep.equal({ ok: false, reason: 'revoked' });

    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    const expired = signer.sign({ kind: 'invite', room: room.roomId, sub: 'inv_old', name: 'invite', role: 'remixer', ttlSec: -10 });
    expect((await check(expired)).body).to.deep.equal({ ok: false, reason: 'expired' });
    expect((await check('not-a-link')).body).to.deep.equal({ ok: false, reason: 'not_a_link' });
    // Well signed but never minted: not one of this room's links.
    expect((await check(signer.sign({ kind: 'invite', room: room.roomId, sub: 'inv_never', name: 'invite', role: 'host', ttlSec: 600 }))).body).to.deep.equal({ ok: false, reason: 'not_a_link' });
    const other = await openRoom(t.url, { hostName: 'Other' });
    const otherLink = new URL(other.joinUrl).hash.slice('#invite='.length);
    expect((await check(otherLink)).body).to.deep.equal({ ok: false, reason: 'wrong_room' });

    expect((await check('x'.repeat(3000))).status, 'too long: a clear error').to.equal(400);
    const missing = await check(otherLink, 'nosuchroom123');
    expect(missing.status).to.equal(404);
    expect(missing.body.error!.code).to.equal('not_found');
    await api(t.url, 'DELETE', `/api/rooms/${other.roomId}`, undefined, other.hostToken);
    expect((await check(otherLink, other.roomId)).body).to.deep.equal({ ok: false, reason: 'room_ended' });
  });

  it('checking links is limited per address: a prober gets 429 with Retry-After, someone else still checks', async () => {
    const link = await api<{ invite: string }>(t.url, 'POST', `${rooms()}/tokens`, { role: 'listener' }, room.hostToken);
    const prober = from(strangerAddress());
    const check = (headers?: Record<string, string>) => api<{ ok?: boolean; error?: { code: string; limit?: string } }>(t.url, 'POST', `${rooms()}/invites/check`, { invite: link.body.invite }, undefined, headers);
    const answers = [];
    for (let i = 0; i < 40; i++) answers.push(await check(prober));
    const ok = answers.filter((a) => a.status === 200).length;
    expect(ok, 'checks answered before the limit').to.equal(LIMITS['invite.check.address'].capacity);
    const refused = answers.at(-1)!;
    expect(refused.status).to.equal(429);
    expect(refused.body.error).to.include({ code: 'rate_limited', limit: 'invite.check.address' });
    expect((await check(from(strangerAddress()))).body.ok).to.equal(true);
  });
});
