// Checks every member's update before it counts. The guard keeps a shadow copy of
// the room's document, always equal to the real one; a member's update is applied
// to the shadow first and each key it changed is checked (role, rules, schema).
//
// A refused update cannot simply be dropped: a stock Yjs client keeps its own edit
// and its later edits depend on it. So the guard answers with the update plus a
// correction written in the shadow right after it, which sets every refused key
// back to its true value. Applied together, the pair changes nothing: the refused
// value never shows in the real document (and is garbage-collected from it), the
// sender is brought back to the truth, and its later edits still fit.
//
// The shadow costs as much memory as the document itself, and most rooms are idle most of the
// time: so it is made from the real document when a member's update first needs it, and let go
// after SHADOW_IDLE_MS without one. An update that holds nothing at all (the empty sync step 2 a
// stock client sends on joining) changes nothing and needs no shadow: it is accepted as it was.
import * as Y from 'yjs';
import { ROOT_MAPS, checkChange, pathOf, type DocChange, type WriteContext } from '../../shared/room-doc.ts';
import { refusal, type Refusal } from '../../shared/refusals.ts';
import { ClientOwners, SERVER_AUTHOR } from './client-owners.ts';

/** Origin of transactions the guard makes on the shadow. */
const GUARD_ORIGIN = Symbol('doc-guard');
/** How long the shadow is kept after the last update that needed it. */
export const SHADOW_IDLE_MS = 60_000;

export interface DocGuardOptions {
  /** How long the shadow is kept after the last update that needed it (default SHADOW_IDLE_MS). */
  shadowIdleMs?: number;
}

export type GuardVerdict =
  | { ok: true }
  /** `neutralized`: the update with its correction; apply it to the real document and send it to everyone. Null when nothing of it can be applied. */
  | { ok: false; refusal: Refusal; neutralized: Uint8Array | null; error?: unknown };

export class DocGuard {
  readonly #real: Y.Doc;
  /** Null until an update needs it, and again once it has been idle for #shadowIdleMs. */
  #shadow: Y.Doc | null = null;
  readonly #shadowIdleMs: number;
  /** Lets the idle shadow go; refreshed by every check that uses it. */
  #idleTimer: NodeJS.Timeout | null = null;
  /** Who writes under which client id (shared with the room, which binds awareness ids in it). */
  readonly #owners: ClientOwners;
  readonly #onRealUpdate: (update: Uint8Array, origin: unknown) => void;
  /** Origins whose updates reached the real document through this guard, so the shadow has them already. */
  readonly #guarded = new WeakSet<object>();

  constructor(real: Y.Doc, owners: ClientOwners = new ClientOwners(), opts: DocGuardOptions = {}) {
    this.#real = real;
    this.#owners = owners;
    this.#shadowIdleMs = opts.shadowIdleMs ?? SHADOW_IDLE_MS;
    owners.claim(real.clientID, SERVER_AUTHOR);
    this.#onRealUpdate = (update, origin) => {
      // Without a shadow there is nothing to keep in step: the next one is made from the real document.
      if (this.#shadow === null) return;
      if (typeof origin === 'object' && origin !== null && this.#guarded.has(origin)) return;
      Y.applyUpdate(this.#shadow, update, GUARD_ORIGIN);
    };
    real.on('update', this.#onRealUpdate);
  }

  /**
   * Checks `update` from a member. On ok, apply `update` to the real document with
   * `origin` (which must be an object passed to markGuarded first); on refusal,
   * apply `neutralized` the same way.
   */
  check(update: Uint8Array, ctx: WriteContext): GuardVerdict {
    const decoded = readStructs(update);
    if (!decoded) return { ok: false, refusal: refusal('malformed', 'the update could not be read'), neutralized: null };
    const { structs, deletes } = decoded;
    // No structs and no deletions: applied anywhere, it changes nothing (and writes under no client id).
    if (structs.length === 0 && !deletes) return OK;
    const shadow = this.#useShadow();
    // A struct under an id the server has seen up to the middle of it must continue the same item.
    // Two different structs under one id (written before the owner's id was bound, as right after
    // a restart) would not: Yjs would slice the newer one and link it, or even merge it, into the
    // older one's place, where nothing was checked, and encode it differently again for everyone else.
    if (!structs.every((x) => continuesWhatIsThere(shadow, x))) {
      return { ok: false, refusal: refusal('malformed', 'the update collides with changes written under the same client id'), neutralized: null };
    }
    const before = Y.encodeStateVector(shadow);
    let changed: Map<Y.AbstractType<any>, Set<string | null>> | null = null;
    const capture = (tr: Y.Transaction) => {
      if (tr.origin === GUARD_ORIGIN) changed = tr.changed;
    };
    shadow.on('afterTransaction', capture);
    try {
      Y.applyUpdate(shadow, update, GUARD_ORIGIN);
    } catch {
      this.#rebuild();
      return { ok: false, refusal: refusal('malformed', 'the update could not be read'), neutralized: null };
    } finally {
      shadow.off('afterTransaction', capture);
    }
    if (shadow.store.pendingStructs !== null || shadow.store.pendingDs !== null) {
      // It builds on changes this server never saw; nothing of it can be applied.
      this.#rebuild();
      return { ok: false, refusal: refusal('missing_history', 'the update builds on changes the server does not have; reload the room'), neutralized: null };
    }

    // Structs under a client id that belongs to someone else would be kept here and the owner's
    // own edit at that clock dropped as a duplicate: its document would never match again.
    const written = writtenClients(before, Y.encodeStateVector(shadow));
    if (written.some(({ client }) => !this.#owners.mayUse(client, ctx.userId))) {
      this.#rebuild();
      return { ok: false, refusal: refusal('malformed', "the update is written under another member's client id"), neutralized: null };
    }
    // A client's first struct makes its writer the owner.
    for (const { client, from } of written) if (from === 0) this.#owners.claim(client, ctx.userId);

    try {
      return this.#judge((changed ?? new Map()) as Map<Y.AbstractType<any>, Set<string | null>>, ctx, before);
    } catch (error) {
      // The shadow holds the update now, the real document does not: a check that fails half-way
      // must not leave them apart, or every later update that builds on this one would be
      // accepted here and left pending there. Start again from the truth, and refuse.
      this.#rebuild();
      return { ok: false, refusal: refusal('malformed', 'the update could not be checked'), neutralized: null, error };
    }
  }

  #judge(changed: Map<Y.AbstractType<any>, Set<string | null>>, ctx: WriteContext, before: Uint8Array): GuardVerdict {
    const shadow = this.#useShadow();
    const refusedKeys: { type: Y.AbstractType<any>; key: string | null }[] = [];
    let first: Refusal | null = null;
    for (const [type, keys] of changed) {
      const path = pathOf(type, shadow);
      const known = type instanceof Y.Map && (path.length > 1 || (ROOT_MAPS as readonly string[]).includes(path[0] ?? ''));
      for (const key of keys) {
        let why: Refusal | null;
        if (!known || key === null) {
          why = refusal('unknown_field', `the room has no ${path.join('.') || 'such part'}`);
        } else {
          const value = (type as Y.Map<unknown>).get(key);
          const change: DocChange = { path, key, value: value instanceof Y.AbstractType ? undefined : value, isType: value instanceof Y.AbstractType };
          why = checkChange(change, ctx);
        }
        if (why) {
          first ??= why;
          refusedKeys.push({ type, key });
        }
      }
    }
    if (!first) return { ok: true };

    shadow.transact((tr) => {
      for (const { type, key } of refusedKeys) this.#restore(type, key, tr);
    }, GUARD_ORIGIN);
    return { ok: false, refusal: first, neutralized: Y.encodeStateAsUpdate(shadow, before) };
  }

  /** Marks an origin object as carrying an update that went through check(). */
  markGuarded(origin: object): void {
    this.#guarded.add(origin);
  }

  /** For tests: whether the shadow still equals the real document (no shadow: the next one is made from it). */
  inStep(): boolean {
    const shadow = this.#shadow;
    if (shadow === null) return true;
    const sv = (d: Y.Doc) => JSON.stringify([...Y.decodeStateVector(Y.encodeStateVector(d))].sort((x, y) => x[0] - y[0]));
    return sv(this.#real) === sv(shadow) && canonical(this.#real.toJSON()) === canonical(shadow.toJSON());
  }

  /** For tests and metrics: whether a shadow copy is held now. */
  get hasShadow(): boolean {
    return this.#shadow !== null;
  }

  destroy(): void {
    this.#real.off('update', this.#onRealUpdate);
    // The owners outlive this load of the room (the manager keeps them); these ids do not.
    this.#owners.release(this.#real.clientID);
    this.#dropShadow();
  }

  /** The shadow, made from the real document if there is none; kept for #shadowIdleMs from now. */
  #useShadow(): Y.Doc {
    if (this.#idleTimer) this.#idleTimer.refresh();
    else {
      this.#idleTimer = setTimeout(() => {
        this.#idleTimer = null;
        this.#dropShadow();
      }, this.#shadowIdleMs);
      // An idle shadow must not keep the process alive.
      this.#idleTimer.unref();
    }
    this.#shadow ??= this.#copyOfReal();
    return this.#shadow;
  }

  #dropShadow(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
    const shadow = this.#shadow;
    if (shadow === null) return;
    this.#shadow = null;
    // Nobody writes under this shadow's id again (the next shadow takes a new one), as in #rebuild.
    this.#owners.release(shadow.clientID);
    shadow.destroy();
  }

  /** Sets one refused key of the shadow back to its value in the real document. */
  #restore(type: Y.AbstractType<any>, key: string | null, tr: Y.Transaction): void {
    if (!(type instanceof Y.Map) || key === null) {
      clearContent(type, key, tr);
      return;
    }
    const path = pathOf(type, this.#useShadow());
    const realParent = resolveMap(this.#real, path);
    const truth = realParent?.get(key);
    if (truth === undefined) type.delete(key);
    else if (truth instanceof Y.Map) type.set(key, deepCopy(truth));
    else type.set(key, truth);
  }

  #copyOfReal(): Y.Doc {
    const shadow = new Y.Doc();
    for (const name of ROOT_MAPS) shadow.getMap(name);
    Y.applyUpdate(shadow, Y.encodeStateAsUpdate(this.#real), GUARD_ORIGIN);
    trimDecodedContent(shadow);
    // The shadow writes corrections under a client id of its own: nobody else's, and new to the document.
    const used = Y.decodeStateVector(Y.encodeStateVector(shadow));
    while (used.has(shadow.clientID) || this.#owners.ownerOf(shadow.clientID) !== undefined) shadow.clientID = Math.floor(Math.random() * 0xffffffff);
    this.#owners.claim(shadow.clientID, SERVER_AUTHOR);
    return shadow;
  }

  #rebuild(): void {
    // Nobody writes under the old shadow's id again; there is nothing left to protect there.
    // The next update that needs a shadow makes a fresh one from the truth.
    const shadow = this.#shadow;
    if (shadow === null) return;
    this.#shadow = null;
    this.#owners.release(shadow.clientID);
    shadow.destroy();
  }
}

const OK: GuardVerdict = Object.freeze({ ok: true });

/**
 * The structs of an update and whether it deletes anything, or null when it cannot be read or
 * holds anything empty. A struct or a deletion of length zero applies without complaint and
 * changes nothing visible, but from then on every encoding of the document carries an empty
 * delete range that Yjs cannot read back: no new member could sync, and the saved room would
 * never load again.
 */
function readStructs(update: Uint8Array): { structs: (Y.Item | Y.GC | Y.Skip)[]; deletes: boolean } | null {
  try {
    const { structs, ds } = Y.decodeUpdate(update);
    if (structs.some((x) => !(x.length > 0))) return null;
    let deletes = false;
    for (const items of ds.clients.values()) {
      if (items.some((d) => !(d.len > 0))) return null;
      if (items.length > 0) deletes = true;
    }
    return { structs, deletes };
  } catch {
    return null;
  }
}

/**
 * Gives back the spare room Yjs leaves in the content of decoded items. Yjs decodes each value
 * of a map into an array it grows by push(), which V8 makes room for 17 elements in; the room
 * document's values are one each, so a document loaded from an update holds ~130 bytes of empty
 * slots per value (a quarter of its memory). The arrays are replaced by exact copies: same
 * values, same order; Yjs only reads them.
 */
export function trimDecodedContent(doc: Y.Doc): void {
  for (const structs of doc.store.clients.values()) {
    for (const struct of structs) {
      if (struct instanceof Y.Item && struct.content instanceof Y.ContentAny) struct.content.arr = struct.content.arr.slice();
    }
  }
}

/**
 * Whether a struct that starts below what `doc` has of its client, and ends above it, continues
 * the item there: same parent, same key. (Wholly known structs are skipped by Yjs.)
 */
function continuesWhatIsThere(doc: Y.Doc, struct: Y.Item | Y.GC | Y.Skip): boolean {
  if (!(struct instanceof Y.Item)) return true;
  const known = Y.getState(doc.store, struct.id.client);
  if (struct.id.clock >= known || struct.id.clock + struct.length <= known) return true;
  const there = Y.getItem(doc.store, Y.createID(struct.id.client, known - 1));
  if (!(there instanceof Y.Item)) return false;
  // As decoded, the parent is a root's name, the id of a nested type's item, or left out (then the origin's).
  const parent = struct.parent as unknown;
  if (typeof parent === 'string') return there.parent === doc.share.get(parent) && there.parentSub === struct.parentSub;
  if (parent instanceof Y.ID) {
    const item = (there.parent as Y.AbstractType<any>)._item;
    return item !== null && Y.compareIDs(item.id, parent) && there.parentSub === struct.parentSub;
  }
  const near = struct.origin ?? struct.rightOrigin;
  if (near === null) return false;
  if (near.clock >= Y.getState(doc.store, near.client)) return true; // not here yet: Yjs keeps it pending, and so does the check
  const neighbour = Y.getItem(doc.store, near);
  // Next to garbage, Yjs drops it; anywhere else it must be where the known part is.
  return !(neighbour instanceof Y.Item) || (neighbour.parent === there.parent && neighbour.parentSub === there.parentSub);
}

/** The clients an update wrote structs for, and the clock each started at. */
function writtenClients(before: Uint8Array, after: Uint8Array): { client: number; from: number }[] {
  const was = Y.decodeStateVector(before);
  const written: { client: number; from: number }[] = [];
  for (const [client, clock] of Y.decodeStateVector(after)) {
    const from = was.get(client) ?? 0;
    if (clock > from) written.push({ client, from });
  }
  return written;
}

function canonical(v: unknown): string {
  return JSON.stringify(v, (_k, x: unknown) =>
    x && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => a.localeCompare(b))) : x,
  );
}

function resolveMap(doc: Y.Doc, path: string[]): Y.Map<unknown> | null {
  const [root, ...rest] = path;
  if (!root || !(ROOT_MAPS as readonly string[]).includes(root)) return null;
  let m: Y.Map<unknown> = doc.getMap(root);
  for (const k of rest) {
    const next = m.get(k);
    if (!(next instanceof Y.Map)) return null;
    m = next;
  }
  return m;
}

function deepCopy(source: Y.Map<unknown>): Y.Map<unknown> {
  const copy = new Y.Map<unknown>();
  source.forEach((v, k) => copy.set(k, v instanceof Y.Map ? deepCopy(v) : v));
  return copy;
}

/** Deletes what a member put where nothing may be: list content, or a whole unknown type's content. */
function clearContent(type: Y.AbstractType<any>, key: string | null, tr: Y.Transaction): void {
  if (key !== null) {
    const item = type._map.get(key);
    if (item && !item.deleted) item.delete(tr);
    return;
  }
  for (let item = type._start; item !== null; item = item.right) if (!item.deleted) item.delete(tr);
}
