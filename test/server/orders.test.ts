// Buying the longer version of a remix, end to end with the built-in sandbox
// provider: a paid order is entitled and rendered; a declined one never is; a
// refund revokes it; webhooks are checked and are only hints (the charge is read
// from the provider), so that out-of-order, duplicated, late and missing ones all
// end with the provider's truth; an order is shown to its buyer only; and a
// server killed with SIGKILL between the charge and the entitlement neither
// loses the order nor charges twice after it comes back.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import type * as Y from 'yjs';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import { OrderService, transition, type OrderView } from '../../server/orders/order-service.ts';
import { signWebhook } from '../../server/orders/payments.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort, stopChild } from '../support/redis.ts';
import { connectMember, joinAs, openRoom, stemMap, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { spawnServer } from '../support/server-process.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const SMALL_VIDEO = { width: 160, height: 90, fps: 10 };

/** The sandbox's record of a charge, as it keeps it on disk. */
async function sandboxCharge(dataDir: string, paymentId: string): Promise<{ status: string; webhookDelivered: boolean; webhookEventId: string }> {
  return JSON.parse(await fs.promises.readFile(path.join(dataDir, 'sandbox-payments', `${paymentId}.json`), 'utf8')) as { status: string; webhookDelivered: boolean; webhookEventId: string };
}
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
    const v = (await (await fetch(`${base}/api/clips/${made.body.clipId}`, { headers: { authorization: `Bearer ${token}` } })).json()) as ClipView;
    if (v.status === 'failed') throw new Error('the clip failed');
    return v.status === 'done' ? v : null;
  });
  return { room, remixer, token, clipId: made.body.clipId };
}

/** The order as its buyer reads it. */
const getOrder = async (base: string, id: string, token: string) => {
  const res = await fetch(`${base}/api/orders/${id}`, { headers: { authorization: `Bearer ${token}` } });
  if (res.status !== 200) throw new Error(`reading the order answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as OrderView;
};

/** The key the sandbox signs webhooks with, derived from the server's token secret as the server does. */
function webhookKey(dataDir: string): string {
  const secret = (JSON.parse(fs.readFileSync(path.join(dataDir, 'secrets.json'), 'utf8')) as { tokenSecret: string }).tokenSecret;
  return Buffer.from(crypto.hkdfSync('sha256', secret, 'remixroom', 'sandbox-webhook-v1', 32)).toString('hex');
}

/** Posts a webhook signed with `key`, as the provider would (or an attacker who has the key). */
async function sendWebhook(base: string, key: string, event: { id: string; type: string; paymentId: string }): Promise<number> {
  const body = JSON.stringify(event);
  const res = await fetch(`${base}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook(key, body, Math.floor(Date.now() / 1000)) }, body });
  await res.body?.cancel();
  return res.status;
}

const eventId = () => `evt_${crypto.randomBytes(12).toString('hex')}`;

describe('the order state machine', () => {
  it('moves only forward: a decline or a failure is overruled only by a charge the provider says succeeded (or refunded); nothing leaves "refunded"', () => {
    expect(transition('succeeded')).to.deep.equal({ from: ['payment_pending', 'declined', 'failed'], to: 'paid' });
    expect(transition('declined')).to.deep.equal({ from: ['payment_pending', 'failed'], to: 'declined' });
    expect(transition('refunded')).to.deep.equal({ from: ['payment_pending', 'declined', 'failed', 'paid', 'fulfilled'], to: 'refunded' });
    expect(transition('rendered')).to.deep.equal({ from: ['paid'], to: 'fulfilled' });
    expect(transition('not_charged')).to.deep.equal({ from: ['payment_pending'], to: 'failed' });
  });
});

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

  // Each order from another address (as a loopback proxy forwards it), so that only the members' own limits count.
  let addresses = 0;
  const order = (body: unknown, key: string, token = setup.token) =>
    post<OrderView & { error?: { code: string; message: string; limit?: string } }>(`${t.url}/api/orders`, body, { authorization: `Bearer ${token}`, 'idempotency-key': key, 'x-forwarded-for': `10.9.0.${++addresses}` });
  /** A new member of the clip's room, with orders of their own to place. */
  const newBuyer = async (name: string) => (await joinAs(t.url, setup.room, 'remixer', name)).token;
  const paymentIdOf = async (orderId: string) => (await t.server.store.getOrder(orderId))!.paymentId!;
  const settledCharge = (paymentId: string) =>
    poll('the charge to settle at the provider', 10_000, async () => {
      const p = await t.server.payments.get(paymentId);
      return p && p.status !== 'pending' ? p : null;
    });

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
      const o = await getOrder(t.url, placed.body.orderId, setup.token);
      return o.status === 'declined' ? o : null;
    });
    expect(done.declineCode).to.equal('card_declined');
    expect(done.entitlement).to.equal(null);
    expect(done.render).to.equal(null);
  });

  it('a paid order: entitled once, rendered in full, downloadable; the same key answers the same order; another body is refused; a refund (its webhook missing) revokes it and its download answers 404', async () => {
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
      const o = await getOrder(t.url, placed.body.orderId, setup.token);
      if (o.render?.status === 'failed') throw new Error('the full render failed');
      return o.status === 'fulfilled' && o.render?.downloads ? o : null;
    });
    expect(fulfilled.entitlement).to.not.equal(null);
    expect(fulfilled.render!.seconds).to.equal(80);
    const video = await fetch(t.url + fulfilled.render!.downloads!.video);
    expect(video.status).to.equal(200);
    expect(Number(video.headers.get('content-length'))).to.be.greaterThan(10_000);
    expect(fulfilled.render!.manifest!.manifest.kind).to.equal('full');

    // Refunded while the provider's webhooks are held: the reconciler finds it (a fulfilled order is still looked up).
    const paymentId = await paymentIdOf(placed.body.orderId);
    t.server.payments.holdWebhooks(true);
    try {
      expect((await t.server.payments.refund(paymentId)).status).to.equal('refunded');
      expect((await getOrder(t.url, placed.body.orderId, setup.token)).status).to.equal('fulfilled');
      await t.server.orders.reconcile();
    } finally {
      t.server.payments.holdWebhooks(false);
    }
    const refunded = await getOrder(t.url, placed.body.orderId, setup.token);
    expect(refunded.status).to.equal('refunded');
    expect(refunded.entitlement!.revokedAt).to.be.a('string');
    expect(refunded.render, 'no downloads after a refund').to.equal(null);
    // A link handed out before the refund serves nothing any more.
    const gone = await fetch(t.url + fulfilled.render!.downloads!.video);
    await gone.body?.cancel();
    expect(gone.status).to.equal(404);
    // The late refund webhook, and the reconciler again, change nothing.
    await poll('the late refund webhook', 10_000, async () => (await sandboxCharge(t.dataDir, paymentId)).webhookDelivered || null);
    await t.server.orders.reconcile();
    const still = await getOrder(t.url, placed.body.orderId, setup.token);
    expect(still.status).to.equal('refunded');
    expect(still.entitlement).to.deep.equal(refunded.entitlement);
  });

  it('webhooks: a forged, missing or stale signature is refused; a signed one for no order of ours is acknowledged', async () => {
    const body = JSON.stringify({ id: 'evt_forged', type: 'payment.succeeded', paymentId: 'pay_000000000000000000000000' });
    const forged = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook('not-the-secret', body, Math.floor(Date.now() / 1000)) }, body });
    expect(forged.status).to.equal(401);
    const unsigned = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    expect(unsigned.status).to.equal(401);
    // With the server's own webhook key (as the sandbox derives it): a stale timestamp is refused.
    const key = webhookKey(t.dataDir);
    const stale = await fetch(`${t.url}/api/webhooks/payments`, { method: 'POST', headers: { 'content-type': 'application/json', 'remixroom-signature': signWebhook(key, body, Math.floor(Date.now() / 1000) - 3600) }, body });
    expect(stale.status).to.equal(401);
    // Signed, but for a charge that is no order's: acknowledged, nothing done.
    expect(await sendWebhook(t.url, key, { id: eventId(), type: 'payment.succeeded', paymentId: 'pay_000000000000000000000000' })).to.equal(200);
  });

  it('a declined charge stays declined whatever events arrive (lies, replays, refunds) and whatever the reconciler finds', async () => {
    const buyer = await newBuyer('Declined buyer');
    const placed = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'declined-stays', buyer);
    expect(placed.status, JSON.stringify(placed.body)).to.equal(201);
    await poll('the decline', 10_000, async () => ((await getOrder(t.url, placed.body.orderId, buyer)).status === 'declined' ? true : null));
    const paymentId = await paymentIdOf(placed.body.orderId);
    const key = webhookKey(t.dataDir);
    const lie = { id: eventId(), type: 'payment.succeeded', paymentId };
    for (const event of [lie, lie, { id: eventId(), type: 'payment.refunded', paymentId }, { id: eventId(), type: 'payment.declined', paymentId }, lie]) {
      expect(await sendWebhook(t.url, key, event)).to.equal(200);
    }
    await t.server.orders.reconcile();
    const after = await getOrder(t.url, placed.body.orderId, buyer);
    expect(after.status).to.equal('declined');
    expect(after.declineCode).to.equal('card_declined');
    expect(after.entitlement).to.equal(null);
    expect(after.render).to.equal(null);
    // The provider refuses to refund what it never charged.
    let refused: unknown = null;
    await t.server.payments.refund(paymentId).catch((err: unknown) => (refused = err));
    expect(refused).to.be.an('error');
  });

  it('a stale payment.declined delivered before the payment.succeeded of the same charge: the order ends paid and entitled', async () => {
    const buyer = await newBuyer('Out-of-order buyer');
    const key = webhookKey(t.dataDir);
    // The provider's own webhooks held, so that the events arrive in exactly this order.
    t.server.payments.holdWebhooks(true);
    let orderId: string;
    let paymentId: string;
    try {
      const placed = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'out-of-order', buyer);
      expect(placed.status, JSON.stringify(placed.body)).to.equal(201);
      orderId = placed.body.orderId;
      paymentId = await paymentIdOf(orderId);
      expect((await settledCharge(paymentId)).status).to.equal('succeeded');
      expect(await sendWebhook(t.url, key, { id: eventId(), type: 'payment.declined', paymentId })).to.equal(200);
      expect(await sendWebhook(t.url, key, { id: eventId(), type: 'payment.succeeded', paymentId })).to.equal(200);
    } finally {
      t.server.payments.holdWebhooks(false);
    }
    const o = await getOrder(t.url, orderId, buyer);
    expect(o.status).to.be.oneOf(['paid', 'fulfilled']);
    expect(o.declineCode).to.equal(undefined);
    expect(o.entitlement).to.not.equal(null);
    expect(o.render).to.not.equal(null);
  });

  it('duplicated webhooks (the same event again, and a copy under a new id) entitle once and change nothing', async () => {
    const buyer = await newBuyer('Duplicate buyer');
    const placed = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'duplicates', buyer);
    expect(placed.status, JSON.stringify(placed.body)).to.equal(201);
    const paymentId = await paymentIdOf(placed.body.orderId);
    const first = await poll('the entitlement', 10_000, async () => {
      const o = await getOrder(t.url, placed.body.orderId, buyer);
      return o.entitlement ? o : null;
    });
    const delivered = await poll('the webhook', 10_000, async () => {
      const c = await sandboxCharge(t.dataDir, paymentId);
      return c.webhookDelivered ? c : null;
    });
    const key = webhookKey(t.dataDir);
    const statuses = await Promise.all([
      sendWebhook(t.url, key, { id: delivered.webhookEventId, type: 'payment.succeeded', paymentId }),
      sendWebhook(t.url, key, { id: delivered.webhookEventId, type: 'payment.succeeded', paymentId }),
      sendWebhook(t.url, key, { id: eventId(), type: 'payment.succeeded', paymentId }),
      sendWebhook(t.url, key, { id: eventId(), type: 'payment.declined', paymentId }),
    ]);
    expect(statuses).to.deep.equal([200, 200, 200, 200]);
    const after = await getOrder(t.url, placed.body.orderId, buyer);
    expect(after.status).to.be.oneOf(['paid', 'fulfilled']);
    expect(after.entitlement).to.deep.equal(first.entitlement);
    expect(after.render!.clipId).to.equal(first.render!.clipId);
  });

  it('missing webhooks: the reconciler (at start, then on its period) settles a paid and a declined order; the late webhooks then change nothing', async () => {
    const buyer = await newBuyer('Unannounced buyer');
    t.server.payments.holdWebhooks(true);
    // A second reconciler over the same server, with a short period (the server's runs every minute).
    const reconciler = new OrderService({ store: t.server.store, clips: t.server.clips, payments: t.server.payments, log: t.server.log, reconcile: { everyMs: 100 } });
    let paid: string;
    let declined: string;
    try {
      const a = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'unannounced-paid', buyer);
      const b = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'unannounced-declined', buyer);
      expect([a.status, b.status]).to.deep.equal([201, 201]);
      [paid, declined] = [a.body.orderId, b.body.orderId];
      await settledCharge(await paymentIdOf(paid));
      await settledCharge(await paymentIdOf(declined));
      // Settled at the provider, unannounced: nothing here has changed.
      expect((await getOrder(t.url, paid, buyer)).status).to.equal('payment_pending');
      expect((await getOrder(t.url, declined, buyer)).status).to.equal('payment_pending');
      await reconciler.resume();
      expect((await getOrder(t.url, paid, buyer)).entitlement, 'settled at start').to.not.equal(null);
      // And on its period: an order placed after the start.
      const c = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'unannounced-later', buyer);
      await poll('the periodic pass', 10_000, async () => ((await getOrder(t.url, c.body.orderId, buyer)).status === 'declined' ? true : null));
    } finally {
      await reconciler.close();
      t.server.payments.holdWebhooks(false);
    }
    const settledPaid = await getOrder(t.url, paid, buyer);
    expect(settledPaid.status).to.be.oneOf(['paid', 'fulfilled']);
    expect((await getOrder(t.url, declined, buyer)).status).to.equal('declined');
    // Closed: it passes no more.
    let closedError: unknown = null;
    await reconciler.reconcile().catch((err: unknown) => (closedError = err));
    expect((closedError as { code?: string } | null)?.code).to.equal('unavailable');
    // The held webhooks now arrive, late: nothing changes.
    for (const id of [paid, declined]) {
      const paymentId = await paymentIdOf(id);
      await poll('the late webhook', 10_000, async () => (await sandboxCharge(t.dataDir, paymentId)).webhookDelivered || null);
    }
    const late = await getOrder(t.url, paid, buyer);
    expect(late.status).to.be.oneOf(['paid', 'fulfilled']);
    expect(late.entitlement).to.deep.equal(settledPaid.entitlement);
    expect((await getOrder(t.url, declined, buyer)).status).to.equal('declined');
  });

  it('a local "declined" the provider contradicts is corrected to paid; a refund before fulfilment revokes it, and nothing brings it back', async () => {
    const buyer = await newBuyer('Corrected buyer');
    const key = webhookKey(t.dataDir);
    t.server.payments.holdWebhooks(true);
    let orderId: string;
    let paymentId: string;
    try {
      const placed = await order({ clipId: setup.clipId, card: GOOD_CARD }, 'corrected', buyer);
      orderId = placed.body.orderId;
      paymentId = await paymentIdOf(orderId);
      await settledCharge(paymentId);
      // As an earlier version of the server left it after a stale event.
      expect(await t.server.store.updateOrder(orderId, ['payment_pending'], { status: 'declined', request: { ...((await t.server.store.getOrder(orderId))!.request as object), declineCode: 'card_declined' } })).to.equal(true);
      await t.server.orders.reconcile();
    } finally {
      t.server.payments.holdWebhooks(false);
    }
    const corrected = await getOrder(t.url, orderId, buyer);
    expect(corrected.status).to.be.oneOf(['paid', 'fulfilled']);
    expect(corrected.declineCode).to.equal(undefined);
    expect(corrected.entitlement).to.not.equal(null);
    // Refunded by its webhook, before the full render is done.
    await t.server.payments.refund(paymentId);
    const refunded = await poll('the refund', 10_000, async () => {
      const o = await getOrder(t.url, orderId, buyer);
      return o.status === 'refunded' ? o : null;
    });
    expect(refunded.entitlement!.revokedAt).to.be.a('string');
    expect(refunded.render).to.equal(null);
    expect((await t.server.store.getEntitlementByOrder(orderId))!.revokedAt).to.be.a('string');
    for (const type of ['payment.succeeded', 'payment.declined']) expect(await sendWebhook(t.url, key, { id: eventId(), type, paymentId })).to.equal(200);
    await t.server.orders.reconcile();
    const after = await getOrder(t.url, orderId, buyer);
    expect(after.status).to.equal('refunded');
    expect(after.entitlement).to.deep.equal(refunded.entitlement);
  });

  it('an order is read by its buyer only: no token 401, a bad token 401, another member or another room 404 (as for no order), the buyer 200', async () => {
    const buyer = await newBuyer('Private buyer');
    const placed = await order({ clipId: setup.clipId, card: DECLINED_CARD }, 'private', buyer);
    expect(placed.status).to.equal(201);
    const read = async (id: string, token?: string) => {
      const res = await fetch(`${t.url}/api/orders/${id}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
      await res.body?.cancel();
      return res.status;
    };
    const elsewhere = await openRoom(t.url);
    const missing = `ord_${'0'.repeat(32)}`;
    expect(await read(placed.body.orderId)).to.equal(401);
    expect(await read(placed.body.orderId, 'rr1.not.a-token')).to.equal(401);
    expect(await read(missing, 'rr1.not.a-token')).to.equal(401);
    expect(await read(placed.body.orderId, setup.token), 'another member of the room').to.equal(404);
    expect(await read(placed.body.orderId, setup.room.hostToken), 'the host').to.equal(404);
    expect(await read(placed.body.orderId, elsewhere.hostToken), 'another room').to.equal(404);
    expect(await read(missing, buyer)).to.equal(404);
    expect(await read(missing, elsewhere.hostToken)).to.equal(404);
    expect(await read(placed.body.orderId, buyer)).to.equal(200);
  });

  it('a member placing too many orders is refused by the order.member limit (whatever address they use)', async () => {
    const buyer = await newBuyer('Hasty buyer');
    // An invalid card number is refused by the provider after the limit is taken: no charge is made.
    const answers = [];
    for (let i = 0; i < 6; i++) answers.push(await order({ clipId: setup.clipId, card: '4242 4242 4242 4241' }, `hasty-${i}`, buyer));
    expect(answers.map((a) => a.status)).to.deep.equal([400, 400, 400, 400, 400, 429]);
    expect(answers[5]!.body.error!.limit).to.equal('order.member');
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
      await first.waitFor(/Remixroom is running/, 60_000);
      setup = await roomWithClip(base);
      const placed = await post<OrderView>(`${base}/api/orders`, { clipId: setup.clipId, card: GOOD_CARD }, { authorization: `Bearer ${setup.token}`, 'idempotency-key': 'crash-1' });
      expect(placed.status).to.equal(201);
      expect(placed.body.status).to.equal('payment_pending');
      // The charge is made (pending at the provider); the server dies before it settles or entitles anything.
      first.child.kill('SIGKILL');
      await first.exited;
      setup.remixer.destroy();
      second = spawnServer(env);
      await second.waitFor(/Remixroom is running/, 60_000);
      const entitled = await poll('the entitlement after the restart', 60_000, async () => {
        const o = await getOrder(base, placed.body.orderId, setup!.token);
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
