// A room's live stream through a real server: signaling over the room's
// socket.io channel, the room's mixer started by the first join and stopped
// after the last listener left, refusals for bad signaling. (What the browser
// hears is tested in test/browser/live-room.test.ts.) Per SFU adapter
// (test/support/sfu-adapters.ts): the steps after the join are the adapter's
// own (an SDP answer for the embedded SFU, mediasoup-client's connect for mediasoup).
import { expect } from 'chai';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { api, joinAs, openRoom, connectMember, type OpenedRoom } from '../support/room-clients.ts';
import type { SfuKind } from '../../media/sfu/sfu.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;
type SignalResult = { ok: true; signal: Record<string, unknown> & { type: string } } | { ok: false; refusal: { code: string; message: string } };

const IDLE_STOP_MS = 400;

/** A well-formed message about a transport, in the adapter's own signaling (what comes after the join). */
function transportMessage(adapter: SfuKind, transportId: unknown): Record<string, unknown> {
  return adapter === 'embedded'
    ? { type: 'answer', transportId, sdp: 'v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n' }
    : { type: 'connect', transportId, dtlsParameters: { role: 'client', fingerprints: [{ algorithm: 'sha-256', value: 'AA:BB' }] } };
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | null | undefined | false> | T | null | undefined | false): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('live stream of a room (socket.io signaling, real server)', adapter), function () {
    this.timeout(60_000);
    let t: TestServer;
    let room: OpenedRoom;
    const clients: Client[] = [];

    before(async function () {
      await requireSfuAdapter(adapter, this);
      t = await startTestServer({}, { live: { idleStopMs: IDLE_STOP_MS }, adapter });
      room = await openRoom(t.url);
    });
    afterEach(() => {
      for (const c of clients.splice(0)) c.disconnect();
    });
    after(async () => t?.close());

    async function connect(token: string, roomId = room.roomId): Promise<Client> {
      const s: Client = io(t.url, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
      clients.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('connect', () => resolve());
        s.once('connect_error', reject);
      });
      return s;
    }

    const signal = (s: Client, message: unknown): Promise<SignalResult> =>
      (s.timeout(10_000).emitWithAck as (ev: string, m: unknown) => Promise<SignalResult>)('stream:signal', message);

    const roomView = async () => (await api<{ live: boolean; listeners: number; streamAdapter: string | null }>(t.url, 'GET', `/api/rooms/${room.roomId}`)).body;

    it('a join over socket.io gets the SFU’s answer (embedded: an offer with stereo Opus; mediasoup: transport parameters), and the room goes live with its mixer running', async () => {
      expect(await roomView()).to.include({ live: false, listeners: 0 });
      const { token } = await joinAs(t.url, room, 'listener', 'Lis');
      const s = await connect(token);
      const r = await signal(s, { type: 'join' });
      expect(r.ok, JSON.stringify(r)).to.equal(true);
      if (!r.ok) return;
      if (adapter === 'embedded') {
        expect(r.signal).to.include({ type: 'offer', adapter: 'embedded' });
        expect(r.signal['sdp']).to.be.a('string').and.match(/opus\/48000\/2/i);
      } else {
        expect(r.signal).to.include({ type: 'transport', adapter: 'mediasoup' });
        expect(JSON.stringify(r.signal['routerRtpCapabilities'])).to.match(/audio\/opus/i);
      }
      const view = await roomView();
      expect(view).to.include({ live: true, listeners: 1, streamAdapter: adapter });
      // The mixer runs and sends: frames leave the live output.
      const stream = t.server.live.stream(room.roomId)!;
      const stats = await until('frames to be sent', 5000, async () => {
        const st = await stream.stats();
        return st.output && st.output.framesSent > 10 ? st.output : null;
      });
      expect(stats.framesSkipped).to.be.lessThan(stats.framesSent);
      expect(t.server.live.stems.heldReleases).to.deep.equal(['remixroom-demo']);
    });

    it('stops mixing once the last listener has gone (after the idle delay), and lets go of the stems', async () => {
      await until('the stream to stop', 5000, async () => !(await roomView()).live);
      expect(t.server.live.stems.heldReleases).to.deep.equal([]);
      expect((await roomView()).listeners).to.equal(0);
    });

    it('refuses malformed, out-of-order and foreign signaling with a named reason, and keeps serving', async () => {
      const { token } = await joinAs(t.url, room, 'remixer', 'Rex');
      const s = await connect(token);
      for (const bad of [null, 'join', 42, { type: 7 }, { nope: true }, { type: 'x'.repeat(100) }]) {
        const r = await signal(s, bad);
        expect(r.ok, JSON.stringify(bad)).to.equal(false);
        if (!r.ok) expect(r.refusal.code).to.equal('malformed');
      }
      // A well-formed SFU message of an unknown kind, and fields the SFU does not know.
      const unknown = await signal(s, { type: 'consume-everything' });
      expect(unknown.ok).to.equal(false);
      if (!unknown.ok) expect(unknown.refusal.code).to.equal('malformed');
      const extra = await signal(s, { type: 'join', roomId: 'someone-elses' });
      expect(extra.ok).to.equal(false);
      if (!extra.ok) expect(extra.refusal.code).to.equal('malformed');
      // A transport's next step before any join.
      const early = await signal(s, transportMessage(adapter, 'abc'));
      expect(early.ok).to.equal(false);
      if (!early.ok) expect(early.refusal.code).to.equal('out_of_order');
      // Someone else's transport: join, then answer with an id that is not ours.
      const other = await connect((await joinAs(t.url, room, 'listener', 'Other')).token);
      const theirs = await signal(other, { type: 'join' });
      expect(theirs.ok).to.equal(true);
      const mine = await signal(s, { type: 'join' });
      expect(mine.ok).to.equal(true);
      if (!theirs.ok || !mine.ok) return;
      const stolen = await signal(s, transportMessage(adapter, theirs.signal['transportId']));
      expect(stolen.ok).to.equal(false);
      if (!stolen.ok) expect(stolen.refusal.code).to.equal('out_of_order');
      // Still serving: both are listed, and a leave answers.
      expect((await roomView()).listeners).to.equal(2);
      const left = await signal(s, { type: 'leave' });
      expect(left.ok).to.equal(true);
      if (left.ok) expect(left.signal.type).to.equal('left');
      await until('one listener left', 3000, async () => (await roomView()).listeners === 1);
    });

    it('a member who disconnects leaves the stream at once', async () => {
      const s = await connect((await joinAs(t.url, room, 'listener', 'Gone')).token);
      const before = (await roomView()).listeners;
      expect((await signal(s, { type: 'join' })).ok).to.equal(true);
      expect((await roomView()).listeners).to.equal(before + 1);
      s.disconnect();
      await until('the listener to be removed', 3000, async () => (await roomView()).listeners === before);
    });

    it('rate-limits a flood of signaling per connection, and serves others meanwhile', async () => {
      const s = await connect((await joinAs(t.url, room, 'listener', 'Flood')).token);
      const results = await Promise.all(Array.from({ length: 40 }, () => signal(s, { type: 'bogus-but-well-formed' })));
      const limited = results.filter((r) => !r.ok && r.refusal.code === 'rate_limited').length;
      expect(limited).to.be.greaterThan(10);
      const calm = await connect((await joinAs(t.url, room, 'listener', 'Calm')).token);
      const r = await signal(calm, { type: 'join' });
      expect(r.ok).to.equal(true);
    });

    it('the stream ends with the room', async () => {
      const host = await connectMember(t.url, room.roomId, room.hostToken);
      try {
        const s = await connect((await joinAs(t.url, room, 'listener', 'Ender')).token);
        expect((await signal(s, { type: 'join' })).ok).to.equal(true);
        const stream = t.server.live.stream(room.roomId)!;
        expect(stream.live).to.equal(true);
        const ended = new Promise<void>((resolve) => s.once('room:ended', () => resolve()));
        const del = await api(t.url, 'DELETE', `/api/rooms/${room.roomId}`, undefined, room.hostToken);
        expect(del.status).to.be.oneOf([200, 204]);
        await ended;
        await until('the stream to close', 3000, () => stream.closed);
        expect(stream.live).to.equal(false);
        await until('the stems to be let go', 3000, () => t.server.live.stems.heldReleases.length === 0);
      } finally {
        host.destroy();
      }
    });
  });
}
