// What the API's routers share to read a request: the room id of the path, the
// bearer token and its claims, the body against its schema, the room itself and
// the limits a request takes. Each refuses with the HttpError a client can act on
// (400, 401, 403, 404, 429) and never lets a library's error through as a 500.
import type { Request } from 'express';
import type { z } from 'zod';
import type { RateLimitName } from '../../shared/limits.ts';
import type { MemberDirectory, Standing } from '../auth/members.ts';
import { TokenError, type TokenClaims, type TokenSigner } from '../auth/tokens.ts';
import type { Limits, LimitSubject } from '../limits/limits.ts';
import type { Room } from '../rooms/room.ts';
import { ROOM_ID, RoomEndedError, RoomNotFoundError, type RoomManager } from '../rooms/room-manager.ts';
import { HttpError } from './http-error.ts';

/** Takes the limits or refuses with 429, naming the limit and when to try again. */
export async function take(limits: Limits, names: RateLimitName[], subject: LimitSubject): Promise<void> {
  const v = await limits.take(names, subject);
  if (!v.ok) throw HttpError.limited(v.limit, v.retryAfterMs);
}

/** The token of "Authorization: Bearer <token>"; 401 naming what is needed when there is none. */
export function bearer(req: Request, what = 'your member token'): string {
  const header = req.headers.authorization;
  const token = header?.startsWith('Bearer ') ? header.slice(7).trim() : null;
  if (!token) throw new HttpError('unauthorized', `this needs ${what} as "Authorization: Bearer <token>"`);
  return token;
}

/** A token's claims for this room: 403 for another room's, 401 for a forged, malformed or (unless allowed) expired one. */
export function verify(signer: TokenSigner, token: string, roomId: string, kind: 'member' | 'invite' = 'member', allowExpired = false): TokenClaims {
  try {
    return signer.verify(token, roomId, kind, { allowExpired });
  } catch (err) {
    if (err instanceof TokenError) throw new HttpError(err.reason === 'wrong_room' ? 'forbidden' : 'unauthorized', err.message);
    throw err;
  }
}

/**
 * The caller as the store knows them now (never as their token says): the token's claims and
 * their standing; 404 for no such room, 403 for a removed or unknown member or an ended room.
 */
export async function memberOf(
  members: MemberDirectory,
  signer: TokenSigner,
  req: Request,
  roomId: string,
  what?: string,
): Promise<{ claims: TokenClaims; standing: Extract<Standing, { ok: true }> }> {
  const claims = verify(signer, bearer(req, what), roomId);
  const standing = await members.standing(roomId, claims);
  if (!standing.ok) throw new HttpError(standing.status === 404 ? 'not_found' : 'forbidden', standing.message);
  return { claims, standing };
}

/** The room, loaded on this node if it is not: 404 for no such room, 403 for one that ended. */
export async function openRoom(manager: RoomManager, roomId: string): Promise<Room> {
  try {
    return await manager.open(roomId);
  } catch (err) {
    if (err instanceof RoomNotFoundError) throw new HttpError('not_found', err.message);
    if (err instanceof RoomEndedError) throw new HttpError('forbidden', err.message);
    throw err;
  }
}

/** The path's room id; 404 for one that cannot be a room's. */
export function roomIdOf(req: Request): string {
  const id = req.params['roomId'];
  if (typeof id !== 'string' || !ROOM_ID.test(id)) throw new HttpError('not_found', 'no such room');
  return id;
}

/** The body as the schema reads it; 400 naming the first field that is wrong. */
export function parse<T extends z.ZodType>(schema: T, body: unknown): z.infer<T> {
  const r = schema.safeParse(body ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    throw new HttpError('invalid_body', `${issue.path.join('.') || 'body'}: ${issue.message}`);
  }
  return r.data;
}
