// The limits' buckets (one contract for the in-process store and the Redis one,
// against a real redis-server), the Limits object's refusals, and the address a
// limit is keyed by.
import { expect } from 'chai';
import fs from 'node:fs';
import { createClient, type RedisClientType } from 'redis';
import { LIMITS, describeLimit, limitMessage } from '../../shared/limits.ts';
import { LocalBucketStore, RedisBucketStore, type BucketStore } from '../../server/limits/bucket-store.ts';
import { Limits } from '../../server/limits/limits.ts';
import { addressOf, forwardedFor, limitAddress, ProxyTrust } from '../../server/limits/address.ts';
import { AddressConnections } from '../../server/limits/address-connections.ts';
import { requireComponent } from '../support/components.ts';
import { redisAvailable, startRedis, type TestRedis } from '../support/redis.ts';

function bucketContract(name: string, open: () => Promise<BucketStore>): void {
  describe(`bucket store contract: ${name}`, () => {
    let store: BucketStore;
    let n = 0;
    const key = () => `test:${name}:${Date.now()}:${++n}`;
    beforeEach(async () => {
      store = await open();
    });
    afterEach(async () => {
      await store.close();
    });

    it('grants a full burst, then refuses with the wait until one token is back', async () => {
      const b = { key: key(), capacity: 3, refillPerSec: 2 };
      for (let i = 0; i < 3; i++) expect((await store.take([b], 1, 1)).granted).to.equal(1);
      const refused = await store.take([b], 1, 1);
      expect(refused.granted).to.equal(0);
      expect(refused.index).to.equal(0);
      expect(refused.retryAfterMs).to.be.within(400, 501);
      await new Promise((r) => setTimeout(r, 550));
      expect((await store.take([b], 1, 1)).granted).to.equal(1);
    });

    it('takes from every bucket or from none, and names the one that lacked', async () => {
      const member = { key: key(), capacity: 5, refillPerSec: 0.01 };
      const address = { key: key(), capacity: 2, refillPerSec: 0.01 };
      expect((await store.take([member, address], 1, 1)).granted).to.equal(1);
      expect((await store.take([member, address], 1, 1)).granted).to.equal(1);
      const refused = await store.take([member, address], 1, 1);
      expect(refused).to.deep.include({ granted: 0, index: 1 });
      // The member's bucket paid nothing for the refusal: 3 left.
      for (let i = 0; i < 3; i++) expect((await store.take([member], 1, 1)).granted).to.equal(1);
      expect((await store.take([member], 1, 1)).granted).to.equal(0);
    });

    it('takes up to a number: as many as all hold, at least the minimum', async () => {
      const a = { key: key(), capacity: 10, refillPerSec: 0.01 };
      const b = { key: key(), capacity: 4, refillPerSec: 0.01 };
      expect((await store.take([a, b], 1, 6)).granted).to.equal(4);
      expect((await store.take([a], 1, 100)).granted).to.equal(6);
      expect((await store.take([a, b], 1, 6)).granted).to.equal(0);
      const c = { key: key(), capacity: 4, refillPerSec: 0.01 };
      expect((await store.take([c], 5, 5)).granted).to.equal(0);
    });

    it('keeps buckets apart by key', async () => {
      const a = { key: key(), capacity: 1, refillPerSec: 0.01 };
      const b = { key: key(), capacity: 1, refillPerSec: 0.01 };
      expect((await store.take([a], 1, 1)).granted).to.equal(1);
      expect((await store.take([b], 1, 1)).granted).to.equal(1);
      expect((await store.take([a], 1, 1)).granted).to.equal(0);
    });
  });
}

bucketContract('in process', async () => new LocalBucketStore());

describe('with a real redis-server', function () {
  let redis: TestRedis;
  let client: RedisClientType;
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

  bucketContract('Redis', async () => new RedisBucketStore(client));

  it('two nodes share one allowance through Redis', async () => {
    const other: RedisClientType = createClient({ url: redis.url });
    await other.connect();
    try {
      const a = new Limits(new RedisBucketStore(client));
      const b = new Limits(new RedisBucketStore(other));
      const who = { member: `u_shared_${Date.now()}`, address: '192.0.2.1' };
      const results = [];
      for (let i = 0; i < 4; i++) results.push((await a.take(['chat.member'], who)).ok, (await b.take(['chat.member'], who)).ok);
      expect(results.filter(Boolean)).to.have.length(LIMITS['chat.member'].capacity);
    } finally {
      await other.close();
    }
  });

  it('keeps the limits on each node alone while Redis does not answer, and says so once', async () => {
    const lost: RedisClientType = createClient({ url: 'redis://127.0.0.1:1', socket: { reconnectStrategy: false, connectTimeout: 200 } });
    lost.on('error', () => {});
    await lost.connect().catch(() => {});
    const said: string[] = [];
    const limits = new Limits(new RedisBucketStore(lost, { onFallback: (err) => said.push(err.message) }));
    const who = { member: 'u_alone' };
    const oks = [];
    for (let i = 0; i < 7; i++) oks.push((await limits.take(['chat.member'], who)).ok);
    expect(oks.filter(Boolean)).to.have.length(LIMITS['chat.member'].capacity);
    expect(said).to.have.length(1);
    await lost.destroy();
  });
});

describe('Limits', () => {
  it('applies only the limits whose subject is given, and names the one that refused with its wait', async () => {
    const limits = new Limits(new LocalBucketStore());
    // Without an address, only the member's limit counts.
    for (let i = 0; i < LIMITS['chat.member'].capacity; i++) expect((await limits.take(['chat.member', 'chat.address'], { member: 'u1' })).ok).to.equal(true);
    const v = await limits.take(['chat.member', 'chat.address'], { member: 'u1', address: '198.51.100.7' });
    expect(v).to.deep.include({ ok: false, limit: 'chat.member' });
    const refusal = await limits.refusalFor(['chat.member'], { member: 'u1' });
    expect(refusal).to.deep.include({ code: 'rate_limited', limit: 'chat.member' });
    expect(refusal!.retryAfterMs).to.be.within(1, 1000);
    expect(refusal!.message).to.match(/too many chat messages .*limit chat\.member.*try again in 1 s/);
  });

  it('lets the configuration override a cap', () => {
    expect(new Limits(new LocalBucketStore()).cap('connections.address')).to.equal(LIMITS['connections.address'].max);
    expect(new Limits(new LocalBucketStore(), { caps: { 'connections.address': 7 } }).cap('connections.address')).to.equal(7);
  });

  it('describes every limit in words, with its number', () => {
    expect(describeLimit('chat.member')).to.equal('at most 5 chat messages at once, then 1 a second');
    expect(describeLimit('invite.exchange.address')).to.equal('at most 10 joins through a link at once, then 10 a minute');
    expect(describeLimit('connections.address')).to.match(/^at most 256 connections$/);
    expect(limitMessage('connections.address', 30_000)).to.match(/from your address \(limit connections\.address\); try again in 30 s/);
    for (const name of Object.keys(LIMITS) as (keyof typeof LIMITS)[]) expect(describeLimit(name)).to.match(/\d/);
  });

  it('SECURITY.md lists every limit with its number, as shared/limits.ts has it', () => {
    const doc = fs.readFileSync(new URL('../../SECURITY.md', import.meta.url), 'utf8');
    for (const name of Object.keys(LIMITS) as (keyof typeof LIMITS)[]) {
      const row = doc.split('\n').find((l) => l.startsWith(`| \`${name}\` |`));
      expect(row, name).to.be.a('string');
      expect(row, name).to.include(describeLimit(name));
    }
  });
});

describe('the address a limit is keyed by', () => {
  it('trusts X-Forwarded-For only from a loopback proxy, and takes its rightmost address that is not loopback', () => {
    expect(forwardedFor('127.0.0.1', '203.0.113.9')).to.equal('203.0.113.9');
    expect(forwardedFor('::ffff:127.0.0.1', '198.51.100.1, 203.0.113.9, 127.0.0.1')).to.equal('203.0.113.9');
    expect(forwardedFor('203.0.113.50', '198.51.100.1')).to.equal('203.0.113.50');
    expect(forwardedFor('127.0.0.1', 'not an address')).to.equal('127.0.0.1');
    expect(forwardedFor('127.0.0.1', undefined)).to.equal('127.0.0.1');
  });

  it('trusts the configured proxies too (a load balancer on another machine), and nobody else', () => {
    const trust = new ProxyTrust(['10.0.0.0/8', 'fd00::1']);
    // The balancer at 10.1.2.3 forwards a client; a chain of two of our proxies is walked through.
    expect(trust.forwardedFor('10.1.2.3', '203.0.113.9')).to.equal('203.0.113.9');
    expect(trust.forwardedFor('::ffff:10.1.2.3', '198.51.100.1, 203.0.113.9, 10.9.9.9')).to.equal('203.0.113.9');
    expect(trust.forwardedFor('fd00::1', '2001:db8::5')).to.equal('2001:db8::5');
    // Loopback stays trusted; an address outside the ranges is the client itself, whatever it claims.
    expect(trust.forwardedFor('127.0.0.1', '203.0.113.9')).to.equal('203.0.113.9');
    expect(trust.forwardedFor('11.0.0.1', '203.0.113.9')).to.equal('11.0.0.1');
    expect(trust.forwardedFor('fd00::2', '203.0.113.9')).to.equal('fd00::2');
    expect(trust.addressOf({ headers: { 'x-forwarded-for': '192.0.2.77' }, socket: { remoteAddress: '10.0.0.7' } })).to.equal('192.0.2.77');
    // Without the configuration, the same balancer's header is ignored.
    expect(forwardedFor('10.1.2.3', '203.0.113.9')).to.equal('10.1.2.3');
  });

  it('keys IPv4 as it is and IPv6 by its /64, so that one subscriber cannot take a new address per request', () => {
    expect(limitAddress('::ffff:192.0.2.4')).to.equal('192.0.2.4');
    expect(limitAddress('2001:db8:1:2:aaaa::1')).to.equal(limitAddress('2001:db8:1:2:bbbb:cccc:dddd:eeee'));
    expect(limitAddress('2001:db8:1:2::1')).to.not.equal(limitAddress('2001:db8:1:3::1'));
    expect(limitAddress('2001:db8:1:2::1')).to.equal('2001:db8:1:2::/64');
    expect(limitAddress('garbage')).to.equal('unknown');
    expect(limitAddress(undefined)).to.equal('unknown');
    expect(addressOf({ headers: { 'x-forwarded-for': '192.0.2.77' }, socket: { remoteAddress: '::1' } })).to.equal('192.0.2.77');
  });

  it('counts connections per address up to the cap, and frees them again', () => {
    const c = new AddressConnections(2);
    expect([c.acquire('a'), c.acquire('a'), c.acquire('a'), c.acquire('b')]).to.deep.equal([true, true, false, true]);
    c.release('a');
    expect(c.acquire('a')).to.equal(true);
    c.release('a');
    c.release('a');
    c.release('b');
    expect(c.addresses).to.equal(0);
  });
});
