import { expect } from 'chai';
import { requireComponent } from '../support/components.ts';
import { redisAvailable, startRedis, type TestRedis } from '../support/redis.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

describe('readiness with Redis configured', function () {
  this.timeout(60_000);
  let redis: TestRedis | null = null;
  let t: TestServer | null = null;

  before(function () {
    requireComponent('redis-server', redisAvailable(), this);
  });
  afterEach(async () => {
    await t?.close();
    await redis?.stop();
    t = null;
    redis = null;
  });

  it('is ready while Redis answers, and says so per check', async () => {
    redis = await startRedis();
    t = await startTestServer({ redisUrl: redis.url, tokenSecret: 'x'.repeat(32) });
    const res = await fetch(`${t.url}/readyz`);
    const body = await res.json();
    expect(res.status).to.equal(200);
    expect(body).to.deep.equal({ status: 'ready', checks: { store: 'ok', redis: 'ok' } });
  });

  it('is not ready while Redis is down, names the failing check, and recovers when it is back', async () => {
    redis = await startRedis();
    const port = redis.port;
    t = await startTestServer({ redisUrl: redis.url, tokenSecret: 'x'.repeat(32) });
    await redis.stop();
    const down = await fetch(`${t.url}/readyz`);
    expect(down.status).to.equal(503);
    const body = (await down.json()) as { checks: Record<string, string> };
    expect(body.checks['store']).to.equal('ok');
    expect(body.checks['redis']).to.match(/^unreachable: /);
    expect((await fetch(`${t.url}/healthz`)).status, 'the process itself is still healthy').to.equal(200);
    redis = await startRedis(port);
    // The client reconnects with a backoff of at most 5 s.
    let ready = 0;
    for (let i = 0; i < 100 && ready !== 200; i++) {
      ready = (await fetch(`${t.url}/readyz`)).status;
      if (ready !== 200) await new Promise((r) => setTimeout(r, 200));
    }
    expect(ready).to.equal(200);
  });
});
