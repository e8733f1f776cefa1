// Random edits of a room document, as a member's client would make them: most of
// them sound for the member's role and the rules it can see, some of them not
// (out of range, not finite, wrong types, unknown keys, new maps where maps are,
// deletions, writes to what the server keeps, new top-level types).
import * as Y from 'yjs';
import { MASTER_CONTROLS, STEM_CONTROLS, type ControlRange, type MasterControl, type StemControl } from '../../shared/controls.ts';
import { PROMPT_POLICIES } from '../../shared/release-manifest.ts';
import { effectiveRange, initialRules, readRules, type RangeRule, type RoomRelease, type RoomRules } from '../../shared/room-doc.ts';
import type { Role } from '../../shared/roles.ts';
import { weirdNumber, weirdString, type Rng } from './fuzz.ts';

export interface Editor {
  release: RoomRelease;
  userId: string;
  /** Other people's user ids, for role changes. */
  others: () => string[];
  /** A user id whose role this editor leaves alone (the room's first host). */
  protectedUserId?: string;
}

const STEM_NAMES = Object.keys(STEM_CONTROLS) as StemControl[];
const MASTER_NAMES = Object.keys(MASTER_CONTROLS) as MasterControl[];

export function mapAt(doc: Y.Doc, root: string, ...path: string[]): Y.Map<unknown> | null {
  let m: unknown = doc.getMap(root);
  for (const k of path) {
    if (!(m instanceof Y.Map)) return null;
    m = m.get(k);
  }
  return m instanceof Y.Map ? m : null;
}

export function rulesOf(doc: Y.Doc, release: RoomRelease): RoomRules {
  return readRules(doc.getMap('rules'), release);
}

/** The role a document gives a member: the host's override, else the token's. */
export function roleIn(doc: Y.Doc, release: RoomRelease, userId: string, tokenRole: Role): Role {
  return rulesOf(doc, release).roles[userId] ?? tokenRole;
}

function valueIn(rng: Rng, r: { min: number; max: number; neutral?: number }): number {
  return rng.weighted([
    [6, rng.float(r.min, r.max)],
    [1, r.min],
    [1, r.max],
    [1, r.neutral ?? r.min],
    [1, Math.round(rng.float(r.min, r.max))],
  ]);
}

function randomRanges(rng: Rng, controls: Record<string, ControlRange>, release: Partial<Record<string, RangeRule>>): Record<string, RangeRule> {
  const out: Record<string, RangeRule> = {};
  if (rng.chance(0.15)) return out;
  for (const [name, control] of Object.entries(controls)) {
    if (!rng.chance(0.3)) continue;
    const allowed = effectiveRange(control, release[name]);
    const a = rng.float(allowed.min, allowed.max);
    const b = rng.chance(0.1) ? a : rng.float(allowed.min, allowed.max);
    out[name] = rng.chance(0.1) ? { min: allowed.min, max: allowed.max } : { min: Math.min(a, b), max: Math.max(a, b) };
  }
  return out;
}

/** A change a member with `role` may make, as far as its own copy of the rules tells. */
export function soundEdit(doc: Y.Doc, rng: Rng, ed: Editor, role: Role): string {
  const { release } = ed;
  const rules = rulesOf(doc, release);
  const kind = rng.weighted([
    [30, 'stem'],
    [8, 'mute'],
    [14, 'master'],
    [5, 'arrangement'],
    [8, 'transport'],
    [role === 'host' ? 14 : 0, 'rules'],
  ] as const);
  switch (kind) {
    case 'stem':
    case 'mute': {
      const open = role === 'host' ? release.stems.map((s) => s.id) : rules.editableStems.filter((s) => release.stems.some((x) => x.id === s));
      if (open.length === 0) return 'none';
      const strip = mapAt(doc, 'mix', 'stems', rng.pick(open));
      if (!strip) return 'none';
      if (kind === 'mute') {
        strip.set(rng.pick(['mute', 'solo']), rng.chance(0.5));
        return 'mute';
      }
      const control = rng.pick(STEM_NAMES);
      strip.set(control, valueIn(rng, effectiveRange(STEM_CONTROLS[control], release.rules.stemRanges[control], rules.stemRanges[control])));
      return 'stem';
    }
    case 'master': {
      const master = mapAt(doc, 'mix', 'master');
      if (!master) return 'none';
      const control = rng.pick(MASTER_NAMES);
      master.set(control, valueIn(rng, effectiveRange(MASTER_CONTROLS[control], release.rules.masterRanges[control], rules.masterRanges[control])));
      return 'master';
    }
    case 'arrangement': {
      const a = doc.getMap('arrangement');
      const excerpt = rng.pick(release.excerpts);
      if (rng.chance(0.4)) a.set('excerptId', excerpt.id);
      else if (rng.chance(0.3)) {
        a.set('loopStartSec', null);
        a.set('loopEndSec', null);
      } else {
        const s = rng.float(excerpt.startSec, excerpt.endSec);
        a.set('loopStartSec', s);
        a.set('loopEndSec', Math.min(release.durationSec, s + rng.float(0, 8)));
      }
      return 'arrangement';
    }
    case 'transport': {
      const t = mapAt(doc, 'arrangement', 'transport');
      if (!t) return 'none';
      const what = rng.pick(['play', 'pause', 'seek', 'playFrom']);
      if (what !== 'seek') t.set('playing', what !== 'pause');
      if (what === 'seek' || what === 'playFrom') t.set('positionSec', rng.float(0, release.durationSec));
      return 'transport';
    }
    case 'rules': {
      const r = doc.getMap('rules');
      const base = initialRules(release);
      const order = ['open', 'queued', 'closed'];
      switch (rng.int(0, 5)) {
        case 0:
          r.set('stemRanges', randomRanges(rng, STEM_CONTROLS, release.rules.stemRanges));
          break;
        case 1:
          r.set('masterRanges', randomRanges(rng, MASTER_CONTROLS, release.rules.masterRanges));
          break;
        case 2:
          r.set('editableStems', rng.chance(0.3) ? base.editableStems : rng.subset(base.editableStems, 0.7));
          break;
        case 3:
          r.set('promptPolicy', rng.pick(PROMPT_POLICIES.filter((p) => order.indexOf(p) >= order.indexOf(release.rules.prompts.policy))));
          break;
        case 4:
          r.set('chatEnabled', rng.chance(0.8));
          break;
        default: {
          // Refused now (server_managed: roles change over HTTP, in the store first); kept so that the
          // seeds' traffic stays as it was, and a host's old way of writing roles is still tried.
          const others = ed.others().filter((u) => u !== ed.userId && u !== ed.protectedUserId);
          if (others.length === 0) return 'none';
          r.set('roles', { ...rules.roles, [rng.pick(others)]: rng.weighted([[1, 'host'], [4, 'remixer'], [3, 'listener']] as const) });
        }
      }
      return 'rules';
    }
  }
}

/** A value of the wrong kind for a number or a boolean: every Yjs content type there is. */
export function wrongValue(rng: Rng): unknown {
  switch (rng.int(0, 13)) {
    case 0:
      return '3';
    case 1:
      return rng.chance(0.5);
    case 2:
      return null;
    case 3:
      return {};
    case 4:
      return [1, 2];
    case 5:
      return BigInt(rng.int(-5, 5));
    case 6:
      return new Uint8Array([1, 2, 3]);
    case 7:
      return undefined;
    case 8:
      return new Y.Text('x');
    case 9:
      return new Y.Array();
    case 10:
      return new Y.XmlFragment();
    case 11:
      return new Y.Doc();
    case 12:
      return { min: 0, max: 1 };
    default:
      return weirdString(rng, 8);
  }
}

let topLevelSerial = 0;

/** A change the server must refuse (or, when it races with a rule change, may accept). */
export function unsoundEdit(doc: Y.Doc, rng: Rng, ed: Editor, role: Role): string {
  const { release } = ed;
  const rules = rulesOf(doc, release);
  const stemId = rng.pick(release.stems).id;
  const strip = mapAt(doc, 'mix', 'stems', stemId);
  const master = mapAt(doc, 'mix', 'master');
  const transport = mapAt(doc, 'arrangement', 'transport');
  const kind = rng.weighted([
    [5, 'outOfRange'],
    [4, 'notFinite'],
    [4, 'wrongType'],
    [3, 'unknownKey'],
    [3, 'newMap'],
    [3, 'delete'],
    [3, 'visualMeta'],
    [2, 'topLevel'],
    [1, 'anchor'],
    [3, 'rules'],
    [2, 'arrangement'],
    [role === 'remixer' ? 2 : 0, 'lockedStem'],
  ] as const);
  switch (kind) {
    case 'outOfRange': {
      if (rng.chance(0.5) && strip) {
        const c = rng.pick(STEM_NAMES);
        const r = effectiveRange(STEM_CONTROLS[c], release.rules.stemRanges[c], rules.stemRanges[c]);
        strip.set(c, rng.chance(0.5) ? r.max + rng.float(0.001, 100) : r.min - rng.float(0.001, 100));
      } else if (master) {
        const c = rng.pick(MASTER_NAMES);
        const r = effectiveRange(MASTER_CONTROLS[c], release.rules.masterRanges[c], rules.masterRanges[c]);
        master.set(c, rng.chance(0.5) ? r.max + rng.float(0.001, 10) : r.min - rng.float(0.001, 10));
      }
      break;
    }
    case 'notFinite':
      (rng.chance(0.5) ? strip : master)?.set(rng.pick(rng.chance(0.5) ? STEM_NAMES : MASTER_NAMES), rng.pick([Number.NaN, Infinity, -Infinity]));
      break;
    case 'wrongType': {
      const target = rng.pick([
        () => strip?.set(rng.pick([...STEM_NAMES, 'mute', 'solo']), wrongValue(rng)),
        () => master?.set(rng.pick(MASTER_NAMES), wrongValue(rng)),
        () => transport?.set(rng.pick(['playing', 'positionSec']), wrongValue(rng)),
        () => doc.getMap('arrangement').set(rng.pick(['excerptId', 'loopStartSec', 'loopEndSec']), wrongValue(rng)),
        () => doc.getMap('rules').set(rng.pick(['editableStems', 'stemRanges', 'masterRanges', 'promptPolicy', 'chatEnabled', 'roles']), wrongValue(rng)),
      ]);
      target();
      break;
    }
    case 'unknownKey':
      rng.pick([
        () => strip?.set(rng.pick(['warp', '__proto__', 'gain', '']), rng.int(0, 3)),
        () => master?.set('bpm', 120),
        () => mapAt(doc, 'mix', 'stems')?.set(rng.pick(['kazoo', 'drums2', '']), new Y.Map()),
        () => doc.getMap('mix').set('fx', { on: true }),
        () => doc.getMap('arrangement').set('speed', 2),
        () => transport?.set('speed', 2),
        () => doc.getMap('rules').set('superuser', true),
      ])();
      break;
    case 'newMap':
      rng.pick([
        () => mapAt(doc, 'mix', 'stems')?.set(stemId, new Y.Map()),
        () => {
          const m = new Y.Map<unknown>();
          mapAt(doc, 'mix', 'stems')?.set(stemId, m);
          m.set('gainDb', 6);
          m.set('mute', 'yes');
        },
        () => doc.getMap('mix').set('master', new Y.Map()),
        () => doc.getMap('mix').set('stems', new Y.Map()),
        () => doc.getMap('arrangement').set('transport', new Y.Map()),
        () => doc.getMap('visual').set('history', new Y.Map()),
        () => doc.getMap('rules').set('roles', new Y.Map()),
        () => strip?.set('gainDb', new Y.Map()),
      ])();
      break;
    case 'delete':
      rng.pick([
        () => strip?.delete(rng.pick([...STEM_NAMES, 'mute', 'solo'])),
        () => master?.delete(rng.pick(MASTER_NAMES)),
        () => mapAt(doc, 'mix', 'stems')?.delete(stemId),
        () => doc.getMap('mix').delete(rng.pick(['master', 'stems'])),
        () => doc.getMap('arrangement').delete(rng.pick(['excerptId', 'transport', 'loopStartSec'])),
        () => doc.getMap('rules').delete(rng.pick(['chatEnabled', 'roles', 'stemRanges'])),
        () => doc.getMap('meta').delete('schemaVersion'),
        () => mapAt(doc, 'visual', 'history')?.forEach((_v, k, m) => m.delete(k)),
      ])();
      break;
    case 'visualMeta':
      rng.pick([
        () => doc.getMap('visual').set('prompt', weirdString(rng)),
        () => doc.getMap('visual').set('params', { hue: 3 }),
        () => mapAt(doc, 'visual', 'history')?.set('999', { text: 'forged', by: 'x', name: 'x', atMs: 1, summary: '' }),
        () => mapAt(doc, 'visual', 'queue')?.set('p1', { promptId: 'p1', text: 'x', userId: 'u', name: 'n', atMs: 1 }),
        () => doc.getMap('meta').set('releaseId', 'another'),
        () => doc.getMap('meta').set('schemaVersion', 99),
      ])();
      break;
    case 'topLevel': {
      const name = `extra${topLevelSerial++ % 3}`;
      rng.pick([
        () => doc.getArray(name).push([1, 'two', { three: 3 }]),
        () => doc.getText(`${name}t`).insert(0, weirdString(rng, 32) || 'x'),
        () => doc.getMap(`${name}m`).set('k', rng.int(0, 9)),
        () => doc.getXmlFragment(`${name}x`).insert(0, [new Y.XmlElement('p')]),
      ])();
      break;
    }
    case 'anchor':
      transport?.set('anchorMs', rng.chance(0.5) ? 0 : weirdNumber(rng));
      break;
    case 'rules': {
      const r = doc.getMap('rules');
      rng.pick([
        () => r.set('stemRanges', { gainDb: { min: 3, max: -3 } }),
        () => r.set('masterRanges', { tempo: { min: 0.1, max: 5 } }),
        () => r.set('stemRanges', { warp: { min: 0, max: 1 } }),
        () => r.set('masterRanges', { tempo: { min: Number.NaN, max: 1 } }),
        () => r.set('editableStems', [...release.stems.map((s) => s.id), 'kazoo']),
        () => r.set('editableStems', Array.from({ length: 65 }, (_, i) => `s${i}`)),
        () => r.set('promptPolicy', 'anything'),
        () => r.set('roles', { ...rules.roles, [ed.userId]: 'listener' }),
        () => r.set('roles', { [ed.userId]: 'host', '': 'host' }),
        () => r.set('roles', { x: 'god' }),
        () => r.set('chatEnabled', 'yes'),
        // Sound values, but only a host may write them.
        () => r.set('chatEnabled', rng.chance(0.5)),
        () => r.set('roles', { ...rules.roles, [ed.userId]: 'host' }),
      ])();
      break;
    }
    case 'arrangement':
      rng.pick([
        () => doc.getMap('arrangement').set('excerptId', rng.pick(['nope', '', release.excerpts[0]!.id + ' '])),
        () => doc.getMap('arrangement').set('loopStartSec', rng.chance(0.5) ? -1 : release.durationSec + 1),
        () => transport?.set('positionSec', rng.chance(0.5) ? -0.5 : release.durationSec + rng.float(0.01, 100)),
      ])();
      break;
    case 'lockedStem': {
      const locked = release.stems.map((s) => s.id).filter((s) => !rules.editableStems.includes(s));
      const m = locked.length ? mapAt(doc, 'mix', 'stems', rng.pick(locked)) : null;
      m?.set('mute', rng.chance(0.5));
      break;
    }
  }
  return `unsound:${kind}`;
}
