// Default lists for moderation (see moderation.ts).
//
// The slurs and profanity are stored ROT13-encoded: this file has to be readable,
// reviewable and searchable by everyone working on the project without putting
// slurs in front of them. It is not meant as secrecy (ROT13 is trivially reversed),
// and nothing in here is confidential. Decode one with `rot13()` below.
//
// The list is deliberately short: strong profanity and common English slurs, chosen
// so that matching on word boundaries does not hit ordinary words. Left out on
// purpose, because in prompts about music and pictures they are ordinary words far
// more often than insults (ROT13 too): 'nff' (it also hides in "bass"), 'qvpx',
// 'chffl', 'puvax', 'pbba', 'ubzb'. A release can still block any of them.

/** Matched as whole words (plus plural forms): never inside a longer word. */
const WORDS_ROT13: readonly string[] = [
  'fuvg', 'fuvggl', 'fuvgurnq', 'ohyyfuvg', 'ubefrfuvg', 'qvcfuvg',
  'spx', 'shx', 'sphx',
  'phag', 'nffubyr', 'nefrubyr', 'ovgpu', 'pbpxfhpxre', 'pbpx', 'gjng', 'jnaxre', 'juber', 'fyhg',
  'encr', 'encvfg',
  'avttre', 'avttn', 'snttbg', 'snt', 'qlxr', 'genaal', 'genaavrf', 'ergneq', 'ergneqrq',
  'fcvp', 'tbbx', 'xvxr', 'jrgonpx', 'ornare', 'enturnq', 'gbjryurnq', 'cnxv', 'furznyr',
];

/**
 * Matched anywhere inside a word, for the few words that no ordinary English word
 * contains, so that every compound of them is caught without listing it.
 */
const INFIX_ROT13: readonly string[] = ['shpx'];

/** Symbols refused as they are (emoji with an unambiguous meaning). */
const SYMBOLS: readonly string[] = ['\u{1F595}'];

/** Famous musicians and bands other than the release's own artist, for `blockOtherArtists`. */
export const DEFAULT_OTHER_ARTISTS: readonly string[] = [
  // Names that are also everyday phrases ("Imagine Dragons", "Nirvana", "Queen", "Green Day",
  // "Prince", "Madonna", "Bad Bunny") are left out: a prompt like "green day, imagine dragons"
  // is about pictures far more often than about the band.
  'Taylor Swift', 'Beyoncé', 'Rihanna', 'Drake', 'Kanye West', 'Eminem', 'Ed Sheeran',
  'Ariana Grande', 'Billie Eilish', 'Lady Gaga', 'Bruno Mars', 'The Weeknd', 'Justin Bieber',
  'Dua Lipa', 'Kendrick Lamar', 'Travis Scott', 'Post Malone', 'Harry Styles', 'Olivia Rodrigo',
  'Frank Sinatra', 'BTS', 'Blackpink', 'Katy Perry', 'Shakira', 'Adele', 'Michael Jackson',
  'Elvis Presley', 'The Beatles', 'Led Zeppelin', 'Pink Floyd', 'Metallica', 'Radiohead',
  'Daft Punk', 'Coldplay', 'Arctic Monkeys', 'Lana Del Rey', 'SZA', 'Doja Cat', 'Nicki Minaj',
  'Snoop Dogg', 'Jay-Z', 'Miley Cyrus', 'Selena Gomez', 'Sabrina Carpenter', 'Bob Marley',
  'David Bowie', 'Whitney Houston', 'Elton John', 'Freddie Mercury', 'Bob Dylan', 'Tupac', '2Pac',
];

/** ROT13: letters rotate by 13 places, everything else is kept. Its own inverse. */
export function rot13(s: string): string {
  return s.replace(/[a-z]/gi, (c) => {
    const base = c <= 'Z' ? 65 : 97;
    return String.fromCharCode(((c.charCodeAt(0) - base + 13) % 26) + base);
  });
}

export interface DefaultBlockedWords {
  /** Refused as whole words. */
  words: readonly string[];
  /** Refused anywhere inside a word. */
  infixes: readonly string[];
  /** Refused wherever they appear. */
  symbols: readonly string[];
}

let decoded: DefaultBlockedWords | undefined;

/** The default blocked words, decoded (once). */
export function defaultBlockedWords(): DefaultBlockedWords {
  decoded ??= Object.freeze({
    words: Object.freeze(WORDS_ROT13.map(rot13)),
    infixes: Object.freeze(INFIX_ROT13.map(rot13)),
    symbols: SYMBOLS,
  });
  return decoded;
}
