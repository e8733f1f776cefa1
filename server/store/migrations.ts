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
  {
    version: 4,
    name: 'room creators, members and their roles, invites, revocable entitlements',
    sql: `
      ALTER TABLE rooms ADD COLUMN creator_id TEXT;          -- the member who opened the room; no co-host can demote or remove them
      CREATE TABLE room_members (
        room_id      TEXT NOT NULL,
        user_id      TEXT NOT NULL,
        name         TEXT NOT NULL,
        role         TEXT NOT NULL,                        -- the member's role now: the one source of truth for every node
        role_set_by  TEXT,                                 -- who last changed it (null: as given at joining)
        invite_id    TEXT,                                 -- the invite it joined through, if any
        access_until TEXT NOT NULL,                        -- tokens are refreshed until then
        removed_at   TEXT,                                 -- removed by a host: no token of theirs works again
        created_at   TEXT NOT NULL,
        updated_at   TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
      );
      CREATE TABLE invites (
        id          TEXT PRIMARY KEY,                      -- the invite token's subject
        room_id     TEXT NOT NULL,
        role        TEXT NOT NULL,
        max_uses    INTEGER,                               -- null: as many as its rate limit lets through
        uses        INTEGER NOT NULL DEFAULT 0,
        created_by  TEXT,
        revoked_at  TEXT,
        created_at  TEXT NOT NULL,
        expires_at  TEXT NOT NULL
      );
      CREATE INDEX invites_room ON invites(room_id);
      ALTER TABLE entitlements ADD COLUMN revoked_at TEXT;   -- set when the payment was refunded
    `,
  },
  {
    version: 5,
    name: "rooms' takes",
    sql: `
      CREATE TABLE room_takes (
        id          TEXT PRIMARY KEY,
        room_id     TEXT NOT NULL,
        name        TEXT NOT NULL,
        content     TEXT NOT NULL,                         -- the TakeContent as JSON: mix, arrangement, visuals
        created_by  TEXT NOT NULL,                         -- the member's user id
        saved_by    TEXT NOT NULL,                         -- their display name then
        created_at  TEXT NOT NULL
      );
      CREATE INDEX room_takes_room ON room_takes(room_id, created_at);
    `,
  },
  {
    version: 6,
    name: 'rooms locked to new joins',
    sql: `
      ALTER TABLE rooms ADD COLUMN locked_at TEXT;           -- set while a host keeps new people out (no link lets anyone in)
    `,
  },
  {
    version: 7,
    name: "rooms' chat history; renders and orders found by member",
    sql: `
      CREATE TABLE chat_messages (
        room_id     TEXT NOT NULL,
        id          TEXT NOT NULL,
        at_ms       INTEGER NOT NULL,
        message     TEXT NOT NULL,                     -- the ChatMessage as JSON, as it was sent to the room
        PRIMARY KEY (room_id, id)
      );
      CREATE INDEX chat_messages_room_at ON chat_messages(room_id, at_ms);
      CREATE INDEX renders_room_member ON renders(room_id, json_extract(request, '$.requestedBy.userId'));
      CREATE INDEX orders_room_buyer ON orders(json_extract(request, '$.roomId'), json_extract(request, '$.buyer.userId'));
    `,
  },
  {
    version: 8,
    name: "rooms' fencing tokens",
    sql: `
      ALTER TABLE rooms ADD COLUMN fence INTEGER NOT NULL DEFAULT 0;  -- the newest fencing token handed out: saves with an older one are refused
    `,
  },
];
