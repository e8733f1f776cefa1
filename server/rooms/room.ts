// A room owns everything made for it: its Yjs document and awareness, the guard
// that checks members' updates, its sync peers, its state timeline, its save and
// grace timers. close() undoes all of it, once.
import { EventEmitter } from 'node:events';
import * as Y from 'yjs';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import {
  REMOVED_KEPT,
  ROOT_MAPS,
  checkChange,
  effectiveRange,
  VISUAL_HISTORY_LIMIT,
  VISUAL_KEYS,
  type GeneratedVisual,
  normalizeRoomDoc,
  pathOf,
  readRoomState,
  readRules,
  type HistoryEntry,
  type RoomRelease,
  type RoomRules,
  type RoomState,
} from '../../shared/room-doc.ts';
import { isGeneratedArtworkId } from '../../shared/visual-params.ts';
import { GENERATED_EFFECT } from './prompt-visuals.ts';
import { SYNC_CLOSE, type Refusal } from '../../shared/refusals.ts';
import type { Role } from '../../shared/roles.ts';
import { transportPosition } from '../../shared/transport.ts';
import { MASTER_CONTROLS, MASTER_CONTROL_NAMES, STEM_CONTROLS, STEM_CONTROL_NAMES, clampToRange, type ControlRange } from '../../shared/controls.ts';
import type { TakeContent } from '../../shared/takes.ts';
import type { Logger } from '../logger.ts';
import { StaleFenceError, type Store } from '../store/store.ts';
import { ClientOwners } from './client-owners.ts';
import { DocGuard, trimDecodedContent } from './doc-guard.ts';
import { MAX_SAVED_TIMELINE_BYTES, StateTimeline, type JsonState } from './timeline.ts';

export interface Member {
  sessionId: string;
  userId: string;
  name: string;
  /**
   * The member's role when it connected, read from the store (never from its token); a change
   * since reaches the room's rules (rules.roles), which override it.
   */
  baseRole: Role;
  /** Where the connection comes from, as the limits key it (limitAddress). */
  address: string;
}

/** A member's connection to the room's document (a y-websocket connection). */
export interface SyncPeer {
  readonly member: Member;
  send(message: Uint8Array): void;
  /** The same message to many peers: framed once for all of them (see Broadcast). */
  sendBroadcast?(broadcast: Broadcast): void;
  close(code: number, reason: string): void;
}

/**
 * One message going to every peer of a room. Its WebSocket frame (binary, final, unmasked: a
 * server's frame) is built once, on first use, and written as it is to each peer's socket, instead
 * of being framed and written in two parts for each peer: at 500 peers that is about a third less
 * time in the send loop (measured with ws 8 on this machine).
 */
export class Broadcast {
  readonly message: Uint8Array;
  #frame: Buffer | null = null;

  constructor(message: Uint8Array) {
    this.message = message;
  }

  get frame(): Buffer {
    if (this.#frame) return this.#frame;
    const n = this.message.length;
    const header = n < 126 ? 2 : n < 65_536 ? 4 : 10;
    const frame = Buffer.allocUnsafe(header + n);
    frame[0] = 0x82; // FIN + binary
    if (header === 2) frame[1] = n;
    else if (header === 4) {
      frame[1] = 126;
      frame.writeUInt16BE(n, 2);
    } else {
      frame[1] = 127;
      frame.writeBigUInt64BE(BigInt(n), 2);
    }
    frame.set(this.message, header);
    this.#frame = frame;
    return frame;
  }

  sendTo(peer: SyncPeer): void {
    if (peer.sendBroadcast) peer.sendBroadcast(this);
    else peer.send(this.message);
  }
}

export type RoomCloseReason = 'empty' | 'ended' | 'shutdown' | 'error';

export type RoomEvents = {
  close: [reason: RoomCloseReason];
  /** An update applied to the document, with its origin (for scale-out relays). */
  update: [update: Uint8Array, origin: unknown];
  awareness: [update: Uint8Array, origin: unknown];
  refused: [member: Member, refusal: Refusal];
  /** The rules (roles included) changed. */
  rules: [rules: RoomRules];
  /** Who holds the room changed. */
  holders: [count: number];
};

export interface RoomOptions {
  store: Store;
  log: Logger;
  release: RoomRelease;
  now?: () => number;
  /** How long an empty room stays loaded. */
  graceMs: number;
  saveDebounceMs: number;
  saveMaxWaitMs: number;
  timelineRetentionMs: number;
  /**
   * How long a closing room keeps trying to save when the store is away (a database outage
   * while the last member leaves, or a shutdown during one): its unsaved edits live nowhere else.
   */
  closeSaveMs?: number;
  /** Scale-out: the fencing token this node saves the document with (one node at a time stores a room). */
  fencing?: RoomFencing;
  /** Who writes under which client id; the manager keeps it across loads of the room. */
  clientOwners?: ClientOwners;
  /** The member who opened the room (null for a room from before this was recorded). */
  creatorId?: string | null;
}

/**
 * How a room in scale-out saves: only with the fencing token of the node that holds its lease,
 * which the store checks. Without it (one process), the room saves as it is.
 */
export interface RoomFencing {
  /** The token to save with now; null while this node does not store the room (no lease, or no token yet). */
  fence(): number | null;
  /** The store refused a save with this token: a newer one was taken since, by a node that stores the room now. */
  refused(err: StaleFenceError): void;
}

export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** Origin of the server's own changes. */
export const SERVER_ORIGIN = Object.freeze({ kind: 'server' as const });
/** Origin of a document loaded from the store. */
const LOAD_ORIGIN = Object.freeze({ kind: 'load' as const });

export const MESSAGE_SYNC = 0;
export const MESSAGE_AWARENESS = 1;
export const MESSAGE_AUTH = 2;
export const MESSAGE_QUERY_AWARENESS = 3;
const SYNC_UPDATE = 2;
/** Largest awareness state (JSON) a member may publish. */
const MAX_AWARENESS_STATE_BYTES = 4096;
const utf8 = new TextDecoder();
/** Awareness changes go out to the peers together, at most this often (see #scheduleAwareness). */
const AWARENESS_FLUSH_MS = 100;
/** Wait before a failed save is tried again (the database away), doubling up to the most: edits keep applying in memory meanwhile. */
const SAVE_RETRY_MS = 1000;
const SAVE_RETRY_MAX_MS = 5000;
/** A closing room's last save is tried for this long while the store is away. */
const CLOSE_SAVE_MS = 15_000;
/**
 * Renewals (a state sent again unchanged, which every stock provider does every 15 s so that
 * others do not time it out after 30 s) wait up to this long, or go with the next change.
 */
const AWARENESS_RENEWAL_FLUSH_MS = 1000;

export class Room extends EventEmitter<RoomEvents> {
  readonly id: string;
  readonly release: RoomRelease;
  /** The member who opened the room: nobody can demote or remove them (null: not recorded). */
  readonly creatorId: string | null;
  readonly doc: Y.Doc;
  readonly awareness: awarenessProtocol.Awareness;
  readonly timeline: StateTimeline;
  readonly log: Logger;
  readonly #opts: RoomOptions;
  readonly #now: () => number;
  readonly #guard: DocGuard;
  readonly #peers = new Set<SyncPeer>();
  /** Awareness client ids each peer speaks for. */
  readonly #peerClients = new Map<SyncPeer, Set<number>>();
  /**
   * The user each client id belongs to, for the document (the guard checks it) and for awareness:
   * a member keeps its id across reconnects, and nobody else can write under it, or take its
   * awareness over (and silence it with a huge clock) while it is away.
   */
  readonly #clientOwners: ClientOwners;
  readonly #holders = new Set<object>();
  readonly #disposers: (() => void)[] = [];
  #graceTimer: NodeJS.Timeout | null = null;
  /** Awareness client ids changed since the peers were last sent the changes, and when that was (performance.now()). */
  readonly #awarenessChanged = new Set<number>();
  /** Clients whose state was only renewed (same content, a newer clock): not urgent. */
  readonly #awarenessRenewed = new Set<number>();
  /** The clients of the awareness 'change' event that comes just before its 'update' event. */
  #awarenessContentChanged: ReadonlySet<number> = new Set();
  #awarenessTimer: NodeJS.Timeout | null = null;
  #renewalTimer: NodeJS.Timeout | null = null;
  #awarenessSentAt = Number.NEGATIVE_INFINITY;
  #saveTimer: NodeJS.Timeout | null = null;
  #firstDirtyAt: number | null = null;
  #saving: Promise<void> | null = null;
  #dirty = false;
  /** Saves failed in a row (0 while saving works). */
  #saveFailures = 0;
  #closed = false;
  #closing: Promise<void> | null = null;
  #rules: RoomRules;
  /** The rules' removed members, for lookups on every connection and presence list. */
  #removed: ReadonlySet<string>;
  /** The master tempo after the last transaction, to re-anchor the transport when it changes. */
  #tempo: number;

  private constructor(id: string, doc: Y.Doc, opts: RoomOptions) {
    super();
    // Every socket.io connection of the room listens for its rules: as many listeners as members.
    this.setMaxListeners(0);
    this.id = id;
    this.release = opts.release;
    this.creatorId = opts.creatorId ?? null;
    this.doc = doc;
    this.#opts = opts;
    this.#now = opts.now ?? Date.now;
    this.log = opts.log.child({ roomId: id });
    this.#clientOwners = opts.clientOwners ?? new ClientOwners();
    this.awareness = new awarenessProtocol.Awareness(doc);
    // The server publishes no awareness state of its own.
    this.awareness.setLocalState(null);
    this.#guard = new DocGuard(doc, this.#clientOwners);
    this.timeline = new StateTimeline({ retentionMs: opts.timelineRetentionMs });
    this.timeline.reset(this.#now(), this.#snapshot());
    this.#rules = readRules(doc.getMap('rules'), this.release);
    this.#removed = new Set(this.#rules.removed);
    this.#tempo = this.state().mix.master.tempo;

    const onUpdate = (update: Uint8Array, origin: unknown) => this.#onUpdate(update, origin);
    doc.on('update', onUpdate);
    this.#disposers.push(() => doc.off('update', onUpdate));
    const onAfterTransaction = (tr: Y.Transaction) => this.#onAfterTransaction(tr);
    doc.on('afterTransaction', onAfterTransaction);
    this.#disposers.push(() => doc.off('afterTransaction', onAfterTransaction));
    // y-protocols emits 'change' (states whose content changed) and then, at once, 'update' (those and the renewals).
    const onAwarenessChange = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }) => {
      this.#awarenessContentChanged = new Set([...added, ...updated, ...removed]);
    };
    const onAwareness = ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
      const changed = this.#awarenessContentChanged;
      this.#awarenessContentChanged = new Set();
      this.#onAwareness([...added, ...updated, ...removed], origin, changed);
    };
    this.awareness.on('change', onAwarenessChange);
    this.awareness.on('update', onAwareness);
    this.#disposers.push(() => this.awareness.off('change', onAwarenessChange), () => this.awareness.off('update', onAwareness));
    this.#disposers.push(() => this.awareness.destroy(), () => this.#guard.destroy());
  }

  /** Loads a room's document from the store (or makes it) and brings it to the current layout. */
  static async load(id: string, opts: RoomOptions): Promise<Room> {
    const record = await opts.store.getRoom(id);
    if (!record) throw new InvalidStateError(`no room "${id}"`);
    const doc = new Y.Doc();
    for (const name of ROOT_MAPS) doc.getMap(name);
    if (record.doc) Y.applyUpdate(doc, record.doc, LOAD_ORIGIN);
    // A loaded room stays in memory as long as anyone is in it: give back what decoding left spare.
    trimDecodedContent(doc);
    const now = (opts.now ?? Date.now)();
    let changed = false;
    doc.transact(() => {
      changed = normalizeRoomDoc(doc, opts.release, now);
    }, LOAD_ORIGIN);
    const room = new Room(id, doc, opts);
    if (record.timeline) room.#resumeTimeline(record.timeline);
    if (changed || !record.doc) room.#markDirty();
    return room;
  }

  /** An initial document for a new room, as one update. */
  static initialDoc(release: RoomRelease, nowMs: number): Uint8Array {
    const doc = new Y.Doc();
    doc.transact(() => normalizeRoomDoc(doc, release, nowMs), SERVER_ORIGIN);
    const update = Y.encodeStateAsUpdate(doc);
    doc.destroy();
    return update;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether it is closing or closed: it takes no one new (it may still be saving). */
  get closing(): boolean {
    return this.#closing !== null || this.#closed;
  }

  /** Resolves when the room has closed (at once when it is not closing). */
  whenClosed(): Promise<void> {
    return this.#closing ?? Promise.resolve();
  }

  get rules(): RoomRules {
    return this.#rules;
  }

  /** The member's role now: a host's change since it connected (the rules), else the role it connected with. */
  roleOf(member: Pick<Member, 'userId' | 'baseRole'>): Role {
    return this.#rules.roles[member.userId] ?? member.baseRole;
  }

  state(): RoomState {
    return readRoomState(this.doc);
  }

  get peerCount(): number {
    return this.#peers.size;
  }

  // ------------------------------------------------------------ holders and grace

  /** Keeps the room loaded while `holder` (a connection) is attached. */
  hold(holder: object): void {
    this.#assertOpen();
    this.#holders.add(holder);
    if (this.#graceTimer) {
      clearTimeout(this.#graceTimer);
      this.#graceTimer = null;
    }
    this.emit('holders', this.#holders.size);
  }

  unhold(holder: object): void {
    if (!this.#holders.delete(holder) || this.#closed) return;
    this.emit('holders', this.#holders.size);
    if (this.#holders.size === 0 && !this.#graceTimer) {
      this.#graceTimer = setTimeout(() => {
        this.#graceTimer = null;
        if (this.#holders.size === 0) void this.close('empty');
      }, this.#opts.graceMs);
    }
  }

  // ------------------------------------------------------------ sync peers

  addPeer(peer: SyncPeer): void {
    this.#assertOpen();
    this.#peers.add(peer);
    this.#peerClients.set(peer, new Set());
    this.hold(peer);
    // Sync step 1 from the server, so that the client sends what the server lacks.
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_SYNC);
    encoding.writeVarUint(enc, 0);
    encoding.writeVarUint8Array(enc, Y.encodeStateVector(this.doc));
    peer.send(encoding.toUint8Array(enc));
    const states = this.awareness.getStates();
    if (states.size > 0) peer.send(this.#awarenessMessage([...states.keys()]));
  }

  removePeer(peer: SyncPeer): void {
    if (!this.#peers.delete(peer)) return;
    const clients = this.#peerClients.get(peer);
    this.#peerClients.delete(peer);
    if (clients && clients.size > 0 && !this.#closed) awarenessProtocol.removeAwarenessStates(this.awareness, [...clients], peer);
    this.unhold(peer);
  }

  /** Answers a member's sync step 1 (its state vector) with what it lacks. */
  syncStep2For(stateVector: Uint8Array): Uint8Array {
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_SYNC);
    encoding.writeVarUint(enc, 1);
    encoding.writeVarUint8Array(enc, Y.encodeStateAsUpdate(this.doc, stateVector));
    return encoding.toUint8Array(enc);
  }

  /**
   * A member's document update: checked, then applied and sent to everyone, or
   * refused and neutralized. Returns the refusal, if any.
   */
  applyMemberUpdate(peer: SyncPeer, update: Uint8Array): Refusal | null {
    this.#assertOpen();
    const member = peer.member;
    const verdict = this.#guard.check(update, { role: this.roleOf(member), userId: member.userId, release: this.release, rules: this.#rules });
    const origin = { kind: 'member' as const, peer, sessionId: member.sessionId, userId: member.userId };
    this.#guard.markGuarded(origin);
    if (verdict.ok) {
      Y.applyUpdate(this.doc, update, origin);
      return null;
    }
    if (verdict.neutralized) {
      // Everyone gets the pair (it changes nothing for them); the sender is brought back by it.
      Y.applyUpdate(this.doc, verdict.neutralized, { ...origin, kind: 'correction' as const });
    }
    if (verdict.error) this.log.error({ err: verdict.error, userId: member.userId }, 'checking an update failed; it was refused');
    else this.log.debug({ userId: member.userId, refusal: verdict.refusal }, 'update refused');
    peer.send(refusalMessage(verdict.refusal));
    this.emit('refused', member, verdict.refusal);
    return verdict.refusal;
  }

  /**
   * A member's awareness update: only for client ids that peer speaks for, with a
   * bounded state, stamped with who the member really is.
   */
  applyMemberAwareness(peer: SyncPeer, update: Uint8Array): Refusal | null {
    this.#assertOpen();
    const owned = this.#peerClients.get(peer);
    if (!owned) return null;
    const dec = decoding.createDecoder(update);
    const count = decoding.readVarUint(dec);
    const entries: { clientId: number; clock: number; json: string }[] = [];
    for (let i = 0; i < count; i++) {
      const clientId = decoding.readVarUint(dec);
      const clock = decoding.readVarUint(dec);
      // The state's bytes, as a view: decoded to a string only when the entry counts.
      const bytes = decoding.readVarUint8Array(dec);
      // A stock provider sends back every awareness change it sees (y-websocket echoes them all: the
      // states it receives, and their removal when it times them out). Such an entry is never newer
      // than the server's clock for that client; it speaks for nobody and is skipped, not refused.
      // (The owner's own changes, its removal included, always come with a newer clock.) At 500
      // members a renewal batch comes back as 500 messages of ~150 such entries each.
      const known = this.awareness.meta.get(clientId);
      if (known && clock <= known.clock) continue;
      entries.push({ clientId, clock, json: utf8.decode(bytes) });
    }
    if (entries.length > 4) return { code: 'malformed', message: 'an awareness update may carry at most 4 new states' };
    if (entries.length === 0) return null;
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, entries.length);
    for (const { clientId, clock, json } of entries) {
      if (json.length > MAX_AWARENESS_STATE_BYTES) return { code: 'too_large', message: 'the awareness state is too large' };
      if (!this.#clientOwners.mayUse(clientId, peer.member.userId)) return { code: 'malformed', message: 'that awareness client belongs to someone else' };
      const speaker = this.#speakerOf(clientId);
      if (speaker && speaker !== peer) {
        // The same member reconnecting before the server noticed its old connection close keeps its client id.
        if (speaker.member.userId !== peer.member.userId) return { code: 'malformed', message: 'that awareness client belongs to someone else' };
        this.#peerClients.get(speaker)?.delete(clientId);
      } else if (!speaker && owned.size >= 2) return { code: 'malformed', message: 'too many awareness clients on one connection' };
      owned.add(clientId);
      this.#clientOwners.claim(clientId, peer.member.userId);
      let state: unknown = JSON.parse(json);
      if (state !== null && typeof state === 'object' && !Array.isArray(state)) {
        const m = peer.member;
        state = { ...(state as Record<string, unknown>), member: { userId: m.userId, name: m.name, role: this.roleOf(m) } };
      } else state = null;
      encoding.writeVarUint(enc, clientId);
      encoding.writeVarUint(enc, clock);
      encoding.writeVarString(enc, JSON.stringify(state));
    }
    awarenessProtocol.applyAwarenessUpdate(this.awareness, encoding.toUint8Array(enc), peer);
    return null;
  }

  queryAwarenessFor(peer: SyncPeer): void {
    const states = this.awareness.getStates();
    if (states.size > 0) peer.send(this.#awarenessMessage([...states.keys()]));
  }

  // ------------------------------------------------------------ server changes

  /** Applies an update that came from another node of this room (already checked there). */
  applyRemoteUpdate(update: Uint8Array, origin: object): void {
    this.#assertOpen();
    // Not marked as guarded: the guard mirrors it into its shadow like any server change.
    Y.applyUpdate(this.doc, update, origin);
  }

  applyRemoteAwareness(update: Uint8Array, origin: object): void {
    this.#assertOpen();
    awarenessProtocol.applyAwarenessUpdate(this.awareness, update, origin);
  }

  /** A change made by the server itself (prompts, rule enforcement, transport stamps). */
  change(fn: (doc: Y.Doc) => void): void {
    this.#assertOpen();
    this.doc.transact(() => fn(this.doc), SERVER_ORIGIN);
  }

  /**
   * Mirrors members' roles and removals from the store (where they are decided) into the rules, for
   * everyone connected and every node serving the room. Writes only what differs.
   */
  mirrorMembers(changes: readonly { userId: string; role?: Role; removed?: boolean }[]): void {
    if (changes.length === 0) return;
    const roles = { ...this.#rules.roles };
    const removed = new Set(this.#rules.removed);
    let rolesChanged = false;
    let removedChanged = false;
    for (const c of changes) {
      if (c.removed) {
        if (!removed.has(c.userId)) {
          removed.add(c.userId);
          removedChanged = true;
        }
        if (Object.hasOwn(roles, c.userId)) {
          delete roles[c.userId];
          rolesChanged = true;
        }
      } else if (c.role && roles[c.userId] !== c.role) {
        roles[c.userId] = c.role;
        rolesChanged = true;
      }
    }
    if (!rolesChanged && !removedChanged) return;
    this.change((doc) => {
      const rules = doc.getMap('rules');
      if (rolesChanged) rules.set('roles', roles);
      if (removedChanged) rules.set('removed', [...removed].slice(-REMOVED_KEPT));
    });
  }

  /** Switches broadcast mode (stage on WebRTC, audience on HLS); every node and member follows the rules. */
  setBroadcast(enabled: boolean): void {
    if (this.#rules.broadcast === enabled) return;
    this.change((doc) => doc.getMap('rules').set('broadcast', enabled));
  }

  /** Mirrors the store's lock on new joins into the rules (every member's page shows it). */
  mirrorLock(locked: boolean): void {
    if (this.#rules.locked === locked) return;
    this.change((doc) => doc.getMap('rules').set('locked', locked));
  }

  /**
   * Takes one entry out of the prompt history, for everyone. When it is the prompt the visuals
   * show now, its words go too and the visuals go back to the release's own look (its effects
   * are gone with it). Answers false when there is no such entry.
   */
  clearPrompt(seq: string): { cleared: false } | { cleared: true; wasActive: boolean; text: unknown; atMs: unknown } {
    const visual = this.doc.getMap('visual');
    const history = visual.get('history');
    if (!(history instanceof Y.Map) || !history.has(seq)) return { cleared: false };
    const entry = history.get(seq) as Partial<HistoryEntry> | undefined;
    const wasActive = entry !== undefined && visual.get('prompt') === entry.text && visual.get('promptAtMs') === entry.atMs;
    this.change(() => {
      history.delete(seq);
      if (wasActive) for (const k of VISUAL_KEYS) visual.set(k, null);
    });
    return { cleared: true, wasActive, text: entry?.text, atMs: entry?.atMs };
  }

  /** One member's role change or removal, mirrored (see mirrorMembers). */
  mirrorMember(userId: string, change: { role: Role } | { removed: true }): void {
    this.mirrorMembers([{ userId, ...change }]);
  }

  /** Whether a host removed the member (as the rules mirror it). */
  isRemoved(userId: string): boolean {
    return this.#removed.has(userId);
  }

  /**
   * Brings the room back to a take: its mix, arrangement and visuals, in one change of the
   * server's (everyone hears it at once, and the timeline records it like any edit). Every value
   * goes through the same check as a member's edit with `role`, against the rules as they are
   * now: a number outside a range set since is brought inside it, anything else refused is left
   * as it is. Returns what was adjusted or left, in words (empty: the take came back whole).
   */
  returnToTake(content: TakeContent, role: Role, userId: string): string[] {
    this.#assertOpen();
    const adjusted: string[] = [];
    const ctx = { role, userId, release: this.release, rules: this.#rules };
    const nice = (n: number, unit: string) => `${Math.round(n * 1000) / 1000}${unit ? ` ${unit}` : ''}`;
    this.change((doc) => {
      const put = (map: Y.Map<unknown>, path: string[], key: string, value: unknown, label: string, control?: ControlRange, range?: { min: number; max: number }) => {
        if (value === undefined) return;
        let v = value;
        if (control && range && typeof v === 'number' && Number.isFinite(v)) {
          const inside = clampToRange(v, range);
          if (inside !== v) adjusted.push(`${label} was ${nice(v, control.unit)} in the take; the room now allows ${nice(range.min, control.unit)} to ${nice(range.max, control.unit)}, so it is ${nice(inside, control.unit)}`);
          v = inside;
        }
        const why = checkChange({ path, key, value: v, isType: false }, ctx);
        if (why) {
          adjusted.push(`${label} stayed as it is: ${why.message}`);
          return;
        }
        if (map.get(key) !== v) map.set(key, v);
      };
      const stems = doc.getMap('mix').get('stems');
      const takeStems = content.mix?.stems ?? {};
      if (stems instanceof Y.Map) {
        for (const stem of this.release.stems) {
          const saved = Object.hasOwn(takeStems, stem.id) ? takeStems[stem.id] : undefined;
          const strip = stems.get(stem.id);
          if (!saved || !(strip instanceof Y.Map)) continue;
          if (role !== 'host' && !this.#rules.editableStems.includes(stem.id)) {
            adjusted.push(`the ${stem.title.toLowerCase()} stayed as it is: the host has locked it`);
            continue;
          }
          for (const key of STEM_CONTROL_NAMES) {
            const control = STEM_CONTROLS[key];
            const range = effectiveRange(control, this.release.rules.stemRanges[key], this.#rules.stemRanges[key]);
            put(strip, ['mix', 'stems', stem.id], key, saved[key], `${stem.title} ${control.label.toLowerCase()}`, control, range);
          }
          for (const key of ['mute', 'solo'] as const) put(strip, ['mix', 'stems', stem.id], key, saved[key], `${stem.title} ${key}`);
        }
      }
      const master = doc.getMap('mix').get('master');
      if (master instanceof Y.Map) {
        for (const key of MASTER_CONTROL_NAMES) {
          const control = MASTER_CONTROLS[key];
          const range = effectiveRange(control, this.release.rules.masterRanges[key], this.#rules.masterRanges[key]);
          put(master, ['mix', 'master'], key, content.mix?.master?.[key], control.label, control, range);
        }
      }
      const arrangement = doc.getMap('arrangement');
      const a = content.arrangement ?? {};
      put(arrangement, ['arrangement'], 'excerptId', a.excerptId, 'The excerpt');
      put(arrangement, ['arrangement'], 'loopStartSec', a.loopStartSec, 'The loop start');
      put(arrangement, ['arrangement'], 'loopEndSec', a.loopEndSec, 'The loop end');
      // The visuals are the server's to write (members change them through prompts): the take's come back as they were.
      const visual = doc.getMap('visual');
      const v = content.visual;
      if (v && typeof v === 'object') {
        for (const key of VISUAL_KEYS) {
          const value = (v as Record<string, unknown>)[key] ?? null;
          if (JSON.stringify(visual.get(key) ?? null) !== JSON.stringify(value)) visual.set(key, value);
        }
      }
    });
    return adjusted;
  }

  /** Tells every member (on every node serving the room) that its list of takes changed: they read it again. */
  takesChanged(): void {
    this.change((doc) => doc.getMap('meta').set('takesSavedAtMs', this.#now()));
  }

  /** Sets the active prompt and adds it to the history (oldest entries beyond the limit go). */
  applyPrompt(entry: HistoryEntry, params: Record<string, unknown> | null, model: GeneratedVisual | null = null): void {
    this.change((doc) => {
      const visual = doc.getMap('visual');
      visual.set('prompt', entry.text);
      visual.set('params', params);
      visual.set('summary', entry.summary);
      visual.set('promptBy', entry.name);
      visual.set('promptAtMs', entry.atMs);
      visual.set('model', model);
      const history = visual.get('history') as Y.Map<unknown>;
      const seq = String(entry.atMs).padStart(15, '0') + '-' + String(history.size).padStart(4, '0');
      history.set(seq, entry);
      const keys = [...history.keys()].sort();
      for (const k of keys.slice(0, Math.max(0, keys.length - VISUAL_HISTORY_LIMIT))) history.delete(k);
    });
  }

  /**
   * The visual model that drew part of the picture no longer serves (its artwork's consent was
   * withdrawn, or it was replaced): the picture goes back to the artwork the prompt named, without
   * the generated texture (at once: promptAtMs stays the prompt's, which the history's "clear"
   * matches on). Answers whether the room showed another model's texture.
   */
  dropGeneratedVisuals(keepModelId: string | null): boolean {
    const visual = this.doc.getMap('visual');
    const model = visual.get('model') as GeneratedVisual | null | undefined;
    const params = visual.get('params') as { artworks?: { id: string; weight: number }[] } | null;
    const artworks = params?.artworks ?? [];
    const own = artworks.filter((a) => !isGeneratedArtworkId(a.id));
    // A texture whose model is not named (a take saved before models were) counts as another model's.
    if (own.length === artworks.length || (model && model.modelId === keepModelId)) return false;
    const summary = visual.get('summary');
    this.change(() => {
      visual.set('params', params ? { ...params, artworks: own } : null);
      visual.set('model', null);
      // What the status line says: no longer that the model drew part of it.
      if (typeof summary === 'string' && summary.endsWith(`, ${GENERATED_EFFECT}`)) visual.set('summary', summary.slice(0, -`, ${GENERATED_EFFECT}`.length));
    });
    return true;
  }

  // ------------------------------------------------------------ persistence

  /** Takes up the timeline saved with the document, so that a clip can reach back past this load. */
  #resumeTimeline(json: string): void {
    let saved: unknown = null;
    try {
      if (json.length <= MAX_SAVED_TIMELINE_BYTES) saved = JSON.parse(json);
    } catch {
      // not JSON: started afresh below
    }
    if (!this.timeline.resume(saved, this.#now(), this.#snapshot())) this.log.warn({ bytes: json.length }, 'the saved timeline could not be used; clips start from this load');
  }

  /** Writes the document now if it changed since the last save. */
  async flush(): Promise<void> {
    if (this.#saveTimer) {
      clearTimeout(this.#saveTimer);
      this.#saveTimer = null;
    }
    while (this.#saving) await this.#saving;
    if (!this.#dirty) return;
    // Skipped while another node stores the room: it stays dirty, and is saved once this node
    // takes the lease again (with a newer token), or never, if another node keeps storing it (that
    // node got every change through Redis).
    const fence = this.#opts.fencing ? this.#opts.fencing.fence() : undefined;
    if (fence === null) return;
    this.#dirty = false;
    this.#firstDirtyAt = null;
    const update = Y.encodeStateAsUpdate(this.doc);
    // The timeline goes with the document, so that after a restart a clip can still reach back
    // before it (a few hundred KB at most: changes of the last free-clip length and some slack).
    const timeline = JSON.stringify(this.timeline.toSaved());
    this.#saving = this.#opts.store
      .saveRoomDoc(this.id, update, timeline, fence)
      .then(
        () => {
          if (this.#saveFailures > 0) this.log.info({ failures: this.#saveFailures }, 'saving the room works again');
          this.#saveFailures = 0;
        },
        (err: unknown) => {
          this.#dirty = true;
          if (err instanceof StaleFenceError && this.#opts.fencing) {
            // Not retried with this token: it would be refused again, and rightly (see RoomFencing).
            this.#saveFailures = 0;
            this.log.error({ fence: err.fence, currentFence: err.current }, 'the store refused a stale save: another node took a newer fencing token and stores the room now');
            this.#opts.fencing.refused(err);
            return;
          }
          this.#saveFailures++;
          // Once, then every tenth time: a database outage must not flood the log from every room.
          if (this.#saveFailures % 10 === 1) this.log.error({ err, failures: this.#saveFailures }, 'saving the room failed; will retry');
          // Without a next edit nothing else would save it: the last edits before a database outage
          // would wait in memory until the room closes.
          if (!this.#closed && !this.#closing && !this.#saveTimer) {
            this.#saveTimer = setTimeout(
              () => {
                this.#saveTimer = null;
                void this.flush();
              },
              Math.min(SAVE_RETRY_MAX_MS, SAVE_RETRY_MS * 2 ** (this.#saveFailures - 1)),
            );
          }
        },
      )
      .finally(() => {
        this.#saving = null;
      });
    await this.#saving;
  }

  // ------------------------------------------------------------ close

  /** Saves, disconnects every peer and releases everything the room holds. Idempotent. */
  close(reason: RoomCloseReason = 'shutdown'): Promise<void> {
    this.#closing ??= this.#close(reason);
    return this.#closing;
  }

  async #close(reason: RoomCloseReason): Promise<void> {
    if (this.#graceTimer) clearTimeout(this.#graceTimer);
    this.#graceTimer = null;
    this.#clearAwarenessTimers();
    await this.flush();
    // The store is away (its saves fail; a stale refusal is not retried): the unsaved edits are
    // nowhere else, so the last save is tried again for a while before the room lets them go.
    // Real time, not the room's clock (which a test may hold still).
    const until = performance.now() + (this.#opts.closeSaveMs ?? CLOSE_SAVE_MS);
    while (this.#dirty && this.#saveFailures > 0 && performance.now() < until) {
      const waitMs = Math.min(SAVE_RETRY_MAX_MS, SAVE_RETRY_MS * 2 ** (this.#saveFailures - 1), Math.max(0, until - performance.now()));
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      await this.flush();
    }
    if (this.#dirty && this.#saveFailures > 0) this.log.error({ failures: this.#saveFailures }, 'the room closed with unsaved changes: the store stayed unreachable');
    this.#closed = true;
    // Awareness that arrived while the document was being saved schedules nothing past here.
    this.#clearAwarenessTimers();
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    this.#saveTimer = null;
    const code = reason === 'ended' ? SYNC_CLOSE.roomClosed : SYNC_CLOSE.shuttingDown;
    for (const peer of [...this.#peers]) peer.close(code, reason === 'ended' ? 'the host ended the room' : 'the room is closing');
    this.#peers.clear();
    this.#peerClients.clear();
    this.#holders.clear();
    for (const dispose of this.#disposers.splice(0).reverse()) dispose();
    this.doc.destroy();
    this.log.info({ reason }, 'room closed');
    this.emit('close', reason);
    this.removeAllListeners();
  }

  /** For tests: whether the guard's shadow copy still equals the document. */
  guardInStep(): boolean {
    return this.#guard.inStep();
  }

  /** For tests: what the room still holds. */
  resources(): { timers: number; peers: number; holders: number; disposers: number } {
    return {
      timers: (this.#graceTimer ? 1 : 0) + (this.#saveTimer ? 1 : 0) + (this.#awarenessTimer ? 1 : 0) + (this.#renewalTimer ? 1 : 0),
      peers: this.#peers.size,
      holders: this.#holders.size,
      disposers: this.#disposers.length,
    };
  }

  // ------------------------------------------------------------ internals

  #assertOpen(): void {
    if (this.#closed || this.#closing) throw new InvalidStateError(`room ${this.id} is closed`);
  }

  #speakerOf(clientId: number): SyncPeer | undefined {
    for (const [peer, ids] of this.#peerClients) if (ids.has(clientId)) return peer;
    return undefined;
  }

  #onUpdate(update: Uint8Array, origin: unknown): void {
    if (origin === LOAD_ORIGIN) return;
    // Sent to every peer but the one it came from, encoded once.
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_SYNC);
    encoding.writeVarUint(enc, SYNC_UPDATE);
    encoding.writeVarUint8Array(enc, update);
    const broadcast = new Broadcast(encoding.toUint8Array(enc));
    const skip = isMemberOrigin(origin) && origin.kind === 'member' ? origin.peer : null;
    for (const peer of this.#peers) if (peer !== skip) broadcast.sendTo(peer);
    this.#markDirty();
    this.emit('update', update, origin);
  }

  #onAfterTransaction(tr: Y.Transaction): void {
    if (tr.origin === LOAD_ORIGIN || tr.changed.size === 0) return;
    const changes: { path: string; value: unknown }[] = [];
    let rulesChanged = false;
    let transportTouched = false;
    let tempoChanged = false;
    for (const [type, keys] of tr.changed) {
      const path = pathOf(type, this.doc);
      if (path[0] === 'meta') continue;
      if (path[0] === 'rules') rulesChanged = true;
      if (path[0] === 'arrangement' && path[1] === 'transport' && (keys.has('playing') || keys.has('positionSec'))) transportTouched = true;
      if (path[0] === 'mix' && path[1] === 'master' && keys.has('tempo')) tempoChanged = true;
      for (const key of keys) {
        if (key === null || !(type instanceof Y.Map)) continue;
        const v = type.get(key);
        changes.push({ path: [...path, key].join('.'), value: v instanceof Y.AbstractType ? v.toJSON() : v });
      }
    }
    if (changes.length > 0) {
      const member = isMemberOrigin(tr.origin) ? tr.origin.peer.member : null;
      this.timeline.record(this.#now(), changes, () => this.#snapshot(), member ? { userId: member.userId, name: member.name } : null);
    }
    if (rulesChanged) {
      this.#rules = readRules(this.doc.getMap('rules'), this.release);
      this.#removed = new Set(this.#rules.removed);
      if (this.#removed.size > 0) {
        for (const peer of [...this.#peers]) if (this.#removed.has(peer.member.userId)) peer.close(SYNC_CLOSE.accessRevoked, 'a host removed you from this room');
      }
      this.emit('rules', this.#rules);
    }
    // Kept up to date for the server's own changes too (a clamp by narrowed rules), or the next re-anchor uses a stale tempo.
    const previousTempo = this.#tempo;
    if (tempoChanged) this.#tempo = this.state().mix.master.tempo;
    if (tr.origin === SERVER_ORIGIN) {
      // The server's own tempo change (a clamp by narrowed rules) re-anchors a playing transport
      // too, or everyone's position would jump by the time since the anchor × the change.
      if (tempoChanged && previousTempo !== this.#tempo) {
        queueMicrotask(() => {
          if (!this.#closed) this.#stampTransport(tr, false, previousTempo);
        });
      }
      return;
    }
    // Follow-ups in the server's name, after the member's change counted.
    if (rulesChanged) {
      // The host's rules win over members' values: tightening a range clamps the live value.
      queueMicrotask(() => {
        if (!this.#closed) this.change((doc) => normalizeRoomDoc(doc, this.release, this.#now()));
      });
    }
    if (isMemberOrigin(tr.origin) && (transportTouched || tempoChanged)) {
      queueMicrotask(() => {
        if (!this.#closed) this.#stampTransport(tr, transportTouched, previousTempo);
      });
    }
  }

  /**
   * Members say play, pause or seek; the server keeps the clock: it anchors the
   * position to its own time, so that everyone computes the same position.
   */
  #stampTransport(tr: Y.Transaction, transportTouched: boolean, previousTempo: number): void {
    const now = this.#now();
    const transport = this.doc.getMap('arrangement').get('transport') as Y.Map<unknown>;
    const current = this.state();
    // The time since the anchor ran at the tempo before this change.
    const state = { ...current, mix: { ...current.mix, master: { ...current.mix.master, tempo: previousTempo } } };
    this.change(() => {
      if (!transportTouched) {
        // Tempo changed while playing: re-anchor so the position does not jump.
        if (state.arrangement.transport.playing) {
          transport.set('positionSec', transportPosition(state, this.release, now));
          transport.set('anchorMs', now);
        }
        return;
      }
      const keys = tr.changed.get(transport as unknown as Y.AbstractType<Y.YEvent<any>>) ?? new Set();
      if (keys.has('playing') && !keys.has('positionSec') && !state.arrangement.transport.playing) {
        // Paused: freeze where the music was, using the clock as it ran before the pause.
        const running = { ...state, arrangement: { ...state.arrangement, transport: { ...state.arrangement.transport, playing: true } } };
        transport.set('positionSec', transportPosition(running, this.release, now));
      }
      transport.set('anchorMs', now);
    });
  }

  #onAwareness(clients: number[], origin: unknown, contentChanged: ReadonlySet<number>): void {
    if (clients.length === 0) return;
    const fromPeer = origin && this.#peers.has(origin as SyncPeer) ? (origin as SyncPeer) : null;
    // A listener's awareness goes back to itself only (it keeps its connection alive); others see remixers and hosts.
    if (fromPeer && this.roleOf(fromPeer.member) === 'listener') {
      fromPeer.send(this.#awarenessMessage(clients));
      return;
    }
    this.emit('awareness', awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients), origin);
    let urgent = false;
    for (const c of clients) {
      if (contentChanged.has(c)) {
        this.#awarenessChanged.add(c);
        urgent = true;
      } else this.#awarenessRenewed.add(c);
    }
    if (urgent) this.#scheduleAwareness();
    else this.#scheduleRenewal();
  }

  /**
   * Renewals go out within AWARENESS_RENEWAL_FLUSH_MS, with the next change if one comes first:
   * at 500 members the providers' renewals would otherwise make ten messages a second to every
   * peer for seconds on end, and each peer's client pays for every message it decodes.
   */
  #scheduleRenewal(): void {
    if (this.#renewalTimer || this.#closed) return;
    this.#renewalTimer = setTimeout(() => {
      this.#renewalTimer = null;
      this.#flushAwareness();
    }, AWARENESS_RENEWAL_FLUSH_MS);
  }

  #clearAwarenessTimers(): void {
    if (this.#awarenessTimer) clearTimeout(this.#awarenessTimer);
    this.#awarenessTimer = null;
    if (this.#renewalTimer) clearTimeout(this.#renewalTimer);
    this.#renewalTimer = null;
  }

  /**
   * Sends the changed awareness states to every peer in one message: at once when none went out
   * in the last AWARENESS_FLUSH_MS, else when that time is up. A stock provider sends every
   * change it receives back to the server, and each provider renews its state every 15 s, so a
   * message per change costs members² messages each way per 15 s, in bursts (measured: seconds
   * of delay for document updates at 500 members); coalesced, a burst costs one message a peer.
   */
  #scheduleAwareness(): void {
    if (this.#awarenessTimer || this.#closed) return;
    const waitMs = this.#awarenessSentAt + AWARENESS_FLUSH_MS - performance.now();
    if (waitMs <= 0) return this.#flushAwareness();
    this.#awarenessTimer = setTimeout(() => {
      this.#awarenessTimer = null;
      this.#flushAwareness();
    }, waitMs);
  }

  #flushAwareness(): void {
    if (this.#closed || this.#awarenessChanged.size + this.#awarenessRenewed.size === 0) return;
    const broadcast = new Broadcast(this.#awarenessMessage([...new Set([...this.#awarenessChanged, ...this.#awarenessRenewed])]));
    this.#awarenessChanged.clear();
    this.#awarenessRenewed.clear();
    if (this.#renewalTimer) clearTimeout(this.#renewalTimer);
    this.#renewalTimer = null;
    this.#awarenessSentAt = performance.now();
    for (const peer of this.#peers) broadcast.sendTo(peer);
  }

  #awarenessMessage(clients: number[]): Uint8Array {
    const enc = encoding.createEncoder();
    encoding.writeVarUint(enc, MESSAGE_AWARENESS);
    encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(this.awareness, clients));
    return encoding.toUint8Array(enc);
  }

  #markDirty(): void {
    this.#dirty = true;
    if (this.#closed) return;
    const now = this.#now();
    this.#firstDirtyAt ??= now;
    if (this.#saveTimer) clearTimeout(this.#saveTimer);
    const due = Math.min(this.#opts.saveDebounceMs, Math.max(0, this.#firstDirtyAt + this.#opts.saveMaxWaitMs - now));
    this.#saveTimer = setTimeout(() => {
      this.#saveTimer = null;
      void this.flush();
    }, due);
  }

  #snapshot(): JsonState {
    const s = this.state() as unknown as JsonState;
    const visual = { ...(s['visual'] as Record<string, unknown>) };
    delete visual['history'];
    delete visual['queue'];
    return { mix: s['mix'], arrangement: s['arrangement'], visual, rules: s['rules'] };
  }
}

function isMemberOrigin(origin: unknown): origin is { kind: 'member' | 'correction'; peer: SyncPeer } {
  return typeof origin === 'object' && origin !== null && 'peer' in origin;
}

/** A y-protocols auth message "permission denied", carrying the refusal as JSON. Stock clients log it. */
export function refusalMessage(r: Refusal): Uint8Array {
  const enc = encoding.createEncoder();
  encoding.writeVarUint(enc, MESSAGE_AUTH);
  encoding.writeVarUint(enc, 0);
  encoding.writeVarString(enc, JSON.stringify(r));
  return encoding.toUint8Array(enc);
}
