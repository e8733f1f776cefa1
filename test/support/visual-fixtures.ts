// Pictures and params shared by the visual engine's tests (Node and the browser bundle).
// Pure TypeScript, so that test/browser/visual-determinism.test.ts can bundle it.
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import { neutralVisualParams, type VisualParams } from '../../shared/visual-params.ts';

/** A deterministic test picture: a warm/cool gradient with a red disc, a green bar and a dark corner. */
export function testArtwork(id: string, size = 512, twist = 0): EngineArtwork {
  const rgba = new Uint8Array(size * size * 4);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const o = (y * size + x) * 4;
      let r = (x * 255) / size;
      let g = 80 + twist;
      let b = (y * 255) / size;
      const dx = x - size * 0.35;
      const dy = y - size * 0.4;
      if (dx * dx + dy * dy < (size * 0.18) ** 2) [r, g, b] = [230, 30, 40];
      if (x > size * 0.6 && x < size * 0.75) [r, g, b] = [40, 200, 70];
      if (x < size * 0.2 && y > size * 0.8) [r, g, b] = [10, 10, 20];
      rgba[o] = r;
      rgba[o + 1] = g;
      rgba[o + 2] = b;
      rgba[o + 3] = 255;
    }
  }
  return { id, width: size, height: size, rgba };
}

export const testArtworks = (): EngineArtwork[] => [testArtwork('one'), testArtwork('two', 256, 90), testArtwork('three', 300, 160)];

/** Every effect at full, three artworks blended, red taken away. */
export function aggressiveVisualParams(): VisualParams {
  const p = neutralVisualParams();
  p.artworks = [
    { id: 'one', weight: 0.5 },
    { id: 'two', weight: 0.3 },
    { id: 'three', weight: 0.2 },
  ];
  p.palette = { hueShiftDeg: 60, saturation: 2, brightness: 0.2, contrast: 1.8, warmth: 1, hueBands: [{ hueDeg: 0, widthDeg: 60, amount: -1 }] };
  p.motion = { drift: 1, zoom: 1, rotate: 1, pulse: 1, kaleidoscope: 1, segments: 8, ripple: 1, glitch: 1 };
  p.texture = { grain: 1, blur: 0.5 };
  p.speed = 3;
  p.intensity = 1;
  p.audioReactivity = 1;
  return p;
}


/** A 64-bit hash (two FNV-1a variants) of a frame, computed the same way in Node and the browser. */
export function frameHash(px: Uint8ClampedArray): string {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ 0x9e3779b9;
  for (let i = 0; i < px.length; i++) {
    a = Math.imul(a ^ px[i]!, 0x01000193);
    b = Math.imul(b ^ px[i]!, 0x5bd1e995) ^ (b >>> 15);
  }
  return (a >>> 0).toString(16).padStart(8, '0') + (b >>> 0).toString(16).padStart(8, '0');
}

export interface VisualCase {
  name: string;
  width: number;
  height: number;
  prompt: string | null;
  /** A prompt faded from, and how far the fade is. */
  fromPrompt?: string;
  mix?: number;
  timeSec: number;
  energy: number;
  beatPhase: number;
  aggressive?: boolean;
}

/** The frames compared between Node and Chromium; the ones with a prompt are also saved as screenshots. */
export const VISUAL_CASES: VisualCase[] = [
  { name: 'neutral', width: 320, height: 180, prompt: null, timeSec: 0, energy: 0, beatPhase: 0 },
  { name: 'aggressive-t0', width: 320, height: 180, prompt: null, aggressive: true, timeSec: 0.5, energy: 0.9, beatPhase: 0.1 },
  { name: 'aggressive-t77', width: 321, height: 181, prompt: null, aggressive: true, timeSec: 77.77, energy: 0.3, beatPhase: 0.6 },
  { name: 'stormy', width: 640, height: 360, prompt: 'stormy', timeSec: 3.25, energy: 0.6, beatPhase: 0.25 },
  { name: 'calm-ocean', width: 640, height: 360, prompt: 'very calm ocean', timeSec: 12, energy: 0.2, beatPhase: 0.5 },
  { name: 'kaleidoscope-neon', width: 640, height: 360, prompt: 'kaleidoscope neon', timeSec: 8.5, energy: 0.8, beatPhase: 0 },
  { name: 'fire-no-red', width: 640, height: 360, prompt: 'fire, no red, grainy', timeSec: 5, energy: 0.5, beatPhase: 0.75 },
  { name: 'glitchy-night', width: 640, height: 360, prompt: 'glitchy night stars', timeSec: 21.3, energy: 1, beatPhase: 0.05 },
  { name: 'fade-dreamy-to-euphoric', width: 640, height: 360, prompt: 'euphoric party', fromPrompt: 'dreamy flowers', mix: 0.4, timeSec: 9, energy: 0.7, beatPhase: 0.3 },
];
