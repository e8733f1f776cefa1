import { expect } from 'chai';
import fs from 'node:fs';
import {
  CONFUSABLE_COUNT,
  compileModeration,
  countCharacters,
  foldForMatching,
  moderateText,
  normalizeUserText,
  type ModerationLists,
  type ModerationVerdict,
} from '../../shared/moderation.ts';
import { DEFAULT_OTHER_ARTISTS, defaultBlockedWords, rot13 } from '../../shared/moderation-defaults.ts';

// Obfuscation cases use words a release might block ("loser", "idiot") and a made-up name,
// so that the table stays readable; the default list's words appear ROT13-encoded (see
// moderation-defaults.ts for why), decoded with `r()`.
const r = rot13;

const strict: ModerationLists = {
  blockedWords: ['loser', 'idiot', 'ass', 'bad', 'anal', 'cum', 'tit', 'sex', 'hell'],
  blockedNames: ['Jane Doe', 'Blink-182'],
  includeDefaults: true,
  blockOtherArtists: true,
};
const compiled = compileModeration(strict);
const MAX = 200;

function verdict(text: string, lists: ModerationLists | ReturnType<typeof compileModeration> = compiled): ModerationVerdict {
  return moderateText(text, lists, MAX);
}

function refusal(text: string, lists?: ModerationLists): string {
  const v = verdict(text, lists);
  if (v.ok) throw new Error(`expected ${JSON.stringify(text)} to be refused; it passed as ${JSON.stringify(v.text)}`);
  return v.code;
}

describe('normalizeUserText', () => {
  const cases: [string, string, string][] = [
    ['keeps ordinary text as it is', 'stormy night, slower', 'stormy night, slower'],
    ['composes to NFC for display', 'cafe\u0301', 'caf\u00e9'],
    ['collapses whitespace runs and trims', '  slow \t\t down \n\n now  ', 'slow down now'],
    ['turns line breaks and other space controls into spaces', 'a\r\nb\u0085c\u2028d', 'a b c d'],
    ['drops other control characters', 'a\u0000b\u0007c\u007Fd\u009Be', 'abcde'],
    ['drops zero-width spaces and joiners between letters', 'b\u200Bl\u200Cu\u200De\u2060\u2061\u2062\u2063\u2064', 'blue'],
    ['drops BOM, soft hyphen and combining grapheme joiner', '\uFEFFre\u00ADd\u034F', 'red'],
    ['drops bidi embeddings, overrides and isolates', '\u202Ared\u202B\u202C\u202D\u202E \u2066\u2067\u2068blue\u2069 \u061C', 'red blue'],
    ['drops LRM and RLM', '\u200Ered\u200F', 'red'],
    ['drops Hangul fillers used as invisible letters', 'a\u3164b\u115Fc\u1160d\uFFA0', 'abcd'],
    ['treats the braille blank as a space', 'a\u2800\u2800b', 'a b'],
    ['keeps ZWJ inside an emoji family', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}'],
    ['keeps ZWNJ in Persian, where it changes how letters join', 'می\u200Cخواهم', 'می\u200Cخواهم'],
    ['keeps a subdivision flag with its tag characters', '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}', '\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F}'],
    ['drops stray tag characters', 'r\u{E0061}e\u{E0062}d', 'red'],
    ['replaces lone surrogates', 'a\uD800b', 'a\uFFFDb'],
    ['keeps right-to-left text as it is', 'שלום עולם', 'שלום עולם'],
  ];
  for (const [name, raw, expected] of cases) {
    it(name, () => {
      expect(normalizeUserText(raw, MAX)).to.deep.equal({ text: expected });
    });
  }

  it('caps combining marks on one character ("Zalgo" text)', () => {
    const r = normalizeUserText('a' + '\u0301\u0316'.repeat(40) + 'b', MAX);
    expect(r).to.have.property('text');
    const text = (r as { text: string }).text;
    expect(text.match(/\p{M}/gu)?.length).to.be.at.most(5);
    expect(countCharacters(text)).to.equal(2);
  });

  const empties: [string, string][] = [
    ['nothing', ''],
    ['spaces only', '   '],
    ['tabs and newlines only', '\n\t\r\n'],
    ['zero-width characters only', '\u200B\u200C\u200D\uFEFF\u2060'],
    ['bidi controls only', '\u202E\u2066\u2069'],
    ['a soft hyphen only', '\u00AD'],
    ['braille blanks and Hangul fillers only', '\u2800\u3164'],
    ['combining marks only', '\u0301\u0302'],
  ];
  for (const [name, raw] of empties) {
    it(`refuses ${name} as empty`, () => {
      const r = normalizeUserText(raw, MAX);
      expect(r).to.deep.equal({ error: 'empty', message: 'a prompt needs some text' });
      expect(refusal(raw)).to.equal('empty');
    });
  }

  it('refuses text over the limit with a message a person can read', () => {
    expect(normalizeUserText('a'.repeat(245), 200)).to.deep.equal({
      error: 'too_long',
      message: 'a prompt can be at most 200 characters; this one has 245',
    });
    expect(normalizeUserText('ab', 1)).to.deep.equal({
      error: 'too_long',
      message: 'a prompt can be at most 1 character; this one has 2',
    });
  });

  it('accepts text of exactly the limit', () => {
    expect(normalizeUserText('a'.repeat(200), 200)).to.deep.equal({ text: 'a'.repeat(200) });
  });

  it('counts the length after normalizing (invisible characters and extra spaces do not count)', () => {
    expect(normalizeUserText('a\u200B'.repeat(10) + '     ', 10)).to.deep.equal({ text: 'a'.repeat(10) });
  });

  it('counts user-perceived characters: an emoji family, a flag, an accented letter are one each', () => {
    const family = '\u{1F468}\u200D\u{1F469}\u200D\u{1F467}\u200D\u{1F466}';
    expect(countCharacters(family)).to.equal(1);
    expect(countCharacters('\u{1F1EF}\u{1F1F5}')).to.equal(1);
    expect(countCharacters('e\u0301')).to.equal(1);
    expect(countCharacters('\u{1F44D}\u{1F3FD}')).to.equal(1);
    expect(normalizeUserText(family.repeat(3), 3)).to.deep.equal({ text: family.repeat(3) });
    expect(normalizeUserText(family.repeat(4), 3)).to.deep.include({ error: 'too_long' });
    expect(normalizeUserText('\u{1F327}\uFE0F\u{1F30A}', 2)).to.deep.equal({ text: '\u{1F327}\uFE0F\u{1F30A}' });
  });

  it('does not let an endless ZWJ chain pass as one character', () => {
    const chain = Array(100).fill('\u{1F468}').join('\u200D');
    expect(normalizeUserText(chain, 10)).to.deep.include({ error: 'too_long' });
  });

  it('refuses enormous input without normalizing all of it', () => {
    const r = normalizeUserText('a'.repeat(5_000_000), 200);
    expect(r).to.have.property('error', 'too_long');
    expect((r as { message: string }).message).to.match(/^a prompt can be at most 200 characters; this one has more than \d+$/);
  });

  it('names the kind of text in its messages', () => {
    expect(normalizeUserText('', 10, { noun: 'message' })).to.deep.equal({ error: 'empty', message: 'a message needs some text' });
    expect(moderateText('loser', strict, 10, { noun: 'message' })).to.deep.equal({
      ok: false,
      code: 'blocked_words',
      message: 'this message uses a word this room does not allow',
    });
  });

  it('rejects a maxLength that is not a positive integer', () => {
    expect(() => normalizeUserText('a', 0)).to.throw(RangeError);
    expect(() => normalizeUserText('a', 1.5)).to.throw(RangeError);
  });
});

describe('moderateText: blocked words see through obfuscation', () => {
  const blocked: [string, string][] = [
    // [what, text]
    ['a plain blocked word', 'what a loser'],
    ['the word alone', 'loser'],
    ['a different case', 'LoSeR'],
    ['diacritics (precomposed)', 'lôsér'],
    ['diacritics (combining)', 'lo\u0301se\u0308r'],
    ['diacritics everywhere', 'ĭdíöt'],
    ['fullwidth letters', 'ｌｏｓｅｒ'],
    ['mathematical bold letters', '𝐥𝐨𝐬𝐞𝐫'],
    ['circled letters', 'ⓛⓞⓢⓔⓡ'],
    ['negative circled letters', '🅛🅞🅢🅔🅡'],
    ['regional indicator letters', '🇱🇴🇸🇪🇷'],
    ['Latin small capitals', 'ʟᴏꜱᴇʀ'],
    ['Cyrillic lookalikes', 'lоѕеr'],
    ['Cyrillic lookalikes, uppercase', 'ӀОЅЕR'],
    ['Greek lookalikes', 'ιδιοτ'],
    ['Greek uppercase lookalikes', 'ΙDΙΟΤ'],
    ['Armenian lookalikes', 'lօser'],
    ['lookalikes from several scripts at once', 'іԁіοт'],
    ['a zero-width space inside the word', 'lo\u200Bser'],
    ['zero-width joiners and non-joiners inside the word', 'l\u200Co\u200Ds\u200De\u200Cr'],
    ['a word joiner and invisible operators inside the word', 'lo\u2060s\u2062er'],
    ['a BOM, soft hyphen and grapheme joiner inside the word', 'l\uFEFFo\u00ADs\u034Fer'],
    ['a bidi override inside the word', 'lo\u202Eser'],
    ['bidi isolates around the word', '\u2066loser\u2069'],
    ['an Arabic letter mark inside the word', 'lo\u061Cser'],
    ['leetspeak digits', 'l0s3r'],
    ['leetspeak symbols', '|0$3r'],
    ['1 read as i', '1d1ot'],
    ['1 read as l', '1oser'],
    ['| read as i', '|d|ot'],
    ['! read as i', '!d!0t'],
    ['7 read as t', 'idio7'],
    ['@ read as a', 'b@d'],
    ['fullwidth digits as leetspeak', 'ｌ０ｓ３ｒ'],
    ['dots between letters', 'l.o.s.e.r'],
    ['spaces between letters', 'l o s e r'],
    ['hyphens between letters', 'l-o-s-e-r'],
    ['underscores between letters', 'l_o_s_e_r'],
    ['mixed separators between letters', 'l. o/s * e ~r'],
    ['separators and leetspeak together', 'L 0 $ 3 R'],
    ['punctuation inside the word', 'lo.ser'],
    ['an emoji inside the word', 'lo\u{1F642}ser'],
    ['repeated letters', 'looooooser'],
    ['every letter repeated', 'llloooossseeerrr'],
    ['a repeated letter in a short word', 'baaaad'],
    ['trailing punctuation', 'loser!!!'],
    ['surrounding punctuation', '(loser)'],
    ['a hashtag', '#loser'],
    ['a mention', '@loser'],
    ['a plural', 'losers'],
    ['a possessive', "idiot's"],
    ['a word with a double letter, stretched', 'asssss'],
    ['leetspeak for a word with a double letter', 'a$$'],
    ['a word with a double letter and an @', '@ss'],
    ['a default word', r('fuvg')],
    ['a default word with diacritics', r('süpx')],
    ['a default word in leetspeak', r('fu1g')],
    ['a default word with symbols', r('$u!g')],
    ['a default word spelled out', r('s h p x')],
    ['a default slur with repeated letters', r('snnnttbbbg')],
    ['a compound of a default infix word', r('zbgureshpxvat')],
    ['a default symbol', '\u{1F595}'],
    ['a default symbol with a skin tone', '\u{1F595}\u{1F3FD}'],
  ];
  for (const [what, text] of blocked) {
    it(`refuses ${what}`, () => {
      expect(refusal(text)).to.equal('blocked_words');
    });
  }

  const names: [string, string][] = [
    ['a blocked name', 'in the style of Jane Doe'],
    ['a blocked name in lower case', 'jane doe'],
    ['a blocked name written as one word', 'JaneDoe'],
    ['a blocked name joined by an underscore', 'jane_doe'],
    ['a blocked name joined by a hyphen', 'Jane-Doe'],
    ['a blocked name with many spaces', 'Jane     Doe'],
    ['a blocked name joined by a zero-width space', 'Jane\u200BDoe'],
    ['a blocked name spelled out', 'j.a.n.e d.o.e'],
    ['a blocked name in leetspeak', 'J4n3 D03'],
    ['a blocked name in Cyrillic lookalikes', 'Jаnе Dое'],
    ['a blocked name with stretched letters', 'jaaaane dooooe'],
    ['a blocked name split in odd places', 'ja ne do e'],
    ['a blocked name possessive', "Jane Doe's"],
    ['a blocked name with digits', 'blink 182'],
    ['a blocked name with digits, run together', 'blink182'],
  ];
  for (const [what, text] of names) {
    it(`refuses ${what}`, () => {
      expect(verdict(text)).to.deep.equal({ ok: false, code: 'blocked_words', message: 'this prompt uses a name this room does not allow' });
    });
  }

  const artists: [string, string][] = [
    ['another artist', 'like Taylor Swift'],
    ['another artist in leetspeak with a dollar sign', 'T4yl0r $w1ft'],
    ['another artist with dots', 'TAYLOR.SWIFT'],
    ['another artist spelled out', 't a y l o r s w i f t'],
    ['another artist in small capitals', 'ᴛᴀʏʟᴏʀ ꜱᴡɪꜰᴛ'],
    ['another artist as a handle', '@taylorswift'],
    ['another artist without the accent', 'beyonce'],
    ['another artist with the accent in capitals', 'BEYONCÉ'],
    ['a band with "the"', 'the beatles'],
    ['a band without "the"', 'Beatles'],
  ];
  for (const [what, text] of artists) {
    it(`refuses ${what}`, () => {
      expect(verdict(text)).to.deep.equal({
        ok: false,
        code: 'blocked_words',
        message: 'this prompt names another artist, which this release does not allow',
      });
    });
  }

  it('says why without repeating the word', () => {
    for (const [, text] of [...blocked, ...names, ...artists]) {
      const v = verdict(text);
      expect(v.ok).to.equal(false);
      const message = (v as { message: string }).message.toLowerCase();
      for (const word of ['loser', 'idiot', 'jane', 'doe', 'taylor', 'swift', 'beatles', ...defaultBlockedWords().words]) {
        expect(message).not.to.match(new RegExp(`\\b${word}\\b`));
      }
    }
  });
});

describe('moderateText: no false positives', () => {
  // Each must pass the strictest lists: the defaults, the other artists, and short blocked
  // words that hide inside ordinary words.
  const innocent: string[] = [
    'bass', 'BASS', 'bass drop', 'B A S S', 'slap bass, more sub', 'classic', 'classical strings', "assassin's creed vibes",
    'massive', 'passage', 'harass', 'glass', 'as fast as light', 'Scunthorpe', 'cocktail', 'peacock', 'Hitchcock',
    'cockpit', 'therapist', 'grape', 'drape', 'scrape', 'shitake', 'shiitake mushrooms', 'Niger', 'Nigeria', 'snigger',
    'spicy', 'spices', 'Pakistan', 'whorl', 'analog synth', 'analysis', 'cumulus clouds', 'document', 'title',
    'petite', 'Sussex', 'sextet', 'hello', 'shell', 'seashells', 'badge', 'Baden-Baden', 'closer', 'Fukuoka',
    'Arsenal', 'ritardando', 'a swift bird', 'pink and floral', 'metal', 'the beat goes on',
    // Words next to each other are not joined into a blocked word.
    "it's hit the charts", 'who re-recorded it', 'rap e-girl aesthetic', 'an al green song',
    // Numbers are numbers.
    '455 bpm', '808 drums', '120bpm', '1 2 3 4 go!', '80s synthwave', 'TR-909 and 303',
    // Leet symbols used as symbols.
    '$$$ money rain $$$', '!!!', '|||| bars', '@everyone more bass', 'r&b groove', 'lo-fi', 'A.M. radio',
    "drum'n'bass", "rock 'n' roll", 'e.g. more blue',
    // Ordinary prompts in any script.
    'stormy night, slower, less glitch, no red', '🌧️🌊', '\u{1F468}\u200D\u{1F469}\u200D\u{1F467} dancing',
    'ليلة ممطرة، أبطأ', 'לילה סוער, איטי יותר', 'می\u200Cخواهم باران', 'धीमी बारिश', '嵐の夜、もっとゆっくり',
    '暴风雨的夜晚', '폭풍우 치는 밤', 'ночь, буря, медленнее', 'καταιγίδα τη νύχτα', 'คืนพายุ',
  ];
  for (const text of innocent) {
    it(`passes ${JSON.stringify(text)}`, () => {
      const v = verdict(text);
      expect(v, JSON.stringify(v)).to.deep.equal({ ok: true, text: (normalizeUserText(text, MAX) as { text: string }).text });
    });
  }

  it('returns right-to-left and joined text as typed', () => {
    expect(verdict('לילה סוער')).to.deep.equal({ ok: true, text: 'לילה סוער' });
    expect(verdict('می\u200Cخواهم')).to.deep.equal({ ok: true, text: 'می\u200Cخواهم' });
  });
});

describe('moderation lists', () => {
  const none: ModerationLists = { blockedWords: [], blockedNames: [], includeDefaults: false };

  it('passes everything but empty and overlong text when no list applies', () => {
    expect(verdict(r('fuvg'), none)).to.deep.equal({ ok: true, text: r('fuvg') });
    expect(verdict('Taylor Swift', none).ok).to.equal(true);
  });

  it('refuses the default words only with includeDefaults', () => {
    expect(verdict(r('fuvg'), { ...none, includeDefaults: true }).ok).to.equal(false);
    expect(verdict(r('fuvg'), { ...none, blockOtherArtists: true }).ok).to.equal(true);
  });

  it('refuses other artists only with blockOtherArtists', () => {
    expect(verdict('Taylor Swift', { ...none, includeDefaults: true }).ok).to.equal(true);
    expect(verdict('Taylor Swift', { ...none, blockOtherArtists: true }).ok).to.equal(false);
  });

  it("never refuses the release's own artist as another artist", () => {
    const lists: ModerationLists = { ...none, blockOtherArtists: true, allowedNames: ['Taylor Swift', 'The Beatles'] };
    expect(verdict('taylor swift remix', lists).ok).to.equal(true);
    expect(verdict('beatles', lists).ok).to.equal(true);
    expect(verdict('drake', lists).ok).to.equal(false);
  });

  it('blocks words of scripts written without spaces inside longer runs', () => {
    const lists: ModerationLists = { ...none, blockedWords: ['馬鹿'] };
    expect(refusal('お前は馬鹿だ', lists)).to.equal('blocked_words');
    expect(verdict('馬に乗る', lists).ok).to.equal(true);
  });

  it('blocks words given in other scripts, also when typed with lookalikes', () => {
    const lists: ModerationLists = { ...none, blockedWords: ['дурак'] };
    expect(refusal('ты ДУРАК', lists)).to.equal('blocked_words');
    expect(refusal('ты дуррррак', lists)).to.equal('blocked_words');
    expect(verdict('дураки', lists).ok).to.equal(true);
  });

  it('reports which entry matched, for logs and the host', () => {
    expect(compiled.match('lo.ser')).to.deep.equal({ kind: 'word', entry: 'loser' });
    expect(compiled.match('janedoe')).to.deep.equal({ kind: 'name', entry: 'Jane Doe' });
    expect(compiled.match('T4yl0r $w1ft')).to.deep.equal({ kind: 'artist', entry: 'Taylor Swift' });
    expect(compiled.match('bass')).to.equal(null);
  });

  it('ignores entries that fold to nothing', () => {
    const c = compileModeration({ ...none, blockedWords: ['', '   ', '\u200B', "'"] });
    expect(c.size).to.equal(0);
    expect(moderateText('anything', c, MAX).ok).to.equal(true);
  });

  it('accepts either the lists or their compiled form', () => {
    expect(moderateText('l0ser', strict, MAX)).to.deep.equal(moderateText('l0ser', compiled, MAX));
  });

  it('folds a wide set of lookalikes', () => {
    expect(CONFUSABLE_COUNT).to.be.at.least(60);
    expect(foldForMatching('ｆＵｌｌ ｗｉｄｔｈ')).to.equal('full width');
    expect(foldForMatching('ΑΒΕΗΙΚΜΝΟΡΤΧ')).to.equal('abehikmnoptx');
    expect(foldForMatching('аеорсуxіјԁѕ')).to.equal('aeopcyxijds');
    expect(foldForMatching('οανρτ')).to.equal('oavpt');
    expect(foldForMatching('Straße Œuvre ǽ')).to.equal('strasse oeuvre ae');
  });

  it('keeps the default slurs out of plain sight in its source', () => {
    const source = fs.readFileSync(new URL('../../shared/moderation-defaults.ts', import.meta.url), 'utf8').toLowerCase();
    const { words, infixes } = defaultBlockedWords();
    for (const word of [...words, ...infixes]) {
      expect(source, `"${r(word)}" (ROT13) appears decoded`).not.to.match(new RegExp(`\\b${word}\\b`));
    }
    expect(DEFAULT_OTHER_ARTISTS.length).to.be.at.least(40);
  });
});

describe('moderation determinism and scale', () => {
  it('gives the same verdict every time and from a fresh compile', () => {
    const texts = ['l0ser', 'bass', 'T4yl0r $w1ft', 'stormy night', '', 'a'.repeat(300), '|||| 1111 $$$$'];
    const first = texts.map((t) => verdict(t));
    const again = texts.map((t) => verdict(t));
    const fresh = compileModeration({ ...strict, blockedWords: [...strict.blockedWords] });
    const fromFresh = texts.map((t) => moderateText(t, fresh, MAX));
    expect(again).to.deep.equal(first);
    expect(fromFresh).to.deep.equal(first);
  });

  it('moderates 10,000 texts of 200 characters against 1,000 entries', () => {
    let seed = 7;
    const random = (): number => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32;
    const word = (n: number): string => Array.from({ length: n }, () => 'qwxzjvkfyp'[Math.floor(random() * 10)]).join('');
    const lists: ModerationLists = {
      blockedWords: Array.from({ length: 700 }, () => word(5 + Math.floor(random() * 5))),
      blockedNames: Array.from({ length: 300 }, () => `${word(4)} ${word(6)}`),
      includeDefaults: true,
      blockOtherArtists: true,
    };
    const c = compileModeration(lists);
    const base = 'stormy night over the sea, sl0wer bass, less glitch!! no red | deep blue ripples, warm glow; ';
    const texts = [(base + base + base).slice(0, 200), 'a b c d e f g h i j '.repeat(10), '|1'.repeat(100)];
    let passed = 0;
    for (let i = 0; i < 10_000; i++) if (moderateText(texts[i % texts.length]!, c, MAX).ok) passed++;
    expect(passed).to.equal(10_000);
  });
});
