// The one pipe of drawn frames to ffmpeg (every render kind's): whatever stops an
// encode half-way — a drawing that throws, an abort, ffmpeg refusing its arguments —
// leaves no ffmpeg running or unreaped and no partial file, and the error says what
// happened (ffmpeg's own words for ffmpeg's failures). Real ffmpeg, real files.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { pipeFrames, RenderError, type FramePipe } from '../../media/render/ffmpeg-pipe.ts';
import { requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

/** Child processes of this process named `comm` that have not been reaped (running or zombie). */
function childrenNamed(comm: string): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (name === comm && ppid === process.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

describe('ffmpeg pipe (frames drawn into ffmpeg, native encoder)', function () {
  this.timeout(60_000);
  let native: NativeFfmpeg | null;
  let work: { path: string; remove(): Promise<void> };

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    work = await tempDir('ffmpeg-pipe');
  });
  after(async () => {
    await work?.remove();
  });

  const pipe = (name: string, over: Partial<FramePipe> = {}): FramePipe => ({
    ffmpeg: native!.ffmpeg,
    width: 64,
    height: 64,
    fps: 10,
    frames: 20,
    args: () => ['-c:v', 'libx264', '-preset', 'ultrafast', '-pix_fmt', 'yuv420p', '-f', 'mp4', '{out0}'],
    outputs: [path.join(work.path, `${name}.mp4`)],
    workDir: work.path,
    draw: (frame, k) => frame.fill(k * 10),
    ...over,
  });
  const leftovers = async (name: string) => (await fsp.readdir(work.path)).filter((f) => f.startsWith(name));

  it('draws every frame once, in order, and the file is whole under its name', async () => {
    const drawn: number[] = [];
    const committed: number[] = [];
    const result = await pipeFrames(pipe('whole', { draw: (frame, k) => (drawn.push(k), frame.fill(k * 10)), onFrame: (k) => committed.push(k) }));
    expect(result.encoder).to.equal('native');
    expect(drawn).to.deep.equal([...Array(20).keys()]);
    expect(committed).to.deep.equal(drawn);
    expect(await leftovers('whole')).to.deep.equal(['whole.mp4']);
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-count_frames', '-show_entries', 'stream=nb_read_frames', '-of', 'csv=p=0', path.join(work.path, 'whole.mp4')]);
    expect(probe.stdout.trim()).to.equal('20');
  });

  it('a drawing that throws half-way: its error, ffmpeg killed and reaped, no partial file', async () => {
    const before = new Set(childrenNamed('ffmpeg'));
    const boom = new Error('the engine broke at frame 7');
    let err: unknown;
    await pipeFrames(
      pipe('thrown', {
        draw: (frame, k) => {
          if (k === 7) throw boom;
          frame.fill(k);
        },
      }),
    ).catch((e: unknown) => (err = e));
    expect(err).to.equal(boom);
    expect(await leftovers('thrown')).to.deep.equal([]);
    expect(childrenNamed('ffmpeg').filter((p) => !before.has(p)), 'ffmpeg still there (running or unreaped)').to.deep.equal([]);
  });

  it('an abort: an AbortError, ffmpeg killed and reaped, no partial file', async () => {
    const before = new Set(childrenNamed('ffmpeg'));
    const controller = new AbortController();
    let err: unknown;
    await pipeFrames(pipe('aborted', { signal: controller.signal, onFrame: (k) => k === 5 && controller.abort() })).catch((e: unknown) => (err = e));
    expect((err as Error).name).to.equal('AbortError');
    expect(await leftovers('aborted')).to.deep.equal([]);
    expect(childrenNamed('ffmpeg').filter((p) => !before.has(p))).to.deep.equal([]);
  });

  it("ffmpeg refusing its arguments: a RenderError with ffmpeg's own words, no partial file", async () => {
    let err: unknown;
    await pipeFrames(pipe('refused', { args: () => ['-c:v', 'libx264', '-preset', 'no-such-preset', '-f', 'mp4', '{out0}'] })).catch((e: unknown) => (err = e));
    expect(err).to.be.instanceOf(RenderError);
    expect((err as Error).message).to.match(/ffmpeg failed/).and.to.match(/preset/i);
    expect(await leftovers('refused')).to.deep.equal([]);
  });

  it('a frame size the encoders cannot take is refused before anything starts', async () => {
    const before = new Set(childrenNamed('ffmpeg'));
    for (const [width, height] of [[63, 64], [64, 8], [0, 0]] as const) {
      let err: unknown;
      await pipeFrames(pipe('size', { width, height })).catch((e: unknown) => (err = e));
      expect(err, `${width}x${height}`).to.be.instanceOf(RangeError);
    }
    expect(await leftovers('size')).to.deep.equal([]);
    expect(childrenNamed('ffmpeg').filter((p) => !before.has(p))).to.deep.equal([]);
  });
});
