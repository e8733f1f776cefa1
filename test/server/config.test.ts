import { expect } from 'chai';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../server/config.ts';

describe('config', () => {
  it('serves the embedded single-process mode when nothing is set', () => {
    const c = loadConfig({}, '/srv/app');
    expect(c.port).to.equal(3000);
    expect(c.host).to.equal('127.0.0.1');
    expect(c.dataDir).to.equal(path.resolve('/srv/app/data'));
    expect(c.redisUrl).to.equal(null);
    expect(c.tokenSecret).to.equal(null);
    expect(Object.isFrozen(c)).to.equal(true);
  });

  it('reads every documented variable', () => {
    const c = loadConfig(
      {
        PORT: '8080',
        HOST: '0.0.0.0',
        DATA_DIR: '/var/lib/remixroom',
        REDIS_URL: 'redis://127.0.0.1:6380',
        PUBLIC_URL: 'https://remix.example.com/',
        LOG_LEVEL: 'debug',
        TOKEN_SECRET: 'x'.repeat(32),
        SHUTDOWN_TIMEOUT_MS: '2000',
      },
      '/',
    );
    expect(c).to.include({ port: 8080, host: '0.0.0.0', dataDir: '/var/lib/remixroom', redisUrl: 'redis://127.0.0.1:6380' });
    expect(c.publicUrl).to.equal('https://remix.example.com');
    expect(c.logLevel).to.equal('debug');
    expect(c.shutdownTimeoutMs).to.equal(2000);
  });

  it('reads LOG_FORMAT, defaulting to pretty at a terminal and json otherwise', () => {
    expect(loadConfig({}, '/', true).logFormat).to.equal('pretty');
    expect(loadConfig({}, '/', false).logFormat).to.equal('json');
    expect(loadConfig({ LOG_FORMAT: 'json' }, '/', true).logFormat).to.equal('json');
    expect(loadConfig({ LOG_FORMAT: 'pretty' }, '/', false).logFormat).to.equal('pretty');
    expect(loadConfig({ LOG_FORMAT: ' ' }, '/', false).logFormat).to.equal('json');
  });

  it('reads TRUSTED_PROXIES as addresses and CIDR ranges, none by default', () => {
    expect(loadConfig({}).trustedProxies).to.deep.equal([]);
    expect(loadConfig({ TRUSTED_PROXIES: '10.0.0.0/8, 172.18.0.5,fd00::/8' }).trustedProxies).to.deep.equal(['10.0.0.0/8', '172.18.0.5', 'fd00::/8']);
  });

  it('never shows a password of a URL it refuses', () => {
    for (const [name, value] of [
      ['DATABASE_URL', 'postgress://remix:S3cretPassw0rd@db:5432/remix'],
      ['REDIS_URL', 'http://:S3cretPassw0rd@redis:6379'],
    ] as const) {
      let message = '';
      try {
        loadConfig({ [name]: value });
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message, name).to.match(new RegExp(`^${name}=`));
      expect(message, name).to.include(':***@');
      expect(message, name).to.not.include('S3cretPassw0rd');
    }
  });

  it('treats empty values as unset', () => {
    expect(loadConfig({ REDIS_URL: '', TOKEN_SECRET: '  ' }).redisUrl).to.equal(null);
  });

  const refusals: [Record<string, string>, RegExp][] = [
    [{ PORT: 'abc' }, /^PORT="abc" must be a whole number from 0 to 65535$/],
    [{ PORT: '65536' }, /^PORT="65536" must be a whole number/],
    [{ PORT: '-1' }, /^PORT="-1" must be a whole number/],
    [{ PORT: '3.5' }, /^PORT="3.5" must be a whole number/],
    [{ REDIS_URL: 'http://127.0.0.1' }, /^REDIS_URL=.* must start with redis:\/\//],
    [{ REDIS_URL: 'not a url' }, /^REDIS_URL=.* must be a URL like redis:\/\//],
    [{ LOG_LEVEL: 'loud' }, /^LOG_LEVEL="loud" must be one of fatal, error/],
    [{ LOG_FORMAT: 'yaml' }, /^LOG_FORMAT="yaml" must be json \(.*\) or pretty \(.*\)$/],
    [{ LOG_FORMAT: 'JSON' }, /^LOG_FORMAT="JSON" must be json/],
    [{ TOKEN_SECRET: 'short' }, /^TOKEN_SECRET=.* at least 32 characters/],
    [{ PUBLIC_URL: 'example.com' }, /^PUBLIC_URL=.* absolute URL/],
    [{ SHUTDOWN_TIMEOUT_MS: '5' }, /^SHUTDOWN_TIMEOUT_MS=/],
    [{ TRUSTED_PROXIES: '10.0.0.0/33' }, /^TRUSTED_PROXIES="10.0.0.0\/33" must be a comma-separated list of IP addresses or CIDR ranges/],
    [{ TRUSTED_PROXIES: 'balancer.internal' }, /^TRUSTED_PROXIES=.* must be a comma-separated list/],
    [{ TRUSTED_PROXIES: '10.0.0.1,' }, /^TRUSTED_PROXIES=.* must be a comma-separated list/],
  ];
  for (const [env, message] of refusals) {
    it(`refuses ${JSON.stringify(env)} naming the variable and what would be right`, () => {
      expect(() => loadConfig(env)).to.throw(ConfigError, message);
    });
  }
});
