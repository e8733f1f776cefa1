import { DatabaseSync } from 'node:sqlite';
import { MIGRATIONS, type Migration } from './migrations.ts';
import type { Role } from '../../shared/roles.ts';
import {
  ReleaseExistsError,
  RenderNotFoundError,
  RoomNotFoundError,
  type EntitlementRecord,
  type InviteRecord,
  type InviteUse,
  type MemberRecord,
  type OrderRecord,
  type OrderStatus,
  type RenderRecord,
  type RenderStatus,
  type RoomRecord,
  type RoomSummary,
  type TakeRecord,
  StaleFenceError,
  StoreClosedError,
  type FilePlacement,
  type ReleaseRecord,
  type ReleaseSummary,
  type Store,
  type StoredChatMessage,
} from './store.ts';
import { INVITE_COLUMNS, MEMBER_COLUMNS, ORDER_COLUMNS, RENDER_COLUMNS, ROOM_COLUMNS, ROOM_SUMMARY_COLUMNS, TAKE_COLUMNS, inviteOf, memberOf, orderOf, renderOf, roomOf, roomSummaryOf, takeOf, type InviteRow, type MemberRow, type OrderRow, type RenderRow, type RoomRow, type RoomSummaryRow, type TakeRow } from './rows.ts';

/** A take's visuals once its prompt was cleared: the release's own look. */
const NO_PROMPT = { prompt: null, params: null, summary: null, promptBy: null, promptAtMs: null };

/** The embedded store: one SQLite file under DATA_DIR, in WAL mode so that `npm run ingest` can write while a server reads. */
export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly #db: DatabaseSync;
  #closed = false;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (creating if needed) the database at `file` and applies pending migrations. */
  static async open(file: string, migrations: readonly Migration[] = MIGRATIONS): Promise<SqliteStore> {
    const db = new DatabaseSync(file, { timeout: 5000 });
    try {
      db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;');
      migrate(db, migrations);
    } catch (err) {
      db.close();
      throw err;
    }
    return new SqliteStore(db);
  }

  async schemaVersion(): Promise<number> {
    return currentVersion(this.#open());
  }

  async listReleases(): Promise<ReleaseSummary[]> {
    const rows = this.#open()
      .prepare('SELECT id, title, artist, duration_sec, ingested_at FROM releases ORDER BY ingested_at, id')
      .all() as { id: string; title: string; artist: string; duration_sec: number; ingested_at: string }[];
    return rows.map((r) => ({ id: r.id, title: r.title, artist: r.artist, durationSec: r.duration_sec, ingestedAt: r.ingested_at }));
  }

  async getRelease(id: string): Promise<ReleaseRecord | null> {
    const row = this.#open().prepare('SELECT record FROM releases WHERE id = ?').get(id) as { record: string } | undefined;
    return row ? (JSON.parse(row.record) as ReleaseRecord) : null;
  }

  async putRelease(record: ReleaseRecord, files: FilePlacement, options: { replace?: boolean } = {}): Promise<void> {
    const db = this.#open();
    let placed = false;
    try {
      transaction(db, () => {
        const exists = db.prepare('SELECT 1 FROM releases WHERE id = ?').get(record.id) !== undefined;
        if (exists && !options.replace) throw new ReleaseExistsError(`a release with id "${record.id}" exists already`);
        db.prepare(
          `INSERT INTO releases (id, title, artist, frames, duration_sec, record, ingested_at)
           VALUES (?, ?, ?, ?, ?, ?, ?)
           ON CONFLICT (id) DO UPDATE SET title = excluded.title, artist = excluded.artist, frames = excluded.frames,
             duration_sec = excluded.duration_sec, record = excluded.record, ingested_at = excluded.ingested_at`,
        ).run(record.id, record.title, record.artist, record.frames, record.durationSec, JSON.stringify(record), record.ingestedAt);
        files.place();
        placed = true;
      });
    } catch (err) {
      if (placed) files.undo();
      throw err;
    }
  }

  async deleteRelease(id: string): Promise<boolean> {
    const result = this.#open().prepare('DELETE FROM releases WHERE id = ?').run(id);
    return Number(result.changes) > 0;
  }

  async createRoom(room: Omit<RoomRecord, 'updatedAt' | 'closedAt' | 'timeline' | 'creatorId' | 'lockedAt'> & { creatorId?: string | null }): Promise<void> {
    this.#open()
      .prepare('INSERT INTO rooms (id, release_id, created_at, updated_at, doc, creator_id) VALUES (?, ?, ?, ?, ?, ?)')
      .run(room.id, room.releaseId, room.createdAt, room.createdAt, room.doc, room.creatorId ?? null);
  }

  async getRoom(id: string): Promise<RoomRecord | null> {
    const row = this.#open().prepare(`SELECT ${ROOM_COLUMNS} FROM rooms WHERE id = ?`).get(id) as RoomRow | undefined;
    return row ? roomOf(row) : null;
  }

  async getRoomSummary(id: string): Promise<RoomSummary | null> {
    const row = this.#open().prepare(`SELECT ${ROOM_SUMMARY_COLUMNS} FROM rooms WHERE id = ?`).get(id) as RoomSummaryRow | undefined;
    return row ? roomSummaryOf(row) : null;
  }

  async saveRoomDoc(id: string, doc: Uint8Array, timeline?: string, fence?: number): Promise<void> {
    const db = this.#open();
    const now = new Date().toISOString();
    const sets = timeline === undefined ? 'doc = ?, updated_at = ?' : 'doc = ?, timeline = ?, updated_at = ?';
    const values: (Uint8Array | string | number)[] = timeline === undefined ? [doc, now] : [doc, timeline, now];
    const result =
      fence === undefined
        ? db.prepare(`UPDATE rooms SET ${sets} WHERE id = ?`).run(...values, id)
        : db.prepare(`UPDATE rooms SET ${sets} WHERE id = ? AND fence <= ?`).run(...values, id, fence);
    if (Number(result.changes) > 0) return;
    const row = db.prepare('SELECT fence FROM rooms WHERE id = ?').get(id) as { fence: number } | undefined;
    if (!row) throw new RoomNotFoundError(`no room "${id}"`);
    throw new StaleFenceError(id, fence ?? 0, Number(row.fence));
  }

  async takeRoomFence(id: string): Promise<number> {
    const row = this.#open().prepare('UPDATE rooms SET fence = fence + 1 WHERE id = ? RETURNING fence').get(id) as { fence: number } | undefined;
    if (!row) throw new RoomNotFoundError(`no room "${id}"`);
    return Number(row.fence);
  }

  async endRoom(id: string): Promise<void> {
    const result = this.#open().prepare('UPDATE rooms SET closed_at = COALESCE(closed_at, ?) WHERE id = ?').run(new Date().toISOString(), id);
    if (Number(result.changes) === 0) throw new RoomNotFoundError(`no room "${id}"`);
  }

  async setRoomLocked(id: string, locked: boolean): Promise<boolean> {
    const result = locked
      ? this.#open().prepare('UPDATE rooms SET locked_at = COALESCE(locked_at, ?) WHERE id = ?').run(new Date().toISOString(), id)
      : this.#open().prepare('UPDATE rooms SET locked_at = NULL WHERE id = ?').run(id);
    return Number(result.changes) > 0;
  }

  async addMember(m: Omit<MemberRecord, 'roleSetBy' | 'removedAt' | 'updatedAt'>): Promise<boolean> {
    const result = this.#open()
      .prepare(
        `INSERT INTO room_members (room_id, user_id, name, role, invite_id, access_until, created_at, updated_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (room_id, user_id) DO NOTHING`,
      )
      .run(m.roomId, m.userId, m.name, m.role, m.inviteId, m.accessUntil, m.createdAt, m.createdAt);
    return Number(result.changes) > 0;
  }

  async getMember(roomId: string, userId: string): Promise<MemberRecord | null> {
    const row = this.#open().prepare(`SELECT ${MEMBER_COLUMNS} FROM room_members WHERE room_id = ? AND user_id = ?`).get(roomId, userId) as MemberRow | undefined;
    return row ? memberOf(row) : null;
  }

  async setMemberRole(roomId: string, userId: string, role: Role, setBy: string): Promise<boolean> {
    const result = this.#open()
      .prepare('UPDATE room_members SET role = ?, role_set_by = ?, updated_at = ? WHERE room_id = ? AND user_id = ? AND removed_at IS NULL')
      .run(role, setBy, new Date().toISOString(), roomId, userId);
    return Number(result.changes) > 0;
  }

  async removeMember(roomId: string, userId: string, removedBy: string): Promise<boolean> {
    const now = new Date().toISOString();
    const result = this.#open()
      .prepare('UPDATE room_members SET removed_at = COALESCE(removed_at, ?), role_set_by = ?, updated_at = ? WHERE room_id = ? AND user_id = ?')
      .run(now, removedBy, now, roomId, userId);
    return Number(result.changes) > 0;
  }

  async listMemberChanges(roomId: string): Promise<MemberRecord[]> {
    const rows = this.#open()
      .prepare(`SELECT ${MEMBER_COLUMNS} FROM room_members WHERE room_id = ? AND (role_set_by IS NOT NULL OR removed_at IS NOT NULL) ORDER BY updated_at, user_id`)
      .all(roomId) as unknown as MemberRow[];
    return rows.map(memberOf);
  }

  async createTake(t: TakeRecord, maxPerRoom: number): Promise<boolean> {
    const db = this.#open();
    return transaction(db, () => {
      const row = db.prepare('SELECT COUNT(*) AS n FROM room_takes WHERE room_id = ?').get(t.roomId) as { n: number };
      if (row.n >= maxPerRoom) return false;
      db.prepare('INSERT INTO room_takes (id, room_id, name, content, created_by, saved_by, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)').run(
        t.id,
        t.roomId,
        t.name,
        JSON.stringify(t.content),
        t.createdBy,
        t.savedBy,
        t.createdAt,
      );
      return true;
    });
  }

  async listTakes(roomId: string): Promise<TakeRecord[]> {
    const rows = this.#open().prepare(`SELECT ${TAKE_COLUMNS} FROM room_takes WHERE room_id = ? ORDER BY created_at, id`).all(roomId) as unknown as TakeRow[];
    return rows.map(takeOf);
  }

  async getTake(roomId: string, id: string): Promise<TakeRecord | null> {
    const row = this.#open().prepare(`SELECT ${TAKE_COLUMNS} FROM room_takes WHERE room_id = ? AND id = ?`).get(roomId, id) as TakeRow | undefined;
    return row ? takeOf(row) : null;
  }

  async clearPromptFromTakes(roomId: string, prompt: { text: string; atMs: number }): Promise<number> {
    const r = this.#open()
      .prepare(
        `UPDATE room_takes SET content = json_set(content, '$.visual', json(?))
         WHERE room_id = ? AND json_extract(content, '$.visual.prompt') = ? AND json_extract(content, '$.visual.promptAtMs') = ?`,
      )
      .run(JSON.stringify(NO_PROMPT), roomId, prompt.text, prompt.atMs);
    return Number(r.changes);
  }

  async createInvite(i: Omit<InviteRecord, 'uses' | 'revokedAt'>): Promise<void> {
    this.#open()
      .prepare('INSERT INTO invites (id, room_id, role, max_uses, uses, created_by, created_at, expires_at) VALUES (?, ?, ?, ?, 0, ?, ?, ?)')
      .run(i.id, i.roomId, i.role, i.maxUses, i.createdBy, i.createdAt, i.expiresAt);
  }

  async getInvite(id: string): Promise<InviteRecord | null> {
    const row = this.#open().prepare(`SELECT ${INVITE_COLUMNS} FROM invites WHERE id = ?`).get(id) as InviteRow | undefined;
    return row ? inviteOf(row) : null;
  }

  async useInvite(id: string): Promise<InviteUse> {
    const db = this.#open();
    const result = db.prepare('UPDATE invites SET uses = uses + 1 WHERE id = ? AND revoked_at IS NULL AND (max_uses IS NULL OR uses < max_uses)').run(id);
    if (Number(result.changes) > 0) return 'ok';
    const row = db.prepare('SELECT revoked_at FROM invites WHERE id = ?').get(id) as { revoked_at: string | null } | undefined;
    return !row ? 'unknown' : row.revoked_at ? 'revoked' : 'exhausted';
  }

  async unuseInvite(id: string): Promise<void> {
    this.#open().prepare('UPDATE invites SET uses = uses - 1 WHERE id = ? AND uses > 0').run(id);
  }

  async revokeInvite(roomId: string, id: string): Promise<boolean> {
    const result = this.#open().prepare('UPDATE invites SET revoked_at = COALESCE(revoked_at, ?) WHERE id = ? AND room_id = ?').run(new Date().toISOString(), id, roomId);
    return Number(result.changes) > 0;
  }

  async findRenderByKey(idempotencyKey: string): Promise<RenderRecord | null> {
    const row = this.#open().prepare(`SELECT ${RENDER_COLUMNS} FROM renders WHERE idempotency_key = ?`).get(idempotencyKey) as RenderRow | undefined;
    return row ? renderOf(row) : null;
  }

  async createRender(render: Omit<RenderRecord, 'updatedAt' | 'result'>, idempotencyKey: string | null): Promise<{ render: RenderRecord; created: boolean }> {
    const db = this.#open();
    db.exec('BEGIN IMMEDIATE');
    try {
      if (idempotencyKey !== null) {
        const row = db.prepare(`SELECT ${RENDER_COLUMNS} FROM renders WHERE idempotency_key = ?`).get(idempotencyKey) as RenderRow | undefined;
        if (row) {
          db.exec('COMMIT');
          return { render: renderOf(row), created: false };
        }
      }
      db.prepare('INSERT INTO renders (id, room_id, kind, status, request, result, idempotency_key, created_at, updated_at) VALUES (?, ?, ?, ?, ?, NULL, ?, ?, ?)').run(
        render.id,
        render.roomId,
        render.kind,
        render.status,
        JSON.stringify(render.request),
        idempotencyKey,
        render.createdAt,
        render.createdAt,
      );
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
    return { render: { ...render, result: null, updatedAt: render.createdAt }, created: true };
  }

  async getRender(id: string): Promise<RenderRecord | null> {
    const row = this.#open().prepare(`SELECT ${RENDER_COLUMNS} FROM renders WHERE id = ?`).get(id) as RenderRow | undefined;
    return row ? renderOf(row) : null;
  }

  async updateRender(id: string, change: { status: RenderStatus; result?: unknown }): Promise<void> {
    const now = new Date().toISOString();
    const result =
      change.result === undefined
        ? this.#open().prepare('UPDATE renders SET status = ?, updated_at = ? WHERE id = ?').run(change.status, now, id)
        : this.#open().prepare('UPDATE renders SET status = ?, result = ?, updated_at = ? WHERE id = ?').run(change.status, JSON.stringify(change.result), now, id);
    if (Number(result.changes) === 0) throw new RenderNotFoundError(`no render "${id}"`);
  }

  async listRenders(statuses: readonly RenderStatus[]): Promise<RenderRecord[]> {
    if (statuses.length === 0) return [];
    const rows = this.#open()
      .prepare(`SELECT ${RENDER_COLUMNS} FROM renders WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at, id`)
      .all(...statuses) as unknown as RenderRow[];
    return rows.map(renderOf);
  }

  async createOrder(order: Omit<OrderRecord, 'updatedAt'>, idempotencyKey: string): Promise<{ order: OrderRecord; created: boolean }> {
    const db = this.#open();
    db.exec('BEGIN IMMEDIATE');
    try {
      const row = db.prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE idempotency_key = ?`).get(idempotencyKey) as OrderRow | undefined;
      if (row) {
        db.exec('COMMIT');
        return { order: orderOf(row), created: false };
      }
      db.prepare(
        'INSERT INTO orders (id, render_id, status, amount_cents, currency, idempotency_key, request, payment_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
      ).run(order.id, order.renderId, order.status, order.amountCents, order.currency, idempotencyKey, JSON.stringify(order.request), order.paymentId, order.createdAt, order.createdAt);
      db.exec('COMMIT');
    } catch (err) {
      db.exec('ROLLBACK');
      throw err;
    }
    return { order: { ...order, updatedAt: order.createdAt }, created: true };
  }

  async addChatMessage(roomId: string, message: StoredChatMessage, keep: number): Promise<void> {
    const db = this.#open();
    transaction(db, () => {
      db.prepare('INSERT OR IGNORE INTO chat_messages (room_id, id, at_ms, message) VALUES (?, ?, ?, ?)').run(roomId, message.id, message.atMs, JSON.stringify(message));
      // Bounded: whatever is older than the newest `keep` goes.
      db.prepare(
        'DELETE FROM chat_messages WHERE room_id = ? AND rowid NOT IN (SELECT rowid FROM chat_messages WHERE room_id = ? ORDER BY at_ms DESC, rowid DESC LIMIT ?)',
      ).run(roomId, roomId, keep);
    });
  }

  async listChatMessages(roomId: string, limit: number): Promise<StoredChatMessage[]> {
    const rows = this.#open()
      .prepare('SELECT message FROM chat_messages WHERE room_id = ? ORDER BY at_ms DESC, rowid DESC LIMIT ?')
      .all(roomId, limit) as unknown as { message: string }[];
    return rows.map((r) => JSON.parse(r.message) as StoredChatMessage).reverse();
  }

  async listMemberRenders(roomId: string, userId: string, limit: number): Promise<RenderRecord[]> {
    const rows = this.#open()
      .prepare(
        `SELECT ${RENDER_COLUMNS} FROM renders WHERE room_id = ? AND json_extract(request, '$.requestedBy.userId') = ? AND kind IN ('clip', 'loop', 'still') ORDER BY created_at DESC, id LIMIT ?`,
      )
      .all(roomId, userId, limit) as unknown as RenderRow[];
    return rows.map(renderOf);
  }

  async listMemberOrders(roomId: string, userId: string, limit: number): Promise<OrderRecord[]> {
    const rows = this.#open()
      .prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE json_extract(request, '$.roomId') = ? AND json_extract(request, '$.buyer.userId') = ? ORDER BY created_at DESC, id LIMIT ?`)
      .all(roomId, userId, limit) as unknown as OrderRow[];
    return rows.map(orderOf);
  }

  async getOrder(id: string): Promise<OrderRecord | null> {
    const row = this.#open().prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE id = ?`).get(id) as OrderRow | undefined;
    return row ? orderOf(row) : null;
  }

  async getOrderByPayment(paymentId: string): Promise<OrderRecord | null> {
    const row = this.#open().prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE payment_id = ?`).get(paymentId) as OrderRow | undefined;
    return row ? orderOf(row) : null;
  }

  async updateOrder(id: string, from: readonly OrderStatus[], change: Partial<Pick<OrderRecord, 'status' | 'paymentId' | 'renderId' | 'request'>>): Promise<boolean> {
    const sets: string[] = ['updated_at = ?'];
    const values: (string | number | null)[] = [new Date().toISOString()];
    if (change.status !== undefined) sets.push('status = ?'), values.push(change.status);
    if (change.paymentId !== undefined) sets.push('payment_id = ?'), values.push(change.paymentId);
    if (change.renderId !== undefined) sets.push('render_id = ?'), values.push(change.renderId);
    if (change.request !== undefined) sets.push('request = ?'), values.push(JSON.stringify(change.request));
    if (from.length === 0) return false;
    const result = this.#open()
      .prepare(`UPDATE orders SET ${sets.join(', ')} WHERE id = ? AND status IN (${from.map(() => '?').join(', ')})`)
      .run(...values, id, ...from);
    return Number(result.changes) > 0;
  }

  async listOrders(statuses: readonly OrderStatus[]): Promise<OrderRecord[]> {
    if (statuses.length === 0) return [];
    const rows = this.#open()
      .prepare(`SELECT ${ORDER_COLUMNS} FROM orders WHERE status IN (${statuses.map(() => '?').join(', ')}) ORDER BY created_at, id`)
      .all(...statuses) as unknown as OrderRow[];
    return rows.map(orderOf);
  }

  async createEntitlement(entitlement: Omit<EntitlementRecord, 'createdAt' | 'revokedAt'>): Promise<EntitlementRecord> {
    const db = this.#open();
    const now = new Date().toISOString();
    db.prepare('INSERT INTO entitlements (id, order_id, render_id, created_at) VALUES (?, ?, ?, ?) ON CONFLICT(order_id) DO NOTHING').run(
      entitlement.id,
      entitlement.orderId,
      entitlement.renderId,
      now,
    );
    return (await this.getEntitlementByOrder(entitlement.orderId))!;
  }

  async getEntitlementByOrder(orderId: string): Promise<EntitlementRecord | null> {
    const row = this.#open().prepare('SELECT id, order_id, render_id, created_at, revoked_at FROM entitlements WHERE order_id = ?').get(orderId) as
      | { id: string; order_id: string; render_id: string | null; created_at: string; revoked_at: string | null }
      | undefined;
    return row ? { id: row.id, orderId: row.order_id, renderId: row.render_id, createdAt: row.created_at, revokedAt: row.revoked_at } : null;
  }

  async revokeEntitlement(orderId: string): Promise<boolean> {
    const result = this.#open().prepare('UPDATE entitlements SET revoked_at = ? WHERE order_id = ? AND revoked_at IS NULL').run(new Date().toISOString(), orderId);
    return Number(result.changes) > 0;
  }

  async recordWebhookEvent(id: string): Promise<boolean> {
    const result = this.#open().prepare('INSERT INTO webhook_events (id, received_at) VALUES (?, ?) ON CONFLICT(id) DO NOTHING').run(id, new Date().toISOString());
    return Number(result.changes) > 0;
  }

  async ping(): Promise<void> {
    this.#open().prepare('SELECT 1').get();
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#db.close();
  }

  #open(): DatabaseSync {
    if (this.#closed) throw new StoreClosedError();
    return this.#db;
  }
}

function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec('BEGIN IMMEDIATE');
  try {
    const result = fn();
    db.exec('COMMIT');
    return result;
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
}

function currentVersion(db: DatabaseSync): number {
  const row = db.prepare('SELECT MAX(version) AS v FROM schema_migrations').get() as { v: number | null };
  return row.v ?? 0;
}

function migrate(db: DatabaseSync, migrations: readonly Migration[]): void {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`);
  const applied = currentVersion(db);
  const newest = migrations.at(-1)?.version ?? 0;
  if (applied > newest) {
    throw new Error(`the database is at schema version ${applied}, newer than this build knows (${newest}); run a newer Remixroom`);
  }
  for (const m of migrations) {
    if (m.version <= applied) continue;
    transaction(db, () => {
      db.exec(m.sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)').run(
        m.version,
        m.name,
        new Date().toISOString(),
      );
    });
  }
}
