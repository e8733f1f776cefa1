// Clips over HTTP: commit (a member of the room, with an Idempotency-Key), status
// and signed downloads, and the manifest signing key. Thin: parse, check who asks
// (the store's record of the member), take the limits, call the clip service.
//
// Who may read what: a clip's status and fresh links go to members of its room
// (their token); a signed link is the download itself, for whoever holds it until
// it expires. A clip's id (in every file's manifest and watermark) gives nothing alone.
import { Router, type Request } from 'express';
import { z } from 'zod';
import type { RateLimitName } from '../../shared/limits.ts';
import type { MemberDirectory } from '../auth/members.ts';
import { TokenError, type TokenClaims, type TokenSigner } from '../auth/tokens.ts';
import { ClipError, MIN_CLIP_SEC, type ClipService, type ClipView } from '../clips/clip-service.ts';
import { RENDER_ID } from '../clips/render-job.ts';
import { contentDisposition } from '../clips/download-name.ts';
import type { Limits } from '../limits/limits.ts';
import { sendBlob } from '../store/blob-http.ts';
import { BlobNotFoundError } from '../store/blob-store.ts';
import { HttpError } from './http-error.ts';
import { bearer, memberOf as memberIn, roomIdOf, verify } from './route-helpers.ts';

export interface ClipRoutesDeps {
  clips: ClipService;
  signer: TokenSigner;
  members: MemberDirectory;
  limits: Limits;
  /** The release's clip rules for a room (free length, 30 s by default; whether downloads are allowed), or null for an unknown room. */
  clipRulesOf: (roomId: string) => Promise<{ freeSeconds: number; downloads: boolean } | null>;
  manifestPublicKey: string;
}

const CommitBody = z.object({ seconds: z.number().finite().min(MIN_CLIP_SEC, `a clip lasts at least ${MIN_CLIP_SEC} s (its watermark needs that long)`).max(3600).default(30) }).strict();
const LoopBody = z.object({ seconds: z.number().finite().min(1).max(15).default(4) }).strict();
const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;
const even = (d: number) => z.coerce.number().int().min(16).max(3840).refine((v) => v % 2 === 0, 'must be even').default(d);
const StillQuery = z.object({ width: even(1280), height: even(720).pipe(z.number().max(2160)), atMs: z.coerce.number().int().positive().optional() }).strict();

export function clipRoutes(deps: ClipRoutesDeps): Router {
  const router = Router();

  /** A member of the room as the store knows them now. */
  async function memberOf(req: Request, roomId: string): Promise<TokenClaims> {
    return (await memberIn(deps.members, deps.signer, req, roomId)).claims;
  }

  /**
   * The path's clip and the caller's claims. A member of another room learns nothing about it,
   * not even that it exists (404). Reading it is open to its room's members, also after the room
   * ended; `write` (a new version of it) only while the room is open (403 once it ended).
   */
  async function clipOf(req: Request, access: 'read' | 'write'): Promise<{ clipId: string; view: ClipView; claims: TokenClaims }> {
    const token = bearer(req);
    const clipId = String(req.params['clipId']);
    const view = RENDER_ID.test(clipId) ? await deps.clips.view(clipId) : null;
    if (!view) throw new HttpError('not_found', 'no such clip');
    let claims: TokenClaims;
    try {
      claims = deps.signer.verify(token, view.roomId, 'member');
    } catch (err) {
      if (err instanceof TokenError) throw err.reason === 'wrong_room' ? new HttpError('not_found', 'no such clip') : new HttpError('unauthorized', err.message);
      throw err;
    }
    const standing = await deps.members.standing(view.roomId, claims);
    if (!standing.ok) {
      if (standing.reason !== 'ended') throw new HttpError('not_found', 'no such clip');
      if (access === 'write') throw new HttpError('forbidden', 'this room has ended: its clips can still be downloaded, but no new version is made');
    }
    return { clipId, view, claims };
  }

  /** Takes the member's and its address's share of a limit (each render costs seconds of CPU), or refuses. */
  async function within(req: Request, claims: TokenClaims, limits: readonly RateLimitName[]): Promise<void> {
    const v = await deps.limits.take(limits, { member: claims.sub, address: deps.limits.addressOf(req) });
    if (!v.ok) throw HttpError.limited(v.limit, v.retryAfterMs);
  }

  router.post('/rooms/:roomId/clips', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = await memberOf(req, roomId);
    const key = idempotencyKey(req, 'a clip');
    const parsed = CommitBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    const rules = await deps.clipRulesOf(roomId);
    if (rules === null) throw new HttpError('not_found', 'no such room');
    if (!rules.downloads) throw new HttpError('forbidden', 'the artist does not allow clips of this release to be downloaded');
    const freeSeconds = rules.freeSeconds;
    if (parsed.data.seconds > freeSeconds) {
      throw new HttpError('invalid_body', `seconds: a clip is at most ${freeSeconds} s here (the longer version is bought through /api/orders)`);
    }
    await within(req, claims, ['clip.member', 'clip.address']);
    try {
      const { clip, created } = await deps.clips.commit({ roomId, member: { userId: claims.sub, name: claims.name }, seconds: parsed.data.seconds, idempotencyKey: key });
      res.status(created ? 202 : 200).json(clip);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // A vertical version of a clip (1080x1920, for phones' short-video apps), followed like a clip.
  router.post('/clips/:clipId/vertical', async (req, res) => {
    // A new render is a write: only a member in good standing of a room still open.
    const { clipId, view, claims } = await clipOf(req, 'write');
    const key = idempotencyKey(req, 'a vertical version');
    const rules = await deps.clipRulesOf(view.roomId);
    if (rules !== null && !rules.downloads) throw new HttpError('forbidden', 'the artist does not allow clips of this release to be downloaded');
    await within(req, claims, ['clip.member', 'clip.address']);
    try {
      const { clip, created } = await deps.clips.commitVertical({ clipId, member: { userId: claims.sub, name: claims.name }, idempotencyKey: key });
      res.status(created ? 202 : 200).json(clip);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // A short seamless loop of the room's visuals (MP4 and GIF), rendered in the queue like a clip.
  router.post('/rooms/:roomId/loops', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = await memberOf(req, roomId);
    const key = idempotencyKey(req, 'a loop');
    const parsed = LoopBody.safeParse(req.body ?? {});
    if (!parsed.success) throw new HttpError('invalid_body', `${parsed.error.issues[0]!.path.join('.') || 'body'}: ${parsed.error.issues[0]!.message}`);
    await within(req, claims, ['loop.member', 'loop.address']);
    try {
      const { clip, created } = await deps.clips.commitLoop({ roomId, member: { userId: claims.sub, name: claims.name }, seconds: parsed.data.seconds, idempotencyKey: key });
      res.status(created ? 202 : 200).json(clip);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // A still of the room's visuals (a PNG with its signed manifest inside), now or at a recent moment.
  router.get('/rooms/:roomId/visuals.png', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = await memberOf(req, roomId);
    const q = StillQuery.safeParse(req.query);
    if (!q.success) throw new HttpError('bad_request', `${q.error.issues[0]!.path.join('.') || 'query'}: ${q.error.issues[0]!.message}`);
    await within(req, claims, ['still.member', 'still.address']);
    try {
      const { png, downloadName } = await deps.clips.still({ roomId, member: { userId: claims.sub, name: claims.name }, width: q.data.width, height: q.data.height, ...(q.data.atMs !== undefined ? { atMs: q.data.atMs } : {}) });
      res.setHeader('content-type', 'image/png');
      res.setHeader('cache-control', 'no-store');
      res.setHeader('content-disposition', contentDisposition(downloadName));
      res.end(png);
    } catch (err) {
      throw httpErrorOf(err);
    }
  });

  // Status and fresh links: to members of the clip's room only (the id alone is in every copy of the file).
  router.get('/clips/:clipId', async (req, res) => {
    const { view } = await clipOf(req, 'read');
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
    const { download } = file;
    if (download.kind === 'redirect') {
      // S3_PUBLIC=1: the store (or a CDN in front of it) serves the bytes; its link ends when ours does.
      res.setHeader('cache-control', 'no-store');
      return res.redirect(302, download.url);
    }
    res.setHeader('cache-control', 'private, max-age=300');
    if (download.kind === 'object') {
      try {
        await sendBlob(req, res, download.blobs, download.key, { contentType: file.contentType, contentDisposition: contentDisposition(file.downloadName), cacheControl: 'private, max-age=300' });
      } catch (err) {
        // Once the body has begun, sendBlob has cut the response off (never a short file that looks whole).
        if (res.headersSent) return;
        throw httpErrorOf(
          err instanceof BlobNotFoundError ? new ClipError('not_found', 'no such download') : new ClipError('unavailable', 'the file cannot be reached just now; try the link again in a minute'),
        );
      }
      return;
    }
    res.setHeader('content-type', file.contentType);
    res.setHeader('content-disposition', contentDisposition(file.downloadName));
    await new Promise<void>((resolve, reject) => res.sendFile(download.path, (err) => (err ? reject(err) : resolve())));
  });

  router.get('/manifest-key', (_req, res) => {
    res.json({ algorithm: 'Ed25519', publicKey: deps.manifestPublicKey });
  });

  return router;
}

function idempotencyKey(req: Request, what: string): string {
  const key = req.headers['idempotency-key'];
  if (typeof key !== 'string' || !IDEMPOTENCY_KEY.test(key)) {
    throw new HttpError('bad_request', `${what} needs an "Idempotency-Key" header (1–128 visible characters), so that a retry never renders twice`);
  }
  return key;
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
