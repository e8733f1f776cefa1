import { expect } from 'chai';
import crypto from 'node:crypto';
import { interpretPrompt } from '../../shared/prompt-interpreter.ts';
import { VisualEngine, crossfadeMix, mixVisualParams, type FrameInput } from '../../shared/visual-engine.ts';
import { SRGB_TO_LINEAR } from '../../shared/visual-math.ts';
import { neutralVisualParams, type VisualParams } from '../../shared/visual-params.ts';
import { aggressiveVisualParams as aggressive, testArtworks } from '../support/visual-fixtures.ts';

const ART = testArtworks();

function frame(engine: VisualEngine, w: number, h: number, input: Partial<FrameInput> & { to: VisualParams }): Uint8ClampedArray {
  const out = new Uint8ClampedArray(w * h * 4);
  engine.renderFrame(out, w, h, { from: null, mix: 1, timeSec: 0, energy: 0, beatPhase: 0, ...input });
  return out;
}

const sha = (px: Uint8ClampedArray) => crypto.createHash('sha256').update(px).digest('hex');

function meanAbsDiff(a: Uint8ClampedArray, b: Uint8ClampedArray): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) if ((i & 3) !== 3) s += Math.abs(a[i]! - b[i]!);
  return s / ((a.length / 4) * 3);
}

/** Mean relative luminance (linear light, 0..1) of a rectangle of the frame. */
function luminance(px: Uint8ClampedArray, w: number, x0: number, y0: number, x1: number, y1: number): number {
  let s = 0;
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      const o = (y * w + x) * 4;
      s += 0.2126 * SRGB_TO_LINEAR[px[o]!]! + 0.7152 * SRGB_TO_LINEAR[px[o + 1]!]! + 0.0722 * SRGB_TO_LINEAR[px[o + 2]!]!;
    }
  }
  return s / ((x1 - x0) * (y1 - y0));
}

/**
 * Flashes in a luminance series, after WCAG 2.x "general flash": a flash is a pair of
 * opposing changes of at least 10 % of full luminance. Returns the most flashes that
 * start within any one second.
 */
function maxFlashesPerSecond(series: number[], fps: number, threshold = 0.1): number {
  const transitions: number[] = []; // frame index of each qualifying change
  let hi = series[0]!;
  let lo = series[0]!;
  let dir = 0; // direction of the last counted change
  for (let i = 1; i < series.length; i++) {
    const v = series[i]!;
    if (v > hi) hi = v;
    if (v < lo) lo = v;
    if (dir !== -1 && hi - v >= threshold) {
      transitions.push(i);
      dir = -1;
      hi = v;
      lo = v;
    } else if (dir !== 1 && v - lo >= threshold) {
      transitions.push(i);
      dir = 1;
      hi = v;
      lo = v;
    }
  }
  let most = 0;
  for (let i = 0; i < transitions.length; i++) {
    let n = 0;
    for (let j = i; j < transitions.length && transitions[j]! - transitions[i]! < fps; j++) n++;
    most = Math.max(most, Math.floor(n / 2));
  }
  return most;
}

describe('visual engine', () => {
  it('draws the same bytes for the same inputs, across engines and runs', () => {
    const p = aggressive();
    const hashes = (engine: VisualEngine) =>
      [0, 0.37, 1.5, 12.25, 300.1].map((t) => sha(frame(engine, 320, 180, { to: p, timeSec: t, energy: 0.7, beatPhase: (t * 2) % 1 })));
    const first = hashes(new VisualEngine(ART));
    const second = hashes(new VisualEngine(ART));
    expect(second).to.deep.equal(first);
    expect(new Set(first).size, 'frames at different times differ').to.equal(first.length);
  });

  it('draws the same bytes whatever it drew before (no hidden state)', () => {
    const engine = new VisualEngine(ART);
    const p = aggressive();
    const a = sha(frame(engine, 200, 120, { to: p, timeSec: 4 }));
    frame(engine, 64, 64, { to: neutralVisualParams(), timeSec: 9 });
    frame(engine, 200, 120, { to: interpretPrompt('stormy kaleidoscope', { artwork: [], previous: null }).params, timeSec: 2 });
    expect(sha(frame(engine, 200, 120, { to: p, timeSec: 4 }))).to.equal(a);
  });

  it('draws the same frame whether or not its params were prepared ahead', () => {
    const p = interpretPrompt('very calm ocean, no red, dreamy', { artwork: [], previous: null }).params;
    const cold = new VisualEngine(ART);
    const warm = new VisualEngine(ART);
    warm.prepare(p);
    expect(sha(frame(warm, 120, 90, { to: p, timeSec: 2 }))).to.equal(sha(frame(cold, 120, 90, { to: p, timeSec: 2 })));
  });

  it('draws an image added later (a generated texture) once params name it, the same as an engine built with it, and forgets it again', () => {
    const gen = { ...ART[1]!, id: 'gen-0123456789abcdef0123456789abcdef' };
    const p: VisualParams = { ...neutralVisualParams(), artworks: [{ id: gen.id, weight: 1 }] };
    const engine = new VisualEngine([ART[0]!]);
    const without = sha(frame(engine, 96, 64, { to: p, timeSec: 1 }));
    expect(without, 'an id it does not have draws the first artwork').to.equal(sha(frame(engine, 96, 64, { to: neutralVisualParams(), timeSec: 1 })));
    engine.addArtwork(gen);
    expect(engine.hasArtwork(gen.id)).to.equal(true);
    expect(engine.addedArtworkIds).to.deep.equal([gen.id]);
    const withIt = sha(frame(engine, 96, 64, { to: p, timeSec: 1 }));
    expect(withIt, 'the params composite is made again with it').to.not.equal(without);
    expect(withIt).to.equal(sha(frame(new VisualEngine([ART[0]!, gen]), 96, 64, { to: p, timeSec: 1 })));
    expect(() => engine.addArtwork({ ...ART[0]! }), 'an own artwork cannot be replaced').to.throw(RangeError);
    engine.removeArtwork(gen.id);
    expect(sha(frame(engine, 96, 64, { to: p, timeSec: 1 }))).to.equal(without);
    engine.removeArtwork(ART[0]!.id);
    expect(engine.hasArtwork(ART[0]!.id), 'own artwork stays').to.equal(true);
  });

  it('keeps at most the given number of added images, never those in use', () => {
    const engine = new VisualEngine([ART[0]!]);
    const ids = [0, 1, 2, 3, 4].map((i) => `gen-${String(i).repeat(32)}`);
    for (const id of ids) engine.addArtwork({ ...ART[1]!, id });
    engine.trimAdded(new Set([ids[0]!]), 2);
    expect(engine.addedArtworkIds).to.deep.equal([ids[0], ids[3], ids[4]]);
  });

  it("zooms toward the artwork's focus (its most salient region), and is centred without zoom", () => {
    const centred = new VisualEngine([ART[0]!]);
    const focused = new VisualEngine([{ ...ART[0]!, focus: { x: 0.35, y: 0.4 } }]);
    const still = neutralVisualParams();
    expect(sha(frame(focused, 160, 90, { to: still }))).to.equal(sha(frame(centred, 160, 90, { to: still })));
    const zoomed = { ...neutralVisualParams(), motion: { ...neutralVisualParams().motion, zoom: 1 } };
    // Mid-zoom, the focused view shows more of the red disc around (0.35, 0.4).
    const red = (px: Uint8ClampedArray) => {
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i]! > 200 && px[i + 1]! < 60) n++;
      return n;
    };
    const t = 10; // zoom is at its widest swing here
    expect(red(frame(focused, 160, 90, { to: zoomed, timeSec: t }))).to.be.above(red(frame(centred, 160, 90, { to: zoomed, timeSec: t })));
  });

  it('at neutral params and time 0 shows the artwork as it is', () => {
    const engine = new VisualEngine([ART[0]!], { internalScale: 1 });
    const w = 256;
    const out = frame(engine, w, w, { to: neutralVisualParams() });
    // Where each output pixel lands in the 512x512 artwork.
    let diff = 0;
    for (let y = 0; y < w; y++) {
      for (let x = 0; x < w; x++) {
        const s = ((y * 2 + 1) * 512 + (x * 2 + 1)) * 4;
        const o = (y * w + x) * 4;
        for (let c = 0; c < 3; c++) diff += Math.abs(out[o + c]! - ART[0]!.rgba[s + c]!);
      }
    }
    expect(diff / (w * w * 3)).to.be.below(3);
  });

  it('draws a picture, not a flat colour, under every kind of params', () => {
    const engine = new VisualEngine(ART);
    for (const p of [neutralVisualParams(), aggressive(), ...['stormy', 'foggy', 'night', 'kaleidoscope', 'no red', 'black and white'].map((t) => interpretPrompt(t, { artwork: [], previous: null }).params)]) {
      const out = frame(engine, 160, 90, { to: p, timeSec: 3.3, energy: 0.5 });
      const lum: number[] = [];
      for (let i = 0; i < out.length; i += 4) lum.push(out[i]! * 0.3 + out[i + 1]! * 0.59 + out[i + 2]! * 0.11);
      const mean = lum.reduce((s, v) => s + v, 0) / lum.length;
      const sd = Math.sqrt(lum.reduce((s, v) => s + (v - mean) ** 2, 0) / lum.length);
      expect(sd, JSON.stringify(p.motion)).to.be.above(10);
      expect(out[3]).to.equal(255);
    }
  });

  it('params change the picture in the direction they say ("dark" is darker, "no red" has less red)', () => {
    const engine = new VisualEngine(ART);
    const ctx = { artwork: [], previous: null };
    const mean = (px: Uint8ClampedArray, c: number) => {
      let s = 0;
      for (let i = c; i < px.length; i += 4) s += px[i]!;
      return s / (px.length / 4);
    };
    const base = frame(engine, 160, 160, { to: neutralVisualParams() });
    const dark = frame(engine, 160, 160, { to: interpretPrompt('very dark', ctx).params });
    expect(mean(dark, 0) + mean(dark, 1) + mean(dark, 2)).to.be.below(mean(base, 0) + mean(base, 1) + mean(base, 2) - 60);
    const noRed = frame(engine, 160, 160, { to: interpretPrompt('no red', ctx).params });
    expect(mean(noRed, 0) - mean(noRed, 1)).to.be.below(mean(base, 0) - mean(base, 1) - 5);
  });

  it('cross-fades a prompt change smoothly: no frame jumps more than steady motion does', () => {
    const engine = new VisualEngine(ART);
    const from = interpretPrompt('calm', { artwork: [], previous: null }).params;
    const to = interpretPrompt('stormy glitch kaleidoscope very dark', { artwork: [], previous: null }).params;
    const fps = 60;
    const changeAt = 1;
    let prev: Uint8ClampedArray | null = null;
    let steadyMax = 0;
    let fadeMax = 0;
    for (let i = 0; i < fps * 3; i++) {
      const t = i / fps;
      const mix = t < changeAt ? 0 : crossfadeMix(t - changeAt);
      const out = frame(engine, 160, 90, { from, to, mix, timeSec: t, energy: 0.5, beatPhase: (t * 2) % 1 });
      if (prev) {
        const d = meanAbsDiff(prev, out);
        if (t < changeAt) steadyMax = Math.max(steadyMax, d);
        else fadeMax = Math.max(fadeMax, d);
      }
      prev = out;
    }
    // The to-params move fast (speed, glitch); the fade itself adds at most a few levels a frame.
    expect(fadeMax).to.be.below(40);
    const start = frame(engine, 160, 90, { from, to, mix: 0, timeSec: 5 });
    expect(sha(start)).to.equal(sha(frame(engine, 160, 90, { to: from, timeSec: 5 })));
    const end = frame(engine, 160, 90, { from, to, mix: 1, timeSec: 5 });
    expect(sha(end)).to.equal(sha(frame(engine, 160, 90, { to, timeSec: 5 })));
    const half = frame(engine, 160, 90, { from, to, mix: 0.5, timeSec: 5 });
    expect(meanAbsDiff(half, start)).to.be.below(meanAbsDiff(end, start));
    expect(steadyMax).to.be.below(10);
    expect(crossfadeMix(0)).to.equal(0);
    expect(crossfadeMix(1.5)).to.equal(1);
  });

  it('the flash counter used below counts a 4 Hz light/dark square wave as 4 flashes a second, a slow swell as at most one, and small changes as none', () => {
    const fps = 60;
    const square = Array.from({ length: fps * 3 }, (_, i) => (Math.floor((i / fps) * 8) % 2 ? 0.5 : 0.2));
    expect(maxFlashesPerSecond(square, fps)).to.equal(4);
    // One rise and one fall of a slow swell may fall within a second: one flash, never more.
    const swell = Array.from({ length: fps * 3 }, (_, i) => 0.3 + 0.3 * Math.sin((i / fps) * Math.PI * 0.8));
    expect(maxFlashesPerSecond(swell, fps)).to.equal(1);
    const small = Array.from({ length: fps * 3 }, (_, i) => (Math.floor((i / fps) * 8) % 2 ? 0.35 : 0.3));
    expect(maxFlashesPerSecond(small, fps)).to.equal(0);
  });

  it('keeps large-area flashes under 3 a second with the most aggressive params and a hammering beat', function () {
    this.timeout(120000);
    const engine = new VisualEngine(ART);
    const w = 160;
    const h = 90;
    const fps = 60;
    const seconds = 8;
    const variants: [string, VisualParams][] = [
      ['everything at full', aggressive()],
      ['pulse and glitch only', { ...aggressive(), motion: { ...aggressive().motion, kaleidoscope: 0, rotate: 0 } }],
      ['euphoric rave', interpretPrompt('extremely euphoric glitchy pulsing party', { artwork: [], previous: null }).params],
    ];
    const report: string[] = [];
    for (const [name, p] of variants) {
      const regions = [
        [0, 0, w, h],
        [0, 0, w / 2, h / 2],
        [w / 2, 0, w, h / 2],
        [0, h / 2, w / 2, h],
        [w / 2, h / 2, w, h],
      ];
      const series: number[][] = regions.map(() => []);
      for (let i = 0; i < fps * seconds; i++) {
        const t = i / fps;
        // 180 bpm, energy slamming between silence and full on every beat.
        const beats = t * 3;
        const out = frame(engine, w, h, { to: p, timeSec: t, energy: Math.floor(beats) % 2, beatPhase: beats % 1 });
        regions.forEach(([x0, y0, x1, y1], k) => series[k]!.push(luminance(out, w, x0!, y0!, x1!, y1!)));
      }
      const flashes = series.map((s) => maxFlashesPerSecond(s, fps));
      const swing = Math.max(...series[0]!.map((v, i, s) => (i >= 6 ? Math.abs(v - s[i - 6]!) : 0)));
      report.push(`${name}: flashes/s per region ${flashes.join(',')}; largest whole-frame change in 0.1 s ${swing.toFixed(3)}`);
      for (const f of flashes) expect(f, report.join('\n')).to.be.below(3);
    }
    // Shown in the test output so the figure can be quoted.
    this.test!.title += ` [${report.join(' | ')}]`;
  });

  it("the beat's light swell alone moves the whole frame's light by less than 10 %", () => {
    const engine = new VisualEngine(ART);
    const p = neutralVisualParams();
    p.motion = { ...p.motion, drift: 0, pulse: 1 };
    p.intensity = 1;
    p.audioReactivity = 1;
    const lums: number[] = [];
    for (let i = 0; i < 120; i++) {
      const t = i / 60;
      const out = frame(engine, 160, 90, { to: p, timeSec: t, energy: Math.floor(t * 3) % 2, beatPhase: (t * 3) % 1 });
      lums.push(luminance(out, 160, 0, 0, 160, 90));
    }
    expect(Math.max(...lums) - Math.min(...lums)).to.be.below(0.1);
    expect(Math.max(...lums) - Math.min(...lums), 'the pulse is visible').to.be.above(0.005);
  });

  it('mixes params for a fade interrupted by the next prompt: the ends are the params themselves', () => {
    const a = interpretPrompt('calm ocean', { artwork: [], previous: null }).params;
    const b = interpretPrompt('angry glitch', { artwork: [], previous: null }).params;
    expect(mixVisualParams(a, b, 0)).to.deep.equal(a);
    expect(mixVisualParams(a, b, 1)).to.deep.equal(b);
    const mid = mixVisualParams(a, b, 0.5);
    expect(mid.motion.glitch).to.be.closeTo((a.motion.glitch + b.motion.glitch) / 2, 1e-9);
    expect(mid.speed).to.be.within(Math.min(a.speed, b.speed), Math.max(a.speed, b.speed));
  });

  it('refuses bad sizes and buffers clearly', () => {
    const engine = new VisualEngine(ART);
    const p = neutralVisualParams();
    expect(() => engine.renderFrame(new Uint8ClampedArray(10), 16, 16, { from: null, to: p, mix: 1, timeSec: 0, energy: 0, beatPhase: 0 })).to.throw(RangeError, /bytes/);
    expect(() => engine.renderFrame(new Uint8ClampedArray(16), 0, 4, { from: null, to: p, mix: 1, timeSec: 0, energy: 0, beatPhase: 0 })).to.throw(RangeError, /positive/);
    expect(() => new VisualEngine([])).to.throw(RangeError, /at least one/);
  });

  it('survives nonsense inputs (NaN time, energy out of range, unknown artwork ids)', () => {
    const engine = new VisualEngine(ART);
    const p = { ...neutralVisualParams(), artworks: [{ id: 'missing', weight: 1 }] };
    const out = frame(engine, 32, 18, { to: p, timeSec: Number.NaN, energy: 7, beatPhase: -3.2 });
    expect(out.every((v, i) => (i & 3) !== 3 || v === 255)).to.equal(true);
    expect(sha(out)).to.equal(sha(frame(engine, 32, 18, { to: neutralVisualParams(), timeSec: 0, energy: 1, beatPhase: 0.8 })));
  });
});
