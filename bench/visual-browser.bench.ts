// `npm run bench -- visual-browser [--seconds=10] [--params=aggressive|neutral]`
//
// Frames per second the visual engine draws in headless Chromium (Debian's,
// software rendering, --disable-gpu) at 1280x720: the shared engine bundled
// for the browser, drawing into a canvas on requestAnimationFrame from the
// demo release's visual pack, as the web app draws the live visuals. Each frame
// is drawn and put on the canvas; `fps` is frames drawn per second of wall time
// over the measured window, with the frame-time median and p99 beside it.
// The machine's load average is reported: on a shared 2-core machine the
// browser competes with everything else.
import os from 'node:os';
import { build } from 'esbuild';
import { paintDemoArtwork } from '../media/demo/artwork.ts';
import { buildVisualPack, engineArtwork } from '../media/visuals/visual-pack.ts';
import { neutralVisualParams } from '../shared/visual-params.ts';
import { launchChromium } from '../test/support/browser.ts';
import { aggressiveParams } from './visual-frame.bench.ts';
import { intArg, parseArgs, round } from './support/proc.ts';

const GOAL_FPS = 60;

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['seconds', 'params']);
  const seconds = intArg(args, 'seconds', 10, 2, 120);
  const which = args.get('params') ?? 'aggressive';
  if (which !== 'aggressive' && which !== 'neutral') throw new Error('--params must be aggressive or neutral');
  const art = await paintDemoArtwork();
  const pack = await buildVisualPack(art.map((a) => ({ id: a.id, tags: a.tags, consent: true, bytes: a.png, mimeType: 'image/png' as const })));
  const artwork = engineArtwork(pack);
  const ids = artwork.map((a) => a.id);
  const params = which === 'aggressive' ? aggressiveParams(ids) : { ...neutralVisualParams(), artworks: [{ id: ids[0]!, weight: 1 }] };
  const bundle = await build({
    stdin: { contents: "import { VisualEngine } from './shared/visual-engine.ts'; globalThis.VisualEngine = VisualEngine;", resolveDir: process.cwd(), loader: 'ts' },
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.setViewportSize({ width: 1280, height: 720 });
    await page.setContent('<!doctype html><html><body style="margin:0;background:#000"><canvas id="c" width="1280" height="720"></canvas></body></html>');
    await page.addScriptTag({ content: bundle.outputFiles[0]!.text });
    const arts = artwork.map((a) => ({ ...a, rgba: Buffer.from(a.rgba).toString('base64') }));
    const result = await page.evaluate(
      async ({ arts, params, seconds }) => {
        const g = globalThis as unknown as { VisualEngine: new (a: unknown[]) => { renderFrame(out: Uint8ClampedArray, w: number, h: number, input: unknown): void } };
        const decoded = arts.map((a) => {
          const bin = atob(a.rgba);
          const bytes = new Uint8Array(bin.length);
          for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
          return { ...a, rgba: bytes };
        });
        const engine = new g.VisualEngine(decoded);
        const canvas = document.getElementById('c') as HTMLCanvasElement;
        const ctx = canvas.getContext('2d')!;
        const image = ctx.createImageData(1280, 720);
        const times: number[] = [];
        const warmupMs = 1500;
        return new Promise<{ frames: number; wallMs: number; times: number[] }>((resolve) => {
          const start = performance.now();
          let measuredFrom = 0;
          let frames = 0;
          const tick = (now: number) => {
            const t0 = performance.now();
            const tSec = (now - start) / 1000;
            engine.renderFrame(image.data, 1280, 720, { from: null, to: params, mix: 1, timeSec: tSec, energy: 0.5 + 0.5 * Math.sin(tSec * 4), beatPhase: (tSec * 2) % 1 });
            ctx.putImageData(image, 0, 0);
            const elapsed = now - start;
            if (elapsed >= warmupMs) {
              if (measuredFrom === 0) measuredFrom = now;
              frames++;
              times.push(performance.now() - t0);
            }
            if (elapsed < warmupMs + seconds * 1000) requestAnimationFrame(tick);
            else resolve({ frames, wallMs: now - measuredFrom, times });
          };
          requestAnimationFrame(tick);
        });
      },
      { arts, params, seconds },
    );
    const sorted = [...result.times].sort((a, b) => a - b);
    const q = (f: number) => round(sorted[Math.min(sorted.length - 1, Math.floor(f * sorted.length))] ?? 0);
    const fps = round((result.frames / result.wallMs) * 1000, 1);
    return {
      bench: 'visual-browser',
      fps,
      width: 1280,
      height: 720,
      params: which,
      frames: result.frames,
      frameMs: { median: q(0.5), p99: q(0.99) },
      browser: 'Debian chromium, headless, --disable-gpu',
      loadAverage: os.loadavg().map((x) => round(x)),
      goalFps: GOAL_FPS,
      goalMet: fps >= GOAL_FPS * 0.97,
    };
  } finally {
    await browser.close();
  }
}
