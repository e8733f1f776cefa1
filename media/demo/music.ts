// The demo release's music, synthesized here rather than shipped: an original
// lo-fi house piece in four stems, rendered deterministically so every
// server makes the same bits with no downloads and nothing copyrighted.

import {
  BAR_SEC,
  BPM,
  KEY,
  TOTAL_BARS,
  bassScore,
  drumScore,
  leadScore,
  padScore,
  pianoScore,
  stepTime,
} from './music-score.ts';
import type { DrumHit, DrumKind, Riser } from './music-score.ts';
import {
  renderBassNote,
  renderClap,
  renderCrash,
  renderHat,
  renderKick,
  renderLeadNote,
  renderPadVoice,
  renderPianoNote,
  renderRim,
  renderRiser,
  renderShaker,
  renderSnare,
  renderTom,
} from './music-instruments.ts';
import { FdnReverb, Rng, Svf, automation, chorusInPlace, highpassInPlace, pingPongDelay, sinCycles, softSaturate } from './synth.ts';

export const DEMO_SAMPLE_RATE = 48000;

export type DemoStemId = 'drums' | 'bass' | 'harmony' | 'lead';

export const DEMO_STEM_IDS: readonly DemoStemId[] = ['drums', 'bass', 'harmony', 'lead'];

export interface DemoExcerpt {
  id: string;
  title: string;
  startSec: number;
  endSec: number;
}

export interface DemoMusic {
  title: string;
  sampleRate: 48000;
  channels: 2;
  bpm: number;
  key: string;
  frames: number;
  /** Interleaved stereo (L, R, L, R, ...), each exactly frames * 2 samples. */
  stems: Record<DemoStemId, Float32Array>;
  /** Bar-aligned windows a room can play; 15–40 s each. */
  excerpts: DemoExcerpt[];
}

const TITLE = 'Night Bus Glow';

const EXCERPT_BARS: readonly { id: string; title: string; startBar: number; endBar: number }[] = [
  { id: 'groove', title: 'Groove and hook', startBar: 4, endBar: 20 },
  { id: 'build-drop', title: 'Breakdown, build and drop', startBar: 20, endBar: 36 },
  { id: 'drop-outro', title: 'Drop to the end', startBar: 28, endBar: 40 },
];

/** Balance between the stems before the common peak normalization, as linear gains. */
const STEM_GAIN: Record<DemoStemId, number> = { drums: 0.85, bass: 1.25, harmony: 1.7, lead: 1.9 };
const MIX_PEAK_TARGET = 0.95;
const STEM_PEAK_LIMIT = 0.88;
const EDGE_FADE_SEC = 0.004;

/** Far enough in the past that the pump is at rest; an integer keeps the index arithmetic fast. */
const NO_KICK = -(1 << 29);

/**
 * The sidechain "pump": 0 at rest, rising to 1 right after each kick and
 * relaxing within the beat. Bass and pads duck by it so the kick has room.
 * Meant to be read frame by frame in order (reading backwards restarts the
 * scan); kicks are at least a beat apart, so only the latest one matters.
 */
class Pump {
  private readonly shape: Float32Array;
  private readonly kickFrames: number[];
  private next = 0;
  private lastKick = NO_KICK;

  constructor(hits: readonly DrumHit[], sampleRate: number) {
    this.kickFrames = hits.filter((h) => h.kind === 'kick').map((h) => Math.round(h.timeSec * sampleRate));
    const length = Math.round(0.45 * sampleRate);
    const attackFrames = Math.round(0.005 * sampleRate);
    this.shape = new Float32Array(length);
    for (let i = 0; i < length; i++) {
      const x = i / length;
      // Bent to exactly zero at the end so the gain never steps.
      this.shape[i] = i < attackFrames ? i / attackFrames : Math.exp(-(i - attackFrames) / (0.085 * sampleRate)) * (1 - x * x * x * x);
    }
  }

  at(frame: number): number {
    if (frame < this.lastKick) {
      this.next = 0;
      this.lastKick = NO_KICK;
    }
    while (this.next < this.kickFrames.length && this.kickFrames[this.next]! <= frame) {
      this.lastKick = this.kickFrames[this.next]!;
      this.next++;
    }
    const since = frame - this.lastKick;
    return since < this.shape.length ? this.shape[since]! : 0;
  }
}

// Drums are one-shots: each sound is synthesized a few times (round-robin
// variants, so repeated hats are not machine-gun identical) and then mixed in
// at every hit with its velocity. Far cheaper than synthesizing every hit.
const ONE_SHOT_SEC: Record<DrumKind, number> = {
  kick: 0.42, clap: 0.4, snare: 0.25, hatClosed: 0.12, hatOpen: 0.5, shaker: 0.12, rim: 0.1, tom: 0.45, crash: 3.2,
};
const ONE_SHOT_VARIANTS: Record<DrumKind, number> = {
  kick: 2, clap: 4, snare: 4, hatClosed: 4, hatOpen: 3, shaker: 4, rim: 2, tom: 1, crash: 2,
};
/** Sounds that go through the drums' short room; the kick, hats and cymbals stay dry and tight. */
const ROOM_KINDS: ReadonlySet<DrumKind> = new Set<DrumKind>(['clap', 'snare', 'rim', 'tom']);

function renderOneShot(kind: DrumKind, tone: number, sampleRate: number, rng: Rng): Float32Array {
  const sound = new Float32Array(Math.round(ONE_SHOT_SEC[kind] * sampleRate) * 2);
  const hit: DrumHit = { kind, timeSec: 0, velocity: 1, tone };
  switch (kind) {
    case 'kick':
      renderKick(sound, hit, sampleRate, rng);
      break;
    case 'clap':
      renderClap(sound, hit, sampleRate, rng);
      break;
    case 'snare':
      renderSnare(sound, hit, sampleRate, rng);
      break;
    case 'hatClosed':
      renderHat(sound, hit, sampleRate, rng, false, 0.15);
      break;
    case 'hatOpen':
      renderHat(sound, hit, sampleRate, rng, true, 0.22);
      break;
    case 'shaker':
      renderShaker(sound, hit, sampleRate, rng);
      break;
    case 'rim':
      renderRim(sound, hit, sampleRate);
      break;
    case 'tom':
      renderTom(sound, hit, sampleRate);
      break;
    case 'crash':
      renderCrash(sound, hit, sampleRate, rng);
      break;
  }
  return sound;
}

function renderDrums(out: Float32Array, scratch: Float32Array, sampleRate: number, hits: readonly DrumHit[], risers: readonly Riser[]): void {
  const rng = new Rng(0xd7_0001);
  const room = scratch.fill(0);
  const sounds = new Map<string, Float32Array>();
  const hitCounts = new Map<DrumKind, number>();
  for (const hit of hits) {
    const count = hitCounts.get(hit.kind) ?? 0;
    hitCounts.set(hit.kind, count + 1);
    // Hat tone is quantized so that a handful of renders cover every hit.
    const tone = hit.kind === 'tom' ? hit.tone : Math.round(hit.tone * 10) / 10;
    const key = `${hit.kind}/${tone}/${count % ONE_SHOT_VARIANTS[hit.kind]}`;
    let sound = sounds.get(key);
    if (sound === undefined) {
      sound = renderOneShot(hit.kind, tone, sampleRate, rng);
      sounds.set(key, sound);
    }
    const target = ROOM_KINDS.has(hit.kind) ? room : out;
    const offset = 2 * Math.round(hit.timeSec * sampleRate);
    const length = Math.min(sound.length, target.length - offset);
    for (let i = 0; i < length; i++) target[offset + i] = target[offset + i]! + hit.velocity * sound[i]!;
  }
  for (const riser of risers) renderRiser(out, riser, sampleRate, rng);
  new FdnReverb(sampleRate, 0.7, 6000, 0.6, 0.008).process(room, 2, out, 0.4);
  for (let i = 0; i < out.length; i++) out[i] = out[i]! + room[i]!;
}

function renderBass(out: Float32Array, sampleRate: number, pump: Pump): void {
  for (const note of bassScore()) renderBassNote(out, note, sampleRate);
  for (let f = 0; f < out.length / 2; f++) {
    // Soft saturation glues the sub and the saw; the pump leaves a gap for each kick.
    const s = (softSaturate(1.4 * out[2 * f]!) / 1.4) * (1 - 0.6 * pump.at(f));
    out[2 * f] = s;
    out[2 * f + 1] = s;
  }
}

// Pad level and filter over the form (position in bars): opens through the
// intro, steps back for the groove, blooms in the breakdown, sweeps up in the
// build, drops out for the beat of silence, and fades with the last chord.
const PAD_LEVEL: readonly (readonly [number, number])[] = [
  [0, 1.1], [3.5, 1.1], [4, 0.55], [20, 0.55], [20.5, 1], [24, 0.85], [27.7, 1], [27.75, 0], [28, 0], [28.03, 0.6], [36, 0.6], [38, 0.85], [39, 0.45], [40, 0],
];
const PAD_CUTOFF_HZ: readonly (readonly [number, number])[] = [
  [0, 500], [4, 2000], [20, 2000], [20.5, 2600], [24, 900], [27.75, 6000], [28, 2400], [36, 2400], [40, 500],
];
const PIANO_LEVEL: readonly (readonly [number, number])[] = [[0, 0.8], [4, 1], [40, 1]];

function renderHarmony(out: Float32Array, scratch: Float32Array, sampleRate: number, pump: Pump): void {
  const rng = new Rng(0x4a_0001);
  padScore().forEach((segment, i) => {
    // The doubled root (lowest) sits under the voicing; the rootless voicing carries the colour.
    const level = segment.midi < 55 ? 0.022 : 0.032;
    renderPadVoice(out, segment.midi, segment.startSec, segment.endSec, level, i, sampleRate, rng);
  });
  // Pad bus: automated lowpass (cutoff interpolated in log-frequency, updated every 64 frames) and level.
  const logCutoff = PAD_CUTOFF_HZ.map(([bar, hz]) => [bar, Math.log(hz)] as const);
  const filterL = new Svf(300, 0.8, sampleRate);
  const filterR = new Svf(300, 0.8, sampleRate);
  const frames = out.length / 2;
  let level = 0;
  for (let f = 0; f < frames; f++) {
    if (f % 64 === 0) {
      const bar = f / sampleRate / BAR_SEC;
      const cutoffHz = Math.exp(automation(logCutoff, bar));
      filterL.set(cutoffHz, 0.8, sampleRate);
      filterR.set(cutoffHz, 0.8, sampleRate);
      level = automation(PAD_LEVEL, bar);
    }
    const gain = level * (1 - 0.4 * pump.at(f));
    out[2 * f] = filterL.process(out[2 * f]!) * gain;
    out[2 * f + 1] = filterR.process(out[2 * f + 1]!) * gain;
  }
  chorusInPlace(out, sampleRate, 0.4, 0.012, 0.003, 0.45);

  const piano = scratch.fill(0);
  for (const note of pianoScore()) {
    // Low notes a touch left, high a touch right, like sitting at the keys.
    renderPianoNote(piano, note, sampleRate, Math.max(-0.4, Math.min(0.4, (note.midi - 61) / 15)));
  }
  // Tempo-synced auto-pan, one cycle per beat: the classic electric-piano tremolo.
  const tremoloHz = BPM / 60;
  let pianoLevel = 1;
  for (let f = 0; f < frames; f++) {
    const t = f / sampleRate;
    if (f % 64 === 0) pianoLevel = automation(PIANO_LEVEL, t / BAR_SEC);
    const lfo = 0.3 * sinCycles(tremoloHz * t);
    const gain = pianoLevel * (1 - 0.25 * pump.at(f));
    out[2 * f] = out[2 * f]! + piano[2 * f]! * gain * (1 + lfo);
    out[2 * f + 1] = out[2 * f + 1]! + piano[2 * f + 1]! * gain * (1 - lfo);
  }
  new FdnReverb(sampleRate, 2.6, 4500, 1.3, 0.025).process(out, 2, out, 0.35);
}

/** Slightly right of centre: clear of the centred kick, bass and clap without pulling the mix sideways. */
const LEAD_PAN = 0.2;

function renderLead(out: Float32Array, sampleRate: number): void {
  const rng = new Rng(0x1e_0001);
  for (const note of leadScore()) renderLeadNote(out, note, sampleRate, rng, LEAD_PAN);
  // Dotted-eighth ping-pong: the echoes fill the hook's rests in time. The
  // hall then takes the echoes too, which smears them into the space.
  pingPongDelay(out, out, sampleRate, (0.75 * 60) / BPM, 0.38, 3200, 0.3);
  new FdnReverb(sampleRate, 2.2, 5000, 1.2, 0.02).process(out, 2, out, 0.3);
}

function peakOf(samples: Float32Array): number {
  let peak = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i]!;
    if (v > peak) peak = v;
    else if (-v > peak) peak = -v;
  }
  return peak;
}

/**
 * Renders the whole piece. Deterministic: seeded noise, no clock, no
 * Math.random; two calls give bit-identical stems.
 */
export function composeDemoMusic(): DemoMusic {
  const sampleRate = DEMO_SAMPLE_RATE;
  const frames = Math.round(TOTAL_BARS * BAR_SEC * sampleRate);
  const { hits, risers } = drumScore();
  // One stereo scratch buffer serves the drums' room send and then the piano:
  // touching fresh memory costs more here than the DSP, so big buffers are reused.
  const scratch = new Float32Array(frames * 2);
  const stems: Record<DemoStemId, Float32Array> = {
    drums: new Float32Array(frames * 2),
    bass: new Float32Array(frames * 2),
    harmony: new Float32Array(frames * 2),
    lead: new Float32Array(frames * 2),
  };
  renderDrums(stems.drums, scratch, sampleRate, hits, risers);
  const pump = new Pump(hits, sampleRate);
  renderBass(stems.bass, sampleRate, pump);
  renderHarmony(stems.harmony, scratch, sampleRate, pump);
  renderLead(stems.lead, sampleRate);

  let masterGain = Infinity;
  for (const id of DEMO_STEM_IDS) {
    // Nothing musical lives below 20 Hz; removing it also removes any DC.
    highpassInPlace(stems[id], 20, sampleRate, STEM_GAIN[id]);
    masterGain = Math.min(masterGain, STEM_PEAK_LIMIT / Math.max(peakOf(stems[id]), 1e-9));
  }
  // One common gain keeps the balance: the plain sum must not clip, nor any stem alone.
  const { drums, bass, harmony, lead } = stems;
  let mixPeak = 0;
  for (let i = 0; i < drums.length; i++) {
    const sum = drums[i]! + bass[i]! + harmony[i]! + lead[i]!;
    if (sum > mixPeak) mixPeak = sum;
    else if (-sum > mixPeak) mixPeak = -sum;
  }
  masterGain = Math.min(masterGain, MIX_PEAK_TARGET / Math.max(mixPeak, 1e-9));

  const fadeFrames = Math.round(EDGE_FADE_SEC * sampleRate);
  for (const id of DEMO_STEM_IDS) {
    const stem = stems[id];
    for (let i = 0; i < stem.length; i++) stem[i] = stem[i]! * masterGain;
    // Raised-cosine fade over the first and last few ms so the file never starts or ends on a click.
    for (let f = 0; f < fadeFrames; f++) {
      const fade = 0.5 - 0.5 * Math.cos((Math.PI * f) / fadeFrames);
      const tail = 2 * (frames - 1 - f);
      stem[2 * f] = stem[2 * f]! * fade;
      stem[2 * f + 1] = stem[2 * f + 1]! * fade;
      stem[tail] = stem[tail]! * fade;
      stem[tail + 1] = stem[tail + 1]! * fade;
    }
  }

  const excerpts = EXCERPT_BARS.map((e) => ({ id: e.id, title: e.title, startSec: stepTime(e.startBar, 0, false), endSec: stepTime(e.endBar, 0, false) }));

  return { title: TITLE, sampleRate: 48000, channels: 2, bpm: BPM, key: KEY, frames, stems, excerpts };
}
