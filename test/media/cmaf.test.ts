// The CMAF splitter against what Debian's ffmpeg really writes on a pipe for the
// broadcast (fragmented MP4, empty moov, a fragment per keyframe and per 0.5 s):
// the same chunks however the bytes are sliced, durations that add up to the
// stream's, independence exactly at ffprobe's keyframes, RFC 6381 codecs that
// match ffprobe's profile and level; malformed input is one 'error', never a throw.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { expect } from 'chai';
import { CmafSplitter, MAX_BOX_BYTES, type CmafChunk, type CmafInit } from '../../media/live/cmaf.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

const run = promisify(execFile);

const FRAGMENTED = ['-f', 'mp4', '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000', '-flush_packets', '1'];

/** ffmpeg's output on stdout, as the broadcast encoder reads it. */
async function encode(args: string[]): Promise<Buffer> {
  const { stdout } = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', ...args, ...FRAGMENTED, 'pipe:1'], {
    encoding: 'buffer',
    maxBuffer: 64 * 1024 * 1024,
  });
  return stdout;
}

const AUDIO_IN = ['-f', 'lavfi', '-i', 'sine=frequency=440:sample_rate=48000'];
const VIDEO_IN = ['-f', 'lavfi', '-i', 'testsrc=size=640x360:rate=15'];
const AAC = ['-c:a', 'aac', '-b:a', '128k'];
const H264 = ['-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', '15', '-keyint_min', '15', '-sc_threshold', '0', '-pix_fmt', 'yuv420p'];

interface Split {
  inits: CmafInit[];
  chunks: CmafChunk[];
  errors: Error[];
}

function split(bytes: Buffer, slices: number[] | null = null): Split {
  const out: Split = { inits: [], chunks: [], errors: [] };
  const splitter = new CmafSplitter();
  splitter.on('init', (i) => out.inits.push(i));
  splitter.on('chunk', (c) => out.chunks.push(c));
  splitter.on('error', (e) => out.errors.push(e));
  if (!slices) {
    splitter.push(bytes);
    return out;
  }
  let at = 0;
  for (let i = 0; at < bytes.length; i++) {
    const n = slices[i % slices.length]!;
    splitter.push(bytes.subarray(at, at + n));
    at += n;
  }
  return out;
}

/** Deterministic slice lengths (mulberry32) so a failing seed can be replayed. */
function sliceLengths(seed: number, count: number, max: number): number[] {
  let a = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push(1 + (((t ^ (t >>> 14)) >>> 0) % max));
  }
  return out;
}

async function probe(file: string): Promise<{ streams: { codec_type: string; profile?: string; level?: number; duration?: string }[] }> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,profile,level,duration', '-of', 'json', file]);
  return JSON.parse(stdout);
}

async function keyframeTimes(file: string): Promise<number[]> {
  const { stdout } = await run('ffprobe', ['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=dts_time,flags', '-of', 'csv=p=0', file]);
  return stdout
    .trim()
    .split('\n')
    .map((line) => line.split(','))
    .filter(([, flags]) => flags?.startsWith('K'))
    .map(([dts]) => Number(dts));
}

const H264_PROFILE_IDC: Record<string, number> = { Baseline: 66, 'Constrained Baseline': 66, Main: 77, High: 100 };

describe('CMAF splitter (real ffmpeg fragmented MP4)', function () {
  this.timeout(60_000);
  let work: { path: string; remove(): Promise<void> };
  let av: Buffer;
  let audio: Buffer;
  let mainProfile: Buffer;

  before(async function () {
    requireComponent('ffmpeg', commandExists('ffmpeg') && commandExists('ffprobe'), this);
    work = await tempDir('cmaf');
    [av, audio, mainProfile] = await Promise.all([
      encode([...VIDEO_IN, ...AUDIO_IN, '-t', '3', '-map', '0:v', '-map', '1:a', ...H264, ...AAC]),
      encode([...AUDIO_IN, '-t', '3', ...AAC]),
      encode([...VIDEO_IN, '-t', '2', ...H264, '-profile:v', 'main', '-level:v', '3.0']),
    ]);
    fs.writeFileSync(path.join(work.path, 'av.mp4'), av);
    fs.writeFileSync(path.join(work.path, 'audio.mp4'), audio);
    fs.writeFileSync(path.join(work.path, 'main.mp4'), mainProfile);
  });

  after(async () => {
    await work?.remove();
  });

  it('audio + video: one init with both tracks, chunks whose durations add up to the video stream and follow on', async () => {
    const { inits, chunks, errors } = split(av);
    expect(errors).to.deep.equal([]);
    expect(inits).to.have.length(1);
    const init = inits[0]!;
    expect(init.tracks.map((t) => t.kind).sort()).to.deep.equal(['audio', 'video']);
    expect(init.data.toString('latin1', 4, 8)).to.equal('ftyp');
    expect(chunks.length).to.be.within(5, 8); // 3 s in fragments of about 0.5 s
    for (const c of chunks) {
      expect(c.data.toString('latin1', 4, 8)).to.equal('moof');
      expect(c.durationSec).to.be.within(0.3, 0.7);
    }
    for (let i = 1; i < chunks.length; i++) {
      expect(chunks[i]!.startSec).to.be.closeTo(chunks[i - 1]!.startSec + chunks[i - 1]!.durationSec, 1e-6);
    }
    const info = await probe(path.join(work.path, 'av.mp4'));
    const video = info.streams.find((s) => s.codec_type === 'video')!;
    const total = chunks.reduce((sum, c) => sum + c.durationSec, 0);
    expect(total).to.be.closeTo(Number(video.duration), 0.002);
    // The bytes are the stream: init + chunks is the whole file but for ffmpeg's closing mfra.
    const whole = Buffer.concat([init.data, ...chunks.map((c) => c.data)]);
    expect(av.subarray(0, whole.length).equals(whole)).to.equal(true);
    expect(av.toString('latin1', whole.length + 4, whole.length + 8)).to.equal('mfra');
  });

  it('independent exactly at the keyframes ffprobe sees (GOP 1 s at 15 fps)', async () => {
    const { chunks } = split(av);
    const keys = await keyframeTimes(path.join(work.path, 'av.mp4'));
    expect(keys.length).to.equal(3);
    const independentStarts = chunks.filter((c) => c.independent).map((c) => c.startSec);
    expect(independentStarts).to.have.length(keys.length);
    independentStarts.forEach((t, i) => expect(t).to.be.closeTo(keys[i]!, 0.001));
    // and no chunk that is not independent starts at a keyframe
    for (const c of chunks.filter((c) => !c.independent)) {
      expect(keys.some((k) => Math.abs(k - c.startSec) < 0.001)).to.equal(false);
    }
  });

  it('audio only: one audio track, every chunk independent, durations add up to the stream', async () => {
    const { inits, chunks, errors } = split(audio);
    expect(errors).to.deep.equal([]);
    expect(inits[0]!.tracks).to.deep.equal([{ id: 1, kind: 'audio', timescale: 48000, codec: 'mp4a.40.2' }]);
    expect(chunks.every((c) => c.independent)).to.equal(true);
    const info = await probe(path.join(work.path, 'audio.mp4'));
    const total = chunks.reduce((sum, c) => sum + c.durationSec, 0);
    expect(total).to.be.closeTo(Number(info.streams[0]!.duration), 0.002);
    expect(chunks[0]!.startSec).to.equal(0);
  });

  it('codec strings carry the profile and level ffprobe reports', async () => {
    for (const [file, bytes] of [['av.mp4', av], ['main.mp4', mainProfile]] as const) {
      const info = await probe(path.join(work.path, file));
      const tracks = split(bytes).inits[0]!.tracks;
      const probed = info.streams.find((s) => s.codec_type === 'video')!;
      const codec = tracks.find((t) => t.kind === 'video')!.codec;
      expect(codec).to.match(/^avc1\.[0-9a-f]{6}$/);
      expect(parseInt(codec.slice(5, 7), 16), `${file} profile ${probed.profile}`).to.equal(H264_PROFILE_IDC[probed.profile!]);
      expect(parseInt(codec.slice(9, 11), 16), `${file} level`).to.equal(probed.level);
      const aac = info.streams.find((s) => s.codec_type === 'audio');
      if (aac) {
        expect(aac.profile).to.equal('LC');
        expect(tracks.find((t) => t.kind === 'audio')!.codec).to.equal('mp4a.40.2');
      }
    }
    expect(split(mainProfile).inits[0]!.tracks[0]!.codec.slice(0, 7)).to.equal('avc1.4d');
  });

  it('any slicing of the bytes gives the same init and chunks (seeded, down to single bytes)', () => {
    const whole = split(av);
    const runs: (number[] | null)[] = [[1], [7, 1, 3], ...[1, 2, 3, 4, 5].map((seed) => sliceLengths(seed, 64, 3000)), sliceLengths(99, 16, 40_000)];
    for (const slices of runs) {
      for (const bytes of [av, audio]) {
        const expected = bytes === av ? whole : split(audio);
        const got = split(bytes, slices);
        expect(got.errors).to.deep.equal([]);
        expect(got.inits.map((i) => i.data.toString('hex'))).to.deep.equal(expected.inits.map((i) => i.data.toString('hex')));
        expect(got.chunks.length).to.equal(expected.chunks.length);
        got.chunks.forEach((c, i) => {
          const e = expected.chunks[i]!;
          expect(c.data.equals(e.data)).to.equal(true);
          expect([c.startSec, c.durationSec, c.independent]).to.deep.equal([e.startSec, e.durationSec, e.independent]);
        });
      }
    }
  });

  describe('malformed input: one error, nothing thrown, the rest ignored', () => {
    function feed(...pieces: Buffer[]): Split & { splitter: CmafSplitter } {
      const out: Split = { inits: [], chunks: [], errors: [] };
      const splitter = new CmafSplitter();
      splitter.on('init', (i) => out.inits.push(i));
      splitter.on('chunk', (c) => out.chunks.push(c));
      splitter.on('error', (e) => out.errors.push(e));
      for (const p of pieces) expect(() => splitter.push(p)).not.to.throw();
      return { ...out, splitter };
    }

    function box(type: string, body: Buffer, size = body.length + 8): Buffer {
      const head = Buffer.alloc(8);
      head.writeUInt32BE(size, 0);
      head.write(type, 4, 'latin1');
      return Buffer.concat([head, body]);
    }

    it('garbage', () => {
      const garbage = Buffer.from(sliceLengths(7, 4096, 255));
      const got = feed(garbage, av);
      expect(got.errors).to.have.length(1);
      expect(got.errors[0]!.message).to.match(/box/);
      expect(got.inits).to.deep.equal([]);
      expect(got.chunks).to.deep.equal([]);
    });

    it('a box claiming more than the cap (32-bit and 64-bit sizes) is refused before its bytes are awaited', () => {
      const huge = box('mdat', Buffer.alloc(0), 0xfffffff0);
      const got = feed(huge, Buffer.alloc(1024), av);
      expect(got.errors).to.have.length(1);
      expect(got.errors[0]!.message).to.include(String(MAX_BOX_BYTES));
      const large = Buffer.alloc(16);
      large.writeUInt32BE(1, 0);
      large.write('moof', 4, 'latin1');
      large.writeBigUInt64BE(2n ** 40n, 8);
      const got64 = feed(large);
      expect(got64.errors).to.have.length(1);
      expect(got64.errors[0]!.message).to.include(String(MAX_BOX_BYTES));
    });

    it('sizes that cannot be (0 = to the end, less than the header)', () => {
      expect(feed(box('moof', Buffer.alloc(8), 0)).errors[0]!.message).to.match(/end of the file/);
      expect(feed(box('moof', Buffer.alloc(8), 4)).errors[0]!.message).to.match(/less than its header/);
    });

    it('truncated or overrunning boxes inside the moov and the moof', () => {
      const init = split(av).inits[0]!;
      const ftypLength = init.data.readUInt32BE(0);
      const moov = Buffer.from(init.data.subarray(ftypLength));
      moov.writeUInt32BE(0x7fffff, 8); // the first child (mvhd) now overruns the moov
      const bad = feed(init.data.subarray(0, ftypLength), moov);
      expect(bad.errors).to.have.length(1);
      expect(bad.inits).to.deep.equal([]);

      const chunk = split(av).chunks[0]!;
      const moofLength = chunk.data.readUInt32BE(0);
      const truncated = box('moof', chunk.data.subarray(8, 40)); // a moof cut inside its mfhd/traf
      const got = feed(init.data, truncated, chunk.data.subarray(moofLength));
      expect(got.inits).to.have.length(1);
      expect(got.errors).to.have.length(1);
      expect(got.chunks).to.deep.equal([]);
    });

    it('boxes out of order (mdat without moof, moof before moov, two moofs)', () => {
      const { inits, chunks } = split(av);
      const chunk = chunks[0]!;
      const moofLength = chunk.data.readUInt32BE(0);
      const moof = chunk.data.subarray(0, moofLength);
      const mdat = chunk.data.subarray(moofLength);
      expect(feed(inits[0]!.data, mdat).errors[0]!.message).to.match(/'mdat' without its 'moof'/);
      expect(feed(moof).errors[0]!.message).to.match(/before any 'moov'/);
      expect(feed(inits[0]!.data, moof, moof).errors[0]!.message).to.match(/two 'moof'/);
    });

    it('chunks before the bad box are still emitted, then the error; a listener\'s own exception is not taken for bad input', () => {
      const { inits, chunks } = split(av);
      const got = feed(inits[0]!.data, chunks[0]!.data, Buffer.from('\0\0\0\x04moof....'));
      expect(got.chunks).to.have.length(1);
      expect(got.errors).to.have.length(1);

      const splitter = new CmafSplitter();
      const errors: Error[] = [];
      splitter.on('error', (e) => errors.push(e));
      splitter.on('chunk', () => {
        throw new Error('listener bug');
      });
      splitter.push(inits[0]!.data);
      expect(() => splitter.push(chunks[0]!.data)).to.throw('listener bug');
      expect(errors).to.deep.equal([]);
      expect(splitter.failed).to.equal(null);
    });

    it('with nobody listening for errors, push does not throw and `failed` says why', () => {
      const splitter = new CmafSplitter();
      expect(() => splitter.push(Buffer.from('this is not an mp4 file at all'))).not.to.throw();
      expect(splitter.failed?.message).to.match(/box/);
    });
  });
});
