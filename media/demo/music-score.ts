// The demo piece as notes: form, chords, and every part's events. Kept apart
// from the synthesis so that the arrangement reads like a score.
//
// "Night Bus Glow": warm lo-fi house in F minor at 120 BPM, 40 bars.
//   bars  0– 3 intro      pads open up through a filter, hats, then a soft kick
//   bars  4–11 groove     full beat, bass and electric-piano comping; hook teased
//   bars 12–19 hook       the lead's hook, shaker and ghost notes
//   bars 20–23 breakdown  no kick: open pads, bell-like augmented hook
//   bars 24–27 build      snare roll, riser, dominant C7b9, one beat of silence
//   bars 28–35 drop       everything, the hook's second-half variation
//   bars 36–39 outro      beat thins out, a final F minor chord rings away

import { Rng } from './synth.ts';

export const BPM = 120;
export const KEY = 'F minor';
export const TOTAL_BARS = 40;
export const STEPS_PER_BAR = 16;
export const BAR_SEC = (4 * 60) / BPM;
export const STEP_SEC = BAR_SEC / STEPS_PER_BAR;
/** Off-beat 16ths land late by this much: a 57% shuffle, the lazy house feel. */
export const SWING_SEC = STEP_SEC * 0.14;

export type SectionId = 'intro' | 'groove' | 'hook' | 'breakdown' | 'build' | 'drop' | 'outro';

export interface Section {
  id: SectionId;
  startBar: number;
  bars: number;
}

export const SECTIONS: readonly Section[] = [
  { id: 'intro', startBar: 0, bars: 4 },
  { id: 'groove', startBar: 4, bars: 8 },
  { id: 'hook', startBar: 12, bars: 8 },
  { id: 'breakdown', startBar: 20, bars: 4 },
  { id: 'build', startBar: 24, bars: 4 },
  { id: 'drop', startBar: 28, bars: 8 },
  { id: 'outro', startBar: 36, bars: 4 },
];

export function sectionAt(bar: number): SectionId {
  for (const section of SECTIONS) {
    if (bar >= section.startBar && bar < section.startBar + section.bars) return section.id;
  }
  return 'outro';
}

/** Seconds from the start of the piece to a 16th step, swung on the off-16ths. */
export function stepTime(bar: number, step: number, swing = true): number {
  const whole = Math.floor(step);
  const swingOffset = swing && whole % 2 === 1 ? SWING_SEC : 0;
  return bar * BAR_SEC + step * STEP_SEC + swingOffset;
}

export interface Chord {
  name: string;
  /** The bass's root, in the bass register (MIDI note). */
  bassRoot: number;
  /** Semitones from root to the chord's seventh: 10 (minor/dominant) or 11 (major). */
  seventh: number;
  /** Rootless close voicing, MIDI notes low to high, voice-led from chord to chord. */
  voicing: readonly number[];
}

// i9 – VImaj9 – iv9 – v7: the upper voices mostly hold (Ab, C) while the
// top line walks G–F–F–Eb, so the harmony glows instead of jumping.
const FM9: Chord = { name: 'Fm9', bassRoot: 41, seventh: 10, voicing: [56, 60, 63, 67] };
const DBMAJ9: Chord = { name: 'Dbmaj9', bassRoot: 37, seventh: 11, voicing: [56, 60, 63, 65] };
const BBM9: Chord = { name: 'Bbm9', bassRoot: 34, seventh: 10, voicing: [56, 60, 61, 65] };
const CM7: Chord = { name: 'Cm7', bassRoot: 36, seventh: 10, voicing: [55, 58, 60, 63] };
/** The build's last bar: a dominant with a flat nine, pulling hard back to F minor. */
const C7B9: Chord = { name: 'C7b9', bassRoot: 36, seventh: 10, voicing: [55, 58, 61, 64] };

const PROGRESSION: readonly Chord[] = [FM9, DBMAJ9, BBM9, CM7];

export function chordAt(bar: number): Chord {
  if (bar === 27) return C7B9;
  if (bar >= 38) return FM9;
  return PROGRESSION[((bar % 4) + 4) % 4]!;
}

export interface NoteEvent {
  timeSec: number;
  durationSec: number;
  midi: number;
  velocity: number;
  /** 0 = dark/soft, 1 = bright; instrument-specific tone control. */
  brightness: number;
}

export type DrumKind = 'kick' | 'clap' | 'snare' | 'hatClosed' | 'hatOpen' | 'shaker' | 'rim' | 'tom' | 'crash';

export interface DrumHit {
  kind: DrumKind;
  timeSec: number;
  velocity: number;
  /** Tom pitch in Hz; for hats, how open the filter is (0..1). */
  tone: number;
}

export interface Riser {
  startSec: number;
  endSec: number;
}

// ---------------------------------------------------------------- drums

const HAT_ACCENTS = [0.9, 0.35, 0.6, 0.4, 0.85, 0.35, 0.62, 0.45, 0.9, 0.35, 0.6, 0.4, 0.85, 0.4, 0.66, 0.5];

interface BeatOptions {
  kick: boolean;
  clap: boolean;
  closedHats: 'none' | 'eighths' | 'sixteenths';
  openHats: boolean;
  shaker: boolean;
  rim: boolean;
  ghostSnare: boolean;
  level: number;
  hatTone: number;
}

function addBeatBar(hits: DrumHit[], rng: Rng, bar: number, o: BeatOptions): void {
  const human = (): number => rng.range(-0.003, 0.003);
  const vary = (): number => rng.range(0.85, 1.05);
  for (let step = 0; step < STEPS_PER_BAR; step++) {
    const onBeat = step % 4 === 0;
    const offBeat = step % 4 === 2;
    if (o.kick && onBeat) hits.push({ kind: 'kick', timeSec: stepTime(bar, step), velocity: o.level * (step === 0 ? 1 : 0.95), tone: 0 });
    if (o.clap && (step === 4 || step === 12)) {
      hits.push({ kind: 'clap', timeSec: stepTime(bar, step) + 0.004, velocity: o.level * vary() * 0.95, tone: 0 });
    }
    if (o.openHats && offBeat) {
      hits.push({ kind: 'hatOpen', timeSec: stepTime(bar, step) + human(), velocity: o.level * vary() * 0.8, tone: o.hatTone });
    } else if (o.closedHats === 'sixteenths' || (o.closedHats === 'eighths' && step % 2 === 0)) {
      hits.push({ kind: 'hatClosed', timeSec: stepTime(bar, step) + human(), velocity: o.level * HAT_ACCENTS[step]! * vary(), tone: o.hatTone });
    }
    if (o.shaker) {
      const accent = step % 2 === 1 ? 0.75 : 0.45;
      hits.push({ kind: 'shaker', timeSec: stepTime(bar, step) + human(), velocity: o.level * accent * vary(), tone: 0 });
    }
  }
  if (o.rim) {
    // Syncopated wood between the claps; every other bar adds a late answer.
    const rimSteps = bar % 2 === 0 ? [3, 10] : [3, 7, 14];
    for (const step of rimSteps) hits.push({ kind: 'rim', timeSec: stepTime(bar, step) + human(), velocity: o.level * 0.6 * vary(), tone: 0 });
  }
  if (o.ghostSnare && bar % 2 === 1) {
    hits.push({ kind: 'snare', timeSec: stepTime(bar, 15), velocity: o.level * 0.22, tone: 0 });
    hits.push({ kind: 'snare', timeSec: stepTime(bar, 9), velocity: o.level * 0.16, tone: 0 });
  }
}

/** Removes the bar's hits from a step on, so a fill can take over the end of the bar. */
function clearFrom(hits: DrumHit[], bar: number, step: number, kinds: readonly DrumKind[]): DrumHit[] {
  const from = stepTime(bar, step, false) - 0.01;
  const to = (bar + 1) * BAR_SEC - 0.01;
  return hits.filter((h) => !(kinds.includes(h.kind) && h.timeSec >= from && h.timeSec < to));
}

function snarePickup(hits: DrumHit[], bar: number, steps: readonly number[], from: number, to: number): void {
  steps.forEach((step, i) => {
    const t = steps.length > 1 ? i / (steps.length - 1) : 1;
    hits.push({ kind: 'snare', timeSec: stepTime(bar, step), velocity: from + (to - from) * t, tone: 0 });
  });
}

function tomFill(hits: DrumHit[], bar: number): void {
  const toms: readonly [number, number][] = [
    [8, 196],
    [10, 165],
    [11, 165],
    [12, 131],
    [14, 110],
    [15, 110],
  ];
  for (const [step, hz] of toms) hits.push({ kind: 'tom', timeSec: stepTime(bar, step), velocity: 0.75, tone: hz });
}

export function drumScore(): { hits: DrumHit[]; risers: Riser[] } {
  const rng = new Rng(0x5eed_d401);
  let hits: DrumHit[] = [];
  const none: BeatOptions = {
    kick: false, clap: false, closedHats: 'none', openHats: false, shaker: false, rim: false, ghostSnare: false, level: 1, hatTone: 1,
  };
  for (let bar = 0; bar < TOTAL_BARS; bar++) {
    const section = sectionAt(bar);
    let o: BeatOptions = none;
    if (section === 'intro') {
      o = bar < 2
        ? { ...none, closedHats: 'eighths', level: 0.8, hatTone: 0.2 + 0.2 * bar }
        : { ...none, kick: true, closedHats: 'sixteenths', rim: bar === 3, level: 0.75, hatTone: 0.6 };
    } else if (section === 'groove') {
      o = { ...none, kick: true, clap: true, closedHats: 'sixteenths', openHats: bar >= 8, rim: true, level: 0.95, hatTone: 0.9 };
    } else if (section === 'hook' || section === 'drop') {
      o = { ...none, kick: true, clap: true, closedHats: 'sixteenths', openHats: true, shaker: true, rim: true, ghostSnare: true, level: 1, hatTone: 1 };
    } else if (section === 'breakdown') {
      o = bar === 20 ? none : { ...none, closedHats: 'eighths', rim: bar >= 22, level: 0.5, hatTone: 0.5 };
    } else if (section === 'build') {
      // The kick drops out for the last bar so that its return is the drop.
      o = { ...none, kick: bar < 27, closedHats: 'eighths', level: 0.8 + 0.05 * (bar - 24), hatTone: 0.7 + 0.1 * (bar - 24) };
    } else if (bar <= 37) {
      o = { ...none, kick: true, clap: true, closedHats: 'sixteenths', openHats: bar === 36, rim: true, level: 0.9 - 0.08 * (bar - 36), hatTone: 0.85 };
    }
    addBeatBar(hits, rng, bar, o);
  }

  // Crashes mark the start of each new section.
  for (const bar of [4, 12, 20, 28, 32, 36]) hits.push({ kind: 'crash', timeSec: stepTime(bar, 0), velocity: bar === 28 ? 1 : 0.75, tone: 0 });

  // Fills at phrase ends.
  snarePickup(hits, 3, [14, 15], 0.35, 0.55);
  hits = clearFrom(hits, 11, 12, ['clap', 'snare']);
  snarePickup(hits, 11, [12, 13, 14, 15], 0.35, 0.75);
  hits = clearFrom(hits, 19, 8, ['clap', 'snare', 'rim']);
  tomFill(hits, 19);
  snarePickup(hits, 31, [14, 15], 0.4, 0.65);
  hits = clearFrom(hits, 35, 8, ['clap', 'snare', 'rim']);
  tomFill(hits, 35);

  // Build: a snare roll in quarters, then eighths, then sixteenths, rising in level and stopping a beat before the drop.
  for (let bar = 24; bar < 28; bar++) {
    const stride = [4, 2, 1, 1][bar - 24]!;
    const lastStep = bar === 27 ? 11 : 15;
    for (let step = 0; step <= lastStep; step += stride) {
      const progress = (bar - 24 + step / 16) / 4;
      hits.push({ kind: 'snare', timeSec: stepTime(bar, step, false), velocity: 0.22 + 0.6 * progress, tone: 0 });
    }
  }
  // The beat of silence before the drop: nothing may sound there.
  hits = clearFrom(hits, 27, 12, ['kick', 'hatClosed', 'hatOpen', 'rim', 'snare']);

  // The ending: one last downbeat with a crash, then only tails.
  hits.push({ kind: 'kick', timeSec: stepTime(38, 0), velocity: 0.9, tone: 0 });
  hits.push({ kind: 'crash', timeSec: stepTime(38, 0), velocity: 0.8, tone: 0 });

  hits.sort((a, b) => a.timeSec - b.timeSec);
  return { hits, risers: [{ startSec: stepTime(24, 0), endSec: stepTime(27, 12, false) }] };
}

// ---------------------------------------------------------------- bass

/** [step, length in steps, interval above the root (SEVENTH: the chord's own seventh), velocity] */
type BassStep = readonly [number, number, number, number];
const SEVENTH = -1;

// Notes sit between the kicks (the "and"s), with octave pops: syncopated, never masking the kick.
const BASS_GROOVE: readonly BassStep[] = [
  [2, 2, 0, 1], [5, 1, 12, 0.6], [6, 2, 0, 0.9], [10, 2, 0, 1], [13, 1, 12, 0.6], [14, 2, 0, 0.85],
];
const BASS_DROP: readonly BassStep[] = [
  [2, 2, 0, 1], [5, 1, 12, 0.7], [6, 2, 0, 0.95], [9, 1, 7, 0.65], [10, 2, 0, 1], [11, 1, 12, 0.6], [13, 1, SEVENTH, 0.7], [14, 2, 0, 0.9],
];

export function bassScore(): NoteEvent[] {
  const notes: NoteEvent[] = [];
  const gate = 0.88;
  const push = (bar: number, step: number, lengthSteps: number, midi: number, velocity: number, brightness: number): void => {
    notes.push({ timeSec: stepTime(bar, step), durationSec: lengthSteps * STEP_SEC * gate, midi, velocity, brightness });
  };
  for (let bar = 0; bar < TOTAL_BARS; bar++) {
    const section = sectionAt(bar);
    const chord = chordAt(bar);
    const root = chord.bassRoot;
    const nextRoot = chordAt(bar + 1).bassRoot;
    if (section === 'groove' || section === 'hook' || section === 'drop' || (section === 'outro' && bar < 38)) {
      const pattern = section === 'drop' ? BASS_DROP : BASS_GROOVE;
      const brightness = section === 'groove' ? 0.55 : section === 'hook' ? 0.7 : section === 'drop' ? 0.9 : 0.5;
      const turnaround = bar % 4 === 3 && bar < 37;
      for (const [step, length, interval, velocity] of pattern) {
        if (turnaround && step === 14) {
          // Walk into the next bar's root from a semitone below.
          push(bar, 14, 1, root, velocity, brightness);
          push(bar, 15, 1, nextRoot - 1, 0.8, brightness);
        } else {
          push(bar, step, length, root + (interval === SEVENTH ? chord.seventh : interval), velocity, brightness);
        }
      }
    } else if (section === 'breakdown') {
      // Long, dark notes: the floor drops out but the harmony keeps its ground.
      push(bar, 0, 15, root, 0.55, 0);
    } else if (section === 'build') {
      const lastStep = bar === 27 ? 10 : 14;
      for (let step = 0; step <= lastStep; step += 2) {
        const progress = (bar - 24 + step / 16) / 4;
        push(bar, step, 1.6, root, 0.6 + 0.35 * progress, 0.2 + 0.8 * progress);
      }
    } else if (bar === 38) {
      push(38, 0, 26, 41, 1, 0.4);
    }
  }
  return notes;
}

// ---------------------------------------------------------------- harmony

export interface PadSegment {
  startSec: number;
  endSec: number;
  midi: number;
}

/**
 * Pad voices as held segments: a voice that keeps its note across a chord
 * change is not re-attacked, which is what makes voice leading audible.
 */
export function padScore(): PadSegment[] {
  const segments: PadSegment[] = [];
  const voices = 5;
  const lastBar = 38;
  for (let voice = 0; voice < voices; voice++) {
    let current: PadSegment | undefined;
    for (let bar = 0; bar <= lastBar; bar++) {
      const chord = chordAt(bar);
      // Voice 0 doubles the root an octave above the bass, for body.
      const midi = voice === 0 ? chord.bassRoot + 12 : chord.voicing[voice - 1]!;
      const start = bar * BAR_SEC;
      const end = bar === lastBar ? TOTAL_BARS * BAR_SEC : (bar + 1) * BAR_SEC;
      if (current && current.midi === midi) {
        current.endSec = end;
      } else {
        if (current) segments.push(current);
        current = { startSec: start, endSec: end, midi };
      }
    }
    if (current) segments.push(current);
  }
  return segments;
}

/** [step, length in steps, velocity] */
type CompStep = readonly [number, number, number];

// 3-3-4-3-3: a bouncy, syncopated chord rhythm.
const COMP_GROOVE: readonly CompStep[] = [[0, 2, 0.8], [3, 2, 0.6], [6, 3, 0.72], [10, 2, 0.75], [13, 2, 0.55]];
const COMP_DROP: readonly CompStep[] = [[0, 2, 0.85], [3, 2, 0.65], [6, 3, 0.75], [8, 1, 0.4], [10, 2, 0.8], [13, 2, 0.6]];
const COMP_HALF: readonly CompStep[] = [[0, 9, 0.65], [10, 5, 0.5]];

export function pianoScore(): NoteEvent[] {
  const rng = new Rng(0x5eed_e9);
  const notes: NoteEvent[] = [];
  for (let bar = 0; bar < TOTAL_BARS; bar++) {
    const section = sectionAt(bar);
    let pattern: readonly CompStep[] = [];
    if (section === 'intro') pattern = bar >= 2 ? [[0, 14, 0.5]] : [];
    else if (section === 'groove' || section === 'hook') pattern = COMP_GROOVE;
    else if (section === 'drop') pattern = COMP_DROP;
    else if (section === 'breakdown') pattern = COMP_HALF;
    else if (section === 'build') {
      pattern = bar < 26 ? COMP_GROOVE : [0, 2, 4, 6, 8, 10].map((s) => [s, 1.5, 0.55 + 0.03 * s] as const);
    } else if (bar < 38) pattern = COMP_GROOVE;
    else if (bar === 38) pattern = [[0, 28, 0.75]];

    const voicing = chordAt(bar).voicing;
    for (const [step, length, velocity] of pattern) {
      // Long chords are rolled upward; short stabs only get a few ms of looseness.
      const rollSec = length >= 8 ? 0.018 : 0.004;
      voicing.forEach((midi, i) => {
        notes.push({
          timeSec: stepTime(bar, step) + i * rollSec + rng.range(0, 0.003),
          durationSec: length * STEP_SEC * 0.92,
          midi,
          velocity: velocity * rng.range(0.88, 1.02) * (i === voicing.length - 1 ? 1.1 : 1),
          brightness: section === 'drop' ? 0.9 : 0.7,
        });
      });
    }
  }
  return notes;
}

// ---------------------------------------------------------------- lead

/** [bar within phrase, step, length in steps, MIDI note] */
type LeadNote = readonly [number, number, number, number];

// The hook: a 3-3-2 "C–Eb–F" cell that stays put while the chords move under
// it (fifth, then major seventh, then ninth of the chord), answered differently each bar.
const HOOK_A: readonly LeadNote[] = [
  [0, 0, 3, 72], [0, 3, 3, 75], [0, 6, 2, 77], [0, 10, 2, 75], [0, 12, 3, 72],
  [1, 0, 3, 72], [1, 3, 3, 75], [1, 6, 2, 77], [1, 10, 5, 80],
  [2, 0, 3, 72], [2, 3, 3, 75], [2, 6, 2, 77], [2, 10, 2, 73], [2, 12, 3, 72],
  [3, 0, 3, 70], [3, 3, 3, 68], [3, 6, 6, 67],
  [4, 0, 3, 72], [4, 3, 3, 75], [4, 6, 2, 77], [4, 10, 2, 75], [4, 12, 3, 72],
  [5, 0, 3, 72], [5, 3, 3, 75], [5, 6, 2, 77], [5, 10, 2, 80], [5, 12, 4, 79],
  [6, 0, 3, 77], [6, 3, 3, 75], [6, 6, 2, 73], [6, 10, 2, 72], [6, 12, 3, 73],
  [7, 0, 3, 67], [7, 3, 3, 70], [7, 6, 8, 72],
];

// Second half: the same cell with runs filling the answers, climbing to a high C.
const HOOK_B: readonly LeadNote[] = [
  [0, 0, 3, 72], [0, 3, 3, 75], [0, 6, 2, 77], [0, 8, 2, 79], [0, 10, 2, 77], [0, 12, 2, 75], [0, 14, 2, 72],
  [1, 0, 3, 72], [1, 3, 3, 75], [1, 6, 2, 77], [1, 10, 6, 80],
  [2, 0, 3, 72], [2, 3, 3, 75], [2, 6, 2, 77], [2, 8, 2, 80], [2, 10, 2, 79], [2, 12, 2, 77], [2, 14, 2, 73],
  [3, 0, 3, 75], [3, 3, 3, 72], [3, 6, 6, 67],
  [4, 0, 3, 72], [4, 3, 3, 75], [4, 6, 2, 77], [4, 8, 2, 79], [4, 10, 2, 77], [4, 12, 2, 75], [4, 14, 2, 72],
  [5, 0, 3, 72], [5, 3, 3, 75], [5, 6, 2, 77], [5, 10, 2, 80], [5, 12, 4, 84],
  [6, 0, 3, 82], [6, 3, 3, 80], [6, 6, 2, 77], [6, 10, 2, 75], [6, 12, 3, 77],
  [7, 0, 3, 79], [7, 3, 3, 75], [7, 6, 8, 72],
];

// Breakdown: the cell in long notes, left to ring.
const HOOK_SLOW: readonly LeadNote[] = [
  [0, 0, 6, 72], [0, 6, 6, 75], [0, 12, 4, 77],
  [1, 0, 12, 80],
  [2, 0, 6, 72], [2, 6, 6, 75], [2, 12, 4, 77],
  [3, 0, 8, 79], [3, 8, 8, 75],
];

const TEASER: readonly LeadNote[] = [
  [0, 0, 3, 72], [0, 3, 3, 75], [0, 6, 2, 77],
  [2, 0, 3, 72], [2, 3, 3, 75], [2, 6, 2, 77], [2, 10, 2, 73], [2, 12, 3, 72],
];

export function leadScore(): NoteEvent[] {
  const rng = new Rng(0x5eed_1ead);
  const notes: NoteEvent[] = [];
  const place = (phrase: readonly LeadNote[], startBar: number, maxBars: number, velocity: number, brightness: number, gate: number): void => {
    for (const [barOffset, step, length, midi] of phrase) {
      if (barOffset >= maxBars) continue;
      // Phrase-initial and long notes speak a little louder: simple phrasing.
      const accent = (step === 0 ? 1.08 : 1) * (length >= 4 ? 1.05 : 0.95);
      notes.push({
        timeSec: stepTime(startBar + barOffset, step) + rng.range(0, 0.004),
        durationSec: length * STEP_SEC * gate,
        midi,
        velocity: velocity * accent * rng.range(0.92, 1.02),
        brightness,
      });
    }
  };
  place(TEASER, 8, 4, 0.6, 0.35, 0.8);
  place(HOOK_A, 12, 8, 0.85, 0.7, 0.8);
  place(HOOK_SLOW, 20, 4, 0.7, 0.15, 1);
  place(HOOK_A, 24, 2, 0.65, 0.4, 0.7);
  // The build's last two bars: the cell hammered in eighths, then a rising C7b9 arpeggio.
  for (let step = 0; step < 16; step += 2) {
    notes.push({ timeSec: stepTime(26, step), durationSec: STEP_SEC * 1.4, midi: [72, 75, 77, 75][(step / 2) % 4]!, velocity: 0.55 + 0.02 * step, brightness: 0.6 });
  }
  const arpeggio = [67, 70, 73, 76, 79, 82, 85, 88, 79, 82, 85, 88];
  arpeggio.forEach((midi, step) => {
    notes.push({ timeSec: stepTime(27, step), durationSec: STEP_SEC * 0.9, midi, velocity: 0.5 + 0.035 * step, brightness: 0.75 });
  });
  place(HOOK_B, 28, 8, 0.95, 1, 0.8);
  // The drop's extra sparkle: the same line an octave up, soft and bell-heavy.
  place(HOOK_B.map(([bar, step, length, midi]) => [bar, step, length, midi + 12] as const), 28, 8, 0.3, 0.1, 0.6);
  place(HOOK_A, 36, 2, 0.7, 0.5, 0.8);
  notes.push({ timeSec: stepTime(38, 0), durationSec: 3 * BAR_SEC / 2, midi: 77, velocity: 0.8, brightness: 0.4 });
  return notes;
}
