// A member's own things in a room: every clip, loop and still they made and every
// order they placed, with fresh download links. GET /api/rooms/:roomId/members/me/things.
//
// Who may read: the holder of a genuine member token of the room whom the store
// knows and has not removed. While the room is open the token must be current (the
// web app refreshes it). Once the room has ended no token is refreshed any more, so
// an expired one is still taken here, for up to ENDED_ROOM_READ_GRACE_MS after its
// expiry: for this read only. Every route that writes checks the token's expiry and
// the member's standing (an ended room refuses them), so such a token writes nothing.
import { Router } from 'express';
import type { Role } from '../../shared/roles.ts';
import type { TokenSigner } from '../auth/tokens.ts';
import type { ClipService } from '../clips/clip-service.ts';
import type { Limits } from '../limits/limits.ts';
import type { OrderService } from '../orders/order-service.ts';
import type { Store } from '../store/store.ts';
import { HttpError } from './http-error.ts';
import { bearer, roomIdOf, verify } from './route-helpers.ts';

export interface MemberThingsDeps {
  store: Store;
  signer: TokenSigner;
  limits: Limits;
  clips: ClipService;
  orders: OrderService;
}

/** How long after its expiry a member token of an ended room still reads its holder's things. */
export const ENDED_ROOM_READ_GRACE_MS = 30 * 24 * 3600 * 1000;
/** Most clips (and, apart, orders) listed: far more than the limits let one member make. */
const MAX_LISTED = 200;

export function memberThingsRoutes(deps: MemberThingsDeps): Router {
  const router = Router();

  router.get('/:roomId/members/me/things', async (req, res) => {
    const roomId = roomIdOf(req);
    // Expired ones too: whether this one may still read is decided below, by the room's state.
    const claims = verify(deps.signer, bearer(req), roomId, 'member', true);
    const room = await deps.store.getRoomSummary(roomId);
    if (!room) throw new HttpError('not_found', `no room "${roomId}"`);
    const now = deps.signer.now();
    const ended = room.closedAt !== null;
    if (claims.exp * 1000 <= now) {
      if (!ended) throw new HttpError('unauthorized', 'the token has expired; refresh it (POST /api/rooms/:roomId/members/me/token) and ask again');
      if (claims.exp * 1000 + ENDED_ROOM_READ_GRACE_MS <= now) throw new HttpError('unauthorized', 'the token has expired too long ago to read this room’s things');
    }
    // Who the member is comes from the store, never from the token's claims.
    const member = await deps.store.getMember(roomId, claims.sub);
    if (!member) throw new HttpError('forbidden', 'this token is not of a member of this room');
    if (member.removedAt) throw new HttpError('forbidden', 'a host removed you from this room');
    const v = await deps.limits.take(['things.read.member', 'things.read.address'], { member: claims.sub, address: deps.limits.addressOf(req) });
    if (!v.ok) throw HttpError.limited(v.limit, v.retryAfterMs);

    const [renders, orders] = await Promise.all([deps.store.listMemberRenders(roomId, claims.sub, MAX_LISTED), deps.store.listMemberOrders(roomId, claims.sub, MAX_LISTED)]);
    const clips = [];
    for (const r of renders) {
      const view = await deps.clips.renderView(r.id);
      if (view) clips.push({ ...view, kind: r.kind, ...(r.kind === 'still' ? { atMs: (r.request as { atMs?: number }).atMs ?? null } : {}) });
    }
    const orderViews = [];
    for (const o of orders) {
      const view = await deps.orders.view(o.id);
      if (view) orderViews.push(view);
    }
    res.setHeader('cache-control', 'no-store');
    res.json({ roomId, ended, member: { userId: member.userId, name: member.name, role: member.role as Role }, clips, orders: orderViews });
  });

  return router;
}

