// Purchases over HTTP: place an order (a member of the clip's room, with an
// Idempotency-Key), read it, and the payment provider's webhook (raw body,
// signature checked before anything is read from it).
import express, { Router } from 'express';
import { z } from 'zod';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import type { Logger } from '../logger.ts';
import { OrderError, type OrderService } from '../orders/order-service.ts';
import { WebhookError, type PaymentProvider } from '../orders/payments.ts';
import type { Store } from '../store/store.ts';
import { RateLimiter } from '../util/rate-limiter.ts';
import { HttpError } from './http-error.ts';

export interface OrderRoutesDeps {
  orders: OrderService;
  payments: PaymentProvider;
  signer: TokenSigner;
  store: Store;
  log: Logger;
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
  const attempts = new RateLimiter({ capacity: 5, refillPerSec: 5 / 60 });

  router.post('/', async (req, res) => {
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError('bad_request', 'an order needs an "Idempotency-Key" header (1–128 visible characters), so that a retry never charges twice');
    }
    const parsed = OrderBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    const clip = await deps.store.getRender(parsed.data.clipId);
    if (!clip || clip.kind !== 'clip') throw new HttpError('not_found', 'no such clip');
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
    if (!token) throw new HttpError('unauthorized', 'buying needs your member token of the clip\'s room as "Authorization: Bearer <token>"');
    let claims;
    try {
      claims = deps.signer.verify(token, clip.roomId, 'member');
    } catch (err) {
      if (err instanceof TokenError) throw new HttpError(err.reason === 'wrong_room' ? 'forbidden' : 'unauthorized', err.message);
      throw err;
    }
    const limited = attempts.take(claims.sub);
    if (!limited.ok) throw new HttpError('rate_limited', `too many orders; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    try {
      const { order, created } = await deps.orders.create({ clipId: parsed.data.clipId, roomId: clip.roomId, buyer: { userId: claims.sub, name: claims.name }, card: parsed.data.card, idempotencyKey: key });
      res.status(created ? 201 : 200).json(order);
    } catch (err) {
      if (err instanceof OrderError) {
        if (err.code === 'payment_refused') throw new HttpError('invalid_body', `card: ${err.message}`);
        throw new HttpError(err.code, err.message);
      }
      throw err;
    }
  });

  router.get('/:orderId', async (req, res) => {
    const view = await deps.orders.view(String(req.params['orderId']));
    if (!view) throw new HttpError('not_found', 'no such order');
    res.setHeader('cache-control', 'no-store');
    res.json(view);
  });

  return router;
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
    await deps.orders.webhook(event);
    res.json({ received: true });
  });
  return router;
}
