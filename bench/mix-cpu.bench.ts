// `npm run bench -- mix-cpu [seconds] [runs]`: CPU per room of the live mix.
//
// Mixes the demo release's four stems block by block, as a room's stream
// does, and reports CPU time over audio time (process.cpuUsage, user +
// system, this thread): cpuPercentOfCore = 100 × cpu / audio, the median of
// several runs. The headline figure has every effect on: non-neutral EQ,
// high-pass and low-pass on every stem, panning, tempo 1.1, pitch +2,
// reverb, delay, the filter sweep and the limiter working. The breakdown
// runs the neutral mix, then each effect alone on top of it, so the cost of
// each is its figure minus the neutral one.
import { composeDemoMusic, DEMO_STEM_IDS } from '../media/demo/music.ts';
import { Mixer } from '../media/mixer/mixer.ts';
import { neutralMixerState, type MixerState } from '../media/mixer/mixer-state.ts';

const SAMPLE_RATE = 48000;

type Tweak = (s: MixerState) => void;

const everyStem = (f: (strip: MixerState['stems'][string]) => void): Tweak => (s) => {
  for (const strip of Object.values(s.stems)) f(strip);
};

const EQ: Tweak = everyStem((st) => {
  st.eqLowDb = 4;
  st.eqMidDb = -3;
  st.eqHighDb = 2;
});
const FILTERS: Tweak = everyStem((st) => {
  st.highpassHz = 60;
  st.lowpassHz = 9000;
  st.filterQ = 1.5;
});
const PAN: Tweak = (s) => {
  let i = 0;
  for (const st of Object.values(s.stems)) st.pan = [-0.5, 0.3, 0.6, -0.2][i++ % 4]!;
};
const TEMPO: Tweak = (s) => {
  s.master.tempo = 1.1;
};
const PITCH: Tweak = (s) => {
  s.master.pitchSemitones = 2;
};
const REVERB: Tweak = (s) => {
  s.master.reverbMix = 0.35;
  s.master.reverbSize = 0.7;
};
const DELAY: Tweak = (s) => {
  s.master.delayMix = 0.3;
  s.master.delayFeedback = 0.45;
};
const SWEEP: Tweak = (s) => {
  s.master.filterSweep = -0.25;
};
/** Gains up until the limiter works on every peak. */
const LIMITER: Tweak = (s) => {
  s.master.gainDb = 6;
  for (const st of Object.values(s.stems)) st.gainDb = 4;
};

const CASES: Record<string, Tweak[]> = {
  neutral: [],
  eq: [EQ],
  filters: [FILTERS],
  pan: [PAN],
  tempo: [TEMPO],
  pitch: [PITCH],
  tempoAndPitch: [TEMPO, PITCH],
  reverb: [REVERB],
  delay: [DELAY],
  sweep: [SWEEP],
  limiter: [LIMITER],
  all: [EQ, FILTERS, PAN, TEMPO, PITCH, REVERB, DELAY, SWEEP, LIMITER],
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

function measure(stems: { id: string; pcm: Float32Array }[], region: { startSec: number; endSec: number }, tweaks: Tweak[], seconds: number): { cpuPercent: number; maxLimiterReductionDb: number } {
  const mixer = new Mixer({ sampleRate: SAMPLE_RATE, stems, bpm: 120 });
  const state = neutralMixerState(DEMO_STEM_IDS, region);
  state.targetSourceSec = null; // let the mixer run free: no transport to follow here
  for (const t of tweaks) t(state);
  mixer.setState(state);
  const n = mixer.blockFrames;
  const out = new Float32Array(n * 2);
  // Warm-up (JIT, effect tails) outside the measurement.
  for (let i = 0; i < 200; i++) mixer.process(out, n);
  const blocks = Math.round((seconds * SAMPLE_RATE) / n);
  let reduction = 0;
  const before = process.cpuUsage();
  for (let b = 0; b < blocks; b++) {
    mixer.process(out, n);
    reduction = Math.max(reduction, mixer.limiterReductionDb);
  }
  const used = process.cpuUsage(before);
  const cpuSec = (used.user + used.system) / 1e6;
  return { cpuPercent: (100 * cpuSec) / ((blocks * n) / SAMPLE_RATE), maxLimiterReductionDb: reduction };
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const seconds = Number(args[0] ?? 20);
  const runs = Number(args[1] ?? 5);
  if (!(seconds > 0) || !Number.isInteger(runs) || runs < 1) throw new Error('usage: mix-cpu [seconds > 0] [runs ≥ 1]');
  const music = composeDemoMusic();
  const stems = DEMO_STEM_IDS.map((id) => ({ id, pcm: music.stems[id] }));
  const excerpt = music.excerpts[0]!;
  const region = { startSec: excerpt.startSec, endSec: excerpt.endSec };
  const breakdown: Record<string, number> = {};
  const samples: Record<string, number[]> = {};
  let limiterReductionDb = 0;
  // Interleave the cases run by run so that drift in the machine's speed spreads evenly.
  for (let r = 0; r < runs; r++) {
    for (const [name, tweaks] of Object.entries(CASES)) {
      const m = measure(stems, region, tweaks, seconds);
      (samples[name] ??= []).push(m.cpuPercent);
      if (name === 'all') limiterReductionDb = Math.max(limiterReductionDb, m.maxLimiterReductionDb);
    }
  }
  for (const [name, xs] of Object.entries(samples)) breakdown[name] = Number(median(xs).toFixed(3));
  const all = breakdown.all!;
  return {
    cpuPercentOfCore: all,
    goalPercent: 2,
    withinGoal: all < 2,
    audioSecondsPerRun: seconds,
    runs,
    blockFrames: Math.round(SAMPLE_RATE * 0.01),
    node: process.version,
    /** Deepest gain reduction of the limiter in the all-effects run: proof that it was working. */
    allMaxLimiterReductionDb: Number(limiterReductionDb.toFixed(1)),
    breakdownPercentOfCore: breakdown,
    allRuns: samples.all!.map((x) => Number(x.toFixed(3))),
  };
}
