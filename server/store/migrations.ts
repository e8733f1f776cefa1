// Ordered, append-only. Never edit a migration that has shipped; add the next one.
export interface Migration {
  version: number;
  name: string;
  sql: string;
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'catalog, rooms, renders, orders',
    sql: `
      CREATE TABLE releases (
        id           TEXT PRIMARY KEY,
        title        TEXT NOT NULL,
        artist       TEXT NOT NULL,
        frames       INTEGER NOT NULL,
        duration_sec REAL NOT NULL,
        record       TEXT NOT NULL,     -- the ReleaseRecord as JSON
        ingested_at  TEXT NOT NULL
      );
      CREATE TABLE rooms (
        id          TEXT PRIMARY KEY,
        release_id  TEXT NOT NULL REFERENCES releases(id),
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL,
        closed_at   TEXT,
        doc         BLOB,               -- the Yjs document, encoded as one update
        meta        TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE renders (
        id          TEXT PRIMARY KEY,
        room_id     TEXT NOT NULL,
        kind        TEXT NOT NULL,      -- 'clip' | 'full'
        status      TEXT NOT NULL,      -- 'queued' | 'running' | 'done' | 'failed'
        request     TEXT NOT NULL,
        result      TEXT,
        idempotency_key TEXT UNIQUE,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
      );
      CREATE TABLE orders (
        id          TEXT PRIMARY KEY,
        render_id   TEXT,
        status      TEXT NOT NULL,
        amount_cents INTEGER NOT NULL,
        currency    TEXT NOT NULL,
        idempotency_key TEXT UNIQUE,
        request     TEXT NOT NULL,
        created_at  TEXT NOT NULL,
        updated_at  TEXT NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'order payments, entitlements, webhook events',
    sql: `
      ALTER TABLE orders ADD COLUMN payment_id TEXT;
      CREATE UNIQUE INDEX orders_payment_id ON orders(payment_id) WHERE payment_id IS NOT NULL;
      CREATE INDEX orders_status ON orders(status);
      CREATE TABLE entitlements (
        id          TEXT PRIMARY KEY,
        order_id    TEXT NOT NULL UNIQUE REFERENCES orders(id),
        render_id   TEXT,
        created_at  TEXT NOT NULL
      );
      CREATE TABLE webhook_events (
        id          TEXT PRIMARY KEY,
        received_at TEXT NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: "rooms' state timelines",
    sql: `
      ALTER TABLE rooms ADD COLUMN timeline TEXT;  -- the room's recent changes (SavedTimeline as JSON), saved with the doc
    `,
  },
];
