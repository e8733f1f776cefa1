// Takes: a host saves the room's mix, arrangement and visuals under a name, lists them, and
// returns the room to one: one change every member receives at once, checked against the
// rules as they are now, recorded in the timeline that clips are rendered from.
import { expect } from 'chai';
import * as Y from 'yjs';
import { LIMITS } from '../../shared/limits.ts';
import type { TakeReturn, TakeView } from '../../shared/takes.ts';
import { api, connectMember, connectSocket, joinAs, openRoom, stemMap, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Err = { error: { code: string; message: string; limit?: string } };

describe('takes: save, list, return', function () {
  this.timeout(60_000);
  let t: TestServer;
  let room: OpenedRoom;
  const members: Member[] = [];

  before(async () => {
    t = await startTestServer({}, { roomTimings: { graceMs: 150, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
  });
  after(async () => {
    await t?.close();
  });
  beforeEach(async () => {
    room = await openRoom(t.url, { hostName: 'Host' });
  });
  afterEach(() => {
    while (members.length) members.pop()!.destroy();
  });

  const takes = () => `/api/rooms/${room.roomId}/takes`;
  const save = (name: unknown, token = room.hostToken) => api<TakeView & Err>(t.url, 'POST', takes(), { name }, token);
  const list = (token = room.hostToken) => api<{ takes: TakeView[]; max: number } & Err>(t.url, 'GET', takes(), undefined, token);
  const back = (takeId: string, token = room.hostToken) => api<TakeReturn & Err>(t.url, 'POST', `${takes()}/${takeId}/return`, undefined, token);

  async function member(token: string): Promise<Member> {
    const m = await connectMember(t.url, room.roomId, token);
    members.push(m);
    return m;
  }
  const stemIds = (doc: Y.Doc) => [...(doc.getMap('mix').get('stems') as Y.Map<unknown>).keys()].sort();
  const gain = (doc: Y.Doc, stem: string) => stemMap(doc, stem).get('gainDb');

  it('a host saves a take and returns the room to it: one update that every member receives, recorded in the timeline', async () => {
    const host = await member(room.hostToken);
    const fan = await joinAs(t.url, room, 'remixer', 'Fan');
    const other = await member(fan.token);
    const [drums, bass] = stemIds(host.doc) as [string, string];
    stemMap(host.doc, drums).set('gainDb', -10);
    stemMap(host.doc, bass).set('pan', 0.5);
    await waitFor(() => gain(other.doc, drums) === -10 && stemMap(other.doc, bass).get('pan') === 0.5, 5000, 'the host’s moves to arrive');
    const socket = await connectSocket(t.url, room.roomId, room.hostToken);
    const prompt = async (text: string) => {
      const r = await socket.emitWithAck('prompt:submit', { text });
      expect(r.ok, JSON.stringify(r)).to.equal(true);
      await waitFor(() => other.doc.getMap('visual').get('prompt') === text, 5000, 'the prompt to arrive');
    };
    await prompt('stormy night');

    const saved = await save('  Verse  idea ');
    expect(saved.status).to.equal(201);
    expect(saved.body).to.include({ name: 'Verse idea', savedBy: 'Host' });
    expect(saved.body.takeId).to.match(/^tk_/);

    // Everyone moves on.
    stemMap(other.doc, drums).set('gainDb', -3);
    stemMap(other.doc, bass).set('pan', -0.25);
    await prompt('sunny beach');
    socket.disconnect();
    await waitFor(() => gain(host.doc, drums) === -3 && stemMap(host.doc, bass).get('pan') === -0.25, 5000, 'the fan’s moves to arrive');

    const before = Date.now();
    let updates = 0;
    other.doc.on('update', () => updates++);
    const r = await back(saved.body.takeId);
    expect(r.status, JSON.stringify(r.body)).to.equal(200);
    expect(r.body).to.deep.equal({ takeId: saved.body.takeId, name: 'Verse idea', adjusted: [] });
    for (const m of [host, other]) await waitFor(() => gain(m.doc, drums) === -10 && stemMap(m.doc, bass).get('pan') === 0.5, 5000, 'the take to arrive');
    // The visuals came back too, and everything came in the one update.
    expect(other.doc.getMap('visual').get('prompt')).to.equal('stormy night');
    expect(updates).to.equal(1);

    // A clip replays it: the timeline holds the return like any edit.
    const live = t.server.rooms.get(room.roomId)!;
    const window = live.timeline.window(before - 1, Date.now() + 1);
    expect(window).to.not.equal(null);
    const events = window!.events.map((e) => [e.path, e.value]);
    expect(events).to.deep.include([`mix.stems.${drums}.gainDb`, -10]);
    expect(events).to.deep.include([`mix.stems.${bass}.pan`, 0.5]);

    expect((await list()).body.takes.map((x) => x.name)).to.deep.equal(['Verse idea']);
  });

  it('a value outside a limit the host set since comes back inside it, and the answer says so', async () => {
    const host = await member(room.hostToken);
    const [drums] = stemIds(host.doc) as [string];
    stemMap(host.doc, drums).set('gainDb', -20);
    await waitFor(() => gain(t.server.rooms.get(room.roomId)!.doc, drums) === -20, 5000, 'the move to reach the server');
    const saved = await save('Quiet drums');
    expect(saved.status).to.equal(201);
    host.doc.getMap('rules').set('stemRanges', { gainDb: { min: -6, max: 0 } });
    // The narrowed rule clamps the live value at once.
    await waitFor(() => gain(host.doc, drums) === -6, 5000, 'the clamp');
    stemMap(host.doc, drums).set('gainDb', 0);
    await waitFor(() => gain(t.server.rooms.get(room.roomId)!.doc, drums) === 0, 5000, 'the move to reach the server');

    const r = await back(saved.body.takeId);
    expect(r.status).to.equal(200);
    await waitFor(() => gain(host.doc, drums) === -6, 5000, 'the take, clamped');
    expect(r.body.adjusted).to.have.length(1);
    expect(r.body.adjusted[0]).to.match(/level was -20 dB in the take; the room now allows -6 dB to 0 dB, so it is -6 dB/);
    expect(t.server.rooms.get(room.roomId)!.guardInStep()).to.equal(true);
  });

  it('a listener may list takes but not save or return to one; a remixer only when the host allows it, and never past a locked stem', async () => {
    const host = await member(room.hostToken);
    const [drums] = stemIds(host.doc) as [string];
    const saved = await save('First');
    expect(saved.status).to.equal(201);
    const listener = await joinAs(t.url, room, 'listener', 'Lis');
    const remixer = await joinAs(t.url, room, 'remixer', 'Rem');
    expect((await list(listener.token)).body.takes).to.have.length(1);
    const l1 = await save('Mine', listener.token);
    expect(l1.status).to.equal(403);
    expect(l1.body.error.message).to.match(/listeners cannot save takes/);
    expect((await back(saved.body.takeId, listener.token)).status).to.equal(403);
    const r1 = await save('Mine', remixer.token);
    expect(r1.status).to.equal(403);
    expect(r1.body.error.message).to.match(/only the host can save takes/);
    expect((await list()).body.takes).to.have.length(1);

    // The host opens takes to remixers and locks the drums.
    stemMap(host.doc, drums).set('gainDb', -12);
    host.doc.getMap('rules').set('takesByRemixers', true);
    await waitFor(() => t.server.rooms.get(room.roomId)!.rules.takesByRemixers, 5000, 'the rule');
    const byRemixer = await save('Remixer take', remixer.token);
    expect(byRemixer.status).to.equal(201);
    expect(byRemixer.body.savedBy).to.equal('Rem');
    const all = (await list()).body.takes.map((x) => x.name);
    expect(all).to.deep.equal(['First', 'Remixer take']);
    const others = stemIds(host.doc).filter((s) => s !== drums);
    host.doc.getMap('rules').set('editableStems', others);
    stemMap(host.doc, drums).set('gainDb', -30);
    await waitFor(() => gain(t.server.rooms.get(room.roomId)!.doc, drums) === -30 && !t.server.rooms.get(room.roomId)!.rules.editableStems.includes(drums), 5000, 'the lock');
    const r = await back(byRemixer.body.takeId, remixer.token);
    expect(r.status).to.equal(200);
    expect(r.body.adjusted.join(' ')).to.match(/stayed as it is: the host has locked it/);
    // The locked stem kept the host's value.
    expect(gain(t.server.rooms.get(room.roomId)!.doc, drums)).to.equal(-30);
  });

  it('bad names, unknown takes and a full room get a clear error and change nothing', async () => {
    for (const [name, why] of [
      ['', /a take needs a name/],
      ['   ', /a take needs a name/],
      ['x'.repeat(61), /at most 60 characters/],
      [42, /name/],
      [null, /name/],
    ] as const) {
      const r = await save(name);
      expect(r.status, String(name)).to.equal(400);
      expect(r.body.error.code).to.equal('invalid_body');
      expect(r.body.error.message).to.match(why);
    }
    const extra = await api<Err>(t.url, 'POST', takes(), { name: 'ok', content: {} }, room.hostToken);
    expect(extra.status).to.equal(400);
    expect((await save('x'.repeat(60))).status).to.equal(201);
    expect((await list()).body.takes).to.have.length(1);

    expect((await back('tk_doesnotexist')).status).to.equal(404);
    expect((await back('..%2Fnope')).status).to.equal(404);
    expect((await api(t.url, 'GET', takes())).status).to.equal(401);

    // Fill the room to its cap (straight into the store: the rate limit would stop a test first).
    const max = LIMITS['take.room'].max;
    for (let i = 1; i < max; i++) {
      await t.server.store.createTake({ id: `tk_filler${String(i).padStart(3, '0')}`, roomId: room.roomId, name: `T${i}`, content: {}, createdBy: 'u_x', savedBy: 'X', createdAt: new Date().toISOString() }, max);
    }
    expect((await list()).body.takes).to.have.length(max);
    const over = await save('One too many');
    expect(over.status).to.equal(409);
    expect(over.body.error.message).to.match(/at most 50 takes/);
    expect((await list()).body.takes).to.have.length(max);
  });

  it('a member saving and returning too fast is told to wait', async () => {
    const capacity = LIMITS['take.member'].capacity;
    const saved = await save('Loop');
    expect(saved.status).to.equal(201);
    let last = 0;
    for (let i = 0; i < capacity; i++) last = (await back(saved.body.takeId)).status;
    expect(last).to.equal(429);
  });

  it('reading the list is limited per member (take.read.member): 429 naming the limit once it is spent', async () => {
    const statuses: number[] = [];
    let refused: { error?: { code: string; limit?: string } } = {};
    for (let i = 0; i <= LIMITS['take.read.member'].capacity + 2; i++) {
      const r = await list();
      statuses.push(r.status);
      if (r.status === 429) refused = r.body as typeof refused;
    }
    expect(statuses.filter((x) => x === 200).length).to.be.at.most(LIMITS['take.read.member'].capacity);
    expect(statuses.at(-1)).to.equal(429);
    expect(refused.error).to.include({ code: 'rate_limited', limit: 'take.read.member' });
  });
});
