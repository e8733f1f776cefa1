// Awareness with stock y-websocket clients: a stock provider sends every awareness change it
// receives back to the server, and the server coalesces the changes it sends to the peers.
import { expect } from 'chai';
import WebSocket from 'ws';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as decoding from 'lib0/decoding';
import * as Y from 'yjs';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { connectMember, joinAs, openRoom, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';

const MESSAGE_AWARENESS = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type State = Record<string, unknown>;

describe('awareness with stock y-websocket clients', function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  const members: Member[] = [];
  const sockets: WebSocket[] = [];

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
    while (sockets.length) sockets.pop()!.terminate();
  });

  async function remixer(name: string, awareness: State): Promise<Member & { userId: string; closes: number }> {
    const { token, userId } = await joinAs(t.url, room, 'remixer', name);
    const m = await connectMember(t.url, room.roomId, token, { awareness });
    members.push(m);
    const counted = Object.assign(m, { userId, closes: 0 });
    m.provider.on('connection-close', () => counted.closes++);
    return counted;
  }

  /** A raw y-websocket connection that only listens: it counts the awareness messages it gets and applies them. */
  async function observer(name: string): Promise<{ awareness: awarenessProtocol.Awareness; messages: () => number; reset: () => void }> {
    const { token } = await joinAs(t.url, room, 'remixer', name);
    const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${encodeURIComponent(token)}`);
    sockets.push(ws);
    const doc = new Y.Doc();
    const awareness = new awarenessProtocol.Awareness(doc);
    awareness.setLocalState(null);
    let count = 0;
    ws.on('message', (data: Buffer) => {
      const dec = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (decoding.readVarUint(dec) !== MESSAGE_AWARENESS) return;
      count++;
      awarenessProtocol.applyAwarenessUpdate(awareness, decoding.readVarUint8Array(dec), 'server');
    });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    // The raw socket has no state of its own to renew; the awareness instance must not time the others out during the test.
    awareness.destroy();
    return {
      awareness,
      messages: () => count,
      reset: () => {
        count = 0;
      },
    };
  }

  const stateOf = (m: Member, of: Member): State | undefined => m.provider.awareness.getStates().get(of.provider.awareness.clientID);

  it('skips the echoes of a stock provider: it is neither refused nor dropped, and its own changes still reach the others', async () => {
    // Five members keep changing their awareness; every member's provider sends each batch it receives back to
    // the server (up to six states in one message, all of them no newer than the server's own copies).
    const echoer = await remixer('Echo', { name: 'Echo', holding: null });
    const writers: Awaited<ReturnType<typeof remixer>>[] = [];
    for (let i = 0; i < 5; i++) writers.push(await remixer(`W${i}`, { name: `W${i}`, n: 0 }));
    const everyone = [echoer, ...writers];
    await waitFor(() => everyone.every((m) => m.provider.awareness.getStates().size === everyone.length), 5000, 'everyone to see everyone');

    // About 70 batches in 7 s, each echoed by every provider: more than the strike limit allows refused
    // messages in its window (50 in 10 s), had the echoes counted as refused.
    const rounds = 70;
    for (let r = 1; r <= rounds; r++) {
      for (const w of writers) w.provider.awareness.setLocalStateField('n', r);
      if (r % 10 === 0) echoer.provider.awareness.setLocalStateField('holding', `round ${r}`);
      await sleep(100);
    }
    await waitFor(
      () => writers.every((w) => stateOf(echoer, w)?.['n'] === rounds && writers.every((o) => stateOf(w, o)?.['n'] === rounds)),
      10_000,
      'every final state everywhere',
    );
    await waitFor(() => writers.every((w) => stateOf(w, echoer)?.['holding'] === `round ${rounds}`), 5000, "the echoer's own last change");
    await sleep(200);

    for (const m of everyone) {
      expect(m.closes, 'connection closes').to.equal(0);
      expect(m.provider.wsconnected).to.equal(true);
      expect(m.refusals, `refusals of ${m.provider.awareness.getLocalState()?.['name'] as string}`).to.deep.equal([]);
    }
    const server = t.server.rooms.get(room.roomId)!;
    expect(server.peerCount).to.equal(everyone.length);
    // What the others see of the echoer is its own state, stamped with who it is.
    expect(stateOf(writers[0]!, echoer)!['member']).to.deep.include({ userId: echoer.userId, name: 'Echo', role: 'remixer' });
    // Its changes still count after all those echoes.
    echoer.provider.awareness.setLocalStateField('holding', 'mix.master.tempo');
    await waitFor(() => writers.every((w) => stateOf(w, echoer)?.['holding'] === 'mix.master.tempo'), 5000, 'the change after the burst');
  });

  it('sends a burst of awareness changes from several members to an observer as a few messages, every final state included', async () => {
    const writers: Awaited<ReturnType<typeof remixer>>[] = [];
    for (let i = 0; i < 4; i++) writers.push(await remixer(`B${i}`, { name: `B${i}`, n: 0 }));
    const watch = await observer('Watcher');
    const ids = writers.map((w) => w.provider.awareness.clientID);
    await waitFor(() => ids.every((id) => watch.awareness.getStates().get(id)?.['n'] === 0), 5000, 'the initial states');
    await sleep(300);
    watch.reset();

    // 4 × 50 changes, sent at once: 200 awareness messages reach the server.
    const changes = 50;
    for (let r = 1; r <= changes; r++) for (const w of writers) w.provider.awareness.setLocalStateField('n', r);
    await waitFor(() => ids.every((id) => watch.awareness.getStates().get(id)?.['n'] === changes), 10_000, 'every final state');
    await sleep(300);

    // The first change goes out at once, the rest together at most 100 ms later (a loaded machine may split them more).
    expect(watch.messages()).to.be.within(1, 6);
    for (const [i, w] of writers.entries()) {
      expect(watch.awareness.getStates().get(ids[i]!)).to.deep.include({ name: `B${i}`, n: changes, member: { userId: w.userId, name: `B${i}`, role: 'remixer' } });
    }
    for (const w of writers) expect(w.refusals).to.deep.equal([]);
  });
  it('holds renewals (a state sent again unchanged) for up to a second, then sends them together; a change goes out with them at once', async () => {
    const writers: Awaited<ReturnType<typeof remixer>>[] = [];
    for (let i = 0; i < 3; i++) writers.push(await remixer(`R${i}`, { name: `R${i}` }));
    const watch = await observer('Watcher');
    const ids = writers.map((w) => w.provider.awareness.clientID);
    await waitFor(() => ids.every((id) => watch.awareness.getStates().has(id)), 5000, 'the initial states');
    await sleep(1200);
    watch.reset();
    // Every 40 ms for about a second, each writer renews its state (as providers do every 15 s): same content, newer clock.
    for (let r = 0; r < 25; r++) {
      for (const w of writers) w.provider.awareness.setLocalState({ ...w.provider.awareness.getLocalState() });
      await sleep(40);
    }
    const clockOf = (w: Member) => w.provider.awareness.meta.get(w.provider.awareness.clientID)!.clock;
    await waitFor(() => writers.every((w, i) => watch.awareness.meta.get(ids[i]!)?.clock === clockOf(w)), 5000, 'the renewed clocks');
    // At a message per 100 ms that would be about ten; held for a second, one or two (three on a slow machine).
    expect(watch.messages()).to.be.within(1, 3);
    // A change is not held: it goes at once, with the renewals waiting.
    await sleep(1200);
    watch.reset();
    for (const w of writers.slice(1)) w.provider.awareness.setLocalState({ ...w.provider.awareness.getLocalState() });
    writers[0]!.provider.awareness.setLocalStateField('holding', 'mix.master.tempo');
    await waitFor(() => watch.awareness.getStates().get(ids[0]!)?.['holding'] === 'mix.master.tempo', 5000, 'the change');
    expect(watch.messages()).to.be.within(1, 2);
    await waitFor(() => writers.every((w, i) => watch.awareness.meta.get(ids[i]!)?.clock === clockOf(w)), 5000, 'the renewals sent with it');
    for (const w of writers) expect(w.refusals).to.deep.equal([]);
  });
});
