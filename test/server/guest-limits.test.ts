// Limits belong to people and addresses, not connections: a hostile guest with
// one link, many member ids or many connections gets a clear refusal naming the
// limit and when to try again, and everyone else in the room is still served.
// Addresses are given as X-Forwarded-For from loopback (the server trusts
// loopback proxies), so that one test process can be many strangers.
import { expect } from 'chai';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { LIMITS } from '../../shared/limits.ts';
import { api, connectMember, connectSocket, from, joinAs, openRoom, stemMap, strangerAddress, waitFor, webSocketFrom, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Client = RoomSocket;

describe('limits on guests: per person and per address', function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  const sockets: Client[] = [];
  const members: Member[] = [];

  before(async () => {
    t = await startTestServer({}, { roomTimings: { graceMs: 200 } });
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    room = await openRoom(t.url);
  });
  afterEach(() => {
    while (sockets.length) sockets.pop()!.disconnect();
    while (members.length) members.pop()!.destroy();
  });

  async function socketFrom(token: string, address: string): Promise<Client> {
    const s = await connectSocket(t.url, room.roomId, token, { address });
    sockets.push(s);
    return s;
  }

  async function metric(name: string, labels: string): Promise<number> {
    const text = await (await fetch(`${t.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
    return line ? Number(line.split(' ').pop()) : 0;
  }

  it('one link exchanged from one address lets in the address limit, then 429 naming it with Retry-After; other addresses still join', async () => {
    const link = await api<{ invite: string }>(t.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'remixer' }, room.hostToken);
    const flooder = strangerAddress();
    const tries = await Promise.all(Array.from({ length: 60 }, (_, i) => api<{ error?: { limit?: string; retryAfterSec?: number } }>(t.url, 'POST', `/api/rooms/${room.roomId}/join`, { invite: link.body.invite, name: `bot${i}` }, undefined, from(flooder))));
    const ok = tries.filter((r) => r.status === 201);
    const limited = tries.filter((r) => r.status === 429);
    expect(ok).to.have.length(LIMITS['invite.exchange.address'].capacity);
    expect(limited).to.have.length(60 - ok.length);
    expect(limited[0]!.body.error).to.include({ limit: 'invite.exchange.address' });
    expect(Number(limited[0]!.headers.get('retry-after'))).to.be.within(1, 60);
    // Ids minted so: exactly as many members as were let in.
    const honest = await api(t.url, 'POST', `/api/rooms/${room.roomId}/join`, { invite: link.body.invite, name: 'honest' }, undefined, from(strangerAddress()));
    expect(honest.status).to.equal(201);
  });

  it("a member's edits over its rate wait and go in together, across all its connections; another member's go in at once; everyone converges", async () => {
    const flooder = await joinAs(t.url, room, 'remixer', 'Flooder');
    const conns: Member[] = [];
    for (let i = 0; i < 8; i++) conns.push(await connectMember(t.url, room.roomId, flooder.token, { address: flooder.address }));
    members.push(...conns);
    const honest = await joinAs(t.url, room, 'remixer', 'Honest');
    const h = await connectMember(t.url, room.roomId, honest.token, { address: honest.address });
    const observer = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(h, observer);
    await new Promise((r) => setTimeout(r, 300));
    const applied0 = await metric('remixroom_sync_edits_total', 'outcome="applied"');
    const perConnection = 40;
    const started = Date.now();
    for (let k = 0; k < perConnection; k++) for (const [i, c] of conns.entries()) stemMap(c.doc, 'drums').set('gainDb', -(k % 20) - i / 10);
    // While the flood waits, the honest member's edit goes in at once.
    stemMap(h.doc, 'bass').set('gainDb', -7);
    await waitFor(() => stemMap(observer.doc, 'bass').get('gainDb') === -7, 5000, "the honest member's edit");
    await new Promise((r) => setTimeout(r, Math.max(0, 1000 - (Date.now() - started))));
    const elapsedSec = (Date.now() - started) / 1000;
    const inFirstSecond = (await metric('remixroom_sync_edits_total', 'outcome="applied"')) - applied0;
    const spec = LIMITS['sync.update.member'];
    // The bucket's burst and refill, plus the honest member's edit and a lease of slack.
    expect(inFirstSecond).to.be.at.most(spec.capacity + spec.refillPerSec * elapsedSec + 1 + 10);
    expect(inFirstSecond).to.be.at.least(spec.capacity / 2);
    expect(await metric('remixroom_sync_edits_total', 'outcome="queued"')).to.be.above(0);
    // Nothing is lost: the waiting edits go in, and every copy ends equal.
    await waitFor(
      () => conns.every((c) => stemMap(c.doc, 'drums').get('gainDb') === stemMap(observer.doc, 'drums').get('gainDb')) && stemMap(conns[0]!.doc, 'bass').get('gainDb') === -7,
      20_000,
      'all copies to converge',
    );
    await waitFor(() => t.server.rooms.get(room.roomId)!.guardInStep(), 5000, 'the guard in step');
    expect(await metric('remixroom_sync_edits_total', 'outcome="overflow"')).to.equal(0);
  });

  it('prompts waiting for the host: at most a few per member and per address, so that an honest member still gets in', async () => {
    const host = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(host);
    host.doc.getMap('rules').set('promptPolicy', 'queued');
    await waitFor(() => t.server.rooms.get(room.roomId)?.rules.promptPolicy === 'queued', 5000, 'the queued policy');
    const flooder = strangerAddress();
    const answers: { ok: boolean; refusal?: { limit?: string } }[] = [];
    for (let i = 0; i < 20; i++) {
      const minted = await api<{ token: string }>(t.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'remixer', name: `id${i}` }, room.hostToken);
      const s = await socketFrom(minted.body.token, flooder);
      for (let k = 0; k < 2; k++) answers.push(await s.emitWithAck('prompt:submit', { text: `glitch storm ${i} ${k}` }));
    }
    const queued = answers.filter((a) => a.ok).length;
    expect(queued).to.equal(LIMITS['prompt.queue.address'].max);
    expect(answers.filter((a) => !a.ok).every((a) => a.refusal?.limit?.startsWith('prompt.'))).to.equal(true);
    const honest = await joinAs(t.url, room, 'remixer', 'Honest');
    const s = await socketFrom(honest.token, honest.address);
    expect((await s.emitWithAck('prompt:submit', { text: 'slow ocean waves' })).ok).to.equal(true);
    // One member alone cannot hold more than its share either (once its rate lets it try again).
    for (let k = 1; k < LIMITS['prompt.queue.member'].max; k++) expect((await s.emitWithAck('prompt:submit', { text: `calm sunrise ${k}` })).ok).to.equal(true);
    await new Promise((r) => setTimeout(r, 1000 / LIMITS['prompt.member'].refillPerSec + 100));
    const refused = (await s.emitWithAck('prompt:submit', { text: 'one more' })) as { ok: boolean; refusal?: { limit?: string } };
    expect(refused.ok).to.equal(false);
    expect(refused.refusal?.limit).to.equal('prompt.queue.member');
  });

  it('clips from one address: several member ids share the address limit', async () => {
    const flooder = strangerAddress();
    const statuses: number[] = [];
    const limits: (string | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const minted = await api<{ token: string }>(t.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'remixer', name: `c${i}` }, room.hostToken);
      for (let k = 0; k < 3; k++) {
        const r = await api<{ error?: { limit?: string } }>(t.url, 'POST', `/api/rooms/${room.roomId}/clips`, { seconds: 10 }, minted.body.token, { ...from(flooder), 'idempotency-key': `k${i}-${k}` });
        statuses.push(r.status);
        limits.push(r.body.error?.limit);
      }
    }
    // The first few pass the limits (and are then answered by the clip service: the room has no past yet).
    expect(statuses.filter((s) => s !== 429)).to.have.length(LIMITS['clip.address'].capacity);
    expect(limits.filter((l) => l === 'clip.address')).to.have.length(12 - LIMITS['clip.address'].capacity);
  });

  it('the chat limit is per member across its connections', async () => {
    const m = await joinAs(t.url, room, 'remixer', 'Chatty');
    const a = await socketFrom(m.token, m.address);
    const b = await socketFrom(m.token, m.address);
    const oks = [];
    for (let i = 0; i < 4; i++) oks.push((await a.emitWithAck('chat:send', { text: `a${i}` })).ok, (await b.emitWithAck('chat:send', { text: `b${i}` })).ok);
    expect(oks.filter(Boolean)).to.have.length(LIMITS['chat.member'].capacity);
  });
});

describe('connections per address', function () {
  this.timeout(60_000);
  let t: TestServer;
  before(async () => {
    t = await startTestServer({ maxConnectionsPerAddress: 4 });
  });
  after(async () => {
    await t?.close();
  });

  it('caps sync and socket.io connections per address together, with a clear refusal; other addresses and freed places still connect', async () => {
    const room = await openRoom(t.url);
    const a = await joinAs(t.url, room, 'remixer', 'A');
    const held: WebSocket[] = [];
    const sync = (address: string) => {
      const Ws = webSocketFrom(address);
      return new Ws(`${t.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${a.token}`) as unknown as WebSocket;
    };
    const opened = (ws: WebSocket) =>
      new Promise<number>((resolve) => {
        ws.once('open', () => resolve(101));
        ws.once('unexpected-response', (_req, res) => {
          resolve(res.statusCode ?? 0);
          res.resume();
        });
      });
    for (let i = 0; i < 3; i++) {
      const ws = sync(a.address);
      held.push(ws);
      expect(await opened(ws)).to.equal(101);
    }
    const s = io(t.url, { auth: { roomId: room.roomId, token: a.token }, transports: ['websocket'], reconnection: false, extraHeaders: from(a.address) });
    await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('connect_error', reject));
    // The fifth, of either kind, is refused.
    const fifth = sync(a.address);
    const refused = await new Promise<{ status: number; retryAfter: string | undefined; body: string }>((resolve) => {
      fifth.once('unexpected-response', (_req, res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] as string | undefined, body }));
      });
      fifth.once('open', () => resolve({ status: 101, retryAfter: undefined, body: '' }));
    });
    expect(refused.status).to.equal(429);
    expect(Number(refused.retryAfter)).to.be.above(0);
    expect(JSON.parse(refused.body).error).to.include({ code: 'rate_limited', limit: 'connections.address' });
    const io5 = io(t.url, { auth: { roomId: room.roomId, token: a.token }, transports: ['websocket'], reconnection: false, extraHeaders: from(a.address) });
    const err = await new Promise<Error & { data?: { limit?: string } }>((r) => io5.once('connect_error', r));
    expect(err.data?.limit).to.equal('connections.address');
    io5.disconnect();
    // Someone else is not affected.
    const other = sync(strangerAddress());
    held.push(other);
    expect(await opened(other)).to.equal(101);
    // A place given back is free again.
    held[0]!.close();
    await new Promise((r) => setTimeout(r, 200));
    const again = sync(a.address);
    held.push(again);
    expect(await opened(again)).to.equal(101);
    // So is a socket.io connection's, once it disconnects.
    s.disconnect();
    await new Promise((r) => setTimeout(r, 200));
    const s2 = await connectSocket(t.url, room.roomId, a.token, { address: a.address });
    s2.disconnect();
    for (const ws of held) ws.terminate();
  });
});
