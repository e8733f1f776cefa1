// Purchases of the longer version of a remix. Every step is written to the
// store before the next one starts, so a crash at any point leaves a state that
// start-up recovery (resume) carries on from:
//
//   created, charge asked ─(webhook or lookup: succeeded)→ paid ─→ entitlement + full render ─(render done)→ fulfilled
//                         └(declined)→ declined (no entitlement, ever)
//
// The charge is made with the order's id as its idempotency key, so asking
// again after a crash finds the same charge: an order is never charged twice.
// Webhooks are checked by signature, and an event id is handled once.
import crypto from 'node:crypto';
import type { Logger } from '../logger.ts';
import type { OrderRecord, Store } from '../store/store.ts';
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
  entitlement: { id: string; createdAt: string } | null;
  /** The full-length render, once entitled: its progress, and its downloads when done. */
  render: ClipView | null;
}

export class OrderError extends Error {
  override readonly name = 'OrderError';
  readonly code: 'not_found' | 'conflict' | 'forbidden' | 'payment_refused';
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
}

export const ORDER_ID = /^ord_[0-9a-f]{32}$/;

export class OrderService {
  readonly #deps: OrderServiceDeps;

  constructor(deps: OrderServiceDeps) {
    this.#deps = deps;
    deps.clips.on('done', (render) => {
      const orderId = (render.request as { orderId?: unknown }).orderId;
      if (render.kind === 'full' && typeof orderId === 'string') {
        deps.store.updateOrder(orderId, ['paid'], { status: 'fulfilled' }).catch((err: unknown) => deps.log.error({ err, orderId }, 'marking an order fulfilled failed'));
      }
    });
  }

  /** Buys the longer version of the remix a clip was cut from. The same key (per buyer) answers the same order. */
  async create(input: { clipId: string; buyer: { userId: string; name: string }; roomId: string; card: string; idempotencyKey: string }): Promise<{ order: OrderView; created: boolean }> {
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
        await store.updateOrder(order.id, ['payment_pending'], { status: 'declined', request: { ...request, declineCode: err.code } });
        throw new OrderError('payment_refused', err.message);
      }
      // Left pending without a charge: recovery asks again with the same key.
      throw err;
    }
    await store.updateOrder(order.id, ['payment_pending'], { paymentId: payment.id });
    await this.#settle(order.id, payment);
    return { order: (await this.view(order.id))!, created: true };
  }

  async view(orderId: string): Promise<OrderView | null> {
    if (!ORDER_ID.test(orderId)) return null;
    const order = await this.#deps.store.getOrder(orderId);
    return order ? this.#view(order) : null;
  }

  /** A payment webhook (signature already checked by the provider). Replays are acknowledged and ignored. */
  async webhook(event: WebhookEvent): Promise<void> {
    if (!(await this.#deps.store.recordWebhookEvent(event.id))) return;
    const order = await this.#deps.store.getOrderByPayment(event.paymentId);
    if (!order) {
      this.#deps.log.warn({ paymentId: event.paymentId, eventId: event.id }, 'a payment webhook for no order of ours');
      return;
    }
    await this.#settle(order.id, {
      id: event.paymentId,
      status: event.type === 'payment.succeeded' ? 'succeeded' : 'declined',
      amountCents: order.amountCents,
      currency: order.currency,
      ...(event.declineCode ? { declineCode: event.declineCode } : {}),
    });
  }

  /** Carries on every order a previous process left halfway. */
  async resume(): Promise<void> {
    const { store, payments, log } = this.#deps;
    for (const order of await store.listOrders(['payment_pending', 'paid'])) {
      try {
        if (order.status === 'paid') {
          await this.#entitle(order.id);
          continue;
        }
        const request = order.request as OrderRequest;
        let payment = order.paymentId ? await payments.get(order.paymentId) : null;
        if (!order.paymentId) {
          // Crashed between recording the order and recording its charge: the provider knows the charge by the order's key, if it made one.
          payment = await payments.find(order.id);
          if (payment) await store.updateOrder(order.id, ['payment_pending'], { paymentId: payment.id });
          else {
            // Never charged: nothing was taken; the buyer orders again.
            await store.updateOrder(order.id, ['payment_pending'], { status: 'failed', request: { ...request, declineCode: 'not_charged' } });
            log.warn({ orderId: order.id }, 'an order whose charge was never made is closed as failed (nothing was charged)');
          }
        }
        if (payment) await this.#settle(order.id, payment);
      } catch (err) {
        log.error({ err, orderId: order.id }, 'resuming an order failed; it stays as it is');
      }
    }
  }

  async #settle(orderId: string, payment: Payment): Promise<void> {
    const { store } = this.#deps;
    if (payment.status === 'pending') return;
    if (payment.status === 'declined') {
      const order = await store.getOrder(orderId);
      if (!order) return;
      await store.updateOrder(orderId, ['payment_pending'], { status: 'declined', request: { ...(order.request as OrderRequest), ...(payment.declineCode ? { declineCode: payment.declineCode } : {}) } });
      return;
    }
    await store.updateOrder(orderId, ['payment_pending'], { status: 'paid' });
    await this.#entitle(orderId);
  }

  /** Paid → the entitlement and the full render (each made once, whatever is retried). */
  async #entitle(orderId: string): Promise<void> {
    const { store, clips, log } = this.#deps;
    const order = await store.getOrder(orderId);
    if (!order || (order.status !== 'paid' && order.status !== 'fulfilled')) return;
    const request = order.request as OrderRequest;
    const render = await clips.commitFull({ orderId, clipId: request.clipId, buyer: request.buyer });
    await store.createEntitlement({ id: `ent_${crypto.randomBytes(12).toString('hex')}`, orderId, renderId: render.id });
    if (order.renderId !== render.id) await store.updateOrder(orderId, ['paid'], { renderId: render.id });
    if (render.status === 'done') await store.updateOrder(orderId, ['paid'], { status: 'fulfilled' });
    log.info({ orderId, renderId: render.id }, 'order entitled');
  }

  async #view(order: OrderRecord): Promise<OrderView> {
    const request = order.request as OrderRequest;
    const entitlement = await this.#deps.store.getEntitlementByOrder(order.id);
    return {
      orderId: order.id,
      status: order.status,
      amountCents: order.amountCents,
      currency: order.currency,
      clipId: request.clipId,
      createdAt: order.createdAt,
      ...(request.declineCode ? { declineCode: request.declineCode } : {}),
      entitlement: entitlement ? { id: entitlement.id, createdAt: entitlement.createdAt } : null,
      render: entitlement?.renderId ? await this.#deps.clips.renderView(entitlement.renderId) : null,
    };
  }
}
