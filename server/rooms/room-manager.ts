// Owns the loaded rooms of this process: opens each once (concurrent opens share
// one promise), forgets it when it closes, and closes them all on shutdown.
import crypto from 'node:crypto';
import type { RoomRelease } from '../../shared/room-doc.ts';
import type { Logger } from '../logger.ts';
import type { ReleaseRecord, Store } from '../store/store.ts';
import { ClientOwners } from './client-owners.ts';
import { Room, type RoomFencing, type RoomOptions } from './room.ts';

export interface RoomTimings {
  graceMs: number;
  saveDebounceMs: number;
  saveMaxWaitMs: number;
  /** Kept beyond the longest clip, for the render's own slack. */
  timelineSlackMs: number;
}

export const DEFAULT_ROOM_TIMINGS: RoomTimings = { graceMs: 30_000, saveDebounceMs: 500, saveMaxWaitMs: 3000, timelineSlackMs: 30_000 };

export class RoomNotFoundError extends Error {
  override readonly name = 'RoomNotFoundError';
}
export class RoomEndedError extends Error {
  override readonly name = 'RoomEndedError';
}

export interface RoomManagerOptions {
  store: Store;
  log: Logger;
  timings?: Partial<RoomTimings>;
  now?: () => number;
  /** Called for each room opened, before anyone joins it (the scale-out bridge hooks in here). */
  onRoomOpened?: (room: Room) => Promise<void> | void;
  /** Scale-out: how each room saves (with the fencing token of its lease); without it, rooms save as they are. */
  fencing?: (roomId: string) => RoomFencing;
}

export const ROOM_ID = /^[A-Za-z0-9_-]{8,32}$/;

/**
 * How long a room's client-id owners are remembered after it unloads. Members come back with
 * the ids they had (and edits made meanwhile); were the ids free, whoever came back first could
 * take them (see ClientOwners).
 */
const CLIENT_OWNERS_KEPT_MS = 10 * 60_000;

export class RoomManager {
  readonly #opts: RoomManagerOptions;
  readonly #timings: RoomTimings;
  readonly #rooms = new Map<string, Room>();
  readonly #opening = new Map<string, Promise<Room>>();
  /** Each room's client-id owners, across its loads; `until` is when an unloaded room's are forgotten. */
  readonly #clientOwners = new Map<string, { owners: ClientOwners; until: number }>();
  /**
   * The rooms loaded on one release share one RoomRelease (~3 KB each otherwise) for as long as
   * the release is unchanged: `key` is its JSON. Rooms only read it.
   */
  readonly #releases = new Map<string, { key: string; release: RoomRelease }>();
  #closed = false;

  constructor(opts: RoomManagerOptions) {
    this.#opts = opts;
    this.#timings = { ...DEFAULT_ROOM_TIMINGS, ...opts.timings };
  }

  /** Makes a new room on a release, opened by `creatorId`; returns its id. */
  async create(release: ReleaseRecord, creatorId: string | null = null): Promise<string> {
    const id = crypto.randomBytes(9).toString('base64url');
    const now = (this.#opts.now ?? Date.now)();
    await this.#opts.store.createRoom({
      id,
      releaseId: release.id,
      createdAt: new Date(now).toISOString(),
      doc: Room.initialDoc(toRoomRelease(release), now),
      creatorId,
    });
    return id;
  }

  /**
   * The loaded room, loading it if needed. Rejects for an unknown or ended room. A room that is
   * closing (saving on its way out, after its grace period) is not handed out: it is loaded again
   * once it has closed, from what it saved.
   */
  open(roomId: string): Promise<Room> {
    if (this.#closed) return Promise.reject(new Error('the server is shutting down'));
    const loaded = this.#rooms.get(roomId);
    if (loaded && !loaded.closing) return Promise.resolve(loaded);
    let opening = this.#opening.get(roomId);
    if (!opening) {
      opening = (loaded ? loaded.whenClosed().then(() => this.#load(roomId)) : this.#load(roomId)).finally(() => this.#opening.delete(roomId));
      this.#opening.set(roomId, opening);
    }
    return opening;
  }

  get(roomId: string): Room | undefined {
    return this.#rooms.get(roomId);
  }

  get size(): number {
    return this.#rooms.size;
  }

  rooms(): Room[] {
    return [...this.#rooms.values()];
  }

  /** Ends a room for good: everyone is disconnected and it cannot be joined again. */
  async end(roomId: string): Promise<void> {
    await this.#opts.store.endRoom(roomId);
    await this.#rooms.get(roomId)?.close('ended');
  }

  /** Saves and closes every room; later opens are refused. */
  async closeAll(): Promise<void> {
    this.#closed = true;
    await Promise.allSettled([...this.#opening.values()]);
    await Promise.all([...this.#rooms.values()].map((r) => r.close('shutdown')));
    this.#clientOwners.clear();
    this.#releases.clear();
  }

  #sharedRelease(fresh: RoomRelease): RoomRelease {
    const key = JSON.stringify(fresh);
    const known = this.#releases.get(fresh.id);
    if (known && known.key === key) return known.release;
    this.#releases.set(fresh.id, { key, release: fresh });
    return fresh;
  }

  async #load(roomId: string): Promise<Room> {
    const record = await this.#opts.store.getRoom(roomId);
    if (!record) throw new RoomNotFoundError(`no room "${roomId}"`);
    if (record.closedAt) throw new RoomEndedError(`room "${roomId}" has ended`);
    const release = await this.#opts.store.getRelease(record.releaseId);
    if (!release) throw new RoomNotFoundError(`the release of room "${roomId}" is gone`);
    const now = (this.#opts.now ?? Date.now)();
    // No timer: what is due is forgotten here, when a room loads.
    for (const [id, kept] of this.#clientOwners) if (kept.until <= now) this.#clientOwners.delete(id);
    // A loaded room holds its own; the entry here only has to outlive it (its close renews it).
    const owners = this.#clientOwners.get(roomId)?.owners ?? new ClientOwners();
    this.#clientOwners.set(roomId, { owners, until: now + CLIENT_OWNERS_KEPT_MS });
    const options: RoomOptions = {
      store: this.#opts.store,
      log: this.#opts.log,
      release: this.#sharedRelease(toRoomRelease(release)),
      graceMs: this.#timings.graceMs,
      saveDebounceMs: this.#timings.saveDebounceMs,
      saveMaxWaitMs: this.#timings.saveMaxWaitMs,
      timelineRetentionMs: release.manifest.rules.clips.freeSeconds * 1000 + this.#timings.timelineSlackMs,
      ...(this.#opts.now ? { now: this.#opts.now } : {}),
      ...(this.#opts.fencing ? { fencing: this.#opts.fencing(roomId) } : {}),
      clientOwners: owners,
      creatorId: record.creatorId,
    };
    const room = await Room.load(roomId, options);
    try {
      await this.#opts.onRoomOpened?.(room);
      // The store decides roles; a document saved before a change reached it learns it here.
      const changes = await this.#opts.store.listMemberChanges(roomId);
      if (!room.closed) room.mirrorMembers(changes.map((m) => (m.removedAt ? { userId: m.userId, removed: true } : { userId: m.userId, role: m.role })));
      // The lock too: read again (not from the record above), so that a lock set while this loaded is not missed.
      const summary = await this.#opts.store.getRoomSummary(roomId);
      if (!room.closed && summary) room.mirrorLock(summary.lockedAt !== null);
    } catch (err) {
      // Never keep a room whose setup failed: it would hold its timers and never be served.
      await room.close('error');
      throw err;
    }
    if (this.#closed) {
      await room.close('shutdown');
      throw new Error('the server is shutting down');
    }
    this.#rooms.set(roomId, room);
    room.once('close', (reason) => {
      if (this.#rooms.get(roomId) === room) this.#rooms.delete(roomId);
      if (reason === 'ended') this.#clientOwners.delete(roomId);
      else this.#clientOwners.set(roomId, { owners, until: (this.#opts.now ?? Date.now)() + CLIENT_OWNERS_KEPT_MS });
    });
    // Nobody may have joined by the time it loaded; the grace period still applies.
    const loader = {};
    room.hold(loader);
    room.unhold(loader);
    return room;
  }
}

export function toRoomRelease(r: ReleaseRecord): RoomRelease {
  return {
    id: r.id,
    durationSec: r.durationSec,
    bpm: r.manifest.bpm ?? null,
    stems: r.stems.map((s) => ({ id: s.id, title: s.title })),
    excerpts: r.manifest.excerpts.map((e) => ({ ...e })),
    artwork: r.artwork.filter((a) => a.consent).map((a) => ({ id: a.id, title: a.title, tags: a.tags, palette: a.palette ?? [] })),
    rules: r.manifest.rules,
  };
}
