// Clips over HTTP: commit (a member of the room, with an Idempotency-Key), status
// and signed downloads, and the manifest signing key. Thin: parse, check, call
// the clip service, answer.
import { Router, type Request } from 'express';
import { z } from 'zod';
import { TokenError, type TokenClaims, type TokenSigner } from '../auth/tokens.ts';
import { ClipError, MIN_CLIP_SEC, type ClipService } from '../clips/clip-service.ts';
import { ROOM_ID } from '../rooms/room-manager.ts';
import { RateLimiter } from '../util/rate-limiter.ts';
import { HttpError } from './http-error.ts';

export interface ClipRoutesDeps {
  clips: ClipService;
  signer: TokenSigner;
  /** The release's clip rules for a room (free length, 30 s by default; whether downloads are allowed), or null for an unknown room. */
  clipRulesOf: (roomId: string) => Promise<{ freeSeconds: number; downloads: boolean } | null>;
  manifestPublicKey: string;
}

const CommitBody = z.object({ seconds: z.number().finite().min(MIN_CLIP_SEC, `a clip lasts at least ${MIN_CLIP_SEC} s (its watermark needs that long)`).max(3600).default(30) }).strict();
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
const even = (d: number) => z.coerce.number().int().min(16).max(3840).refine((v) => v % 2 === 0, 'must be even').default(d);
const StillQuery = z.object({ width: even(1280), height: even(720).pipe(z.number().max(2160)), atMs: z.coerce.number().int().positive().optional() }).strict();

export function clipRoutes(deps: ClipRoutesDeps): Router {
  const router = Router();
  // A few clips a minute per member: each costs seconds of CPU.
  const commits = new RateLimiter({ capacity: 3, refillPerSec: 3 / 60 });

  router.post('/rooms/:roomId/clips', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = member(deps.signer, req, roomId);
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError('bad_request', 'a clip needs an "Idempotency-Key" header (1–128 visible characters), so that a retry never renders twice');
    }
    const parsed = CommitBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    const rules = await deps.clipRulesOf(roomId);
    if (rules === null) throw new HttpError('not_found', 'no such room');
    if (!rules.downloads) throw new HttpError('forbidden', 'the artist does not allow clips of this release to be downloaded');
    const freeSeconds = rules.freeSeconds;
    if (parsed.data.seconds > freeSeconds) {
      throw new HttpError('invalid_body', `seconds: a clip is at most ${freeSeconds} s here (the longer version is bought through /api/orders)`);
    }
    const limited = commits.take(`${roomId}:${claims.sub}`);
    if (!limited.ok) throw new HttpError('rate_limited', `too many clips; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    try {
      const { clip, created } = await deps.clips.commit({ roomId, member: { userId: claims.sub, name: claims.name }, seconds: parsed.data.seconds, idempotencyKey: key });
      res.status(created ? 202 : 200).json(clip);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // A short seamless loop of the room's visuals (MP4 and GIF), rendered in the queue like a clip.
  const LoopBody = z.object({ seconds: z.number().finite().min(1).max(15).default(4) }).strict();
  const loops = new RateLimiter({ capacity: 3, refillPerSec: 3 / 60 });
  router.post('/rooms/:roomId/loops', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = member(deps.signer, req, roomId);
    const key = req.headers['idempotency-key'];
    if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
      throw new HttpError('bad_request', 'a loop needs an "Idempotency-Key" header (1–128 visible characters), so that a retry never renders twice');
    }
    const parsed = LoopBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    const limited = loops.take(`${roomId}:${claims.sub}`);
    if (!limited.ok) throw new HttpError('rate_limited', `too many loops; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    try {
      const { clip, created } = await deps.clips.commitLoop({ roomId, member: { userId: claims.sub, name: claims.name }, seconds: parsed.data.seconds, idempotencyKey: key });
      res.status(created ? 202 : 200).json(clip);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // A still of the room's visuals (a PNG with its signed manifest inside), now or at a recent moment.
  const stills = new RateLimiter({ capacity: 10, refillPerSec: 10 / 60 });
  router.get('/rooms/:roomId/visuals.png', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = member(deps.signer, req, roomId);
    const q = StillQuery.safeParse(req.query);
    if (!q.success) throw new HttpError('bad_request', `${q.error.issues[0]!.path.join('.') || 'query'}: ${q.error.issues[0]!.message}`);
    const limited = stills.take(`${roomId}:${claims.sub}`);
    if (!limited.ok) throw new HttpError('rate_limited', `too many stills; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    try {
      const { png, renderId } = await deps.clips.still({ roomId, member: { userId: claims.sub, name: claims.name }, width: q.data.width, height: q.data.height, ...(q.data.atMs !== undefined ? { atMs: q.data.atMs } : {}) });
      res.setHeader('content-type', 'image/png');
      res.setHeader('cache-control', 'no-store');
      res.attachment(`remixroom-${renderId}.png`);
      res.end(png);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  router.get('/clips/:clipId', async (req, res) => {
    const view = await deps.clips.view(String(req.params['clipId']));
    if (!view) throw new HttpError('not_found', 'no such clip');
    res.setHeader('cache-control', 'no-store');
    res.json(view);
  });

  router.get('/clips/:clipId/files/:name', async (req, res) => {
    let file;
    try {
      file = await deps.clips.file(String(req.params['clipId']), String(req.params['name']), String(req.query['expires'] ?? ''), String(req.query['sig'] ?? ''));
    } catch (err) {
      throw httpErrorOf(err);
    }
    res.setHeader('content-type', file.contentType);
    res.setHeader('cache-control', 'private, max-age=300');
    res.attachment(file.downloadName);
    await new Promise<void>((resolve, reject) => res.sendFile(file.path, (err) => (err ? reject(err) : resolve())));
  });

  router.get('/manifest-key', (_req, res) => {
    res.json({ algorithm: 'Ed25519', publicKey: deps.manifestPublicKey });
  });

  return router;
}

function roomIdOf(req: Request): string {
  const id = req.params['roomId'];
  if (typeof id !== 'string' || !ROOM_ID.test(id)) throw new HttpError('not_found', 'no such room');
  return id;
}

function member(signer: TokenSigner, req: Request, roomId: string): TokenClaims {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
  if (!token) throw new HttpError('unauthorized', 'this needs your member token as "Authorization: Bearer <token>"');
  try {
    return signer.verify(token, roomId, 'member');
  } catch (err) {
    if (err instanceof TokenError) throw new HttpError(err.reason === 'wrong_room' ? 'forbidden' : 'unauthorized', err.message);
    throw err;
  }
}

function httpErrorOf(err: unknown): unknown {
  if (!(err instanceof ClipError)) return err;
  if (err.code === 'not_found') return new HttpError('not_found', err.message);
  if (err.code === 'conflict') return new HttpError('conflict', err.message);
  if (err.code === 'bad_request') return new HttpError('bad_request', err.message);
  // The stills' queue, shared by every room, is full (the only queue that answers 'busy').
  if (err.code === 'busy') return HttpError.limited('still.queue.process', err.retryAfterMs, 503);
  return new HttpError('not_ready', err.message);
}
