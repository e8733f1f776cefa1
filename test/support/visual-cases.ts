// Draws VISUAL_CASES with the shared engine; bundled for the browser and run in Node, so
// that both sides draw exactly the same way. Pure TypeScript.
import { interpretPrompt, type PromptArtwork } from '../../shared/prompt-interpreter.ts';
import { VisualEngine, type EngineArtwork } from '../../shared/visual-engine.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { VISUAL_CASES, aggressiveVisualParams, frameHash, testArtworks } from './visual-fixtures.ts';

export interface DrawnCase {
  name: string;
  width: number;
  height: number;
  hash: string;
  pixels: Uint8ClampedArray;
}

/** `extra` (e.g. the demo's artwork textures) are added to the synthetic pictures. */
export function drawVisualCases(extra: EngineArtwork[], tags: PromptArtwork[]): DrawnCase[] {
  const art = [...extra, ...testArtworks()];
  const engine = new VisualEngine(art);
  const ctx = { artwork: tags, previous: null };
  return VISUAL_CASES.map((c) => {
    const to = c.aggressive ? aggressiveVisualParams() : c.prompt ? interpretPrompt(c.prompt, ctx).params : neutralVisualParams();
    const from = c.fromPrompt ? interpretPrompt(c.fromPrompt, ctx).params : null;
    const pixels = new Uint8ClampedArray(c.width * c.height * 4);
    engine.renderFrame(pixels, c.width, c.height, { from, to, mix: c.mix ?? 1, timeSec: c.timeSec, energy: c.energy, beatPhase: c.beatPhase });
    return { name: c.name, width: c.width, height: c.height, hash: frameHash(pixels), pixels };
  });
}
