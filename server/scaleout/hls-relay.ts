// Scale-out for broadcast mode: one node encodes a room's HLS for every node.
//
//   key     <prefix>:hls-lease:<roomId>   the id of the node that encodes the room (room-lease.ts)
//   stream  <prefix>:hls:<roomId>         the encoding node's operations on the renditions (broadcast-renditions.ts)
//
// The node holding the lease runs the encoder and appends every operation it
// applies to its renditions (and a 'resume' entry before each segment's first
// chunk) to the room's Redis stream, trimmed to about maxLen entries. Every node
// serving the room's HLS follows the stream from its start (the oldest retained
// entry) and applies the same operations to its own renditions: the same
// playlists, numbers and bytes everywhere, whichever node a viewer reaches.
// When the encoding node dies, its lease expires; a node that has the room loaded
// takes it, applies what is left of the stream, appends a discontinuity and goes
// on with its own encoder: the numbering continues and players keep playing.
//
// Redis only relays: a node whose Redis connection fails keeps its renditions
// (they stop growing) and reads on from where it was once Redis is back.
import { RESP_TYPES, createClient, type RedisClientType } from 'redis';
import type { BroadcastRenditionName } from '../../media/live/broadcast-encoder.ts';
import type { CmafInit } from '../../media/live/cmaf.ts';
import type { BroadcastOp, BroadcastRenditions } from '../live/broadcast-renditions.ts';
import type { BroadcastRelay } from '../live/room-broadcast.ts';
import type { Logger } from '../logger.ts';
import { closeRedisClient } from '../util/redis-client.ts';
import { RoomLease } from './room-lease.ts';

export const HLS_LEASE_TTL_MS = 3000;
export const HLS_LEASE_RENEW_MS = 1000;
/**
 * About a minute of a two-rendition broadcast (two chunks a second each, and a resume per segment):
 * several times the playlists' window (6 segments and 2 retained), so that a node starting to
 * follow rebuilds the whole window from the oldest resume point it finds.
 */
export const HLS_STREAM_MAX_LEN = 300;
/** A stream nobody appended a segment to for this long is deleted. */
const STREAM_TTL_MS = 120_000;
const DEFAULT_BLOCK_MS = 500;
const READ_COUNT = 500;
const BUFFERS = { typeMapping: { [RESP_TYPES.BLOB_STRING]: Buffer } } as const;

export interface HlsRelayOptions {
  redisUrl: string;
  nodeId: string;
  log: Logger;
  keyPrefix?: string;
  leaseTtlMs?: number;
  leaseRenewMs?: number;
  maxLen?: number;
  /** How long one XREAD waits for entries (a room followed meanwhile waits for the next). */
  blockMs?: number;
}

interface Follow {
  roomId: string;
  key: string;
  renditions: BroadcastRenditions;
  /** The last entry applied (or skipped), '0' before the first. */
  lastId: string;
  /** Who appended the last entry read, and its number: a gap in one node's numbers is a loss. */
  lastNode: string | null;
  lastSeq: number;
}

export class HlsRelay {
  readonly nodeId: string;
  readonly #opts: HlsRelayOptions;
  readonly #log: Logger;
  /** Appends, lease commands, catch-up reads. */
  readonly #writer: RedisClientType;
  /** Blocking reads only (XREAD BLOCK holds its connection). */
  readonly #reader: RedisClientType;
  readonly #follows = new Map<string, Follow>();
  #wake: (() => void) | null = null;
  #loop: Promise<void> | null = null;
  #closed = false;
  #appendFailing = false;
  #readFailing = false;

  private constructor(opts: HlsRelayOptions, log: Logger, writer: RedisClientType, reader: RedisClientType) {
    this.#opts = opts;
    this.nodeId = opts.nodeId;
    this.#log = log;
    this.#writer = writer;
    this.#reader = reader;
    this.#loop = this.#readLoop();
  }

  static async create(opts: HlsRelayOptions): Promise<HlsRelay> {
    const log = opts.log.child({ component: 'hls-relay', nodeId: opts.nodeId });
    const writer: RedisClientType = createClient({ url: opts.redisUrl, socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 2000) } });
    const reader: RedisClientType = writer.duplicate();
    for (const [client, role] of [[writer, 'hls writer'], [reader, 'hls reader']] as const) {
      client.on('error', (err: Error) => log.debug({ err: err.message, role }, 'Redis unreachable; retrying'));
    }
    try {
      await Promise.all([writer.connect(), reader.connect()]);
    } catch (err) {
      writer.destroy();
      reader.destroy();
      throw err;
    }
    return new HlsRelay(opts, log, writer, reader);
  }

  streamKey(roomId: string): string {
    return `${this.#prefix}:hls:${roomId}`;
  }

  leaseKey(roomId: string): string {
    return `${this.#prefix}:hls-lease:${roomId}`;
  }

  /**
   * Applies the room's stream to `renditions` from its oldest retained entry on, then as entries
   * come (this node's own entries skipped: it applied them as it made them). Returns the unfollow.
   */
  follow(roomId: string, renditions: BroadcastRenditions): () => void {
    if (this.#closed) return () => {};
    const follow: Follow = { roomId, key: this.streamKey(roomId), renditions, lastId: '0', lastNode: null, lastSeq: 0 };
    this.#follows.set(roomId, follow);
    this.#wake?.();
    return () => {
      if (this.#follows.get(roomId) === follow) this.#follows.delete(roomId);
    };
  }

  /** The room's side of it for RoomBroadcast: its encoding lease, appending, catching up. */
  room(roomId: string): BroadcastRelay {
    let lease: RoomLease | null = null;
    /** This node's entries for the room, numbered from 1: followers see a gap when one was lost. */
    let seq = 0;
    return {
      start: (events) => {
        if (this.#closed || lease) return;
        lease = new RoomLease({
          client: this.#writer,
          key: this.leaseKey(roomId),
          nodeId: this.nodeId,
          ttlMs: this.#opts.leaseTtlMs ?? HLS_LEASE_TTL_MS,
          renewMs: this.#opts.leaseRenewMs ?? HLS_LEASE_RENEW_MS,
          log: this.#log.child({ roomId }),
          onAcquired: events.acquired,
          onLost: events.lost,
        });
        void lease.start();
      },
      get holds() {
        return lease?.holds ?? false;
      },
      catchUp: () => this.#catchUp(roomId),
      publish: (ops) => {
        for (const op of ops) this.#append(roomId, op, ++seq);
      },
      stop: async () => {
        const l = lease;
        lease = null;
        await l?.close();
      },
    };
  }

  /** Stops following and closes both connections. Idempotent. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#follows.clear();
    this.#wake?.();
    // The blocked XREAD answers within blockMs; then the loop ends.
    await Promise.all([closeRedisClient(this.#writer, this.#log, 'hls writer'), closeRedisClient(this.#reader, this.#log, 'hls reader')]);
    await this.#loop;
  }

  get #prefix(): string {
    return this.#opts.keyPrefix ?? 'remixroom';
  }

  #append(roomId: string, op: BroadcastOp, seq: number): void {
    const key = this.streamKey(roomId);
    const fields = encodeOp(op);
    const maxLen = String(this.#opts.maxLen ?? HLS_STREAM_MAX_LEN);
    // One connection, commands in order: the stream holds the operations as they were applied.
    this.#writer.sendCommand(['XADD', key, 'MAXLEN', '~', maxLen, '*', 'n', this.nodeId, 's', String(seq), ...fields]).then(
      () => {
        if (this.#appendFailing) this.#log.info({ roomId }, 'appending the broadcast to Redis works again');
        this.#appendFailing = false;
      },
      (err: unknown) => {
        if (!this.#appendFailing) this.#log.warn({ err, roomId }, 'appending the broadcast to Redis failed: other nodes miss it');
        this.#appendFailing = true;
      },
    );
    if (op.type === 'resume') this.#writer.sendCommand(['PEXPIRE', key, String(STREAM_TTL_MS)]).catch(() => {});
  }

  /** Reads what the stream holds beyond what the room's follower applied, now (not blocking). */
  async #catchUp(roomId: string): Promise<void> {
    const follow = this.#follows.get(roomId);
    if (!follow) return;
    for (;;) {
      const reply = await this.#writer.sendCommand(['XREAD', 'COUNT', String(READ_COUNT), 'STREAMS', follow.key, follow.lastId], BUFFERS);
      const entries = streamEntries(reply).get(follow.key) ?? [];
      for (const [id, fields] of entries) this.#deliver(follow, id, fields);
      if (entries.length < READ_COUNT) return;
    }
  }

  async #readLoop(): Promise<void> {
    while (!this.#closed) {
      if (this.#follows.size === 0) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = null;
        continue;
      }
      const follows = [...this.#follows.values()];
      try {
        const reply = await this.#reader.sendCommand(
          ['XREAD', 'COUNT', String(READ_COUNT), 'BLOCK', String(this.#opts.blockMs ?? DEFAULT_BLOCK_MS), 'STREAMS', ...follows.map((f) => f.key), ...follows.map((f) => f.lastId)],
          BUFFERS,
        );
        const byKey = streamEntries(reply);
        for (const follow of follows) {
          if (this.#follows.get(follow.roomId) !== follow) continue;
          for (const [id, fields] of byKey.get(follow.key) ?? []) this.#deliver(follow, id, fields);
        }
        if (this.#readFailing) this.#log.info('reading broadcasts from Redis works again');
        this.#readFailing = false;
      } catch (err) {
        if (this.#closed) return;
        if (!this.#readFailing) this.#log.warn({ err }, 'reading broadcasts from Redis failed; retrying');
        this.#readFailing = true;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  #deliver(follow: Follow, id: string, fields: Map<string, Buffer>): void {
    if (compareIds(id, follow.lastId) <= 0) return; // applied already (a catch-up and the loop read it both)
    follow.lastId = id;
    const node = fields.get('n')?.toString() ?? '';
    const seq = Number(fields.get('s')?.toString());
    // A gap in the numbers of the node that appends (an append that failed, entries trimmed before
    // this node read them): applying what follows would make other playlists than that node's.
    const gap = node === follow.lastNode && seq !== follow.lastSeq + 1;
    follow.lastNode = node;
    follow.lastSeq = seq;
    if (node === this.nodeId) return;
    if (gap) {
      this.#log.warn({ key: follow.key, id }, 'broadcast entries were lost: the renditions start again from the next segment');
      follow.renditions.resync();
    }
    let op: BroadcastOp;
    try {
      op = decodeOp(fields);
    } catch (err) {
      this.#log.warn({ err, key: follow.key, id }, 'an unreadable broadcast entry was skipped');
      return;
    }
    follow.renditions.apply(op);
  }
}

/** "<ms>-<seq>" ids in order. */
export function compareIds(a: string, b: string): number {
  const [am = '0', as = '0'] = a.split('-');
  const [bm = '0', bs = '0'] = b.split('-');
  const d = BigInt(am) - BigInt(bm);
  if (d !== 0n) return d < 0n ? -1 : 1;
  const e = BigInt(as) - BigInt(bs);
  return e === 0n ? 0 : e < 0n ? -1 : 1;
}

/** XREAD's reply (RESP2: [[key, entries]...]; RESP3: a map key → entries) as key → [id, fields]. */
function streamEntries(reply: unknown): Map<string, [string, Map<string, Buffer>][]> {
  const out = new Map<string, [string, Map<string, Buffer>][]>();
  if (!reply) return out;
  let pairs: [unknown, unknown][];
  if (reply instanceof Map) pairs = [...reply.entries()];
  else if (Array.isArray(reply)) pairs = reply.map((r) => [(r as unknown[])[0], (r as unknown[])[1]]);
  else pairs = Object.entries(reply as Record<string, unknown>);
  for (const [key, entries] of pairs) {
    const list: [string, Map<string, Buffer>][] = [];
    for (const entry of entries as [Buffer, Buffer[]][]) {
      const fields = new Map<string, Buffer>();
      const flat = entry[1] ?? [];
      for (let i = 0; i + 1 < flat.length; i += 2) fields.set(flat[i]!.toString(), flat[i + 1]!);
      list.push([entry[0].toString(), fields]);
    }
    out.set(String(key), list);
  }
  return out;
}

const EMPTY = Buffer.alloc(0);

/** An operation as stream fields: t (type), r (rendition), m (JSON of the rest), d (its bytes). */
export function encodeOp(op: BroadcastOp): (string | Buffer)[] {
  switch (op.type) {
    case 'create':
      return ['t', op.type, 'r', op.rendition, 'm', JSON.stringify({ partTargetSec: op.partTargetSec, firstNumber: op.firstNumber })];
    case 'resume': {
      const { init, ...at } = op.at;
      const meta = { partTargetSec: op.partTargetSec, at: { ...at, init: { id: init.id, codecs: init.codecs, contentType: init.contentType } }, tracks: op.cmaf.tracks, sameData: init.data.equals(op.cmaf.data) };
      return ['t', op.type, 'r', op.rendition, 'm', JSON.stringify(meta), 'd', init.data, ...(meta.sameData ? [] : ['c', op.cmaf.data])];
    }
    case 'init':
      return ['t', op.type, 'r', op.rendition, 'm', JSON.stringify({ tracks: op.init.tracks }), 'd', op.init.data];
    case 'chunk': {
      const { data, ...rest } = op.chunk;
      return ['t', op.type, 'r', op.rendition, 'm', JSON.stringify(rest), 'd', data];
    }
    case 'discontinuity':
    case 'end':
      return ['t', op.type];
  }
}

export function decodeOp(fields: Map<string, Buffer>): BroadcastOp {
  const type = fields.get('t')?.toString();
  const rendition = fields.get('r')?.toString();
  const meta = fields.has('m') ? (JSON.parse(fields.get('m')!.toString()) as Record<string, unknown>) : {};
  const data = fields.get('d') ?? EMPTY;
  if (type === 'discontinuity' || type === 'end') return { type };
  if (rendition !== 'audio' && rendition !== 'video') throw new Error(`unknown rendition '${rendition}'`);
  const name: BroadcastRenditionName = rendition;
  switch (type) {
    case 'create':
      return { type, rendition: name, partTargetSec: Number(meta['partTargetSec']), ...(typeof meta['firstNumber'] === 'number' ? { firstNumber: meta['firstNumber'] } : {}) };
    case 'resume': {
      const at = meta['at'] as Record<string, unknown> & { init: { id: number; codecs: string; contentType: string } };
      const cmaf: CmafInit = { data: meta['sameData'] ? data : (fields.get('c') ?? EMPTY), tracks: meta['tracks'] as CmafInit['tracks'] };
      return {
        type,
        rendition: name,
        partTargetSec: Number(meta['partTargetSec']),
        at: { ...(at as unknown as Omit<BroadcastOpResume['at'], 'init'>), init: { ...at.init, data } },
        cmaf,
      };
    }
    case 'init':
      return { type, rendition: name, init: { data, tracks: meta['tracks'] as CmafInit['tracks'] } };
    case 'chunk':
      return {
        type,
        rendition: name,
        chunk: { data, durationSec: Number(meta['durationSec']), startSec: Number(meta['startSec']), independent: meta['independent'] === true, wallClockMs: Number(meta['wallClockMs']) },
      };
    default:
      throw new Error(`unknown operation '${type}'`);
  }
}

type BroadcastOpResume = Extract<BroadcastOp, { type: 'resume' }>;
