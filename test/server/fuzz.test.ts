// The seeded room fuzzer against a real server with real clients (test/support/room-fuzz.ts
// says what it throws at the room and what it checks). Every run takes a few fixed seeds and
// one more: FUZZ_SEED when set, else one derived from the date, so that CI explores a new seed
// every day. A seed that ever failed stays below as a named regression test, with the options
// it failed under; the bug each one found is also pinned by a deterministic test (here, or in
// doc-guard.test.ts), since a seed fixes the traffic, not the timing.
import { expect } from 'chai';
import WebSocket from 'ws';
import * as Y from 'yjs';
import * as decoding from 'lib0/decoding';
import { frames, MSG_AUTH, MSG_SYNC } from '../support/fuzz.ts';
import { runRoomFuzz, type RoomFuzzOptions, type RoomFuzzReport } from '../support/room-fuzz.ts';
import { connectMember, joinAs, openRoom, stemMap, waitFor, type Member } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import type { Refusal } from '../../shared/refusals.ts';

const FIXED_SEEDS = [1, 2, 3];

function seedOfTheRun(): number {
  const fromEnv = process.env['FUZZ_SEED'];
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isSafeInteger(n) || n < 0) throw new Error(`FUZZ_SEED must be a non-negative integer, not "${fromEnv}"`);
    return n;
  }
  return Number(new Date().toISOString().slice(0, 10).replaceAll('-', ''));
}

async function fuzz(options: RoomFuzzOptions): Promise<RoomFuzzReport> {
  const report = await runRoomFuzz(options);
  const { seed, problems, notes, timings } = report;
  if (process.env['FUZZ_VERBOSE']) console.log(JSON.stringify({ seed, timings, notes, stats: report.stats }, null, 1));
  const rerun = `FUZZ_SEED=${seed}${Object.keys(options).length > 1 ? ` with ${JSON.stringify({ ...options, seed: undefined })}` : ''}`;
  expect(problems, `room fuzzer, seed ${seed} (rerun: ${rerun}):\n  ${problems.join('\n  ')}\nnotes: ${notes.join('; ')}`).to.deep.equal([]);
  return report;
}

describe('room fuzzer: random and hostile traffic against a real server', function () {
  this.timeout(120_000);

  for (const seed of [...FIXED_SEEDS, seedOfTheRun()]) {
    it(`seed ${seed}: the room stays valid, the server up, and honest members converge`, async () => {
      await fuzz({ seed });
    });
  }

  describe('regressions: seeds that failed', () => {
    /** Attackers that mostly write under other members' client ids. */
    const FORGING = { syncAttackWeights: { forgedClient: 80 } };
    const seeds: [number, Omit<RoomFuzzOptions, 'seed'>, string][] = [
      [3, {}, 'a stem control named "constructor" threw inside the DocGuard, whose shadow kept the update: every later update went pending on the server'],
      [6, {}, 'the same; "constructor" was even accepted as a master control'],
      [5, {}, "an attacker took an offline member's awareness id, with a clock of 2^40, and silenced it"],
      [7, {}, "the same awareness takeover"],
      [8, {}, "the same awareness takeover"],
      [24, {}, "right after the room unloaded and loaded again, a forger took a member's client id before the member came back"],
      [18, {}, 'a struct colliding with a forged one under the same id put {"three":3} into the server\'s mix.stems.drums.filterQ'],
      [4, {}, 'an excerpt id given as a BigInt made the check throw; its sender was refused without being brought back'],
      [27, {}, 'the room never unloaded: a socket.io connection kept holding it after its setup threw'],
      [3, { ...FORGING, blackout: false }, "structs written under another member's client id at its next clock corrupted that member's document"],
      [11, { ...FORGING, blackout: true }, 'a struct colliding with a forged one under the same id was put elsewhere by Yjs: unchecked content in mix.stems'],
      [16, { ...FORGING, blackout: true }, 'the same collision put {"three":3} into mix.master.delayBeats, for everyone'],
      [15, { ...FORGING, blackout: true }, "client ids were forgotten when the room unloaded; a forger took a member's id"],
      [18, { ...FORGING, blackout: true }, 'the same, for awareness and the document'],
      [17, { ...FORGING, blackout: true }, 'a struct of length zero made every new member fail to sync and the saved room impossible to load'],
    ];
    for (const [seed, options, found] of seeds) {
      const how = Object.keys(options).length ? ` (${JSON.stringify(options)})` : '';
      it(`regression: seed ${seed}${how} — ${found}`, async () => {
        await fuzz({ seed, ...options });
      });
    }
  });

  describe('regressions: what the seeds found, made deterministic', () => {
    let t: TestServer;
    const members: Member[] = [];
    const sockets: WebSocket[] = [];
    before(async () => {
      t = await startTestServer({}, { roomTimings: { graceMs: 100, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
    });
    after(async () => {
      await t?.close();
    });
    afterEach(() => {
      while (members.length) members.pop()!.destroy();
      while (sockets.length) sockets.pop()!.terminate();
    });

    /** A raw y-websocket connection that collects the refusals it is sent and keeps a copy of the room. */
    async function raw(roomId: string, token: string): Promise<{ ws: WebSocket; doc: Y.Doc; refusals: Refusal[] }> {
      const ws = new WebSocket(`${t.url.replace(/^http/, 'ws')}/sync/${roomId}?token=${encodeURIComponent(token)}`);
      sockets.push(ws);
      const doc = new Y.Doc();
      const refusals: Refusal[] = [];
      let synced = false;
      ws.on('message', (data: Buffer) => {
        const dec = decoding.createDecoder(new Uint8Array(data));
        const type = decoding.readVarUint(dec);
        if (type === MSG_AUTH) {
          decoding.readVarUint(dec);
          refusals.push(JSON.parse(decoding.readVarString(dec)) as Refusal);
        } else if (type === MSG_SYNC) {
          const step = decoding.readVarUint(dec);
          if (step !== 0) Y.applyUpdate(doc, decoding.readVarUint8Array(dec));
          if (step === 1) synced = true;
        }
      });
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
      });
      ws.send(frames.syncStep1(Y.encodeStateVector(doc)));
      await waitFor(() => synced, 5000, 'the raw connection to sync');
      return { ws, doc, refusals };
    }

    it("an attacker cannot take an offline member's awareness id and silence it (seeds 5, 7, 8)", async () => {
      const room = await openRoom(t.url);
      const ana = await joinAs(t.url, room, 'remixer', 'Ana');
      const a = await connectMember(t.url, room.roomId, ana.token, { awareness: { name: 'Ana' } });
      members.push(a);
      const id = a.provider.awareness.clientID;
      await waitFor(() => t.server.rooms.get(room.roomId)?.awareness.getStates().has(id) === true, 5000, 'Ana in awareness');
      a.provider.disconnect();
      await waitFor(() => t.server.rooms.get(room.roomId)?.awareness.getStates().has(id) === false, 5000, 'Ana to leave awareness');
      const mallory = await raw(room.roomId, (await joinAs(t.url, room, 'remixer', 'Mallory')).token);
      mallory.ws.send(frames.awareness([{ clientId: id, clock: 2 ** 40, json: JSON.stringify({ name: 'Ana', holding: 'everything' }) }]));
      await waitFor(() => mallory.refusals.length > 0, 5000, 'the refusal');
      expect(mallory.refusals[0]).to.deep.equal({ code: 'malformed', message: 'that awareness client belongs to someone else' });
      a.provider.connect();
      await waitFor(() => a.provider.synced, 5000, 'Ana back');
      a.provider.awareness.setLocalStateField('holding', 'mix.master.tempo');
      await waitFor(() => (t.server.rooms.get(room.roomId)?.awareness.getStates().get(id) as { holding?: string } | undefined)?.holding === 'mix.master.tempo', 5000, "Ana's own state");
      expect(t.server.rooms.get(room.roomId)!.awareness.getStates().get(id)!['member']).to.deep.include({ userId: ana.userId, name: 'Ana' });
    });

    it("nobody can write under an away member's client id, even after the room unloaded and loaded again (seeds 15, 18, 24)", async () => {
      const room = await openRoom(t.url);
      const ana = await joinAs(t.url, room, 'remixer', 'Ana');
      const a = await connectMember(t.url, room.roomId, ana.token);
      members.push(a);
      stemMap(a.doc, 'drums').set('gainDb', -1);
      await waitFor(() => t.server.rooms.get(room.roomId)?.state().mix.stems['drums']?.gainDb === -1, 5000, 'the first edit');
      a.provider.disconnect();
      // Away, Ana goes on editing; the room unloads meanwhile.
      stemMap(a.doc, 'drums').set('gainDb', -2);
      await waitFor(() => t.server.rooms.get(room.roomId) === undefined, 5000, 'the room to unload');
      const mallory = await raw(room.roomId, (await joinAs(t.url, room, 'remixer', 'Mallory')).token);
      // Mallory writes at the clock Ana's offline edit has; were it taken, the server would drop Ana's as a duplicate.
      const forged = new Y.Doc();
      Y.applyUpdate(forged, Y.encodeStateAsUpdate(mallory.doc));
      forged.clientID = a.doc.clientID;
      const sv = Y.encodeStateVector(forged);
      stemMap(forged, 'drums').set('gainDb', -30);
      mallory.ws.send(frames.update(Y.encodeStateAsUpdate(forged, sv)));
      await waitFor(() => mallory.refusals.length > 0, 5000, 'the refusal');
      expect(mallory.refusals[0]).to.deep.equal({ code: 'malformed', message: "the update is written under another member's client id" });
      a.provider.connect();
      await waitFor(() => t.server.rooms.get(room.roomId)?.state().mix.stems['drums']?.gainDb === -2, 5000, "Ana's offline edit");
      expect(stemMap(a.doc, 'drums').get('gainDb')).to.equal(-2);
    });
  });
});
