// PostgreSQL's schema, numbered like server/store/migrations.ts: version N here means what
// version N means there, with the same tables and columns, so that `npm run migrate-store`
// copies a row column by column. Times stay the ISO strings the SQLite store writes (TEXT), and
// JSON stays the text it was written as (cast to jsonb where a query looks inside), so that a
// record reads back identical from either store. Text that is sorted or compared is COLLATE "C":
// byte order, as in SQLite, whatever the database's locale.
// Ordered, append-only. Never edit a migration that has shipped; add the next one.
import type { Migration } from './migrations.ts';

export const PG_MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'catalog, rooms, renders, orders',
    sql: `
      CREATE TABLE releases (
        id           TEXT COLLATE "C" PRIMARY KEY,
        title        TEXT NOT NULL,
        artist       TEXT NOT NULL,
        frames       BIGINT NOT NULL,
        duration_sec DOUBLE PRECISION NOT NULL,
        record       TEXT NOT NULL,
        ingested_at  TEXT COLLATE "C" NOT NULL
      );
      CREATE TABLE rooms (
        id          TEXT COLLATE "C" PRIMARY KEY,
        release_id  TEXT COLLATE "C" NOT NULL REFERENCES releases(id),
        created_at  TEXT COLLATE "C" NOT NULL,
        updated_at  TEXT COLLATE "C" NOT NULL,
        closed_at   TEXT COLLATE "C",
        doc         BYTEA,
        meta        TEXT NOT NULL DEFAULT '{}'
      );
      CREATE TABLE renders (
        id          TEXT COLLATE "C" PRIMARY KEY,
        room_id     TEXT COLLATE "C" NOT NULL,
        kind        TEXT NOT NULL,
        status      TEXT NOT NULL,
        request     TEXT NOT NULL,
        result      TEXT,
        idempotency_key TEXT COLLATE "C" UNIQUE,
        created_at  TEXT COLLATE "C" NOT NULL,
        updated_at  TEXT COLLATE "C" NOT NULL
      );
      CREATE TABLE orders (
        id          TEXT COLLATE "C" PRIMARY KEY,
        render_id   TEXT COLLATE "C",
        status      TEXT NOT NULL,
        amount_cents BIGINT NOT NULL,
        currency    TEXT NOT NULL,
        idempotency_key TEXT COLLATE "C" UNIQUE,
        request     TEXT NOT NULL,
        created_at  TEXT COLLATE "C" NOT NULL,
        updated_at  TEXT COLLATE "C" NOT NULL
      );
    `,
  },
  {
    version: 2,
    name: 'order payments, entitlements, webhook events',
    sql: `
      ALTER TABLE orders ADD COLUMN payment_id TEXT COLLATE "C";
      CREATE UNIQUE INDEX orders_payment_id ON orders(payment_id) WHERE payment_id IS NOT NULL;
      CREATE INDEX orders_status ON orders(status);
      CREATE TABLE entitlements (
        id          TEXT COLLATE "C" PRIMARY KEY,
        order_id    TEXT COLLATE "C" NOT NULL UNIQUE REFERENCES orders(id),
        render_id   TEXT COLLATE "C",
        created_at  TEXT COLLATE "C" NOT NULL
      );
      CREATE TABLE webhook_events (
        id          TEXT COLLATE "C" PRIMARY KEY,
        received_at TEXT COLLATE "C" NOT NULL
      );
    `,
  },
  {
    version: 3,
    name: "rooms' state timelines",
    sql: `
      ALTER TABLE rooms ADD COLUMN timeline TEXT;
    `,
  },
  {
    version: 4,
    name: 'room creators, members and their roles, invites, revocable entitlements',
    sql: `
      ALTER TABLE rooms ADD COLUMN creator_id TEXT COLLATE "C";
      CREATE TABLE room_members (
        room_id      TEXT COLLATE "C" NOT NULL,
        user_id      TEXT COLLATE "C" NOT NULL,
        name         TEXT NOT NULL,
        role         TEXT NOT NULL,
        role_set_by  TEXT COLLATE "C",
        invite_id    TEXT COLLATE "C",
        access_until TEXT COLLATE "C" NOT NULL,
        removed_at   TEXT COLLATE "C",
        created_at   TEXT COLLATE "C" NOT NULL,
        updated_at   TEXT COLLATE "C" NOT NULL,
        PRIMARY KEY (room_id, user_id)
      );
      CREATE TABLE invites (
        id          TEXT COLLATE "C" PRIMARY KEY,
        room_id     TEXT COLLATE "C" NOT NULL,
        role        TEXT NOT NULL,
        max_uses    INTEGER,
        uses        INTEGER NOT NULL DEFAULT 0,
        created_by  TEXT COLLATE "C",
        revoked_at  TEXT COLLATE "C",
        created_at  TEXT COLLATE "C" NOT NULL,
        expires_at  TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX invites_room ON invites(room_id);
      ALTER TABLE entitlements ADD COLUMN revoked_at TEXT COLLATE "C";
    `,
  },
  {
    version: 5,
    name: "rooms' takes",
    sql: `
      CREATE TABLE room_takes (
        id          TEXT COLLATE "C" PRIMARY KEY,
        room_id     TEXT COLLATE "C" NOT NULL,
        name        TEXT NOT NULL,
        content     TEXT NOT NULL,
        created_by  TEXT COLLATE "C" NOT NULL,
        saved_by    TEXT NOT NULL,
        created_at  TEXT COLLATE "C" NOT NULL
      );
      CREATE INDEX room_takes_room ON room_takes(room_id, created_at);
    `,
  },
  {
    version: 6,
    name: 'rooms locked to new joins',
    sql: `
      ALTER TABLE rooms ADD COLUMN locked_at TEXT COLLATE "C";
    `,
  },
  {
    version: 7,
    name: "rooms' chat history; renders and orders found by member",
    // seq stands in for SQLite's rowid: the order messages were kept in, for ties of at_ms.
    sql: `
      CREATE TABLE chat_messages (
        room_id     TEXT COLLATE "C" NOT NULL,
        id          TEXT COLLATE "C" NOT NULL,
        at_ms       BIGINT NOT NULL,
        message     TEXT NOT NULL,
        seq         BIGINT GENERATED BY DEFAULT AS IDENTITY,
        PRIMARY KEY (room_id, id)
      );
      CREATE INDEX chat_messages_room_at ON chat_messages(room_id, at_ms, seq);
      CREATE INDEX renders_room_member ON renders(room_id, ((request::jsonb) #>> '{requestedBy,userId}'));
      CREATE INDEX orders_room_buyer ON orders(((request::jsonb) #>> '{roomId}'), ((request::jsonb) #>> '{buyer,userId}'));
    `,
  },
  {
    version: 8,
    name: "rooms' fencing tokens",
    sql: `
      ALTER TABLE rooms ADD COLUMN fence BIGINT NOT NULL DEFAULT 0;
    `,
  },
];
