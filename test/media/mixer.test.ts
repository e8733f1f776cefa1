// The mixer, measured on known signals: tones, bursts and the demo stems.
import { expect } from 'chai';
import { composeDemoMusic, DEMO_STEM_IDS } from '../../media/demo/music.ts';
import { StereoSvf, prewarp } from '../../media/mixer/dsp/svf.ts';
import { LIMITER_CEILING_DB, Mixer, SEEK_FADE_SEC, PLAY_RAMP_SEC, type MixerStem } from '../../media/mixer/mixer.ts';
import { neutralMixerState, type MixerState } from '../../media/mixer/mixer-state.ts';
import { renderOffline, type ScheduledState } from '../../media/mixer/render-offline.ts';
import { channel, db, musicLike, peakFrequency, rms, spectrum } from '../support/audio-fixtures.ts';

const SR = 48000;
const BLOCK = 480;
const CEILING = Math.pow(10, LIMITER_CEILING_DB / 20);

/** Stereo tone, the same in both channels, between `fromSec` and `toSec` of a `totalSec` stem (silence elsewhere, 2 ms edges). */
function tone(hz: number, amplitude: number, totalSec: number, fromSec = 0, toSec = totalSec): Float32Array {
  const frames = Math.round(totalSec * SR);
  const pcm = new Float32Array(frames * 2);
  const a = Math.round(fromSec * SR);
  const b = Math.min(frames, Math.round(toSec * SR));
  const edge = Math.round(0.002 * SR);
  for (let i = a; i < b; i++) {
    const env = Math.min(1, (i - a) / edge, (b - 1 - i) / edge);
    const v = amplitude * env * Math.sin((2 * Math.PI * hz * i) / SR);
    pcm[i * 2] = v;
    pcm[i * 2 + 1] = v;
  }
  return pcm;
}

function stateFor(stems: readonly MixerStem[], regionSec: [number, number], tweak?: (s: MixerState) => void): MixerState {
  const s = neutralMixerState(
    stems.map((x) => x.id),
    { startSec: regionSec[0], endSec: regionSec[1] },
  );
  tweak?.(s);
  return s;
}

/** Runs a mixer block by block; `at(block)` may return a state to set before that block. */
function runLive(stems: readonly MixerStem[], blocks: number, at: (block: number, mixer: Mixer) => MixerState | null | undefined, bpm: number | null = 120): { out: Float32Array; mixer: Mixer } {
  const mixer = new Mixer({ sampleRate: SR, stems, bpm });
  const out = new Float32Array(blocks * BLOCK * 2);
  for (let b = 0; b < blocks; b++) {
    const s = at(b, mixer);
    if (s) mixer.setState(s);
    mixer.process(out.subarray(b * BLOCK * 2, (b + 1) * BLOCK * 2), BLOCK);
  }
  return { out, mixer };
}

/** Plays one state from the first block for `seconds`. */
function play(stems: readonly MixerStem[], state: MixerState, seconds: number, bpm: number | null = 120): Float32Array {
  return runLive(stems, Math.ceil((seconds * SR) / BLOCK), (b) => (b === 0 ? state : null), bpm).out;
}

function left(out: Float32Array): Float32Array {
  return channel(out, 2, 0);
}

/** Largest |x[i] − x[i−1]| over both channels in frames [from, to). */
function maxStep(out: Float32Array, from = 1, to = out.length / 2): number {
  let m = 0;
  for (let i = Math.max(1, Math.round(from)); i < Math.round(to); i++) {
    for (let c = 0; c < 2; c++) m = Math.max(m, Math.abs(out[i * 2 + c]! - out[(i - 1) * 2 + c]!));
  }
  return m;
}

function peakAbs(x: Float32Array): number {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]!));
  return m;
}

/** Level of a tone at `hz` in frames [from, from + n) of a mono signal, from the windowed spectrum. */
function levelAt(x: Float32Array, hz: number, from: number, n = 16384): number {
  const mag = spectrum(x, from, n);
  const k = Math.round((hz * n) / SR);
  let m = 0;
  for (let i = Math.max(0, k - 3); i <= Math.min(mag.length - 1, k + 3); i++) m = Math.max(m, mag[i]!);
  return m;
}

/** Gain in dB that `out` applies at `hz` relative to `ref` (the same stems mixed at neutral): window scalloping cancels. */
function gainDbAt(out: Float32Array, ref: Float32Array, hz: number): number {
  return db(levelAt(out, hz, 24000) / levelAt(ref, hz, 24000));
}

/** Start and end (seconds) of where the 10 ms RMS envelope stays above half its median over the loud part. */
function soundingSpan(x: Float32Array): { startSec: number; endSec: number } {
  const win = Math.round(0.01 * SR);
  const env: number[] = [];
  for (let i = 0; i + win <= x.length; i += win) env.push(rms(x, i, i + win));
  const loud = env.filter((v) => v > 1e-3).sort((a, b) => a - b);
  const threshold = loud[loud.length >> 1]! / 2;
  const first = env.findIndex((v) => v > threshold);
  let last = env.length - 1;
  while (last > 0 && env[last]! <= threshold) last--;
  // Refine to the sample: first/last sample whose |x| crosses the threshold·√2 (a sine's peak) inside the edge windows.
  const peakThreshold = threshold * Math.SQRT2;
  let start = first * win;
  for (let i = Math.max(0, (first - 1) * win); i < (first + 1) * win; i++) {
    if (Math.abs(x[i]!) > peakThreshold * 0.5) {
      start = i;
      break;
    }
  }
  let end = (last + 1) * win;
  for (let i = Math.min(x.length - 1, (last + 2) * win); i > last * win; i--) {
    if (Math.abs(x[i]!) > peakThreshold * 0.5) {
      end = i;
      break;
    }
  }
  return { startSec: start / SR, endSec: end / SR };
}

/** A small seeded PRNG (xorshift32) for fuzzing and schedules. */
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
}

describe('Mixer: channel strip', function () {
  const stem = [{ id: 'a', pcm: tone(1000, 0.5, 2) }];

  it('a gain of −6 dB halves the amplitude (within 0.5%)', function () {
    const ref = left(play(stem, stateFor(stem, [0, 2]), 1));
    const cut = left(play(stem, stateFor(stem, [0, 2], (s) => (s.stems.a!.gainDb = -6)), 1));
    const ratio = rms(cut, 24000, 48000) / rms(ref, 24000, 48000);
    expect(ratio).to.be.closeTo(0.5, 0.0025);
  });

  it('mute silences the stem completely once its short fade is done', function () {
    const out = play(stem, stateFor(stem, [0, 2], (s) => (s.stems.a!.mute = true)), 0.5);
    expect(peakAbs(out.subarray(0.1 * SR * 2))).to.equal(0);
  });

  it('solo isolates the soloed stems, and mute wins over solo', function () {
    const stems = [
      { id: 'a', pcm: tone(440, 0.3, 2) },
      { id: 'b', pcm: tone(1500, 0.3, 2) },
      { id: 'c', pcm: tone(3000, 0.3, 2) },
    ];
    const soloA = left(play(stems, stateFor(stems, [0, 2], (s) => (s.stems.a!.solo = true)), 1));
    expect(levelAt(soloA, 440, 24000)).to.be.closeTo(0.3, 0.01);
    expect(levelAt(soloA, 1500, 24000)).to.be.below(1e-6);
    expect(levelAt(soloA, 3000, 24000)).to.be.below(1e-6);
    const soloAC = left(play(stems, stateFor(stems, [0, 2], (s) => (s.stems.a!.solo = s.stems.c!.solo = true)), 1));
    expect(levelAt(soloAC, 3000, 24000)).to.be.closeTo(0.3, 0.01);
    expect(levelAt(soloAC, 1500, 24000)).to.be.below(1e-6);
    const mutedSolo = play(stems, stateFor(stems, [0, 2], (s) => {
      s.stems.a!.solo = true;
      s.stems.a!.mute = true;
    }), 0.5);
    expect(peakAbs(mutedSolo.subarray(0.1 * SR * 2))).to.equal(0);
  });

  it('pan hard left puts all the energy in the left channel, and keeps the total power', function () {
    // Left and right inputs at different frequencies: uncorrelated, as equal-power panning assumes.
    const l440 = tone(440, 0.3, 2);
    const r1000 = tone(1000, 0.2, 2);
    const pcm = new Float32Array(l440.length);
    for (let i = 0; i < pcm.length; i += 2) {
      pcm[i] = l440[i]!;
      pcm[i + 1] = r1000[i + 1]!;
    }
    const stereo = [{ id: 'a', pcm }];
    for (const [pan, near, far] of [
      [-1, 0, 1],
      [1, 1, 0],
    ] as const) {
      const out = play(stereo, stateFor(stereo, [0, 2], (s) => (s.stems.a!.pan = pan)), 1);
      const nearRms = rms(channel(out, 2, near), 24000, 48000);
      const farRms = rms(channel(out, 2, far), 24000, 48000);
      expect(farRms ** 2, `pan ${pan}: far channel power`).to.be.below(1e-9 * nearRms ** 2);
      const inPower = (0.3 ** 2 + 0.2 ** 2) / 2;
      expect(10 * Math.log10(nearRms ** 2 / inPower), `pan ${pan}: total power, dB`).to.be.closeTo(0, 0.1);
    }
  });

  for (const [kind, control, cutoff] of [
    ['low-pass', 'lowpassHz', 1000],
    ['high-pass', 'highpassHz', 1000],
  ] as const) {
    it(`a ${kind} at 1 kHz attenuates the far side by at least 20 dB and passes the near side within 1 dB`, function () {
      const stems = [
        { id: 'lo', pcm: tone(200, 0.25, 2) },
        { id: 'hi', pcm: tone(5000, 0.25, 2) },
      ];
      const ref = left(play(stems, stateFor(stems, [0, 2]), 1));
      const out = left(play(stems, stateFor(stems, [0, 2], (s) => {
        s.stems.lo![control] = cutoff;
        s.stems.hi![control] = cutoff;
      }), 1));
      const lo = gainDbAt(out, ref, 200);
      const hi = gainDbAt(out, ref, 5000);
      const [passed, stopped] = kind === 'low-pass' ? [lo, hi] : [hi, lo];
      expect(stopped, 'stop band, dB').to.be.below(-20);
      expect(passed, 'pass band, dB').to.be.within(-1, 1);
    });
  }

  for (const [band, hz, requested] of [
    ['eqLowDb', 50, 9],
    ['eqLowDb', 50, -18],
    ['eqMidDb', 1000, 6],
    ['eqMidDb', 1000, -12],
    ['eqHighDb', 14000, 9],
    ['eqHighDb', 14000, -18],
  ] as const) {
    it(`${band} at ${requested} dB moves its band (${hz} Hz) by about ${requested} dB and leaves the others`, function () {
      const others = band === 'eqMidDb' ? [50, 14000] : band === 'eqLowDb' ? [14000] : [50];
      const stems = [hz, ...others].map((f, i) => ({ id: `s${i}`, pcm: tone(f, 0.2, 2) }));
      const ref = left(play(stems, stateFor(stems, [0, 2]), 1));
      const out = left(play(stems, stateFor(stems, [0, 2], (s) => {
        for (const st of Object.values(s.stems)) st[band] = requested;
      }), 1));
      expect(gainDbAt(out, ref, hz)).to.be.closeTo(requested, 1);
      for (const f of others) expect(gainDbAt(out, ref, f), `${f} Hz`).to.be.closeTo(0, 1.5);
    });
  }

  it('a filter swept every block at full resonance never blows up (TPT SVF)', function () {
    const svf = new StereoSvf();
    const x = new Float64Array(BLOCK * 2);
    const rand = rng(11);
    let peak = 0;
    for (let b = 0; b < 2000; b++) {
      for (let i = 0; i < x.length; i++) x[i] = Math.sin(i * 0.05 + b) * 0.5;
      const hz = 80 * Math.pow(250, rand());
      if (b % 2) svf.lowpass(prewarp(hz, SR), 12, 1);
      else svf.highpass(prewarp(hz, SR), 0.5 + 11.5 * rand(), 1);
      svf.process(x, BLOCK);
      for (let i = 0; i < x.length; i++) peak = Math.max(peak, Math.abs(x[i]!));
    }
    // Resonance at Q 12 can lift a tone by ~22 dB (×12.6); anything beyond a few times that would be instability.
    expect(peak).to.be.below(0.5 * 12.6 * 3);
  });
});

describe('Mixer: tempo and pitch', function () {
  // A 440 Hz tone from 1 s to 9 s of the piece.
  const burst = [{ id: 'a', pcm: tone(440, 0.4, 12, 1, 9) }];

  it('tempo 1.25× plays an 8 s passage in 6.4 s (within 1%) at the same pitch (within 1%)', function () {
    const out = left(play(burst, stateFor(burst, [0, 12], (s) => (s.master.tempo = 1.25)), 9));
    const span = soundingSpan(out);
    const duration = span.endSec - span.startSec;
    expect(duration).to.be.closeTo(6.4, 0.064);
    expect(span.startSec).to.be.closeTo(0.8, 0.04);
    const f = peakFrequency(out, SR, Math.round(3 * SR), 32768);
    expect(f).to.be.closeTo(440, 4.4);
  });

  it('tempo 0.75× plays the 8 s passage in 10.67 s at the same pitch', function () {
    const out = left(play(burst, stateFor(burst, [0, 12], (s) => (s.master.tempo = 0.75)), 13));
    const span = soundingSpan(out);
    expect(span.endSec - span.startSec).to.be.closeTo(8 / 0.75, 0.08 / 0.75);
    expect(peakFrequency(out, SR, Math.round(4 * SR), 32768)).to.be.closeTo(440, 4.4);
  });

  for (const semitones of [7, -5, 12]) {
    it(`pitch ${semitones > 0 ? '+' : ''}${semitones} semitones multiplies a tone's frequency by 2^(${semitones}/12) (within 1%) and keeps its duration (within 1%)`, function () {
      const out = left(play(burst, stateFor(burst, [0, 12], (s) => (s.master.pitchSemitones = semitones)), 10.5));
      const want = 440 * Math.pow(2, semitones / 12);
      expect(peakFrequency(out, SR, Math.round(3 * SR), 32768)).to.be.closeTo(want, want * 0.01);
      const span = soundingSpan(out);
      expect(span.endSec - span.startSec).to.be.closeTo(8, 0.08);
    });
  }

  it('tempo and pitch are independent: 1.2× and −7 st give 1/1.2 of the duration at 2^(−7/12) of the frequency', function () {
    const out = left(play(burst, stateFor(burst, [0, 12], (s) => {
      s.master.tempo = 1.2;
      s.master.pitchSemitones = -7;
    }), 9));
    const want = 440 * Math.pow(2, -7 / 12);
    expect(peakFrequency(out, SR, Math.round(3 * SR), 32768)).to.be.closeTo(want, want * 0.01);
    const span = soundingSpan(out);
    expect(span.endSec - span.startSec).to.be.closeTo(8 / 1.2, 0.08 / 1.2);
  });

  it('engaging and releasing tempo and pitch mid-tone does not click', function () {
    const stems = [{ id: 'a', pcm: tone(300, 0.4, 6) }];
    const base = stateFor(stems, [0, 6], (s) => (s.targetSourceSec = null));
    const { out } = runLive(stems, 400, (b) => {
      if (b === 0) return base;
      if (b === 100) return { ...base, master: { ...base.master, tempo: 1.2, pitchSemitones: 3 } };
      if (b === 200) return base;
      return null;
    });
    // Bound from the signal: a 300 Hz tone at 0.4 steps by at most 0.4·2π·300/48000 per sample, ×1.19 after +3 st.
    const natural = (0.4 * 2 * Math.PI * 300 * Math.pow(2, 3 / 12)) / SR;
    expect(maxStep(out, 0.1 * SR)).to.be.below(natural * 1.5);
  });

  it('back at tempo 1 and pitch 0 after an excursion, the mix is again a bit-exact passthrough of the stems', function () {
    const stems = [{ id: 'a', pcm: musicLike(SR, 6, 2, 5) }];
    const base = stateFor(stems, [0, 6], (s) => (s.targetSourceSec = null));
    const mixer = new Mixer({ sampleRate: SR, stems, bpm: 120 });
    const out = new Float32Array(BLOCK * 2);
    const src = stems[0]!.pcm;
    let checked = 0;
    let same = 0;
    for (let b = 0; b < 450; b++) {
      if (b === 0) mixer.setState(base);
      if (b === 100) mixer.setState({ ...base, master: { ...base.master, tempo: 0.8, pitchSemitones: -4 } });
      if (b === 200) mixer.setState(base);
      // In bypass, output frame i of this block is source frame (position before the block) + i − latency.
      const before = Math.round(mixer.sourceSec * SR);
      mixer.process(out, BLOCK);
      if (b < 300) continue;
      const lat = mixer.latencyFrames;
      for (let i = 0; i < BLOCK; i++) {
        for (let c = 0; c < 2; c++) {
          checked++;
          if (out[i * 2 + c] === src[(before + i - lat) * 2 + c]) same++;
        }
      }
    }
    expect(checked).to.equal(150 * BLOCK * 2);
    expect(same).to.equal(checked);
  });
});

describe('Mixer: master effects and limiter', function () {
  it('the delay repeats at the release beat × tempo: half a beat at 120 BPM is 250 ms, at tempo 1.25 200 ms', function () {
    // A 20 ms click-like burst at 1 s.
    const stems = [{ id: 'a', pcm: tone(2000, 0.5, 4, 1, 1.02) }];
    for (const [tempo, bpm, wantSec] of [
      [1, 120, 0.25],
      [1.25, 120, 0.2],
      [1, null, 0.25],
      [1, 90, 1 / 3],
    ] as const) {
      const out = left(play(stems, stateFor(stems, [0, 4], (s) => {
        s.master.delayMix = 0.8;
        s.master.delayBeats = 0.5;
        s.master.delayFeedback = 0;
        s.master.tempo = tempo;
      }), 3, bpm));
      // The dry burst and its first echo: the two loudest 10 ms windows, apart.
      const win = 480;
      const env: number[] = [];
      for (let i = 0; i + win <= out.length; i += win) env.push(rms(out, i, i + win));
      const dry = env.indexOf(Math.max(...env));
      const rest = env.map((v, i) => (Math.abs(i - dry) < 3 ? 0 : v));
      const echo = rest.indexOf(Math.max(...rest));
      expect(((echo - dry) * win) / SR, `tempo ${tempo}, bpm ${bpm}`).to.be.closeTo(wantSec, 0.011);
    }
  });

  it('the reverb adds a tail after a sound stops, longer for a larger room', function () {
    const stems = [{ id: 'a', pcm: musicLike(SR, 3, 2, 3).map((v, i) => (i < 1 * SR * 2 ? v : 0)) }];
    const tailDb = (size: number) => {
      const out = left(play(stems, stateFor(stems, [0, 3], (s) => {
        s.master.reverbMix = 0.6;
        s.master.reverbSize = size;
      }), 2.5));
      // The tail from 0.1 to 0.4 s after the sound stops, against the sound itself.
      return db(rms(out, Math.round(1.1 * SR), Math.round(1.4 * SR)) / rms(out, 0.5 * SR, Math.round(0.9 * SR)));
    };
    const dry = left(play(stems, stateFor(stems, [0, 3]), 2.5));
    expect(rms(dry, Math.round(1.1 * SR), Math.round(1.4 * SR))).to.equal(0);
    const small = tailDb(0.1);
    const large = tailDb(1);
    expect(small).to.be.above(-45);
    expect(large).to.be.above(small + 6);
  });

  it('the filter sweep: −1 leaves only the lows (low-pass at 80 Hz), +1 only the highs (high-pass at 8 kHz)', function () {
    const stems = [
      { id: 'lo', pcm: tone(50, 0.25, 2) },
      { id: 'mid', pcm: tone(1000, 0.25, 2) },
      { id: 'hi', pcm: tone(12000, 0.25, 2) },
    ];
    const ref = left(play(stems, stateFor(stems, [0, 2]), 1));
    const down = left(play(stems, stateFor(stems, [0, 2], (s) => (s.master.filterSweep = -1)), 1));
    expect(gainDbAt(down, ref, 50)).to.be.within(-1, 3); // Q 1.2 lifts the band below the corner a little
    expect(gainDbAt(down, ref, 1000)).to.be.below(-20);
    expect(gainDbAt(down, ref, 12000)).to.be.below(-20);
    const up = left(play(stems, stateFor(stems, [0, 2], (s) => (s.master.filterSweep = 1)), 1));
    expect(gainDbAt(up, ref, 12000)).to.be.within(-1, 3);
    expect(gainDbAt(up, ref, 1000)).to.be.below(-20);
    expect(gainDbAt(up, ref, 50)).to.be.below(-20);
  });

  it('neutral settings pass the mix through unchanged: the output is the plain float sum of the stems, delayed by the limiter look-ahead', function () {
    const stems = ['a', 'b', 'c'].map((id, k) => ({ id, pcm: musicLike(SR, 3, 2, k + 1) }));
    const { out, mixer } = runLive(stems, 250, (b) => (b === 0 ? stateFor(stems, [0, 3]) : null));
    const lat = mixer.latencyFrames;
    expect(lat).to.equal(Math.round(0.002 * SR) - 1);
    let same = 0;
    let checked = 0;
    // From 20 ms on (past the play ramp), to the end.
    for (let f = Math.round(0.02 * SR); f < out.length / 2; f++) {
      const src = f - lat;
      for (let c = 0; c < 2; c++) {
        const want = Math.fround(stems[0]!.pcm[src * 2 + c]! + stems[1]!.pcm[src * 2 + c]! + stems[2]!.pcm[src * 2 + c]!);
        checked++;
        if (out[f * 2 + c] === want) same++;
      }
    }
    expect(same).to.equal(checked);
  });

  describe('on the demo stems', function () {
    this.timeout(120000);
    let stems: MixerStem[] = [];
    let excerpt = { startSec: 0, endSec: 0 };
    before(function () {
      const music = composeDemoMusic();
      stems = DEMO_STEM_IDS.map((id) => ({ id, pcm: music.stems[id] }));
      excerpt = music.excerpts[1]!;
    });

    it('the limiter holds every sample at or below −1 dBFS with every gain at maximum and the effects up', function () {
      const state = stateFor(stems, [excerpt.startSec, excerpt.endSec], (s) => {
        for (const st of Object.values(s.stems)) {
          st.gainDb = 6;
          st.eqLowDb = 12;
          st.eqMidDb = 12;
          st.eqHighDb = 12;
          st.lowpassHz = 2000;
          st.filterQ = 12;
        }
        s.master.gainDb = 6;
        s.master.reverbMix = 1;
        s.master.reverbSize = 1;
        s.master.delayMix = 1;
        s.master.delayFeedback = 0.9;
        s.master.filterSweep = 0.3;
      });
      const out = play(stems, state, 12);
      const peak = peakAbs(out);
      expect(peak).to.be.at.most(CEILING);
      expect(peak).to.be.above(CEILING * 0.9); // the limiter is working, not the mix being quiet
    });

    it('live and offline give bit-identical samples for a recorded schedule with many changes', function () {
      const rand = rng(2024);
      const schedule: ScheduledState[] = [];
      const base = stateFor(stems, [excerpt.startSec, excerpt.endSec]);
      let current = structuredClone(base);
      let pos = excerpt.startSec;
      for (let b = 0; b < 1500; b++) {
        pos += (BLOCK / SR) * current.master.tempo;
        if (b === 0 || rand() < 0.12) {
          const s = structuredClone(current);
          const pick = Math.floor(rand() * 12);
          const stem = s.stems[DEMO_STEM_IDS[Math.floor(rand() * 4)]!]!;
          if (pick === 0) stem.gainDb = -60 + 66 * rand();
          else if (pick === 1) stem.mute = !stem.mute;
          else if (pick === 2) stem.solo = rand() < 0.3;
          else if (pick === 3) {
            stem.eqLowDb = -24 + 36 * rand();
            stem.eqHighDb = -24 + 36 * rand();
          } else if (pick === 4) {
            stem.lowpassHz = 200 + 19800 * rand();
            stem.filterQ = 0.5 + 5 * rand();
          } else if (pick === 5) s.master.tempo = rand() < 0.3 ? 1 : 0.75 + 0.5 * rand();
          else if (pick === 6) s.master.pitchSemitones = rand() < 0.3 ? 0 : Math.round(-12 + 24 * rand());
          else if (pick === 7) {
            s.master.reverbMix = rand();
            s.master.delayMix = rand() * 0.5;
          } else if (pick === 8) s.master.filterSweep = -1 + 2 * rand();
          else if (pick === 9) pos = excerpt.startSec + rand() * (excerpt.endSec - excerpt.startSec); // a seek
          else if (pick === 10) s.playing = rand() < 0.8;
          else s.region = rand() < 0.5 ? { startSec: excerpt.startSec + 4, endSec: excerpt.startSec + 8 } : { startSec: excerpt.startSec, endSec: excerpt.endSec };
          const len = s.region.endSec - s.region.startSec;
          s.targetSourceSec = s.region.startSec + ((((pos - s.region.startSec) % len) + len) % len);
          schedule.push({ block: b, state: s });
          current = s;
        }
      }
      const totalFrames = 1500 * BLOCK;
      const offline = renderOffline(stems, 120, schedule, totalFrames);
      const byBlock = new Map(schedule.map((e) => [e.block, e.state]));
      const live = runLive(stems, 1500, (b) => byBlock.get(b)).out;
      expect(schedule.length).to.be.above(100);
      expect(peakAbs(live)).to.be.above(0.05);
      let differing = 0;
      for (let i = 0; i < live.length; i++) if (!Object.is(live[i], offline[i])) differing++;
      expect(differing).to.equal(0);
    });
  });
});

describe('Mixer: transport, seeks and loops', function () {
  const stems = [{ id: 'a', pcm: tone(220, 0.5, 10) }];
  // A 220 Hz tone at 0.5 steps by at most 0.5·2π·220/48000 per sample; an equal-power fade can add √2 and its own slope.
  const natural = (0.5 * 2 * Math.PI * 220) / SR;
  const fadeBound = Math.SQRT2 * natural + (2 * 0.5 * (Math.PI / 2)) / (SEEK_FADE_SEC * SR);

  it('follows the room transport: ±40 ms of jitter is ignored, a jump of 2 s is made', function () {
    const rand = rng(5);
    const positions: number[] = [];
    runLive(stems, 300, (b, mixer) => {
      positions.push(mixer.sourceSec);
      const jitter = b === 0 ? 0 : (rand() - 0.5) * 0.08;
      const t = 1 + (b * BLOCK) / SR + (b >= 200 ? 2 : 0) + jitter;
      return stateFor(stems, [0, 10], (s) => (s.targetSourceSec = t));
    });
    // Blocks 2–199 advance by exactly one block each (no jump), then it jumps by ~2 s.
    for (let b = 3; b < 200; b++) expect(positions[b]! - positions[b - 1]!).to.be.closeTo(BLOCK / SR, 1e-9);
    expect(positions[205]! - positions[195]!).to.be.closeTo(2 + (10 * BLOCK) / SR, 0.065);
  });

  it(`a seek crossfades: no sample step beyond the signal's own bound (${fadeBound.toFixed(4)})`, function () {
    const { out } = runLive(stems, 200, (b) => {
      if (b === 0) return stateFor(stems, [0, 10], (s) => (s.targetSourceSec = 1));
      if (b === 100) return stateFor(stems, [0, 10], (s) => (s.targetSourceSec = 6.123457));
      return null;
    });
    expect(maxStep(out, 0.02 * SR)).to.be.below(fadeBound);
    // Sanity of the measure: the jump itself, uncrossfaded, would be far larger.
    const src = channel(stems[0]!.pcm, 2, 0);
    const at = Math.round(1 * SR) + 100 * BLOCK;
    expect(Math.abs(src[Math.round(6.123457 * SR)]! - src[at]!)).to.be.above(fadeBound * 3);
  });

  it('the loop wraps at the region end with a crossfade, click-free, every 0.7037 s', function () {
    const region: [number, number] = [2, 2.7037];
    const { out } = runLive(stems, 400, (b) => (b === 0 ? stateFor(stems, region) : null));
    expect(maxStep(out, 0.02 * SR)).to.be.below(fadeBound);
    const { mixer } = runLive(stems, 300, (b) => (b === 0 ? stateFor(stems, region, (s) => (s.targetSourceSec = null)) : null));
    const played = (300 * BLOCK) / SR;
    expect(mixer.sourceSec).to.be.closeTo(region[0] + (played % (region[1] - region[0])), 0.002);
  });

  it('play and pause ramp over a few ms, and a paused mixer outputs exact silence', function () {
    const playing = stateFor(stems, [0, 10]);
    const paused = { ...playing, playing: false };
    const { out, mixer } = runLive(stems, 150, (b) => (b === 0 ? playing : b === 50 ? paused : b === 100 ? { ...playing, targetSourceSec: 3 } : null));
    const rampBound = natural + (0.5 * 1.05) / (PLAY_RAMP_SEC * SR);
    expect(maxStep(out)).to.be.below(rampBound);
    expect(peakAbs(out.subarray(53 * BLOCK * 2, 100 * BLOCK * 2))).to.equal(0);
    expect(peakAbs(out.subarray(110 * BLOCK * 2))).to.be.above(0.4);
    expect(mixer.idle).to.equal(false);
  });

  it('reset() drops the sound in flight; the next block fades in from silence without a click', function () {
    const playing = stateFor(stems, [0, 10], (s) => {
      s.targetSourceSec = null;
      s.master.reverbMix = 0.5;
    });
    const { out, mixer } = runLive(stems, 100, (b) => (b === 0 ? playing : null));
    expect(peakAbs(out.subarray(90 * BLOCK * 2))).to.be.above(0.3);
    mixer.reset();
    expect(mixer.idle).to.equal(true);
    const after = new Float32Array(20 * BLOCK * 2);
    mixer.process(after, 20 * BLOCK);
    expect(Math.abs(after[0]!)).to.be.below(1e-3);
    expect(maxStep(after)).to.be.below(natural * 1.3 + (0.5 * 1.3) / (PLAY_RAMP_SEC * SR));
    expect(peakAbs(after.subarray(10 * BLOCK * 2))).to.be.above(0.3);
  });

  it('a big gain step (−60 → +6 dB, and back) is smoothed: no click', function () {
    const quiet = stateFor(stems, [0, 10], (s) => (s.stems.a!.gainDb = -60));
    const loud = stateFor(stems, [0, 10], (s) => (s.stems.a!.gainDb = 6));
    const { out } = runLive(stems, 150, (b) => (b === 0 ? quiet : b === 50 ? loud : b === 100 ? quiet : null));
    const loudNatural = natural * Math.pow(10, 6 / 20);
    const m = maxStep(out);
    expect(m).to.be.below(loudNatural * 1.2);
    // The measure would see an unsmoothed step: the tone's level changes by ~0.5 within one sample.
    expect(peakAbs(out)).to.be.above(0.8);
  });
});

describe('Mixer: self-protection', function () {
  const hostile = [NaN, Infinity, -Infinity, 1e308, -1e308, -0, 0, 1e-320, 'x', undefined, null, {}, [], true];

  it('a seeded fuzz of hostile states every block never lets NaN, Infinity or a sample above the ceiling out', function () {
    const rand = rng(99);
    const stems = [
      { id: 'a', pcm: musicLike(SR, 3, 2, 1) },
      { id: 'b', pcm: tone(100, 0.9, 3) },
    ];
    // One stem carries corrupt samples as well.
    const corrupt = musicLike(SR, 3, 2, 2);
    for (let i = 0; i < corrupt.length; i += 997) corrupt[i] = i % 3 === 0 ? NaN : i % 3 === 1 ? Infinity : -Infinity;
    const all = [...stems, { id: 'c', pcm: corrupt }];
    const anyValue = (min: number, max: number): unknown => {
      const r = rand();
      if (r < 0.25) return hostile[Math.floor(rand() * hostile.length)];
      if (r < 0.35) return rand() < 0.5 ? min : max;
      return min - (max - min) + 3 * (max - min) * rand();
    };
    const { out } = runLive(all, 3000, () => {
      const s = stateFor(all, [0, 3]);
      const bag = s as unknown as Record<string, unknown>;
      for (const strip of Object.values(s.stems) as unknown as Record<string, unknown>[]) {
        strip.gainDb = anyValue(-60, 6);
        strip.pan = anyValue(-1, 1);
        strip.eqLowDb = anyValue(-24, 12);
        strip.eqMidDb = anyValue(-24, 12);
        strip.eqHighDb = anyValue(-24, 12);
        strip.lowpassHz = anyValue(80, 20000);
        strip.highpassHz = anyValue(20, 8000);
        strip.filterQ = anyValue(0.5, 12);
        strip.mute = rand() < 0.1 ? anyValue(0, 1) : rand() < 0.1;
        strip.solo = rand() < 0.1;
      }
      const m = s.master as unknown as Record<string, unknown>;
      for (const [k, [lo, hi]] of Object.entries({ gainDb: [-60, 6], tempo: [0.75, 1.25], pitchSemitones: [-12, 12], reverbMix: [0, 1], reverbSize: [0, 1], delayMix: [0, 1], delayFeedback: [0, 0.9], delayBeats: [0.25, 2], filterSweep: [-1, 1] })) {
        m[k] = rand() < 0.5 ? anyValue(lo!, hi!) : m[k];
      }
      bag.playing = rand() < 0.9 ? true : anyValue(0, 1);
      bag.targetSourceSec = rand() < 0.8 ? anyValue(0, 3) : null;
      if (rand() < 0.05) bag.region = { startSec: anyValue(0, 3), endSec: anyValue(0, 3) };
      if (rand() < 0.01) bag.stems = anyValue(0, 1);
      if (rand() < 0.01) bag.master = anyValue(0, 1);
      return s;
    });
    let bad = 0;
    for (let i = 0; i < out.length; i++) if (!(Math.abs(out[i]!) <= CEILING)) bad++;
    expect(bad).to.equal(0);
    expect(peakAbs(out)).to.be.above(0.1);
  });

  it('an effect tail decays to exact zeros, not to subnormal residue', function () {
    const stems = [{ id: 'a', pcm: musicLike(SR, 20, 2, 4).map((v, i) => (i < SR * 2 ? v : 0)) }];
    const out = play(stems, stateFor(stems, [0, 20], (s) => {
      s.master.reverbMix = 0.8;
      s.master.reverbSize = 0.6;
      s.master.delayMix = 0.5;
      s.master.delayFeedback = 0.6;
      s.master.delayBeats = 0.5;
      s.master.filterSweep = 0.2;
      s.stems.a!.lowpassHz = 500;
      s.stems.a!.filterQ = 12;
      s.stems.a!.eqLowDb = 12;
    }), 19);
    expect(peakAbs(out.subarray(2.5 * SR * 2, 3 * SR * 2))).to.be.above(1e-3);
    expect(peakAbs(out.subarray(17 * SR * 2))).to.equal(0);
  });

  it('refuses a block size it cannot keep, and a stem that is not stereo float PCM', function () {
    const mixer = new Mixer({ sampleRate: SR, stems: [{ id: 'a', pcm: new Float32Array(960) }], bpm: null });
    expect(() => mixer.process(new Float32Array(1000), 500)).to.throw(RangeError);
    expect(() => new Mixer({ sampleRate: SR, stems: [{ id: 'a', pcm: new Float32Array(3) }], bpm: null })).to.throw(RangeError);
    expect(() => new Mixer({ sampleRate: SR, stems: [], bpm: null })).to.throw(RangeError);
  });
});
