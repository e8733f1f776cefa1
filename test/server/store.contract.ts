// The contract every Store implementation must keep. Run it against each one.
import { expect } from 'chai';
import { ReleaseManifestSchema } from '../../shared/release-manifest.ts';
import { ReleaseExistsError, RenderNotFoundError, RoomNotFoundError, StaleFenceError, type ReleaseRecord, type Store } from '../../server/store/store.ts';

export function sampleRecord(id: string, title = 'Sample'): ReleaseRecord {
  const manifest = ReleaseManifestSchema.parse({
    schemaVersion: 1,
    id,
    title,
    artist: 'Tester',
    stems: [{ id: 'drums', title: 'Drums', file: 'stems/drums.wav' }],
    excerpts: [{ id: 'all', title: 'All', startSec: 0, endSec: 10 }],
    artwork: [{ id: 'cover', title: 'Cover', file: 'cover.png', consent: true }],
  });
  return {
    id,
    title,
    artist: 'Tester',
    frames: 480000,
    durationSec: 10,
    manifest,
    stems: [{ id: 'drums', title: 'Drums', peak: 0.5, rms: 0.1 }],
    artwork: [{ id: 'cover', title: 'Cover', kind: 'graphic', tags: [], fileName: 'cover.png', width: 64, height: 64, mimeType: 'image/png', consent: true }],
    ingestedAt: new Date().toISOString(),
    notes: [],
  };
}

export function storeContract(name: string, open: () => Promise<Store>): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('starts empty and migrated', async () => {
      expect(await store.listReleases()).to.deep.equal([]);
      expect(await store.schemaVersion()).to.be.at.least(1);
      await store.ping();
    });

    it('records a release together with its files and reads it back whole', async () => {
      const calls: string[] = [];
      const record = sampleRecord('one');
      await store.putRelease(record, { place: () => calls.push('place'), undo: () => calls.push('undo') });
      expect(calls).to.deep.equal(['place']);
      expect(await store.getRelease('one')).to.deep.equal(record);
      const list = await store.listReleases();
      expect(list.map((r) => r.id)).to.deep.equal(['one']);
      expect(list[0]).to.include({ title: 'Sample', artist: 'Tester', durationSec: 10 });
    });

    it('does not record a release whose files could not be placed', async () => {
      const put = store.putRelease(sampleRecord('two'), {
        place: () => {
          throw new Error('disk full');
        },
        undo: () => {},
      });
      await expectRejection(put, /disk full/);
      expect(await store.getRelease('two')).to.equal(null);
      expect(await store.listReleases()).to.deep.equal([]);
    });

    it('refuses an existing id unless asked to replace it', async () => {
      await store.putRelease(sampleRecord('three', 'First'), { place() {}, undo() {} });
      let placed = false;
      await expectRejection(
        store.putRelease(sampleRecord('three', 'Second'), { place: () => (placed = true), undo() {} }),
        ReleaseExistsError,
      );
      expect(placed).to.equal(false);
      expect((await store.getRelease('three'))!.title).to.equal('First');
      await store.putRelease(sampleRecord('three', 'Second'), { place() {}, undo() {} }, { replace: true });
      expect((await store.getRelease('three'))!.title).to.equal('Second');
      expect(await store.listReleases()).to.have.length(1);
    });

    it('deletes a release', async () => {
      await store.putRelease(sampleRecord('four'), { place() {}, undo() {} });
      expect(await store.deleteRelease('four')).to.equal(true);
      expect(await store.deleteRelease('four')).to.equal(false);
      expect(await store.getRelease('four')).to.equal(null);
    });

    it('keeps a room and its document, and refuses to save one never created', async () => {
      await store.putRelease(sampleRecord('rel'), { place() {}, undo() {} });
      await store.createRoom({ id: 'room1', releaseId: 'rel', createdAt: '2026-01-01T00:00:00.000Z', doc: null });
      const fresh = await store.getRoom('room1');
      expect(fresh).to.include({ id: 'room1', releaseId: 'rel', closedAt: null, doc: null, timeline: null });
      await store.saveRoomDoc('room1', new Uint8Array([1, 2, 3]));
      expect([...(await store.getRoom('room1'))!.doc!]).to.deep.equal([1, 2, 3]);
      // The timeline is saved with the document when given, and kept when not.
      await store.saveRoomDoc('room1', new Uint8Array([4]), '{"v":1}');
      expect(await store.getRoom('room1')).to.deep.include({ doc: new Uint8Array([4]), timeline: '{"v":1}' });
      await store.saveRoomDoc('room1', new Uint8Array([5]));
      expect(await store.getRoom('room1')).to.deep.include({ doc: new Uint8Array([5]), timeline: '{"v":1}' });
      await expectRejection(store.saveRoomDoc('nope', new Uint8Array([1])), RoomNotFoundError);
      await store.endRoom('room1');
      expect((await store.getRoom('room1'))!.closedAt).to.be.a('string');
      expect(await store.getRoom('nope')).to.equal(null);
    });

    it("refuses a save fenced by an older token than the room's newest, and changes nothing", async () => {
      await store.putRelease(sampleRecord('rel-f'), { place() {}, undo() {} });
      await store.createRoom({ id: 'roomF', releaseId: 'rel-f', createdAt: '2026-01-01T00:00:00.000Z', doc: null });
      await expectRejection(store.takeRoomFence('nope'), RoomNotFoundError);
      const first = await store.takeRoomFence('roomF');
      await store.saveRoomDoc('roomF', new Uint8Array([1]), '{"by":"first"}', first);
      // Another node takes the room: its token is newer, and the first holder's late save is refused.
      const second = await store.takeRoomFence('roomF');
      expect(second).to.be.greaterThan(first);
      await store.saveRoomDoc('roomF', new Uint8Array([2]), '{"by":"second"}', second);
      const refused = await expectRejection(store.saveRoomDoc('roomF', new Uint8Array([9]), '{"by":"late"}', first), StaleFenceError);
      expect(refused).to.include({ roomId: 'roomF', fence: first, current: second });
      expect(await store.getRoom('roomF')).to.deep.include({ doc: new Uint8Array([2]), timeline: '{"by":"second"}' });
      // The holder keeps saving with its token; unfenced saves (one process, no lease) still go through.
      await store.saveRoomDoc('roomF', new Uint8Array([3]), undefined, second);
      await store.saveRoomDoc('roomF', new Uint8Array([4]));
      expect([...(await store.getRoom('roomF'))!.doc!]).to.deep.equal([4]);
      // Tokens are handed out once each, even when asked for at the same time.
      const many = await Promise.all([1, 2, 3, 4, 5].map(() => store.takeRoomFence('roomF')));
      expect(new Set(many).size).to.equal(5);
      expect(Math.min(...many)).to.be.greaterThan(second);
      await expectRejection(store.saveRoomDoc('nope', new Uint8Array([1]), undefined, 99), RoomNotFoundError);
    });

    it('keeps renders: one per idempotency key, moved on by status, listed for recovery', async () => {
      await store.putRelease(sampleRecord('rel-r'), { place() {}, undo() {} });
      const base = { roomId: 'room-1', kind: 'clip' as const, status: 'queued' as const, request: { seconds: 30 }, createdAt: new Date(1000).toISOString() };
      const a = await store.createRender({ ...base, id: '00000000000000aa' }, 'user-1:key-1');
      expect(a.created).to.equal(true);
      const again = await store.createRender({ ...base, id: '00000000000000bb', request: { seconds: 10 } }, 'user-1:key-1');
      expect(again.created).to.equal(false);
      expect(again.render.id).to.equal('00000000000000aa');
      expect(again.render.request).to.deep.equal({ seconds: 30 });
      expect((await store.findRenderByKey('user-1:key-1'))?.id).to.equal('00000000000000aa');
      expect(await store.findRenderByKey('user-2:key-1')).to.equal(null);
      const noKey = await store.createRender({ ...base, id: '00000000000000cc', createdAt: new Date(2000).toISOString() }, null);
      expect(noKey.created).to.equal(true);
      await store.updateRender('00000000000000aa', { status: 'running' });
      expect((await store.listRenders(['queued', 'running'])).map((r) => [r.id, r.status])).to.deep.equal([
        ['00000000000000aa', 'running'],
        ['00000000000000cc', 'queued'],
      ]);
      await store.updateRender('00000000000000aa', { status: 'done', result: { files: ['clip.mp4'] } });
      const done = await store.getRender('00000000000000aa');
      expect(done).to.include({ status: 'done', roomId: 'room-1', kind: 'clip' });
      expect(done!.result).to.deep.equal({ files: ['clip.mp4'] });
      expect(await store.getRender('ffffffffffffffff')).to.equal(null);
      await expectRejection(store.updateRender('ffffffffffffffff', { status: 'failed' }), RenderNotFoundError);
      expect(await store.listRenders([])).to.deep.equal([]);
    });

    it('locks a room to new joins and unlocks it; locking again keeps the first time', async () => {
      await store.putRelease(sampleRecord('rel-l'), { place() {}, undo() {} });
      await store.createRoom({ id: 'roomL', releaseId: 'rel-l', createdAt: '2026-01-01T00:00:00.000Z', doc: null, creatorId: 'u_host' });
      expect((await store.getRoomSummary('roomL'))!.lockedAt).to.equal(null);
      expect(await store.setRoomLocked('roomL', true)).to.equal(true);
      const first = (await store.getRoomSummary('roomL'))!.lockedAt;
      expect(first).to.be.a('string');
      expect(await store.setRoomLocked('roomL', true)).to.equal(true);
      expect((await store.getRoom('roomL'))!.lockedAt).to.equal(first);
      expect(await store.setRoomLocked('roomL', false)).to.equal(true);
      expect((await store.getRoomSummary('roomL'))!.lockedAt).to.equal(null);
      expect(await store.setRoomLocked('nope', true)).to.equal(false);
    });

    it("keeps a room's creator and members: roles changed by a host, removals, once per member", async () => {
      await store.putRelease(sampleRecord('rel-m'), { place() {}, undo() {} });
      await store.createRoom({ id: 'roomM', releaseId: 'rel-m', createdAt: '2026-01-01T00:00:00.000Z', doc: null, creatorId: 'u_host' });
      expect((await store.getRoom('roomM'))!.creatorId).to.equal('u_host');
      expect(await store.getRoomSummary('roomM')).to.deep.equal({
        id: 'roomM',
        releaseId: 'rel-m',
        createdAt: '2026-01-01T00:00:00.000Z',
        updatedAt: '2026-01-01T00:00:00.000Z',
        closedAt: null,
        creatorId: 'u_host',
        lockedAt: null,
      });
      expect(await store.getRoomSummary('nope')).to.equal(null);
      const at = '2026-01-01T00:00:00.000Z';
      const until = '2026-01-08T00:00:00.000Z';
      expect(await store.addMember({ roomId: 'roomM', userId: 'u_host', name: 'Host', role: 'host', inviteId: null, accessUntil: until, createdAt: at })).to.equal(true);
      expect(await store.addMember({ roomId: 'roomM', userId: 'u_ana', name: 'Ana', role: 'remixer', inviteId: 'inv1', accessUntil: until, createdAt: at })).to.equal(true);
      // A second record for the same member changes nothing.
      expect(await store.addMember({ roomId: 'roomM', userId: 'u_ana', name: 'Other', role: 'host', inviteId: null, accessUntil: until, createdAt: at })).to.equal(false);
      expect(await store.getMember('roomM', 'u_ana')).to.include({ name: 'Ana', role: 'remixer', roleSetBy: null, removedAt: null, inviteId: 'inv1', accessUntil: until });
      expect(await store.getMember('roomM', 'u_nobody')).to.equal(null);
      expect(await store.getMember('other-room', 'u_ana')).to.equal(null);
      expect(await store.listMemberChanges('roomM')).to.deep.equal([]);
      expect(await store.setMemberRole('roomM', 'u_ana', 'host', 'u_host')).to.equal(true);
      expect(await store.setMemberRole('roomM', 'u_nobody', 'host', 'u_host')).to.equal(false);
      expect(await store.getMember('roomM', 'u_ana')).to.include({ role: 'host', roleSetBy: 'u_host' });
      expect((await store.listMemberChanges('roomM')).map((m) => [m.userId, m.role])).to.deep.equal([['u_ana', 'host']]);
      expect(await store.removeMember('roomM', 'u_ana', 'u_host')).to.equal(true);
      expect((await store.getMember('roomM', 'u_ana'))!.removedAt).to.be.a('string');
      // A removed member's role cannot be changed back in.
      expect(await store.setMemberRole('roomM', 'u_ana', 'remixer', 'u_host')).to.equal(false);
      expect(await store.removeMember('roomM', 'u_nobody', 'u_host')).to.equal(false);
    });

    it("keeps a room's takes, oldest first, up to the room's cap, and reads one back whole", async () => {
      const take = (n: number) => ({ id: `tk_take${n}00`, roomId: 'roomT', name: `Take ${n}`, content: { mix: { n } }, createdBy: 'u_host', savedBy: 'Host', createdAt: `2026-01-01T00:00:0${n}.000Z` });
      expect(await store.listTakes('roomT')).to.deep.equal([]);
      expect(await store.createTake(take(1), 2)).to.equal(true);
      expect(await store.createTake(take(2), 2)).to.equal(true);
      // Full: nothing is written.
      expect(await store.createTake(take(3), 2)).to.equal(false);
      expect((await store.listTakes('roomT')).map((t) => t.name)).to.deep.equal(['Take 1', 'Take 2']);
      expect(await store.getTake('roomT', 'tk_take200')).to.deep.equal(take(2));
      // Another room's takes are neither listed nor found here, and count apart.
      expect(await store.getTake('roomU', 'tk_take200')).to.equal(null);
      expect(await store.createTake({ ...take(4), roomId: 'roomU' }, 2)).to.equal(true);
      expect(await store.listTakes('roomU')).to.have.length(1);
    });

    it('counts the uses of an invite atomically, up to its limit, and refuses a revoked one', async () => {
      const base = { roomId: 'roomI', role: 'remixer' as const, createdBy: 'u_host', createdAt: '2026-01-01T00:00:00.000Z', expiresAt: '2026-01-08T00:00:00.000Z' };
      await store.createInvite({ ...base, id: 'inv-limited', maxUses: 2 });
      await store.createInvite({ ...base, id: 'inv-open', maxUses: null });
      const uses = await Promise.all([1, 2, 3, 4].map(() => store.useInvite('inv-limited')));
      expect(uses.filter((u) => u === 'ok')).to.have.length(2);
      expect(uses.filter((u) => u === 'exhausted')).to.have.length(2);
      expect(await store.getInvite('inv-limited')).to.include({ uses: 2, maxUses: 2, role: 'remixer', revokedAt: null });
      await store.unuseInvite('inv-limited');
      expect(await store.useInvite('inv-limited')).to.equal('ok');
      for (let i = 0; i < 5; i++) expect(await store.useInvite('inv-open')).to.equal('ok');
      expect(await store.useInvite('inv-unknown')).to.equal('unknown');
      expect(await store.revokeInvite('other-room', 'inv-open')).to.equal(false);
      expect(await store.revokeInvite('roomI', 'inv-open')).to.equal(true);
      expect(await store.useInvite('inv-open')).to.equal('revoked');
      expect(await store.getInvite('nope')).to.equal(null);
    });

    it('revokes an entitlement once', async () => {
      await store.createOrder(
        { id: 'ord_1', status: 'paid', amountCents: 100, currency: 'EUR', paymentId: null, renderId: null, request: {}, createdAt: new Date(1000).toISOString() },
        'buyer:key',
      );
      const ent = await store.createEntitlement({ id: 'ent_1', orderId: 'ord_1', renderId: null });
      expect(ent.revokedAt).to.equal(null);
      expect(await store.revokeEntitlement('ord_1')).to.equal(true);
      expect(await store.revokeEntitlement('ord_1')).to.equal(false);
      expect((await store.getEntitlementByOrder('ord_1'))!.revokedAt).to.be.a('string');
      expect(await store.revokeEntitlement('ord_none')).to.equal(false);
    });

    it('fails with a named error after close, and closes twice without harm', async () => {
      await store.close();
      await store.close();
      await expectRejection(store.listReleases(), /closed/);
      store = await open();
    });
  });
}

export async function expectRejection(p: Promise<unknown>, match: RegExp | (new (...args: never[]) => Error)): Promise<Error> {
  try {
    await p;
  } catch (err) {
    if (match instanceof RegExp) expect((err as Error).message).to.match(match);
    else expect(err).to.be.instanceOf(match);
    return err as Error;
  }
  throw new Error('expected a rejection');
}
