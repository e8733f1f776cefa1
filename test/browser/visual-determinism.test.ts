// The visual engine draws the same bytes in Node and in real Chromium: the live picture
// a fan sees is the one the renderer puts in the clip. The same frames (the demo's
// artwork and synthetic pictures, several prompts, a cross-fade) are drawn on both sides
// from one bundle of the shared code, and their hashes compared. The prompt frames are
// also saved as browser screenshots under test-output/visuals/ for a person to look at.
import { expect } from 'chai';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { paintDemoArtwork } from '../../media/demo/artwork.ts';
import { buildVisualPack, engineArtwork } from '../../media/visuals/visual-pack.ts';
import type { PromptArtwork } from '../../shared/prompt-interpreter.ts';
import type { EngineArtwork } from '../../shared/visual-engine.ts';
import { chromiumAvailable, launchChromium, type LaunchedBrowser } from '../support/browser.ts';
import { requireComponent } from '../support/components.ts';
import { drawVisualCases } from '../support/visual-cases.ts';
import { VISUAL_CASES } from '../support/visual-fixtures.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SHOTS = path.join(ROOT, 'test-output', 'visuals');

interface BrowserResult {
  name: string;
  hash: string;
}

describe('visual engine in Chromium', function () {
  this.timeout(180000);
  let browser: LaunchedBrowser | null = null;
  let extra: EngineArtwork[] = [];
  let tags: PromptArtwork[] = [];

  before(async function () {
    requireComponent('chromium', chromiumAvailable(), this);
    const art = await paintDemoArtwork();
    const pack = await buildVisualPack(art.map((a) => ({ id: a.id, tags: a.tags, consent: true, bytes: a.png, mimeType: 'image/png' })));
    extra = engineArtwork(pack);
    tags = pack.artwork.map((a) => ({ id: a.id, tags: a.tags, palette: a.palette.map((c) => c.hex) }));
    browser = await launchChromium();
  });

  after(async () => {
    await browser?.close();
  });

  it('draws byte-identical frames to Node for the same inputs, and saves screenshots of the prompts', async () => {
    const bundle = await build({
      stdin: {
        contents: "import { drawVisualCases } from './test/support/visual-cases.ts'; globalThis.drawVisualCases = drawVisualCases;",
        resolveDir: ROOT,
        loader: 'ts',
      },
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2022',
      write: false,
      logLevel: 'silent',
    });
    const script = bundle.outputFiles[0]!.text;

    const page = await browser!.context.newPage();
    try {
      await page.setContent('<!doctype html><html><body style="margin:0;background:#000"></body></html>');
      await page.addScriptTag({ content: script });
      const arts = extra.map((a) => ({ ...a, rgba: Buffer.from(a.rgba).toString('base64') }));
      const inBrowser = await page.evaluate(
        ({ arts, tags }) => {
          const g = globalThis as unknown as {
            drawVisualCases: (extra: unknown[], tags: unknown[]) => { name: string; width: number; height: number; hash: string; pixels: Uint8ClampedArray }[];
          };
          const decoded = arts.map((a) => {
            const bin = atob(a.rgba);
            const bytes = new Uint8Array(bin.length);
            for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
            return { ...a, rgba: bytes };
          });
          const drawn = g.drawVisualCases(decoded, tags);
          for (const d of drawn) {
            const canvas = document.createElement('canvas');
            canvas.id = `case-${d.name}`;
            canvas.width = d.width;
            canvas.height = d.height;
            canvas.style.display = 'block';
            canvas.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(d.pixels), d.width, d.height), 0, 0);
            document.body.appendChild(canvas);
          }
          return drawn.map((d) => ({ name: d.name, hash: d.hash }));
        },
        { arts, tags },
      );
      const inNode = drawVisualCases(extra, tags).map((d) => ({ name: d.name, hash: d.hash }));
      expect(inBrowser as BrowserResult[]).to.deep.equal(inNode);
      expect(new Set(inNode.map((d) => d.hash)).size, 'every case draws a different frame').to.equal(inNode.length);

      await fsp.mkdir(SHOTS, { recursive: true });
      for (const c of VISUAL_CASES) {
        if (!c.prompt) continue;
        await page.locator(`#case-${c.name}`).screenshot({ path: path.join(SHOTS, `${c.name}.png`) });
      }
    } finally {
      await page.close();
    }
  });
});
