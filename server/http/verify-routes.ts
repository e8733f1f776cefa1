// POST /api/verify: a media file as the body (any type, up to MAX_UPLOAD) →
// whether it carries this server's watermark, the render it names, and whether
// its manifest is genuine. Mounted before the JSON parser: the body is raw bytes.
import express, { Router } from 'express';
import { RateLimiter } from '../util/rate-limiter.ts';
import { verifyMedia, VerifyError, type VerifyDeps } from '../clips/verify.ts';
import { HttpError } from './http-error.ts';

export const MAX_UPLOAD = '64mb';
/** Decoding and searching take a core for a second or two: one at a time per process, a few queued. */
const MAX_RUNNING = 1;
const MAX_WAITING = 4;

export function verifyRoute(deps: VerifyDeps): Router {
  const router = Router();
  const perAddress = new RateLimiter({ capacity: 10, refillPerSec: 10 / 60 });
  let running = 0;
  const waiting: (() => void)[] = [];

  router.post('/', express.raw({ type: () => true, limit: MAX_UPLOAD }), async (req, res) => {
    const limited = perAddress.take(req.ip ?? 'unknown');
    if (!limited.ok) throw new HttpError('rate_limited', `too many checks; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    const body = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    if (body.length === 0) throw new HttpError('bad_request', 'send the media file as the request body');
    if (running >= MAX_RUNNING) {
      if (waiting.length >= MAX_WAITING) throw new HttpError('rate_limited', 'the server is checking other files; try again in a few seconds');
      await new Promise<void>((resolve) => waiting.push(resolve));
    }
    running++;
    try {
      res.json(await verifyMedia(deps, body));
    } catch (err) {
      if (err instanceof VerifyError) throw new HttpError(err.code === 'not_media' ? 'bad_request' : 'not_ready', err.message);
      throw err;
    } finally {
      running--;
      waiting.shift()?.();
    }
  });
  return router;
}
