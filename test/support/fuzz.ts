// Tools of the room fuzzer: a seeded PRNG, generators of odd values and frames,
// and a validator of a room document that does not go through the DocGuard's code
// path (it walks the Yjs structure and checks every value against the controls and
// the rules, as they are in the document being checked).
import * as Y from 'yjs';
import * as encoding from 'lib0/encoding';
import { MASTER_CONTROLS, STEM_CONTROLS, type ControlRange } from '../../shared/controls.ts';
import { PROMPT_POLICIES } from '../../shared/release-manifest.ts';
import { ROOM_DOC_VERSION, ROOT_MAPS, VISUAL_HISTORY_LIMIT, effectiveRange, type RangeRule, type RoomRelease } from '../../shared/room-doc.ts';
import { ROLES } from '../../shared/roles.ts';
import { LIMITS } from '../../shared/limits.ts';

const PROMPT_QUEUE_LIMIT = LIMITS['prompt.queue.room'].max;

// ---------------------------------------------------------------- PRNG

/** A small, fast, seedable PRNG (sfc32), seeded from a string with cyrb128. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;

  constructor(seed: number | string) {
    const s = String(seed);
    let h1 = 1779033703;
    let h2 = 3144134277;
    let h3 = 1013904242;
    let h4 = 2773480762;
    for (let i = 0; i < s.length; i++) {
      const k = s.charCodeAt(i);
      h1 = h2 ^ Math.imul(h1 ^ k, 597399067);
      h2 = h3 ^ Math.imul(h2 ^ k, 2869860233);
      h3 = h4 ^ Math.imul(h3 ^ k, 951274213);
      h4 = h1 ^ Math.imul(h4 ^ k, 2716044179);
    }
    h1 = Math.imul(h3 ^ (h1 >>> 18), 597399067);
    h2 = Math.imul(h4 ^ (h2 >>> 22), 2869860233);
    h3 = Math.imul(h1 ^ (h3 >>> 17), 951274213);
    h4 = Math.imul(h2 ^ (h4 >>> 19), 2716044179);
    this.#a = (h1 ^ h2 ^ h3 ^ h4) >>> 0;
    this.#b = (h2 ^ h1) >>> 0;
    this.#c = (h3 ^ h1) >>> 0;
    this.#d = (h4 ^ h1) >>> 0;
    for (let i = 0; i < 12; i++) this.next();
  }

  /** An independent stream for one actor, so that its choices do not depend on how the others' interleave. */
  static derive(seed: number, label: string): Rng {
    return new Rng(`${seed}/${label}`);
  }

  /** In [0, 1). */
  next(): number {
    this.#a >>>= 0;
    this.#b >>>= 0;
    this.#c >>>= 0;
    this.#d >>>= 0;
    let t = (this.#a + this.#b) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (this.#c << 21) | (this.#c >>> 11);
    this.#d = (this.#d + 1) | 0;
    t = (t + this.#d) | 0;
    this.#c = (this.#c + t) | 0;
    return (t >>> 0) / 4294967296;
  }

  /** An integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  float(min: number, max: number): number {
    return min + this.next() * (max - min);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** Picks by weight: `[[3, 'a'], [1, 'b']]` gives 'a' three times as often. */
  weighted<T>(table: readonly (readonly [number, T])[]): T {
    const total = table.reduce((s, [w]) => s + w, 0);
    let r = this.next() * total;
    for (const [w, v] of table) {
      r -= w;
      if (r < 0) return v;
    }
    return table[table.length - 1]![1];
  }

  subset<T>(items: readonly T[], p = 0.5): T[] {
    return items.filter(() => this.chance(p));
  }

  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

// ---------------------------------------------------------------- odd values

const ODD_STRINGS = ['', ' ', '\u0000', '\u202e', 'ÿ', '🔥', '__proto__', 'constructor', 'null', 'NaN', '-0', '1e309', '<script>', '\ud800'];

export function weirdNumber(rng: Rng): number {
  return rng.pick([
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.NEGATIVE_INFINITY,
    -0,
    Number.MAX_VALUE,
    -Number.MAX_VALUE,
    Number.MIN_VALUE,
    Number.MAX_SAFE_INTEGER + 2,
    1e308,
    -1e308,
    2 ** 53,
    rng.float(-1e6, 1e6),
  ]);
}

export function weirdString(rng: Rng, maxLength = 64): string {
  if (rng.chance(0.3)) return rng.pick(ODD_STRINGS);
  const n = rng.int(0, maxLength);
  let s = '';
  for (let i = 0; i < n; i++) {
    s += rng.weighted([
      [6, String.fromCharCode(rng.int(97, 122))],
      [1, ' '],
      [1, String.fromCharCode(rng.int(0, 31))],
      [1, String.fromCodePoint(rng.int(0x80, 0x2fff))],
      [1, String.fromCodePoint(rng.int(0x1f300, 0x1f6ff))],
      [0.3, String.fromCharCode(rng.int(0xd800, 0xdfff))],
    ]);
  }
  return s;
}

/** A random JSON-ish value (what a socket.io payload or an awareness state could be). */
export function randomJson(rng: Rng, depth = 3): unknown {
  const kind = rng.weighted([
    [2, 'string'],
    [2, 'number'],
    [1, 'bool'],
    [1, 'null'],
    [depth > 0 ? 2 : 0, 'object'],
    [depth > 0 ? 1 : 0, 'array'],
  ] as const);
  switch (kind) {
    case 'string':
      return weirdString(rng);
    case 'number':
      return rng.chance(0.5) ? rng.int(-1000, 1000) : weirdNumber(rng);
    case 'bool':
      return rng.chance(0.5);
    case 'null':
      return null;
    case 'object': {
      const o: Record<string, unknown> = {};
      const n = rng.int(0, 4);
      for (let i = 0; i < n; i++) o[rng.chance(0.5) ? rng.pick(['text', 'emoji', 'promptId', 'approve', 'roomId', 'token']) : weirdString(rng, 8)] = randomJson(rng, depth - 1);
      return o;
    }
    case 'array':
      return Array.from({ length: rng.int(0, 4) }, () => randomJson(rng, depth - 1));
  }
}

// ---------------------------------------------------------------- frames

export const MSG_SYNC = 0;
export const MSG_AWARENESS = 1;
export const MSG_AUTH = 2;
export const MSG_QUERY_AWARENESS = 3;

function frameOf(write: (enc: encoding.Encoder) => void): Uint8Array {
  const enc = encoding.createEncoder();
  write(enc);
  return encoding.toUint8Array(enc);
}

/** y-websocket frames, byte for byte as a stock provider writes them. */
export const frames = {
  syncStep1: (stateVector: Uint8Array) =>
    frameOf((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      encoding.writeVarUint(e, 0);
      encoding.writeVarUint8Array(e, stateVector);
    }),
  syncStep2: (update: Uint8Array) =>
    frameOf((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      encoding.writeVarUint(e, 1);
      encoding.writeVarUint8Array(e, update);
    }),
  update: (update: Uint8Array) =>
    frameOf((e) => {
      encoding.writeVarUint(e, MSG_SYNC);
      encoding.writeVarUint(e, 2);
      encoding.writeVarUint8Array(e, update);
    }),
  awareness: (entries: { clientId: number; clock: number; json: string }[]) =>
    frameOf((e) => {
      encoding.writeVarUint(e, MSG_AWARENESS);
      encoding.writeVarUint8Array(
        e,
        frameOf((a) => {
          encoding.writeVarUint(a, entries.length);
          for (const x of entries) {
            encoding.writeVarUint(a, x.clientId);
            encoding.writeVarUint(a, x.clock);
            encoding.writeVarString(a, x.json);
          }
        }),
      );
    }),
  queryAwareness: () => frameOf((e) => encoding.writeVarUint(e, MSG_QUERY_AWARENESS)),
};

/** Flips, inserts, deletes, truncates, duplicates or splices bytes, one to four times. */
export function mutateBytes(rng: Rng, input: Uint8Array, other?: Uint8Array): Uint8Array {
  let b = Array.from(input);
  const rounds = rng.int(1, 4);
  for (let r = 0; r < rounds; r++) {
    const at = b.length === 0 ? 0 : rng.int(0, b.length - 1);
    switch (rng.int(0, 8)) {
      case 0:
        if (b.length) b[at] = b[at]! ^ (1 << rng.int(0, 7));
        break;
      case 1:
        if (b.length) b[at] = rng.pick([0x00, 0x7f, 0x80, 0xff, rng.int(0, 255)]);
        break;
      case 2:
        b.splice(at, 0, ...rng.bytes(rng.int(1, 8)));
        break;
      case 3:
        b.splice(at, rng.int(1, 8));
        break;
      case 4:
        b = b.slice(0, rng.int(0, b.length));
        break;
      case 5: {
        const len = rng.int(1, Math.max(1, Math.min(32, b.length - at)));
        b.splice(at, 0, ...b.slice(at, at + len));
        break;
      }
      case 6:
        if (other && other.length) {
          const from = rng.int(0, other.length - 1);
          b.splice(at, rng.int(0, 8), ...other.slice(from, from + rng.int(1, 32)));
        }
        break;
      case 7:
        // A varint that never ends, or one far too large.
        b.splice(at, 0, ...new Array<number>(rng.int(6, 12)).fill(0xff), rng.int(0, 0x7f));
        break;
      default:
        if (b.length) b[at] = (b[at]! + rng.pick([1, -1, 2, 127, 128])) & 0xff;
    }
  }
  return Uint8Array.from(b);
}

// ---------------------------------------------------------------- the validator

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array) && !(v instanceof Y.AbstractType) && !(v instanceof Y.Doc);
const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
const show = (v: unknown): string => {
  if (v instanceof Y.AbstractType) return `a ${v.constructor.name}`;
  if (v instanceof Y.Doc) return 'a Y.Doc';
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
};

function keysOf(m: Y.Map<unknown>): string[] {
  return [...m.keys()].sort();
}

function exactKeys(where: string, m: Y.Map<unknown>, expected: readonly string[], out: string[]): void {
  const have = keysOf(m);
  const want = [...expected].sort();
  const missing = want.filter((k) => !have.includes(k));
  const extra = have.filter((k) => !want.includes(k));
  if (missing.length) out.push(`${where}: missing ${missing.join(', ')}`);
  if (extra.length) out.push(`${where}: unknown ${extra.join(', ')}`);
}

function childMap(where: string, parent: Y.Map<unknown>, key: string, out: string[]): Y.Map<unknown> | null {
  const v = parent.get(key);
  if (v instanceof Y.Map) return v;
  out.push(`${where}.${key}: should be a Y.Map, is ${show(v)}`);
  return null;
}

/** Whether a Yjs type holds anything that is not deleted. */
function hasLiveContent(type: Y.AbstractType<any>): boolean {
  for (let item = type._start; item !== null; item = item.right) if (!item.deleted) return true;
  for (const item of type._map.values()) if (!item.deleted) return true;
  return false;
}

function checkRange(where: string, v: unknown, r: { min: number; max: number }, out: string[]): void {
  if (!finite(v)) out.push(`${where}: ${show(v)} is not a finite number`);
  else if (v < r.min || v > r.max) out.push(`${where}: ${v} outside ${r.min}..${r.max}`);
}

interface ParsedRules {
  stemRanges: Record<string, RangeRule>;
  masterRanges: Record<string, RangeRule>;
}

function checkRangeRules(where: string, v: unknown, controls: Record<string, ControlRange>, release: Partial<Record<string, RangeRule>>, out: string[]): Record<string, RangeRule> {
  const ok: Record<string, RangeRule> = {};
  if (!isPlainObject(v)) {
    out.push(`${where}: ${show(v)} is not an object`);
    return ok;
  }
  for (const [name, r] of Object.entries(v)) {
    const control = controls[name];
    if (!control) {
      out.push(`${where}: unknown control ${name}`);
      continue;
    }
    if (!isPlainObject(r) || Object.keys(r).sort().join() !== 'max,min' || !finite(r['min']) || !finite(r['max']) || r['min'] > r['max']) {
      out.push(`${where}.${name}: ${show(r)} is not a { min, max } range`);
      continue;
    }
    const allowed = effectiveRange(control, release[name]);
    if (r['min'] < allowed.min || r['max'] > allowed.max) out.push(`${where}.${name}: ${show(r)} is wider than the release allows (${allowed.min}..${allowed.max})`);
    ok[name] = { min: r['min'], max: r['max'] };
  }
  return ok;
}

/**
 * Everything wrong with a room document, as lines a person can read; empty when it is
 * sound. Every value is checked against the rules held by the same document.
 */
export function roomDocProblems(doc: Y.Doc, release: RoomRelease): string[] {
  const out: string[] = [];
  for (const [name, type] of doc.share) {
    if (!(ROOT_MAPS as readonly string[]).includes(name) && hasLiveContent(type)) out.push(`top-level type "${name}" holds content`);
  }
  const roots = Object.fromEntries(ROOT_MAPS.map((n) => [n, doc.getMap(n)])) as Record<(typeof ROOT_MAPS)[number], Y.Map<unknown>>;
  for (const [name, m] of Object.entries(roots)) {
    if (m._start !== null && hasLiveListContent(m)) out.push(`${name}: holds list content`);
  }

  // meta
  exactKeys('meta', roots.meta, ['schemaVersion', 'releaseId', 'createdAtMs'], out);
  if (roots.meta.get('schemaVersion') !== ROOM_DOC_VERSION) out.push(`meta.schemaVersion: ${show(roots.meta.get('schemaVersion'))}`);
  if (roots.meta.get('releaseId') !== release.id) out.push(`meta.releaseId: ${show(roots.meta.get('releaseId'))}`);
  if (!finite(roots.meta.get('createdAtMs'))) out.push(`meta.createdAtMs: ${show(roots.meta.get('createdAtMs'))}`);

  // rules, first: the values are checked against them
  const rules = roots.rules;
  exactKeys('rules', rules, ['editableStems', 'stemRanges', 'masterRanges', 'promptPolicy', 'chatEnabled', 'takesByRemixers', 'roles', 'removed', 'locked', 'broadcast'], out);
  const releaseEditable = release.rules.editableStems ?? release.stems.map((s) => s.id);
  const editable = rules.get('editableStems');
  if (!Array.isArray(editable) || editable.length > 64 || !editable.every((s) => typeof s === 'string')) out.push(`rules.editableStems: ${show(editable)}`);
  else for (const s of editable) if (!releaseEditable.includes(s as string)) out.push(`rules.editableStems: "${s as string}" is not editable in the release`);
  const parsed: ParsedRules = {
    stemRanges: checkRangeRules('rules.stemRanges', rules.get('stemRanges'), STEM_CONTROLS, release.rules.stemRanges, out),
    masterRanges: checkRangeRules('rules.masterRanges', rules.get('masterRanges'), MASTER_CONTROLS, release.rules.masterRanges, out),
  };
  const policy = rules.get('promptPolicy');
  const order = ['open', 'queued', 'closed'];
  if (!(PROMPT_POLICIES as readonly unknown[]).includes(policy)) out.push(`rules.promptPolicy: ${show(policy)}`);
  else if (order.indexOf(policy as string) < order.indexOf(release.rules.prompts.policy)) out.push(`rules.promptPolicy: "${policy as string}" is more open than the release's`);
  if (typeof rules.get('chatEnabled') !== 'boolean') out.push(`rules.chatEnabled: ${show(rules.get('chatEnabled'))}`);
  if (typeof rules.get('takesByRemixers') !== 'boolean') out.push(`rules.takesByRemixers: ${show(rules.get('takesByRemixers'))}`);
  const roles = rules.get('roles');
  if (!isPlainObject(roles)) out.push(`rules.roles: ${show(roles)}`);
  else for (const [user, role] of Object.entries(roles)) if (!user || user.length > 64 || !(ROLES as readonly unknown[]).includes(role)) out.push(`rules.roles.${user}: ${show(role)}`);
  const removed = rules.get('removed');
  if (!Array.isArray(removed) || !removed.every((u) => typeof u === 'string' && u.length > 0 && u.length <= 64)) out.push(`rules.removed: ${show(removed)}`);
  if (typeof rules.get('locked') !== 'boolean') out.push(`rules.locked: ${show(rules.get('locked'))}`);
  if (typeof rules.get('broadcast') !== 'boolean') out.push(`rules.broadcast: ${show(rules.get('broadcast'))}`);

  // mix
  exactKeys('mix', roots.mix, ['stems', 'master'], out);
  const stems = childMap('mix', roots.mix, 'stems', out);
  if (stems) {
    exactKeys('mix.stems', stems, release.stems.map((s) => s.id), out);
    for (const stem of release.stems) {
      const strip = childMap('mix.stems', stems, stem.id, out);
      if (!strip) continue;
      const where = `mix.stems.${stem.id}`;
      exactKeys(where, strip, ['mute', 'solo', ...Object.keys(STEM_CONTROLS)], out);
      for (const k of ['mute', 'solo']) if (typeof strip.get(k) !== 'boolean') out.push(`${where}.${k}: ${show(strip.get(k))} is not a boolean`);
      for (const [name, control] of Object.entries(STEM_CONTROLS)) {
        const range = effectiveRange(control, release.rules.stemRanges[name as keyof typeof STEM_CONTROLS], parsed.stemRanges[name]);
        checkRange(`${where}.${name}`, strip.get(name), range, out);
      }
    }
  }
  const master = childMap('mix', roots.mix, 'master', out);
  if (master) {
    exactKeys('mix.master', master, Object.keys(MASTER_CONTROLS), out);
    for (const [name, control] of Object.entries(MASTER_CONTROLS)) {
      const range = effectiveRange(control, release.rules.masterRanges[name as keyof typeof MASTER_CONTROLS], parsed.masterRanges[name]);
      checkRange(`mix.master.${name}`, master.get(name), range, out);
    }
  }

  // arrangement
  const a = roots.arrangement;
  exactKeys('arrangement', a, ['excerptId', 'loopStartSec', 'loopEndSec', 'transport'], out);
  if (!release.excerpts.some((e) => e.id === a.get('excerptId'))) out.push(`arrangement.excerptId: ${show(a.get('excerptId'))}`);
  for (const k of ['loopStartSec', 'loopEndSec']) {
    const v = a.get(k);
    if (v !== null) checkRange(`arrangement.${k}`, v, { min: 0, max: release.durationSec }, out);
  }
  const transport = childMap('arrangement', a, 'transport', out);
  if (transport) {
    exactKeys('arrangement.transport', transport, ['playing', 'positionSec', 'anchorMs'], out);
    if (typeof transport.get('playing') !== 'boolean') out.push(`arrangement.transport.playing: ${show(transport.get('playing'))}`);
    checkRange('arrangement.transport.positionSec', transport.get('positionSec'), { min: 0, max: release.durationSec }, out);
    if (!finite(transport.get('anchorMs'))) out.push(`arrangement.transport.anchorMs: ${show(transport.get('anchorMs'))}`);
  }

  // visual (written by the server only)
  const v = roots.visual;
  exactKeys('visual', v, ['prompt', 'params', 'summary', 'promptBy', 'promptAtMs', 'model', 'history', 'queue'], out);
  const model = v.get('model');
  if (model !== null && (!isPlainObject(model) || Object.keys(model).sort().join() !== 'modelId,recordUrl,textureId' || !/^[0-9a-f]{64}$/.test(String(model['modelId'])))) out.push(`visual.model: ${show(model)}`);
  for (const k of ['prompt', 'summary', 'promptBy']) if (v.get(k) !== null && typeof v.get(k) !== 'string') out.push(`visual.${k}: ${show(v.get(k))}`);
  if (v.get('params') !== null && !isPlainObject(v.get('params'))) out.push(`visual.params: ${show(v.get('params'))}`);
  if (v.get('promptAtMs') !== null && !finite(v.get('promptAtMs'))) out.push(`visual.promptAtMs: ${show(v.get('promptAtMs'))}`);
  const history = childMap('visual', v, 'history', out);
  if (history) {
    if (history.size > VISUAL_HISTORY_LIMIT) out.push(`visual.history: ${history.size} entries, more than ${VISUAL_HISTORY_LIMIT}`);
    history.forEach((e, k) => {
      if (!isPlainObject(e) || Object.keys(e).sort().join() !== 'atMs,by,name,summary,text' || typeof e['text'] !== 'string' || !finite(e['atMs'])) {
        out.push(`visual.history.${k}: ${show(e)}`);
      }
    });
  }
  const queue = childMap('visual', v, 'queue', out);
  if (queue) {
    if (queue.size > PROMPT_QUEUE_LIMIT) out.push(`visual.queue: ${queue.size} entries, more than ${PROMPT_QUEUE_LIMIT}`);
    queue.forEach((e, k) => {
      if (!isPlainObject(e) || e['promptId'] !== k || typeof e['text'] !== 'string' || typeof e['userId'] !== 'string' || !finite(e['atMs'])) {
        out.push(`visual.queue.${k}: ${show(e)}`);
      }
    });
  }
  return out;
}

function hasLiveListContent(type: Y.AbstractType<any>): boolean {
  for (let item = type._start; item !== null; item = item.right) if (!item.deleted) return true;
  return false;
}

/** The five root maps as canonical JSON (keys sorted), to compare two documents. */
export function rootsJson(doc: Y.Doc): string {
  const sort = (x: unknown): unknown => {
    if (Array.isArray(x)) return x.map(sort);
    if (x && typeof x === 'object') return Object.fromEntries(Object.entries(x).sort(([p], [q]) => (p < q ? -1 : p > q ? 1 : 0)).map(([k, y]) => [k, sort(y)]));
    return x;
  };
  return JSON.stringify(Object.fromEntries(ROOT_MAPS.map((n) => [n, sort(doc.getMap(n).toJSON())])), (_k, x: unknown) => (typeof x === 'bigint' ? `${x}n` : x));
}

/** The first place where two JSON strings of `rootsJson` differ, for a readable failure. */
export function firstDifference(a: string, b: string): string {
  const pa = JSON.parse(a) as Record<string, unknown>;
  const pb = JSON.parse(b) as Record<string, unknown>;
  const walk = (x: unknown, y: unknown, path: string): string | null => {
    if (JSON.stringify(x) === JSON.stringify(y)) return null;
    if (x && y && typeof x === 'object' && typeof y === 'object' && !Array.isArray(x) && !Array.isArray(y)) {
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
        const d = walk((x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k], path ? `${path}.${k}` : k);
        if (d) return d;
      }
    }
    return `${path}: ${JSON.stringify(x)} vs ${JSON.stringify(y)}`;
  };
  return walk(pa, pb, '') ?? 'no difference';
}
