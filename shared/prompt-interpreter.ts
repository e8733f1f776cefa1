// The prompt interpreter: a fan's words in, visual parameters out, with a sentence
// saying what they did ("'stormy' → darker palette, faster ripple").
//
// Grammar, read left to right over folded words (lower case, no diacritics, stretched
// letters shortened, a few emoji read as words):
//   - an intensifier ("very", "super", "a bit", "slightly") scales the next word;
//   - a negator ("no", "not", "without", "don't") turns the next word around: a motion
//     or texture word switches that effect off, a colour word takes that hue away, an
//     artwork tag drops that artwork, a mood goes half the other way;
//   - "more X" / "less X" and comparatives ("faster", "darker") change the previous
//     params rather than neutral;
//   - mood, colour, motion, weather and texture words add their offsets (visual-lexicon.ts);
//   - a word that is one of the artist's tags (or an artwork id) selects that artwork;
//     several tagged artworks blend, weighted by how many words named each.
// A prompt with any plain descriptive word starts from neutral (keeping the artwork
// shown unless it names another); a prompt made only of comparatives and negations
// starts from the previous params. A prompt that matches nothing makes a gentle
// variation of the previous params, seeded by a hash of its text, and says so.
//
// Deterministic: no randomness and no clock; the same text and context give the same
// output. Pure TypeScript (runs in the browser and the server).
import {
  EMOJI_WORDS,
  FILLERS,
  HUE_NAMES,
  INTENSIFIERS,
  NEGATORS,
  PHRASES,
  lookupWord,
  type Deltas,
  type LexEntry,
} from './visual-lexicon.ts';
import {
  MAX_BLEND,
  MAX_HUE_BANDS,
  VISUAL_RANGES,
  cloneVisualParams,
  neutralVisualParams,
  type ArtworkWeight,
  type HueBand,
  type VisualParams,
  type VisualRangeKey,
} from './visual-params.ts';

export interface PromptArtwork {
  id: string;
  /** The artwork's name as the release calls it ("Tide"): what summaries show; the id when absent. */
  title?: string;
  tags: string[];
  palette: string[];
}

export interface PromptContext {
  artwork: PromptArtwork[];
  previous: VisualParams | null;
}

export interface Interpretation {
  params: VisualParams;
  /** What changed, in words a person reads ("darker palette", "faster ripple"). */
  effects: string[];
  /** "'stormy' → darker palette, faster ripple" */
  summary: string;
  /** Whether any word was understood. */
  matched: boolean;
}

/** Longest prompt text quoted in a summary, in characters. */
const SUMMARY_QUOTE_CHARS = 40;
/** Words looked at; the rest of a very long prompt is ignored. */
const MAX_WORDS = 64;
const MORE_LESS_STEP = 0.3;
const DEFAULT_BAND_WIDTH = 60;
export const UNMATCHED_EFFECT = 'no known words; a gentle variation';

// ---------------------------------------------------------------- words

/** Lower case, no diacritics or compatibility forms. */
export function foldWord(text: string): string {
  return text.normalize('NFKD').replace(/\p{M}+/gu, '').toLowerCase();
}

const STRETCHED = /(\p{L})\1{2,}/u;

/**
 * A stretched word ("sooo", "bloooom", "slooow") read as the word meant: letters run three
 * or more times become two if that is a known word ("bloom", "cool"), else one ("so", "slow").
 */
function unstretch(w: string, known: (w: string) => boolean): string {
  if (!STRETCHED.test(w)) return w;
  const two = w.replace(/(\p{L})\1{2,}/gu, '$1$1');
  if (known(two)) return two;
  const one = w.replace(/(\p{L})\1{2,}/gu, '$1');
  if (known(one)) return one;
  // "sloooww": runs of two left over may be stretching too.
  const single = one.replace(/(\p{L})\1/gu, '$1');
  return known(single) ? single : one;
}

function knownWord(w: string): boolean {
  return NEGATORS.has(w) || INTENSIFIERS.has(w) || FILLERS.has(w) || lookup(w) !== undefined;
}

export function promptWords(text: string, known: (w: string) => boolean = knownWord): string[] {
  let s = text;
  for (const [re, word] of EMOJI_WORDS) s = s.replace(re, word);
  s = foldWord(s).replace(/['\u2019\u02BC]/g, '');
  const words = s
    .split(/[^\p{L}\p{N}]+/u)
    .filter((w) => w.length > 0 && w.length <= 40)
    .slice(0, MAX_WORDS * 2)
    .map((w) => unstretch(w, known));
  const joined: string[] = [];
  for (let i = 0; i < words.length && joined.length < MAX_WORDS; i++) {
    const phrase = PHRASES.find(([parts]) => parts.every((p, j) => words[i + j] === p));
    if (phrase) {
      joined.push(phrase[1]);
      i += phrase[0].length - 1;
    } else {
      joined.push(words[i]!);
    }
  }
  return joined;
}

/** The word and simple forms of it ("flowers" → "flower", "stormy" → "storm"). */
function wordForms(w: string): string[] {
  const forms = [w];
  const strip = (suffix: string, add = '') => {
    if (w.length > suffix.length + 2 && w.endsWith(suffix)) forms.push(w.slice(0, -suffix.length) + add);
  };
  strip('s');
  strip('es');
  strip('ies', 'y');
  strip('ly');
  strip('y');
  strip('ing');
  strip('ed');
  strip('ness');
  strip('er');
  return forms;
}

function lookup(w: string): LexEntry | undefined {
  for (const f of wordForms(w)) {
    const e = lookupWord(f);
    if (e) return e;
  }
  return undefined;
}

/** FNV-1a over UTF-16 units: a stable 32-bit hash. */
export function stableHash(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// ---------------------------------------------------------------- params as flat numbers

function getValue(p: VisualParams, k: VisualRangeKey): number {
  switch (k) {
    case 'hueShiftDeg':
    case 'saturation':
    case 'brightness':
    case 'contrast':
    case 'warmth':
      return p.palette[k];
    case 'drift':
    case 'zoom':
    case 'rotate':
    case 'pulse':
    case 'kaleidoscope':
    case 'segments':
    case 'ripple':
    case 'glitch':
      return p.motion[k];
    case 'grain':
    case 'blur':
      return p.texture[k];
    case 'speed':
    case 'intensity':
    case 'audioReactivity':
      return p[k];
  }
}

function setValue(p: VisualParams, k: VisualRangeKey, v: number): void {
  const r = VISUAL_RANGES[k];
  let x = Math.min(r.max, Math.max(r.min, v));
  x = k === 'segments' ? Math.round(x) : Math.round(x * 1000) / 1000;
  switch (k) {
    case 'hueShiftDeg':
    case 'saturation':
    case 'brightness':
    case 'contrast':
    case 'warmth':
      p.palette[k] = x;
      return;
    case 'drift':
    case 'zoom':
    case 'rotate':
    case 'pulse':
    case 'kaleidoscope':
    case 'segments':
    case 'ripple':
    case 'glitch':
      p.motion[k] = x;
      return;
    case 'grain':
    case 'blur':
      p.texture[k] = x;
      return;
    case 'speed':
    case 'intensity':
    case 'audioReactivity':
      p[k] = x;
  }
}

function applyDeltas(p: VisualParams, deltas: Deltas, scale: number): void {
  for (const [k, d] of Object.entries(deltas) as [VisualRangeKey, number][]) {
    setValue(p, k, getValue(p, k) + d * scale);
  }
}

function addBand(p: VisualParams, hueDeg: number, amount: number, absolute = false): void {
  const hue = ((hueDeg % 360) + 360) % 360;
  const bands = p.palette.hueBands;
  const same = bands.find((b) => Math.abs(b.hueDeg - hue) < 1);
  const value = (x: number) => Math.round(Math.min(1, Math.max(-1, x)) * 1000) / 1000;
  if (same) {
    same.amount = value(absolute ? amount : same.amount + amount);
  } else {
    bands.push({ hueDeg: hue, widthDeg: DEFAULT_BAND_WIDTH, amount: value(amount) });
  }
  const kept = bands.filter((b) => b.amount !== 0);
  // Keep the strongest few; ties keep the earlier band.
  kept.sort((a, b) => Math.abs(b.amount) - Math.abs(a.amount));
  p.palette.hueBands = kept.slice(0, MAX_HUE_BANDS);
}

// ---------------------------------------------------------------- the interpreter

interface Step {
  word: string;
  entry: LexEntry | undefined;
  tagHits: number[];
  scale: number;
  negated: boolean;
  comparative: 'more' | 'less' | null;
}

export function interpretPrompt(text: string, context: PromptContext): Interpretation {
  const artworkTags = context.artwork.map((a) => {
    const set = new Set<string>();
    for (const t of [...a.tags, a.id]) for (const f of wordForms(foldWord(t))) set.add(f);
    return set;
  });
  const isTag = (w: string) => artworkTags.some((set) => wordForms(w).some((f) => set.has(f)));
  const words = promptWords(text, (w) => knownWord(w) || isTag(w));
  const tagHitsOf = (w: string): number[] => {
    const forms = wordForms(w);
    const hits: number[] = [];
    artworkTags.forEach((set, i) => {
      if (forms.some((f) => set.has(f))) hits.push(i);
    });
    return hits;
  };

  // Read the words into steps.
  const steps: Step[] = [];
  let scale = 1;
  let negated = false;
  let comparative: 'more' | 'less' | null = null;
  for (const word of words) {
    if (NEGATORS.has(word)) {
      negated = true;
      continue;
    }
    if (word === 'more' || word === 'less' || word === 'fewer') {
      comparative = word === 'more' ? 'more' : 'less';
      continue;
    }
    const intens = INTENSIFIERS.get(word);
    if (intens !== undefined) {
      scale *= intens;
      continue;
    }
    const entry = lookup(word);
    const tagHits = tagHitsOf(word);
    if (!entry && tagHits.length === 0) {
      if (FILLERS.has(word)) continue;
      steps.push({ word, entry: undefined, tagHits, scale, negated, comparative });
    } else {
      steps.push({ word, entry, tagHits, scale, negated, comparative });
    }
    scale = 1;
    negated = false;
    comparative = null;
  }
  const known = steps.filter((s) => s.entry || s.tagHits.length > 0);

  const previous = context.previous ? cloneVisualParams(context.previous) : null;
  const neutral = neutralVisualParams();
  const absolute = known.some((s) => s.entry && s.entry.kind !== 'comparative' && !s.negated && s.comparative === null);
  const base = absolute || !previous ? neutral : previous;
  const params = cloneVisualParams(base);
  params.artworks = previous ? previous.artworks.map((a) => ({ ...a })) : [];

  if (known.length === 0) return unmatched(text, words, previous ?? neutral);

  const artScores = new Array<number>(context.artwork.length).fill(0);
  const dropped = new Set<number>();
  for (const s of known) {
    const e = s.entry;
    const k = Math.min(2.5, Math.max(0.1, s.scale));
    if (s.negated) {
      // "no red" greys out red (a hue band) rather than hiding every artwork tagged red.
      if (e?.kind !== 'colour') for (const i of s.tagHits) dropped.add(i);
      if (e) applyNegated(params, e, k);
      continue;
    }
    for (const i of s.tagHits) artScores[i] = artScores[i]! + (s.comparative === 'less' ? -1 : 1);
    if (e?.hints) {
      for (const hint of e.hints) for (const i of tagHitsOf(hint)) artScores[i] = artScores[i]! + 0.25;
    }
    if (!e) continue;
    if (s.comparative) applyMoreLess(params, e, s.comparative, k);
    else applyPlain(params, e, k);
  }
  params.artworks = chooseArtworks(context.artwork, artScores, dropped, params.artworks, known.some((s) => s.tagHits.length > 0 && !s.negated));

  const segments = segmentCount(words);
  if (segments !== null) setValue(params, 'segments', segments);
  const shownBefore = { ...base, artworks: previous ? previous.artworks : [] };
  const effects = describe(shownBefore, params, context.artwork);
  const shown = effects.length > 0 ? effects : ['no visible change'];
  return { params, effects: shown, summary: `${quote(text)} → ${shown.join(', ')}`, matched: true };
}

/** "kaleidoscope 8", "12 segments", "6-fold mirror": a number 2..16 next to a kaleidoscope word. */
function segmentCount(words: string[]): number | null {
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!/^\d{1,2}$/.test(w)) continue;
    const n = Number(w);
    if (n < 2 || n > 16) continue;
    const near = [words[i - 1], words[i + 1], words[i + 2]].filter((x): x is string => x !== undefined);
    if (near.some((x) => x === 'segments' || x === 'fold' || lookup(x)?.key === 'kaleidoscope')) return n;
  }
  return null;
}

function applyPlain(p: VisualParams, e: LexEntry, k: number): void {
  if (e.speedFactor !== undefined) {
    setValue(p, 'speed', p.speed * e.speedFactor ** k);
  }
  applyDeltas(p, e.deltas, k);
  if (e.hueDeg !== undefined) addBand(p, e.hueDeg, 0.7 * k);
  for (const b of e.bands ?? []) addBand(p, b.hueDeg, b.amount * k);
}

function applyMoreLess(p: VisualParams, e: LexEntry, dir: 'more' | 'less', k: number): void {
  const sign = dir === 'more' ? 1 : -1;
  if (e.key && e.key !== 'speed') {
    const r = VISUAL_RANGES[e.key];
    setValue(p, e.key, getValue(p, e.key) + sign * MORE_LESS_STEP * (r.max - r.min) * k);
    return;
  }
  if (e.speedFactor !== undefined || e.key === 'speed') {
    const up = e.speedFactor !== undefined ? e.speedFactor > 1 : (e.deltas.speed ?? 0) > 0;
    setValue(p, 'speed', p.speed * (up === (sign > 0) ? 1.4 : 1 / 1.4) ** k);
    return;
  }
  applyDeltas(p, e.deltas, sign * 0.5 * k);
  if (e.hueDeg !== undefined) addBand(p, e.hueDeg, sign * 0.4 * k);
  for (const b of e.bands ?? []) addBand(p, b.hueDeg, sign * 0.5 * b.amount * k);
}

function applyNegated(p: VisualParams, e: LexEntry, k: number): void {
  if (e.hueDeg !== undefined) {
    // "no red": take the hue away completely, whatever the intensifier.
    addBand(p, e.hueDeg, -1, true);
    if (e.deltas.warmth) setValue(p, 'warmth', p.palette.warmth - e.deltas.warmth * 0.5);
    return;
  }
  if (e.key === 'speed' || e.speedFactor !== undefined) {
    // "not fast" is a steady middle pace, not a crawl.
    setValue(p, 'speed', VISUAL_RANGES.speed.neutral);
    return;
  }
  if (e.key && (e.kind === 'motion' || e.kind === 'texture')) {
    setValue(p, e.key, VISUAL_RANGES[e.key].min);
    return;
  }
  applyDeltas(p, e.deltas, -0.5 * k);
}

function chooseArtworks(
  artwork: PromptArtwork[],
  scores: number[],
  dropped: Set<number>,
  current: ArtworkWeight[],
  named: boolean,
): ArtworkWeight[] {
  const ranked = scores
    .map((score, i) => ({ i, score }))
    .filter((r) => r.score >= 1 && !dropped.has(r.i))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, MAX_BLEND);
  let chosen: { id: string; score: number }[];
  if (named && ranked.length > 0) {
    chosen = ranked.map((r) => ({ id: artwork[r.i]!.id, score: r.score }));
  } else {
    const droppedIds = new Set([...dropped].map((i) => artwork[i]!.id));
    chosen = current.filter((a) => !droppedIds.has(a.id)).map((a) => ({ id: a.id, score: a.weight }));
    if (chosen.length === 0 && dropped.size > 0) {
      // Everything shown was refused: show the first artwork that was not.
      const free = artwork.findIndex((_, i) => !dropped.has(i));
      if (free >= 0) chosen = [{ id: artwork[free]!.id, score: 1 }];
    }
  }
  const total = chosen.reduce((s, c) => s + c.score, 0);
  return total > 0 ? chosen.map((c) => ({ id: c.id, weight: Math.round((c.score / total) * 1000) / 1000 })) : [];
}

/** A prompt with no known words: a small, stable change of what is shown. */
function unmatched(text: string, words: string[], from: VisualParams): Interpretation {
  const h = stableHash(words.join(' ') || text.trim());
  const params = cloneVisualParams(from);
  const hue = ((h % 41) - 20) * 1.5; // -30..30 degrees
  setValue(params, 'hueShiftDeg', params.palette.hueShiftDeg + hue);
  setValue(params, 'drift', Math.max(params.motion.drift, 0.2 + ((h >>> 8) % 16) / 100));
  setValue(params, 'ripple', params.motion.ripple + ((h >>> 12) % 11) / 100);
  setValue(params, 'warmth', params.palette.warmth + (((h >>> 16) % 21) - 10) / 100);
  const effects = [UNMATCHED_EFFECT];
  return { params, effects, summary: `${quote(text)} → ${effects.join(', ')}`, matched: false };
}

function quote(text: string): string {
  const chars = Array.from(text.trim());
  const shown = chars.length > SUMMARY_QUOTE_CHARS ? `${chars.slice(0, SUMMARY_QUOTE_CHARS - 1).join('')}…` : chars.join('');
  return `'${shown}'`;
}

// ---------------------------------------------------------------- describing a change

export function hueName(hueDeg: number): string {
  let best = HUE_NAMES[0]!;
  for (const h of HUE_NAMES) if (Math.abs(h[0] - hueDeg) < Math.abs(best[0] - hueDeg)) best = h;
  return best[1];
}

const MOTION_NAMES: [VisualRangeKey, string][] = [
  ['ripple', 'ripple'],
  ['drift', 'drift'],
  ['zoom', 'zoom'],
  ['rotate', 'rotation'],
  ['pulse', 'pulse'],
  ['kaleidoscope', 'kaleidoscope'],
  ['glitch', 'glitch'],
];

/** What changed from `a` to `b`, in a fixed order; artworks are named by their titles in `artwork`. */
export function describe(a: VisualParams, b: VisualParams, artwork: readonly PromptArtwork[] = []): string[] {
  const out: string[] = [];
  const d = (k: VisualRangeKey) => getValue(b, k) - getValue(a, k);
  const big = (k: VisualRangeKey, eps = 0.02) => Math.abs(d(k)) > eps * (VISUAL_RANGES[k].max - VISUAL_RANGES[k].min);

  const artIds = (p: VisualParams) => p.artworks.map((x) => `${x.id}:${x.weight}`).join(',');
  if (artIds(a) !== artIds(b) && b.artworks.length > 0) {
    const name = (id: string) => `“${artwork.find((x) => x.id === id)?.title ?? id}”`;
    out.push(b.artworks.length === 1 ? `artwork ${name(b.artworks[0]!.id)}` : `blend of ${b.artworks.map((x) => name(x.id)).join(' and ')}`);
  }

  if (big('brightness')) out.push(d('brightness') < 0 ? 'darker palette' : 'brighter palette');
  if (big('saturation')) {
    out.push(b.palette.saturation === 0 ? 'black and white' : d('saturation') > 0 ? 'richer colours' : 'muted colours');
  }
  if (big('warmth')) out.push(d('warmth') > 0 ? 'warmer tones' : 'cooler tones');
  if (big('contrast')) out.push(d('contrast') > 0 ? 'more contrast' : 'less contrast');
  if (big('hueShiftDeg', 0.01)) out.push(`hues turned ${d('hueShiftDeg') > 0 ? '+' : ''}${Math.round(d('hueShiftDeg'))}°`);
  const bandKey = (x: HueBand) => `${x.hueDeg}`;
  const before = new Map(a.palette.hueBands.map((x) => [bandKey(x), x.amount]));
  for (const band of b.palette.hueBands) {
    const was = before.get(bandKey(band)) ?? 0;
    if (Math.abs(band.amount - was) < 0.05) continue;
    const name = hueName(band.hueDeg);
    out.push(band.amount <= -0.9 ? `no ${name}` : band.amount > was ? `more ${name}` : `less ${name}`);
  }

  const speedUp = b.speed > a.speed * 1.05;
  const speedDown = b.speed < a.speed / 1.05;
  let speedSaid = false;
  for (const [k, name] of MOTION_NAMES) {
    if (!big(k)) continue;
    const now = getValue(b, k);
    if (d(k) > 0) {
      if (!speedSaid && (speedUp || speedDown)) {
        out.push(`${speedUp ? 'faster' : 'slower'} ${name}`);
        speedSaid = true;
      } else {
        out.push(getValue(a, k) <= 0.001 ? name : `more ${name}`);
      }
    } else {
      out.push(now <= 0.001 ? `no ${name}` : `less ${name}`);
    }
  }
  if (!speedSaid && (speedUp || speedDown)) out.push(speedUp ? 'faster motion' : 'slower motion');
  if (b.motion.kaleidoscope > 0 && b.motion.segments !== a.motion.segments) out.push(`${b.motion.segments} segments`);
  if (big('grain')) out.push(d('grain') > 0 ? 'grainy texture' : 'less grain');
  if (big('blur')) out.push(d('blur') > 0 ? 'softer focus' : 'sharper focus');
  if (big('intensity')) out.push(d('intensity') > 0 ? 'more intense' : 'gentler');
  if (big('audioReactivity')) out.push(d('audioReactivity') > 0 ? 'follows the music more' : 'follows the music less');
  return out;
}
