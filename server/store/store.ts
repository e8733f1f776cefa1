// The embedded store's interface. The SQLite implementation is the default; another
// (a shared database for several nodes) can replace it by passing the same contract
// suite (test/server/store.contract.ts).
import type { ReleaseManifest } from '../../shared/release-manifest.ts';
import type { Role } from '../../shared/roles.ts';

export interface StemInfo {
  id: string;
  title: string;
  /** Peak and RMS of the decoded 48 kHz stereo stem, linear. */
  peak: number;
  rms: number;
}

export interface ArtworkInfo {
  id: string;
  title: string;
  kind: 'cover' | 'graphic';
  tags: string[];
  /** File name under the release's artwork folder. */
  fileName: string;
  width: number;
  height: number;
  mimeType: 'image/png' | 'image/jpeg';
  /** Assets without the artist's consent are kept on record but never used. */
  consent: boolean;
  /** Dominant colours ('#rrggbb', most of the picture first), from the visual pack; empty for an asset not used. */
  palette?: string[];
}

export interface ReleaseRecord {
  id: string;
  title: string;
  artist: string;
  /** Frames of every stem at 48 kHz. */
  frames: number;
  durationSec: number;
  /** The manifest as ingested, defaults applied. */
  manifest: ReleaseManifest;
  stems: StemInfo[];
  artwork: ArtworkInfo[];
  ingestedAt: string;
  /** Things ingest changed on the way in, e.g. "stems/bass.flac: 44100 Hz, resampled to 48000 Hz". */
  notes: string[];
}

export interface ReleaseSummary {
  id: string;
  title: string;
  artist: string;
  durationSec: number;
  ingestedAt: string;
}

export interface RoomRecord {
  id: string;
  releaseId: string;
  createdAt: string;
  updatedAt: string;
  /** Set when the host ended the room; an ended room cannot be joined. */
  closedAt: string | null;
  /** The room's Yjs document as one update; null before the first save. */
  doc: Uint8Array | null;
  /** The room's recent changes (a SavedTimeline as JSON), saved with the document; null before. */
  timeline: string | null;
  /** The member who opened the room (null for rooms opened before this was recorded). */
  creatorId: string | null;
  /** Set while a host has locked the room to new people: no link lets anyone join. */
  lockedAt: string | null;
}

export type RoomSummary = Omit<RoomRecord, 'doc' | 'timeline'>;

/** A member of a room, as every node sees it: the role here counts, not the one in anyone's token. */
export interface MemberRecord {
  roomId: string;
  userId: string;
  name: string;
  role: Role;
  /** Who last changed the role (null: as given when the member joined). */
  roleSetBy: string | null;
  inviteId: string | null;
  /** Tokens are refreshed until then (ISO). */
  accessUntil: string;
  /** Set when a host removed the member: none of their tokens works again. */
  removedAt: string | null;
  createdAt: string;
  updatedAt: string;
}

/** A named snapshot of a room's mix, arrangement and visuals (shared/takes.ts). */
export interface TakeRecord {
  id: string;
  roomId: string;
  name: string;
  /** The TakeContent, as saved. */
  content: unknown;
  createdBy: string;
  /** The member's display name when they saved it. */
  savedBy: string;
  createdAt: string;
}

export interface InviteRecord {
  id: string;
  roomId: string;
  role: Role;
  /** Null: no limit but the rate limits. */
  maxUses: number | null;
  uses: number;
  createdBy: string | null;
  revokedAt: string | null;
  createdAt: string;
  expiresAt: string;
}

/** What using an invite did: counted, or why not. */
export type InviteUse = 'ok' | 'exhausted' | 'revoked' | 'unknown';

export type RenderStatus = 'queued' | 'running' | 'done' | 'failed';

export interface RenderRecord {
  /** 16 hex digits: the 64 bits the watermark carries. */
  id: string;
  roomId: string;
  /** A clip, a bought full-length version, a still or a loop of the visuals. */
  kind: 'clip' | 'full' | 'still' | 'loop';
  status: RenderStatus;
  /** What to render (the timeline window, who asked, …), as JSON. */
  request: unknown;
  /** What came out (files, manifest, error), as JSON; null until it ends. */
  result: unknown;
  createdAt: string;
  updatedAt: string;
}

export type OrderStatus = 'payment_pending' | 'paid' | 'declined' | 'fulfilled' | 'failed' | 'refunded';

export interface OrderRecord {
  id: string;
  status: OrderStatus;
  amountCents: number;
  currency: string;
  /** The payment provider's id of the charge; null until the provider has one. */
  paymentId: string | null;
  /** The full-length render, once entitled. */
  renderId: string | null;
  /** What was bought and by whom (clip, room, buyer), and what happened (decline reason), as JSON. */
  request: unknown;
  createdAt: string;
  updatedAt: string;
}

export interface EntitlementRecord {
  id: string;
  orderId: string;
  renderId: string | null;
  createdAt: string;
  /** Set when the payment was refunded: the entitlement no longer unlocks anything. */
  revokedAt: string | null;
}

/** A chat message as the room sent it (shared/socket-events.ts ChatMessage). */
export interface StoredChatMessage {
  id: string;
  userId: string;
  name: string;
  role: Role;
  text: string;
  atMs: number;
}

export interface Store {
  readonly kind: string;
  /** Highest migration applied. */
  schemaVersion(): Promise<number>;

  listReleases(): Promise<ReleaseSummary[]>;
  getRelease(id: string): Promise<ReleaseRecord | null>;
  /**
   * Records a release atomically together with its files: `files.place()` moves
   * the staged files into place (renames, so it is synchronous) inside the same
   * transaction; if it throws, the record is not written, and if the commit fails
   * after it, `files.undo()` puts them back. Refuses an existing id
   * (ReleaseExistsError) unless `replace` is set.
   */
  putRelease(record: ReleaseRecord, files: FilePlacement, options?: { replace?: boolean }): Promise<void>;
  deleteRelease(id: string): Promise<boolean>;

  createRoom(room: Omit<RoomRecord, 'updatedAt' | 'closedAt' | 'timeline' | 'creatorId' | 'lockedAt'> & { creatorId?: string | null }): Promise<void>;
  getRoom(id: string): Promise<RoomRecord | null>;
  /** The room without its document and timeline (what access checks read). */
  getRoomSummary(id: string): Promise<RoomSummary | null>;
  /**
   * Stores the room's document, and its timeline when given (in the same write); refuses
   * (RoomNotFoundError) a room that was never created. With `fence` (the token takeRoomFence
   * gave the node that holds the room's lease), refuses (StaleFenceError) a save whose token is
   * older than one taken since: the store itself keeps a paused or cut-off former holder from
   * writing over its successor's saves. Without it (one process, no lease), saves as asked.
   */
  saveRoomDoc(id: string, doc: Uint8Array, timeline?: string, fence?: number): Promise<void>;
  /**
   * Hands out the room's next fencing token (1, 2, 3, … for each room, never twice the same,
   * never smaller), atomically; a node takes one each time it takes the room's lease, and
   * from then on saves older than it are refused. RoomNotFoundError for a room never created.
   */
  takeRoomFence(id: string): Promise<number>;
  endRoom(id: string): Promise<void>;
  /** Locks the room to new joins, or unlocks it; false for an unknown room. Locking twice keeps the first time. */
  setRoomLocked(id: string, locked: boolean): Promise<boolean>;

  /** Records a member (a second call for the same room and user changes nothing and answers false). */
  addMember(member: Omit<MemberRecord, 'roleSetBy' | 'removedAt' | 'updatedAt'>): Promise<boolean>;
  getMember(roomId: string, userId: string): Promise<MemberRecord | null>;
  /** Changes a member's role; false for an unknown or removed member. */
  setMemberRole(roomId: string, userId: string, role: Role, setBy: string): Promise<boolean>;
  /** Removes a member for good; false for an unknown member. */
  removeMember(roomId: string, userId: string, removedBy: string): Promise<boolean>;
  /** Members whose role a host changed or who were removed (what a loading room mirrors into its rules). */
  listMemberChanges(roomId: string): Promise<MemberRecord[]>;
  /** Records a take unless the room holds `maxPerRoom` already (then answers false and writes nothing), atomically. */
  createTake(take: TakeRecord, maxPerRoom: number): Promise<boolean>;
  /** A room's takes, oldest first. */
  listTakes(roomId: string): Promise<TakeRecord[]>;
  getTake(roomId: string, id: string): Promise<TakeRecord | null>;
  /**
   * A prompt cleared from a room's history leaves its takes too: the visuals of every take that
   * shows it become the release's own look (as the room's did, if it was on show). Answers how many.
   */
  clearPromptFromTakes(roomId: string, prompt: { text: string; atMs: number }): Promise<number>;
  createInvite(invite: Omit<InviteRecord, 'uses' | 'revokedAt'>): Promise<void>;
  getInvite(id: string): Promise<InviteRecord | null>;
  /** Counts one use of an invite, atomically, unless it is used up or revoked. */
  useInvite(id: string): Promise<InviteUse>;
  /** Gives back a use counted by useInvite (the join failed after it). */
  unuseInvite(id: string): Promise<void>;
  revokeInvite(roomId: string, id: string): Promise<boolean>;

  /**
   * Records a render unless one exists under `idempotencyKey`; answers the one stored
   * (`created: false` when it was already there, whatever its request was: the caller compares).
   */
  createRender(render: Omit<RenderRecord, 'updatedAt' | 'result'>, idempotencyKey: string | null): Promise<{ render: RenderRecord; created: boolean }>;
  getRender(id: string): Promise<RenderRecord | null>;
  /** The render recorded under `idempotencyKey`, if any. */
  findRenderByKey(idempotencyKey: string): Promise<RenderRecord | null>;
  /** Moves a render on; refuses (RenderNotFoundError) an unknown id. */
  updateRender(id: string, change: { status: RenderStatus; result?: unknown }): Promise<void>;
  /** Renders in these states, oldest first (a restarted process picks up what was queued or running). */
  listRenders(statuses: readonly RenderStatus[]): Promise<RenderRecord[]>;

  /** Records an order unless one exists under `idempotencyKey` (then answers that one, `created: false`). */
  createOrder(order: Omit<OrderRecord, 'updatedAt'>, idempotencyKey: string): Promise<{ order: OrderRecord; created: boolean }>;
  getOrder(id: string): Promise<OrderRecord | null>;
  getOrderByPayment(paymentId: string): Promise<OrderRecord | null>;
  /** Moves an order on, only from one of `from` (answers false when it was not in one of them: someone else moved it). */
  updateOrder(id: string, from: readonly OrderStatus[], change: Partial<Pick<OrderRecord, 'status' | 'paymentId' | 'renderId' | 'request'>>): Promise<boolean>;
  listOrders(statuses: readonly OrderStatus[]): Promise<OrderRecord[]>;
  /** The order's entitlement, created once (a second call answers the first). */
  createEntitlement(entitlement: Omit<EntitlementRecord, 'createdAt' | 'revokedAt'>): Promise<EntitlementRecord>;
  getEntitlementByOrder(orderId: string): Promise<EntitlementRecord | null>;
  /** Marks the order's entitlement revoked (a refund); false when there is none or it was already. */
  revokeEntitlement(orderId: string): Promise<boolean>;
  /** Records a webhook event id; false when it was seen before (a replay). */
  recordWebhookEvent(id: string): Promise<boolean>;

  /** Keeps a chat message of a room, then forgets all but the room's newest `keep`. */
  addChatMessage(roomId: string, message: StoredChatMessage, keep: number): Promise<void>;
  /** A room's newest `limit` chat messages, oldest first. */
  listChatMessages(roomId: string, limit: number): Promise<StoredChatMessage[]>;
  /** The clips, loops and stills a member of a room asked for (not bought full versions), newest first. */
  listMemberRenders(roomId: string, userId: string, limit: number): Promise<RenderRecord[]>;
  /** The orders a member of a room placed, newest first. */
  listMemberOrders(roomId: string, userId: string, limit: number): Promise<OrderRecord[]>;

  /** Cheap liveness probe for /readyz. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface FilePlacement {
  place(): void;
  undo(): void;
}

export class ReleaseExistsError extends Error {
  override readonly name = 'ReleaseExistsError';
}

export class RoomNotFoundError extends Error {
  override readonly name = 'RoomNotFoundError';
}

/** A save carried a fencing token older than the room's newest: another node holds the room now. */
export class StaleFenceError extends Error {
  override readonly name = 'StaleFenceError';
  readonly roomId: string;
  readonly fence: number;
  readonly current: number;
  constructor(roomId: string, fence: number, current: number) {
    super(`room "${roomId}": a save with fencing token ${fence} was refused; token ${current} was taken since (another node holds the room)`);
    this.roomId = roomId;
    this.fence = fence;
    this.current = current;
  }
}

export class RenderNotFoundError extends Error {
  override readonly name = 'RenderNotFoundError';
}

export class StoreClosedError extends Error {
  override readonly name = 'InvalidStateError';
  constructor() {
    super('the store is closed');
  }
}
