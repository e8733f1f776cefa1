// The visual engine's yuv420p frames (what the clip and loop renderers hand to ffmpeg):
// the same picture as its RGBA frames, in the colours ffmpeg's own RGBA→yuv420p
// conversion gives (BT.601, limited range), and the RGBA path itself unchanged.
import crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { findNativeFfmpeg, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { VisualEngine, rgbaToYuv420, yuv420Bytes, type FrameInput } from '../../shared/visual-engine.ts';
import { neutralVisualParams, type VisualParams } from '../../shared/visual-params.ts';
import { requireComponent } from '../support/components.ts';
import { aggressiveVisualParams, testArtworks } from '../support/visual-fixtures.ts';

function stormParams(): VisualParams {
  const p = neutralVisualParams();
  p.motion.ripple = 1;
  p.motion.drift = 0.15;
  p.motion.glitch = 0.35;
  p.palette.saturation = 1.4;
  return p;
}

const CASES: { name: string; w: number; h: number; input: FrameInput }[] = [
  { name: 'neutral 1280x720', w: 1280, h: 720, input: { from: null, to: neutralVisualParams(), mix: 1, timeSec: 2.5, energy: 0.3, beatPhase: 0.2 } },
  { name: 'ripple+glitch 640x360', w: 640, h: 360, input: { from: null, to: stormParams(), mix: 1, timeSec: 7.3, energy: 0.7, beatPhase: 0.6 } },
  { name: 'aggressive fading in 321x177', w: 321, h: 177, input: { from: stormParams(), to: aggressiveVisualParams(), mix: 0.4, timeSec: 11.1, energy: 0.9, beatPhase: 0 } },
];

function rgba(engine: VisualEngine, w: number, h: number, input: FrameInput): Uint8ClampedArray {
  const out = new Uint8ClampedArray(w * h * 4);
  engine.renderFrame(out, w, h, input);
  return out;
}

function yuv(engine: VisualEngine, w: number, h: number, input: FrameInput): Uint8Array {
  const out = new Uint8Array(yuv420Bytes(w, h));
  engine.renderFrameYuv420(out, w, h, input);
  return out;
}

describe('visual engine: yuv420p frames', () => {
  it('the RGBA frames are the bytes they were before the yuv420p path (golden hashes)', () => {
    // Hashes of the engine's RGBA output taken before renderFrameYuv420 and the row fast path existed.
    const golden: Record<string, string> = {
      'neutral 1280x720': '488211c8242b245d8cc63b2949b97ec7f6c37be060a5a79056257db1b799010f',
      'ripple+glitch 640x360': 'db66a4003cf1db3bc1f4388bf44aa923199d30fc0341e51e6d2079f665e32589',
      'aggressive fading in 321x177': '170ee05b02eb531a51d3365f33896ec1dbe4c67d28288da95fb9e103ed179d63',
    };
    const engine = new VisualEngine(testArtworks());
    for (const c of CASES) {
      expect(crypto.createHash('sha256').update(rgba(engine, c.w, c.h, c.input)).digest('hex'), c.name).to.equal(golden[c.name]);
    }
  });

  it('is exactly the RGBA frame converted, at the default scale and at odd sizes and other scales', () => {
    // Besides CASES: every effect on (kaleidoscope, grain: rows converted after drawing) and an even-sized cross-fade.
    const more: typeof CASES = [
      { name: 'aggressive 320x180', w: 320, h: 180, input: { from: null, to: aggressiveVisualParams(), mix: 1, timeSec: 4.2, energy: 0.5, beatPhase: 0.1 } },
      { name: 'cross-fade 320x180', w: 320, h: 180, input: { from: neutralVisualParams(), to: stormParams(), mix: 0.7, timeSec: 9, energy: 0.2, beatPhase: 0.9 } },
      { name: 'all "from" 320x180', w: 320, h: 180, input: { from: stormParams(), to: neutralVisualParams(), mix: 0, timeSec: 9, energy: 0.2, beatPhase: 0.9 } },
    ];
    for (const scale of [2, 1, 3]) {
      const engine = new VisualEngine(testArtworks(), { internalScale: scale });
      for (const c of [...CASES, ...more]) {
        const expected = new Uint8Array(yuv420Bytes(c.w, c.h));
        rgbaToYuv420(rgba(engine, c.w, c.h, c.input), c.w, c.h, expected);
        const got = yuv(engine, c.w, c.h, c.input);
        expect(Buffer.compare(got, expected), `${c.name} at scale ${scale}`).to.equal(0);
      }
    }
  });

  it('draws into a view at any offset, and refuses a buffer too small', () => {
    const engine = new VisualEngine(testArtworks());
    const c = CASES[1]!;
    const n = yuv420Bytes(c.w, c.h);
    const backing = new Uint8ClampedArray(n + 1);
    const odd = new Uint8ClampedArray(backing.buffer, 1, n); // not 2-byte aligned
    engine.renderFrameYuv420(odd, c.w, c.h, c.input);
    expect(Buffer.compare(new Uint8Array(odd.buffer, odd.byteOffset, n), yuv(engine, c.w, c.h, c.input))).to.equal(0);
    expect(() => engine.renderFrameYuv420(new Uint8Array(n - 1), c.w, c.h, c.input)).to.throw(RangeError, /bytes/);
  });

  describe('against ffmpeg', function () {
    this.timeout(60_000);
    let native: NativeFfmpeg | null;
    before(async function () {
      native = await findNativeFfmpeg();
      requireComponent('ffmpeg', native !== null, this);
    });

    function ffmpegConvert(px: Uint8ClampedArray, w: number, h: number, pixFmt: 'yuv420p' | 'yuv444p'): Buffer {
      const r = spawnSync(native!.ffmpeg, ['-v', 'error', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-s', `${w}x${h}`, '-i', '-', '-f', 'rawvideo', '-pix_fmt', pixFmt, '-'], { input: px, maxBuffer: 64 << 20 });
      expect(r.status, String(r.stderr)).to.equal(0);
      return r.stdout;
    }

    for (const c of CASES.filter((x) => x.w % 2 === 0 && x.h % 2 === 0)) {
      it(`${c.name}: luma within ±1 of ffmpeg's yuv420p everywhere, each block's chroma within ±1 of ffmpeg's per-pixel conversion`, () => {
        const engine = new VisualEngine(testArtworks());
        const { w, h } = c;
        const px = rgba(engine, w, h, c.input);
        const ours = yuv(engine, w, h, c.input);
        const ff420 = ffmpegConvert(px, w, h, 'yuv420p');
        expect(ff420.length).to.equal(ours.length);
        let lumaMax = 0;
        for (let i = 0; i < w * h; i++) lumaMax = Math.max(lumaMax, Math.abs(ours[i]! - ff420[i]!));
        expect(lumaMax, 'largest luma difference').to.be.at.most(1);
        // Chroma: against ffmpeg's conversion without subsampling (yuv444p) at each 2x2 block, whose
        // four pixels are one internal pixel: the same colour matrix, so ±1 (rounding) everywhere.
        const ff444 = ffmpegConvert(px, w, h, 'yuv444p');
        const cw = w / 2;
        const ch = h / 2;
        let chromaMax = 0;
        for (let plane = 1; plane <= 2; plane++) {
          for (let cy = 0; cy < ch; cy++) {
            for (let cx = 0; cx < cw; cx++) {
              const o = ours[w * h + (plane - 1) * cw * ch + cy * cw + cx]!;
              const f = ff444[plane * w * h + 2 * cy * w + 2 * cx]!;
              chromaMax = Math.max(chromaMax, Math.abs(o - f));
            }
          }
        }
        expect(chromaMax, 'largest chroma difference from the per-pixel conversion').to.be.at.most(1);
        // And against ffmpeg's yuv420p chroma, which its scaler filters across neighbouring blocks
        // (ours is each block's own colour): close everywhere, within ±2 nearly everywhere.
        let sum = 0;
        let within2 = 0;
        const n = 2 * cw * ch;
        for (let i = w * h; i < ours.length; i++) {
          const d = Math.abs(ours[i]! - ff420[i]!);
          sum += d;
          if (d <= 2) within2++;
        }
        expect(sum / n, 'mean chroma difference from ffmpeg yuv420p').to.be.lessThan(0.5);
        expect(within2 / n, 'share of chroma samples within ±2 of ffmpeg yuv420p').to.be.greaterThan(0.99);
      });
    }
  });
});
