// Purchases over HTTP: place an order (a member of the clip's room, with an
// Idempotency-Key), read it (its buyer only), and the payment provider's webhook
// (raw body, signature checked before anything is read from it).
import express, { Router } from 'express';
import { z } from 'zod';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import type { ClipService } from '../clips/clip-service.ts';
import type { Logger } from '../logger.ts';
import { OrderError, type OrderRequest, type OrderService } from '../orders/order-service.ts';
import { WebhookError, type PaymentProvider } from '../orders/payments.ts';
import type { Store } from '../store/store.ts';
import type { Limits } from '../limits/limits.ts';
import type { MemberDirectory } from '../auth/members.ts';
import { HttpError } from './http-error.ts';

export interface OrderRoutesDeps {
  orders: OrderService;
  /** The clip an order is for, and its room. */
  clips: Pick<ClipService, 'clipRoomOf'>;
  payments: PaymentProvider;
  signer: TokenSigner;
  store: Store;
  log: Logger;
  limits: Limits;
  members: MemberDirectory;
}

const OrderBody = z
  .object({
    clipId: z.string().regex(/^[0-9a-f]{16}$/, 'must be a clip id'),
    /** The card number (the sandbox's test cards; a real provider takes a token from its own form instead). */
    card: z.string().min(12).max(32),
  })
  .strict();
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** POST /api/orders and GET /api/orders/:orderId. */
export function orderRoutes(deps: OrderRoutesDeps): Router {
  const router = Router();

  router.post('/', async (req, res) => {
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError('bad_request', 'an order needs an "Idempotency-Key" header (1–128 visible characters), so that a retry never charges twice');
    }
    const parsed = OrderBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    const roomId = await deps.clips.clipRoomOf(parsed.data.clipId);
    if (roomId === null) throw new HttpError('not_found', 'no such clip');
    const token = bearerOf(req.headers.authorization);
    if (!token) throw new HttpError('unauthorized', 'buying needs your member token of the clip\'s room as "Authorization: Bearer <token>"');
    let claims;
    try {
      claims = deps.signer.verify(token, roomId, 'member');
    } catch (err) {
      if (err instanceof TokenError) throw new HttpError(err.reason === 'wrong_room' ? 'forbidden' : 'unauthorized', err.message);
      throw err;
    }
    // A member the room removed buys nothing more there (what they bought before stays theirs to read).
    const standing = await deps.members.standing(roomId, claims);
    if (!standing.ok && standing.reason !== 'ended') throw new HttpError('forbidden', standing.message);
    const v = await deps.limits.take(['order.member', 'order.address'], { member: claims.sub, address: deps.limits.addressOf(req) });
    if (!v.ok) throw HttpError.limited(v.limit, v.retryAfterMs);
    try {
      const { order, created } = await deps.orders.create({ clipId: parsed.data.clipId, roomId, buyer: { userId: claims.sub, name: claims.name }, card: parsed.data.card, idempotencyKey: key });
      res.status(created ? 201 : 200).json(order);
    } catch (err) {
      if (err instanceof OrderError) {
        if (err.code === 'payment_refused') throw new HttpError('invalid_body', `card: ${err.message}`);
        throw new HttpError(err.code === 'unavailable' ? 'not_ready' : err.code, err.message);
      }
      throw err;
    }
  });

  // The buyer only. Whoever else asks is told what they would be told of no order at all,
  // so that an order's existence is not given away.
  router.get('/:orderId', async (req, res) => {
    const token = bearerOf(req.headers.authorization);
    if (!token) throw new HttpError('unauthorized', 'reading an order needs the buyer\'s member token as "Authorization: Bearer <token>"');
    const order = await deps.orders.get(String(req.params['orderId']));
    const request = order?.request as OrderRequest | undefined;
    let claims;
    try {
      // With no order, against no room: a genuine token is then "wrong room" (404), any other refused (401), as for an order.
      claims = deps.signer.verify(token, request?.roomId ?? '', 'member');
    } catch (err) {
      if (err instanceof TokenError) {
        if (err.reason === 'wrong_room') throw new HttpError('not_found', 'no such order');
        throw new HttpError('unauthorized', err.message);
      }
      throw err;
    }
    if (!order || claims.sub !== request!.buyer.userId) throw new HttpError('not_found', 'no such order');
    const view = await deps.orders.view(order.id);
    if (!view) throw new HttpError('not_found', 'no such order');
    res.setHeader('cache-control', 'no-store');
    res.json(view);
  });

  return router;
}

function bearerOf(header: string | undefined): string | null {
  return header?.startsWith('Bearer ') ? header.slice(7).trim() || null : null;
}

/** POST /api/webhooks/payments: mounted before the JSON body parser, since the signature covers the raw bytes. */
export function paymentWebhookRoute(deps: OrderRoutesDeps): Router {
  const router = Router();
  router.post('/', express.raw({ type: () => true, limit: '64kb' }), async (req, res) => {
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    let event;
    try {
      event = deps.payments.parseWebhook(body, req.headers['remixroom-signature'] as string | undefined);
    } catch (err) {
      if (err instanceof WebhookError) {
        deps.log.warn({ reason: err.message }, 'payment webhook refused');
        throw new HttpError('unauthorized', `webhook refused: ${err.message}`);
      }
      throw err;
    }
    try {
      await deps.orders.webhook(event);
    } catch (err) {
      // The provider sends it again later (to this node or another).
      if (err instanceof OrderError && err.code === 'unavailable') throw new HttpError('not_ready', err.message);
      throw err;
    }
    res.json({ received: true });
  });
  return router;
}
