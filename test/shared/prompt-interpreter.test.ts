import { expect } from 'chai';
import { UNMATCHED_EFFECT, interpretPrompt, type PromptArtwork, type PromptContext } from '../../shared/prompt-interpreter.ts';
import { VisualParamsSchema, neutralVisualParams, type VisualParams } from '../../shared/visual-params.ts';

// The demo release's artwork tags (media/demo/artwork-*.ts), without painting them.
const ARTWORK: PromptArtwork[] = [
  { id: 'afterimage', title: 'Afterimage', tags: ['cover', 'sun', 'circle', 'retro', 'print', 'poster', 'warm', 'orange', 'red', 'violet', 'yellow', 'cream', 'stripes', 'halftone', 'dots', 'minimal', 'bold'], palette: ['#efe6d6', '#ff4a1c', '#6b2cf5', '#16141a', '#ffb000'] },
  { id: 'nocturne', title: 'Nocturne', tags: ['night', 'moon', 'stars', 'blue', 'violet', 'indigo', 'calm', 'dreamy', 'flow', 'currents', 'drift', 'sky', 'dark', 'cosmic'], palette: ['#0b0d2e', '#23307a', '#5a3fb0', '#a58bff', '#eef0ff'] },
  { id: 'ember', title: 'Ember', tags: ['sunset', 'sun', 'fire', 'ember', 'warm', 'orange', 'red', 'gold', 'glow', 'heat', 'rays', 'sparks', 'concentric', 'circles', 'horizon', 'intense'], palette: ['#2a0806', '#8f1a10', '#e2461c', '#ff9a3c', '#ffe0a3'] },
  { id: 'tide', title: 'Tide', tags: ['ocean', 'sea', 'waves', 'tide', 'water', 'teal', 'aqua', 'green', 'cool', 'calm', 'flowing', 'lines', 'sun', 'horizon', 'serene'], palette: ['#0b5d63', '#04262c', '#18a39a', '#7fe0cf', '#e6fff8'] },
  { id: 'bloom', title: 'Bloom', tags: ['flower', 'bloom', 'petals', 'garden', 'spring', 'pink', 'green', 'organic', 'soft', 'circles', 'bubbles', 'nature', 'growth', 'gentle', 'lush'], palette: ['#12302a', '#ff6fa8', '#4fcf94', '#ffc1d8', '#d9f7c9'] },
  { id: 'grid', title: 'Grid', tags: ['neon', 'grid', 'glitch', 'digital', 'cyber', 'electric', 'magenta', 'cyan', 'lime', 'black', 'geometric', 'squares', 'pixels', 'ring', 'energetic', 'futuristic'], palette: ['#07060b', '#ff2bd6', '#19f0ff', '#7a3cff', '#b6ff3b'] },
];

const fresh: PromptContext = { artwork: ARTWORK, previous: null };
const after = (previous: VisualParams): PromptContext => ({ artwork: ARTWORK, previous });
const neutral = neutralVisualParams();

function params(text: string, ctx: PromptContext = fresh): VisualParams {
  return interpretPrompt(text, ctx).params;
}

describe('prompt interpreter', () => {
  describe('what single words do (from neutral)', () => {
    const table: { prompt: string; check: (p: VisualParams) => void; effect?: string }[] = [
      { prompt: 'stormy', effect: 'darker palette', check: (p) => {
        expect(p.palette.brightness).to.be.below(0);
        expect(p.motion.ripple).to.be.above(0.3);
        expect(p.speed).to.be.above(1);
      } },
      { prompt: 'calm', check: (p) => {
        expect(p.speed).to.be.below(1);
        expect(p.motion.glitch).to.equal(0);
      } },
      { prompt: 'dreamy', effect: 'softer focus', check: (p) => expect(p.texture.blur).to.be.above(0.2) },
      { prompt: 'angry', check: (p) => {
        expect(p.palette.contrast).to.be.above(1);
        expect(p.motion.glitch).to.be.above(0.2);
        expect(p.speed).to.be.above(1.5);
      } },
      { prompt: 'happy', effect: 'brighter palette', check: (p) => expect(p.palette.saturation).to.be.above(1) },
      { prompt: 'melancholy', effect: 'muted colours', check: (p) => {
        expect(p.palette.saturation).to.be.below(1);
        expect(p.palette.warmth).to.be.below(0);
      } },
      { prompt: 'euphoric', check: (p) => {
        expect(p.motion.pulse).to.be.above(0.4);
        expect(p.audioReactivity).to.be.above(0.5);
      } },
      { prompt: 'dark', effect: 'darker palette', check: (p) => expect(p.palette.brightness).to.be.below(-0.2) },
      { prompt: 'foggy', effect: 'softer focus', check: (p) => {
        expect(p.texture.blur).to.be.above(0.4);
        expect(p.palette.contrast).to.be.below(1);
      } },
      { prompt: 'rain', check: (p) => expect(p.motion.ripple).to.be.above(0.2) },
      { prompt: 'sunny', effect: 'warmer tones', check: (p) => expect(p.palette.brightness).to.be.above(0) },
      { prompt: 'fire', effect: 'more orange', check: (p) => expect(p.palette.warmth).to.be.above(0.4) },
      { prompt: 'forest', effect: 'more green', check: (p) => expect(p.palette.hueBands.some((b) => b.hueDeg === 120 && b.amount > 0)).to.equal(true) },
      { prompt: 'night', effect: 'cooler tones', check: (p) => expect(p.palette.brightness).to.be.below(0) },
      { prompt: 'stars', effect: 'rotation', check: (p) => expect(p.motion.rotate).to.be.above(0) },
      { prompt: 'spin', effect: 'rotation', check: (p) => expect(p.motion.rotate).to.be.above(0.5) },
      { prompt: 'zoom', effect: 'zoom', check: (p) => expect(p.motion.zoom).to.be.above(0.5) },
      { prompt: 'pulse', effect: 'pulse', check: (p) => expect(p.motion.pulse).to.be.above(0.5) },
      { prompt: 'kaleidoscope', effect: 'kaleidoscope', check: (p) => expect(p.motion.kaleidoscope).to.be.above(0.5) },
      { prompt: 'ripple', effect: 'ripple', check: (p) => expect(p.motion.ripple).to.be.above(0.5) },
      { prompt: 'glitch', effect: 'glitch', check: (p) => expect(p.motion.glitch).to.be.above(0.5) },
      { prompt: 'shake', effect: 'glitch', check: (p) => expect(p.motion.glitch).to.be.above(0) },
      { prompt: 'flow', effect: 'more drift', check: (p) => expect(p.motion.drift).to.be.above(neutral.motion.drift) },
      { prompt: 'drift', effect: 'more drift', check: (p) => expect(p.motion.drift).to.be.above(0.5) },
      { prompt: 'grainy', effect: 'grainy texture', check: (p) => expect(p.texture.grain).to.be.above(0.5) },
      { prompt: 'blue', effect: 'more blue', check: (p) => expect(p.palette.hueBands[0]).to.include({ hueDeg: 222 }) },
      { prompt: 'black and white', effect: 'black and white', check: (p) => expect(p.palette.saturation).to.equal(0) },
    ];
    for (const row of table) {
      it(`"${row.prompt}"${row.effect ? ` → ${row.effect}` : ''}`, () => {
        const r = interpretPrompt(row.prompt, fresh);
        expect(r.matched).to.equal(true);
        row.check(r.params);
        if (row.effect) expect(r.effects).to.include(row.effect);
        expect(VisualParamsSchema.safeParse(r.params).success, 'params fit the schema').to.equal(true);
      });
    }
  });

  it('says what a prompt did in one line: "\'stormy\' → darker palette, …, faster ripple, …"', () => {
    const r = interpretPrompt('stormy', fresh);
    expect(r.summary.startsWith("'stormy' → ")).to.equal(true);
    expect(r.summary).to.contain('darker palette');
    expect(r.summary).to.contain('faster ripple');
  });

  describe('intensifiers', () => {
    it('"very" and "extremely" go further than the plain word, "a bit" and "slightly" less far', () => {
      const plain = params('dark').palette.brightness;
      expect(params('very dark').palette.brightness).to.be.below(plain);
      expect(params('extremely dark').palette.brightness).to.be.below(params('very dark').palette.brightness);
      expect(params('a bit dark').palette.brightness).to.be.above(plain).and.below(0);
      expect(params('slightly dark').palette.brightness).to.be.above(plain).and.below(0);
    });

    it('"super fast" is faster than "fast", and stretched letters ("sooo slooow") still read', () => {
      expect(params('super fast').speed).to.be.above(params('fast').speed);
      expect(params('sooo slooow').speed).to.be.below(params('slow').speed);
      expect(params('soooo cooool').palette.warmth).to.be.below(params('cool').palette.warmth);
      expect(params('bloooom').artworks[0]!.id).to.equal('bloom');
    });
  });

  describe('negations', () => {
    it('"no red" takes red away completely', () => {
      const r = interpretPrompt('no red', fresh);
      expect(r.params.palette.hueBands).to.deep.include({ hueDeg: 0, widthDeg: 60, amount: -1 });
      expect(r.effects).to.include('no red');
    });

    it('"not glitchy" and "without zoom" switch those effects off', () => {
      const wild = params('glitchy zoom spin');
      const r1 = interpretPrompt('not glitchy', after(wild));
      expect(r1.params.motion.glitch).to.equal(0);
      expect(r1.params.motion.zoom).to.equal(wild.motion.zoom);
      expect(r1.effects).to.include('no glitch');
      const r2 = interpretPrompt('without zoom', after(wild));
      expect(r2.params.motion.zoom).to.equal(0);
      expect(r2.params.motion.rotate).to.equal(wild.motion.rotate);
    });

    it('"not dark" goes the other way from "dark"', () => {
      expect(params('not dark').palette.brightness).to.be.above(0);
    });

    it("negating an artist's tag drops that artwork", () => {
      const ocean = params('ocean');
      expect(ocean.artworks.map((a) => a.id)).to.deep.equal(['tide']);
      const r = params('no ocean', after(ocean));
      expect(r.artworks.map((a) => a.id)).to.not.include('tide');
      expect(r.artworks.length).to.equal(1);
    });

    it('a negated colour does not select artwork tagged with that colour', () => {
      expect(params('no red').artworks).to.deep.equal([]);
    });
  });

  describe('comparatives against the previous params', () => {
    const base = params('ripple glitch');

    it('"faster" and "slower" scale the previous speed and keep everything else', () => {
      const faster = interpretPrompt('faster', after(base));
      expect(faster.params.speed).to.be.closeTo(base.speed * 1.4, 1e-3);
      expect(faster.params.motion).to.deep.equal(base.motion);
      expect(faster.effects).to.deep.equal(['faster motion']);
      expect(params('slower', after(base)).speed).to.be.below(base.speed);
      expect(params('much slower', after(base)).speed).to.be.below(base.speed);
    });

    it('"less glitch" lowers glitch from where it was; "more ripple" raises ripple', () => {
      const less = interpretPrompt('less glitch', after(base));
      expect(less.params.motion.glitch).to.be.below(base.motion.glitch).and.above(0);
      expect(less.params.motion.ripple).to.equal(base.motion.ripple);
      expect(less.effects).to.include('less glitch');
      const more = params('more ripple', after(params('ripple')));
      expect(more.motion.ripple).to.be.above(params('ripple').motion.ripple);
    });

    it('"darker" and "warmer" move the previous palette', () => {
      const prev = params('sunny');
      expect(params('darker', after(prev)).palette.brightness).to.be.below(prev.palette.brightness);
      expect(params('warmer', after(prev)).palette.warmth).to.be.above(prev.palette.warmth);
    });

    it('a descriptive prompt starts from neutral but keeps the artwork shown', () => {
      const prev = params('tide glitch');
      const next = params('happy', after(prev));
      expect(next.motion.glitch).to.equal(0);
      expect(next.artworks).to.deep.equal(prev.artworks);
    });
  });

  describe("the artist's tags", () => {
    it('a word that is a tag selects that artwork', () => {
      expect(params('moon').artworks).to.deep.equal([{ id: 'nocturne', weight: 1 }]);
      expect(params('petals').artworks).to.deep.equal([{ id: 'bloom', weight: 1 }]);
      expect(params('neon').artworks[0]!.id).to.equal('grid');
    });

    it('words naming several artworks blend up to three, weighted by how often each was named', () => {
      const p = params('ocean moon waves');
      expect(p.artworks.map((a) => a.id)).to.deep.equal(['tide', 'nocturne']);
      expect(p.artworks[0]!.weight).to.be.above(p.artworks[1]!.weight);
      expect(p.artworks.reduce((s, a) => s + a.weight, 0)).to.be.closeTo(1, 0.01);
      expect(params('sun').artworks.length).to.equal(3);
    });

    it('plurals and accents still match ("flowers", "ÉMBER")', () => {
      expect(params('flowers').artworks[0]!.id).to.equal('bloom');
      expect(params('ÉMBER').artworks[0]!.id).to.equal('ember');
    });

    it('an artwork id selects it, and the effects name it by its title', () => {
      const r = interpretPrompt('grid', fresh);
      expect(r.params.artworks).to.deep.equal([{ id: 'grid', weight: 1 }]);
      expect(r.effects[0]).to.equal('artwork “Grid”');
      // Without titles (an older caller), the id stands in.
      expect(interpretPrompt('grid', { artwork: ARTWORK.map(({ title: _title, ...a }) => a), previous: null }).effects[0]).to.equal('artwork “grid”');
    });

    it('a blend is named by the artworks’ titles, never their ids', () => {
      const r = interpretPrompt('ocean moon waves', { artwork: ARTWORK.map((a) => ({ ...a, title: `The ${a.title}` })), previous: null });
      expect(r.effects[0]).to.equal('blend of “The Tide” and “The Nocturne”');
      expect(r.summary).to.include('blend of “The Tide” and “The Nocturne”');
    });
  });

  describe('prompts with no known words', () => {
    it('make a gentle variation and say so', () => {
      const r = interpretPrompt('xyzzy plover', fresh);
      expect(r.matched).to.equal(false);
      expect(r.effects).to.deep.equal([UNMATCHED_EFFECT]);
      expect(r.summary).to.equal(`'xyzzy plover' → ${UNMATCHED_EFFECT}`);
      expect(r.params).to.not.deep.equal(neutral);
      expect(Math.abs(r.params.palette.hueShiftDeg)).to.be.at.most(30);
      expect(r.params.motion.glitch).to.equal(0);
    });

    it('differ between texts but are the same for the same text', () => {
      const a = params('xyzzy plover');
      expect(params('xyzzy plover')).to.deep.equal(a);
      expect(params('frobnicate the widget')).to.not.deep.equal(a);
    });

    it('vary the previous params rather than resetting them', () => {
      const prev = params('kaleidoscope');
      expect(params('qwertyuiop', after(prev)).motion.kaleidoscope).to.equal(prev.motion.kaleidoscope);
    });

    it('empty text and fillers only are unmatched, not errors', () => {
      expect(interpretPrompt('', fresh).matched).to.equal(false);
      expect(interpretPrompt('   ', fresh).matched).to.equal(false);
      expect(interpretPrompt('make it the', fresh).matched).to.equal(false);
    });
  });

  describe('determinism', () => {
    it('the same prompt and context give the same output, every time', () => {
      const prompts = ['stormy', 'very calm ocean, no red', 'less glitch', '🔥 faster', 'xyzzy'];
      const prev = params('glitch ripple tide');
      for (const p of prompts) {
        const a = interpretPrompt(p, after(prev));
        for (let i = 0; i < 3; i++) expect(interpretPrompt(p, after(prev))).to.deep.equal(a);
      }
    });

    it('does not change the previous params it was given', () => {
      const prev = params('glitch ripple');
      const copy = JSON.parse(JSON.stringify(prev)) as VisualParams;
      interpretPrompt('less glitch, no red, faster', after(prev));
      expect(prev).to.deep.equal(copy);
    });
  });

  describe('any Unicode', () => {
    it('reads a few emoji as words (🔥 fire, 🌊 ocean, 🌙 night)', () => {
      expect(params('🔥').palette.warmth).to.be.above(0.3);
      expect(params('🌊').artworks[0]!.id).to.equal('tide');
      expect(params('🌙').palette.brightness).to.be.below(0);
    });

    it('right-to-left text, other scripts and lone emoji give valid params and a summary', () => {
      for (const text of ['مرحبا بالعالم', 'שלום', '夜の海', '🙂🙃🫠', '\u202Eevil', 'Ω≈ç√∫', 'a'.repeat(5000), '🏳️‍🌈'.repeat(50)]) {
        const r = interpretPrompt(text, fresh);
        expect(VisualParamsSchema.safeParse(r.params).success, text.slice(0, 20)).to.equal(true);
        expect(r.summary.length).to.be.below(200);
      }
    });

    it('fullwidth and accented words fold to the plain word ("ＳＴＯＲＭＹ", "drëamy")', () => {
      expect(params('ＳＴＯＲＭＹ')).to.deep.equal(params('stormy'));
      expect(params('drëamy')).to.deep.equal(params('dreamy'));
    });

    it('a long summary quotes the prompt shortened', () => {
      const r = interpretPrompt(`stormy ${'x'.repeat(100)}`, fresh);
      expect(r.summary).to.match(/^'stormy x+…' → /);
    });
  });

  it('a number beside a kaleidoscope word sets the segments ("kaleidoscope 12", "8 fold mirror")', () => {
    expect(params('kaleidoscope 12').motion.segments).to.equal(12);
    expect(params('8 fold mirror').motion.segments).to.equal(8);
    expect(params('kaleidoscope 99').motion.segments).to.equal(neutral.motion.segments);
    expect(interpretPrompt('kaleidoscope 12', fresh).effects).to.include('12 segments');
  });

  it('always gives params inside the schema, over a seeded fuzz of word mixes chained prompt after prompt', () => {
    const vocab = [
      'very', 'slightly', 'a', 'bit', 'no', 'not', 'without', 'more', 'less', 'faster', 'slower', 'darker', 'brighter',
      'stormy', 'calm', 'angry', 'dreamy', 'fire', 'ocean', 'night', 'stars', 'red', 'blue', 'pink', 'glitch', 'zoom',
      'spin', 'pulse', 'kaleidoscope', '12', 'ripple', 'grain', 'blur', 'sharp', 'still', 'moon', 'neon', 'sun', 'xyzzy', '🔥', 'ＳＵＰＥＲ',
    ];
    let seed = 12345;
    const next = () => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed / 4294967296;
    };
    let prev: VisualParams | null = null;
    for (let i = 0; i < 500; i++) {
      const n = 1 + Math.floor(next() * 7);
      const text = Array.from({ length: n }, () => vocab[Math.floor(next() * vocab.length)]!).join(' ');
      const r = interpretPrompt(text, { artwork: ARTWORK, previous: prev });
      const check = VisualParamsSchema.safeParse(r.params);
      expect(check.success, `${text}: ${check.success ? '' : check.error.message}`).to.equal(true);
      expect(r.effects.length).to.be.above(0);
      expect(interpretPrompt(text, { artwork: ARTWORK, previous: prev })).to.deep.equal(r);
      prev = r.params;
    }
  });

  it('combines words: "very calm ocean, no red" is slow, oceanic and red-free', () => {
    const r = interpretPrompt('very calm ocean, no red', fresh);
    expect(r.params.speed).to.be.below(0.6);
    expect(r.params.artworks[0]!.id).to.equal('tide');
    expect(r.params.palette.hueBands.find((b) => b.hueDeg === 0)!.amount).to.equal(-1);
    expect(r.effects).to.include('no red');
  });
});
