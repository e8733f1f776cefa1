// Rooms over HTTP: open one, mint tokens and invites, exchange an invite for a
// member token, see a room's public state, change a member's role, end a room.
// Handlers are thin: parse, check the token, call one method.
import crypto from 'node:crypto';
import { Router, type Request } from 'express';
import { z } from 'zod';
import { ROLES, type Role } from '../../shared/roles.ts';
import { TokenError, type TokenClaims, type TokenSigner } from '../auth/tokens.ts';
import { ROOM_ID, RoomEndedError, RoomNotFoundError, type RoomManager } from '../rooms/room-manager.ts';
import type { Store } from '../store/store.ts';
import { RateLimiter } from '../util/rate-limiter.ts';
import { HttpError } from './http-error.ts';

export interface RoomRoutesDeps {
  store: Store;
  manager: RoomManager;
  signer: TokenSigner;
  publicUrl: () => string;
  /** The room's live stream as this node sees it (null when the server does not stream). */
  liveStatus?: (roomId: string) => { live: boolean; listeners: number; adapter: string } | null;
}

const DAY_SEC = 24 * 3600;
const displayName = z
  .string()
  .transform((s) => s.normalize('NFC').replace(/[\p{Cc}\p{Cf}]/gu, '').replace(/\s+/g, ' ').trim())
  .pipe(z.string().min(1, 'must not be empty').max(48, 'must be at most 48 characters'));

const CreateRoomBody = z
  .object({
    releaseId: z.string().min(1).max(63),
    hostName: displayName.default('Host'),
    /** The role of people who join through the room's join link. */
    joinRole: z.enum(['remixer', 'listener']).default('remixer'),
  })
  .strict();

const TokenBody = z
  .object({
    role: z.enum(ROLES),
    /** With a name: a member's own token. Without: an invite anyone with the link can exchange. */
    name: displayName.optional(),
    ttlSec: z.number().int().min(60).max(30 * DAY_SEC).default(DAY_SEC),
  })
  .strict();

const JoinBody = z.object({ invite: z.string().min(1).max(2048), name: displayName }).strict();
const RoleBody = z.object({ role: z.enum(ROLES) }).strict();

export function roomRoutes(deps: RoomRoutesDeps): Router {
  const router = Router();
  const creations = new RateLimiter({ capacity: 20, refillPerSec: 0.2 });

  router.post('/', async (req, res) => {
    const limited = creations.take(req.ip ?? 'unknown');
    if (!limited.ok) throw new HttpError('rate_limited', `too many rooms opened from here; try again in ${Math.ceil(limited.retryAfterMs / 1000)} s`);
    const body = parse(CreateRoomBody, req.body);
    const release = await deps.store.getRelease(body.releaseId);
    if (!release) throw new HttpError('not_found', `no release "${body.releaseId}"`);
    const roomId = await deps.manager.create(release);
    const hostToken = deps.signer.sign({ room: roomId, sub: newUserId(), name: body.hostName, role: 'host', ttlSec: 7 * DAY_SEC });
    const invite = deps.signer.sign({ kind: 'invite', room: roomId, sub: newUserId(), name: 'invite', role: body.joinRole, ttlSec: 7 * DAY_SEC });
    res.status(201).json({ roomId, hostToken, joinUrl: joinUrl(deps.publicUrl(), roomId, invite), joinRole: body.joinRole });
  });

  router.get('/:roomId', async (req, res) => {
    const roomId = roomIdOf(req);
    const record = await deps.store.getRoom(roomId);
    if (!record) throw new HttpError('not_found', `no room "${roomId}"`);
    const room = deps.manager.get(roomId);
    res.json({
      roomId,
      releaseId: record.releaseId,
      createdAt: record.createdAt,
      ended: record.closedAt !== null,
      memberCount: room?.peerCount ?? 0,
      // On this node: in scale-out each node mixes for its own listeners.
      ...liveOf(deps, roomId),
    });
  });

  router.post('/:roomId/tokens', async (req, res) => {
    const roomId = roomIdOf(req);
    await requireHost(req, roomId);
    const body = parse(TokenBody, req.body);
    if (body.name) {
      const token = deps.signer.sign({ room: roomId, sub: newUserId(), name: body.name, role: body.role, ttlSec: body.ttlSec });
      res.status(201).json({ token, role: body.role, expiresInSec: body.ttlSec });
    } else {
      const invite = deps.signer.sign({ kind: 'invite', room: roomId, sub: newUserId(), name: 'invite', role: body.role, ttlSec: body.ttlSec });
      res.status(201).json({ invite, role: body.role, expiresInSec: body.ttlSec, joinUrl: joinUrl(deps.publicUrl(), roomId, invite) });
    }
  });

  router.post('/:roomId/join', async (req, res) => {
    const roomId = roomIdOf(req);
    const body = parse(JoinBody, req.body);
    const invite = verify(deps.signer, body.invite, roomId, 'invite');
    const record = await deps.store.getRoom(roomId);
    if (!record) throw new HttpError('not_found', `no room "${roomId}"`);
    if (record.closedAt) throw new HttpError('forbidden', 'this room has ended');
    const userId = newUserId();
    const ttlSec = Math.max(60, invite.exp - Math.floor(Date.now() / 1000));
    const token = deps.signer.sign({ room: roomId, sub: userId, name: body.name, role: invite.role, ttlSec });
    res.status(201).json({ token, userId, role: invite.role, name: body.name });
  });

  router.put('/:roomId/members/:userId/role', async (req, res) => {
    const roomId = roomIdOf(req);
    const host = await requireHost(req, roomId);
    const { role } = parse(RoleBody, req.body);
    const userId = req.params.userId;
    if (typeof userId !== 'string' || !/^[\w-]{1,64}$/.test(userId)) throw new HttpError('bad_request', 'that is not a user id');
    if (userId === host.sub && role !== 'host') throw new HttpError('bad_request', 'a host cannot take away their own host role');
    const room = await openRoom(deps.manager, roomId);
    room.change((doc) => {
      const rules = doc.getMap('rules');
      const roles = { ...(rules.get('roles') as Record<string, Role>), [userId]: role };
      rules.set('roles', roles);
    });
    res.json({ userId, role });
  });

  router.delete('/:roomId', async (req, res) => {
    const roomId = roomIdOf(req);
    await requireHost(req, roomId);
    await deps.manager.end(roomId);
    res.json({ roomId, ended: true });
  });

  /** The caller's claims, when the bearer token is a host's of this room (as the room sees them now). */
  async function requireHost(req: Request, roomId: string): Promise<TokenClaims> {
    const header = req.headers.authorization;
    const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
    if (!token) throw new HttpError('unauthorized', 'this needs the host\'s token as "Authorization: Bearer <token>"');
    const claims = verify(deps.signer, token, roomId, 'member');
    const room = deps.manager.get(roomId);
    const role = room ? room.roleOf({ userId: claims.sub, tokenRole: claims.role }) : claims.role;
    if (role !== 'host') throw new HttpError('forbidden', 'only the host can do this');
    return claims;
  }

  return router;
}

function verify(signer: TokenSigner, token: string, roomId: string, kind: 'member' | 'invite'): TokenClaims {
  try {
    return signer.verify(token, roomId, kind);
  } catch (err) {
    if (err instanceof TokenError) throw new HttpError(err.reason === 'wrong_room' ? 'forbidden' : 'unauthorized', err.message);
    throw err;
  }
}

async function openRoom(manager: RoomManager, roomId: string) {
  try {
    return await manager.open(roomId);
  } catch (err) {
    if (err instanceof RoomNotFoundError) throw new HttpError('not_found', err.message);
    if (err instanceof RoomEndedError) throw new HttpError('forbidden', err.message);
    throw err;
  }
}

function roomIdOf(req: Request): string {
  const id = req.params['roomId'];
  if (typeof id !== 'string' || !ROOM_ID.test(id)) throw new HttpError('not_found', 'no such room');
  return id;
}

function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HttpError('invalid_body', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return r.data;
}

function newUserId(): string {
  return `u_${crypto.randomBytes(8).toString('base64url')}`;
}

function joinUrl(base: string, roomId: string, invite: string): string {
  // The invite rides in the fragment, so that it never reaches a server log.
  return `${base}/r/${roomId}#invite=${invite}`;
}

function liveOf(deps: RoomRoutesDeps, roomId: string): { live: boolean; listeners: number; streamAdapter: string | null } {
  const status = deps.liveStatus?.(roomId) ?? null;
  return { live: status?.live ?? false, listeners: status?.listeners ?? 0, streamAdapter: status?.adapter ?? null };
}
