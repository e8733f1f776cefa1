import { expect } from 'chai';
import { io } from 'socket.io-client';
import type { Notice, Presence, ChatMessage, PendingPrompt } from '../../shared/socket-events.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { api, connectMember, connectSocket, nextEvent, joinAs, openRoom, stemMap, waitFor, type Member, type OpenedRoom, type RoomSocket } from '../support/room-clients.ts';

type Client = RoomSocket;

describe('the room channel over socket.io', function () {
  this.timeout(30_000);
  let t: TestServer;
  let room: OpenedRoom;
  const sockets: Client[] = [];
  const members: Member[] = [];

  before(async () => {
    t = await startTestServer({}, { roomTimings: { graceMs: 300 } });
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

  async function connect(token: string, roomId = room.roomId): Promise<Client> {
    const s = await connectSocket(t.url, roomId, token);
    sockets.push(s);
    return s;
  }

  async function as(role: 'host' | 'remixer' | 'listener', name: string): Promise<{ socket: Client; token: string; userId: string }> {
    const { token, userId } = role === 'host' ? { token: room.hostToken, userId: '' } : await joinAs(t.url, room, role, name);
    return { socket: await connect(token), token, userId };
  }


  it('refuses a connection without a genuine token for the room', async () => {
    const s: Client = io(t.url, { auth: { roomId: room.roomId, token: 'rr1.bad.token' }, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    const err = await new Promise<Error>((r) => s.once('connect_error', r));
    expect(err.message).to.match(/^unauthorized/);
  });

  it('shows who is here, with their roles, to everyone', async () => {
    const host = await as('host', 'Host');
    const presence = nextEvent(host.socket, 'presence', (p) => p.count === 3);
    await as('remixer', 'Ana');
    await as('listener', 'Lee');
    const [p] = (await presence) as [Presence];
    expect(p.members.map((m) => [m.name, m.role])).to.deep.equal([
      ['Host', 'host'],
      ['Ana', 'remixer'],
      ['Lee', 'listener'],
    ]);
  });

  it('delivers chat to the room, moderated, length- and rate-limited', async () => {
    const a = await as('remixer', 'Ana');
    const b = await as('listener', 'Lee');
    const got = nextEvent(a.socket, 'chat:message');
    const sent = await b.socket.emitWithAck('chat:send', { text: '  hello   everyone \u200b ' });
    expect(sent.ok).to.equal(true);
    const [m] = (await got) as [ChatMessage];
    expect(m).to.include({ name: 'Lee', role: 'listener', text: 'hello everyone' });

    const blocked = await b.socket.emitWithAck('chat:send', { text: 'you are a n\u0456gg\u0435r' });
    expect(blocked).to.deep.equal({ ok: false, refusal: { code: 'blocked_words', message: 'this message uses a word this room does not allow' } });
    const long = await b.socket.emitWithAck('chat:send', { text: 'x'.repeat(600) });
    expect(long.ok === false && long.refusal.code).to.equal('too_long');
    const results = [];
    for (let i = 0; i < 8; i++) results.push(await b.socket.emitWithAck('chat:send', { text: `spam ${i}` }));
    expect(results.some((r) => !r.ok && r.refusal.code === 'rate_limited')).to.equal(true);
    const malformed = await b.socket.emitWithAck('chat:send', { text: 42 } as never);
    expect(malformed.ok === false && malformed.refusal.code).to.equal('malformed');
  });

  it('passes reactions from the allowed set only', async () => {
    const a = await as('remixer', 'Ana');
    const got = nextEvent(a.socket, 'reaction');
    expect((await a.socket.emitWithAck('reaction:send', { emoji: '🔥' })).ok).to.equal(true);
    expect((await got)[0]).to.include({ emoji: '🔥', name: 'Ana' });
    const odd = await a.socket.emitWithAck('reaction:send', { emoji: '💩' as never });
    expect(odd.ok === false && odd.refusal.code).to.equal('malformed');
  });

  it('applies a prompt in an open room and writes it to the document', async () => {
    const a = await as('remixer', 'Ana');
    const doc = await connectMember(t.url, room.roomId, a.token);
    members.push(doc);
    const applied = nextEvent(a.socket, 'prompt:applied');
    const r = await a.socket.emitWithAck('prompt:submit', { text: 'stormy night, slower' });
    expect(r).to.include({ ok: true, status: 'applied' });
    const [shown] = await applied;
    expect(shown).to.include({ text: 'stormy night, slower', name: 'Ana' });
    expect(shown.summary).to.match(/^'stormy night, slower' → .*darker palette/);
    await waitFor(() => doc.doc.getMap('visual').get('prompt') === 'stormy night, slower');
    const visual = doc.doc.getMap('visual');
    expect(visual.get('summary')).to.equal(shown.summary);
    const params = visual.get('params') as { artworks: { id: string }[] };
    expect(params.artworks.map((a) => a.id), 'the night artwork, by its tags').to.include('nocturne');
  });

  it('queues prompts for the host when the host says so, and applies what the host approves', async () => {
    const host = await as('host', 'Host');
    const hostDoc = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(hostDoc);
    hostDoc.doc.getMap('rules').set('promptPolicy', 'queued');
    await waitFor(() => t.server.rooms.get(room.roomId)!.rules.promptPolicy === 'queued');
    const fan = await as('listener', 'Fan');
    const queued = nextEvent(host.socket, 'prompt:queue', (q) => q.length === 1);
    const r = await fan.socket.emitWithAck('prompt:submit', { text: 'neon ocean' });
    expect(r).to.include({ ok: true, status: 'queued' });
    const [queue] = (await queued) as [PendingPrompt[]];
    expect(queue[0]).to.include({ text: 'neon ocean', name: 'Fan' });
    const notHost = await fan.socket.emitWithAck('prompt:decide', { promptId: queue[0]!.promptId, approve: true });
    expect(notHost.ok === false && notHost.refusal.code).to.equal('host_only');
    const applied = nextEvent(fan.socket, 'prompt:applied');
    expect((await host.socket.emitWithAck('prompt:decide', { promptId: queue[0]!.promptId, approve: true })).ok).to.equal(true);
    expect((await applied)[0].text).to.equal('neon ocean');
    const again = await host.socket.emitWithAck('prompt:decide', { promptId: queue[0]!.promptId, approve: true });
    expect(again.ok === false && again.refusal.code).to.equal('not_found');
  });

  it('refuses prompts when the host closed them, and obfuscated blocked names', async () => {
    const hostDoc = await connectMember(t.url, room.roomId, room.hostToken);
    members.push(hostDoc);
    const fan = await as('remixer', 'Fan');
    const named = await fan.socket.emitWithAck('prompt:submit', { text: 'make it sound like T4yl0r  Sw1ft' });
    expect(named).to.deep.equal({ ok: false, refusal: { code: 'blocked_words', message: 'this prompt names another artist, which this release does not allow' } });
    hostDoc.doc.getMap('rules').set('promptPolicy', 'closed');
    await waitFor(() => t.server.rooms.get(room.roomId)!.rules.promptPolicy === 'closed');
    const closed = await fan.socket.emitWithAck('prompt:submit', { text: 'calm' });
    expect(closed.ok === false && closed.refusal.code).to.equal('prompts_closed');
  });

  it("tells a member why their document change was refused, and when the host changes their role", async () => {
    const fan = await as('remixer', 'Fan');
    const doc = await connectMember(t.url, room.roomId, fan.token);
    members.push(doc);
    const notice = nextEvent(fan.socket, 'room:notice', (n) => n.code === 'role_changed');
    await api(t.url, 'PUT', `/api/rooms/${room.roomId}/members/${fan.userId}/role`, { role: 'listener' }, room.hostToken);
    expect(((await notice)[0] as Notice).message).to.equal('the host made you a listener: you can listen, chat and react');
    const refused = nextEvent(fan.socket, 'room:refused');
    stemMap(doc.doc, 'drums').set('gainDb', -3);
    expect((await refused)[0].code).to.equal('read_only');
  });

  it('tells everyone when the host ends the room', async () => {
    const fan = await as('remixer', 'Fan');
    const ended = nextEvent(fan.socket, 'room:ended');
    await api(t.url, 'DELETE', `/api/rooms/${room.roomId}`, undefined, room.hostToken);
    await ended;
  });
});
