// Takes over HTTP: save the room's mix, arrangement and visuals under a name, list a
// room's takes, return the room to one. Who may: a host, and remixers when the host's
// rule takesByRemixers allows it; the role is the store's record of the member (the
// member directory), never the token's. Listing is for every member.
import crypto from 'node:crypto';
import { Router, type Request } from 'express';
import { LIMITS } from '../../shared/limits.ts';
import type { Role } from '../../shared/roles.ts';
import { SaveTakeBody, TAKE_ID, takeContentOf, type TakeContent, type TakeReturn, type TakeView } from '../../shared/takes.ts';
import type { MemberDirectory } from '../auth/members.ts';
import type { TokenClaims, TokenSigner } from '../auth/tokens.ts';
import type { Limits } from '../limits/limits.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { Room } from '../rooms/room.ts';
import type { Store, TakeRecord } from '../store/store.ts';
import { HttpError } from './http-error.ts';
import { memberOf, openRoom, parse, roomIdOf, take } from './route-helpers.ts';

export interface TakeRoutesDeps {
  store: Store;
  manager: RoomManager;
  members: MemberDirectory;
  signer: TokenSigner;
  limits: Limits;
}

export function takeRoutes(deps: TakeRoutesDeps): Router {
  const router = Router();
  const { store, limits } = deps;

  router.get('/:roomId/takes', async (req, res) => {
    const roomId = roomIdOf(req);
    const me = await caller(req, roomId);
    await take(limits, ['take.read.member', 'take.read.address'], { member: me.claims.sub, address: limits.addressOf(req) });
    const takes = await store.listTakes(roomId);
    res.json({ takes: takes.map(viewOf), max: LIMITS['take.room'].max });
  });

  router.post('/:roomId/takes', async (req, res) => {
    const roomId = roomIdOf(req);
    const me = await caller(req, roomId);
    const { name } = parse(SaveTakeBody, req.body);
    const room = await openRoom(deps.manager, roomId);
    mayUseTakes(room, me.role);
    await take(limits, ['take.member'], { member: me.claims.sub });
    const record: TakeRecord = {
      id: `tk_${crypto.randomBytes(9).toString('base64url')}`,
      roomId,
      name,
      content: takeContentOf(room.state()),
      createdBy: me.claims.sub,
      savedBy: me.name,
      createdAt: new Date(deps.signer.now()).toISOString(),
    };
    if (!(await store.createTake(record, LIMITS['take.room'].max))) {
      throw new HttpError('conflict', `this room keeps at most ${LIMITS['take.room'].max} takes, and it has that many already (limit take.room)`, { limit: 'take.room' });
    }
    room.log.info({ takeId: record.id, userId: me.claims.sub }, 'take saved');
    if (!room.closing) room.takesChanged();
    res.status(201).json(viewOf(record));
  });

  router.post('/:roomId/takes/:takeId/return', async (req, res) => {
    const roomId = roomIdOf(req);
    const takeId = req.params['takeId'];
    const me = await caller(req, roomId);
    if (typeof takeId !== 'string' || !TAKE_ID.test(takeId)) throw new HttpError('not_found', 'there is no such take in this room');
    const room = await openRoom(deps.manager, roomId);
    mayUseTakes(room, me.role);
    await take(limits, ['take.member'], { member: me.claims.sub });
    const record = await store.getTake(roomId, takeId);
    if (!record) throw new HttpError('not_found', 'there is no such take in this room');
    if (room.closing) throw new HttpError('not_ready', 'the room is closing; try again in a moment', { status: 503 });
    const adjusted = room.returnToTake(record.content as TakeContent, me.role, me.claims.sub);
    room.log.info({ takeId, userId: me.claims.sub, adjusted: adjusted.length }, 'returned to a take');
    const answer: TakeReturn = { takeId, name: record.name, adjusted };
    res.json(answer);
  });

  /** The member asking, as the store knows them now. */
  async function caller(req: Request, roomId: string): Promise<{ claims: TokenClaims; role: Role; name: string }> {
    const { claims, standing } = await memberOf(deps.members, deps.signer, req, roomId);
    return { claims, role: standing.role, name: standing.name };
  }

  return router;
}

/** Hosts always; remixers when the room's rule lets them; listeners never. */
function mayUseTakes(room: Room, role: Role): void {
  if (role === 'host') return;
  if (role === 'remixer' && room.rules.takesByRemixers) return;
  throw new HttpError('forbidden', role === 'remixer' ? 'only the host can save takes and return to them in this room' : 'listeners cannot save takes or return the room to one');
}

function viewOf(t: TakeRecord): TakeView {
  return { takeId: t.id, name: t.name, savedBy: t.savedBy, createdAt: t.createdAt };
}

