import { expect } from 'chai';
import { composeDemoMusic, DEMO_SAMPLE_RATE, DEMO_STEM_IDS } from '../../media/demo/music.ts';
import type { DemoMusic, DemoStemId } from '../../media/demo/music.ts';

/** FNV-1a over the raw float bits: any single changed sample changes the hash. */
function hashSamples(samples: Float32Array): number {
  const words = new Uint32Array(samples.buffer, samples.byteOffset, samples.length);
  let hash = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) {
    hash = Math.imul(hash ^ words[i]!, 0x01000193) >>> 0;
  }
  return hash;
}

function rms(samples: Float32Array, from = 0, to = samples.length): number {
  let sum = 0;
  for (let i = from; i < to; i++) sum += samples[i]! * samples[i]!;
  return Math.sqrt(sum / Math.max(1, to - from));
}

function peak(samples: Float32Array): number {
  let max = 0;
  for (let i = 0; i < samples.length; i++) max = Math.max(max, Math.abs(samples[i]!));
  return max;
}

function mixOf(music: DemoMusic): Float32Array {
  const mix = new Float32Array(music.frames * 2);
  for (const id of DEMO_STEM_IDS) {
    const stem = music.stems[id];
    for (let i = 0; i < mix.length; i++) mix[i] = mix[i]! + stem[i]!;
  }
  return mix;
}

function monoOf(stereo: Float32Array): Float64Array {
  const mono = new Float64Array(stereo.length / 2);
  for (let f = 0; f < mono.length; f++) mono[f] = 0.5 * (stereo[2 * f]! + stereo[2 * f + 1]!);
  return mono;
}

/** In-place iterative radix-2 FFT; re/im lengths must be a power of two. */
function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  const cos = new Float64Array(n / 2);
  const sin = new Float64Array(n / 2);
  for (let k = 0; k < n / 2; k++) {
    cos[k] = Math.cos((-2 * Math.PI * k) / n);
    sin[k] = Math.sin((-2 * Math.PI * k) / n);
  }
  for (let size = 2; size <= n; size <<= 1) {
    const half = size / 2;
    const stride = n / size;
    for (let start = 0; start < n; start += size) {
      for (let k = 0; k < half; k++) {
        const wr = cos[k * stride]!;
        const wi = sin[k * stride]!;
        const a = start + k;
        const b = a + half;
        const tr = re[b]! * wr - im[b]! * wi;
        const ti = re[b]! * wi + im[b]! * wr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
}

/** Power spectrum averaged over Hann-windowed blocks of the whole signal. */
function averagePowerSpectrum(mono: Float64Array, size: number): Float64Array {
  const power = new Float64Array(size / 2);
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  for (let start = 0; start + size <= mono.length; start += size) {
    for (let i = 0; i < size; i++) {
      re[i] = mono[start + i]! * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / size));
      im[i] = 0;
    }
    fft(re, im);
    for (let k = 0; k < size / 2; k++) power[k] = power[k]! + re[k]! * re[k]! + im[k]! * im[k]!;
  }
  return power;
}

function hzToMidi(hz: number): number {
  return 69 + 12 * Math.log2(hz / 440);
}

/** Pitch classes (0 = C) of the F natural minor scale: F G Ab Bb C Db Eb. */
const F_MINOR_PITCH_CLASSES = [5, 7, 8, 10, 0, 1, 3];

describe('demo music (composeDemoMusic)', () => {
  let music: DemoMusic;

  before(() => {
    music = composeDemoMusic();
  });

  it('renders bit-identical stems on every call', () => {
    const again = composeDemoMusic();
    for (const id of DEMO_STEM_IDS) {
      expect(hashSamples(again.stems[id]), id).to.equal(hashSamples(music.stems[id]));
    }
  });

  it('lasts 60–90 s at 48 kHz in interleaved stereo, every stem the same length', () => {
    expect(music.sampleRate).to.equal(DEMO_SAMPLE_RATE).and.to.equal(48000);
    expect(music.channels).to.equal(2);
    const durationSec = music.frames / music.sampleRate;
    expect(durationSec).to.be.within(60, 90);
    expect(Object.keys(music.stems).sort()).to.deep.equal([...DEMO_STEM_IDS].sort());
    for (const id of DEMO_STEM_IDS) expect(music.stems[id].length, id).to.equal(music.frames * 2);
  });

  it('states a tempo in the house range and a key', () => {
    expect(music.bpm).to.be.within(110, 124);
    expect(music.key).to.match(/^[A-G][b#]? (major|minor)$/);
    expect(music.title).to.be.a('string').and.not.be.empty;
  });

  it('contains only finite samples', () => {
    for (const id of DEMO_STEM_IDS) {
      const stem = music.stems[id];
      let bad = 0;
      for (let i = 0; i < stem.length; i++) if (!Number.isFinite(stem[i]!)) bad++;
      expect(bad, id).to.equal(0);
    }
  });

  it('keeps every stem clearly audible but not overloaded (RMS between -34 and -10 dBFS)', () => {
    for (const id of DEMO_STEM_IDS) {
      expect(rms(music.stems[id]), id).to.be.within(0.02, 0.32);
    }
  });

  it('peaks at or below 0.9 per stem and 0.98 for the plain sum of all stems', () => {
    for (const id of DEMO_STEM_IDS) expect(peak(music.stems[id]), id).to.be.at.most(0.9);
    expect(peak(mixOf(music))).to.be.at.most(0.98);
  });

  it('has no DC offset on either side of any stem', () => {
    for (const id of DEMO_STEM_IDS) {
      const stem = music.stems[id];
      let left = 0;
      let right = 0;
      for (let f = 0; f < music.frames; f++) {
        left += stem[2 * f]!;
        right += stem[2 * f + 1]!;
      }
      expect(Math.abs(left / music.frames), `${id} left`).to.be.below(1e-3);
      expect(Math.abs(right / music.frames), `${id} right`).to.be.below(1e-3);
    }
  });

  it('starts and ends at silence, and the ending decays rather than cutting off', () => {
    const mix = mixOf(music);
    for (const id of DEMO_STEM_IDS) {
      const stem = music.stems[id];
      expect(Math.abs(stem[0]!), `${id} first sample`).to.be.below(1e-4);
      expect(Math.abs(stem[stem.length - 1]!), `${id} last sample`).to.be.below(1e-4);
    }
    const halfSecond = music.sampleRate; // 0.5 s of interleaved stereo
    const overall = rms(mix);
    expect(rms(mix, mix.length - halfSecond), 'last 0.5 s').to.be.below(0.1 * overall);
  });

  it('offers at least two distinct bar-aligned excerpts of 15–40 s inside the piece', () => {
    const durationSec = music.frames / music.sampleRate;
    const barSec = (4 * 60) / music.bpm;
    expect(music.excerpts.length).to.be.at.least(2);
    expect(new Set(music.excerpts.map((e) => e.id)).size).to.equal(music.excerpts.length);
    for (const excerpt of music.excerpts) {
      expect(excerpt.title, excerpt.id).to.be.a('string').and.not.be.empty;
      expect(excerpt.startSec, excerpt.id).to.be.at.least(0);
      expect(excerpt.endSec, excerpt.id).to.be.at.most(durationSec + 1e-9);
      expect(excerpt.endSec - excerpt.startSec, excerpt.id).to.be.within(15, 40);
      for (const edgeSec of [excerpt.startSec, excerpt.endSec]) {
        const bars = edgeSec / barSec;
        expect(Math.abs(bars - Math.round(bars)), `${excerpt.id} edge ${edgeSec}`).to.be.below(1e-6);
      }
    }
  });

  it('has drums whose low-band energy pulses at the stated tempo', () => {
    // Kick energy envelope: lowpass (~150 Hz), square, 10 ms hops, then onset strength.
    const drums = monoOf(music.stems.drums);
    const hop = music.sampleRate / 100;
    const coef = 1 - Math.exp((-2 * Math.PI * 150) / music.sampleRate);
    const envelope = new Float64Array(Math.floor(drums.length / hop));
    let low = 0;
    for (let h = 0; h < envelope.length; h++) {
      let energy = 0;
      for (let i = h * hop; i < (h + 1) * hop; i++) {
        low += coef * (drums[i]! - low);
        energy += low * low;
      }
      envelope[h] = energy;
    }
    const onset = envelope.map((v, h) => (h > 0 ? Math.max(0, v - envelope[h - 1]!) : 0));
    const autocorrelation = (lag: number): number => {
      let sum = 0;
      for (let h = 0; h + lag < onset.length; h++) sum += onset[h]! * onset[h + lag]!;
      return sum;
    };
    // Search 0.3–0.8 s: one beat at any tempo from 75 to 200 BPM.
    let bestLag = 0;
    let best = -Infinity;
    for (let lag = 30; lag <= 80; lag++) {
      const value = autocorrelation(lag);
      if (value > best) {
        best = value;
        bestLag = lag;
      }
    }
    const beatHops = (60 / music.bpm) * 100;
    expect(Math.abs(bestLag - beatHops)).to.be.at.most(1);
    // Off the beat grid (a dotted eighth) the kick pattern does not line up with itself.
    expect(autocorrelation(Math.round(beatHops * 0.75))).to.be.below(0.25 * best);
  });

  it('has a bass whose dominant pitch is in the bass register, on a note of the key', () => {
    const size = 16384;
    const power = averagePowerSpectrum(monoOf(music.stems.bass), size);
    let bestBin = 1;
    for (let k = 1; k < power.length; k++) if (power[k]! > power[bestBin]!) bestBin = k;
    const hz = (bestBin * music.sampleRate) / size;
    expect(hz).to.be.within(40, 200);
    const midi = hzToMidi(hz);
    expect(Math.abs(midi - Math.round(midi)), 'in tune').to.be.below(0.35);
    expect(F_MINOR_PITCH_CLASSES).to.include(((Math.round(midi) % 12) + 12) % 12);
    // Most of the bass's energy is below 300 Hz: it is a bass, not a lead.
    const cutBin = Math.round((300 * size) / music.sampleRate);
    let below = 0;
    let total = 0;
    for (let k = 1; k < power.length; k++) {
      total += power[k]!;
      if (k < cutBin) below += power[k]!;
    }
    expect(below / total).to.be.above(0.8);
  });

  it('has harmony whose strongest pitch classes all belong to F minor', () => {
    const size = 16384;
    const power = averagePowerSpectrum(monoOf(music.stems.harmony), size);
    const chroma = new Float64Array(12);
    for (let k = 1; k < power.length; k++) {
      const hz = (k * music.sampleRate) / size;
      if (hz < 60 || hz > 2000) continue;
      const pitchClass = ((Math.round(hzToMidi(hz)) % 12) + 12) % 12;
      chroma[pitchClass] = chroma[pitchClass]! + power[k]!;
    }
    const strongest = [...chroma.keys()].sort((a, b) => chroma[b]! - chroma[a]!).slice(0, 5);
    expect(music.key).to.equal('F minor');
    for (const pitchClass of strongest) expect(F_MINOR_PITCH_CLASSES).to.include(pitchClass);
  });

  it('places harmony wide, bass and drums near the centre, and the lead slightly off-centre', () => {
    const image = (id: DemoStemId): { sideToMidDb: number; leftToRightDb: number } => {
      const stem = music.stems[id];
      let mid = 0;
      let side = 0;
      let left = 0;
      let right = 0;
      for (let f = 0; f < music.frames; f++) {
        const l = stem[2 * f]!;
        const r = stem[2 * f + 1]!;
        mid += (l + r) * (l + r);
        side += (l - r) * (l - r);
        left += l * l;
        right += r * r;
      }
      return { sideToMidDb: 10 * Math.log10((side + 1e-20) / mid), leftToRightDb: 10 * Math.log10(left / right) };
    };
    expect(image('harmony').sideToMidDb).to.be.above(-12);
    expect(image('bass').sideToMidDb).to.be.below(-40);
    expect(image('drums').sideToMidDb).to.be.below(-12);
    const lead = image('lead');
    expect(Math.abs(lead.leftToRightDb)).to.be.within(0.5, 6);
    for (const id of ['drums', 'bass', 'harmony'] as const) expect(Math.abs(image(id).leftToRightDb), id).to.be.below(1.5);
  });
});
