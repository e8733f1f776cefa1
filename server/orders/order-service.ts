// Purchases of the longer version of a remix. Every step is written to the
// store before the next one starts, so a crash at any point leaves a state that
// the reconciler carries on from (see NEXT for the state machine).
//
// The charge is made with the order's id as its idempotency key, so asking
// again after a crash finds the same charge: an order is never charged twice.
// The provider's answer about a charge is the only truth: a webhook (checked by
// its signature) only says which charge to look up, since webhooks come late,
// twice, out of order or never; the reconciler looks up every order that may
// still change, at start and then every minute.
import crypto from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { OrderRecord, OrderStatus, RenderRecord, Store } from '../store/store.ts';
import type { ClipService, ClipView } from '../clips/clip-service.ts';
import { PaymentRefusedError, type Payment, type PaymentProvider, type WebhookEvent } from './payments.ts';

export interface OrderRequest {
  clipId: string;
  roomId: string;
  releaseId: string;
  buyer: { userId: string; name: string };
  /** Last four digits, for the receipt. */
  cardLast4: string;
  declineCode?: string;
}

export interface OrderView {
  orderId: string;
  status: OrderRecord['status'];
  amountCents: number;
  currency: string;
  clipId: string;
  createdAt: string;
  declineCode?: string;
  /** `revokedAt` once the payment was refunded. */
  entitlement: { id: string; createdAt: string; revokedAt?: string } | null;
  /** The full-length render, once entitled: its progress, and its downloads when done (none after a refund). */
  render: ClipView | null;
}

export class OrderError extends Error {
  override readonly name = 'OrderError';
  readonly code: 'not_found' | 'conflict' | 'forbidden' | 'payment_refused' | 'unavailable';
  constructor(code: OrderError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export interface OrderServiceDeps {
  store: Store;
  clips: ClipService;
  payments: PaymentProvider;
  log: Logger;
  reconcile?: Partial<ReconcileOptions>;
}

export interface ReconcileOptions {
  /** Between two passes. */
  everyMs: number;
  /** Orders looked up per pass, at most (the least recently looked up first). */
  batch: number;
  /** How long after it was placed a declined or failed order is still looked up (a stale event or a late charge may have decided it). */
  declinedForMs: number;
  /** How long after it was placed a fulfilled order is still looked up for a refund whose webhook never came. */
  refundsForMs: number;
  /** An order with no charge recorded is closed as never charged only this long after it was placed (its charge may still be in flight). */
  notChargedAfterMs: number;
}

const DAY_MS = 24 * 3600_000;
export const RECONCILE_DEFAULTS: Readonly<ReconcileOptions> = Object.freeze({
  everyMs: 60_000,
  batch: 100,
  declinedForMs: 7 * DAY_MS,
  refundsForMs: 30 * DAY_MS,
  notChargedAfterMs: 5 * 60_000,
});

/** What moves an order: the provider's answer about its charge, or what happened here. */
export type OrderEvent = Exclude<Payment['status'], 'pending'> | 'rendered' | 'not_charged';

/**
 * The order's state machine: no other transition is ever made. The provider
 * decides a charge once (pending → succeeded | declined, then succeeded →
 * refunded), so a local 'declined' or 'failed' that its answer contradicts was
 * wrong (a stale event, a charge that turned up late) and is corrected; nothing
 * else goes back. Entitlement follows the state: paid or fulfilled have one,
 * refunded has it revoked, the rest never had one.
 */
const NEXT: Readonly<Record<OrderStatus, Partial<Record<OrderEvent, OrderStatus>>>> = {
  payment_pending: { succeeded: 'paid', declined: 'declined', refunded: 'refunded', not_charged: 'failed' },
  declined: { succeeded: 'paid', refunded: 'refunded' },
  failed: { succeeded: 'paid', declined: 'declined', refunded: 'refunded' },
  paid: { rendered: 'fulfilled', refunded: 'refunded' },
  fulfilled: { refunded: 'refunded' },
  refunded: {},
};

/** The states `event` moves on from, and the one it moves to (each event has one). */
export function transition(event: OrderEvent): { from: OrderStatus[]; to: OrderStatus } {
  const from = (Object.keys(NEXT) as OrderStatus[]).filter((s) => NEXT[s][event] !== undefined);
  return { from, to: NEXT[from[0]!][event]! };
}

/** The order states that agree with what the provider says of the charge. */
const AGREES: Readonly<Record<Exclude<Payment['status'], 'pending'>, readonly OrderStatus[]>> = {
  succeeded: ['paid', 'fulfilled'],
  declined: ['declined'],
  refunded: ['refunded'],
};

export const ORDER_ID = /^ord_[0-9a-f]{32}$/;

export class OrderService {
  readonly #deps: OrderServiceDeps;
  readonly #options: ReconcileOptions;
  readonly #onRenderDone: (render: RenderRecord) => void;
  /** When this process last looked each order up (the reconciler's fairness, nothing more). */
  readonly #checkedAt = new Map<string, number>();
  #passes: Promise<unknown> = Promise.resolve();
  #timer: NodeJS.Timeout | null = null;
  #closed = false;

  constructor(deps: OrderServiceDeps) {
    this.#deps = deps;
    this.#options = { ...RECONCILE_DEFAULTS, ...deps.reconcile };
    this.#onRenderDone = (render) => {
      const orderId = (render.request as { orderId?: unknown }).orderId;
      if (render.kind === 'full' && typeof orderId === 'string') {
        this.#apply(orderId, 'rendered').catch((err: unknown) => deps.log.error({ err, orderId }, 'marking an order fulfilled failed'));
      }
    };
    deps.clips.on('done', this.#onRenderDone);
  }

  /** Buys the longer version of the remix a clip was cut from. The same key (per buyer) answers the same order. */
  async create(input: { clipId: string; buyer: { userId: string; name: string }; roomId: string; card: string; idempotencyKey: string }): Promise<{ order: OrderView; created: boolean }> {
    this.#assertOpen();
    const { store, payments } = this.#deps;
    const clip = await store.getRender(input.clipId);
    if (!clip || clip.kind !== 'clip') throw new OrderError('not_found', 'no such clip');
    if (clip.roomId !== input.roomId) throw new OrderError('forbidden', 'this clip is from another room');
    const releaseId = (clip.request as { releaseId: string }).releaseId;
    const release = await store.getRelease(releaseId);
    if (!release) throw new OrderError('not_found', 'the release of this clip is gone');
    const purchase = release.manifest.rules.purchase;
    if (!purchase.enabled) throw new OrderError('forbidden', 'the artist does not sell longer versions of this release');
    const digits = input.card.replace(/[\s-]/g, '');
    const request: OrderRequest = { clipId: input.clipId, roomId: input.roomId, releaseId, buyer: input.buyer, cardLast4: digits.slice(-4) };
    const { order, created } = await store.createOrder(
      { id: `ord_${crypto.randomBytes(16).toString('hex')}`, status: 'payment_pending', amountCents: purchase.priceCents, currency: purchase.currency, paymentId: null, renderId: null, request, createdAt: new Date().toISOString() },
      `${input.buyer.userId}:${input.idempotencyKey}`,
    );
    if (!created) {
      const earlier = order.request as OrderRequest;
      if (earlier.clipId !== input.clipId || earlier.cardLast4 !== request.cardLast4) {
        throw new OrderError('conflict', 'this Idempotency-Key was used for a different order; use a new key');
      }
      return { order: await this.#view(order), created: false };
    }
    let payment: Payment;
    try {
      payment = await payments.charge({ idempotencyKey: order.id, amountCents: order.amountCents, currency: order.currency, card: input.card, description: `Remixroom: longer version of clip ${input.clipId}` });
    } catch (err) {
      if (err instanceof PaymentRefusedError) {
        await this.#apply(order.id, 'declined', { request: { ...request, declineCode: err.code } });
        throw new OrderError('payment_refused', err.message);
      }
      // Left pending without a charge: the reconciler asks the provider by the same key.
      throw err;
    }
    // 'failed' too: a charge that took longer than the reconciler waits for it is still this order's.
    await store.updateOrder(order.id, ['payment_pending', 'failed'], { paymentId: payment.id });
    await this.#settle(order, payment);
    return { order: (await this.view(order.id))!, created: true };
  }

  async view(orderId: string): Promise<OrderView | null> {
    if (!ORDER_ID.test(orderId)) return null;
    const order = await this.#deps.store.getOrder(orderId);
    return order ? this.#view(order) : null;
  }

  /** The order as stored, for callers that check who may see it. */
  async get(orderId: string): Promise<OrderRecord | null> {
    return ORDER_ID.test(orderId) ? this.#deps.store.getOrder(orderId) : null;
  }

  /**
   * A payment webhook (signature already checked by the provider): a hint that
   * a charge changed. Its type is not believed; the charge is looked up. Events
   * are not deduplicated: a replay costs one lookup and changes nothing.
   */
  async webhook(event: WebhookEvent): Promise<void> {
    this.#assertOpen();
    const { store, payments, log } = this.#deps;
    const order = await store.getOrderByPayment(event.paymentId);
    if (!order) {
      // Perhaps faster than the order recorded its charge: the reconciler finds it by the order's key.
      log.warn({ paymentId: event.paymentId, eventId: event.id }, 'a payment webhook for no order of ours');
      return;
    }
    const payment = await payments.get(event.paymentId);
    if (!payment) {
      log.warn({ orderId: order.id, paymentId: event.paymentId, eventId: event.id }, 'a payment webhook names a charge the provider does not know');
      return;
    }
    log.debug({ orderId: order.id, eventId: event.id, type: event.type, charge: payment.status }, 'payment webhook');
    await this.#settle(order, payment);
  }

  /** At start: one reconciling pass, then one every `everyMs`. */
  async resume(): Promise<void> {
    await this.reconcile();
    if (!this.#timer) this.#schedule();
  }

  /**
   * Looks up, with the provider, every order that may still change (at most
   * `batch`, the least recently looked up first) and settles it. Passes run one
   * after another; an order's failure is logged and the pass goes on.
   */
  reconcile(): Promise<void> {
    if (this.#closed) return Promise.reject(new OrderError('unavailable', 'the server is shutting down'));
    const pass = this.#passes.then(() => this.#pass());
    this.#passes = pass.catch(() => undefined);
    return pass;
  }

  /** Stops the reconciler (waiting for a pass in progress) and stops following renders. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    this.#deps.clips.off('done', this.#onRenderDone);
    await this.#passes;
  }

  #assertOpen(): void {
    if (this.#closed) throw new OrderError('unavailable', 'the server is shutting down');
  }

  #schedule(): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = null;
      if (this.#closed) return;
      void this.reconcile()
        .catch((err: unknown) => this.#deps.log.error({ err }, 'reconciling orders failed; trying again at the next pass'))
        .finally(() => this.#schedule());
    }, this.#options.everyMs);
  }

  async #pass(): Promise<void> {
    if (this.#closed) return;
    const { store, log } = this.#deps;
    const { batch, declinedForMs, refundsForMs } = this.#options;
    const now = Date.now();
    const due = (await store.listOrders(['payment_pending', 'paid', 'declined', 'failed', 'fulfilled'])).filter((o) => {
      const age = now - Date.parse(o.createdAt);
      if (o.status === 'payment_pending' || o.status === 'paid') return true;
      // A declined order without a charge was refused by the provider at once: nothing to look up.
      if (o.status === 'declined') return o.paymentId !== null && age < declinedForMs;
      if (o.status === 'failed') return age < declinedForMs;
      return age < refundsForMs;
    });
    const ids = new Set(due.map((o) => o.id));
    for (const id of this.#checkedAt.keys()) if (!ids.has(id)) this.#checkedAt.delete(id);
    // Undecided orders first, then the least recently looked up: a long backlog is worked through over passes.
    const urgent = (o: OrderRecord) => (o.status === 'payment_pending' || o.status === 'paid' ? 0 : 1);
    due.sort((a, b) => urgent(a) - urgent(b) || (this.#checkedAt.get(a.id) ?? 0) - (this.#checkedAt.get(b.id) ?? 0));
    for (const order of due.slice(0, batch)) {
      if (this.#closed) return;
      this.#checkedAt.set(order.id, now);
      try {
        await this.#reconcileOne(order);
      } catch (err) {
        log.error({ err, orderId: order.id }, 'reconciling an order failed; it stays as it is until the next pass');
      }
    }
  }

  async #reconcileOne(order: OrderRecord): Promise<void> {
    const { store, payments, log } = this.#deps;
    if (order.paymentId) {
      const payment = await payments.get(order.paymentId);
      if (payment) await this.#settle(order, payment);
      else log.warn({ orderId: order.id, paymentId: order.paymentId }, 'the provider does not know the charge of this order');
      return;
    }
    // No charge recorded (a crash between the order and its charge, or a charge in flight): the provider knows it by the order's key.
    const payment = await payments.find(order.id);
    if (payment) {
      await store.updateOrder(order.id, [order.status], { paymentId: payment.id });
      await this.#settle(order, payment);
      return;
    }
    if (order.status === 'payment_pending' && Date.now() - Date.parse(order.createdAt) >= this.#options.notChargedAfterMs) {
      // Never charged: nothing was taken; the buyer orders again. A charge that turns up later still corrects it.
      if (await this.#apply(order.id, 'not_charged', { request: { ...(order.request as OrderRequest), declineCode: 'not_charged' } })) {
        log.warn({ orderId: order.id }, 'an order whose charge was never made is closed as failed (nothing was charged)');
      }
    }
  }

  /** Moves the order along what the provider says of its charge, then makes its entitlement agree. */
  async #settle(order: OrderRecord, payment: Payment): Promise<void> {
    if (payment.status === 'pending') return;
    const { store, log } = this.#deps;
    const event = payment.status;
    const { declineCode, ...request } = order.request as OrderRequest;
    // Revoked before the status changes: a crash between leaves nothing handed out, and the next pass finishes it.
    if (event === 'refunded') await store.revokeEntitlement(order.id);
    const change = event === 'declined' ? { request: { ...request, ...(payment.declineCode ? { declineCode: payment.declineCode } : {}) } } : event === 'succeeded' && declineCode ? { request } : {};
    const moved = await this.#apply(order.id, event, change);
    const to = transition(event).to;
    if (moved && (order.status === 'declined' || order.status === 'failed')) {
      log.warn({ orderId: order.id, paymentId: payment.id, from: order.status, to }, 'order corrected: the provider says otherwise of its charge (a stale event or a late charge had decided it)');
    } else if (moved) {
      log.info({ orderId: order.id, paymentId: payment.id, to }, 'order settled');
    } else if (!AGREES[event].includes(order.status) && NEXT[order.status][event] === undefined) {
      // E.g. a lookup answered just before a refund and applied after it: the next lookup agrees.
      log.warn({ orderId: order.id, paymentId: payment.id, status: order.status, charge: event }, 'the provider\'s answer would move this order backwards; left as it is');
    }
    if (event === 'succeeded') await this.#entitle(order.id);
    // An entitlement made meanwhile (by a concurrent #entitle) is revoked too.
    if (event === 'refunded') await store.revokeEntitlement(order.id);
  }

  /** Makes `event`'s transition if the order is in a state it moves on from; false when it is not. */
  #apply(orderId: string, event: OrderEvent, change: Partial<Pick<OrderRecord, 'request'>> = {}): Promise<boolean> {
    const { from, to } = transition(event);
    return this.#deps.store.updateOrder(orderId, from, { ...change, status: to });
  }

  /** Paid → the entitlement and the full render (each made once, whatever is retried). */
  async #entitle(orderId: string): Promise<void> {
    const { store, clips, log } = this.#deps;
    const order = await store.getOrder(orderId);
    if (!order || (order.status !== 'paid' && order.status !== 'fulfilled')) return;
    const entitled = (await store.getEntitlementByOrder(orderId)) !== null;
    // Fulfilled and entitled: nothing left (the reconciler looks fulfilled orders up for refunds only).
    if (order.status === 'fulfilled' && entitled) return;
    const request = order.request as OrderRequest;
    const render = await clips.commitFull({ orderId, clipId: request.clipId, buyer: request.buyer });
    if (!entitled) {
      await store.createEntitlement({ id: `ent_${crypto.randomBytes(12).toString('hex')}`, orderId, renderId: render.id });
      log.info({ orderId, renderId: render.id }, 'order entitled');
    }
    if (order.renderId !== render.id) await store.updateOrder(orderId, ['paid', 'fulfilled'], { renderId: render.id });
    if (render.status === 'done') await this.#apply(orderId, 'rendered');
    // A refund settled while this ran found no entitlement to revoke.
    if ((await store.getOrder(orderId))?.status === 'refunded') await store.revokeEntitlement(orderId);
  }

  async #view(order: OrderRecord): Promise<OrderView> {
    const request = order.request as OrderRequest;
    const entitlement = await this.#deps.store.getEntitlementByOrder(order.id);
    const revoked = order.status === 'refunded' || Boolean(entitlement?.revokedAt);
    return {
      orderId: order.id,
      status: order.status,
      amountCents: order.amountCents,
      currency: order.currency,
      clipId: request.clipId,
      createdAt: order.createdAt,
      ...(request.declineCode ? { declineCode: request.declineCode } : {}),
      entitlement: entitlement ? { id: entitlement.id, createdAt: entitlement.createdAt, ...(entitlement.revokedAt ? { revokedAt: entitlement.revokedAt } : {}) } : null,
      render: !revoked && entitlement?.renderId ? await this.#deps.clips.renderView(entitlement.renderId) : null,
    };
  }
}
