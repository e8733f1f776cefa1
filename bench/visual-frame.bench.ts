// `npm run bench -- visual-frame [frames]`: time to draw one 1280x720 frame in Node on one
// core, with aggressive params (every effect on, a blend of three artworks), from the demo
// release's artwork; separately, frames during a prompt cross-fade (two layers drawn).
// The machine's load average is reported with the figures: on a busy machine the median
// and p99 measure the neighbours, and `minMs` is the better guide to the frame's cost.
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { paintDemoArtwork } from '../media/demo/artwork.ts';
import { buildVisualPack, engineArtwork } from '../media/visuals/visual-pack.ts';
import { VisualEngine, crossfadeMix } from '../shared/visual-engine.ts';
import { neutralVisualParams, type VisualParams } from '../shared/visual-params.ts';

const WIDTH = 1280;
const HEIGHT = 720;

export function aggressiveParams(ids: string[]): VisualParams {
  const p = neutralVisualParams();
  p.artworks = ids.slice(0, 3).map((id, i) => ({ id, weight: [0.5, 0.3, 0.2][i]! }));
  p.palette = { hueShiftDeg: 40, saturation: 1.6, brightness: 0.1, contrast: 1.4, warmth: 0.5, hueBands: [{ hueDeg: 0, widthDeg: 60, amount: -1 }] };
  p.motion = { drift: 1, zoom: 1, rotate: 1, pulse: 1, kaleidoscope: 1, segments: 8, ripple: 1, glitch: 1 };
  p.texture = { grain: 1, blur: 0.3 };
  p.speed = 3;
  p.intensity = 1;
  p.audioReactivity = 1;
  return p;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const frames = Math.max(10, Number(args[0] ?? 300) || 300);
  const art = await paintDemoArtwork();
  const pack = await buildVisualPack(art.map((a) => ({ id: a.id, tags: a.tags, consent: true, bytes: a.png, mimeType: 'image/png' as const })));
  const engine = new VisualEngine(engineArtwork(pack));
  const ids = engine.artworkIds;
  const to = aggressiveParams(ids);
  const from = neutralVisualParams();
  from.artworks = [{ id: ids[1]!, weight: 1 }];
  const out = new Uint8ClampedArray(WIDTH * HEIGHT * 4);
  const fps = 30;
  // Warm up (JIT, composites, tables).
  for (let i = 0; i < 30; i++) engine.renderFrame(out, WIDTH, HEIGHT, { from: null, to, mix: 1, timeSec: i / fps, energy: 0.5, beatPhase: 0 });
  const times: number[] = [];
  const crossfadeTimes: number[] = [];
  const cpuStart = process.cpuUsage();
  for (let i = 0; i < frames; i++) {
    const t = i / fps;
    const start = performance.now();
    engine.renderFrame(out, WIDTH, HEIGHT, { from: null, to, mix: 1, timeSec: t, energy: (i % 16) / 15, beatPhase: (t * 2) % 1 });
    times.push(performance.now() - start);
  }
  const cpu = process.cpuUsage(cpuStart);
  for (let i = 0; i < Math.min(frames, 60); i++) {
    const t = i / fps;
    const start = performance.now();
    engine.renderFrame(out, WIDTH, HEIGHT, { from, to, mix: crossfadeMix(t), timeSec: t, energy: 0.5, beatPhase: (t * 2) % 1 });
    crossfadeTimes.push(performance.now() - start);
  }
  const q = (xs: number[], f: number) => {
    const s = [...xs].sort((a, b) => a - b);
    return Math.round(s[Math.min(s.length - 1, Math.floor(f * s.length))]! * 1000) / 1000;
  };
  return {
    width: WIDTH,
    height: HEIGHT,
    frames,
    internalScale: 2,
    medianMs: q(times, 0.5),
    p99Ms: q(times, 0.99),
    // The fastest frame: what a frame costs when nothing else competes for the core.
    minMs: q(times, 0),
    cpuMsPerFrame: Math.round(((cpu.user + cpu.system) / 1000 / frames) * 1000) / 1000,
    loadAverage1m: Math.round(os.loadavg()[0]! * 100) / 100,
    cores: os.availableParallelism(),
    crossfadeMedianMs: q(crossfadeTimes, 0.5),
    crossfadeP99Ms: q(crossfadeTimes, 0.99),
    crossfadeMinMs: q(crossfadeTimes, 0),
  };
}
