// The encoder's temporary outputs: each encode writes under a name of its own, so that an
// encode run again (a renderer killed mid-job whose ffmpeg still runs, the job taken up
// again) never writes into the same file as another; the last to finish wins, whole.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { nativeEncoder, type EncodeSession } from '../../media/render/encoder.ts';
import { requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

describe('encoder: temporary outputs', function () {
  this.timeout(60_000);
  let native: NativeFfmpeg | null;
  let work: { path: string; remove(): Promise<void> };

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    work = await tempDir('encoder');
  });
  after(async () => {
    await work?.remove();
  });

  async function feed(session: EncodeSession, frames: number, shade: number): Promise<void> {
    for (let f = 0; f < frames; f++) {
      const frame = await session.nextFrame();
      frame.fill(shade);
      session.commitFrame();
    }
  }

  it('two encodes of the same output at once each write their own file, and both end whole', async () => {
    const out = path.join(work.path, 'same.mp4');
    const job = { width: 64, height: 64, fps: 10, frames: 20, args: ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'mp4', '{out0}'], outputs: [out], workDir: work.path };
    const encoder = nativeEncoder(native!.ffmpeg);
    const a = encoder.start(job);
    const b = encoder.start(job);
    await Promise.all([feed(a, 20, 40), feed(b, 20, 200)]);
    await Promise.all([a.finish(), b.finish()]);
    expect((await fsp.readdir(work.path)).filter((f) => f.endsWith('.part'))).to.deep.equal([]);
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-count_frames', '-select_streams', 'v:0', '-show_entries', 'stream=nb_read_frames,width', '-of', 'json', out]);
    expect(probe.code, probe.stderr).to.equal(0);
    expect(JSON.parse(probe.stdout).streams[0]).to.include({ width: 64, nb_read_frames: '20' });
  });
});
