// A fan's things stay theirs: GET /api/rooms/:id/members/me/things lists a member's
// own clips, loops, stills and orders (never another's), with fresh links, also after
// the room ended (with the member's token, even expired, for that read only); and a
// room's chat is kept in the store, bounded, without what was refused, and sent to
// whoever (re)joins, also after a restart of the server on the same embedded store.
import { expect } from 'chai';
import { io as connectIo } from 'socket.io-client';
import type * as Y from 'yjs';
import { TokenSigner } from '../../server/auth/tokens.ts';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { CHAT_HISTORY_KEEP, type ChatMessage } from '../../shared/socket-events.ts';
import { requireComponent } from '../support/components.ts';
import { api, connectMember, connectSocket, from, joinAs, nextEvent, openRoom, strangerAddress, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

interface ThingView {
  clipId: string;
  kind: 'clip' | 'loop' | 'still';
  status: string;
  downloads?: Record<string, string> & { expiresAt: string };
}
interface Things {
  roomId: string;
  ended: boolean;
  member: { userId: string; name: string; role: string };
  clips: ThingView[];
  orders: { orderId: string; clipId: string; status: string }[];
}

const things = (t: TestServer, roomId: string, token?: string, address = strangerAddress()) =>
  api<Things & { error?: { code: string; message: string } }>(t.url, 'GET', `/api/rooms/${roomId}/members/me/things`, undefined, token, from(address));

async function post(t: TestServer, path: string, body: unknown, token: string, key: string) {
  return api<{ clipId?: string; orderId?: string; error?: { code: string } }>(t.url, 'POST', path, body, token, { 'idempotency-key': key });
}

describe('a member’s own clips and purchases (GET /api/rooms/:id/members/me/things)', function () {
  this.timeout(120_000);
  let t: TestServer;
  let room: OpenedRoom;
  let bo: { token: string; userId: string };
  let cy: { token: string; userId: string };
  let remixer: Member;
  let anaClip = '';
  let boLoop = '';

  before(async function () {
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    t = await startTestServer();
    room = await openRoom(t.url, { hostName: 'Ana' });
    bo = await joinAs(t.url, room, 'remixer', 'Bo');
    cy = await joinAs(t.url, room, 'listener', 'Cy');
    remixer = await connectMember(t.url, room.roomId, bo.token);
    remixer.doc.transact(() => (remixer.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
    // A clip is at least 8 s (a whole period of the watermark): let the room record that much.
    await new Promise((r) => setTimeout(r, 8500));
    const clip = await post(t, `/api/rooms/${room.roomId}/clips`, { seconds: 8 }, room.hostToken, 'ana-clip');
    expect(clip.status, JSON.stringify(clip.body)).to.equal(202);
    anaClip = clip.body.clipId!;
    const loop = await post(t, `/api/rooms/${room.roomId}/loops`, { seconds: 1 }, bo.token, 'bo-loop');
    expect(loop.status, JSON.stringify(loop.body)).to.equal(202);
    boLoop = loop.body.clipId!;
    const still = await fetch(`${t.url}/api/rooms/${room.roomId}/visuals.png?width=64&height=36`, { headers: { authorization: `Bearer ${bo.token}` } });
    expect(still.status).to.equal(200);
    await still.arrayBuffer();
    // Declined (the sandbox's test card), so that no full-length render runs: the order is Ana's all the same.
    const order = await post(t, '/api/orders', { clipId: anaClip, card: '4000 0000 0000 0002' }, room.hostToken, 'ana-order');
    expect(order.status, JSON.stringify(order.body)).to.be.oneOf([200, 201, 400]);
  });

  after(async () => {
    remixer?.destroy();
    await t?.close();
  });

  it('lists a member’s own things only: Ana her clip and order, Bo his loop and still, Cy nothing', async () => {
    const ana = await things(t, room.roomId, room.hostToken);
    expect(ana.status, JSON.stringify(ana.body)).to.equal(200);
    expect(ana.body.member).to.include({ name: 'Ana', role: 'host' });
    expect(ana.body.clips.map((c) => [c.clipId, c.kind])).to.deep.equal([[anaClip, 'clip']]);
    expect(ana.body.orders.map((o) => o.clipId)).to.deep.equal([anaClip]);

    const b = await things(t, room.roomId, bo.token);
    expect(b.status).to.equal(200);
    expect(b.body.member).to.include({ userId: bo.userId, name: 'Bo', role: 'remixer' });
    expect(b.body.clips.map((c) => c.kind).sort()).to.deep.equal(['loop', 'still']);
    expect(b.body.clips.map((c) => c.clipId)).to.include(boLoop).and.not.include(anaClip);
    expect(b.body.orders).to.deep.equal([]);

    const c = await things(t, room.roomId, cy.token);
    expect(c.status).to.equal(200);
    expect(c.body.clips).to.deep.equal([]);
    expect(c.body.orders).to.deep.equal([]);
  });

  it('gives fresh download links once a render is done', async () => {
    // Waited for through the clip's own status (the list is limited per member).
    for (let i = 0; i < 600; i++) {
      const r = await api<{ status: string }>(t.url, 'GET', `/api/clips/${boLoop}`, undefined, bo.token);
      if (r.body.status === 'done' || r.body.status === 'failed') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const loop = (await things(t, room.roomId, bo.token)).body.clips.find((c) => c.clipId === boLoop);
    expect(loop?.status).to.equal('done');
    const link = loop!.downloads!['video'] ?? Object.entries(loop!.downloads!).find(([k]) => k !== 'expiresAt')![1];
    const file = await fetch(`${t.url}${link}`);
    expect(file.status).to.equal(200);
    expect((await file.arrayBuffer()).byteLength).to.be.greaterThan(1000);
  });

  it('refuses no token, a forged one, another room’s, an expired one while the room is open, and a stranger’s', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    expect((await things(t, room.roomId)).status).to.equal(401);
    const forged = new TokenSigner('f'.repeat(32)).sign({ room: room.roomId, sub: bo.userId, name: 'Bo', role: 'host', ttlSec: 600 });
    expect((await things(t, room.roomId, forged)).status).to.equal(401);
    const other = await openRoom(t.url);
    expect((await things(t, room.roomId, other.hostToken)).status).to.equal(403);
    const expired = signer.sign({ room: room.roomId, sub: bo.userId, name: 'Bo', role: 'remixer', ttlSec: -10 });
    expect((await things(t, room.roomId, expired)).status).to.equal(401);
    // Genuine, but of nobody the store knows: whatever role its claims say.
    const stranger = signer.sign({ room: room.roomId, sub: 'u_nobody', name: 'Bo', role: 'host', ttlSec: 600 });
    expect((await things(t, room.roomId, stranger)).status).to.equal(403);
    expect((await things(t, 'no-such-room-00', bo.token)).status).to.be.oneOf([403, 404]);
    // A member a host removed: refused (403), its things are not read any more with its token.
    const gone = await joinAs(t.url, room, 'listener', 'Gone');
    expect((await things(t, room.roomId, gone.token)).status).to.equal(200);
    expect((await api(t.url, 'DELETE', `/api/rooms/${room.roomId}/members/${gone.userId}`, undefined, room.hostToken)).status).to.equal(200);
    expect((await things(t, room.roomId, gone.token)).status).to.equal(403);
  });

  it('is limited per member (things.read.member), naming the limit', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    const dee = await joinAs(t.url, room, 'listener', 'Dee');
    const token = signer.sign({ room: room.roomId, sub: dee.userId, name: 'Dee', role: 'listener', ttlSec: 600 });
    let last = 0;
    let body: { error?: { code: string; message: string } } = {};
    for (let i = 0; i < 40 && last !== 429; i++) ({ status: last, body } = await things(t, room.roomId, token));
    expect(last).to.equal(429);
    expect(body.error!.message).to.include('things.read.member');
  });

  it('after the room ended: still lists, with an expired token too, but that token writes nothing', async () => {
    const signer = new TokenSigner(t.server.secrets.tokenSecret);
    expect((await api(t.url, 'DELETE', `/api/rooms/${room.roomId}`, undefined, room.hostToken)).status).to.equal(200);
    const ana = await things(t, room.roomId, room.hostToken);
    expect(ana.status).to.equal(200);
    expect(ana.body.ended).to.equal(true);
    expect(ana.body.clips.map((c) => c.clipId)).to.deep.equal([anaClip]);

    const expired = signer.sign({ room: room.roomId, sub: bo.userId, name: 'Bo', role: 'remixer', ttlSec: -3600 });
    const b = await things(t, room.roomId, expired);
    expect(b.status, JSON.stringify(b.body)).to.equal(200);
    expect(b.body.clips.map((c) => c.clipId)).to.include(boLoop);
    // Too long expired: no more.
    const ancient = signer.sign({ room: room.roomId, sub: bo.userId, name: 'Bo', role: 'remixer', ttlSec: -40 * 24 * 3600 });
    expect((await things(t, room.roomId, ancient)).status).to.equal(401);

    // The same expired token writes nothing: no clip, loop, still, order, fresh token, link or connection.
    expect((await post(t, `/api/rooms/${room.roomId}/clips`, { seconds: 8 }, expired, 'late-clip')).status).to.equal(401);
    expect((await post(t, `/api/rooms/${room.roomId}/loops`, { seconds: 1 }, expired, 'late-loop')).status).to.equal(401);
    expect((await post(t, '/api/orders', { clipId: anaClip, card: '4242 4242 4242 4242' }, expired, 'late-order')).status).to.equal(401);
    expect((await post(t, `/api/clips/${anaClip}/vertical`, undefined, expired, 'late-vertical')).status).to.equal(401);
    // Nor does a token still within its time: an ended room's clips are read, not remade.
    const vertical = await post(t, `/api/clips/${anaClip}/vertical`, undefined, room.hostToken, 'late-vertical-2');
    expect(vertical.status, JSON.stringify(vertical.body)).to.equal(403);
    expect((await api(t.url, 'POST', `/api/rooms/${room.roomId}/members/me/token`, undefined, expired)).status).to.be.oneOf([403, 410]);
    expect((await api(t.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'remixer' }, expired)).status).to.equal(401);
    let refused = false;
    await connectSocket(t.url, room.roomId, expired).then((s) => s.disconnect(), () => (refused = true));
    expect(refused).to.equal(true);
    // Nothing was made: Bo's list is as it was.
    expect((await things(t, room.roomId, expired)).body.clips.length).to.equal(b.body.clips.length);
  });
});

describe('a room’s chat history (kept in the store, sent on (re)join)', function () {
  this.timeout(120_000);
  let t: TestServer | null = null;
  const sockets: RoomSocket[] = [];

  let data: { path: string; remove(): Promise<void> } | null = null;

  afterEach(async () => {
    for (const s of sockets.splice(0)) s.disconnect();
    await t?.close();
    t = null;
    await data?.remove();
    data = null;
  });

  const send = async (s: RoomSocket, text: string) => (await s.timeout(5000).emitWithAck('chat:send', { text })) as { ok: boolean; message?: ChatMessage };
  const join = async (base: string, roomId: string, token: string) => {
    const s = await connectSocket(base, roomId, token);
    sockets.push(s);
    return s;
  };
  /** The history a new connection is sent (listened for from its first moment: it comes right after connecting). */
  const historyOf = async (base: string, roomId: string, token: string) => {
    const s: RoomSocket = connectIo(base, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    const [messages] = await nextEvent(s, 'chat:history');
    return messages;
  };

  it('sends what was said to whoever joins later; refused messages are never kept', async () => {
    t = await startTestServer();
    const room = await openRoom(t.url, { hostName: 'Ana' });
    const bo = await joinAs(t.url, room, 'remixer', 'Bo');
    const s = await join(t.url, room.roomId, bo.token);
    expect((await send(s, 'hello room')).ok).to.equal(true);
    expect((await send(s, 'x'.repeat(600))).ok).to.equal(false);
    expect((await send(s, '   ')).ok).to.equal(false);
    const history = await historyOf(t.url, room.roomId, room.hostToken);
    expect(history.map((m) => m.text)).to.deep.equal(['hello room']);
    expect(history[0]).to.include({ userId: bo.userId, name: 'Bo' });
  });

  it(`keeps the newest ${CHAT_HISTORY_KEEP} only, and keeps them across a restart of the server`, async () => {
    data = await demoDataDir();
    t = await startTestServer({}, { dataDir: data.path, roomTimings: { graceMs: 200 } });
    const room = await openRoom(t.url, { hostName: 'Ana' });
    const store = t.server.store;
    // Written through the store the room uses: as many as the limits would take minutes to let through.
    for (let i = 0; i < CHAT_HISTORY_KEEP + 20; i++) {
      await store.addChatMessage(room.roomId, { id: `m${i}`, userId: 'u_x', name: 'X', role: 'remixer', text: `message ${i}`, atMs: 1_000_000 + i }, CHAT_HISTORY_KEEP);
    }
    const bo = await joinAs(t.url, room, 'remixer', 'Bo');
    const s = await join(t.url, room.roomId, bo.token);
    expect((await send(s, 'the last word')).ok).to.equal(true);
    const before = await historyOf(t.url, room.roomId, room.hostToken);
    expect(before).to.have.length(CHAT_HISTORY_KEEP);
    expect(before[0]!.text).to.equal('message 21');
    expect(before.at(-1)!.text).to.equal('the last word');

    for (const x of sockets.splice(0)) x.disconnect();
    // The same data folder, a new server: the room and its chat come back from the embedded store.
    await t.close();
    t = await startTestServer({}, { dataDir: data.path });
    const after = await historyOf(t.url, room.roomId, room.hostToken);
    expect(after.map((m) => m.id)).to.deep.equal(before.map((m) => m.id));
  });
});
