// Who is in a room, and with which role, as every node sees it. A token says who
// its holder is; what that person may do comes from here: the store's record of the
// member (shared by every node), never from the role written in an old token.
//
// Roles:
//   creator   the member who opened the room: everything, and nobody else can demote or remove them
//   co-host   a member a host made host: runs the session (rules, prompt approvals, roles and
//             removal of everyone but the creator, remixer and listener links), but cannot end
//             the room, make host links or tokens, or touch the creator
//   remixer   changes the mix and the arrangement within the room's rules
//   listener  listens, chats, reacts, prompts where the room allows
import type { Role } from '../../shared/roles.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { MemberRecord, Store } from '../store/store.ts';
import type { TokenClaims } from './tokens.ts';

export type Standing =
  | {
      ok: true;
      role: Role;
      /** Whether this member opened the room. */
      creator: boolean;
      /** Until when tokens are refreshed for the member (null: a room from before members were recorded). */
      accessUntilMs: number | null;
      name: string;
    }
  | { ok: false; status: 403 | 404 | 410; reason: 'removed' | 'unknown' | 'ended' | 'no_room'; message: string };

/** What a host may do, and to whom (null: allowed; else why not, in words). */
export type Verdict = string | null;

export class MemberDirectory {
  readonly #store: Store;
  readonly #manager: RoomManager;
  readonly #now: () => number;

  constructor(deps: { store: Store; manager: RoomManager; now?: () => number }) {
    this.#store = deps.store;
    this.#manager = deps.manager;
    this.#now = deps.now ?? Date.now;
  }

  /** Records a member before a token of theirs is handed out. */
  async admit(input: { roomId: string; userId: string; name: string; role: Role; inviteId: string | null; accessUntilMs: number }): Promise<void> {
    const createdAt = new Date(this.#now()).toISOString();
    await this.#store.addMember({
      roomId: input.roomId,
      userId: input.userId,
      name: input.name,
      role: input.role,
      inviteId: input.inviteId,
      accessUntil: new Date(input.accessUntilMs).toISOString(),
      createdAt,
    });
  }

  /** Where the holder of a (genuine) token stands in the room now. */
  async standing(roomId: string, claims: Pick<TokenClaims, 'sub' | 'role' | 'name'>): Promise<Standing> {
    const room = await this.#store.getRoomSummary(roomId);
    if (!room) return { ok: false, status: 404, reason: 'no_room', message: `no room "${roomId}"` };
    if (room.closedAt) return { ok: false, status: 410, reason: 'ended', message: 'this room has ended' };
    const member = await this.#store.getMember(roomId, claims.sub);
    if (member) return standingOf(member, room.creatorId);
    if (room.creatorId !== null) return { ok: false, status: 403, reason: 'unknown', message: 'this token is not of a member of this room; join through a link' };
    // A room opened before members were recorded: its tokens' roles as its document's rules changed
    // them, which is where that version kept them (so the room is loaded to read them). Its hosts
    // keep what they could do then.
    const room_ = await this.#manager.open(roomId);
    const role = room_.roleOf({ userId: claims.sub, baseRole: claims.role });
    return { ok: true, role, creator: role === 'host', accessUntilMs: null, name: claims.name };
  }

  member(roomId: string, userId: string): Promise<MemberRecord | null> {
    return this.#store.getMember(roomId, userId);
  }

  async creatorOf(roomId: string): Promise<string | null> {
    return (await this.#store.getRoomSummary(roomId))?.creatorId ?? null;
  }
}

function standingOf(m: MemberRecord, creatorId: string | null): Standing {
  if (m.removedAt) return { ok: false, status: 403, reason: 'removed', message: 'a host removed you from this room' };
  return { ok: true, role: m.role, creator: creatorId === m.userId, accessUntilMs: Date.parse(m.accessUntil), name: m.name };
}

/** Whether a host (`actor`) may give `target` the role `role`. */
export function mayChangeRole(actor: { userId: string; creator: boolean }, target: { userId: string; creator: boolean }, role: Role): Verdict {
  if (target.userId === actor.userId) return role === 'host' ? null : 'a host cannot take away their own host role (another host can)';
  if (target.creator) return 'nobody can change the role of the member who opened the room';
  return null;
}

/** Whether a host may remove `target` from the room. */
export function mayRemove(actor: { userId: string }, target: { userId: string; creator: boolean }): Verdict {
  if (target.userId === actor.userId) return 'a host cannot remove themselves (leave the room instead)';
  if (target.creator) return 'nobody can remove the member who opened the room';
  return null;
}

/** Whether a host may make tokens or links for `role`: host ones only the room's creator. */
export function mayMint(actor: { creator: boolean }, role: Role): Verdict {
  return role === 'host' && !actor.creator ? 'only the member who opened the room can make host links and tokens' : null;
}

/** Whether a host may end the room for everyone: only its creator. */
export function mayEnd(actor: { creator: boolean }): Verdict {
  return actor.creator ? null : 'only the member who opened the room can end it';
}
