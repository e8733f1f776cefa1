// Scale-out with real parts: a real redis-server, two `node server/main.ts`
// processes sharing one DATA_DIR and TOKEN_SECRET, and stock y-websocket clients.
// The bridge's pieces are tested in one process in redis-bridge.test.ts. Per SFU adapter
// (test/support/sfu-adapters.ts): a listener on node B hears the room through B's SFU.
import { expect } from 'chai';
import crypto from 'node:crypto';
import { createClient, type RedisClientType } from 'redis';
import { io } from 'socket.io-client';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { requireComponent } from '../support/components.ts';
import { SFU_ADAPTERS, adapterEnv, adapterLogLine, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { listenToRoom } from '../support/werift-listener.ts';
import { api, connectMember, from, joinAs, openRoom, stemMap, strangerAddress, waitFor, type Member, type OpenedRoom } from '../support/room-clients.ts';
import WebSocket from 'ws';
import { LIMITS } from '../../shared/limits.ts';
import { SYNC_CLOSE } from '../../shared/refusals.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

interface Node {
  name: string;
  url: string;
  nodeId: string;
  process: ServerProcess;
}

const STEMS = ['drums', 'bass', 'harmony', 'lead'] as const;
const LEASE_TTL_MS = 3000;

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('scale-out: two server processes and a real redis-server', adapter), function () {
    this.timeout(120_000);
    let redis: TestRedis;
    let admin: RedisClientType;
    let data: { path: string; remove(): Promise<void> };
    let store: SqliteStore;
    const tokenSecret = crypto.randomBytes(32).toString('hex');
    const nodes: Node[] = [];
    const members: Member[] = [];
    let a: Node;
    let b: Node;

    before(async function () {
      await requireSfuAdapter(adapter, this);
      requireComponent('redis-server', redisAvailable(), this);
      redis = await startRedis();
      admin = createClient({ url: redis.url });
      await admin.connect();
      data = await demoDataDir();
      a = await spawnNode('A');
      b = await spawnNode('B');
      // The test reads the shared store as a third process would.
      store = await SqliteStore.open(new DataLayout(data.path).database);
    });
    after(async () => {
      while (members.length) members.pop()!.destroy();
      for (const n of nodes) await stopChild(n.process.child);
      await store?.close();
      await admin?.close();
      await redis?.stop();
      await data?.remove();
    });
    afterEach(async () => {
      while (members.length) members.pop()!.destroy();
    });

    async function spawnNode(name: string): Promise<Node> {
      const p = spawnServer({
        PORT: '0',
        DATA_DIR: data.path,
        REDIS_URL: redis.url,
        TOKEN_SECRET: tokenSecret,
        ROOM_GRACE_MS: '500',
        ROOM_SAVE_DEBOUNCE_MS: '1500',
        ROOM_LEASE_TTL_MS: String(LEASE_TTL_MS),
        ...adapterEnv(adapter),
      });
      const node: Node = { name, url: '', nodeId: '', process: p };
      nodes.push(node);
      const listening = await p.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/);
      // Not the embedded SFU that a server falls back to when mediasoup's worker does not start.
      await p.waitFor(adapterLogLine(adapter), 1000);
      node.url = listening.slice(listening.indexOf('http'));
      const bridge = await p.waitFor(/"nodeId":"[^"]+"[^\n]*scale-out bridge connected/);
      node.nodeId = /"nodeId":"([^"]+)"/.exec(bridge)![1]!;
      return node;
    }

    async function member(node: Node, room: OpenedRoom, role: 'remixer' | 'listener', name: string, awareness?: Record<string, unknown>): Promise<Member> {
      const { token } = await joinAs(node.url, room, role, name);
      const m = await connectMember(node.url, room.roomId, token, awareness ? { awareness } : {});
      members.push(m);
      return m;
    }

    async function storedGains(roomId: string): Promise<Record<string, unknown>> {
      const record = await store.getRoom(roomId);
      const doc = new Y.Doc();
      if (record?.doc) Y.applyUpdate(doc, record.doc);
      const gains = Object.fromEntries(STEMS.map((s) => [s, (doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>> | undefined)?.get(s)?.get('gainDb')]));
      doc.destroy();
      return gains;
    }

    async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
      const start = Date.now();
      while (!(await check())) {
        if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }

    const numsub = async (roomId: string) => {
      const channel = `remixroom:room:${roomId}`;
      return Number((await admin.pubSubNumSub(channel))[channel] ?? 0);
    };
    const leaseHolder = (roomId: string) => admin.get(`remixroom:room:${roomId}:lease`);
    /** The last fencing token the node took for the room, from its log. */
    const fenceTaken = (node: Node, roomId: string): number | null => {
      const m = [...node.process.output().matchAll(new RegExp(`"roomId":"${roomId}"[^\\n]*"fence":(\\d+)[^\\n]*fencing token taken`, 'g'))].at(-1);
      return m ? Number(m[1]) : null;
    };
    const awarenessNames = (m: Member) => [...m.provider.awareness.getStates().values()].map((s) => (s['member'] as { name?: string } | undefined)?.name);

    it("shows each member's changes to members on the other node, both ways, and their awareness", async () => {
      const room = await openRoom(a.url);
      const ana = await member(a, room, 'remixer', 'Ana');
      const bo = await member(b, room, 'remixer', 'Bo');
      stemMap(ana.doc, 'drums').set('gainDb', -6);
      await waitFor(() => stemMap(bo.doc, 'drums').get('gainDb') === -6, 5000, 'Bo on B to see Ana on A');
      stemMap(bo.doc, 'bass').set('gainDb', -9);
      await waitFor(() => stemMap(ana.doc, 'bass').get('gainDb') === -9, 5000, 'Ana on A to see Bo on B');
      ana.provider.awareness.setLocalStateField('holding', 'mix.stems.drums.gainDb');
      await waitFor(
        () => [...bo.provider.awareness.getStates().values()].some((s) => s['holding'] === 'mix.stems.drums.gainDb' && (s['member'] as { name: string }).name === 'Ana'),
        5000,
        "Ana's awareness, stamped by A, to reach Bo on B",
      );
      bo.provider.awareness.setLocalStateField('holding', 'mix.stems.bass.gainDb');
      await waitFor(() => [...ana.provider.awareness.getStates().values()].some((s) => s['holding'] === 'mix.stems.bass.gainDb'), 5000, "Bo's awareness to reach Ana");
      // Leaving is seen on the other node too.
      const boClientId = bo.doc.clientID;
      bo.destroy();
      await waitFor(() => !ana.provider.awareness.getStates().has(boClientId), 5000, "Bo's awareness to go when Bo leaves");
    });

    it('carries the socket.io channel across nodes: chat and presence reach members on the other node', async () => {
      const room = await openRoom(a.url);
      const ana = await joinAs(a.url, room, 'remixer', 'Ana');
      const bo = await joinAs(a.url, room, 'remixer', 'Bo');
      const onA = io(a.url, { auth: { roomId: room.roomId, token: ana.token }, transports: ['websocket'], reconnection: false });
      const onB = io(b.url, { auth: { roomId: room.roomId, token: bo.token }, transports: ['websocket'], reconnection: false });
      try {
        const presence = new Promise<{ count: number }>((r) => onA.on('presence', (p: { count: number }) => p.count === 2 && r(p)));
        await Promise.all([new Promise<void>((r) => onA.once('connect', () => r())), new Promise<void>((r) => onB.once('connect', () => r()))]);
        expect((await presence).count).to.equal(2);
        const got = new Promise<{ text: string; name: string }>((r) => onA.once('chat:message', r));
        const ack = await onB.emitWithAck('chat:send', { text: 'hello from node B' });
        expect(ack.ok).to.equal(true);
        expect(await got).to.include({ text: 'hello from node B', name: 'Bo' });
        // The room's kept chat is the same on every node: Ana, coming back on node A, is sent what Bo said on B.
        const again = io(a.url, { auth: { roomId: room.roomId, token: ana.token }, transports: ['websocket'], reconnection: false });
        try {
          const [history] = await new Promise<[{ text: string }[]]>((r) => again.once('chat:history', (h: { text: string }[]) => r([h])));
          expect(history.map((m) => m.text)).to.include('hello from node B');
        } finally {
          again.disconnect();
        }
      } finally {
        onA.disconnect();
        onB.disconnect();
      }
    });

    it("a demotion on node A holds on node B at once: for B's open sockets, and where B has never loaded the room", async () => {
      const room = await openRoom(a.url) as OpenedRoom & { userId: string };
      const quiet = await openRoom(a.url) as OpenedRoom & { userId: string };
      const mint = (r: OpenedRoom, node: Node) => api<{ token: string; userId: string }>(node.url, 'POST', `/api/rooms/${r.roomId}/tokens`, { role: 'host', name: 'Co' }, r.hostToken);
      const co = (await mint(room, a)).body;
      const coQuiet = (await mint(quiet, a)).body;
      // The co-host is connected to B; the quiet room is loaded on A only.
      const onB = io(b.url, { auth: { roomId: room.roomId, token: co.token }, transports: ['websocket'], reconnection: false });
      const connected = new Promise<void>((r) => onB.once('connect', () => r()));
      const sync = await connectMember(b.url, room.roomId, co.token);
      members.push(sync);
      try {
        await connected;
        const notice = new Promise<{ code: string; message: string }>((r) => onB.on('room:notice', (n: { code: string; message: string }) => n.code === 'role_changed' && r(n)));
        expect((await api(a.url, 'PUT', `/api/rooms/${room.roomId}/members/${co.userId}/role`, { role: 'listener' }, room.hostToken)).status).to.equal(200);
        expect((await api(a.url, 'PUT', `/api/rooms/${quiet.roomId}/members/${coQuiet.userId}/role`, { role: 'remixer' }, quiet.hostToken)).status).to.equal(200);
        expect((await notice).message).to.match(/listener/);
        // Its sync connection on B is a listener's now.
        stemMap(sync.doc, 'drums').set('gainDb', -3);
        await waitFor(() => sync.refusals.some((r) => r.code === 'read_only'), 5000, 'the edit on B to be refused');
        // Through B, with the old host token: nothing a host does.
        for (const [r, c] of [[room, co], [quiet, coQuiet]] as const) {
          expect((await api(b.url, 'POST', `/api/rooms/${r.roomId}/tokens`, { role: 'listener' }, c.token)).status, r.roomId).to.equal(403);
          expect((await api(b.url, 'PUT', `/api/rooms/${r.roomId}/members/${c.userId}/role`, { role: 'host' }, c.token)).status).to.equal(403);
          expect((await api(b.url, 'PUT', `/api/rooms/${r.roomId}/members/${r.userId}/role`, { role: 'listener' }, c.token)).status).to.equal(403);
          expect((await api(b.url, 'DELETE', `/api/rooms/${r.roomId}`, undefined, c.token)).status).to.equal(403);
        }
      } finally {
        onB.disconnect();
      }
    });

    it("removing a member on node A ends its connections on node B; a member's and an address's limits hold across both nodes", async () => {
      const room = await openRoom(a.url);
      const guest = await joinAs(a.url, room, 'remixer', 'Guest');
      const onB = io(b.url, { auth: { roomId: room.roomId, token: guest.token }, transports: ['websocket'], reconnection: false });
      const onA = io(a.url, { auth: { roomId: room.roomId, token: guest.token }, transports: ['websocket'], reconnection: false });
      try {
        await Promise.all([onA, onB].map((s) => new Promise<void>((r) => s.once('connect', () => r()))));
        // Chat: one allowance for the member, whichever node the message goes through.
        const oks: boolean[] = [];
        for (let i = 0; i < 4; i++) oks.push((await onA.emitWithAck('chat:send', { text: `a${i}` })).ok, (await onB.emitWithAck('chat:send', { text: `b${i}` })).ok);
        expect(oks.filter(Boolean)).to.have.length(LIMITS['chat.member'].capacity);
        // Joining through a link: one allowance for the address across nodes.
        const link = await api<{ invite: string }>(a.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'listener' }, room.hostToken);
        const address = strangerAddress();
        const joins = [];
        for (let i = 0; i < 8; i++) {
          for (const node of [a, b]) joins.push((await api(node.url, 'POST', `/api/rooms/${room.roomId}/join`, { invite: link.body.invite, name: `n${i}` }, undefined, from(address))).status);
        }
        expect(joins.filter((s) => s === 201)).to.have.length(LIMITS['invite.exchange.address'].capacity);
        // Removed through A: the session on B ends with the reason, and so does its sync connection there.
        const sync = new WebSocket(`${b.url.replace(/^http/, 'ws')}/sync/${room.roomId}?token=${guest.token}`);
        await new Promise((r) => sync.once('open', r));
        const closed = new Promise<number>((r) => sync.once('close', (code) => r(code)));
        const ended = new Promise<{ reason: string }>((r) => onB.once('session:ended', r));
        expect((await api(a.url, 'DELETE', `/api/rooms/${room.roomId}/members/${guest.userId}`, undefined, room.hostToken)).status).to.equal(200);
        expect((await ended).reason).to.equal('removed');
        expect(await closed).to.equal(SYNC_CLOSE.accessRevoked);
        expect((await api(b.url, 'POST', `/api/rooms/${room.roomId}/members/me/token`, undefined, guest.token)).status).to.equal(403);
      } finally {
        onA.disconnect();
        onB.disconnect();
      }
    });

    it('a take saved through node A is listed and returned to through node B, and members on both nodes receive it', async () => {
      const room = await openRoom(a.url);
      const onA = await member(a, room, 'remixer', 'OnA');
      const onB = await member(b, room, 'remixer', 'OnB');
      stemMap(onA.doc, 'drums').set('gainDb', -12);
      await waitFor(() => stemMap(onB.doc, 'drums').get('gainDb') === -12, 5000, 'the move to reach node B');
      const takes = `/api/rooms/${room.roomId}/takes`;
      const saved = await api<{ takeId: string }>(a.url, 'POST', takes, { name: 'Across' }, room.hostToken);
      expect(saved.status).to.equal(201);
      const listed = await api<{ takes: { name: string }[] }>(b.url, 'GET', takes, undefined, room.hostToken);
      expect(listed.body.takes.map((x) => x.name)).to.deep.equal(['Across']);
      stemMap(onB.doc, 'drums').set('gainDb', 0);
      await waitFor(() => stemMap(onA.doc, 'drums').get('gainDb') === 0, 5000, 'the move to reach node A');
      expect((await api(b.url, 'POST', `${takes}/${saved.body.takeId}/return`, undefined, room.hostToken)).status).to.equal(200);
      for (const m of [onA, onB]) await waitFor(() => stemMap(m.doc, 'drums').get('gainDb') === -12, 5000, 'the take on both nodes');
    });

    it('a lock set on node A refuses joins on node B, loaded or not, and shows on B; a prompt cleared on A leaves the history on B', async () => {
      const room = await openRoom(a.url);
      const quiet = await openRoom(a.url);
      const onB = await member(b, room, 'remixer', 'On B');
      const fan = await joinAs(a.url, room, 'remixer', 'Prompter');
      const prompter = io(a.url, { auth: { roomId: room.roomId, token: fan.token }, transports: ['websocket'], reconnection: false });
      try {
        await new Promise<void>((r) => prompter.once('connect', () => r()));
        const link = (r: OpenedRoom) => new URL(r.joinUrl).hash.slice('#invite='.length);
        const join = (node: Node, r: OpenedRoom) => api<{ error?: { message: string } }>(node.url, 'POST', `/api/rooms/${r.roomId}/join`, { invite: link(r), name: 'Late' }, undefined, from(strangerAddress()));
        for (const r of [room, quiet]) expect((await api(a.url, 'PUT', `/api/rooms/${r.roomId}/lock`, { locked: true }, r.hostToken)).status).to.equal(200);
        for (const r of [room, quiet]) {
          const refused = await join(b, r);
          expect(refused.status, r.roomId).to.equal(403);
          expect(refused.body.error!.message).to.equal('the host has locked this room to new people');
          expect((await api<{ reason: string }>(b.url, 'POST', `/api/rooms/${r.roomId}/invites/check`, { invite: link(r) }, undefined, from(strangerAddress()))).body.reason).to.equal('locked');
        }
        await waitFor(() => onB.doc.getMap('rules').get('locked') === true, 5000, 'the lock in the rules on B');
        // Unlocked through B: A lets people in again.
        expect((await api(b.url, 'PUT', `/api/rooms/${room.roomId}/lock`, { locked: false }, room.hostToken)).status).to.equal(200);
        expect((await join(a, room)).status).to.equal(201);
        await waitFor(() => onB.doc.getMap('rules').get('locked') === false, 5000, 'the unlock in the rules on B');

        for (const text of ['stormy blue sea', 'golden slow glow']) expect((await prompter.emitWithAck('prompt:submit', { text })).ok).to.equal(true);
        const history = () => Object.keys((onB.doc.getMap('visual').get('history') as Y.Map<unknown> | undefined)?.toJSON() ?? {}).sort();
        await waitFor(() => history().length === 2, 5000, 'two prompts in the history on B');
        const [older] = history();
        expect((await api(a.url, 'DELETE', `/api/rooms/${room.roomId}/prompts/${older}`, undefined, room.hostToken)).status).to.equal(200);
        await waitFor(() => history().length === 1 && !history().includes(older!), 5000, 'the cleared prompt gone on B');
      } finally {
        prompter.disconnect();
      }
    });

    it('keeps a refused update on node A away from members on node B', async () => {
      const room = await openRoom(a.url);
      const bo = await member(b, room, 'remixer', 'Bo');
      const lee = await member(a, room, 'listener', 'Lee');
      const seenOnB: unknown[] = [];
      stemMap(bo.doc, 'drums').observe((e) => {
        if (e.keysChanged.has('gainDb')) seenOnB.push(stemMap(bo.doc, 'drums').get('gainDb'));
      });
      stemMap(lee.doc, 'drums').set('gainDb', -20);
      await waitFor(() => lee.refusals.length > 0, 5000, 'the refusal');
      expect(lee.refusals[0]!.code).to.equal('read_only');
      await waitFor(() => stemMap(lee.doc, 'drums').get('gainDb') === 0, 5000, 'the listener to be brought back');
      // Something B does see after it: the refused change (and its correction) went before it, in order.
      const ana = await member(a, room, 'remixer', 'Ana');
      stemMap(ana.doc, 'lead').set('gainDb', -1);
      await waitFor(() => stemMap(bo.doc, 'lead').get('gainDb') === -1, 5000, "B to see A's next change");
      expect(seenOnB.every((v) => v === 0), JSON.stringify(seenOnB)).to.equal(true);
      expect(stemMap(bo.doc, 'drums').get('gainDb')).to.equal(0);
    });

    it("streams the room on the listener's own node, which hears a member on the other node change the mix", async function () {
      const room = await openRoom(a.url);
      const ana = await member(a, room, 'remixer', 'Ana');
      const strips = () => [...(ana.doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).values()];
      const setMuted = (muted: boolean) => ana.doc.transact(() => strips().forEach((s) => s.set('mute', muted)));
      setMuted(true);
      ana.doc.transact(() => (ana.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
      const { token } = await joinAs(b.url, room, 'listener', 'Lee');
      const lee = await listenToRoom(b.url, room.roomId, token);
      try {
        await eventually(async () => lee.heard.length > 40, 20_000, 'the stream from node B');
        // Everything muted by Ana on A, as B's mixer has it: silence.
        await eventually(async () => lee.peakDbOver(400) < -70, 5000, 'silence while every stem is muted');
        setMuted(false);
        await eventually(async () => lee.peakDbOver(500) > -50, 8000, "the music once Ana on node A unmutes, mixed by node B");
        const loudDb = lee.peakDbOver(500);
        setMuted(true);
        await eventually(async () => lee.peakDbOver(400) < -70, 5000, 'silence again');
        // Each node mixes for its own listeners: B streams, A (no listener there) does not.
        const onB = await api<{ live: boolean; listeners: number }>(b.url, 'GET', `/api/rooms/${room.roomId}`);
        const onA = await api<{ live: boolean; listeners: number }>(a.url, 'GET', `/api/rooms/${room.roomId}`);
        expect(onB.body).to.include({ live: true, listeners: 1 });
        expect(onA.body).to.include({ live: false, listeners: 0 });
        this.test!.title += ` (heard ${loudDb.toFixed(1)} dBFS unmuted)`;
      } finally {
        await lee.close();
      }
    });

    it('brings a node that opens the room late up to date with state that was never saved', async () => {
      const room = await openRoom(a.url);
      const ana = await member(a, room, 'remixer', 'Ana', { holding: 'lead' });
      const watcher = await member(a, room, 'remixer', 'Wes');
      stemMap(ana.doc, 'lead').set('gainDb', -12);
      stemMap(ana.doc, 'harmony').set('mute', true);
      await waitFor(() => stemMap(watcher.doc, 'lead').get('gainDb') === -12 && stemMap(watcher.doc, 'harmony').get('mute') === true, 5000, 'A to apply it');
      expect((await storedGains(room.roomId))['lead'], 'not saved yet (the save debounce is 1.5 s)').to.equal(0);
      expect(await numsub(room.roomId), 'B does not serve the room yet').to.equal(1);
      // The room opens on B now, from the store's older document; B lets nobody in before it caught up.
      const bo = await member(b, room, 'remixer', 'Bo');
      expect(stemMap(bo.doc, 'lead').get('gainDb')).to.equal(-12);
      expect(stemMap(bo.doc, 'harmony').get('mute')).to.equal(true);
      expect((await storedGains(room.roomId))['lead'], 'still not saved when B had caught up').to.equal(0);
      // And the awareness of the members already there.
      await waitFor(() => awarenessNames(bo).includes('Ana'), 5000, "Ana's awareness on B");
    });

    it('lets only the lease holder write the document, and it writes what members on both nodes did', async () => {
      const room = await openRoom(a.url);
      const ana = await member(a, room, 'remixer', 'Ana');
      await eventually(async () => (await leaseHolder(room.roomId)) === a.nodeId, 5000, 'A to take the lease');
      const bo = await member(b, room, 'remixer', 'Bo');
      for (let i = 1; i <= 5; i++) {
        stemMap(ana.doc, 'drums').set('gainDb', -i);
        stemMap(bo.doc, 'bass').set('gainDb', -2 * i);
        await new Promise((r) => setTimeout(r, 100));
        expect(await leaseHolder(room.roomId)).to.equal(a.nodeId);
      }
      await eventually(async () => {
        const g = await storedGains(room.roomId);
        return g['drums'] === -5 && g['bass'] === -10;
      }, 10_000, 'the edits of both nodes in the store');
      expect(await leaseHolder(room.roomId)).to.equal(a.nodeId);
      const acquired = new RegExp(`"roomId":"${room.roomId}"[^\\n]*lease acquired`);
      expect(a.process.output()).to.match(acquired);
      expect(b.process.output()).not.to.match(acquired);
      // A took a fencing token with the lease; B, which never held it, took none.
      expect(fenceTaken(a, room.roomId)).to.be.a('number');
      expect(fenceTaken(b, room.roomId)).to.equal(null);
    });

    it('leaves no subscription and no lease behind on a node where the room closed', async () => {
      const room = await openRoom(a.url);
      const ana = await member(a, room, 'remixer', 'Ana');
      await eventually(async () => (await leaseHolder(room.roomId)) === a.nodeId, 5000, 'A to take the lease');
      const bo = await member(b, room, 'remixer', 'Bo');
      expect(await numsub(room.roomId)).to.equal(2);
      // The room closes on A after its last member leaves and the grace period (0.5 s).
      ana.destroy();
      await eventually(async () => (await numsub(room.roomId)) === 1, 5000, "A's subscription to go");
      // A gave the lease back and said so: B takes it well before A's lease would have expired.
      await eventually(async () => (await leaseHolder(room.roomId)) === b.nodeId, LEASE_TTL_MS - 500, 'B to take the lease');
      stemMap(bo.doc, 'harmony').set('gainDb', -4);
      await eventually(async () => (await storedGains(room.roomId))['harmony'] === -4, 5000, 'B to write');
      bo.destroy();
      await eventually(async () => (await numsub(room.roomId)) === 0, 5000, "B's subscription to go");
      expect(await leaseHolder(room.roomId)).to.equal(null);
    });

    it('loses nothing any member saw applied when node A is killed while its members keep editing', async () => {
      const room = await openRoom(a.url);
      const tokens = await Promise.all(['Ana', 'Abe', 'Bo'].map((n) => joinAs(a.url, room, 'remixer', n)));
      const onA1 = await connectMember(a.url, room.roomId, tokens[0]!.token);
      const onA2 = await connectMember(a.url, room.roomId, tokens[1]!.token);
      members.push(onA1, onA2);
      await eventually(async () => (await leaseHolder(room.roomId)) === a.nodeId, 5000, 'A to take the lease');
      const onB = await member(b, room, 'remixer', 'Bo');
      // Each member moves its own fader, again and again; `last` is what each wrote last.
      const writers = [
        { m: onA1, stem: 'drums', last: 0, offline: 0 },
        { m: onA2, stem: 'bass', last: 0, offline: 0 },
        { m: onB, stem: 'lead', last: 0, offline: 0 },
      ];
      let killed = false;
      let step = 0;
      const edits = setInterval(() => {
        step++;
        for (const w of writers) {
          w.last = -((step % 100) * 0.5 + 0.5);
          stemMap(w.m.doc, w.stem).set('gainDb', w.last);
          if (killed && w.m !== onB) w.offline++;
        }
      }, 25);
      try {
        await new Promise((r) => setTimeout(r, 800));
        a.process.child.kill('SIGKILL');
        await a.process.exited;
        killed = true;
        await new Promise((r) => setTimeout(r, 300));
        // Behind a load balancer, A's members reconnect to B: a new provider on the same document.
        for (const [i, m] of [onA1, onA2].entries()) {
          m.provider.destroy();
          const provider = new WebsocketProvider(b.url.replace(/^http/, 'ws') + '/sync', room.roomId, m.doc, {
            params: { token: tokens[i]!.token },
            disableBc: true,
            maxBackoffTime: 500,
          });
          m.provider = provider;
          members.push({ ...m, provider, destroy: () => provider.destroy() });
          await waitFor(() => provider.synced, 10_000, 'the member to sync with B');
        }
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        clearInterval(edits);
      }
      expect(writers[0]!.offline, 'edits made while A was dead').to.be.greaterThan(0);
      const expected = Object.fromEntries(writers.map((w) => [w.stem, w.last]));
      for (const w of writers) {
        for (const other of writers) {
          await waitFor(() => stemMap(w.m.doc, other.stem).get('gainDb') === other.last, 5000, `every member to hold ${other.stem}'s last value`);
        }
      }
      // B holds all of it: a fresh member on B sees every member's last edit.
      const late = await member(b, room, 'remixer', 'Lu');
      for (const w of writers) expect(stemMap(late.doc, w.stem).get('gainDb'), w.stem).to.equal(w.last);
      // B takes the lease once A's has expired, with a newer fencing token, writes at once, and the store holds every last edit.
      await eventually(async () => (await leaseHolder(room.roomId)) === b.nodeId, LEASE_TTL_MS * 2 + 2000, 'B to take the lease');
      await eventually(async () => (fenceTaken(b, room.roomId) ?? 0) > (fenceTaken(a, room.roomId) ?? Infinity), 5000, 'B to take a newer fencing token than A had');
      await eventually(async () => {
        const g = await storedGains(room.roomId);
        return Object.entries(expected).every(([stem, v]) => g[stem] === v);
      }, 10_000, 'the store to hold every last edit');
    });
  });
}
