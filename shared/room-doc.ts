// The room document: the one truth of a room, a stock Yjs document.
//
// Layout (top-level Y.Maps, fixed by the public API):
//   meta         schemaVersion, releaseId, createdAtMs, takesSavedAtMs (once a take is saved)   (server)
//   mix          stems: Y.Map<stemId, Y.Map<StemControl, value>>, master: Y.Map<MasterControl, value>
//   arrangement  excerptId, loopStartSec, loopEndSec, transport: Y.Map { playing, positionSec, anchorMs }
//   visual       prompt, params, summary, promptBy, promptAtMs, history: Y.Map<seq, HistoryEntry>,
//                queue: Y.Map<promptId, PendingPrompt> (prompts waiting for the host)               (server)
//   rules        editableStems, stemRanges, masterRanges, promptPolicy, chatEnabled, takesByRemixers   (host)
//                roles, removed: a mirror of the store's members, written by the server only
//                locked: a mirror of the store's lock on new joins, written by the server only
//
// Every container is a Y.Map and every leaf a JSON value, so that any change is a
// (path, key, value) and the server can check and, if need be, undo it key by key.
// Clients must observe from the top-level maps (observeDeep), not hold on to nested
// maps: the server may replace a nested map that a member tampered with.
import * as Y from 'yjs';
import { z } from 'zod';
import { MASTER_CONTROLS, STEM_CONTROLS, clampToRange, type ControlRange, type MasterControl, type StemControl } from './controls.ts';
import type { ReleaseRules } from './release-manifest.ts';
import { PROMPT_POLICIES, type PromptPolicy } from './release-manifest.ts';
import { ROLES, canRemix, type Role } from './roles.ts';
import { refusal, type Refusal } from './refusals.ts';

export const ROOM_DOC_VERSION = 1;
export const ROOT_MAPS = ['meta', 'mix', 'arrangement', 'visual', 'rules'] as const;
export type RootMap = (typeof ROOT_MAPS)[number];
/** Prompt history kept in the document; older entries are dropped by the server. */
export const VISUAL_HISTORY_LIMIT = 50;

/** What the document needs to know of the release it plays. */
export interface RoomRelease {
  id: string;
  durationSec: number;
  bpm: number | null;
  stems: { id: string; title: string }[];
  excerpts: { id: string; title: string; startSec: number; endSec: number }[];
  /** The artwork the visuals may use (with the artist's consent), for the prompt interpreter. */
  artwork: { id: string; tags: string[]; palette: string[] }[];
  rules: ReleaseRules;
}

export type StemStrip = { mute: boolean; solo: boolean } & Record<StemControl, number>;
export type MasterSection = Record<MasterControl, number>;

export interface Transport {
  playing: boolean;
  /** Seconds into the excerpt at `anchorMs`. */
  positionSec: number;
  /** Server time (ms since the epoch) at which the transport was at `positionSec`; stamped by the server. */
  anchorMs: number;
}

export interface HistoryEntry {
  text: string;
  by: string;
  name: string;
  atMs: number;
  summary: string;
}

export interface RangeRule {
  min: number;
  max: number;
}

export interface RoomRules {
  editableStems: string[];
  stemRanges: Partial<Record<StemControl, RangeRule>>;
  masterRanges: Partial<Record<MasterControl, RangeRule>>;
  promptPolicy: PromptPolicy;
  chatEnabled: boolean;
  /** Whether remixers may save takes and return the room to one (hosts always may). */
  takesByRemixers: boolean;
  /**
   * Roles a host changed, by user id: a mirror of the store (every node's source of truth), kept
   * here so that every member and every node serving the room sees the change at once. Server-managed.
   */
  roles: Record<string, Role>;
  /** Members a host removed (user ids): their connections end. Server-managed, like `roles`. */
  removed: string[];
  /**
   * A host has locked the room to new people: no link lets anyone join (members already in stay).
   * A mirror of the store, which the join route reads. Server-managed, like `roles`.
   */
  locked: boolean;
  /**
   * The room is in broadcast mode: its stage (hosts, remixers) on WebRTC, its listeners on the
   * room's HLS (encoded once for all of them). Server-managed: PUT /api/rooms/:roomId/broadcast,
   * or the server itself above BROADCAST_AUTO_LISTENERS.
   */
  broadcast: boolean;
}

/** Which model drew a prompt's texture: named in the room, in the applied prompt and in every manifest. */
export interface GeneratedVisual {
  modelId: string;
  /** The texture's artwork id in the params (`gen-<key>`). */
  textureId: string;
  /** The model's training record. */
  recordUrl: string;
}

/** The visual map's values a prompt sets (and a take brings back). */
export const VISUAL_KEYS = ['prompt', 'params', 'summary', 'promptBy', 'promptAtMs', 'model'] as const;

export interface RoomState {
  meta: { schemaVersion: number; releaseId: string; createdAtMs: number };
  mix: { stems: Record<string, StemStrip>; master: MasterSection };
  arrangement: { excerptId: string; loopStartSec: number | null; loopEndSec: number | null; transport: Transport };
  visual: {
    prompt: string | null;
    params: Record<string, unknown> | null;
    summary: string | null;
    promptBy: string | null;
    promptAtMs: number | null;
    /** The visual model that drew part of the picture (null: the artwork alone, today's engine). */
    model: GeneratedVisual | null;
    history: Record<string, HistoryEntry>;
    queue: Record<string, { promptId: string; text: string; userId: string; name: string; atMs: number }>;
  };
  rules: RoomRules;
}

// ---------------------------------------------------------------- creation

export function neutralStrip(): StemStrip {
  const strip = { mute: false, solo: false } as StemStrip;
  for (const [k, r] of Object.entries(STEM_CONTROLS)) strip[k as StemControl] = r.neutral;
  return strip;
}

export function neutralMaster(): MasterSection {
  const m = {} as MasterSection;
  for (const [k, r] of Object.entries(MASTER_CONTROLS)) m[k as MasterControl] = r.neutral;
  return m;
}

export function initialRules(release: RoomRelease): RoomRules {
  const r = release.rules;
  return {
    editableStems: r.editableStems ?? release.stems.map((s) => s.id),
    stemRanges: { ...r.stemRanges } as RoomRules['stemRanges'],
    masterRanges: { ...r.masterRanges } as RoomRules['masterRanges'],
    promptPolicy: r.prompts.policy,
    chatEnabled: true,
    takesByRemixers: false,
    roles: {},
    removed: [],
    locked: false,
    broadcast: false,
  };
}

function mapOf(entries: Record<string, unknown>): Y.Map<unknown> {
  const m = new Y.Map<unknown>();
  for (const [k, v] of Object.entries(entries)) m.set(k, v);
  return m;
}

/**
 * Brings any document (empty, or written by an older version) to the current
 * layout for `release`: adds what is missing with neutral values, clamps what is
 * out of the rules, and bumps the version. Idempotent; returns whether it changed anything.
 * Call inside a transaction with the server as origin.
 */
export function normalizeRoomDoc(doc: Y.Doc, release: RoomRelease, nowMs: number): boolean {
  let changed = false;
  const setIfMissing = (map: Y.Map<unknown>, key: string, value: () => unknown) => {
    if (!map.has(key)) {
      map.set(key, value());
      changed = true;
    }
  };
  const childMap = (parent: Y.Map<unknown>, key: string): Y.Map<unknown> => {
    const v = parent.get(key);
    if (v instanceof Y.Map) return v;
    const m = new Y.Map<unknown>();
    parent.set(key, m);
    changed = true;
    return m;
  };

  const meta = doc.getMap('meta');
  setIfMissing(meta, 'releaseId', () => release.id);
  setIfMissing(meta, 'createdAtMs', () => nowMs);
  if (meta.get('schemaVersion') !== ROOM_DOC_VERSION) {
    // Version 1 is the first; later versions add their steps here, oldest first.
    meta.set('schemaVersion', ROOM_DOC_VERSION);
    changed = true;
  }

  const rules = doc.getMap('rules');
  const defaults = initialRules(release);
  for (const [k, v] of Object.entries(defaults)) setIfMissing(rules, k, () => v);
  const roomRules = readRules(rules, release);

  const mix = doc.getMap('mix');
  const stems = childMap(mix, 'stems');
  for (const stem of release.stems) {
    const strip = childMap(stems, stem.id);
    const neutral = neutralStrip();
    for (const [k, v] of Object.entries(neutral)) setIfMissing(strip, k, () => v);
    for (const control of Object.keys(STEM_CONTROLS) as StemControl[]) {
      const range = effectiveRange(STEM_CONTROLS[control], release.rules.stemRanges[control], roomRules.stemRanges[control]);
      const v = strip.get(control);
      const fixed = typeof v === 'number' ? clampToRange(v, range) : STEM_CONTROLS[control].neutral;
      if (fixed !== v) {
        strip.set(control, fixed);
        changed = true;
      }
    }
  }
  const master = childMap(mix, 'master');
  for (const control of Object.keys(MASTER_CONTROLS) as MasterControl[]) {
    const range = effectiveRange(MASTER_CONTROLS[control], release.rules.masterRanges[control], roomRules.masterRanges[control]);
    const v = master.get(control);
    const fixed = typeof v === 'number' ? clampToRange(v, range) : clampToRange(MASTER_CONTROLS[control].neutral, range);
    if (fixed !== v) {
      master.set(control, fixed);
      changed = true;
    }
  }

  const arrangement = doc.getMap('arrangement');
  const excerptId = arrangement.get('excerptId');
  if (typeof excerptId !== 'string' || !release.excerpts.some((e) => e.id === excerptId)) {
    arrangement.set('excerptId', release.excerpts[0]!.id);
    changed = true;
  }
  setIfMissing(arrangement, 'loopStartSec', () => null);
  setIfMissing(arrangement, 'loopEndSec', () => null);
  const transport = childMap(arrangement, 'transport');
  setIfMissing(transport, 'playing', () => false);
  setIfMissing(transport, 'positionSec', () => 0);
  setIfMissing(transport, 'anchorMs', () => nowMs);

  const visual = doc.getMap('visual');
  for (const k of VISUAL_KEYS) setIfMissing(visual, k, () => null);
  childMap(visual, 'history');
  childMap(visual, 'queue');
  return changed;
}

// ---------------------------------------------------------------- reading

export function readRules(rules: Y.Map<unknown>, release: RoomRelease): RoomRules {
  const parsed = RoomRulesSchema.safeParse(rules.toJSON());
  return parsed.success ? (parsed.data as RoomRules) : initialRules(release);
}

/** The document as plain JSON, typed. Assumes a normalized document. */
export function readRoomState(doc: Y.Doc): RoomState {
  return {
    meta: doc.getMap('meta').toJSON() as RoomState['meta'],
    mix: doc.getMap('mix').toJSON() as RoomState['mix'],
    arrangement: doc.getMap('arrangement').toJSON() as RoomState['arrangement'],
    visual: doc.getMap('visual').toJSON() as RoomState['visual'],
    rules: doc.getMap('rules').toJSON() as RoomRules,
  };
}

/** The narrowest of the control's own range, the release's rule and the room's rule. */
export function effectiveRange(control: ControlRange, ...rules: (RangeRule | undefined)[]): RangeRule & { neutral: number } {
  let min = control.min;
  let max = control.max;
  for (const r of rules) {
    if (!r) continue;
    min = Math.max(min, r.min);
    max = Math.min(max, r.max);
  }
  if (min > max) max = min;
  return { min, max, neutral: clampToRange(control.neutral, { min, max }) };
}

// ---------------------------------------------------------------- checking

/** Removals kept in the rules' mirror (the store keeps them all). */
export const REMOVED_KEPT = 500;

const rangeRule = z.object({ min: z.number().finite(), max: z.number().finite() }).strict().refine((r) => r.min <= r.max);

const RoomRulesSchema = z
  .object({
    editableStems: z.array(z.string().max(64)).max(64),
    stemRanges: z.partialRecord(z.enum(Object.keys(STEM_CONTROLS) as [StemControl, ...StemControl[]]), rangeRule),
    masterRanges: z.partialRecord(z.enum(Object.keys(MASTER_CONTROLS) as [MasterControl, ...MasterControl[]]), rangeRule),
    promptPolicy: z.enum(PROMPT_POLICIES),
    chatEnabled: z.boolean(),
    takesByRemixers: z.boolean(),
    roles: z.record(z.string().min(1).max(64), z.enum(ROLES)),
    removed: z.array(z.string().min(1).max(64)).max(REMOVED_KEPT),
    locked: z.boolean(),
    broadcast: z.boolean(),
  })
  .strict();

/** One key of one map, as changed by an update. `path` leads from the root name to the map. */
export interface DocChange {
  path: string[];
  key: string;
  /** The value after the change; undefined when the key was deleted. */
  value: unknown;
  /** Whether the new value is a Yjs type (a map) rather than a JSON value. */
  isType: boolean;
}

export interface WriteContext {
  role: Role;
  userId: string;
  release: RoomRelease;
  /** The room's rules before the update. */
  rules: RoomRules;
}

const nice = (n: number) => String(Math.round(n * 1000) / 1000);

/**
 * Whether a member may make this change, and whether the value is sound.
 * Returns null when it may, or the refusal with a reason a person can read.
 */
export function checkChange(c: DocChange, ctx: WriteContext): Refusal | null {
  const [root, ...rest] = c.path;
  const where = [...c.path, c.key].join('.');
  if (c.isType) return refusal('server_managed', `the layout of the room (${where}) is managed by the server`);
  if (c.value === undefined) return refusal('server_managed', `${where} cannot be removed`);

  if (root === 'mix' || root === 'arrangement') {
    if (!canRemix(ctx.role)) return refusal('read_only', 'listeners can listen and chat, but not change the mix');
  }
  switch (root) {
    case 'mix':
      if (rest.length === 2 && rest[0] === 'stems') return checkStemControl(rest[1]!, c.key, c.value, ctx);
      if (rest.length === 1 && rest[0] === 'master') return checkMasterControl(c.key, c.value, ctx);
      return refusal('unknown_field', `there is no control ${where}`);
    case 'arrangement':
      return checkArrangement(rest, c.key, c.value, ctx);
    case 'rules':
      if (ctx.role !== 'host') return refusal('host_only', "only the host can change the room's rules");
      if (rest.length !== 0) return refusal('unknown_field', `there is no rule ${where}`);
      return checkRule(c.key, c.value, ctx);
    case 'meta':
    case 'visual':
      return refusal('server_managed', root === 'visual' ? 'the visuals change through prompts, not by writing them' : `${where} is managed by the server`);
    default:
      return refusal('unknown_field', `the room has no "${root}"`);
  }
}

/**
 * The control a member names, if it is one. Own keys only: a key such as "constructor"
 * or "__proto__" reaches Object.prototype through a plain lookup, and is no control.
 */
function controlNamed<K extends string>(controls: Record<K, ControlRange>, key: string): ControlRange | undefined {
  return Object.hasOwn(controls, key) ? controls[key as K] : undefined;
}

function checkStemControl(stemId: string, key: string, value: unknown, ctx: WriteContext): Refusal | null {
  const stem = ctx.release.stems.find((s) => s.id === stemId);
  if (!stem) return refusal('unknown_field', `this release has no stem "${stemId}"`);
  if (ctx.role !== 'host' && !ctx.rules.editableStems.includes(stemId)) {
    return refusal('stem_locked', `the host has locked the ${stem.title.toLowerCase()}`);
  }
  if (key === 'mute' || key === 'solo') {
    return typeof value === 'boolean' ? null : refusal('invalid_value', `${stem.title} ${key} must be true or false`);
  }
  const control = controlNamed(STEM_CONTROLS, key);
  if (!control) return refusal('unknown_field', `a stem has no control "${key}"`);
  const range = effectiveRange(control, ctx.release.rules.stemRanges[key as StemControl], ctx.rules.stemRanges[key as StemControl]);
  return checkNumber(`${stem.title} ${control.label.toLowerCase()}`, value, range, control.unit);
}

function checkMasterControl(key: string, value: unknown, ctx: WriteContext): Refusal | null {
  const control = controlNamed(MASTER_CONTROLS, key);
  if (!control) return refusal('unknown_field', `the master section has no control "${key}"`);
  const range = effectiveRange(control, ctx.release.rules.masterRanges[key as MasterControl], ctx.rules.masterRanges[key as MasterControl]);
  return checkNumber(control.label, value, range, control.unit);
}

function checkNumber(label: string, value: unknown, range: RangeRule, unit: string): Refusal | null {
  if (typeof value !== 'number' || !Number.isFinite(value)) return refusal('invalid_value', `${label} must be a finite number`);
  if (value < range.min || value > range.max) {
    return refusal('out_of_range', `${label} must be between ${nice(range.min)} and ${nice(range.max)}${unit ? ` ${unit}` : ''}`);
  }
  return null;
}

function checkArrangement(rest: string[], key: string, value: unknown, ctx: WriteContext): Refusal | null {
  if (rest.length === 1 && rest[0] === 'transport') {
    if (key === 'playing') return typeof value === 'boolean' ? null : refusal('invalid_value', 'playing must be true or false');
    if (key === 'positionSec') {
      if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > ctx.release.durationSec) {
        return refusal('out_of_range', `the position must be between 0 and ${nice(ctx.release.durationSec)} s`);
      }
      return null;
    }
    if (key === 'anchorMs') return refusal('server_managed', 'the transport clock is kept by the server');
    return refusal('unknown_field', `the transport has no "${key}"`);
  }
  if (rest.length !== 0) return refusal('unknown_field', `there is no arrangement.${[...rest, key].join('.')}`);
  if (key === 'excerptId') {
    return typeof value === 'string' && ctx.release.excerpts.some((e) => e.id === value)
      ? null
      : refusal(
          'invalid_value',
          // Only a string is quoted back: JSON.stringify throws on a BigInt, which a Yjs map can hold.
          typeof value === 'string' ? `this release has no excerpt ${JSON.stringify(value.slice(0, 64))}` : "the excerpt must be one of the release's excerpt ids",
        );
  }
  if (key === 'loopStartSec' || key === 'loopEndSec') {
    if (value === null) return null;
    if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > ctx.release.durationSec) {
      return refusal('out_of_range', `the loop must lie between 0 and ${nice(ctx.release.durationSec)} s`);
    }
    return null;
  }
  return refusal('unknown_field', `there is no arrangement.${key}`);
}

function checkRule(key: string, value: unknown, ctx: WriteContext): Refusal | null {
  const base = initialRules(ctx.release);
  switch (key) {
    case 'editableStems': {
      const parsed = RoomRulesSchema.shape.editableStems.safeParse(value);
      if (!parsed.success) return refusal('invalid_value', 'editableStems must be a list of stem ids');
      const outside = parsed.data.find((s) => !base.editableStems.includes(s));
      return outside ? refusal('rules_widen', `the release does not let "${outside}" be opened`) : null;
    }
    case 'stemRanges':
    case 'masterRanges': {
      const parsed = RoomRulesSchema.shape[key].safeParse(value);
      if (!parsed.success) return refusal('invalid_value', `${key} must map control names to { min, max }`);
      const controls: Record<string, ControlRange> = key === 'stemRanges' ? STEM_CONTROLS : MASTER_CONTROLS;
      const releaseRanges = (key === 'stemRanges' ? ctx.release.rules.stemRanges : ctx.release.rules.masterRanges) as Record<string, RangeRule | undefined>;
      for (const [name, r] of Object.entries(parsed.data as Record<string, RangeRule>)) {
        const allowed = effectiveRange(controls[name]!, releaseRanges[name]);
        if (r.min < allowed.min || r.max > allowed.max) {
          return refusal('rules_widen', `${controls[name]!.label} can only be narrowed within ${nice(allowed.min)}..${nice(allowed.max)}`);
        }
      }
      return null;
    }
    case 'promptPolicy': {
      if (!PROMPT_POLICIES.includes(value as PromptPolicy)) return refusal('invalid_value', `promptPolicy must be one of ${PROMPT_POLICIES.join(', ')}`);
      const order: PromptPolicy[] = ['open', 'queued', 'closed'];
      return order.indexOf(value as PromptPolicy) < order.indexOf(ctx.release.rules.prompts.policy)
        ? refusal('rules_widen', `the release allows prompts only "${ctx.release.rules.prompts.policy}"`)
        : null;
    }
    case 'chatEnabled':
      return typeof value === 'boolean' ? null : refusal('invalid_value', 'chatEnabled must be true or false');
    case 'takesByRemixers':
      return typeof value === 'boolean' ? null : refusal('invalid_value', 'takesByRemixers must be true or false');
    case 'roles':
    case 'removed':
      // Written by the server only, after the store: a role written here would hold on no other node.
      return refusal('server_managed', `${key === 'roles' ? 'roles' : 'removals'} change through the room's member list (PUT /api/rooms/:roomId/members/:userId/role), not in the document`);
    case 'locked':
      // The join route reads the store, on whatever node the joiner reaches: the lock is set there.
      return refusal('server_managed', "the room is locked and unlocked through PUT /api/rooms/:roomId/lock, not in the document");
    case 'broadcast':
      return refusal('server_managed', 'broadcast mode is switched through PUT /api/rooms/:roomId/broadcast, not in the document');
    default:
      return refusal('unknown_field', `there is no rule "${key}"`);
  }
}

/** The path of a Y.Map from its root, e.g. ['mix', 'stems', 'drums']. */
export function pathOf(type: Y.AbstractType<any>, doc: Y.Doc): string[] {
  const path: string[] = [];
  let t: Y.AbstractType<any> = type;
  while (t._item) {
    const key = t._item.parentSub;
    path.unshift(key ?? '?');
    t = t._item.parent as Y.AbstractType<any>;
  }
  for (const [name, root] of doc.share) {
    if (root === t) {
      path.unshift(name);
      break;
    }
  }
  return path;
}
