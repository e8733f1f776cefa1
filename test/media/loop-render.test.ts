// A loop of the visuals is seamless: the step from its last frame back to its
// first is no bigger than the steps between its frames — while the same loop
// rendered without the closing cross-fade visibly jumps (the control).
import fs from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { renderLoop } from '../../media/render/loop-render.ts';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { tempDir } from '../support/temp.ts';

describe('loop renderer (seamless visuals loop, native ffmpeg or @ffmpeg/core)', function () {
  this.timeout(120_000);
  let native: NativeFfmpeg | null;
  let data: { path: string; remove(): Promise<void> };
  let work: { path: string; remove(): Promise<void> };
  let engine: VisualEngine;

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    data = await demoDataDir();
    work = await tempDir('loop-render');
    const layout = new DataLayout(data.path);
    engine = new VisualEngine(engineArtwork(await readVisualPack(path.join(layout.releaseDir(DEMO_RELEASE_ID), 'visual-pack'))));
  });
  after(async () => {
    await work?.remove();
    await data?.remove();
  });

  /** Renders a loop and answers (step back to the start) / (median step between frames), on small grey frames. */
  async function wrapRatio(name: string, fadeSec: number, kind: 'native' | 'wasm'): Promise<number> {
    const p = neutralVisualParams();
    p.artworks = [{ id: engine.artworkIds[0]!, weight: 1 }];
    p.motion = { ...p.motion, drift: 1, rotate: 0.6, zoom: 0.5 };
    p.speed = 2;
    const outputs = { mp4: path.join(work.path, `${name}.mp4`), gif: path.join(work.path, `${name}.gif`) };
    const result = await renderLoop({ ffmpeg: kind === 'native' ? native!.ffmpeg : null, engine, width: 320, height: 180, fps: 30, seconds: 2, fadeSec, frameAt: (t) => ({ from: null, to: p, mix: 1, timeSec: t, energy: 0.5, beatPhase: (t * 2) % 1 }), outputs });
    expect(result.encoder).to.equal(kind);
    // Both outputs in kind: H.264 yuv420p at the loop's size, and a looping GIF (480 wide at most, 15 fps).
    const mp4 = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-of', 'json', outputs.mp4]);
    expect(JSON.parse(mp4.stdout).streams[0]).to.include({ codec_name: 'h264', width: 320, height: 180, pix_fmt: 'yuv420p' });
    const gif = await runCapture(native!.ffprobe!, ['-v', 'error', '-count_frames', '-show_streams', '-of', 'json', outputs.gif]);
    expect(JSON.parse(gif.stdout).streams[0]).to.include({ codec_name: 'gif', width: 320, height: 180, nb_read_frames: '30' });
    expect(fs.readdirSync(work.path).filter((f) => f.endsWith('.part'))).to.deep.equal([]);
    const gray = path.join(work.path, `${name}.gray`);
    const r = await runCapture(native!.ffmpeg, ['-v', 'error', '-i', outputs.mp4, '-vf', 'scale=64:36,format=gray', '-f', 'rawvideo', gray]);
    expect(r.code, r.stderr).to.equal(0);
    const bytes = fs.readFileSync(gray);
    const size = 64 * 36;
    const frames = bytes.length / size;
    expect(frames).to.equal(60);
    const diff = (a: number, b: number) => {
      let d = 0;
      for (let i = 0; i < size; i++) d += Math.abs(bytes[a * size + i]! - bytes[b * size + i]!);
      return d / size;
    };
    const steps = Array.from({ length: frames - 1 }, (_, k) => diff(k, k + 1)).sort((x, y) => x - y);
    const median = steps[Math.floor(steps.length / 2)]!;
    return diff(frames - 1, 0) / Math.max(median, 0.05);
  }

  for (const kind of ['native', 'wasm'] as const) {
    it(`${kind}: closes the loop with a cross-fade: the wrap is an ordinary step, where a cut loop jumps`, async () => {
      const seamless = await wrapRatio(`seamless-${kind}`, 0.5, kind);
      const cut = await wrapRatio(`cut-${kind}`, 0, kind);
      console.log(`        ↳ wrap step / median step: seamless ${seamless.toFixed(2)}, without the cross-fade ${cut.toFixed(2)}`);
      expect(cut, 'the control: a loop without the cross-fade jumps').to.be.greaterThan(4);
      expect(seamless).to.be.lessThan(2.5);
    });
  }

  it('refuses nonsense lengths and sizes', async () => {
    const base = { ffmpeg: native!.ffmpeg, engine, width: 64, height: 36, fps: 10, frameAt: () => ({ from: null, to: neutralVisualParams(), mix: 1, timeSec: 0, energy: 0, beatPhase: 0 }), outputs: { mp4: path.join(work.path, 'x.mp4'), gif: path.join(work.path, 'x.gif') } };
    for (const seconds of [0, 0.5, 16, Number.NaN]) {
      let err: unknown;
      await renderLoop({ ...base, seconds }).catch((e: unknown) => (err = e));
      expect(err, String(seconds)).to.be.instanceOf(RangeError);
    }
    let err: unknown;
    await renderLoop({ ...base, seconds: 2, width: 63 }).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(RangeError);
  });
});
