// What changed when, for the length of the longest clip (and some slack): periodic
// keyframes of the whole state plus the changes between them. A render replays a
// window of it through the same mixer and visual engine that made the live stream.

export interface TimelineEvent {
  tMs: number;
  /** Dotted path from the root map, e.g. "mix.stems.drums.gainDb". */
  path: string;
  /** JSON value after the change; undefined for a deleted key. */
  value: unknown;
  /** The member whose change it was (null: the server's own, e.g. a clamp or a prompt applied). */
  by?: { userId: string; name: string } | null;
}

export type JsonState = Record<string, unknown>;

export interface TimelineWindow {
  fromMs: number;
  toMs: number;
  /** The state at fromMs. */
  initial: JsonState;
  /** Changes after fromMs up to toMs, in order. */
  events: TimelineEvent[];
}

/** A timeline as the store keeps it (JSON), so that a room loaded again can still be clipped back past the load. */
export interface SavedTimeline {
  v: 1;
  keyframes: { tMs: number; state: JsonState }[];
  events: TimelineEvent[];
}

/** Largest saved timeline read back (bytes of JSON): a bigger one is not trusted. */
export const MAX_SAVED_TIMELINE_BYTES = 8 * 1024 * 1024;

export class StateTimeline {
  readonly retentionMs: number;
  readonly keyframeEveryMs: number;
  readonly #keyframes: { tMs: number; state: JsonState }[] = [];
  #events: TimelineEvent[] = [];

  constructor(opts: { retentionMs: number; keyframeEveryMs?: number }) {
    this.retentionMs = opts.retentionMs;
    this.keyframeEveryMs = opts.keyframeEveryMs ?? 10_000;
  }

  /** Starts (or restarts) the timeline from a full state. */
  reset(tMs: number, state: JsonState): void {
    this.#keyframes.length = 0;
    this.#events = [];
    this.#keyframes.push({ tMs, state: structuredClone(state) });
  }

  /** Records the changes of one transaction; `snapshot` is called when a keyframe is due. */
  record(tMs: number, changes: { path: string; value: unknown }[], snapshot: () => JsonState, by: TimelineEvent['by'] = null): void {
    if (this.#keyframes.length === 0) {
      this.reset(tMs, snapshot());
      return;
    }
    for (const c of changes) this.#events.push({ tMs, path: c.path, value: c.value === undefined ? undefined : structuredClone(c.value), ...(by ? { by } : {}) });
    const last = this.#keyframes.at(-1)!;
    if (tMs - last.tMs >= this.keyframeEveryMs) this.#keyframes.push({ tMs, state: structuredClone(snapshot()) });
    this.#trim(tMs);
  }

  /** The state at fromMs and the changes up to toMs; null when fromMs is older than what is kept. */
  window(fromMs: number, toMs: number): TimelineWindow | null {
    let base: { tMs: number; state: JsonState } | undefined;
    for (const k of this.#keyframes) if (k.tMs <= fromMs) base = k;
    if (!base) return null;
    const initial = structuredClone(base.state);
    const events: TimelineEvent[] = [];
    for (const e of this.#events) {
      if (e.tMs <= base.tMs) continue;
      if (e.tMs <= fromMs) applyEvent(initial, e);
      else if (e.tMs <= toMs) events.push(e);
    }
    return { fromMs, toMs, initial, events };
  }

  /** What to store: the keyframes and changes kept now. */
  toSaved(): SavedTimeline {
    return { v: 1, keyframes: this.#keyframes, events: this.#events };
  }

  /**
   * Takes up a saved timeline (a room loaded again), then goes on from `state` at `tMs`: what
   * differs between the saved timeline's last state and `state` (changes made on loading, e.g.
   * a migration, or anything the saved copy missed) is recorded as changes at `tMs`, so that a
   * window reaching back before the load replays it all. Answers false, and starts afresh from
   * `state`, when `saved` is not a usable timeline (malformed, from the future, or all older
   * than what is kept).
   */
  resume(saved: unknown, tMs: number, state: JsonState): boolean {
    const ok = parseSaved(saved);
    if (!ok || ok.keyframes.length === 0 || ok.keyframes.at(-1)!.tMs > tMs || (ok.events.at(-1)?.tMs ?? 0) > tMs) {
      this.reset(tMs, state);
      return false;
    }
    const last = ok.keyframes.at(-1)!;
    const end = structuredClone(last.state);
    for (const e of ok.events) if (e.tMs > last.tMs) applyEvent(end, e);
    this.#keyframes.length = 0;
    this.#keyframes.push(...ok.keyframes);
    this.#events = ok.events;
    const changes: { path: string; value: unknown }[] = [];
    diffState(end, state, '', changes);
    for (const c of changes) this.#events.push({ tMs, path: c.path, value: c.value === undefined ? undefined : structuredClone(c.value) });
    this.#keyframes.push({ tMs, state: structuredClone(state) });
    this.#trim(tMs);
    return true;
  }

  /** Oldest time a window can start at. */
  get oldestMs(): number | null {
    return this.#keyframes[0]?.tMs ?? null;
  }

  get eventCount(): number {
    return this.#events.length;
  }

  #trim(nowMs: number): void {
    const cutoff = nowMs - this.retentionMs;
    // Keep the newest keyframe at or before the cutoff, so that a window starting at the cutoff can be rebuilt.
    let keep = 0;
    for (let i = 0; i < this.#keyframes.length; i++) if (this.#keyframes[i]!.tMs <= cutoff) keep = i;
    if (keep > 0) this.#keyframes.splice(0, keep);
    const first = this.#keyframes[0]!.tMs;
    if (this.#events.length > 0 && this.#events[0]!.tMs <= first) {
      const idx = this.#events.findIndex((e) => e.tMs > first);
      this.#events = idx === -1 ? [] : this.#events.slice(idx);
    }
  }
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A saved timeline checked for shape and order; null when it is not one. */
function parseSaved(raw: unknown): { keyframes: { tMs: number; state: JsonState }[]; events: TimelineEvent[] } | null {
  if (!isPlainObject(raw) || raw['v'] !== 1 || !Array.isArray(raw['keyframes']) || !Array.isArray(raw['events'])) return null;
  const keyframes: { tMs: number; state: JsonState }[] = [];
  let prev = Number.NEGATIVE_INFINITY;
  for (const k of raw['keyframes'] as unknown[]) {
    if (!isPlainObject(k) || typeof k['tMs'] !== 'number' || !Number.isFinite(k['tMs']) || k['tMs'] < prev || !isPlainObject(k['state'])) return null;
    prev = k['tMs'];
    keyframes.push({ tMs: k['tMs'], state: k['state'] });
  }
  const events: TimelineEvent[] = [];
  prev = Number.NEGATIVE_INFINITY;
  for (const e of raw['events'] as unknown[]) {
    if (!isPlainObject(e) || typeof e['tMs'] !== 'number' || !Number.isFinite(e['tMs']) || e['tMs'] < prev || typeof e['path'] !== 'string' || e['path'] === '') return null;
    if (e['path'].split('.').some((part) => part === '' || part === '__proto__' || part === 'constructor' || part === 'prototype')) return null;
    const by = e['by'];
    if (by !== undefined && by !== null && !(isPlainObject(by) && typeof by['userId'] === 'string' && typeof by['name'] === 'string')) return null;
    prev = e['tMs'];
    events.push({ tMs: e['tMs'], path: e['path'], value: e['value'], ...(by ? { by: { userId: by['userId'] as string, name: by['name'] as string } } : {}) });
  }
  return { keyframes, events };
}

/** The changes (dotted paths, as the timeline records them) that turn `a` into `b`: leaves and arrays whole. */
function diffState(a: unknown, b: unknown, prefix: string, out: { path: string; value: unknown }[]): void {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const k of Object.keys(a)) if (!(k in b)) out.push({ path: prefix + k, value: undefined });
    for (const [k, v] of Object.entries(b)) diffState(a[k], v, `${prefix}${k}.`, out);
    return;
  }
  if (JSON.stringify(a) === JSON.stringify(b)) return;
  out.push({ path: prefix.slice(0, -1), value: b });
}

/** Applies one change to a JSON state in place. */
export function applyEvent(state: JsonState, e: TimelineEvent): void {
  const parts = e.path.split('.');
  const key = parts.pop()!;
  let node: Record<string, unknown> = state;
  for (const p of parts) {
    const next = node[p];
    if (typeof next !== 'object' || next === null) node[p] = {};
    node = node[p] as Record<string, unknown>;
  }
  if (e.value === undefined) delete node[key];
  else node[key] = structuredClone(e.value);
}
