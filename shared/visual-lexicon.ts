// The words the prompt interpreter knows, and what each does to the visual parameters.
// Deltas are offsets from the neutral value (scaled by intensifiers, applied in order,
// clamped to the ranges in visual-params.ts). Kept apart from the interpreter so that
// the vocabulary can grow without touching the grammar.
import type { VisualRangeKey } from './visual-params.ts';

export type Deltas = Partial<Record<VisualRangeKey, number>>;

export interface LexEntry {
  kind: 'mood' | 'weather' | 'motion' | 'colour' | 'texture' | 'tempo' | 'comparative';
  deltas: Deltas;
  /** A colour word: the hue it points at (degrees), emphasised or, negated, taken away. */
  hueDeg?: number;
  /** Extra hue bands the word brings (e.g. fire → orange). */
  bands?: { hueDeg: number; amount: number }[];
  /** For motion and texture words: the one parameter the word names ("no zoom" turns it off). */
  key?: VisualRangeKey;
  /** Speed is changed by a factor rather than an offset ("faster" ×1.4). */
  speedFactor?: number;
  /** Words that also select artwork whose tags say them (half weight). */
  hints?: string[];
}

type Spec = Omit<LexEntry, 'kind'>;

const LEXICON = new Map<string, LexEntry>();

function add(kind: LexEntry['kind'], words: string, spec: Spec): void {
  for (const w of words.split(/\s+/)) if (w) LEXICON.set(w, { kind, ...spec });
}

// ---------------------------------------------------------------- moods
add('mood', 'calm calming peaceful serene chill chilled relaxed relaxing tranquil quiet mellow zen', {
  deltas: { speed: -0.45, glitch: -1, pulse: -0.3, saturation: -0.1, contrast: -0.1, intensity: -0.2, audioReactivity: -0.15 },
  hints: ['calm', 'serene'],
});
add('mood', 'dreamy dream dreams dreaming ethereal hazy surreal floaty', {
  deltas: { blur: 0.35, drift: 0.2, ripple: 0.2, brightness: 0.08, saturation: -0.05, speed: -0.3 },
  hints: ['dreamy', 'soft'],
});
add('mood', 'angry anger rage furious aggressive violent mad', {
  deltas: { warmth: 0.5, contrast: 0.4, saturation: 0.3, glitch: 0.4, pulse: 0.5, speed: 0.8, intensity: 0.3 },
  bands: [{ hueDeg: 0, amount: 0.5 }],
  hints: ['red', 'intense', 'fire'],
});
add('mood', 'happy joy joyful cheerful fun playful sweet', {
  deltas: { brightness: 0.15, saturation: 0.35, warmth: 0.25, pulse: 0.3, speed: 0.3 },
  hints: ['warm', 'yellow'],
});
add('mood', 'sad melancholy melancholic gloomy lonely sorrow sorrowful blues depressed somber sombre', {
  deltas: { saturation: -0.45, brightness: -0.15, warmth: -0.35, speed: -0.4, drift: 0.1, blur: 0.15 },
  hints: ['blue', 'night'],
});
add('mood', 'dark darkness shadow shadows shadowy gothic', {
  deltas: { brightness: -0.3, contrast: 0.2, saturation: -0.15 },
  hints: ['dark', 'night', 'black'],
});
add('mood', 'bright light luminous radiant glowing glow shiny', {
  deltas: { brightness: 0.25, saturation: 0.1 },
  hints: ['glow', 'bright'],
});
add('mood', 'euphoric euphoria ecstatic ecstasy hype hyped party rave energetic energy epic wild crazy', {
  deltas: { saturation: 0.4, pulse: 0.6, speed: 0.7, zoom: 0.3, intensity: 0.3, audioReactivity: 0.5 },
  hints: ['energetic', 'neon', 'electric'],
});
add('mood', 'psychedelic trippy trip acid', {
  deltas: { kaleidoscope: 0.7, saturation: 0.6, ripple: 0.3, hueShiftDeg: 60 },
});
add('mood', 'mysterious mystery mystic mystical eerie spooky haunted haunting creepy', {
  deltas: { brightness: -0.2, blur: 0.2, saturation: -0.2, warmth: -0.3, drift: 0.15, grain: 0.2 },
  hints: ['night', 'dark'],
});
add('mood', 'romantic romance love lovely tender', {
  deltas: { warmth: 0.35, blur: 0.2, speed: -0.2 },
  bands: [{ hueDeg: 330, amount: 0.5 }],
  hints: ['pink', 'soft', 'flower'],
});
add('mood', 'nostalgic nostalgia vintage retro old analog analogue', {
  deltas: { grain: 0.5, saturation: -0.25, warmth: 0.3, contrast: -0.1 },
  hints: ['retro', 'print'],
});
add('mood', 'intense intensity powerful strong bold', {
  deltas: { intensity: 0.4, contrast: 0.2, saturation: 0.15 },
  hints: ['intense', 'bold'],
});
add('mood', 'gentle subtle delicate tender', { deltas: { intensity: -0.25, blur: 0.15, speed: -0.2 }, hints: ['gentle', 'soft'] });
add('mood', 'chaotic chaos messy frantic', {
  deltas: { glitch: 0.6, ripple: 0.3, speed: 0.6, rotate: 0.2, intensity: 0.2 },
});
add('mood', 'minimal minimalist clean simple pure', {
  deltas: { grain: -1, glitch: -1, ripple: -1, kaleidoscope: -1, intensity: -0.2 },
  hints: ['minimal'],
});
add('mood', 'hypnotic hypnotize hypnotise trance mesmerizing mesmerising', {
  deltas: { kaleidoscope: 0.5, rotate: 0.35, speed: -0.1 },
});
add('mood', 'cold icy ice frozen winter frosty', { deltas: { warmth: -0.7, saturation: -0.2, brightness: 0.1 }, hints: ['cool'] });
add('mood', 'warm hot heat summer cozy cosy', { deltas: { warmth: 0.6, saturation: 0.15 }, hints: ['warm', 'heat'] });
add('mood', 'cool chilly', { deltas: { warmth: -0.45 }, hints: ['cool'] });
add('mood', 'neon cyber cyberpunk electric futuristic synthwave vaporwave', {
  deltas: { saturation: 0.6, contrast: 0.3, glitch: 0.2 },
  hints: ['neon', 'cyber', 'electric', 'futuristic'],
});
add('mood', 'colorful colourful vivid vibrant rainbow saturated', { deltas: { saturation: 0.6 } });
add('mood', 'dull muted faded washed pale desaturated', { deltas: { saturation: -0.5, contrast: -0.2 } });
add('mood', 'monochrome greyscale grayscale bw noir colorless colourless', { deltas: { saturation: -1 } });

// ---------------------------------------------------------------- weather and nature
add('weather', 'stormy storm storms thunder thunderstorm lightning tempest hurricane', {
  deltas: { brightness: -0.25, contrast: 0.25, saturation: -0.2, ripple: 0.55, speed: 0.6, glitch: 0.15, warmth: -0.3 },
  hints: ['dark', 'water'],
});
add('weather', 'rain rainy raining drizzle showers wet', {
  deltas: { ripple: 0.35, blur: 0.2, saturation: -0.2, warmth: -0.3, brightness: -0.1, grain: 0.15 },
  hints: ['water'],
});
add('weather', 'sunny sunshine daylight', { deltas: { brightness: 0.2, warmth: 0.5, saturation: 0.2 }, hints: ['sun'] });
add('weather', 'sun', { deltas: { brightness: 0.15, warmth: 0.4, saturation: 0.15 } });
add('weather', 'foggy fog mist misty haze smoky smoke', {
  deltas: { blur: 0.6, contrast: -0.35, saturation: -0.3, brightness: 0.1, speed: -0.3 },
});
add('weather', 'ocean sea seas waves wave water underwater tide river lake aquatic marine', {
  deltas: { ripple: 0.5, drift: 0.2, warmth: -0.35 },
  bands: [{ hueDeg: 185, amount: 0.4 }],
  hints: ['ocean', 'sea', 'water', 'waves'],
});
add('weather', 'fire flame flames burning burn blaze inferno lava ember embers', {
  deltas: { warmth: 0.6, saturation: 0.3, ripple: 0.25, pulse: 0.3, speed: 0.3 },
  bands: [{ hueDeg: 25, amount: 0.5 }],
  hints: ['fire', 'ember', 'heat'],
});
add('weather', 'forest woods jungle trees tree leaves leaf nature garden grass', {
  deltas: { drift: 0.1, blur: 0.05, saturation: 0.1, warmth: -0.05 },
  bands: [{ hueDeg: 120, amount: 0.6 }],
  hints: ['nature', 'garden', 'green', 'organic'],
});
add('weather', 'night midnight nocturnal moon moonlight moonlit dusk', {
  deltas: { brightness: -0.3, warmth: -0.45, saturation: -0.1 },
  hints: ['night', 'moon'],
});
add('weather', 'stars starry star galaxy galaxies cosmic cosmos space universe nebula', {
  deltas: { brightness: -0.15, rotate: 0.25, drift: 0.1, grain: 0.25, warmth: -0.2 },
  hints: ['stars', 'cosmic', 'night', 'sky'],
});
add('weather', 'snow snowy snowing blizzard', { deltas: { brightness: 0.2, saturation: -0.3, warmth: -0.5, grain: 0.3 } });
add('weather', 'wind windy breeze breezy gust', { deltas: { drift: 0.45, speed: 0.3, ripple: 0.15 } });
add('weather', 'desert sand sandy dust dusty', { deltas: { warmth: 0.5, saturation: -0.1, grain: 0.3, blur: 0.1 } });
add('weather', 'dawn sunrise morning', { deltas: { brightness: 0.1, warmth: 0.35 }, bands: [{ hueDeg: 330, amount: 0.2 }], hints: ['sun', 'horizon'] });
add('weather', 'sunset evening twilight', { deltas: { warmth: 0.5, brightness: -0.05 }, bands: [{ hueDeg: 25, amount: 0.4 }], hints: ['sunset', 'sun', 'horizon'] });
add('weather', 'cloud clouds cloudy overcast', { deltas: { blur: 0.3, saturation: -0.2, brightness: 0.05, drift: 0.2 }, hints: ['sky'] });
add('weather', 'flower flowers bloom blooming blossom spring petals', {
  deltas: { saturation: 0.2, brightness: 0.1 },
  bands: [{ hueDeg: 330, amount: 0.3 }],
  hints: ['flower', 'bloom', 'spring', 'garden'],
});
add('weather', 'earthquake quake', { deltas: { glitch: 0.5, pulse: 0.3 } });

// ---------------------------------------------------------------- motion
add('motion', 'drift drifting float floating wander wandering glide gliding sail', { key: 'drift', deltas: { drift: 0.55 } });
add('motion', 'spin spinning spiral rotate rotating rotation turn turning swirl swirling twirl whirl orbit vortex', {
  key: 'rotate',
  deltas: { rotate: 0.6 },
});
add('motion', 'zoom zooming zoomed breathe breathing tunnel', { key: 'zoom', deltas: { zoom: 0.6 } });
add('motion', 'pulse pulsing pulsate throb throbbing beat beats bounce bouncing heartbeat', {
  key: 'pulse',
  deltas: { pulse: 0.6, audioReactivity: 0.3 },
});
add('motion', 'kaleidoscope kaleidoscopic kaleido mandala mirror mirrored mirrors symmetry symmetric fractal', {
  key: 'kaleidoscope',
  deltas: { kaleidoscope: 0.75 },
});
add('motion', 'ripple rippling ripples wavy wobble wobbly liquid melt melting warp warped', { key: 'ripple', deltas: { ripple: 0.6 } });
add('motion', 'glitch glitchy glitched glitches broken corrupt corrupted static vhs datamosh digital', {
  key: 'glitch',
  deltas: { glitch: 0.6 },
});
add('motion', 'shake shaky shaking jitter jittery tremble vibrate', { key: 'glitch', deltas: { glitch: 0.3, pulse: 0.2 } });
add('motion', 'flow flowing fluid stream streaming currents', { key: 'ripple', deltas: { drift: 0.35, ripple: 0.3, speed: -0.1 } });
add('motion', 'dance dancing groove groovy react reactive bassy', { key: 'audioReactivity', deltas: { audioReactivity: 0.5, pulse: 0.3 } });
add('tempo', 'fast quick quickly rapid hyper speedy', { key: 'speed', deltas: { speed: 1 } });
add('tempo', 'slow slowly lazy sluggish sleepy', { key: 'speed', deltas: { speed: -0.5 } });
add('tempo', 'still stillness freeze frozen motionless', { key: 'speed', deltas: { speed: -0.75, drift: -0.15, zoom: -1, rotate: -1, ripple: -1 } });

// ---------------------------------------------------------------- texture
add('texture', 'grain grainy noisy noise gritty film filmic', { key: 'grain', deltas: { grain: 0.6 } });
add('texture', 'blur blurry blurred soft softly smooth unfocused', { key: 'blur', deltas: { blur: 0.5 } });
add('texture', 'sharp crisp clear focused', { key: 'blur', deltas: { blur: -1, contrast: 0.1 } });

// ---------------------------------------------------------------- comparatives (relative to the previous prompt)
add('comparative', 'faster quicker speedier', { speedFactor: 1.4, deltas: {} });
add('comparative', 'slower calmer', { speedFactor: 0.7, deltas: {} });
add('comparative', 'brighter lighter', { deltas: { brightness: 0.15 } });
add('comparative', 'darker dimmer', { deltas: { brightness: -0.15 } });
add('comparative', 'warmer hotter', { deltas: { warmth: 0.25 } });
add('comparative', 'cooler colder', { deltas: { warmth: -0.25 } });
add('comparative', 'softer blurrier', { deltas: { blur: 0.2 } });
add('comparative', 'sharper crisper clearer', { deltas: { blur: -0.25 } });
add('comparative', 'wilder crazier stronger bigger', { deltas: { intensity: 0.2 } });
add('comparative', 'gentler weaker smaller', { deltas: { intensity: -0.2 } });

// ---------------------------------------------------------------- colours
const COLOURS: [string, number, number][] = [
  // words, hue, warmth nudge
  ['red reds crimson scarlet ruby cherry blood', 0, 0.2],
  ['orange tangerine', 28, 0.25],
  ['amber gold golden', 42, 0.25],
  ['yellow lemon', 58, 0.15],
  ['lime chartreuse', 90, 0],
  ['green greens emerald', 125, -0.05],
  ['mint', 150, -0.1],
  ['teal', 175, -0.15],
  ['cyan aqua turquoise', 187, -0.2],
  ['blue blues azure sapphire cobalt', 222, -0.25],
  ['navy', 232, -0.25],
  ['indigo', 255, -0.2],
  ['violet purple lavender lilac', 275, -0.1],
  ['magenta fuchsia', 305, 0.05],
  ['pink rose', 332, 0.1],
];
for (const [words, hueDeg, warmth] of COLOURS) add('colour', words, { hueDeg, deltas: { saturation: 0.1, warmth } });
add('colour', 'white silver', { deltas: { brightness: 0.2, saturation: -0.2 } });
add('colour', 'black', { deltas: { brightness: -0.3, contrast: 0.1 } });
add('colour', 'grey gray', { deltas: { saturation: -0.5 } });

/** Names for hue bands, by centre hue (the nearest is used). */
export const HUE_NAMES: [number, string][] = [
  [0, 'red'],
  [28, 'orange'],
  [42, 'gold'],
  [58, 'yellow'],
  [90, 'lime'],
  [125, 'green'],
  [150, 'mint'],
  [175, 'teal'],
  [187, 'cyan'],
  [222, 'blue'],
  [255, 'indigo'],
  [275, 'violet'],
  [305, 'magenta'],
  [332, 'pink'],
  [360, 'red'],
];

export function lookupWord(word: string): LexEntry | undefined {
  return LEXICON.get(word);
}

/** Multipliers for the next word. */
export const INTENSIFIERS = new Map<string, number>([
  ['very', 1.5],
  ['really', 1.4],
  ['so', 1.3],
  ['super', 1.7],
  ['extremely', 2],
  ['extra', 1.5],
  ['ultra', 1.8],
  ['mega', 1.8],
  ['totally', 1.6],
  ['insanely', 2],
  ['incredibly', 1.8],
  ['massively', 1.8],
  ['hella', 1.6],
  ['max', 2],
  ['maximum', 2],
  ['full', 1.8],
  ['bit', 0.5],
  ['little', 0.5],
  ['slightly', 0.4],
  ['somewhat', 0.6],
  ['kinda', 0.6],
  ['kind', 0.6],
  ['barely', 0.25],
  ['mildly', 0.5],
  ['lightly', 0.5],
  ['touch', 0.4],
  ['hint', 0.4],
  ['tad', 0.4],
]);

export const NEGATORS = new Set(['no', 'not', 'without', 'dont', 'never', 'zero', 'stop', 'non', 'nothing', 'nope', 'nix']);

/** Words that carry nothing here; they neither match nor count as unknown. */
export const FILLERS = new Set(
  (
    'a an the and or with of to in on at for by me us it its is be make makes making let lets please some any ' +
    'feel feeling feels look looks looking like vibe vibes mood kind sort of this that these those more less ' +
    'too much many lot lots into go get give add up down all way very just bit of'
  ).split(' '),
);

/** Phrases read as one word. */
export const PHRASES: [string[], string][] = [
  [['slow', 'down'], 'slower'],
  [['speed', 'up'], 'faster'],
  [['calm', 'down'], 'calmer'],
  [['tone', 'down'], 'gentler'],
  [['black', 'and', 'white'], 'monochrome'],
  [['out', 'of', 'focus'], 'blurry'],
  [['under', 'water'], 'underwater'],
  [['turn', 'around'], 'spin'],
];

/** A few emoji read as words. */
export const EMOJI_WORDS: [RegExp, string][] = [
  [/\u{1F525}/gu, ' fire '],
  [/[\u{1F30A}\u{1F4A7}]/gu, ' ocean '],
  [/[\u2B50\u{1F31F}\u2728\u{1F320}]/gu, ' stars '],
  [/[\u{1F319}\u{1F315}\u{1F31B}\u{1F31C}\u{1F311}]/gu, ' night '],
  [/[\u2600\u{1F31E}]/gu, ' sunny '],
  [/[\u{1F327}\u2614\u{1F326}]/gu, ' rain '],
  [/[\u26C8\u{1F329}]/gu, ' stormy '],
  [/[\u{1F32B}]/gu, ' foggy '],
  [/[\u2744\u{1F328}\u26C4]/gu, ' snow '],
  [/[\u{1F338}\u{1F33A}\u{1F337}\u{1F339}\u{1F33C}]/gu, ' flowers '],
  [/[\u{1F332}\u{1F333}\u{1F343}\u{1F33F}]/gu, ' forest '],
  [/[\u{1F60C}\u{1F634}\u{1F9D8}]/gu, ' calm '],
  [/[\u{1F621}\u{1F620}\u{1F92C}]/gu, ' angry '],
  [/[\u{1F600}\u{1F603}\u{1F604}\u{1F601}\u{1F60A}\u{1F642}]/gu, ' happy '],
  [/[\u{1F622}\u{1F62D}\u{1F614}]/gu, ' sad '],
  [/[\u{1F389}\u{1F973}\u{1F57A}\u{1F483}]/gu, ' party '],
  [/[\u{1F300}]/gu, ' spin '],
  [/[\u2764\u{1F496}\u{1F495}\u{1F497}]/gu, ' love '],
];
