// Moderation of what members type: chat messages and visual prompts.
//
// Two steps. `normalizeUserText` turns raw input into the text everyone will see
// (NFC, no invisible or direction-changing characters, whitespace collapsed) and
// enforces the length in user-perceived characters. `moderateText` then checks that
// text against the room's blocked words and names.
//
// Matching has to see through obfuscation (case, accents, fullwidth and styled
// letters, Cyrillic/Greek lookalikes, leetspeak, letters split by separators,
// stretched letters) without refusing innocent words that merely contain a blocked
// one: this is a music app, and "bass" must never be refused for containing "ass".
// So matching works on words (tokens), never on substrings:
//
//   1. The text is folded for matching, one character at a time: compatibility
//      decomposition (NFKD: fullwidth, ligatures, math letters, circled letters),
//      combining marks and default-ignorable characters dropped (diacritics,
//      zero-width tricks), lookalikes mapped to Latin letters, lower case.
//   2. The folded text is cut into tokens in a few ways ("views"), each answering
//      one kind of evasion: split at every non-letter; leet symbols such as @ $ !
//      kept as letters; punctuation inside a word ignored ("b.a.d", "lo-ser");
//      runs of single letters joined ("b a d").
//   3. Each view is searched with one trie of all blocked entries (compiled once per
//      room). A character may stand for several letters ("1" is i or l, "$" is s or
//      nothing), a letter may repeat ("baaad"), and a multi-word name may run across
//      tokens ("taylor swift", "TaylorSwift"). The search remembers the states it
//      has seen, so its cost is bounded by text length times trie size whatever the
//      ambiguity. An entry matches only a whole token (or, for multi-word entries,
//      whole consecutive tokens), which is what keeps "classic" and "bass" clean.
//      Plurals of blocked words ("-s", "-es") and possessives of names match too;
//      the few default words that no ordinary word contains match inside words, so
//      that their compounds need no listing.
//
// Pure TypeScript: this module also runs in the browser (no Node or DOM APIs).

import { DEFAULT_OTHER_ARTISTS, defaultBlockedWords } from './moderation-defaults.ts';

export interface ModerationLists {
  /** Words no text may use (the release's and the host's). */
  blockedWords: readonly string[];
  /** Names no text may use (people, other artists). */
  blockedNames: readonly string[];
  /** Also refuse the default list of slurs and strong profanity. */
  includeDefaults: boolean;
  /** Also refuse the names of famous other artists (the release's `blockOtherArtists`). */
  blockOtherArtists?: boolean;
  /** Never refused as "another artist": the release's own artist, its featured guests. */
  allowedNames?: readonly string[];
}

export type ModerationCode = 'empty' | 'too_long' | 'blocked_words';

export type ModerationVerdict =
  | { ok: true; text: string } // the normalized text to use and display
  | { ok: false; code: ModerationCode; message: string };

export type NormalizeResult = { text: string } | { error: 'empty' | 'too_long'; message: string };

export interface ModerationTextOptions {
  /** What the text is called in messages: "prompt" (default), "message", "name". */
  noun?: string;
}

/** What kind of entry a text matched; decides the message a member sees. */
export type BlockedKind = 'word' | 'name' | 'artist';

export interface BlockedMatch {
  kind: BlockedKind;
  /** The list entry as written (for logs and the host's review; never shown to the sender). */
  entry: string;
}

// ---------------------------------------------------------------------------
// Normalization for display

/** Combining marks kept on one character: real scripts need at most four; more is "Zalgo" text. */
const MAX_MARKS = 5;
/**
 * A grapheme cluster longer than this (in UTF-16 units) counts as several characters. Real
 * clusters (a family emoji: 11, a subdivision flag: 14) stay at 1; an endless chain of
 * emoji joined by ZWJ, which the grapheme rules count as one, does not.
 */
const UNITS_PER_CHAR = 16;
/** Input longer than this many UTF-16 units per allowed character is refused without further work. */
const HARD_CAP_UNITS_PER_CHAR = 64;

const ZWJ = '\u200D';
const ZWNJ = '\u200C';
const TAG_FLAG_BASE = 0x1f3f4;

// Invisible and direction-changing characters: controls (Cc), format characters (Cf:
// zero-width space/joiners, LRM/RLM, bidi embeddings, overrides and isolates, the Arabic
// letter mark, word joiner, invisible operators, BOM, soft hyphen, tag characters), the
// combining grapheme joiner and the Hangul fillers (both invisible). A subdivision flag
// (black flag + tag letters + cancel tag) is matched first so that its tags survive.
const INVISIBLE =
  /\u{1F3F4}[\u{E0020}-\u{E007E}]{1,8}\u{E007F}|[\p{Cc}\p{Cf}\u034F\u115F\u1160\u17B4\u17B5\u3164\uFFA0]/gu;
// Line breaks, tabs and the like become spaces rather than vanishing ("a\nb" is "a b").
const SPACE_CONTROLS = /^[\t\n\v\f\r\u001C-\u001F\u0085]$/;
// Scripts in which ZWJ and ZWNJ change how letters join (Persian, Indic conjuncts):
// there they are kept for display. Matching ignores them everywhere.
const JOINING_SCRIPT =
  /^[\p{sc=Arabic}\p{sc=Syriac}\p{sc=Nko}\p{sc=Devanagari}\p{sc=Bengali}\p{sc=Gurmukhi}\p{sc=Gujarati}\p{sc=Oriya}\p{sc=Tamil}\p{sc=Telugu}\p{sc=Kannada}\p{sc=Malayalam}\p{sc=Sinhala}]$/u;
const EMOJI_BEFORE_ZWJ = /^[\p{Extended_Pictographic}\p{Emoji_Modifier}\uFE0F]$/u;
const PICTOGRAPH = /^\p{Extended_Pictographic}$/u;
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const EXCESS_MARKS = new RegExp(`(\\p{M}{${MAX_MARKS}})\\p{M}+`, 'gu');
const SPACES = /[\s\u2800]+/g; // U+2800 (braille blank) is used as an "invisible" letter
const HAS_VISIBLE = /[^\p{M}\p{Z}]/u;
const PRINTABLE_ASCII = /^[\x20-\x7E]*$/;

function codePointBefore(s: string, offset: number): number | undefined {
  if (offset <= 0) return undefined;
  const low = s.charCodeAt(offset - 1);
  if (offset >= 2 && low >= 0xdc00 && low <= 0xdfff) {
    const high = s.charCodeAt(offset - 2);
    if (high >= 0xd800 && high <= 0xdbff) return s.codePointAt(offset - 2);
  }
  return low;
}

/** ZWJ stays inside emoji sequences (a family is one emoji); ZWJ and ZWNJ stay in scripts that use them. */
function keepJoiner(s: string, offset: number, joiner: string): boolean {
  const before = codePointBefore(s, offset);
  const after = s.codePointAt(offset + 1);
  if (before === undefined || after === undefined) return false;
  const prev = String.fromCodePoint(before);
  const next = String.fromCodePoint(after);
  if (joiner === ZWJ && EMOJI_BEFORE_ZWJ.test(prev) && PICTOGRAPH.test(next)) return true;
  return JOINING_SCRIPT.test(prev) && JOINING_SCRIPT.test(next);
}

function stripInvisible(s: string): string {
  return s.replace(INVISIBLE, (m: string, offset: number, whole: string) => {
    if (m.codePointAt(0) === TAG_FLAG_BASE) return m;
    if (m === ZWJ || m === ZWNJ) return keepJoiner(whole, offset, m) ? m : '';
    return SPACE_CONTROLS.test(m) ? ' ' : '';
  });
}

type GraphemeSegmenter = { segment(input: string): Iterable<{ segment: string }> };
let segmenter: GraphemeSegmenter | null | undefined;

function graphemeSegmenter(): GraphemeSegmenter | null {
  if (segmenter === undefined) {
    const Seg = (globalThis.Intl as { Segmenter?: typeof Intl.Segmenter } | undefined)?.Segmenter;
    segmenter = Seg ? new Seg(undefined, { granularity: 'grapheme' }) : null;
  }
  return segmenter;
}

/** User-perceived characters: grapheme clusters where the platform can tell, else code points. */
export function countCharacters(text: string): number {
  if (PRINTABLE_ASCII.test(text)) return text.length;
  const seg = graphemeSegmenter();
  let n = 0;
  if (seg) {
    for (const { segment } of seg.segment(text)) n += Math.max(1, Math.ceil(segment.length / UNITS_PER_CHAR));
  } else {
    for (const _ of text) n++;
  }
  return n;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Turns raw input into the text to show: well-formed, NFC, without control, zero-width,
 * bidi-control or other invisible characters, with at most a few combining marks per
 * character, whitespace runs collapsed to one space and trimmed. Refuses text that is
 * empty after that, and text longer than `maxLength` user-perceived characters.
 *
 * ZWJ and ZWNJ are kept only where they carry meaning: ZWJ inside emoji sequences (so
 * that a family stays one emoji) and both between letters of scripts that use them
 * (Persian, Indic conjuncts). Everywhere else they go; matching ignores them always.
 */
export function normalizeUserText(raw: string, maxLength: number, opts: ModerationTextOptions = {}): NormalizeResult {
  if (!(Number.isInteger(maxLength) && maxLength >= 1)) {
    throw new RangeError(`maxLength must be a positive integer, not ${maxLength}`);
  }
  const noun = opts.noun ?? 'prompt';
  const empty = { error: 'empty' as const, message: `a ${noun} needs some text` };
  if (typeof raw !== 'string') return empty;
  const hardCap = maxLength * HARD_CAP_UNITS_PER_CHAR + 1024;
  if (raw.length > hardCap) {
    return { error: 'too_long', message: `a ${noun} can be at most ${plural(maxLength, 'character')}; this one has more than ${hardCap}` };
  }
  const text = stripInvisible(raw.replace(LONE_SURROGATE, '\uFFFD'))
    .normalize('NFC')
    .replace(EXCESS_MARKS, '$1')
    .replace(SPACES, ' ')
    .trim();
  if (!HAS_VISIBLE.test(text)) return empty;
  const length = countCharacters(text);
  if (length > maxLength) {
    return { error: 'too_long', message: `a ${noun} can be at most ${plural(maxLength, 'character')}; this one has ${length}` };
  }
  return { text };
}

// ---------------------------------------------------------------------------
// Folding for matching

// Lookalikes of Latin letters (after NFKD, which already handles fullwidth, styled,
// circled and most accented letters). Keys are checked as written first, so that an
// uppercase letter can map differently from its lowercase form (Greek Η looks like H,
// η like n), then lowercased. Built from Unicode's confusables data, trimmed to what
// people actually type.
const CONFUSABLE_PAIRS =
  // Cyrillic
  'аa вb еe кk мm нh оo пn рp сc тt уy хx ьb ъb ѕs іi јj ԁd ԛq ԝw һh ӏl ѵv үy ұy ғf гr иu шw щw ԍg ' +
  'Вb Нh Мm Кk Тt Ӏl Ьb ' +
  // Greek
  'αa βb γy δd εe ηn ιi κk νv οo ρp τt υu χx ωw ςc μu ϲc ϳj ' +
  'Αa Βb Εe Ζz Ηh Ιi Κk Μm Νn Οo Ρp Τt Υy Χx ' +
  // Armenian
  'օo սu ոn հh ցg զq աw Սu Օo ' +
  // Cherokee (uppercase; lowercasing would turn them into other lookalikes)
  'Ꭺa Ᏼb Ꮯc Ꭰd Ꭼe Ꮐg Ꮋh Ꭵi Ꮶk Ꮮl Ꮇm Ꮲp Ꮢr Ꮪs Ꭲt Ꮩv Ꮃw Ꮓz ' +
  // Latin small capitals, IPA and stroked letters that NFKD leaves alone
  'ıi ȷj ɑa ɡg ɩi ʀr ʙb ɢg ʜh ɪi ʟl ɴn ʏy ᴀa ᴄc ᴅd ᴇe ᴊj ᴋk ᴍm ᴏo ᴘp ᴛt ᴜu ᴠv ᴡw ᴢz ꜱs ꜰf ' +
  'ǀl øo đd łl ħh ŧt ƀb ɨi ðd ƒf ɓb ɗd ƙk ƴy ʋv ɵo ǝe ɛe ɔc';
const CONFUSABLES = new Map<string, string>();
for (const pair of CONFUSABLE_PAIRS.split(' ')) {
  const [from, to] = Array.from(pair);
  if (from && to) CONFUSABLES.set(from, to);
}
// Letters that are really two.
for (const [from, to] of [['æ', 'ae'], ['œ', 'oe'], ['ß', 'ss']] as const) CONFUSABLES.set(from, to);

/** The number of lookalike characters folded to Latin letters (for tests and docs). */
export const CONFUSABLE_COUNT = CONFUSABLES.size;

function rangeFold(cp: number): string | undefined {
  // Regional indicators (flag letters) and negative circled/squared letters (🅐, 🅰).
  if (cp >= 0x1f1e6 && cp <= 0x1f1ff) return String.fromCharCode(97 + cp - 0x1f1e6);
  if (cp >= 0x1f150 && cp <= 0x1f169) return String.fromCharCode(97 + cp - 0x1f150);
  if (cp >= 0x1f170 && cp <= 0x1f189) return String.fromCharCode(97 + cp - 0x1f170);
  return undefined;
}

const DROP_FOR_MATCHING = /^[\p{Mn}\p{Me}\p{Default_Ignorable_Code_Point}]$/u;
const FOLD_CACHE = new Map<string, string>();
const FOLD_CACHE_MAX = 8192;

/** One code point (already NFKD) folded to the letters it stands for, or '' if it is dropped. */
function foldCodePoint(cp: string): string {
  let out = FOLD_CACHE.get(cp);
  if (out !== undefined) return out;
  if (DROP_FOR_MATCHING.test(cp)) out = '';
  else {
    out = CONFUSABLES.get(cp) ?? rangeFold(cp.codePointAt(0) ?? 0);
    if (out === undefined) {
      const lower = cp.toLowerCase();
      out = CONFUSABLES.get(lower) ?? lower;
    }
  }
  if (FOLD_CACHE.size >= FOLD_CACHE_MAX) FOLD_CACHE.clear();
  FOLD_CACHE.set(cp, out);
  return out;
}

/**
 * The text as matching sees it: compatibility-decomposed, without diacritics and
 * invisible characters, lookalikes mapped to Latin, lower case. Leetspeak is not
 * applied here (it is ambiguous and resolved during the search).
 */
export function foldForMatching(text: string): string {
  let out = '';
  for (const cp of text.normalize('NFKD')) out += foldCodePoint(cp);
  return out;
}

// Character classes of the folded text.
const C_LETTER = 0; // part of a word
const C_DIGIT = 1; // part of a word; also a leet letter in words that have letters
const C_LEET = 2; // @ $ ! | ...: a letter in some views, a separator in another
const C_JOIN = 3; // apostrophes: ignored inside words ("don't" is "dont")
const C_SPACE = 4; // separates words
const C_PUNCT = 5; // separates words, except in the view that joins "b.a.d"
const C_CJK = 6; // a letter of a script written without spaces: each is a word of its own

const LEET_DIGITS: Readonly<Record<string, readonly string[]>> = {
  '0': ['0', 'o'],
  '1': ['1', 'i', 'l'],
  '3': ['3', 'e'],
  '4': ['4', 'a'],
  '5': ['5', 's'],
  '7': ['7', 't'],
  '8': ['8', 'b'],
  '9': ['9', 'g'],
};
// '' means "nothing": "bad!" is "bad", "$ad" is "sad", "@taylorswift" is "taylorswift".
const LEET_SYMBOLS: Readonly<Record<string, readonly string[]>> = {
  '@': ['a', ''],
  '$': ['s', ''],
  '!': ['i', ''],
  '¡': ['i', ''],
  '|': ['l', 'i', ''],
  '€': ['e', ''],
  '¢': ['c', ''],
};
const APOSTROPHES = new Set(["'", '\u2019', '\u2018', '\u02BC', '\u02B9', '`', '\u2032']);
const WORDLESS_SCRIPT =
  /^[\p{sc=Han}\p{sc=Hiragana}\p{sc=Katakana}\p{sc=Thai}\p{sc=Lao}\p{sc=Khmer}\p{sc=Myanmar}]$/u;
const WORD_CHAR = /^[\p{L}\p{N}\p{Mc}]$/u;
const SPACE_CHAR = /^\s$/;
const CLASS_CACHE = new Map<string, number>();

function classify(ch: string): number {
  let c = CLASS_CACHE.get(ch);
  if (c !== undefined) return c;
  if (ch >= 'a' && ch <= 'z') c = C_LETTER;
  else if (ch >= '0' && ch <= '9') c = C_DIGIT;
  else if (ch in LEET_SYMBOLS) c = C_LEET;
  else if (APOSTROPHES.has(ch)) c = C_JOIN;
  else if (SPACE_CHAR.test(ch)) c = C_SPACE;
  else if (WORDLESS_SCRIPT.test(ch)) c = C_CJK;
  else if (WORD_CHAR.test(ch)) c = C_LETTER;
  else c = C_PUNCT;
  if (CLASS_CACHE.size >= FOLD_CACHE_MAX) CLASS_CACHE.clear();
  CLASS_CACHE.set(ch, c);
  return c;
}

interface Folded {
  chars: string[];
  classes: number[];
}

function fold(text: string): Folded {
  const chars: string[] = [];
  const classes: number[] = [];
  for (const cp of text.normalize('NFKD')) {
    const out = foldCodePoint(cp);
    if (out.length === 1) {
      chars.push(out);
      classes.push(classify(out));
    } else {
      for (const ch of out) {
        chars.push(ch);
        classes.push(classify(ch));
      }
    }
  }
  return { chars, classes };
}

// ---------------------------------------------------------------------------
// Views: the folded text cut into tokens

// How each view treats leet symbols and punctuation.
const VIEW_SPLIT_ALL = 0; // every non-letter separates: "hi!there" -> "hi" "there", "bad!" -> "bad"
const VIEW_KEEP_LEET = 1; // leet symbols are letters: "!d!ot", "l0$er", "b@d"
const VIEW_JOIN_PUNCT = 2; // punctuation inside a word is ignored: "b.a.d", "lo-ser", "lo🙂ser"

interface RawToken {
  idx: number[];
  cjk: boolean;
}

function tokenize(f: Folded, mode: number): RawToken[] {
  const tokens: RawToken[] = [];
  let cur: number[] = [];
  const flush = (): void => {
    if (cur.length > 0) tokens.push({ idx: cur, cjk: false });
    cur = [];
  };
  for (let i = 0; i < f.chars.length; i++) {
    const c = f.classes[i];
    if (c === C_LETTER || c === C_DIGIT) cur.push(i);
    else if (c === C_LEET) {
      if (mode === VIEW_SPLIT_ALL) flush();
      else cur.push(i);
    } else if (c === C_JOIN) continue;
    else if (c === C_PUNCT) {
      if (mode !== VIEW_JOIN_PUNCT) flush();
    } else if (c === C_CJK) {
      flush();
      tokens.push({ idx: [i], cjk: true });
    } else flush();
  }
  flush();
  return tokens;
}

/** Runs of two or more one-letter tokens become one token: "b a d", "b.a.d", "b-a-d" -> "bad". */
function mergeSingles(tokens: RawToken[]): RawToken[] | null {
  const out: RawToken[] = [];
  let merged = false;
  for (let i = 0; i < tokens.length; ) {
    let j = i;
    while (j < tokens.length && tokens[j]!.idx.length === 1 && !tokens[j]!.cjk) j++;
    if (j - i >= 2) {
      const idx: number[] = [];
      for (let k = i; k < j; k++) idx.push(tokens[k]!.idx[0]!);
      out.push({ idx, cjk: false });
      merged = true;
      i = j;
    } else {
      out.push(tokens[i]!);
      i++;
    }
  }
  return merged ? out : null;
}

/** A view ready for searching: every position's candidate letters; tokens separated by a gap slot. */
interface View {
  cands: (readonly string[])[];
  starts: number[];
  ends: number[];
}

const SINGLE = new Map<string, readonly string[]>();
function single(ch: string): readonly string[] {
  let a = SINGLE.get(ch);
  if (!a) {
    a = Object.freeze([ch]);
    if (SINGLE.size >= FOLD_CACHE_MAX) SINGLE.clear();
    SINGLE.set(ch, a);
  }
  return a;
}
const GAP: readonly string[] = Object.freeze([]);

function toView(f: Folded, tokens: RawToken[]): View {
  const cands: (readonly string[])[] = [];
  const starts: number[] = [];
  const ends: number[] = [];
  for (const t of tokens) {
    // Digits read as letters only in words that have letters: "455 bpm" is a number, "a55" is not.
    let leet = false;
    for (const i of t.idx) if (f.classes[i] !== C_DIGIT) leet = true;
    starts.push(cands.length);
    for (const i of t.idx) {
      const ch = f.chars[i]!;
      const c = f.classes[i];
      if (c === C_DIGIT) cands.push(leet ? (LEET_DIGITS[ch] ?? single(ch)) : single(ch));
      else if (c === C_LEET) cands.push(LEET_SYMBOLS[ch] ?? single(ch));
      else cands.push(single(ch));
    }
    ends.push(cands.length);
    cands.push(GAP);
  }
  return { cands, starts, ends };
}

function buildViews(f: Folded): View[] {
  const kept = tokenize(f, VIEW_KEEP_LEET);
  const views = [toView(f, kept)];
  if (f.classes.includes(C_LEET)) views.push(toView(f, tokenize(f, VIEW_SPLIT_ALL)));
  const joined = tokenize(f, VIEW_JOIN_PUNCT);
  if (joined.length < kept.length) views.push(toView(f, joined));
  const singles = mergeSingles(kept);
  if (singles) views.push(toView(f, singles));
  return views;
}

// ---------------------------------------------------------------------------
// The compiled lists: a trie of folded entries

interface Entry {
  kind: BlockedKind;
  source: string;
  /** A multi-word entry may run across tokens ("taylor" "swift"); a single word may not. */
  spannable: boolean;
}

interface TrieNode {
  id: number;
  /** The letter on the edge into this node ('' for the root): a repeat of it stays here. */
  letter: string;
  children: Map<string, TrieNode>;
  entries: Entry[] | null;
  /** Some entry below may still match if the search crosses into the next token. */
  spanBelow: boolean;
}

class Trie {
  readonly root: TrieNode;
  #nextId = 1;
  size = 0;

  constructor() {
    this.root = { id: 0, letter: '', children: new Map(), entries: null, spanBelow: false };
  }

  insert(key: readonly string[], entry: Entry): void {
    if (key.length === 0) return;
    let node = this.root;
    for (const ch of key) {
      if (entry.spannable) node.spanBelow = true;
      let next = node.children.get(ch);
      if (!next) {
        next = { id: this.#nextId++, letter: ch, children: new Map(), entries: null, spanBelow: false };
        node.children.set(ch, next);
      }
      node = next;
    }
    (node.entries ??= []).push(entry);
    this.size++;
  }
}

/** An entry cut into tokens of folded letters (leet symbols read as letters, digits as digits). */
function entryTokens(entry: string): string[][] {
  const clean = stripInvisible(String(entry).replace(LONE_SURROGATE, '\uFFFD')).normalize('NFC');
  const f = fold(clean);
  const tokens: string[][] = [];
  let cur: string[] = [];
  const flush = (): void => {
    if (cur.length > 0) tokens.push(cur);
    cur = [];
  };
  for (let i = 0; i < f.chars.length; i++) {
    const ch = f.chars[i]!;
    const c = f.classes[i];
    if (c === C_LETTER || c === C_DIGIT) cur.push(ch);
    else if (c === C_LEET) cur.push(LEET_SYMBOLS[ch]?.[0] || ch);
    else if (c === C_JOIN) continue;
    else if (c === C_CJK) {
      flush();
      tokens.push([ch]);
    } else flush();
  }
  flush();
  return tokens;
}

const SYMBOL_NOISE = /[\s\uFE0E\uFE0F\u200D\u{1F3FB}-\u{1F3FF}]/gu;
const HAS_SYMBOL = /\p{S}/u;
function symbolKey(s: string): string {
  return stripInvisible(s).normalize('NFC').replace(SYMBOL_NOISE, '');
}

const SIBILANT_END = /(s|x|z|ch|sh)$/;

export class CompiledModeration {
  readonly #words = new Trie();
  readonly #infixes = new Trie();
  readonly #symbols: { key: string; entry: Entry }[] = [];

  constructor(lists: ModerationLists) {
    const allowed = new Set<string>();
    for (const name of lists.allowedNames ?? []) {
      const tokens = entryTokens(name);
      allowed.add(tokens.flat().join(''));
      if (tokens.length > 1 && tokens[0]!.join('') === 'the') allowed.add(tokens.slice(1).flat().join(''));
    }
    for (const w of lists.blockedWords ?? []) this.#add(w, 'word');
    for (const n of lists.blockedNames ?? []) this.#add(n, 'name');
    if (lists.includeDefaults) {
      const d = defaultBlockedWords();
      for (const w of d.words) this.#add(w, 'word');
      for (const w of d.infixes) {
        const key = entryTokens(w).flat();
        this.#infixes.insert(key, { kind: 'word', source: w, spannable: false });
      }
      for (const s of d.symbols) this.#addSymbol(s, { kind: 'word', source: s, spannable: false });
    }
    if (lists.blockOtherArtists) {
      for (const a of DEFAULT_OTHER_ARTISTS) this.#add(a, 'artist', allowed);
    }
  }

  /** Number of match keys compiled (entries plus their plural and possessive forms). */
  get size(): number {
    return this.#words.size + this.#infixes.size + this.#symbols.length;
  }

  #add(source: string, kind: BlockedKind, allowed?: Set<string>): void {
    const tokens = entryTokens(source);
    if (tokens.length === 0) {
      this.#addSymbol(source, { kind, source, spannable: false });
      return;
    }
    // A name is also refused without a leading "the" ("The Beatles" -> "beatles").
    const forms = [tokens];
    if (kind !== 'word' && tokens.length > 1 && tokens[0]!.join('') === 'the') forms.push(tokens.slice(1));
    for (const form of forms) {
      const key = form.flat();
      if (allowed?.has(key.join(''))) return;
      const entry: Entry = { kind, source, spannable: form.length > 1 };
      this.#words.insert(key, entry);
      // Plurals of single words, possessives of names ("Drake's" reads as "drakes").
      const last = key.join('');
      if (kind === 'word') {
        if (form.length === 1) {
          this.#words.insert([...key, 's'], entry);
          if (SIBILANT_END.test(last)) this.#words.insert([...key, 'e', 's'], entry);
        }
      } else {
        this.#words.insert([...key, 's'], entry);
      }
    }
  }

  #addSymbol(source: string, entry: Entry): void {
    // Only entries with a symbol in them (emoji); punctuation alone would match everywhere.
    const key = symbolKey(source);
    if (HAS_SYMBOL.test(key)) this.#symbols.push({ key, entry });
  }

  /**
   * The first blocked entry `text` uses, or null. Works on any string; meant for the
   * output of `normalizeUserText`.
   */
  match(text: string): BlockedMatch | null {
    if (this.#symbols.length > 0) {
      const sym = symbolKey(text);
      for (const s of this.#symbols) if (sym.includes(s.key)) return found(s.entry);
    }
    const views = buildViews(fold(text));
    for (const v of views) {
      const e = searchWords(v, this.#words.root);
      if (e) return found(e);
    }
    if (this.#infixes.size > 0) {
      for (const v of views) {
        const e = searchInfixes(v, this.#infixes.root);
        if (e) return found(e);
      }
    }
    return null;
  }
}

function found(e: Entry): BlockedMatch {
  return { kind: e.kind, entry: e.source };
}

interface State {
  pos: number;
  tok: number;
  node: TrieNode;
  crossed: boolean;
}

/**
 * Whole-token search. From each token start, walk the trie over the candidate letters:
 * a candidate may enter a child, repeat the current node's letter (stretched letters),
 * or be nothing. At a token's end an entry there matches; a multi-word entry may go on
 * into the next token. Seen states (node, position, crossed) are not walked twice, so
 * ambiguous input cannot blow up.
 */
function searchWords(v: View, root: TrieNode): Entry | null {
  if (root.children.size === 0) return null;
  const stride = v.cands.length + 1;
  const seen = new Set<number>();
  const stack: State[] = [];
  for (let t = 0; t < v.starts.length; t++) {
    stack.push({ pos: v.starts[t]!, tok: t, node: root, crossed: false });
    while (stack.length > 0) {
      const s = stack.pop()!;
      const key = (s.node.id * stride + s.pos) * 2 + (s.crossed ? 1 : 0);
      if (seen.has(key)) continue;
      seen.add(key);
      if (s.pos === v.ends[s.tok]) {
        if (s.node.entries) {
          for (const e of s.node.entries) if (!s.crossed || e.spannable) return e;
        }
        if (s.node.spanBelow && s.node !== root && s.tok + 1 < v.starts.length) {
          stack.push({ pos: v.starts[s.tok + 1]!, tok: s.tok + 1, node: s.node, crossed: true });
        }
        continue;
      }
      for (const c of v.cands[s.pos]!) {
        if (c === '') {
          stack.push({ pos: s.pos + 1, tok: s.tok, node: s.node, crossed: s.crossed });
          continue;
        }
        const child = s.node.children.get(c);
        if (child) stack.push({ pos: s.pos + 1, tok: s.tok, node: child, crossed: s.crossed });
        if (c === s.node.letter) stack.push({ pos: s.pos + 1, tok: s.tok, node: s.node, crossed: s.crossed });
      }
    }
  }
  return null;
}

/** Search for entries anywhere inside a token (the default list's infixes). */
function searchInfixes(v: View, root: TrieNode): Entry | null {
  const stride = v.cands.length + 1;
  const seen = new Set<number>();
  const stack: State[] = [];
  for (let t = 0; t < v.starts.length; t++) {
    const end = v.ends[t]!;
    for (let p = v.starts[t]!; p < end; p++) {
      stack.push({ pos: p, tok: t, node: root, crossed: false });
      while (stack.length > 0) {
        const s = stack.pop()!;
        if (s.node.entries) return s.node.entries[0]!;
        const key = s.node.id * stride + s.pos;
        if (seen.has(key)) continue;
        seen.add(key);
        if (s.pos === end) continue;
        for (const c of v.cands[s.pos]!) {
          if (c === '') {
            if (s.node !== root) stack.push({ pos: s.pos + 1, tok: t, node: s.node, crossed: false });
            continue;
          }
          const child = s.node.children.get(c);
          if (child) stack.push({ pos: s.pos + 1, tok: t, node: child, crossed: false });
          if (c === s.node.letter) stack.push({ pos: s.pos + 1, tok: t, node: s.node, crossed: false });
        }
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------------------
// The entry points

/** Compiles the lists once (per room, or whenever its rules change). */
export function compileModeration(lists: ModerationLists): CompiledModeration {
  return new CompiledModeration(lists);
}

// Lists passed directly to moderateText are compiled once per lists object. Treat such an
// object as immutable; after changing the rules, pass a new object (or compile explicitly).
const compiledCache = new WeakMap<ModerationLists, CompiledModeration>();

function compiledFor(lists: ModerationLists | CompiledModeration): CompiledModeration {
  if (lists instanceof CompiledModeration) return lists;
  let c = compiledCache.get(lists);
  if (!c) {
    c = new CompiledModeration(lists);
    compiledCache.set(lists, c);
  }
  return c;
}

/** The message a member sees: why, without repeating the word (which would help evade the list). */
export function blockedMessage(kind: BlockedKind, noun = 'prompt'): string {
  switch (kind) {
    case 'word':
      return `this ${noun} uses a word this room does not allow`;
    case 'name':
      return `this ${noun} uses a name this room does not allow`;
    case 'artist':
      return `this ${noun} names another artist, which this release does not allow`;
  }
}

/**
 * Normalizes `raw` and checks it against the lists. On success the verdict carries the
 * normalized text, which is what should be stored and shown.
 */
export function moderateText(
  raw: string,
  lists: ModerationLists | CompiledModeration,
  maxLength: number,
  opts: ModerationTextOptions = {},
): ModerationVerdict {
  const n = normalizeUserText(raw, maxLength, opts);
  if ('error' in n) return { ok: false, code: n.error, message: n.message };
  const hit = compiledFor(lists).match(n.text);
  if (hit) return { ok: false, code: 'blocked_words', message: blockedMessage(hit.kind, opts.noun) };
  return { ok: true, text: n.text };
}
