// Rooms over HTTP: open one, mint tokens and invites, exchange an invite for a
// member token, refresh a member's token, see a room's public state, change a
// member's role, remove a member, revoke an invite, lock the room to new joins,
// clear a prompt from the history, end a room. Handlers are thin:
// parse, check who is asking (the store's record of them, never their token's
// role), take the limits, call one method.
import crypto from 'node:crypto';
import { Router, type Request } from 'express';
import { z } from 'zod';
import type { InviteProblem } from '../../shared/api-types.ts';
import { ROLES, type Role } from '../../shared/roles.ts';
import { mayChangeRole, mayEnd, mayMint, mayRemove, type MemberDirectory, type Standing } from '../auth/members.ts';
import { TokenError, type TokenClaims, type TokenSigner } from '../auth/tokens.ts';
import type { Limits } from '../limits/limits.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { Store } from '../store/store.ts';
import { HttpError } from './http-error.ts';
import { bearer, memberOf, openRoom, parse, roomIdOf, take, verify } from './route-helpers.ts';

export interface RoomRoutesDeps {
  store: Store;
  manager: RoomManager;
  members: MemberDirectory;
  signer: TokenSigner;
  limits: Limits;
  publicUrl: () => string;
  /** Longest life of a member token (it is refreshed within the member's access). */
  memberTokenTtlSec: number;
  /** The room's live stream as this node sees it (null when the server does not stream). */
  liveStatus?: (roomId: string) => { live: boolean; listeners: number; adapter: string } | null;
}

const DAY_SEC = 24 * 3600;
/** How long the creator and the room's own join link last. */
const ROOM_LINK_SEC = 7 * DAY_SEC;
/** A member's user id, as newUserId() makes them (and any earlier, plainer form). */
export const USER_ID = /^[A-Za-z0-9_-]{1,64}$/;
const INVITE_ID = /^(inv|u)_[A-Za-z0-9_-]{1,60}$/;
/** Keys that reach Object.prototype through a plain lookup: never a user id. */
const PROTO_KEYS = new Set(['__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf']);

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
    /** How many people the room's join link lets in (none: only its rate limits bound it). */
    joinMaxUses: z.number().int().min(1).max(100_000).optional(),
  })
  .strict();

const TokenBody = z
  .object({
    role: z.enum(ROLES),
    /** With a name: a member's own token. Without: an invite anyone with the link can exchange. */
    name: displayName.optional(),
    /** How long the member (or the link) may be used. */
    ttlSec: z.number().int().min(60).max(30 * DAY_SEC).default(DAY_SEC),
    /** Invites only: how many people the link lets in. */
    maxUses: z.number().int().min(1).max(100_000).optional(),
  })
  .strict()
  .refine((b) => b.maxUses === undefined || b.name === undefined, { message: 'maxUses is for links (without a name)', path: ['maxUses'] });

const JoinBody = z.object({ invite: z.string().min(1).max(2048), name: displayName }).strict();
const RoleBody = z.object({ role: z.enum(ROLES) }).strict();
const InviteCheckBody = z.object({ invite: z.string().min(1).max(2048) }).strict();
const LockBody = z.object({ locked: z.boolean() }).strict();
/** Removing a member may also withdraw the link they joined with (else anyone holding it, them too, can still join). */
const RemoveBody = z.object({ withdrawLink: z.boolean().default(false) }).strict();
/** A prompt history entry's key, as Room.applyPrompt makes them. */
const HISTORY_ENTRY = /^\d{15}-\d{4}$/;
const LOCKED_MESSAGE = 'the host has locked this room to new people';

export function roomRoutes(deps: RoomRoutesDeps): Router {
  const router = Router();
  const { store, members, signer, limits } = deps;

  router.post('/', async (req, res) => {
    await take(limits, ['room.create.address'], { address: limits.addressOf(req) });
    const body = parse(CreateRoomBody, req.body);
    const release = await store.getRelease(body.releaseId);
    if (!release) throw new HttpError('not_found', `no release "${body.releaseId}"`);
    const userId = newUserId();
    const now = signer.now();
    const roomId = await deps.manager.create(release, userId);
    await members.admit({ roomId, userId, name: body.hostName, role: 'host', inviteId: null, accessUntilMs: now + ROOM_LINK_SEC * 1000 });
    const hostToken = signer.sign({ room: roomId, sub: userId, name: body.hostName, role: 'host', ttlSec: Math.min(ROOM_LINK_SEC, deps.memberTokenTtlSec) });
    const invite = await mintInvite(roomId, body.joinRole, ROOM_LINK_SEC, body.joinMaxUses ?? null, userId);
    res.status(201).json({ roomId, userId, hostToken, joinUrl: joinUrl(deps.publicUrl(), roomId, invite), joinRole: body.joinRole, joinMaxUses: body.joinMaxUses ?? null });
  });

  router.get('/:roomId', async (req, res) => {
    const roomId = roomIdOf(req);
    const record = await store.getRoomSummary(roomId);
    if (!record) throw new HttpError('not_found', `no room "${roomId}"`);
    const room = deps.manager.get(roomId);
    res.json({
      roomId,
      releaseId: record.releaseId,
      createdAt: record.createdAt,
      ended: record.closedAt !== null,
      memberCount: room?.peerCount ?? 0,
      // Broadcast mode (its playlist's address, with the listen key, at GET /api/rooms/:roomId/broadcast for members).
      broadcast: room?.rules.broadcast ?? false,
      // On this node: in scale-out each node mixes for its own listeners.
      ...liveOf(deps, roomId),
    });
  });

  router.post('/:roomId/tokens', async (req, res) => {
    const roomId = roomIdOf(req);
    const host = await requireHost(req, roomId);
    const body = parse(TokenBody, req.body);
    const refused = mayMint(host.standing, body.role);
    if (refused) throw new HttpError('forbidden', refused);
    await take(limits, ['token.mint.member'], { member: host.claims.sub });
    if (body.name) {
      const userId = newUserId();
      await members.admit({ roomId, userId, name: body.name, role: body.role, inviteId: null, accessUntilMs: signer.now() + body.ttlSec * 1000 });
      const ttlSec = Math.min(body.ttlSec, deps.memberTokenTtlSec);
      const token = signer.sign({ room: roomId, sub: userId, name: body.name, role: body.role, ttlSec });
      res.status(201).json({ token, userId, role: body.role, expiresInSec: ttlSec, accessSec: body.ttlSec });
    } else {
      const invite = await mintInvite(roomId, body.role, body.ttlSec, body.maxUses ?? null, host.claims.sub);
      res.status(201).json({ invite, role: body.role, expiresInSec: body.ttlSec, maxUses: body.maxUses ?? null, joinUrl: joinUrl(deps.publicUrl(), roomId, invite) });
    }
  });

  router.post('/:roomId/join', async (req, res) => {
    const roomId = roomIdOf(req);
    const body = parse(JoinBody, req.body);
    const invite = verify(signer, body.invite, roomId, 'invite');
    // Per address and per link, before anything is counted: a link passed around cannot mint people without end.
    await take(limits, ['invite.exchange.address', 'invite.exchange.invite'], { address: limits.addressOf(req), invite: invite.sub });
    const room = await store.getRoomSummary(roomId);
    if (!room) throw new HttpError('not_found', `no room "${roomId}"`);
    if (room.closedAt) throw new HttpError('forbidden', 'this room has ended');
    // Before the link is used: a locked room counts no use against it.
    if (room.lockedAt) throw new HttpError('forbidden', LOCKED_MESSAGE);
    let use = await store.useInvite(invite.sub);
    if (use === 'unknown' && room.creatorId === null) {
      // A link from before links were recorded: recorded now, with no limit on its uses.
      await store.createInvite({ id: invite.sub, roomId, role: invite.role, maxUses: null, createdBy: null, createdAt: new Date(invite.iat * 1000).toISOString(), expiresAt: new Date(invite.exp * 1000).toISOString() });
      use = await store.useInvite(invite.sub);
    }
    if (use === 'exhausted') throw new HttpError('forbidden', 'this link has been used as many times as the host allowed; ask the host for a new one');
    if (use === 'revoked') throw new HttpError('forbidden', 'the host has withdrawn this link; ask the host for a new one');
    if (use !== 'ok') throw new HttpError('forbidden', 'this link is not one of this room’s');
    const userId = newUserId();
    const accessUntilMs = invite.exp * 1000;
    try {
      await members.admit({ roomId, userId, name: body.name, role: invite.role, inviteId: invite.sub, accessUntilMs });
    } catch (err) {
      await store.unuseInvite(invite.sub);
      throw err;
    }
    const ttlSec = tokenTtl(accessUntilMs, signer.now(), deps.memberTokenTtlSec);
    const token = signer.sign({ room: roomId, sub: userId, name: body.name, role: invite.role, ttlSec });
    res.status(201).json({ token, userId, role: invite.role, name: body.name, expiresInSec: ttlSec });
  });

  /**
   * Whether a join link would let someone in, before they type a name: the same
   * checks as joining, without using the link. A link that would not is answered
   * 200 with the reason (a code the web app words for a fan); an unknown room 404.
   */
  router.post('/:roomId/invites/check', async (req, res) => {
    const roomId = roomIdOf(req);
    const body = parse(InviteCheckBody, req.body);
    await take(limits, ['invite.check.address'], { address: limits.addressOf(req) });
    const room = await store.getRoomSummary(roomId);
    if (!room) throw new HttpError('not_found', `no room "${roomId}"`);
    const no = (reason: InviteProblem) => void res.json({ ok: false, reason });
    if (room.closedAt) return no('room_ended');
    let claims: TokenClaims;
    try {
      claims = signer.verify(body.invite, roomId, 'invite');
    } catch (err) {
      if (!(err instanceof TokenError)) throw err;
      return no(err.reason === 'expired' ? 'expired' : err.reason === 'wrong_room' ? 'wrong_room' : 'not_a_link');
    }
    const record = await store.getInvite(claims.sub);
    if (record && record.roomId !== roomId) return no('wrong_room');
    if (record?.revokedAt) return no('revoked');
    if (record && record.maxUses !== null && record.uses >= record.maxUses) return no('used_up');
    // A link from before links were recorded is let in by joining (room without a creator); any other unknown one is not.
    if (!record && room.creatorId !== null) return no('not_a_link');
    if (room.lockedAt) return no('locked');
    res.json({ ok: true, role: claims.role, expiresAt: new Date(claims.exp * 1000).toISOString() });
  });

  /** A fresh token for the holder of one (expired or not), while the store still lets them in. */
  router.post('/:roomId/members/me/token', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = verify(signer, bearer(req, 'your member token'), roomId, 'member', true);
    await take(limits, ['token.refresh.member'], { member: claims.sub });
    const standing = await members.standing(roomId, claims);
    if (!standing.ok) throw new HttpError(standing.status === 404 ? 'not_found' : 'forbidden', standing.message);
    const now = signer.now();
    const until = standing.accessUntilMs ?? claims.exp * 1000;
    if (until <= now) throw new HttpError('forbidden', 'your access to this room has ended; ask the host for a new link');
    const ttlSec = tokenTtl(until, now, deps.memberTokenTtlSec);
    const token = signer.sign({ room: roomId, sub: claims.sub, name: standing.name, role: standing.role, ttlSec });
    res.status(201).json({ token, userId: claims.sub, role: standing.role, name: standing.name, expiresInSec: ttlSec, creator: standing.creator });
  });

  router.put('/:roomId/members/:userId/role', async (req, res) => {
    const roomId = roomIdOf(req);
    const userId = userIdOf(req);
    const host = await requireHost(req, roomId);
    const { role } = parse(RoleBody, req.body);
    await take(limits, ['role.change.member'], { member: host.claims.sub });
    const target = await members.member(roomId, userId);
    if (!target || target.removedAt) throw new HttpError('not_found', 'there is no such member in this room');
    const creatorId = await members.creatorOf(roomId);
    const refused = mayChangeRole({ userId: host.claims.sub, creator: host.standing.creator }, { userId, creator: userId === creatorId }, role);
    if (refused) throw new HttpError('forbidden', refused);
    if (!(await store.setMemberRole(roomId, userId, role, host.claims.sub))) throw new HttpError('not_found', 'there is no such member in this room');
    // The store holds; the rules mirror it to everyone connected, on every node serving the room.
    const room = await openRoom(deps.manager, roomId);
    room.mirrorMember(userId, { role });
    res.json({ userId, role });
  });

  router.delete('/:roomId/members/:userId', async (req, res) => {
    const roomId = roomIdOf(req);
    const userId = userIdOf(req);
    const host = await requireHost(req, roomId);
    const { withdrawLink } = parse(RemoveBody, req.body);
    await take(limits, ['role.change.member'], { member: host.claims.sub });
    const target = await members.member(roomId, userId);
    if (!target) throw new HttpError('not_found', 'there is no such member in this room');
    const creatorId = await members.creatorOf(roomId);
    const refused = mayRemove({ userId: host.claims.sub }, { userId, creator: userId === creatorId });
    if (refused) throw new HttpError('forbidden', refused);
    await store.removeMember(roomId, userId, host.claims.sub);
    // Into the room at once (its connections end on every node), before anything else can fail.
    const room = await openRoom(deps.manager, roomId);
    room.mirrorMember(userId, { removed: true });
    // The link they came with (null: a token a host made for them; there is no link to withdraw).
    const linkWithdrawn = withdrawLink && target.inviteId !== null ? await store.revokeInvite(roomId, target.inviteId) : false;
    res.json({ userId, removed: true, linkWithdrawn });
  });

  /** Locks the room to new people (no link lets anyone in; members already in stay), or unlocks it. */
  router.put('/:roomId/lock', async (req, res) => {
    const roomId = roomIdOf(req);
    const host = await requireHost(req, roomId);
    const { locked } = parse(LockBody, req.body);
    await take(limits, ['room.moderate.member'], { member: host.claims.sub });
    if (!(await store.setRoomLocked(roomId, locked))) throw new HttpError('not_found', `no room "${roomId}"`);
    // The store holds (the join route reads it on any node); the rules show it to everyone connected.
    const room = await openRoom(deps.manager, roomId);
    room.mirrorLock(locked);
    res.json({ roomId, locked });
  });

  /** Takes one prompt out of the history, for everyone (the visuals go back to the release's own look if it is the one they show). */
  router.delete('/:roomId/prompts/:entryId', async (req, res) => {
    const roomId = roomIdOf(req);
    const entryId = req.params['entryId'];
    const host = await requireHost(req, roomId);
    if (typeof entryId !== 'string' || !HISTORY_ENTRY.test(entryId)) throw new HttpError('not_found', 'there is no such prompt in the history');
    await take(limits, ['room.moderate.member'], { member: host.claims.sub });
    const room = await openRoom(deps.manager, roomId);
    const done = room.clearPrompt(entryId);
    if (!done.cleared) throw new HttpError('not_found', 'there is no such prompt in the history');
    // Nor may a take bring it back.
    if (typeof done.text === 'string' && typeof done.atMs === 'number') await store.clearPromptFromTakes(roomId, { text: done.text, atMs: done.atMs });
    res.json({ entryId, cleared: true, visualsReset: done.wasActive });
  });

  router.delete('/:roomId/invites/:inviteId', async (req, res) => {
    const roomId = roomIdOf(req);
    const inviteId = req.params['inviteId'];
    if (typeof inviteId !== 'string' || !INVITE_ID.test(inviteId)) throw new HttpError('not_found', 'there is no such link in this room');
    await requireHost(req, roomId);
    if (!(await store.revokeInvite(roomId, inviteId))) throw new HttpError('not_found', 'there is no such link in this room');
    res.json({ inviteId, revoked: true });
  });

  router.delete('/:roomId', async (req, res) => {
    const roomId = roomIdOf(req);
    const host = await requireHost(req, roomId);
    const refused = mayEnd(host.standing);
    if (refused) throw new HttpError('forbidden', refused);
    await deps.manager.end(roomId);
    res.json({ roomId, ended: true });
  });

  /** The caller, when the bearer token is a member's of this room whom the store knows as a host now. */
  async function requireHost(req: Request, roomId: string): Promise<{ claims: TokenClaims; standing: Extract<Standing, { ok: true }> }> {
    const { claims, standing } = await memberOf(members, signer, req, roomId, "the host's token");
    if (standing.role !== 'host') throw new HttpError('forbidden', 'only a host can do this');
    return { claims, standing };
  }

  async function mintInvite(roomId: string, role: Role, ttlSec: number, maxUses: number | null, createdBy: string): Promise<string> {
    const id = `inv_${crypto.randomBytes(9).toString('base64url')}`;
    const now = signer.now();
    await store.createInvite({ id, roomId, role, maxUses, createdBy, createdAt: new Date(now).toISOString(), expiresAt: new Date(now + ttlSec * 1000).toISOString() });
    return signer.sign({ kind: 'invite', room: roomId, sub: id, name: 'invite', role, ttlSec });
  }

  return router;
}

/** A member token lives until the member's access ends, but not longer than `maxSec` (it is refreshed). */
function tokenTtl(accessUntilMs: number, nowMs: number, maxSec: number): number {
  return Math.max(1, Math.min(maxSec, Math.floor((accessUntilMs - nowMs) / 1000)));
}

function userIdOf(req: Request): string {
  const id = req.params['userId'];
  if (typeof id !== 'string' || !USER_ID.test(id) || PROTO_KEYS.has(id)) throw new HttpError('not_found', 'there is no such member in this room');
  return id;
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
