import { expect } from 'chai';
import { pino } from 'pino';
import { RoomManager, RoomNotFoundError } from '../../server/rooms/room-manager.ts';
import { SqliteStore } from '../../server/store/sqlite-store.ts';
import { expectRejection, sampleRecord } from './store.contract.ts';

describe('RoomManager and the room lifecycle', () => {
  let store: SqliteStore;
  const log = pino({ level: 'silent' });
  beforeEach(async () => {
    store = await SqliteStore.open(':memory:');
    await store.putRelease(sampleRecord('rel'), { place() {}, undo() {} });
  });
  afterEach(async () => {
    await store.close();
  });

  it('opens a room once for concurrent callers', async () => {
    const manager = new RoomManager({ store, log });
    const id = await manager.create((await store.getRelease('rel'))!);
    const [a, b, c] = await Promise.all([manager.open(id), manager.open(id), manager.open(id)]);
    expect(a).to.equal(b);
    expect(b).to.equal(c);
    expect(manager.size).to.equal(1);
    await manager.closeAll();
  });

  it('lets the rooms of one release share its description, and gives rooms opened after a change the new one', async () => {
    const manager = new RoomManager({ store, log });
    const release = (await store.getRelease('rel'))!;
    const [a, b] = await Promise.all([manager.create(release), manager.create(release)]).then((ids) => Promise.all(ids.map((id) => manager.open(id))));
    expect(a!.release).to.equal(b!.release);
    const changed = { ...release, stems: [{ ...release.stems[0]!, title: 'Beats' }] };
    await store.putRelease(changed, { place() {}, undo() {} }, { replace: true });
    const c = await manager.open(await manager.create(changed));
    expect(c.release).to.not.equal(a!.release);
    expect(c.release.stems[0]!.title).to.equal('Beats');
    expect(a!.release.stems[0]!.title).to.equal('Drums');
    await manager.closeAll();
  });

  it('refuses an unknown room without keeping anything', async () => {
    const manager = new RoomManager({ store, log });
    await expectRejection(manager.open('nosuchroom1'), RoomNotFoundError);
    expect(manager.size).to.equal(0);
  });

  it('closes and forgets a room whose setup failed, so nothing leaks', async () => {
    let opened: import('../../server/rooms/room.ts').Room | null = null;
    const manager = new RoomManager({
      store,
      log,
      onRoomOpened: (room) => {
        opened = room;
        throw new Error('redis down');
      },
    });
    const id = await manager.create((await store.getRelease('rel'))!);
    await expectRejection(manager.open(id), /redis down/);
    expect(manager.size).to.equal(0);
    expect(opened!.closed).to.equal(true);
    expect(opened!.resources()).to.deep.equal({ timers: 0, peers: 0, holders: 0, disposers: 0 });
  });

  it('closes an empty room after the grace period, saving it first, and stops every timer', async () => {
    const manager = new RoomManager({ store, log, timings: { graceMs: 50, saveDebounceMs: 10_000, saveMaxWaitMs: 20_000 } });
    const id = await manager.create((await store.getRelease('rel'))!);
    const room = await manager.open(id);
    const holder = {};
    room.hold(holder);
    room.change((doc) => (doc.getMap('mix').get('master') as import('yjs').Map<unknown>).set('reverbMix', 0.3));
    expect(room.resources().timers).to.equal(1);
    room.unhold(holder);
    await new Promise<void>((r) => room.once('close', () => r()));
    expect(manager.size).to.equal(0);
    expect(room.resources()).to.deep.equal({ timers: 0, peers: 0, holders: 0, disposers: 0 });
    const again = await manager.open(id);
    expect(again.state().mix.master.reverbMix).to.equal(0.3);
    await manager.closeAll();
  });

  it('a room closing while the store is away keeps trying its last save, and loses nothing once the store is back', async () => {
    // A store that is unreachable for its first three saves (a database outage as the last member leaves).
    let failures = 0;
    const outage: SqliteStore['saveRoomDoc'] = async (id, doc, timeline, fence) => {
      if (failures < 3) {
        failures++;
        throw new Error('connect ECONNREFUSED 127.0.0.1:5432');
      }
      return store.saveRoomDoc(id, doc, timeline, fence);
    };
    const flaky = new Proxy(store, {
      get: (target, key) => (key === 'saveRoomDoc' ? outage : ((v) => (typeof v === 'function' ? v.bind(target) : v))(Reflect.get(target, key))),
    });
    const manager = new RoomManager({ store: flaky, log, timings: { graceMs: 10_000, saveDebounceMs: 10_000, saveMaxWaitMs: 20_000 } });
    const id = await manager.create((await store.getRelease('rel'))!);
    const room = await manager.open(id);
    room.change((doc) => (doc.getMap('mix').get('master') as import('yjs').Map<unknown>).set('reverbMix', 0.71));
    await room.close();
    expect(failures).to.equal(3);
    const saved = await new RoomManager({ store, log }).open(id);
    expect(saved.state().mix.master.reverbMix).to.equal(0.71);
    await saved.close();
    await manager.closeAll();
  });

  it('refuses calls on a closed room with a named error', async () => {
    const manager = new RoomManager({ store, log });
    const room = await manager.open(await manager.create((await store.getRelease('rel'))!));
    await room.close();
    expect(() => room.change(() => {})).to.throw(/closed/).with.property('name', 'InvalidStateError');
    await room.close();
  });

  it('does not hand out a room that is closing: a member arriving while it saves on its way out gets it loaded again, with what it saved', async () => {
    // A store that takes its time to save (as one over the network does).
    let release: () => void = () => {};
    const saveSlowly: SqliteStore['saveRoomDoc'] = async (id, doc, timeline) => {
      await new Promise<void>((r) => (release = r));
      return store.saveRoomDoc(id, doc, timeline);
    };
    const slow = new Proxy(store, {
      get: (target, key) => (key === 'saveRoomDoc' ? saveSlowly : ((v) => (typeof v === 'function' ? v.bind(target) : v))(Reflect.get(target, key))),
    });
    const manager = new RoomManager({ store: slow, log, timings: { graceMs: 10, saveDebounceMs: 10_000, saveMaxWaitMs: 20_000 } });
    const id = await manager.create((await store.getRelease('rel'))!);
    const first = await manager.open(id);
    first.change((doc) => (doc.getMap('mix').get('master') as import('yjs').Map<unknown>).set('reverbMix', 0.4));
    const holder = {};
    first.hold(holder);
    first.unhold(holder);
    await new Promise((r) => setTimeout(r, 50));
    expect(first.closing, 'closing, its save under way').to.equal(true);
    expect(first.closed).to.equal(false);
    const arriving = manager.open(id);
    await new Promise((r) => setTimeout(r, 20));
    release();
    const second = await arriving;
    expect(second).to.not.equal(first);
    expect(first.closed).to.equal(true);
    expect(second.closing).to.equal(false);
    expect((second.state().mix.master as { reverbMix: number }).reverbMix).to.equal(0.4);
    expect(manager.get(id)).to.equal(second);
    const closing = manager.closeAll();
    release();
    await closing;
  });
});
