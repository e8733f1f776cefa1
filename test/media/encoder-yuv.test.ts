// Both encoders take yuv420p frames: what goes in comes out (H.264 lossless, decoded again).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { expect } from 'chai';
import { findNativeFfmpeg, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { frameBytes, nativeEncoder, wasmCoreDir, wasmEncoder, type FrameEncoder } from '../../media/render/encoder.ts';
import { requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

describe('encoder: yuv420p frames', function () {
  this.timeout(60_000);
  let native: NativeFfmpeg | null;
  let work: { path: string; remove(): Promise<void> };

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null, this);
    work = await tempDir('encoder-yuv');
  });
  after(async () => {
    await work?.remove();
  });

  const W = 96;
  const H = 64;
  const FRAMES = 12;
  /** A frame with a different pattern in each plane and per frame. */
  function pattern(f: number, out: Uint8Array | Uint8ClampedArray): void {
    for (let i = 0; i < W * H; i++) out[i] = 16 + ((i % W) * 2 + Math.floor(i / W) + f * 7) % 200;
    const c = (W / 2) * (H / 2);
    for (let i = 0; i < c; i++) {
      out[W * H + i] = 40 + ((i * 3 + f * 11) % 160);
      out[W * H + c + i] = 200 - ((i + f * 5) % 150);
    }
  }

  for (const kind of ['native', 'wasm'] as const) {
    it(`${kind}: encodes the frames as given (lossless H.264 decodes to the same bytes)`, async function () {
      // @ffmpeg/core is an npm dependency: missing only from a broken install, which fails under CI=true.
      if (kind === 'wasm') requireComponent('@ffmpeg/core (npm ci)', wasmCoreDir() !== null, this);
      const encoder: FrameEncoder = kind === 'native' ? nativeEncoder(native!.ffmpeg) : wasmEncoder();
      const out = path.join(work.path, `${kind}.mkv`);
      const session = encoder.start({
        width: W,
        height: H,
        fps: 10,
        pixelFormat: 'yuv420p',
        frames: FRAMES,
        args: ['-c:v', 'libx264', '-preset', 'ultrafast', '-qp', '0', '-pix_fmt', 'yuv420p', '-f', 'matroska', '{out0}'],
        outputs: [out],
        workDir: work.path,
      });
      const sent: Buffer[] = [];
      for (let f = 0; f < FRAMES; f++) {
        const frame = await session.nextFrame();
        expect(frame.length).to.equal(frameBytes('yuv420p', W, H));
        pattern(f, frame);
        sent.push(Buffer.from(frame));
        session.commitFrame();
      }
      await session.finish();
      const decoded = spawnSync(native!.ffmpeg, ['-v', 'error', '-i', out, '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-'], { maxBuffer: 16 << 20 });
      expect(decoded.status, String(decoded.stderr)).to.equal(0);
      expect(Buffer.compare(decoded.stdout, Buffer.concat(sent))).to.equal(0);
      expect((await fsp.readdir(work.path)).filter((f) => f.endsWith('.part'))).to.deep.equal([]);
    });
  }
});
