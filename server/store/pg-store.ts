import pg from 'pg';
import type { Pool, PoolClient, QueryResultRow } from 'pg';
import type { Logger } from '../logger.ts';
import type { Role } from '../../shared/roles.ts';
import type { Migration } from './migrations.ts';
import { PgStoreOpenError, StoreBusyError, StoreUnavailableError } from './pg-errors.ts';
import { PG_MIGRATIONS } from './pg-migrations.ts';
import {
  ReleaseExistsError,
  RenderNotFoundError,
  RoomNotFoundError,
  StaleFenceError,
  StoreClosedError,
  type EntitlementRecord,
  type FilePlacement,
  type InviteRecord,
  type InviteUse,
  type MemberRecord,
  type OrderRecord,
  type OrderStatus,
  type ReleaseRecord,
  type ReleaseSummary,
  type RenderRecord,
  type RenderStatus,
  type RoomRecord,
  type RoomSummary,
  type Store,
  type StoredChatMessage,
  type TakeRecord,
} from './store.ts';
import { INVITE_COLUMNS, MEMBER_COLUMNS, ORDER_COLUMNS, RENDER_COLUMNS, ROOM_COLUMNS, ROOM_SUMMARY_COLUMNS, TAKE_COLUMNS, inviteOf, memberOf, orderOf, renderOf, roomOf, roomSummaryOf, takeOf, type InviteRow, type MemberRow, type OrderRow, type RenderRow, type RoomRow, type RoomSummaryRow, type TakeRow } from './rows.ts';

export { PgStoreOpenError, StoreBusyError, StoreUnavailableError };

/** A take's visuals once its prompt was cleared: the release's own look. */
const NO_PROMPT = { prompt: null, params: null, summary: null, promptBy: null, promptAtMs: null };

/** One key for the advisory lock the nodes migrate under (any constant; "remixroom" in ASCII, shortened). */
const MIGRATION_LOCK_KEY = 0x72656d6978;

/** How long ping() waits before /readyz calls the database unreachable. */
const PING_TIMEOUT_MS = 1000;

export interface PgStoreOptions {
  /** Connections at most in the pool (each node holds its own pool). */
  poolMax: number;
  /** Longest a statement may run before the server cancels it. */
  statementTimeoutMs: number;
  /** Longest wait for a new connection (or for a free one in a full pool). */
  connectTimeoutMs: number;
  log: Logger;
  migrations?: readonly Migration[];
}

export interface PoolStats {
  total: number;
  idle: number;
  waiting: number;
}

/** Called after each query with its duration in seconds and whether it succeeded (for /metrics). */
export type QueryObserver = (seconds: number, ok: boolean) => void;

// BIGINT (int8) arrives as a string by default; every one here (frames, cents, ms, tokens) fits a double.
const TYPES = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => (oid === 20 ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format))) as typeof pg.types.getTypeParser,
};

/**
 * The shared store for several nodes: PostgreSQL through a bounded pool. The same contract as
 * SqliteStore (test/server/store.contract.ts); where SQLite takes its write lock (BEGIN IMMEDIATE),
 * this takes row locks, ON CONFLICT, or a transaction-scoped advisory lock on the room.
 */
export class PgStore implements Store {
  readonly kind = 'postgres';
  readonly #pool: Pool;
  readonly #log: Logger;
  readonly #where: string;
  readonly #poolMax: number;
  readonly #connectTimeoutMs: number;
  /** The pool's connections that are open (connected and not yet removed): tells a full pool from a server that does not answer. */
  readonly #open = new Set<PoolClient>();
  #observer: QueryObserver | null = null;
  #closed = false;

  private constructor(pool: Pool, log: Logger, where: string, options: PgStoreOptions) {
    this.#pool = pool;
    this.#log = log;
    this.#where = where;
    this.#poolMax = options.poolMax;
    this.#connectTimeoutMs = options.connectTimeoutMs;
    pool.on('connect', (client) => this.#open.add(client));
    pool.on('remove', (client) => this.#open.delete(client));
  }

  /**
   * Connects, applies pending migrations under an advisory lock (one node migrates, the others
   * wait and then find the schema current), and answers the store. PgStoreOpenError with one line
   * for a wrong URL, credentials, an unreachable server or a schema newer than this build.
   */
  static async open(url: string, options: PgStoreOptions): Promise<PgStore> {
    const where = describeUrl(url);
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolMax,
      connectionTimeoutMillis: options.connectTimeoutMs,
      statement_timeout: options.statementTimeoutMs,
      // A transaction left open by a stuck caller must not hold its row locks for ever.
      idle_in_transaction_session_timeout: Math.max(10_000, options.statementTimeoutMs * 2),
      application_name: 'remixroom',
      types: TYPES,
    });
    // An idle connection that the server drops (a restart) is reported here; unhandled, it would end the process.
    pool.on('error', (err) => options.log.warn({ err: err.message }, 'postgres: an idle connection failed; the pool makes a new one when needed'));
    const store = new PgStore(pool, options.log, where, options);
    try {
      await store.#migrate(options.migrations ?? PG_MIGRATIONS);
    } catch (err) {
      await pool.end().catch(() => {});
      if (err instanceof PgStoreOpenError) throw err;
      throw new PgStoreOpenError(`PostgreSQL at ${where}: ${describeError(err)}`);
    }
    return store;
  }

  /** host:port and database, without credentials (for logs and messages). */
  get where(): string {
    return this.#where;
  }

  /** Connections the pool holds (in use or idle) and callers waiting for one. */
  poolStats(): PoolStats {
    return { total: this.#pool.totalCount, idle: this.#pool.idleCount, waiting: this.#pool.waitingCount };
  }

  /** Sets the one observer told the duration of every query (null: none). */
  observeQueries(observer: QueryObserver | null): void {
    this.#observer = observer;
  }

  async schemaVersion(): Promise<number> {
    const { rows } = await this.#query<{ v: number | null }>('SELECT MAX(version)::int AS v FROM schema_migrations');
    return rows[0]?.v ?? 0;
  }

  async listReleases(): Promise<ReleaseSummary[]> {
    const { rows } = await this.#query<{ id: string; title: string; artist: string; duration_sec: number; ingested_at: string }>(
      'SELECT id, title, artist, duration_sec, ingested_at FROM releases ORDER BY ingested_at, id',
    );
    return rows.map((r) => ({ id: r.id, title: r.title, artist: r.artist, durationSec: r.duration_sec, ingestedAt: r.ingested_at }));
  }

  async getRelease(id: string): Promise<ReleaseRecord | null> {
    const { rows } = await this.#query<{ record: string }>('SELECT record FROM releases WHERE id = $1', [id]);
    return rows[0] ? (JSON.parse(rows[0].record) as ReleaseRecord) : null;
  }

  async putRelease(record: ReleaseRecord, files: FilePlacement, options: { replace?: boolean } = {}): Promise<void> {
    const values = [record.id, record.title, record.artist, record.frames, record.durationSec, JSON.stringify(record), record.ingestedAt];
    let placed = false;
    try {
      await this.#transaction(async (q) => {
        const insert = `INSERT INTO releases (id, title, artist, frames, duration_sec, record, ingested_at) VALUES ($1, $2, $3, $4, $5, $6, $7)`;
        if (options.replace) {
          await q(
            `${insert} ON CONFLICT (id) DO UPDATE SET title = excluded.title, artist = excluded.artist, frames = excluded.frames,
               duration_sec = excluded.duration_sec, record = excluded.record, ingested_at = excluded.ingested_at`,
            values,
          );
        } else {
          // Atomic against a concurrent ingest of the same id: one insert wins, the other finds it.
          const r = await q(`${insert} ON CONFLICT (id) DO NOTHING`, values);
          if (r.rowCount === 0) throw new ReleaseExistsError(`a release with id "${record.id}" exists already`);
        }
        files.place();
        placed = true;
      });
    } catch (err) {
      if (placed) files.undo();
      throw err;
    }
  }

  async deleteRelease(id: string): Promise<boolean> {
    const r = await this.#query('DELETE FROM releases WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  async createRoom(room: Omit<RoomRecord, 'updatedAt' | 'closedAt' | 'timeline' | 'creatorId' | 'lockedAt'> & { creatorId?: string | null }): Promise<void> {
    await this.#query('INSERT INTO rooms (id, release_id, created_at, updated_at, doc, creator_id) VALUES ($1, $2, $3, $4, $5, $6)', [
      room.id,
      room.releaseId,
      room.createdAt,
      room.createdAt,
      room.doc,
      room.creatorId ?? null,
    ]);
  }

  async getRoom(id: string): Promise<RoomRecord | null> {
    const { rows } = await this.#query<RoomRow>(`SELECT ${ROOM_COLUMNS} FROM rooms WHERE id = $1`, [id]);
    return rows[0] ? roomOf(rows[0]) : null;
  }

  async getRoomSummary(id: string): Promise<RoomSummary | null> {
    const { rows } = await this.#query<RoomSummaryRow>(`SELECT ${ROOM_SUMMARY_COLUMNS} FROM rooms WHERE id = $1`, [id]);
    return rows[0] ? roomSummaryOf(rows[0]) : null;
  }

  async saveRoomDoc(id: string, doc: Uint8Array, timeline?: string, fence?: number): Promise<void> {
    const now = new Date().toISOString();
    const values: (Uint8Array | string | number)[] = [id, doc, now];
    let sets = 'doc = $2, updated_at = $3';
    if (timeline !== undefined) sets += `, timeline = $${values.push(timeline)}`;
    // The fence check and the write are one statement: the row lock orders it against takeRoomFence.
    const where = fence === undefined ? 'id = $1' : `id = $1 AND fence <= $${values.push(fence)}`;
    const r = await this.#query(`UPDATE rooms SET ${sets} WHERE ${where}`, values);
    if ((r.rowCount ?? 0) > 0) return;
    const { rows } = await this.#query<{ fence: number }>('SELECT fence FROM rooms WHERE id = $1', [id]);
    if (!rows[0]) throw new RoomNotFoundError(`no room "${id}"`);
    throw new StaleFenceError(id, fence ?? 0, Number(rows[0].fence));
  }

  async takeRoomFence(id: string): Promise<number> {
    const { rows } = await this.#query<{ fence: number }>('UPDATE rooms SET fence = fence + 1 WHERE id = $1 RETURNING fence', [id]);
    if (!rows[0]) throw new RoomNotFoundError(`no room "${id}"`);
    return Number(rows[0].fence);
  }

  async endRoom(id: string): Promise<void> {
    const r = await this.#query('UPDATE rooms SET closed_at = COALESCE(closed_at, $1) WHERE id = $2', [new Date().toISOString(), id]);
    if ((r.rowCount ?? 0) === 0) throw new RoomNotFoundError(`no room "${id}"`);
  }

  async setRoomLocked(id: string, locked: boolean): Promise<boolean> {
    const r = locked
      ? await this.#query('UPDATE rooms SET locked_at = COALESCE(locked_at, $1) WHERE id = $2', [new Date().toISOString(), id])
      : await this.#query('UPDATE rooms SET locked_at = NULL WHERE id = $1', [id]);
    return (r.rowCount ?? 0) > 0;
  }

  async addMember(m: Omit<MemberRecord, 'roleSetBy' | 'removedAt' | 'updatedAt'>): Promise<boolean> {
    const r = await this.#query(
      `INSERT INTO room_members (room_id, user_id, name, role, invite_id, access_until, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (room_id, user_id) DO NOTHING`,
      [m.roomId, m.userId, m.name, m.role, m.inviteId, m.accessUntil, m.createdAt, m.createdAt],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async getMember(roomId: string, userId: string): Promise<MemberRecord | null> {
    const { rows } = await this.#query<MemberRow>(`SELECT ${MEMBER_COLUMNS} FROM room_members WHERE room_id = $1 AND user_id = $2`, [roomId, userId]);
    return rows[0] ? memberOf(rows[0]) : null;
  }

  async setMemberRole(roomId: string, userId: string, role: Role, setBy: string): Promise<boolean> {
    const r = await this.#query('UPDATE room_members SET role = $1, role_set_by = $2, updated_at = $3 WHERE room_id = $4 AND user_id = $5 AND removed_at IS NULL', [
      role,
      setBy,
      new Date().toISOString(),
      roomId,
      userId,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async removeMember(roomId: string, userId: string, removedBy: string): Promise<boolean> {
    const now = new Date().toISOString();
    const r = await this.#query('UPDATE room_members SET removed_at = COALESCE(removed_at, $1), role_set_by = $2, updated_at = $3 WHERE room_id = $4 AND user_id = $5', [
      now,
      removedBy,
      now,
      roomId,
      userId,
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async listMemberChanges(roomId: string): Promise<MemberRecord[]> {
    const { rows } = await this.#query<MemberRow>(
      `SELECT ${MEMBER_COLUMNS} FROM room_members WHERE room_id = $1 AND (role_set_by IS NOT NULL OR removed_at IS NOT NULL) ORDER BY updated_at, user_id`,
      [roomId],
    );
    return rows.map(memberOf);
  }

  async createTake(t: TakeRecord, maxPerRoom: number): Promise<boolean> {
    return this.#transaction(async (q) => {
      // Count and insert under the room's lock, so that two saves at once cannot both pass the cap.
      await q('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`takes:${t.roomId}`]);
      const { rows } = await q<{ n: number }>('SELECT COUNT(*)::int AS n FROM room_takes WHERE room_id = $1', [t.roomId]);
      if (rows[0]!.n >= maxPerRoom) return false;
      await q('INSERT INTO room_takes (id, room_id, name, content, created_by, saved_by, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)', [
        t.id,
        t.roomId,
        t.name,
        JSON.stringify(t.content),
        t.createdBy,
        t.savedBy,
        t.createdAt,
      ]);
      return true;
    });
  }

  async listTakes(roomId: string): Promise<TakeRecord[]> {
    const { rows } = await this.#query<TakeRow>(`SELECT ${TAKE_COLUMNS} FROM room_takes WHERE room_id = $1 ORDER BY created_at, id`, [roomId]);
    return rows.map(takeOf);
  }

  async getTake(roomId: string, id: string): Promise<TakeRecord | null> {
    const { rows } = await this.#query<TakeRow>(`SELECT ${TAKE_COLUMNS} FROM room_takes WHERE room_id = $1 AND id = $2`, [roomId, id]);
    return rows[0] ? takeOf(rows[0]) : null;
  }

  async clearPromptFromTakes(roomId: string, prompt: { text: string; atMs: number }): Promise<number> {
    const r = await this.#query(
      `UPDATE room_takes SET content = jsonb_set(content::jsonb, '{visual}', $1::jsonb)::text
       WHERE room_id = $2 AND (content::jsonb #>> '{visual,prompt}') = $3 AND (content::jsonb #> '{visual,promptAtMs}') = to_jsonb($4::double precision)`,
      [JSON.stringify(NO_PROMPT), roomId, prompt.text, prompt.atMs],
    );
    return r.rowCount ?? 0;
  }

  async createInvite(i: Omit<InviteRecord, 'uses' | 'revokedAt'>): Promise<void> {
    await this.#query('INSERT INTO invites (id, room_id, role, max_uses, uses, created_by, created_at, expires_at) VALUES ($1, $2, $3, $4, 0, $5, $6, $7)', [
      i.id,
      i.roomId,
      i.role,
      i.maxUses,
      i.createdBy,
      i.createdAt,
      i.expiresAt,
    ]);
  }

  async getInvite(id: string): Promise<InviteRecord | null> {
    const { rows } = await this.#query<InviteRow>(`SELECT ${INVITE_COLUMNS} FROM invites WHERE id = $1`, [id]);
    return rows[0] ? inviteOf(rows[0]) : null;
  }

  async useInvite(id: string): Promise<InviteUse> {
    // One statement: concurrent uses queue on the row lock and each re-checks the limit.
    const r = await this.#query('UPDATE invites SET uses = uses + 1 WHERE id = $1 AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses)', [id]);
    if ((r.rowCount ?? 0) > 0) return 'ok';
    const { rows } = await this.#query<{ revoked_at: string | null }>('SELECT revoked_at FROM invites WHERE id = $1', [id]);
    return !rows[0] ? 'unknown' : rows[0].revoked_at ? 'revoked' : 'exhausted';
  }

  async unuseInvite(id: string): Promise<void> {
    await this.#query('UPDATE invites SET uses = uses - 1 WHERE id = $1 AND uses > 0', [id]);
  }

  async revokeInvite(roomId: string, id: string): Promise<boolean> {
    const r = await this.#query('UPDATE invites SET revoked_at = COALESCE(revoked_at, $1) WHERE id = $2 AND room_id = $3', [new Date().toISOString(), id, roomId]);
    return (r.rowCount ?? 0) > 0;
  }

  async findRenderByKey(idempotencyKey: string): Promise<RenderRecord | null> {
    const { rows } = await this.#query<RenderRow>(`SELECT ${RENDER_COLUMNS} FROM renders WHERE idempotency_key = $1`, [idempotencyKey]);
    return rows[0] ? renderOf(rows[0]) : null;
  }

  async createRender(render: Omit<RenderRecord, 'updatedAt' | 'result'>, idempotencyKey: string | null): Promise<{ render: RenderRecord; created: boolean }> {
    const values = [render.id, render.roomId, render.kind, render.status, JSON.stringify(render.request), idempotencyKey, render.createdAt, render.createdAt];
    const insert = 'INSERT INTO renders (id, room_id, kind, status, request, result, idempotency_key, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, NULL, $6, $7, $8)';
    if (idempotencyKey === null) {
      await this.#query(insert, values);
      return { render: { ...render, result: null, updatedAt: render.createdAt }, created: true };
    }
    // The key decides: the first insert wins, a concurrent one waits for it and then reads it.
    const r = await this.#query(`${insert} ON CONFLICT (idempotency_key) DO NOTHING`, values);
    if ((r.rowCount ?? 0) > 0) return { render: { ...render, result: null, updatedAt: render.createdAt }, created: true };
    const found = await this.findRenderByKey(idempotencyKey);
    if (!found) throw new Error(`render under key "${idempotencyKey}" vanished while it was being created`);
    return { render: found, created: false };
  }

  async getRender(id: string): Promise<RenderRecord | null> {
    const { rows } = await this.#query<RenderRow>(`SELECT ${RENDER_COLUMNS} FROM renders WHERE id = $1`, [id]);
    return rows[0] ? renderOf(rows[0]) : null;
  }

  async updateRender(id: string, change: { status: RenderStatus; result?: unknown }): Promise<void> {
    const now = new Date().toISOString();
    const r =
      change.result === undefined
        ? await this.#query('UPDATE renders SET status = $1, updated_at = $2 WHERE id = $3', [change.status, now, id])
        : await this.#query('UPDATE renders SET status = $1, result = $2, updated_at = $3 WHERE id = $4', [change.status, JSON.stringify(change.result), now, id]);
    if ((r.rowCount ?? 0) === 0) throw new RenderNotFoundError(`no render "${id}"`);
  }

  async listRenders(statuses: readonly RenderStatus[]): Promise<RenderRecord[]> {
    if (statuses.length === 0) return [];
    const { rows } = await this.#query<RenderRow>(`SELECT ${RENDER_COLUMNS} FROM renders WHERE status = ANY($1::text[]) ORDER BY created_at, id`, [[...statuses]]);
    return rows.map(renderOf);
  }

  async createOrder(order: Omit<OrderRecord, 'updatedAt'>, idempotencyKey: string): Promise<{ order: OrderRecord; created: boolean }> {
    const r = await this.#query(
      `INSERT INTO orders (id, render_id, status, amount_cents, currency, idempotency_key, request, payment_id, created_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (idempotency_key) DO NOTHING`,
      [order.id, order.renderId, order.status, order.amountCents, order.currency, idempotencyKey, JSON.stringify(order.request), order.paymentId, order.createdAt, order.createdAt],
    );
    if ((r.rowCount ?? 0) > 0) return { order: { ...order, updatedAt: order.createdAt }, created: true };
    const { rows } = await this.#query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE idempotency_key = $1`, [idempotencyKey]);
    if (!rows[0]) throw new Error(`order under key "${idempotencyKey}" vanished while it was being created`);
    return { order: orderOf(rows[0]), created: false };
  }

  async addChatMessage(roomId: string, message: StoredChatMessage, keep: number): Promise<void> {
    // Two statements, no transaction and no lock: a busy room's messages must not hold pool
    // connections while they queue for each other (they would starve every other room's saves).
    await this.#query('INSERT INTO chat_messages (room_id, id, at_ms, message) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [roomId, message.id, message.atMs, JSON.stringify(message)]);
    // Bounded: whatever is older than the newest `keep` goes. Concurrent trims never delete one of
    // the newest `keep` (rows are only added), and the last trim to start sees every insert before
    // it, so once the calls are done the room holds exactly its newest `keep`.
    await this.#query(
      `DELETE FROM chat_messages WHERE room_id = $1 AND (at_ms, seq) <=
         (SELECT at_ms, seq FROM chat_messages WHERE room_id = $1 ORDER BY at_ms DESC, seq DESC OFFSET $2 LIMIT 1)`,
      [roomId, keep],
    );
  }

  async listChatMessages(roomId: string, limit: number): Promise<StoredChatMessage[]> {
    const { rows } = await this.#query<{ message: string }>('SELECT message FROM chat_messages WHERE room_id = $1 ORDER BY at_ms DESC, seq DESC LIMIT $2', [roomId, limit]);
    return rows.map((r) => JSON.parse(r.message) as StoredChatMessage).reverse();
  }

  async listMemberRenders(roomId: string, userId: string, limit: number): Promise<RenderRecord[]> {
    const { rows } = await this.#query<RenderRow>(
      `SELECT ${RENDER_COLUMNS} FROM renders WHERE room_id = $1 AND ((request::jsonb) #>> '{requestedBy,userId}') = $2 AND kind IN ('clip', 'loop', 'still')
       ORDER BY created_at DESC, id LIMIT $3`,
      [roomId, userId, limit],
    );
    return rows.map(renderOf);
  }

  async listMemberOrders(roomId: string, userId: string, limit: number): Promise<OrderRecord[]> {
    const { rows } = await this.#query<OrderRow>(
      `SELECT ${ORDER_COLUMNS} FROM orders WHERE ((request::jsonb) #>> '{roomId}') = $1 AND ((request::jsonb) #>> '{buyer,userId}') = $2 ORDER BY created_at DESC, id LIMIT $3`,
      [roomId, userId, limit],
    );
    return rows.map(orderOf);
  }

  async getOrder(id: string): Promise<OrderRecord | null> {
    const { rows } = await this.#query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = $1`, [id]);
    return rows[0] ? orderOf(rows[0]) : null;
  }

  async getOrderByPayment(paymentId: string): Promise<OrderRecord | null> {
    const { rows } = await this.#query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE payment_id = $1`, [paymentId]);
    return rows[0] ? orderOf(rows[0]) : null;
  }

  async updateOrder(id: string, from: readonly OrderStatus[], change: Partial<Pick<OrderRecord, 'status' | 'paymentId' | 'renderId' | 'request'>>): Promise<boolean> {
    if (from.length === 0) return false;
    const values: (string | number | null | string[])[] = [new Date().toISOString()];
    const sets: string[] = ['updated_at = $1'];
    if (change.status !== undefined) sets.push(`status = $${values.push(change.status)}`);
    if (change.paymentId !== undefined) sets.push(`payment_id = $${values.push(change.paymentId)}`);
    if (change.renderId !== undefined) sets.push(`render_id = $${values.push(change.renderId)}`);
    if (change.request !== undefined) sets.push(`request = $${values.push(JSON.stringify(change.request))}`);
    const idAt = values.push(id);
    const fromAt = values.push([...from]);
    const r = await this.#query(`UPDATE orders SET ${sets.join(', ')} WHERE id = $${idAt} AND status = ANY($${fromAt}::text[])`, values);
    return (r.rowCount ?? 0) > 0;
  }

  async listOrders(statuses: readonly OrderStatus[]): Promise<OrderRecord[]> {
    if (statuses.length === 0) return [];
    const { rows } = await this.#query<OrderRow>(`SELECT ${ORDER_COLUMNS} FROM orders WHERE status = ANY($1::text[]) ORDER BY created_at, id`, [[...statuses]]);
    return rows.map(orderOf);
  }

  async createEntitlement(entitlement: Omit<EntitlementRecord, 'createdAt' | 'revokedAt'>): Promise<EntitlementRecord> {
    await this.#query('INSERT INTO entitlements (id, order_id, render_id, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (order_id) DO NOTHING', [
      entitlement.id,
      entitlement.orderId,
      entitlement.renderId,
      new Date().toISOString(),
    ]);
    return (await this.getEntitlementByOrder(entitlement.orderId))!;
  }

  async getEntitlementByOrder(orderId: string): Promise<EntitlementRecord | null> {
    const { rows } = await this.#query<{ id: string; order_id: string; render_id: string | null; created_at: string; revoked_at: string | null }>(
      'SELECT id, order_id, render_id, created_at, revoked_at FROM entitlements WHERE order_id = $1',
      [orderId],
    );
    const row = rows[0];
    return row ? { id: row.id, orderId: row.order_id, renderId: row.render_id, createdAt: row.created_at, revokedAt: row.revoked_at } : null;
  }

  async revokeEntitlement(orderId: string): Promise<boolean> {
    const r = await this.#query('UPDATE entitlements SET revoked_at = $1 WHERE order_id = $2 AND revoked_at IS NULL', [new Date().toISOString(), orderId]);
    return (r.rowCount ?? 0) > 0;
  }

  async recordWebhookEvent(id: string): Promise<boolean> {
    const r = await this.#query('INSERT INTO webhook_events (id, received_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING', [id, new Date().toISOString()]);
    return (r.rowCount ?? 0) > 0;
  }

  /** Answers within a second, or fails naming the database (what /readyz shows). */
  async ping(): Promise<void> {
    this.#ensureOpen();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new StoreUnavailableError(`PostgreSQL at ${this.#where}: no answer within ${PING_TIMEOUT_MS} ms`)), PING_TIMEOUT_MS);
    });
    const probe = this.#query('SELECT 1');
    probe.catch(() => {}); // a late failure after the timeout answered is not unhandled
    try {
      await Promise.race([probe, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#pool.end();
  }

  #ensureOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }

  async #query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> {
    this.#ensureOpen();
    const started = performance.now();
    let ok = false;
    try {
      const result = await this.#pool.query<R>(text, values);
      ok = true;
      return result;
    } catch (err) {
      throw this.#translate(err);
    } finally {
      this.#observer?.((performance.now() - started) / 1000, ok);
    }
  }

  /** Runs `fn` in one transaction on one connection; rolls back on any error. */
  async #transaction<T>(fn: (q: <R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]) => Promise<pg.QueryResult<R>>) => Promise<T>): Promise<T> {
    this.#ensureOpen();
    let client: PoolClient;
    try {
      client = await this.#pool.connect();
    } catch (err) {
      throw this.#translate(err);
    }
    const failure = watchConnection(client);
    const q = async <R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>> => {
      const started = performance.now();
      let ok = false;
      try {
        const r = await client.query<R>(text, values);
        ok = true;
        return r;
      } finally {
        this.#observer?.((performance.now() - started) / 1000, ok);
      }
    };
    let broken: Error | undefined;
    try {
      await q('BEGIN');
      const result = await fn(q);
      await q('COMMIT');
      return result;
    } catch (err) {
      // A dropped connection rolled the transaction back on the server already.
      if (!failure.error()) {
        try {
          await client.query('ROLLBACK');
        } catch (rollbackErr) {
          broken = rollbackErr as Error;
        }
      }
      throw this.#translate(err);
    } finally {
      failure.stop();
      // A broken connection goes back with its error, so that the pool drops it rather than reuse it.
      client.release(failure.error() ?? broken);
    }
  }

  /** Connection-level failures become StoreUnavailableError (what routes answer 503 for); the rest pass as they are. */
  #translate(err: unknown): unknown {
    // pg-pool's own words for waiting on a full pool; a server that answered the open connections is up, only busy.
    if (/timeout exceeded when trying to connect/i.test((err as Error | null)?.message ?? '') && this.#open.size > 0) {
      return new StoreBusyError(`all ${this.#poolMax} connections to PostgreSQL at ${this.#where} stayed busy for ${this.#connectTimeoutMs} ms`);
    }
    if (isUnavailable(err)) return new StoreUnavailableError(`the database is unreachable (PostgreSQL at ${this.#where}: ${describeError(err)})`);
    return err;
  }

  async #migrate(migrations: readonly Migration[]): Promise<void> {
    const client = await this.#pool.connect();
    const failure = watchConnection(client);
    let broken: Error | undefined;
    try {
      // Migrations and the wait for another node's may take longer than any one statement may.
      await client.query('SET statement_timeout = 0');
      await client.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY]);
      try {
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
        const { rows } = await client.query<{ v: number | null }>('SELECT MAX(version)::int AS v FROM schema_migrations');
        const applied = rows[0]?.v ?? 0;
        const newest = migrations.at(-1)?.version ?? 0;
        if (applied > newest) {
          throw new PgStoreOpenError(`PostgreSQL at ${this.#where} is at schema version ${applied}, newer than this build knows (${newest}); run a newer Remixroom`);
        }
        for (const m of migrations) {
          if (m.version <= applied) continue;
          await client.query('BEGIN');
          try {
            await client.query(m.sql);
            await client.query('INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)', [m.version, m.name, new Date().toISOString()]);
            await client.query('COMMIT');
          } catch (err) {
            // On a dropped connection the server rolled back already; its error is the one to report.
            if (!failure.error()) await client.query('ROLLBACK').catch(() => {});
            throw new PgStoreOpenError(`PostgreSQL at ${this.#where}: migration ${m.version} (${m.name}) failed: ${(err as Error).message}`);
          }
          this.#log.info({ version: m.version, name: m.name }, 'postgres: migration applied');
        }
      } finally {
        // On a broken connection the unlock fails too, and the lock ends with the session anyway.
        await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch((err: unknown) => {
          this.#log.debug({ err: (err as Error).message }, 'postgres: migration lock released with the session');
        });
      }
      await client.query('RESET statement_timeout');
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      failure.stop();
      // A connection that ran migrations or failed is not reused (its session settings, its state).
      client.release(failure.error() ?? broken ?? true);
    }
  }
}

/**
 * Listens for a checked-out connection's 'error' until stop(): pg-pool takes its own listener off a
 * client it hands out, and a connection that drops meanwhile (a restart, a terminated backend)
 * emits 'error', which with no listener is an uncaught exception that ends the process. The
 * caller's pending query fails on its own; error() says the connection is broken.
 */
function watchConnection(client: PoolClient): { error(): Error | undefined; stop(): void } {
  let failed: Error | undefined;
  const onError = (err: Error) => {
    failed ??= err;
  };
  client.on('error', onError);
  return { error: () => failed, stop: () => client.removeListener('error', onError) };
}

/** host:port/database of a URL, without user or password (for messages and logs). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const db = decodeURIComponent(u.pathname.replace(/^\//, '')) || '(default)';
    return `${u.hostname || 'localhost'}:${u.port || '5432'} database "${db}"`;
  } catch {
    return '(an unparsable URL)';
  }
}

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE']);
// 57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now, 08xxx connection exceptions.
function isUnavailable(err: unknown): boolean {
  const e = err as { code?: string; message?: string } | null;
  if (!e) return false;
  if (e.code && (UNAVAILABLE_CODES.has(e.code) || /^57P0[123]$/.test(e.code) || e.code.startsWith('08'))) return true;
  const m = e.message ?? '';
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(m);
}

/** One line from a pg or socket error: the server's message, or what the socket said. */
function describeError(err: unknown): string {
  if (err instanceof AggregateError && err.errors.length > 0) return describeError(err.errors[0]);
  const e = err as { code?: string; message?: string } | null;
  const message = (e?.message || String(err)).split('\n')[0]!;
  if (e?.code === 'ECONNREFUSED') return `connection refused (${message}); is PostgreSQL running there?`;
  if (e?.code === 'ENOTFOUND' || e?.code === 'EAI_AGAIN') return `unknown host (${message})`;
  if (/timeout exceeded when trying to connect/i.test(message)) return 'no answer (connection timed out); are the host and port right and reachable?';
  if (/^Connection terminated unexpectedly/i.test(message)) return 'the connection closed before PostgreSQL answered; is a PostgreSQL server listening there, reachable from here?';
  return message;
}
