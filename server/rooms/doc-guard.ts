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
import * as Y from 'yjs';
import { ROOT_MAPS, checkChange, pathOf, type DocChange, type WriteContext } from '../../shared/room-doc.ts';
import { refusal, type Refusal } from '../../shared/refusals.ts';

/** Origin of transactions the guard makes on the shadow. */
const GUARD_ORIGIN = Symbol('doc-guard');

export type GuardVerdict =
  | { ok: true }
  /** `neutralized`: the update with its correction; apply it to the real document and send it to everyone. Null when nothing of it can be applied. */
  | { ok: false; refusal: Refusal; neutralized: Uint8Array | null };

export class DocGuard {
  readonly #real: Y.Doc;
  #shadow: Y.Doc;
  readonly #onRealUpdate: (update: Uint8Array, origin: unknown) => void;
  /** Origins whose updates reached the real document through this guard, so the shadow has them already. */
  readonly #guarded = new WeakSet<object>();

  constructor(real: Y.Doc) {
    this.#real = real;
    this.#shadow = this.#copyOfReal();
    this.#onRealUpdate = (update, origin) => {
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
    const shadow = this.#shadow;
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

    const refusedKeys: { type: Y.AbstractType<any>; key: string | null }[] = [];
    let first: Refusal | null = null;
    for (const [type, keys] of (changed ?? new Map()) as Map<Y.AbstractType<any>, Set<string | null>>) {
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

  /** For tests: whether the shadow still equals the real document. */
  inStep(): boolean {
    const sv = (d: Y.Doc) => JSON.stringify([...Y.decodeStateVector(Y.encodeStateVector(d))].sort((x, y) => x[0] - y[0]));
    return sv(this.#real) === sv(this.#shadow) && canonical(this.#real.toJSON()) === canonical(this.#shadow.toJSON());
  }

  destroy(): void {
    this.#real.off('update', this.#onRealUpdate);
    this.#shadow.destroy();
  }

  /** Sets one refused key of the shadow back to its value in the real document. */
  #restore(type: Y.AbstractType<any>, key: string | null, tr: Y.Transaction): void {
    if (!(type instanceof Y.Map) || key === null) {
      clearContent(type, key, tr);
      return;
    }
    const path = pathOf(type, this.#shadow);
    const realParent = resolveMap(this.#real, path);
    const truth = realParent?.get(key);
    if (truth === undefined) type.delete(key);
    else if (truth instanceof Y.Map) type.set(key, deepCopy(truth));
    else type.set(key, truth);
  }

  #copyOfReal(): Y.Doc {
    const shadow = new Y.Doc();
    // The shadow writes corrections under its own client id; it must never be the real document's.
    while (shadow.clientID === this.#real.clientID) shadow.clientID = Math.floor(Math.random() * 0xffffffff);
    for (const name of ROOT_MAPS) shadow.getMap(name);
    Y.applyUpdate(shadow, Y.encodeStateAsUpdate(this.#real), GUARD_ORIGIN);
    return shadow;
  }

  #rebuild(): void {
    this.#shadow.destroy();
    this.#shadow = this.#copyOfReal();
  }
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
