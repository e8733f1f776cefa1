import { expect } from 'chai';
import { pino } from 'pino';
import { ConfigError, configFor, loadConfig } from '../../server/config.ts';
import { RemixroomServer, StartupError } from '../../server/server.ts';
import { PgStore } from '../../server/store/pg-store.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { startPgTestServer } from '../support/pg-test-server.ts';
import { postgresAvailable, sharedPostgres } from '../support/postgres.ts';
import { api, openRoom } from '../support/room-clients.ts';
import type { TestServer } from '../support/test-server.ts';

describe('DATABASE_URL in the configuration', () => {
  it('is off (SQLite) by default and when empty, with a pool of 10 and a 5 s statement timeout', () => {
    for (const env of [{}, { DATABASE_URL: '' }, { DATABASE_URL: '  ' }]) {
      expect(loadConfig(env, '/srv', false)).to.include({ databaseUrl: null, databasePoolMax: 10, databaseStatementTimeoutMs: 5000 });
    }
  });

  it('takes postgres:// and postgresql:// URLs and the pool settings', () => {
    expect(loadConfig({ DATABASE_URL: 'postgres://u:p@db:5432/rr', DATABASE_POOL_MAX: '25', DATABASE_STATEMENT_TIMEOUT_MS: '2000' }, '/srv', false)).to.include({
      databaseUrl: 'postgres://u:p@db:5432/rr',
      databasePoolMax: 25,
      databaseStatementTimeoutMs: 2000,
    });
    expect(loadConfig({ DATABASE_URL: 'postgresql://db/rr' }, '/srv', false).databaseUrl).to.equal('postgresql://db/rr');
  });

  it('refuses another scheme or a bad pool size, naming the variable', () => {
    expect(() => loadConfig({ DATABASE_URL: 'mysql://db/rr' }, '/srv', false)).to.throw(ConfigError, /^DATABASE_URL="mysql:\/\/db\/rr" must be a URL like postgres:\/\//);
    expect(() => loadConfig({ DATABASE_URL: 'not a url' }, '/srv', false)).to.throw(ConfigError, /^DATABASE_URL=/);
    expect(() => loadConfig({ DATABASE_POOL_MAX: '0' }, '/srv', false)).to.throw(ConfigError, /^DATABASE_POOL_MAX="0" must be a whole number from 1 to 1000/);
    expect(() => loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '5' }, '/srv', false)).to.throw(ConfigError, /^DATABASE_STATEMENT_TIMEOUT_MS="5"/);
  });
});

describe('a server on PostgreSQL', function () {
  this.timeout(120_000);
  let t: TestServer & { databaseUrl: string };

  before(async function () {
    requireComponent('postgresql', postgresAvailable(), this);
    t = await startPgTestServer();
  });
  after(async () => {
    await t?.close();
  });

  it('keeps its rooms in PostgreSQL, is ready, and reports the pool and query latency', async () => {
    expect(t.server.store.kind).to.equal('postgres');
    const room = await openRoom(t.url, { hostName: 'Host' });
    const direct = await PgStore.open(t.databaseUrl, { poolMax: 1, statementTimeoutMs: 5000, connectTimeoutMs: 3000, log: pino({ level: 'silent' }) });
    try {
      expect(await direct.getRoomSummary(room.roomId)).to.include({ id: room.roomId });
    } finally {
      await direct.close();
    }
    const ready = await api<{ status: string; checks: Record<string, string> }>(t.url, 'GET', '/readyz');
    expect(ready.status).to.equal(200);
    expect(ready.body.checks['store']).to.equal('ok');
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).to.match(/^remixroom_db_pool_connections\{state="total"\} [1-9]/m);
    expect(metrics).to.match(/^remixroom_db_pool_connections\{state="waiting"\} \d+$/m);
    expect(metrics).to.match(/^remixroom_db_query_duration_seconds_count\{outcome="ok"\} [1-9]/m);
  });

  it('does not start with a wrong password: one line naming the server and database, not the password', async () => {
    const port = (await sharedPostgres()).port;
    const data = await demoDataDir();
    try {
      const config = configFor({ dataDir: data.path, port: 0, logLevel: 'silent', tokenSecret: 'p'.repeat(32), databaseUrl: `postgres://postgres:hunter2@127.0.0.1:${port}/postgres` });
      let err: Error | null = null;
      await RemixroomServer.start(config, pino({ level: 'silent' })).then(
        (s) => s.close(),
        (e: unknown) => void (err = e as Error),
      );
      expect(err).to.be.instanceOf(StartupError);
      expect(err!.message).to.equal(`cannot open the database: PostgreSQL at 127.0.0.1:${port} database "postgres": password authentication failed for user "postgres"; check DATABASE_URL`);
    } finally {
      await data.remove();
    }
  });

  it('the embedded default stays SQLite, with no database metrics', async () => {
    const { startTestServer } = await import('../support/test-server.ts');
    const s = await startTestServer();
    try {
      expect(s.server.store.kind).to.equal('sqlite');
      expect(await (await fetch(`${s.url}/metrics`)).text()).to.not.include('remixroom_db_');
    } finally {
      await s.close();
    }
  });
});
