// Buying the longer version of a remix, end to end with the built-in sandbox
// provider: a paid order is entitled and rendered; a declined one never is;
// webhooks are checked and handled once; and a server killed with SIGKILL
// between the charge and the entitlement neither loses the order nor charges
// twice after it comes back.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type * as Y from 'yjs';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import type { OrderView } from '../../server/orders/order-service.ts';
import { signWebhook } from '../../server/orders/payments.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort, stopChild } from '../support/redis.ts';
import { connectMember, joinAs, openRoom, stemMap, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { spawnServer } from '../support/server-process.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const SMALL_VIDEO = { width: 160, height: 90, fps: 10 };
const GOOD_CARD = '4242 4242 4242 4242';
const DECLINED_CARD = '4000 0000 0000 0002';

async function post<T>(url: string, body: unknown, headers: Record<string, string>): Promise<{ status: number; body: T }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as T };
}

async function poll<T>(what: string, timeoutMs: number, probe: () => Promise<T | null>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A room with something playing, a remixer in it, and a finished 2-second clip. */
async function roomWithClip(base: string): Promise<{ room: OpenedRoom; remixer: Member; token: string; clipId: string }> {
  const room = await openRoom(base);
  const token = (await joinAs(base, room, 'remixer', 'Buyer')).token;
  const remixer = await connectMember(base, room.roomId, token);
  remixer.doc.transact(() => (remixer.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
  await new Promise((r) => setTimeout(r, 600));
  remixer.doc.transact(() => stemMap(remixer.doc, 'bass').set('gainDb', -3));
  // A clip is at least 8 s (a whole period of the watermark).
  await new Promise((r) => setTimeout(r, 8000));
  const made = await post<ClipView>(`${base}/api/rooms/${room.roomId}/clips`, { seconds: 8 }, { authorization: `Bearer ${token}`, 'idempotency-key': crypto.randomUUID() });
  if (made.status !== 202) throw new Error(`clip commit failed: ${JSON.stringify(made.body)}`);
  await poll('the clip', 60_000, async () => {
    const v = (await (await fetch(`${base}/api/clips/${made.body.clipId}`)).json()) as ClipView;
    if (v.status === 'failed') throw new Error('the clip failed');
    return v.status === 'done' ? v : null;
  });
  return { room, remixer, token, clipId: made.body.clipId };
}

const getOrder = async (base: string, id: string) => (await (await fetch(`${base}/api/orders/${id}`)).json()) as OrderView;

describe('orders (sandbox payments, real server)', function () {
  this.timeout(180_000);
  let t: TestServer;
  let setup: Awaited<ReturnType<typeof roomWithClip>>;

  before(async function () {
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    t = await startTestServer({ renderVideo: SMALL_VIDEO, sandboxSettleMs: 200 });
    setup = await roomWithClip(t.url);
  });
  after(async () => {
    setup?.remixer.destroy();
    await t?.close();
  });

  const order = (body: unknown, key: string, token = setup.token) => post<OrderView & { error?: { code: string; message: string } }>(`${t.url}/api/orders`, body, { authorization: `Bearer ${token}`, 'idempotency-key': key });

  it('refuses bad orders: no key, no token, a stranger’s token, bad card numbers, unknown clips', async () => {
    expect((await post(`${t.url}/api/orders`, { clipId: setup.clipId, card: GOOD_CARD }, { authorization: `Bearer ${setup.token}` })).status).to.equal(400);
    expect((await post(`${t.url}/api/orders`, { clipId: setup.clipId, card: GOOD_CARD }, { 'idempotency-key': 'k1' })).status).to.equal(401);
    const stranger = await openRoom(t.url);
    expect((await order({ clipId: setup.clipId, card: GOOD_CARD }, 'k2', stranger.hostToken)).status).to.equal(403);
    const invalid = await order({ clipId: setup.clipId, card: '4242 4242 4242 4241' }, 'k3');
    expect(invalid.status).to.equal(400);
    expect(invalid.body.error!.message).to.match(/card/);
    expect((await order({ clipId: 'ffffffffffffffff', card: GOOD_CARD }, 'k4')).status).to.equal(404);
    expect((await order({ clipId: setup.clipId, card: GOOD_CARD, price: 0 }, 'k5')).status).to.equal(400);
  });

  it('a declined card: the order ends declined, with no entitlement and no render', async () => {
    const placed = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'declined-1');
    expect(placed.status).to.equal(201);
    const done = await poll('the decline', 10_000, async () => {
      const o = await getOrder(t.url, placed.body.orderId);
      return o.status === 'declined' ? o : null;
    });
    expect(done.declineCode).to.equal('card_declined');
    expect(done.entitlement).to.equal(null);
    expect(done.render).to.equal(null);
  });

  it('a paid order: entitled once, rendered in full, downloadable; the same key answers the same order; another body is refused', async () => {
    const placed = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'paid-1');
    expect(placed.status).to.equal(201);
    // The price the release sets.
    const release = (await (await fetch(`${t.url}/api/releases/remixroom-demo`)).json()) as { rules: { purchase: { priceCents: number; currency: string } } };
    expect(placed.body.amountCents).to.equal(release.rules.purchase.priceCents);
    expect(placed.body.currency).to.equal(release.rules.purchase.currency);
    const again = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'paid-1');
    expect(again.status).to.equal(200);
    expect(again.body.orderId).to.equal(placed.body.orderId);
    expect((await order({ clipId: setup.clipId, card: '4000 0000 0000 9995' }, 'paid-1')).status).to.equal(409);
    const fulfilled = await poll('the full render', 150_000, async () => {
      const o = await getOrder(t.url, placed.body.orderId);
      if (o.render?.status === 'failed') throw new Error('the full render failed');
      return o.status === 'fulfilled' && o.render?.downloads ? o : null;
    });
    expect(fulfilled.entitlement).to.not.equal(null);
    expect(fulfilled.render!.seconds).to.equal(80);
    const video = await fetch(t.url + fulfilled.render!.downloads!.video);
    expect(video.status).to.equal(200);
    expect(Number(video.headers.get('content-length'))).to.be.greaterThan(10_000);
    expect(fulfilled.render!.manifest!.manifest.kind).to.equal('full');
  });

  it('webhooks: a forged or stale signature is refused; a replay is acknowledged and changes nothing', async () => {
    const body = JSON.stringify({ id: 'evt_forged', type: 'payment.succeeded', paymentId: 'pay_000000000000000000000000' });
    const forged = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook('not-the-secret', body, Math.floor(Date.now() / 1000)) }, body });
    expect(forged.status).to.equal(401);
    const unsigned = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unsigned.status).to.equal(401);
    // With the server's own webhook key (as the sandbox derives it): a stale timestamp is refused, a fresh one accepted once.
    const secret = (JSON.parse(fs.readFileSync(path.join(t.dataDir, 'secrets.json'), 'utf8')) as { tokenSecret: string }).tokenSecret;
    const key = Buffer.from(crypto.hkdfSync('sha256', secret, 'remixroom', 'sandbox-webhook-v1', 32)).toString('hex');
    // Another member of the room (orders are rate-limited per buyer, and the buyer above has used theirs).
    const other = (await joinAs(t.url, setup.room, 'remixer', 'Other buyer')).token;
    const declined = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'replay-1', other);
    expect(declined.status, JSON.stringify(declined.body)).to.equal(201);
    const o = await poll('the decline', 10_000, async () => {
      const v = await getOrder(t.url, declined.body.orderId);
      return v.status === 'declined' ? v : null;
    });
    const stale = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook(key, body, Math.floor(Date.now() / 1000) - 3600) }, body });
    expect(stale.status).to.equal(401);
    // A "succeeded" event for a declined order's payment (a replay or a lie) must not entitle it.
    const payment = fs.readdirSync(path.join(t.dataDir, 'sandbox-payments')).filter((f) => f.endsWith('.json')).map((f) => JSON.parse(fs.readFileSync(path.join(t.dataDir, 'sandbox-payments', f), 'utf8')) as { id: string; idempotencyKey: string }).find((p) => p.idempotencyKey === o.orderId)!;
    const lie = JSON.stringify({ id: 'evt_lie', type: 'payment.succeeded', paymentId: payment.id });
    const r = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook(key, lie, Math.floor(Date.now() / 1000)) }, body: lie });
    expect(r.status).to.equal(200);
    const after = await getOrder(t.url, o.orderId);
    expect(after.status).to.equal('declined');
    expect(after.entitlement).to.equal(null);
  });
});

describe('orders survive a crash between the charge and the entitlement', function () {
  this.timeout(180_000);

  it('SIGKILL after the charge: after a restart the order is paid and entitled, charged once', async function () {
    const native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    const data = await demoDataDir();
    const port = await freePort();
    const env = { DATA_DIR: data.path, PORT: String(port), HOST: '127.0.0.1', RENDER_VIDEO: '160x90@10', SANDBOX_SETTLE_MS: '4000', LOG_LEVEL: 'info' };
    const base = `http://127.0.0.1:${port}`;
    let first = spawnServer(env);
    let second: ReturnType<typeof spawnServer> | null = null;
    let setup: Awaited<ReturnType<typeof roomWithClip>> | null = null;
    try {
      await first.waitFor(/"listening"|listening on/, 60_000);
      setup = await roomWithClip(base);
      const placed = await post<OrderView>(`${base}/api/orders`, { clipId: setup.clipId, card: GOOD_CARD }, { authorization: `Bearer ${setup.token}`, 'idempotency-key': 'crash-1' });
      expect(placed.status).to.equal(201);
      expect(placed.body.status).to.equal('payment_pending');
      // The charge is made (pending at the provider); the server dies before it settles or entitles anything.
      first.child.kill('SIGKILL');
      await first.exited;
      setup.remixer.destroy();
      second = spawnServer(env);
      await second.waitFor(/"listening"|listening on/, 60_000);
      const entitled = await poll('the entitlement after the restart', 60_000, async () => {
        const o = await getOrder(base, placed.body.orderId);
        return o.entitlement ? o : null;
      });
      expect(entitled.status).to.be.oneOf(['paid', 'fulfilled']);
      // One charge for the order, however often it was asked about.
      const charges = fs.readdirSync(path.join(data.path, 'sandbox-payments')).filter((f) => f.endsWith('.json'));
      expect(charges).to.have.length(1);
      // Asking again with the same key answers the same order.
      const again = await post<OrderView>(`${base}/api/orders`, { clipId: setup.clipId, card: GOOD_CARD }, { authorization: `Bearer ${setup.token}`, 'idempotency-key': 'crash-1' });
      expect(again.body.orderId).to.equal(placed.body.orderId);
      expect(fs.readdirSync(path.join(data.path, 'sandbox-payments')).filter((f) => f.endsWith('.json'))).to.have.length(1);
    } finally {
      setup?.remixer.destroy();
      if (first.child.exitCode === null && first.child.signalCode === null) await stopChild(first.child, 'SIGKILL');
      if (second) await stopChild(second.child, 'SIGTERM');
      await data.remove();
    }
  });
});
