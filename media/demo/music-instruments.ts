// The demo's instruments: one function per sound, each adding a single
// note or hit into an interleaved stereo buffer (L, R, L, R, ...).
//
// Exponential envelopes run as per-sample multipliers rather than Math.exp
// calls: the whole piece must render in a few seconds at server start.

import type { DrumHit, NoteEvent, Riser } from './music-score.ts';
import { BlepSquare, midiToHz, panGains, polyBlep, sinCycles, Svf } from './synth.ts';
import type { Rng } from './synth.ts';

/** Per-sample multiplier for an exponential decay with time constant tauSec. */
function decayPerSample(tauSec: number, sampleRate: number): number {
  return Math.exp(-1 / (tauSec * sampleRate));
}

/** Start frame and how many frames fit before the buffer ends. Events never start before 0. */
function place(timeSec: number, lengthFrames: number, bufferFrames: number, sampleRate: number): { start: number; count: number } {
  const start = Math.max(0, Math.round(timeSec * sampleRate));
  return { start, count: Math.max(0, Math.min(lengthFrames, bufferFrames - start)) };
}

/** A short linear fade at a sound's scheduled end so that truncation never clicks. */
function tailFade(i: number, lengthFrames: number, fadeFrames: number): number {
  const remaining = lengthFrames - i;
  return remaining < fadeFrames ? remaining / fadeFrames : 1;
}

// ---------------------------------------------------------------- drums

// Partials of the classic six-square metallic cluster (TR-808 cymbal ratios), in Hz.
const METAL_HZ = [205.3, 304.4, 369.6, 522.7, 540.0, 800.0];

export function renderKick(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng): void {
  const length = Math.round(0.42 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const fadeFrames = Math.round(0.06 * sampleRate);
  const pitchMulA = decayPerSample(0.028, sampleRate);
  const pitchMulB = decayPerSample(0.004, sampleRate);
  const bodyMulA = decayPerSample(0.19, sampleRate);
  const bodyMulB = decayPerSample(0.08, sampleRate);
  const clickMul = decayPerSample(0.002, sampleRate);
  const attackFrames = 0.0015 * sampleRate;
  const norm = 1 / Math.tanh(1.5);
  const gain = hit.velocity * 0.92;
  let pitchA = 1;
  let pitchB = 1;
  let bodyA = 1;
  let bodyB = 1;
  let click = 0.25;
  let phase = 0;
  let prevNoise = 0;
  for (let i = 0; i < count; i++) {
    // Pitch falls from a knock to a tuned ~46 Hz boom (close to F1, the key's root).
    phase += (46 + 110 * pitchA + 60 * pitchB) / sampleRate;
    pitchA *= pitchMulA;
    pitchB *= pitchMulB;
    const attack = i < attackFrames ? i / attackFrames : 1;
    const body = sinCycles(phase) * attack * (0.75 * bodyA + 0.25 * bodyB);
    bodyA *= bodyMulA;
    bodyB *= bodyMulB;
    const noise = rng.bipolar();
    const x = body + (noise - prevNoise) * click;
    prevNoise = noise;
    click *= clickMul;
    // Gentle saturation rounds the attack and adds harmonics that small speakers can reproduce.
    const s = Math.tanh(1.5 * x) * norm * gain * tailFade(i, length, fadeFrames);
    const o = 2 * (start + i);
    out[o] = out[o]! + s;
    out[o + 1] = out[o + 1]! + s;
  }
}

/** Clap layered over a short snare body: three quick bursts, then a tail. */
export function renderClap(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng): void {
  const length = Math.round(0.4 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const bandL = new Svf(1150, 1.3, sampleRate);
  const bandR = new Svf(1250, 1.3, sampleRate);
  const fadeFrames = Math.round(0.03 * sampleRate);
  const burstMul = decayPerSample(0.0035, sampleRate);
  const tailMul = decayPerSample(0.085, sampleRate);
  const bodyMul = decayPerSample(0.035, sampleRate);
  const burstStarts = [0, Math.round(0.009 * sampleRate), Math.round(0.018 * sampleRate)];
  const tailStart = Math.round(0.026 * sampleRate);
  const bodyIncrement = 190 / sampleRate;
  const gain = hit.velocity * 2;
  let burst = 0;
  let tail = 0.85;
  let body = 0.15;
  for (let i = 0; i < count; i++) {
    if (burstStarts.includes(i)) burst = 1;
    const env = i >= tailStart ? Math.max(burst, tail) : burst;
    burst *= burstMul;
    if (i >= tailStart) tail *= tailMul;
    const nl = bandL.process(rng.bipolar());
    const nr = bandR.process(rng.bipolar());
    const tone = sinCycles(i * bodyIncrement) * body;
    body *= bodyMul;
    const g = gain * tailFade(i, length, fadeFrames);
    // Mostly the same noise on both sides: a centred clap with a little air.
    const o = 2 * (start + i);
    out[o] = out[o]! + g * (env * (0.85 * nl + 0.15 * nr) * 1.6 + tone);
    out[o + 1] = out[o + 1]! + g * (env * (0.85 * nr + 0.15 * nl) * 1.6 + tone);
  }
}

export function renderSnare(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng): void {
  const length = Math.round(0.25 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const high = new Svf(1800, 0.7, sampleRate);
  const fadeFrames = Math.round(0.02 * sampleRate);
  const rattleMul = decayPerSample(0.07, sampleRate);
  const toneMul = decayPerSample(0.045, sampleRate);
  const attackFrames = 0.001 * sampleRate;
  const gain = hit.velocity * 0.75;
  let rattle = 0.7;
  let tone = 0.45;
  for (let i = 0; i < count; i++) {
    high.process(rng.bipolar());
    const t = i / sampleRate;
    const partials = sinCycles(185 * t) + 0.5 * sinCycles(330 * t);
    const s = gain * (rattle * high.high + tone * partials) * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, fadeFrames);
    rattle *= rattleMul;
    tone *= toneMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s;
    out[o + 1] = out[o + 1]! + s;
  }
}

/** Hats: white noise plus a quiet metallic cluster, highpassed; tone opens a lowpass on top. */
export function renderHat(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng, open: boolean, pan: number): void {
  const length = Math.round((open ? 0.5 : 0.12) * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const highpass = new Svf(open ? 6500 : 7500, 0.8, sampleRate);
  // Tone darkens the hat from the top down; even the darkest keeps an octave above the highpass.
  const lowpass = new Svf(9000 + 9000 * hit.tone, 0.7, sampleRate);
  const squareA = new BlepSquare(rng.next());
  const squareB = new BlepSquare(rng.next());
  const incA = (METAL_HZ[0]! * 2.4) / sampleRate;
  const incB = (METAL_HZ[3]! * 2.4) / sampleRate;
  const { left: gl, right: gr } = panGains(pan);
  const fadeFrames = Math.round(0.02 * sampleRate);
  const decayMul = decayPerSample(open ? 0.16 : 0.028, sampleRate);
  const attackFrames = 0.0008 * sampleRate;
  let env = hit.velocity * (open ? 0.36 : 0.42);
  for (let i = 0; i < count; i++) {
    const metal = squareA.next(incA) + squareB.next(incB);
    highpass.process(rng.bipolar() * 0.8 + metal * 0.1);
    const shaped = lowpass.process(highpass.high);
    const s = shaped * env * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, fadeFrames);
    env *= decayMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}

export function renderShaker(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng): void {
  const length = Math.round(0.12 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const band = new Svf(5200, 1.4, sampleRate);
  const { left: gl, right: gr } = panGains(-0.4);
  // A soft attack is what makes noise sound shaken rather than struck.
  const attackFrames = Math.round(0.006 * sampleRate);
  const decayMul = decayPerSample(0.03, sampleRate);
  let env = hit.velocity * 0.22;
  for (let i = 0; i < count; i++) {
    const x = band.process(rng.bipolar());
    const s = x * env * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, 200);
    if (i >= attackFrames) env *= decayMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}

/** A woody rim/block click. */
export function renderRim(out: Float32Array, hit: DrumHit, sampleRate: number): void {
  const length = Math.round(0.1 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const { left: gl, right: gr } = panGains(0.3);
  const highMul = decayPerSample(0.01, sampleRate);
  const lowMul = decayPerSample(0.018, sampleRate);
  const attackFrames = 0.0005 * sampleRate;
  let high = hit.velocity * 0.3;
  let low = hit.velocity * 0.24;
  for (let i = 0; i < count; i++) {
    const t = i / sampleRate;
    const s = (high * sinCycles(1750 * t) + low * sinCycles(820 * t)) * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, 200);
    high *= highMul;
    low *= lowMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}

export function renderTom(out: Float32Array, hit: DrumHit, sampleRate: number): void {
  const length = Math.round(0.45 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  // High toms a little left, low toms a little right, as seen from the audience.
  const { left: gl, right: gr } = panGains(Math.max(-0.3, Math.min(0.3, (hit.tone - 150) / -150)));
  const bendMul = decayPerSample(0.03, sampleRate);
  const decayMul = decayPerSample(0.16, sampleRate);
  const attackFrames = 0.001 * sampleRate;
  let bend = 0.6;
  let env = hit.velocity * 0.6;
  let phase = 0;
  for (let i = 0; i < count; i++) {
    phase += (hit.tone * (1 + bend)) / sampleRate;
    bend *= bendMul;
    const s = sinCycles(phase) * env * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, 600);
    env *= decayMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}

export function renderCrash(out: Float32Array, hit: DrumHit, sampleRate: number, rng: Rng): void {
  const length = Math.round(3.2 * sampleRate);
  const { start, count } = place(hit.timeSec, length, out.length / 2, sampleRate);
  const highL = new Svf(4500, 0.7, sampleRate);
  const highR = new Svf(4700, 0.7, sampleRate);
  const squares = METAL_HZ.map((_, i) => new BlepSquare(rng.next() + i * 0.17));
  const increments = METAL_HZ.map((hz) => (hz * 3.1) / sampleRate);
  const fadeFrames = Math.round(0.3 * sampleRate);
  const fastMul = decayPerSample(0.12, sampleRate);
  const slowMul = decayPerSample(1.1, sampleRate);
  const attackFrames = 0.002 * sampleRate;
  const gain = hit.velocity * 0.17;
  let fast = 0.6;
  let slow = 0.4;
  for (let i = 0; i < count; i++) {
    let metal = 0;
    for (let k = 0; k < squares.length; k++) metal += squares[k]!.next(increments[k]!);
    highL.process(rng.bipolar() + metal * 0.08);
    highR.process(rng.bipolar() + metal * 0.08);
    const g = gain * (fast + slow) * (i < attackFrames ? i / attackFrames : 1) * tailFade(i, length, fadeFrames);
    fast *= fastMul;
    slow *= slowMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + g * highL.high;
    out[o + 1] = out[o + 1]! + g * highR.high;
  }
}

/** Noise through a bandpass that sweeps up as it swells: the build's tension. */
export function renderRiser(out: Float32Array, riser: Riser, sampleRate: number, rng: Rng): void {
  const start = Math.round(riser.startSec * sampleRate);
  const end = Math.min(out.length / 2, Math.round(riser.endSec * sampleRate));
  const length = end - start;
  const bandL = new Svf(400, 2.5, sampleRate);
  const bandR = new Svf(400, 2.5, sampleRate);
  for (let i = 0; i < length; i++) {
    const progress = i / length;
    if (i % 32 === 0) {
      const hz = 350 * Math.pow(9000 / 350, progress * progress);
      bandL.set(hz, 2.5, sampleRate);
      bandR.set(hz * 1.06, 2.5, sampleRate);
    }
    const g = 0.16 * progress * progress * tailFade(i, length, 480);
    bandL.process(rng.bipolar());
    bandR.process(rng.bipolar());
    const o = 2 * (start + i);
    out[o] = out[o]! + g * bandL.band;
    out[o + 1] = out[o + 1]! + g * bandR.band;
  }
}

// ---------------------------------------------------------------- bass

/** Sub sine plus a saw through a plucked lowpass; dead centre. */
export function renderBassNote(out: Float32Array, note: NoteEvent, sampleRate: number): void {
  const hz = midiToHz(note.midi);
  const increment = hz / sampleRate;
  const releaseSec = 0.03;
  const holdFrames = Math.round(note.durationSec * sampleRate);
  const length = holdFrames + Math.round(releaseSec * 4 * sampleRate);
  const { start, count } = place(note.timeSec, length, out.length / 2, sampleRate);
  const filter = new Svf(400, 1.1, sampleRate);
  const sawLevel = 0.12 + 0.38 * note.brightness;
  const filterEnvMul = decayPerSample(0.07, sampleRate);
  const bodyMul = decayPerSample(0.12, sampleRate);
  // A slow sag of the sustain: inaudible on short notes, lets the last note die away.
  const sustainMul = decayPerSample(2.5, sampleRate);
  const releaseMul = decayPerSample(releaseSec, sampleRate);
  const attackFrames = 0.004 * sampleRate;
  const envAmountHz = note.brightness * 1700 * note.velocity;
  const baseCutoffHz = 110 + 1.8 * hz + 250 * note.brightness;
  let filterEnv = 1;
  let body = 0.2;
  let sustain = 0.8;
  let release = 1;
  let phase = 0;
  for (let i = 0; i < count; i++) {
    if (i % 16 === 0) {
      // The filter snaps open on the attack and settles: the "pluck" that makes the line bounce.
      filter.set(baseCutoffHz + envAmountHz * filterEnv, 1.1, sampleRate);
    }
    filterEnv *= filterEnvMul;
    phase += increment;
    if (phase >= 1) phase -= 1;
    const saw = 2 * phase - 1 - polyBlep(phase, increment);
    const filtered = filter.process(saw);
    if (i >= holdFrames) release *= releaseMul;
    const env = (i < attackFrames ? i / attackFrames : 1) * release * (sustain + body) * tailFade(i, length, 64);
    body *= bodyMul;
    sustain *= sustainMul;
    // Sub and saw share one phase, so the sine is exactly the saw's fundamental.
    const s = note.velocity * env * (0.62 * sinCycles(phase) + sawLevel * filtered);
    const o = 2 * (start + i);
    out[o] = out[o]! + s;
    out[o + 1] = out[o + 1]! + s;
  }
}

// ---------------------------------------------------------------- harmony

/** One pad voice: three detuned saws spread across the stereo field, slow swell. */
export function renderPadVoice(
  out: Float32Array,
  midi: number,
  startSec: number,
  endSec: number,
  level: number,
  voiceIndex: number,
  sampleRate: number,
  rng: Rng,
): void {
  const hz = midiToHz(midi);
  const holdFrames = Math.round((endSec - startSec) * sampleRate);
  // A polynomial release reaches exactly zero, so the voice can stop there.
  const releaseFrames = Math.round(1.2 * sampleRate);
  const { start, count } = place(startSec, holdFrames + releaseFrames, out.length / 2, sampleRate);
  const swellFrames = Math.round(0.35 * sampleRate);
  const side = voiceIndex % 2 === 0 ? 1 : -1;
  const panA = panGains(-0.85 * side);
  const panB = panGains(0.1 * side);
  const panC = panGains(0.85 * side);
  const baseA = (hz * Math.pow(2, (-9 + rng.range(-2, 2)) / 1200)) / sampleRate;
  const baseB = (hz * Math.pow(2, rng.range(-1.5, 1.5) / 1200)) / sampleRate;
  const baseC = (hz * Math.pow(2, (8 + rng.range(-2, 2)) / 1200)) / sampleRate;
  let pA = rng.next();
  let pB = rng.next();
  let pC = rng.next();
  const driftRateHz = 0.13 + 0.05 * (voiceIndex % 5);
  const driftPhase = rng.next();
  let incA = baseA;
  let incB = baseB;
  let incC = baseC;
  for (let i = 0; i < count; i++) {
    if (i % 64 === 0) {
      // A slow, per-voice pitch drift (±3 cents) keeps the pad from sounding static.
      const drift = 1 + 0.00173 * sinCycles(driftRateHz * ((start + i) / sampleRate) + driftPhase);
      incA = baseA * drift;
      incB = baseB * drift;
      incC = baseC * drift;
    }
    pA += incA;
    if (pA >= 1) pA -= 1;
    pB += incB;
    if (pB >= 1) pB -= 1;
    pC += incC;
    if (pC >= 1) pC -= 1;
    const a = 2 * pA - 1 - polyBlep(pA, incA);
    const b = 2 * pB - 1 - polyBlep(pB, incB);
    const c = 2 * pC - 1 - polyBlep(pC, incC);
    let g = level;
    if (i < swellFrames) {
      const s = sinCycles((0.25 * i) / swellFrames);
      g *= s * s;
    }
    if (i >= holdFrames) {
      const r = 1 - (i - holdFrames) / releaseFrames;
      g *= r * r * r;
    }
    const o = 2 * (start + i);
    out[o] = out[o]! + g * (a * panA.left + b * panB.left + c * panC.left);
    out[o + 1] = out[o + 1]! + g * (a * panA.right + b * panB.right + c * panC.right);
  }
}

/** Electric piano: two-operator FM whose brightness follows velocity, plus a short tine ping. */
export function renderPianoNote(out: Float32Array, note: NoteEvent, sampleRate: number, pan: number): void {
  const hz = midiToHz(note.midi);
  const holdFrames = Math.round(note.durationSec * sampleRate);
  // A quick damper: the key-up is part of what makes short stabs sound played.
  const releaseSec = 0.07;
  const length = holdFrames + Math.round(releaseSec * 3.5 * sampleRate);
  const { start, count } = place(note.timeSec, length, out.length / 2, sampleRate);
  const carrierIncrement = hz / sampleRate;
  const tineIncrement = (hz * 13.9) / sampleRate;
  const indexPeakCycles = (0.5 + 2.2 * note.velocity * note.brightness) / (2 * Math.PI);
  const { left: gl, right: gr } = panGains(pan);
  const indexMul = decayPerSample(0.3, sampleRate);
  const tineMul = decayPerSample(0.015, sampleRate);
  const fastMul = decayPerSample(0.7, sampleRate);
  const slowMul = decayPerSample(2.8, sampleRate);
  const releaseMul = decayPerSample(releaseSec, sampleRate);
  const attackFrames = 0.002 * sampleRate;
  const gain = note.velocity * 0.16;
  let index = indexPeakCycles;
  // The tine ping only where it stays well below Nyquist.
  let tine = hz * 13.9 < sampleRate * 0.4 ? 0.05 * note.velocity : 0;
  let fast = 0.6;
  let slow = 0.4;
  let release = 1;
  for (let i = 0; i < count; i++) {
    const phase = i * carrierIncrement;
    let tone = sinCycles(phase + (0.032 + index) * sinCycles(phase));
    if (tine > 1e-5) {
      tone += tine * sinCycles(i * tineIncrement);
      tine *= tineMul;
    }
    index *= indexMul;
    if (i >= holdFrames) release *= releaseMul;
    const s = tone * (i < attackFrames ? i / attackFrames : 1) * (fast + slow) * release * gain * tailFade(i, length, 128);
    fast *= fastMul;
    slow *= slowMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}

// ---------------------------------------------------------------- lead

/**
 * Plucky bell lead: two detuned saws through a lowpass that snaps shut, with
 * an FM bell an octave up; low brightness leans on the bell.
 */
export function renderLeadNote(out: Float32Array, note: NoteEvent, sampleRate: number, rng: Rng, pan: number): void {
  const hz = midiToHz(note.midi);
  const holdFrames = Math.round(note.durationSec * sampleRate);
  const releaseSec = 0.14 + 0.4 * (1 - note.brightness);
  // Four time constants: -35 dB, where the short tail fade takes over unheard.
  const length = holdFrames + Math.round(releaseSec * 4 * sampleRate);
  const { start, count } = place(note.timeSec, length, out.length / 2, sampleRate);
  const { left: gl, right: gr } = panGains(pan);
  const incA = (hz * Math.pow(2, -7 / 1200)) / sampleRate;
  const incB = (hz * Math.pow(2, 7 / 1200)) / sampleRate;
  const bellIncrement = (2 * hz) / sampleRate;
  const filter = new Svf(2000, 1.6, sampleRate);
  const sawLevel = 0.25 + 0.6 * note.brightness;
  const baseCutoffHz = 400 + 1.3 * hz;
  const envAmountHz = (800 + 5200 * note.brightness) * note.velocity;
  const filterMul = decayPerSample(0.12, sampleRate);
  const bodyMul = decayPerSample(0.22, sampleRate);
  const bellMul = decayPerSample(0.35 + 0.9 * (1 - note.brightness), sampleRate);
  const bellIndexMul = decayPerSample(0.15, sampleRate);
  const releaseMul = decayPerSample(releaseSec, sampleRate);
  const attackFrames = 0.003 * sampleRate;
  const gain = note.velocity * 0.32;
  let pA = rng.next();
  let pB = rng.next();
  let filterEnv = 1;
  let body = 0.55;
  let bell = 0.55 - 0.3 * note.brightness;
  let bellIndex = 0.25;
  let release = 1;
  for (let i = 0; i < count; i++) {
    if (i % 16 === 0) filter.set(baseCutoffHz + envAmountHz * filterEnv, 1.6, sampleRate);
    filterEnv *= filterMul;
    pA += incA;
    if (pA >= 1) pA -= 1;
    pB += incB;
    if (pB >= 1) pB -= 1;
    const saws = 0.5 * (2 * pA - 1 - polyBlep(pA, incA) + 2 * pB - 1 - polyBlep(pB, incB));
    const filtered = filter.process(saws + 0.6 * sinCycles(pA));
    const bellPhase = i * bellIncrement;
    const bellTone = sinCycles(bellPhase + bellIndex * sinCycles(bellPhase * 1.75)) * bell;
    bellIndex *= bellIndexMul;
    bell *= bellMul;
    if (i >= holdFrames) release *= releaseMul;
    const s = (sawLevel * filtered * (0.45 + body) + bellTone) * (i < attackFrames ? i / attackFrames : 1) * release * gain * tailFade(i, length, 128);
    body *= bodyMul;
    const o = 2 * (start + i);
    out[o] = out[o]! + s * gl;
    out[o + 1] = out[o + 1]! + s * gr;
  }
}
