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
