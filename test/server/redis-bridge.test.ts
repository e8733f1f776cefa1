// The scale-out bridge in one process: two "nodes" (each a RoomManager with its
// own RedisBridge and its own handle on one shared SQLite store) and a real
// redis-server. The two-process behaviour is in scaleout.test.ts.
import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { pino } from 'pino';
import { createClient, type RedisClientType } from 'redis';
import * as Y from 'yjs';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { RoomManager } from '../../server/rooms/room-manager.ts';
import type { Room } from '../../server/rooms/room.ts';
import type { Logger } from '../../server/logger.ts';
import { decodeBridgeMessage, encodeBridgeMessage, BridgeMessageError } from '../../server/scaleout/bridge-messages.ts';
import { RedisBridge } from '../../server/scaleout/redis-bridge.ts';
import { RoomLease } from '../../server/scaleout/room-lease.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort, redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { waitFor } from '../support/room-clients.ts';

const log = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });
const TIMINGS = { graceMs: 100, saveDebounceMs: 20, saveMaxWaitMs: 100 };

interface TestNode {
  bridge: RedisBridge;
  rooms: RoomManager;
  store: SqliteStore;
  /** Documents this node wrote to the store (or tried to), with the fencing token each carried. */
  saves: { roomId: string; fence: number | undefined }[];
  close(): Promise<void>;
}

describe('the Redis bridge (scale-out, in one process)', function () {
  this.timeout(30_000);
  let redis: TestRedis;
  let admin: RedisClientType;
  let data: { path: string; remove(): Promise<void> };
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async function () {
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    admin = createClient({ url: redis.url });
    await admin.connect();
    data = await demoDataDir();
  });
  after(async () => {
    await admin?.close();
    await redis?.stop();
    await data?.remove();
  });
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });

  interface NodeOptions {
    leaseTtlMs?: number;
    saveDebounceMs?: number;
    log?: Logger;
    /** Stands in for the store's takeRoomFence (to make it fail or wait). */
    takeRoomFence?: (take: (roomId: string) => Promise<number>, roomId: string) => Promise<number>;
    onStaleSave?: () => void;
  }

  async function node(nodeId: string, opts: NodeOptions = {}): Promise<TestNode> {
    const store = await SqliteStore.open(new DataLayout(data.path).database);
    const saves: TestNode['saves'] = [];
    // The store as this node's rooms see it, counting their writes.
    const counted = new Proxy(store, {
      get(target, key) {
        if (key === 'saveRoomDoc') {
          return (roomId: string, doc: Uint8Array, timeline?: string, fence?: number) => {
            saves.push({ roomId, fence });
            return target.saveRoomDoc(roomId, doc, timeline, fence);
          };
        }
        if (key === 'takeRoomFence' && opts.takeRoomFence) {
          const take = opts.takeRoomFence;
          return (roomId: string) => take((id) => target.takeRoomFence(id), roomId);
        }
        const value: unknown = Reflect.get(target, key);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const bridge = await RedisBridge.create({
      redisUrl: redis.url,
      log: opts.log ?? log,
      nodeId,
      leaseTtlMs: opts.leaseTtlMs ?? 1500,
      store: counted,
      ...(opts.onStaleSave ? { onStaleSave: opts.onStaleSave } : {}),
    });
    const timings = { ...TIMINGS, ...(opts.saveDebounceMs ? { saveDebounceMs: opts.saveDebounceMs, saveMaxWaitMs: opts.saveDebounceMs } : {}) };
    const rooms = new RoomManager({ store: counted, log: opts.log ?? log, timings, ...bridge.hooks() });
    let closed = false;
    const n: TestNode = {
      bridge,
      rooms,
      store,
      saves,
      async close() {
        if (closed) return;
        closed = true;
        await rooms.closeAll();
        await bridge.close();
        await store.close();
      },
    };
    cleanups.push(() => n.close());
    return n;
  }

  async function newRoom(n: TestNode): Promise<string> {
    const release = await n.store.getRelease(DEMO_RELEASE_ID);
    return n.rooms.create(release!);
  }

  const holder = {};
  /** Opens the room and keeps it open (as a connected member would). */
  async function hold(n: TestNode, roomId: string): Promise<Room> {
    const room = await n.rooms.open(roomId);
    room.hold(holder);
    return room;
  }
  const gain = (room: Room, stem: string) => room.state().mix.stems[stem]!.gainDb;
  const setGain = (room: Room, stem: string, v: number) =>
    room.change((doc) => ((doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get(stem)!.set('gainDb', v)));

  async function numsub(channel: string): Promise<number> {
    const counts = await admin.pubSubNumSub(channel);
    return Number(counts[channel] ?? 0);
  }

  it('carries changes both ways and brings a room opened later up to date, without saving it twice', async () => {
    const a = await node('node-a', { saveDebounceMs: 2000 });
    const b = await node('node-b');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'A to take the lease');
    setGain(ra, 'drums', -7);
    // B opens after the change, which is not saved yet: B loads an older document and catches up through Redis.
    const rb = await hold(b, roomId);
    expect(storedGain(await stored(b.store, roomId), 'drums')).to.equal(0);
    expect(gain(rb, 'drums')).to.equal(-7);
    setGain(rb, 'bass', -3);
    await waitFor(() => gain(ra, 'bass') === -3, 5000, 'A to see B');
    expect(b.bridge.shouldPersist(roomId)).to.equal(false);
    expect(await admin.get(a.bridge.leaseKey(roomId))).to.equal('node-a');
    expect(await numsub(a.bridge.channelOf(roomId))).to.equal(2);
    // B's changes are saved by A only; B, dirty as it is, writes nothing.
    await eventually(async () => storedGain(await stored(a.store, roomId), 'bass') === -3, 15_000, 'A to save');
    expect(a.saves.filter((s) => s.roomId === roomId).length).to.be.greaterThan(0);
    expect(b.saves.filter((s) => s.roomId === roomId)).to.deep.equal([]);
  });

  it('publishes each change once, from the node where it was made, and never echoes what came from Redis', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    const rb = await hold(b, roomId);
    const spy = admin.duplicate();
    await spy.connect();
    cleanups.push(() => spy.close());
    const heard: { type: string; from: string }[] = [];
    await spy.subscribe(a.bridge.channelOf(roomId), (raw: Buffer) => {
      const m = decodeBridgeMessage(raw);
      heard.push({ type: m.type, from: m.from });
    }, true);
    setGain(ra, 'drums', -5);
    await waitFor(() => gain(rb, 'drums') === -5, 5000, 'B to see it');
    setGain(rb, 'bass', -6);
    await waitFor(() => gain(ra, 'bass') === -6, 5000, 'A to see it');
    await new Promise((r) => setTimeout(r, 200));
    expect(heard).to.deep.equal([
      { type: 'update', from: 'node-a' },
      { type: 'update', from: 'node-b' },
    ]);
  });

  it('hands the lease over when the holder closes the room, and the new holder writes what it has', async () => {
    // A long ttl: B's periodic tries (every 3 s) cannot explain a takeover within 1 s.
    const a = await node('node-a', { leaseTtlMs: 10_000 });
    const b = await node('node-b', { leaseTtlMs: 10_000 });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'A to take the lease');
    const rb = await hold(b, roomId);
    ra.unhold(holder);
    await waitFor(() => ra.closed, 5000, 'the room to close on A');
    // The holder says it let go: B takes the lease at once, not at its next try.
    await waitFor(() => b.bridge.shouldPersist(roomId), 1000, 'B to take the lease');
    expect(await admin.get(b.bridge.leaseKey(roomId))).to.equal('node-b');
    setGain(rb, 'lead', -11);
    await eventually(async () => storedGain(await stored(b.store, roomId), 'lead') === -11, 5000, 'B to save');
  });

  it('leaves nothing behind when a room closes: no subscription, no lease, no timer', async () => {
    const a = await node('node-a');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    const channel = a.bridge.channelOf(roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'the lease');
    expect(await numsub(channel)).to.equal(1);
    expect(a.bridge.resources()).to.deep.include({ rooms: 1, subscriptions: 1, leases: 1 });
    ra.unhold(holder);
    await waitFor(() => ra.closed, 5000, 'the room to close');
    await waitFor(() => a.bridge.resources().unlinking === 0, 5000, 'the unlinking to finish');
    expect(a.bridge.resources()).to.deep.equal({ rooms: 0, subscriptions: 0, leases: 0, timers: 0, unlinking: 0 });
    expect(await numsub(channel)).to.equal(0);
    expect(await admin.exists(a.bridge.leaseKey(roomId))).to.equal(0);
    // The room opens again on the same node, as new.
    const again = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'the lease again');
    expect(await numsub(channel)).to.equal(1);
    again.unhold(holder);
  });

  it("closes every room's link with the bridge, then its connections", async () => {
    const a = await node('node-a');
    const roomId = await newRoom(a);
    await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'the lease');
    const before = await clientCount();
    await a.close();
    expect(await numsub(a.bridge.channelOf(roomId))).to.equal(0);
    expect(await admin.exists(a.bridge.leaseKey(roomId))).to.equal(0);
    expect(a.bridge.resources()).to.deep.equal({ rooms: 0, subscriptions: 0, leases: 0, timers: 0, unlinking: 0 });
    await eventually(async () => (await clientCount()) === before - 2, 2000, 'both connections to close');
    await a.bridge.close();
    let refused: unknown = null;
    await a.bridge.attach({ id: 'whatever', closed: false } as Room).catch((err: unknown) => (refused = err));
    expect((refused as Error | null)?.name).to.equal('InvalidStateError');
  });

  it('ends the room on every node when the host ends it on one', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const roomId = await newRoom(a);
    await hold(a, roomId);
    const rb = await hold(b, roomId);
    await a.rooms.end(roomId);
    await waitFor(() => rb.closed, 5000, 'the room to end on B');
  });

  it('ignores messages on a room channel that are not of its protocol, and keeps serving', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    const rb = await hold(b, roomId);
    await admin.publish(a.bridge.channelOf(roomId), Buffer.from([1, 42, 0, 0]));
    await admin.publish(a.bridge.channelOf(roomId), 'not binary at all');
    setGain(ra, 'harmony', -2);
    await waitFor(() => gain(rb, 'harmony') === -2, 5000, 'B to keep receiving');
  });

  it('asks the other nodes again when an update arrives that builds on one it never got', async () => {
    const a = await node('node-a');
    const b = await node('node-b');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    const rb = await hold(b, roomId);
    // A third writer whose first update reaches A only, and whose second reaches both.
    const ghost = new Y.Doc();
    Y.applyUpdate(ghost, Y.encodeStateAsUpdate(ra.doc));
    const updates: Uint8Array[] = [];
    ghost.on('update', (u: Uint8Array) => updates.push(u));
    const strip = (ghost.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get('lead')!;
    strip.set('gainDb', -30);
    strip.set('gainDb', -31);
    const channel = a.bridge.channelOf(roomId);
    await admin.publish(channel, encodeBridgeMessage({ type: 'update', from: 'ghost', to: 'node-a', update: updates[0]! }));
    await admin.publish(channel, encodeBridgeMessage({ type: 'update', from: 'ghost', to: '', update: updates[1]! }));
    await waitFor(() => gain(ra, 'lead') === -31, 5000, 'A to apply both');
    await waitFor(() => gain(rb, 'lead') === -31, 5000, 'B to fill the gap from A');
    expect(rb.doc.store.pendingStructs).to.equal(null);
    ghost.destroy();
  });

  it('catches up after Redis went away and came back, whatever was published meanwhile', async () => {
    // A Redis of its own, restarted on the same port.
    const port = await freePort();
    let server = await redisOn(port);
    cleanups.push(() => stopChild(server));
    const url = `redis://127.0.0.1:${port}`;
    const a = await nodeOn(url, 'node-a');
    const b = await nodeOn(url, 'node-b');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    const rb = await hold(b, roomId);
    setGain(ra, 'drums', -1);
    await waitFor(() => gain(rb, 'drums') === -1, 5000, 'B to see A before the outage');
    await stopChild(server, 'SIGKILL');
    setGain(ra, 'drums', -21);
    setGain(rb, 'bass', -22);
    await new Promise((r) => setTimeout(r, 300));
    server = await redisOn(port);
    await waitFor(() => gain(rb, 'drums') === -21 && gain(ra, 'bass') === -22, 10_000, 'both nodes to catch up after the outage');
    await waitFor(() => a.bridge.shouldPersist(roomId) !== b.bridge.shouldPersist(roomId), 10_000, 'one node to hold the lease again');
  });

  it('takes a fencing token with the lease, and every save of the room carries it', async () => {
    const a = await node('node-a');
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'A to take the lease and a token');
    const token = a.bridge.fencingOf(roomId).fence();
    expect(token).to.be.a('number');
    for (const v of [-4, -5]) {
      setGain(ra, 'drums', v);
      await eventually(async () => storedGain(await stored(a.store, roomId), 'drums') === v, 5000, `the save of ${v}`);
    }
    const fences = a.saves.filter((s) => s.roomId === roomId).map((s) => s.fence);
    expect(fences.length).to.be.greaterThan(0);
    expect(fences.every((f) => f === token), JSON.stringify(fences)).to.equal(true);
    // The newest the store handed out: the next one is one more.
    expect(await a.store.takeRoomFence(roomId)).to.equal(token! + 1);
  });

  it('saves nothing of the room while the store cannot hand out a token, and keeps asking', async () => {
    let refusals = 0;
    let storeUp = false;
    const a = await node('node-a', {
      takeRoomFence: (take, id) => {
        if (storeUp) return take(id);
        refusals++;
        return Promise.reject(new Error('the store is unreachable'));
      },
    });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => refusals >= 2, 5000, 'a second try for a token');
    expect(a.bridge.resources().leases, 'the lease is held meanwhile').to.equal(1);
    expect(a.bridge.shouldPersist(roomId)).to.equal(false);
    setGain(ra, 'bass', -8);
    await ra.flush();
    expect(a.saves).to.deep.equal([]);
    expect(storedGain(await stored(a.store, roomId), 'bass')).to.equal(0);
    storeUp = true;
    // At the next try: the token, then at once the change made without one.
    await eventually(async () => storedGain(await stored(a.store, roomId), 'bass') === -8, 10_000, 'the save once a token is taken');
    const token = a.bridge.fencingOf(roomId).fence();
    expect(token).to.be.a('number');
    expect(a.saves.map((s) => s.fence)).to.deep.equal([token]);
  });

  it('logs a save refused as stale, never retries it with that token, gives the lease up and saves again only with a newer token', async () => {
    const rec = recordingLog();
    let staleSaves = 0;
    const a = await node('node-a', { log: rec.log, onStaleSave: () => staleSaves++ });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'A to take the lease and a token');
    const first = a.bridge.fencingOf(roomId).fence()!;
    // As far as the store knows, another node has taken the room over (after this one was paused, say).
    const newer = await a.store.takeRoomFence(roomId);
    setGain(ra, 'lead', -13);
    await waitFor(() => rec.lines().some((l) => l['msg'] === STALE_SAVE_LOGGED), 5000, 'the refusal in the log');
    expect(rec.lines().find((l) => l['msg'] === STALE_SAVE_LOGGED)).to.include({ level: 50, roomId, fence: first, currentFence: newer });
    expect(staleSaves).to.equal(1);
    expect(storedGain(await stored(a.store, roomId), 'lead'), 'nothing written by the refused save').to.equal(0);
    // It let the lease go (the key was still its own here) and took it again, with a token newer than the one that refused it.
    await eventually(async () => storedGain(await stored(a.store, roomId), 'lead') === -13, 10_000, 'the save with a newer token');
    expect(a.saves.filter((s) => s.roomId === roomId).map((s) => s.fence)).to.deep.equal([first, newer + 1]);
    expect(a.bridge.fencingOf(roomId).fence()).to.equal(newer + 1);
    expect(staleSaves).to.equal(1);
  });

  it('does not use a token that the store handed out after the lease was lost', async () => {
    const rec = recordingLog();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const taken: number[] = [];
    const a = await node('node-a', {
      log: rec.log,
      takeRoomFence: async (take, id) => {
        const token = await take(id);
        taken.push(token);
        await gate;
        return token;
      },
    });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => taken.length === 1 && a.bridge.resources().leases === 1, 5000, 'A to take the lease and ask for a token');
    // Another node holds the lease now: A learns it at its next renewal.
    await admin.set(a.bridge.leaseKey(roomId), 'node-b', { expiration: { type: 'PX', value: 60_000 } });
    await waitFor(() => a.bridge.resources().leases === 0, 5000, 'A to learn it lost the lease');
    open();
    await waitFor(() => rec.lines().some((l) => l['msg'] === 'the lease was lost while taking a fencing token; the token is not used'), 5000, 'the late token to be dropped');
    expect(a.bridge.fencingOf(roomId).fence()).to.equal(null);
    setGain(ra, 'harmony', -6);
    await ra.flush();
    expect(a.saves).to.deep.equal([]);
    // The other node goes away: A takes the lease again, with a new token, and saves with it.
    await admin.del(a.bridge.leaseKey(roomId));
    await eventually(async () => storedGain(await stored(a.store, roomId), 'harmony') === -6, 10_000, 'the save after taking the lease again');
    expect(a.saves.map((s) => s.fence)).to.deep.equal([taken[0]! + 1]);
  });

  it("merges in what a former holder saved but never published before its own first save, so that it is not overwritten", async () => {
    const a = await node('node-a', { leaseTtlMs: 10_000 });
    const b = await node('node-b', { leaseTtlMs: 10_000 });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.shouldPersist(roomId), 5000, 'A to take the lease and a token');
    const tokenA = a.bridge.fencingOf(roomId).fence()!;
    const rb = await hold(b, roomId);
    // B has a change of its own, which A saves; B, not the holder, stays dirty.
    setGain(rb, 'bass', -3);
    await eventually(async () => storedGain(await stored(a.store, roomId), 'bass') === -3, 5000, "A to save B's change");
    // A save by A of a change that never reached Redis (A was cut off from Redis, not from the store).
    const cutOff = (await stored(a.store, roomId))!;
    (cutOff.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get('lead')!.set('gainDb', -17);
    await a.store.saveRoomDoc(roomId, Y.encodeStateAsUpdate(cutOff), undefined, tokenA);
    cutOff.destroy();
    expect(gain(rb, 'lead')).to.equal(0);
    // A lets the room go (it has nothing unsaved): B takes the lease and a token, and saves.
    ra.unhold(holder);
    await waitFor(() => b.bridge.shouldPersist(roomId), 5000, 'B to take the lease and a token');
    await eventually(async () => b.saves.some((s) => s.fence! > tokenA), 5000, 'B to save with its token');
    const saved = await stored(b.store, roomId);
    expect([storedGain(saved, 'lead'), storedGain(saved, 'bass')]).to.deep.equal([-17, -3]);
    expect(gain(rb, 'lead'), "and B's members have it").to.equal(-17);
  });

  it('keeps no token retry timer once the room closed', async () => {
    const a = await node('node-a', { takeRoomFence: () => Promise.reject(new Error('the store is unreachable')) });
    const roomId = await newRoom(a);
    const ra = await hold(a, roomId);
    await waitFor(() => a.bridge.resources().timers === 2, 5000, 'the lease timer and a token retry');
    ra.unhold(holder);
    await waitFor(() => ra.closed, 5000, 'the room to close');
    await waitFor(() => a.bridge.resources().unlinking === 0, 5000, 'the unlinking to finish');
    expect(a.bridge.resources()).to.deep.equal({ rooms: 0, subscriptions: 0, leases: 0, timers: 0, unlinking: 0 });
  });

  async function nodeOn(url: string, nodeId: string): Promise<TestNode> {
    const store = await SqliteStore.open(new DataLayout(data.path).database);
    const bridge = await RedisBridge.create({ redisUrl: url, log, nodeId, leaseTtlMs: 1500, store });
    const rooms = new RoomManager({ store, log, timings: TIMINGS, ...bridge.hooks() });
    const n: TestNode = {
      bridge,
      rooms,
      store,
      saves: [],
      async close() {
        await rooms.closeAll();
        await bridge.close();
        await store.close();
      },
    };
    cleanups.push(() => n.close());
    return n;
  }

  async function clientCount(): Promise<number> {
    const list = await admin.clientList();
    return list.length;
  }
});

describe('bridge messages', () => {
  it('round-trip every message type and refuse anything else', () => {
    const bytes = new Uint8Array([1, 2, 3]);
    for (const m of [
      { type: 'update' as const, from: 'a', to: '', update: bytes },
      { type: 'awareness' as const, from: 'a', to: 'b', update: bytes },
      { type: 'sync-request' as const, from: 'a', to: '', stateVector: bytes },
      { type: 'sync-reply' as const, from: 'b', to: 'a', update: bytes, stateVector: new Uint8Array([9]) },
      { type: 'sync-step2' as const, from: 'a', to: 'b', update: bytes },
      { type: 'lease-released' as const, from: 'a', to: '' },
      { type: 'room-ended' as const, from: 'a', to: '' },
    ]) {
      expect(decodeBridgeMessage(encodeBridgeMessage(m))).to.deep.equal(m);
    }
    for (const junk of [[], [2, 0, 0, 0], [1, 99, 0, 0], [1, 0, 5, 97], [1, 5, 0, 0, 7]]) {
      expect(() => decodeBridgeMessage(new Uint8Array(junk))).to.throw(BridgeMessageError);
    }
  });
});

describe('the room lease', function () {
  this.timeout(20_000);
  let redis: TestRedis;
  let client: RedisClientType;
  const leases: RoomLease[] = [];

  before(async function () {
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    client = createClient({ url: redis.url });
    await client.connect();
  });
  after(async () => {
    await client?.close();
    await redis?.stop();
  });
  afterEach(async () => {
    while (leases.length) await leases.pop()!.close();
  });

  function lease(nodeId: string, extra: { onAcquired?: () => void; onLost?: () => void } = {}): RoomLease {
    const l = new RoomLease({ client, key: 'test:lease', nodeId, ttlMs: 600, renewMs: 150, log, ...extra });
    leases.push(l);
    return l;
  }

  it('is held by one node at a time and renewed past its ttl', async () => {
    const a = lease('a');
    const b = lease('b');
    await a.start();
    await b.start();
    expect([a.holds, b.holds]).to.deep.equal([true, false]);
    await new Promise((r) => setTimeout(r, 1500));
    expect([a.holds, b.holds]).to.deep.equal([true, false]);
    expect(await client.get('test:lease')).to.equal('a');
  });

  it("goes to another node after the holder stops renewing (a dead holder's key expires)", async () => {
    let acquired = 0;
    const b = lease('b', { onAcquired: () => acquired++ });
    await client.set('test:lease', 'dead-node', { expiration: { type: 'PX', value: 500 } });
    await b.start();
    expect(b.holds).to.equal(false);
    await waitFor(() => b.holds, 3000, 'B to take the expired lease');
    expect(acquired).to.equal(1);
  });

  it('is given back on close, and only by its holder', async () => {
    const a = lease('a');
    await a.start();
    await client.set('test:lease', 'someone-else', { expiration: { type: 'PX', value: 5000 } });
    await a.close();
    // A's key was taken over (as after a lapse): closing A must not delete the new holder's key.
    expect(await client.get('test:lease')).to.equal('someone-else');
    expect(a.timers).to.equal(0);
    const b = lease('b');
    await client.del('test:lease');
    await b.start();
    expect(b.holds).to.equal(true);
    await b.close();
    expect(await client.exists('test:lease')).to.equal(0);
    expect(b.holds).to.equal(false);
  });

  it('is let go at once when told (a refused fencing token), deleting only its own key, and taken again once free', async () => {
    let acquired = 0;
    let lost = 0;
    const a = lease('a', { onAcquired: () => acquired++, onLost: () => lost++ });
    await a.start();
    expect([a.holds, acquired]).to.deep.equal([true, 1]);
    a.letGo('told so');
    expect([a.holds, lost]).to.deep.equal([false, 1]);
    // Its own key was deleted (on the same connection: this read comes after), so it takes the lease again.
    await waitFor(() => a.holds, 3000, 'A to take the lease again');
    expect(acquired).to.equal(2);
    // Let go while Redis names another node: that node's key stays.
    await client.set('test:lease', 'b', { expiration: { type: 'PX', value: 5000 } });
    a.letGo('told again');
    expect(await client.get('test:lease')).to.equal('b');
    expect(lost).to.equal(2);
    a.letGo('not held: nothing happens');
    expect(lost).to.equal(2);
    await client.del('test:lease');
  });

  it('stops counting itself the holder when Redis cannot confirm it within the ttl', async () => {
    let lost = 0;
    const failing = {
      ok: true,
      set: (...args: Parameters<RedisClientType['set']>) => (failing.ok ? client.set(...args) : Promise.reject(new Error('down'))),
      eval: (script: string, o: { keys: string[]; arguments: string[] }) => (failing.ok ? client.eval(script, o) : Promise.reject(new Error('down'))),
    };
    const l = new RoomLease({ client: failing, key: 'test:lease2', nodeId: 'a', ttlMs: 600, renewMs: 150, log, onLost: () => lost++ });
    leases.push(l);
    await l.start();
    expect(l.holds).to.equal(true);
    failing.ok = false;
    await waitFor(() => !l.holds, 2000, 'the lease to lapse');
    await waitFor(() => lost === 1, 2000, 'onLost');
    failing.ok = true;
    await client.del('test:lease2');
  });
});

const STALE_SAVE_LOGGED = 'the store refused a stale save: another node took a newer fencing token and stores the room now';

/** A logger at info level whose lines the test reads. */
function recordingLog(): { log: Logger; lines(): Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { log, lines: () => lines };
}

/** A redis-server on a given port (to restart one where its clients expect it). */
async function redisOn(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('Ready to accept connections')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}:\n${output}`)));
  });
  child.stdout!.resume();
  child.stderr!.resume();
  return child;
}

/** The room's document as the store holds it. */
async function stored(store: SqliteStore, roomId: string): Promise<Y.Doc | null> {
  const record = await store.getRoom(roomId);
  if (!record?.doc) return null;
  const doc = new Y.Doc();
  Y.applyUpdate(doc, record.doc);
  return doc;
}

function storedGain(doc: Y.Doc | null, stem: string): unknown {
  return (doc?.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>> | undefined)?.get(stem)?.get('gainDb');
}

async function eventually(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
