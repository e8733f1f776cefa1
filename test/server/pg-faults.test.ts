import { expect } from 'chai';
import { pino } from 'pino';
import * as Y from 'yjs';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { STORE_UNAVAILABLE_MESSAGE } from '../../server/http/http-error.ts';
import { PgStore } from '../../server/store/pg-store.ts';
import { requireComponent } from '../support/components.ts';
import { startPgTestServer } from '../support/pg-test-server.ts';
import { postgresAvailable, sharedPostgres, type TestPostgres } from '../support/postgres.ts';
import { api, connectMember, joinAs, openRoom, stemMap, waitFor, type Member } from '../support/room-clients.ts';
import type { TestServer } from '../support/test-server.ts';

/** The drums' gain in the document PostgreSQL holds for the room (null before a save). */
async function savedGain(url: string, roomId: string, stem: string): Promise<unknown> {
  const store = await PgStore.open(url, { poolMax: 1, statementTimeoutMs: 5000, connectTimeoutMs: 2000, log: pino({ level: 'silent' }) });
  try {
    const room = await store.getRoom(roomId);
    if (!room?.doc) return null;
    const doc = new Y.Doc();
    Y.applyUpdate(doc, room.doc);
    const stems = doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>;
    return stems.get(stem)?.get('gainDb');
  } finally {
    await store.close();
  }
}

describe('PostgreSQL down under a live room', function () {
  this.timeout(120_000);
  let pg: TestPostgres;
  let t: (TestServer & { databaseUrl: string }) | null = null;
  let members: Member[] = [];

  before(async function () {
    requireComponent('postgresql', postgresAvailable(), this);
    pg = await sharedPostgres();
  });
  afterEach(async () => {
    for (const m of members) m.destroy();
    members = [];
    // Whatever happened, the run's server is up again for the suites after this one.
    await pg.start();
    await t?.close();
    t = null;
  });

  it('rooms keep playing, readiness and new rooms say why, and every acknowledged edit is saved once it is back', async () => {
    t = await startPgTestServer({}, { roomTimings: { saveDebounceMs: 20, saveMaxWaitMs: 100 } });
    const server = t;
    const room = await openRoom(server.url, { hostName: 'Host' });
    const a = await joinAs(server.url, room, 'remixer', 'Ana');
    const b = await joinAs(server.url, room, 'remixer', 'Ben');
    const ana = await connectMember(server.url, room.roomId, a.token);
    const ben = await connectMember(server.url, room.roomId, b.token);
    members.push(ana, ben);
    const live = () => server.server.rooms.get(room.roomId)!.state().mix.stems;

    stemMap(ana.doc, 'drums').set('gainDb', -1);
    await waitFor(() => live()['drums']!.gainDb === -1, 5000, 'the server to apply the first edit');
    for (let i = 0; i < 100 && (await savedGain(server.databaseUrl, room.roomId, 'drums')) !== -1; i++) await new Promise((r) => setTimeout(r, 50));
    expect(await savedGain(server.databaseUrl, room.roomId, 'drums')).to.equal(-1);

    await pg.stop();

    // The room plays on from memory: every edit is applied and reaches the other member.
    const edits: [string, number][] = [
      ['drums', -2],
      ['bass', -3],
      ['drums', -4],
      ['lead', -5],
      ['bass', -6],
    ];
    for (const [stem, gain] of edits) {
      stemMap(ana.doc, stem).set('gainDb', gain);
      await waitFor(() => live()[stem]!.gainDb === gain, 5000, `the server to apply ${stem} ${gain}`);
      await waitFor(() => stemMap(ben.doc, stem).get('gainDb') === gain, 5000, `Ben to hear ${stem} ${gain}`);
      await new Promise((r) => setTimeout(r, 150)); // past the save debounce: each edit meets a save that fails
    }

    const ready = await api<{ status: string; checks: Record<string, string> }>(server.url, 'GET', '/readyz');
    expect(ready.status).to.equal(503);
    expect(ready.body.checks['store']).to.match(new RegExp(`the database is unreachable \\(PostgreSQL at 127\\.0\\.0\\.1:${pg.port} database "server_[^"]+": `));

    const refused = await api<{ error: { code: string; message: string; retryAfterSec?: number } }>(server.url, 'POST', '/api/rooms', { releaseId: DEMO_RELEASE_ID, hostName: 'Late' });
    expect(refused.status).to.equal(503);
    expect(refused.body.error).to.include({ code: 'not_ready', message: STORE_UNAVAILABLE_MESSAGE });
    expect(refused.headers.get('retry-after')).to.match(/^\d+$/);

    // Back on the same port: the room's saves resume without any further edit.
    await pg.start();
    let saved: unknown[] = [];
    for (let i = 0; i < 200; i++) {
      saved = await Promise.all(['drums', 'bass', 'lead'].map((s) => savedGain(server.databaseUrl, room.roomId, s)));
      if (saved.join() === '-4,-6,-5') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(saved).to.deep.equal([-4, -6, -5]);
    expect((await api(server.url, 'GET', '/readyz')).status).to.equal(200);
    expect((await api(server.url, 'POST', '/api/rooms', { releaseId: DEMO_RELEASE_ID, hostName: 'Later' })).status).to.equal(201);
  });
});
