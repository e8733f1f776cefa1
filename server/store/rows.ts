// The rows of the tables both stores share (SQLite and PostgreSQL have the same
// tables and columns, so that `npm run migrate-store` copies them as they are), and
// the records they make: one reading of a row for both.
import type { Role } from '../../shared/roles.ts';
import type { InviteRecord, MemberRecord, OrderRecord, OrderStatus, RenderRecord, RenderStatus, RoomRecord, RoomSummary, TakeRecord } from './store.ts';

export const ROOM_SUMMARY_COLUMNS = 'id, release_id, created_at, updated_at, closed_at, creator_id, locked_at';
export const ROOM_COLUMNS = `${ROOM_SUMMARY_COLUMNS}, doc, timeline`;

export interface RoomSummaryRow {
  id: string;
  release_id: string;
  created_at: string;
  updated_at: string;
  closed_at: string | null;
  creator_id: string | null;
  locked_at: string | null;
}

export interface RoomRow extends RoomSummaryRow {
  /** A Uint8Array from SQLite, a Buffer from PostgreSQL. */
  doc: Uint8Array | null;
  timeline: string | null;
}

export function roomSummaryOf(row: RoomSummaryRow): RoomSummary {
  return { id: row.id, releaseId: row.release_id, createdAt: row.created_at, updatedAt: row.updated_at, closedAt: row.closed_at, creatorId: row.creator_id, lockedAt: row.locked_at };
}

export function roomOf(row: RoomRow): RoomRecord {
  return { ...roomSummaryOf(row), doc: row.doc ? new Uint8Array(row.doc) : null, timeline: row.timeline };
}

export const TAKE_COLUMNS = 'id, room_id, name, content, created_by, saved_by, created_at';

export interface TakeRow {
  id: string;
  room_id: string;
  name: string;
  content: string;
  created_by: string;
  saved_by: string;
  created_at: string;
}

export function takeOf(row: TakeRow): TakeRecord {
  return { id: row.id, roomId: row.room_id, name: row.name, content: JSON.parse(row.content) as unknown, createdBy: row.created_by, savedBy: row.saved_by, createdAt: row.created_at };
}

export const MEMBER_COLUMNS = 'room_id, user_id, name, role, role_set_by, invite_id, access_until, removed_at, created_at, updated_at';

export interface MemberRow {
  room_id: string;
  user_id: string;
  name: string;
  role: string;
  role_set_by: string | null;
  invite_id: string | null;
  access_until: string;
  removed_at: string | null;
  created_at: string;
  updated_at: string;
}

export function memberOf(row: MemberRow): MemberRecord {
  return {
    roomId: row.room_id,
    userId: row.user_id,
    name: row.name,
    role: row.role as Role,
    roleSetBy: row.role_set_by,
    inviteId: row.invite_id,
    accessUntil: row.access_until,
    removedAt: row.removed_at,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export const INVITE_COLUMNS = 'id, room_id, role, max_uses, uses, created_by, revoked_at, created_at, expires_at';

export interface InviteRow {
  id: string;
  room_id: string;
  role: string;
  max_uses: number | null;
  uses: number;
  created_by: string | null;
  revoked_at: string | null;
  created_at: string;
  expires_at: string;
}

export function inviteOf(row: InviteRow): InviteRecord {
  return {
    id: row.id,
    roomId: row.room_id,
    role: row.role as Role,
    maxUses: row.max_uses === null ? null : Number(row.max_uses),
    uses: Number(row.uses),
    createdBy: row.created_by,
    revokedAt: row.revoked_at,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
  };
}

export const RENDER_COLUMNS = 'id, room_id, kind, status, request, result, created_at, updated_at';

export interface RenderRow {
  id: string;
  room_id: string;
  kind: string;
  status: string;
  request: string;
  result: string | null;
  created_at: string;
  updated_at: string;
}

export function renderOf(row: RenderRow): RenderRecord {
  return {
    id: row.id,
    roomId: row.room_id,
    kind: row.kind as RenderRecord['kind'],
    status: row.status as RenderStatus,
    request: JSON.parse(row.request) as unknown,
    result: row.result === null ? null : (JSON.parse(row.result) as unknown),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

export const ORDER_COLUMNS = 'id, render_id, status, amount_cents, currency, request, payment_id, created_at, updated_at';

export interface OrderRow {
  id: string;
  render_id: string | null;
  status: string;
  amount_cents: number;
  currency: string;
  request: string;
  payment_id: string | null;
  created_at: string;
  updated_at: string;
}

export function orderOf(row: OrderRow): OrderRecord {
  return {
    id: row.id,
    status: row.status as OrderStatus,
    amountCents: Number(row.amount_cents),
    currency: row.currency,
    paymentId: row.payment_id,
    renderId: row.render_id,
    request: JSON.parse(row.request) as unknown,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
