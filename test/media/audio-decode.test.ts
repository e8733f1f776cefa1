import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { AudioDecodeError, decodeStem, sniffContainer } from '../../media/audio/decode.ts';
import type { DecodedStem } from '../../media/audio/decode.ts';
import { findNativeFfmpeg, parseFfmpegBanner, parseFfprobeJson } from '../../media/audio/ffmpeg.ts';
import type { NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { Resampler, resampleInterleaved, resampledFrameCount } from '../../media/audio/resample.ts';
import { writeWavFloat32 } from '../../media/audio/wav.ts';
import {
  bestAlignment, channel, correlationAt, db, encodeWav, logSweep, musicLike, peakFrequency, rms, sine, spectrum, zeroCrossingFrequency,
} from '../support/audio-fixtures.ts';
import { requireComponent } from '../support/components.ts';
import { tempDir } from '../support/temp.ts';

const run = promisify(execFile);

async function refusal(file: string, opts: Parameters<typeof decodeStem>[1]): Promise<AudioDecodeError> {
  try {
    await decodeStem(file, opts);
  } catch (e) {
    expect(e, String(e)).to.be.instanceOf(AudioDecodeError);
    return e as AudioDecodeError;
  }
  throw new Error(`expected ${path.basename(file)} to be refused`);
}

function left(stem: DecodedStem): Float32Array {
  return channel(stem.interleaved, 2, 0);
}

/** Largest spectral magnitude above `fromHz` in any block, relative to `reference`. */
function worstAboveDb(x: Float32Array, sampleRate: number, fromHz: number, reference: number): number {
  const n = 8192;
  let worst = 0;
  for (let from = 0; from + n <= x.length; from += n / 2) {
    const mag = spectrum(x, from, n);
    for (let k = Math.ceil((fromHz * n) / sampleRate); k < mag.length; k++) worst = Math.max(worst, mag[k] as number);
  }
  return db(worst / reference);
}

describe('sniffContainer: the container by its bytes', () => {
  const wav = encodeWav({ sampleRate: 48000, channels: 1, samples: new Float32Array(16), encoding: 'int16' });
  // MPEG-1 Layer III, 128 kbps, 44.1 kHz, no padding: frames of 417 bytes.
  const mpegFrame = (n: number) => {
    const b = new Uint8Array(417 * n);
    for (let i = 0; i < n; i++) b.set([0xff, 0xfb, 0x90, 0x64], i * 417);
    return b;
  };

  it('recognises RIFF/WAVE, fLaC, an ID3 tag and a bare MPEG frame sync', () => {
    expect(sniffContainer(wav)).to.equal('wav');
    expect(sniffContainer(new TextEncoder().encode('fLaC\0\0\0\x22'))).to.equal('flac');
    expect(sniffContainer(new Uint8Array([0x49, 0x44, 0x33, 3, 0, 0, 0, 0, 0, 0, 0xff, 0xfb]))).to.equal('mp3');
    expect(sniffContainer(mpegFrame(3))).to.equal('mp3');
  });

  it('recognises FLAC behind an ID3 tag', () => {
    const head = new Uint8Array([0x49, 0x44, 0x33, 3, 0, 0, 0, 0, 0, 2, 0, 0, 0x66, 0x4c, 0x61, 0x43]);
    expect(sniffContainer(head)).to.equal('flac');
  });

  it('rejects what only looks like a frame sync: AAC ADTS, a sync whose next frame is missing, text, Ogg, RIFF AVI', () => {
    expect(sniffContainer(new Uint8Array([0xff, 0xf1, 0x50, 0x80, 0, 0, 0]))).to.equal(null);
    const broken = mpegFrame(2);
    broken[417] = 0x00;
    expect(sniffContainer(broken)).to.equal(null);
    expect(sniffContainer(new TextEncoder().encode('hello, I am a text file'))).to.equal(null);
    expect(sniffContainer(new TextEncoder().encode('OggS\0\x02'))).to.equal(null);
    const avi = wav.slice();
    avi.set([0x41, 0x56, 0x49, 0x20], 8);
    expect(sniffContainer(avi)).to.equal(null);
  });
});

describe('resampler (media/audio/resample.ts)', () => {
  it('keeps the frequency and level of a 1 kHz sine resampled from 44.1 to 48 kHz', () => {
    const out = resampleInterleaved(sine(1000, 44100, 2, 0.5, 1), 1, 44100, 48000);
    expect(out.length).to.equal(96000);
    const f = zeroCrossingFrequency(out, 48000, 1000, out.length - 1000);
    expect(Math.abs(f - 1000)).to.be.below(0.01);
    const levelDb = db(rms(out, 1000, out.length - 1000) / (0.5 / Math.SQRT2));
    expect(Math.abs(levelDb)).to.be.below(0.01);
  });

  it('keeps a 20 kHz tone at 44.1 kHz at its frequency and within 0.1 dB', () => {
    const out = resampleInterleaved(sine(20000, 44100, 1, 0.5, 1), 1, 44100, 48000);
    expect(Math.abs(peakFrequency(out, 48000, 4096, 32768) - 20000)).to.be.below(0.5);
    expect(Math.abs(db(rms(out, 2000, out.length - 2000) / (0.5 / Math.SQRT2)))).to.be.below(0.1);
  });

  it('adds no delay: each output sample is the band-limited input at the same instant', () => {
    const out = resampleInterleaved(sine(1000, 44100, 1, 0.5, 1), 1, 44100, 48000);
    let worst = 0;
    for (let n = 500; n < out.length - 500; n++) worst = Math.max(worst, Math.abs((out[n] as number) - 0.5 * Math.sin((2 * Math.PI * 1000 * n) / 48000)));
    expect(worst).to.be.below(1e-4);
  });

  it('leaves no images or aliases above 22.05 kHz when a 44.1 kHz sweep to Nyquist is resampled (< -90 dB)', () => {
    const sweep = logSweep(20, 22050, 44100, 6, 0.9);
    const out = resampleInterleaved(sweep, 1, 44100, 48000);
    expect(worstAboveDb(out, 48000, 22200, 0.9)).to.be.below(-90);
  });

  it('removes, rather than folds, tones above 24 kHz when downsampling 96 kHz to 48 kHz (< -90 dB)', () => {
    for (const hz of [24500, 30000, 40000]) {
      const out = resampleInterleaved(sine(hz, 96000, 0.5, 0.9, 1), 1, 96000, 48000);
      expect(db(rms(out, 500, out.length - 500) / (0.9 / Math.SQRT2)), `${hz} Hz`).to.be.below(-90);
    }
  });

  it('handles an uncommon ratio (44056 Hz) through its interpolated table with the same accuracy', () => {
    const r = new Resampler(44056, 48000, 1);
    expect(r.design.exact).to.equal(false);
    const out = resampleInterleaved(sine(1000, 44056, 2, 0.5, 1), 1, 44056, 48000);
    expect(Math.abs(zeroCrossingFrequency(out, 48000, 1000, out.length - 1000) - 1000)).to.be.below(0.01);
    expect(Math.abs(db(rms(out, 1000, out.length - 1000) / (0.5 / Math.SQRT2)))).to.be.below(0.01);
    expect(worstAboveDb(resampleInterleaved(logSweep(20, 22000, 44056, 3, 0.9), 1, 44056, 48000), 48000, 22200, 0.9)).to.be.below(-90);
  });

  it('gives identical output whether fed in odd-sized blocks or all at once, with ceil(frames × out / in) frames', () => {
    const input = musicLike(44100, 1, 2);
    const whole = resampleInterleaved(input, 2, 44100, 48000);
    const r = new Resampler(44100, 48000, 2);
    const parts: Float32Array[] = [];
    for (let i = 0; i < input.length; i += 2 * 997) parts.push(r.process(input.subarray(i, i + 2 * 997)));
    parts.push(r.flush());
    const chunked = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) {
      chunked.set(p, at);
      at += p.length;
    }
    expect(chunked.length).to.equal(whole.length);
    expect(whole.length / 2).to.equal(resampledFrameCount(44100, 44100, 48000));
    expect(Buffer.from(chunked.buffer).equals(Buffer.from(whole.buffer))).to.equal(true);
  });
});

describe('decodeStem with the built-in decoders (no ffmpeg)', () => {
  let dir: { path: string; remove(): Promise<void> };
  const write = async (name: string, bytes: Uint8Array | string) => {
    const file = path.join(dir.path, name);
    await fsp.writeFile(file, bytes);
    return file;
  };
  before(async () => {
    dir = await tempDir('decode-builtin');
  });
  after(async () => {
    await dir.remove();
  });

  it('decodes a 48 kHz stereo int24 WAV without resampling, to the samples written', async () => {
    const samples = musicLike(48000, 2, 2);
    const stem = await decodeStem(await write('a.wav', encodeWav({ sampleRate: 48000, channels: 2, samples, encoding: 'int24' })), { ffmpeg: null });
    expect(stem).to.include({ sampleRate: 48000, channels: 2, frames: 96000, resampled: false, decoder: 'builtin' });
    expect(stem.source).to.deep.equal({ container: 'wav', sampleRate: 48000, channels: 2, frames: 96000 });
    let worst = 0;
    for (let i = 0; i < samples.length; i++) worst = Math.max(worst, Math.abs((stem.interleaved[i] as number) - (samples[i] as number)));
    expect(worst).to.be.at.most(1 / 8388608);
  });

  it('duplicates a mono WAV to both channels', async () => {
    const stem = await decodeStem(await write('mono.wav', encodeWav({ sampleRate: 48000, channels: 1, samples: sine(440, 48000, 1, 0.5, 1), encoding: 'int16' })), { ffmpeg: null });
    expect(stem.source.channels).to.equal(1);
    expect(stem.channels).to.equal(2);
    for (let i = 0; i < stem.frames; i++) expect(stem.interleaved[2 * i]).to.equal(stem.interleaved[2 * i + 1]);
    expect(rms(left(stem))).to.be.closeTo(0.5 / Math.SQRT2, 1e-3);
  });

  it('resamples a 44.1 kHz WAV to 48 kHz, keeping a 1 kHz tone at 1 kHz and its level', async () => {
    const stem = await decodeStem(await write('cd.wav', encodeWav({ sampleRate: 44100, channels: 2, samples: sine(1000, 44100, 2, 0.5, 2), encoding: 'int16' })), { ffmpeg: null });
    expect(stem).to.include({ resampled: true, frames: 96000 });
    expect(stem.source).to.deep.equal({ container: 'wav', sampleRate: 44100, channels: 2, frames: 88200 });
    const l = left(stem);
    expect(Math.abs(zeroCrossingFrequency(l, 48000, 1000, l.length - 1000) - 1000)).to.be.below(0.01);
    expect(Math.abs(db(rms(l, 1000, l.length - 1000) / (0.5 / Math.SQRT2)))).to.be.below(0.01);
  });

  it('replaces NaN and infinities in a float WAV with silence and clamps absurd values', async () => {
    const samples = sine(440, 48000, 0.1, 0.5, 2);
    samples[10] = NaN;
    samples[11] = Infinity;
    samples[12] = -Infinity;
    samples[13] = 1e30;
    const stem = await decodeStem(await write('nan.wav', encodeWav({ sampleRate: 48000, channels: 2, samples, encoding: 'float32' })), { ffmpeg: null });
    expect(stem.interleaved.every((v) => Number.isFinite(v) && Math.abs(v) <= 64)).to.equal(true);
    expect([stem.interleaved[10], stem.interleaved[11], stem.interleaved[12]]).to.deep.equal([0, 0, 0]);
  });

  it('keeps the output finite when a resampled float WAV holds NaN', async () => {
    const samples = sine(440, 44100, 0.2, 0.5, 1);
    samples[1000] = NaN;
    const stem = await decodeStem(await write('nan441.wav', encodeWav({ sampleRate: 44100, channels: 1, samples, encoding: 'float32' })), { ffmpeg: null });
    expect(stem.interleaved.every(Number.isFinite)).to.equal(true);
  });

  it('reports progress that rises to 1', async () => {
    const progress: number[] = [];
    await decodeStem(await write('p.wav', encodeWav({ sampleRate: 44100, channels: 2, samples: sine(440, 44100, 5, 0.5, 2), encoding: 'int16' })), { ffmpeg: null, onProgress: (f) => progress.push(f) });
    expect(progress.length).to.be.greaterThan(3);
    expect(progress.at(-1)).to.equal(1);
    expect(progress).to.deep.equal([...progress].sort((a, b) => a - b));
  });

  it('refuses a 6-channel WAV (too_many_channels), naming the file and the count', async () => {
    const e = await refusal(await write('surround.wav', encodeWav({ sampleRate: 48000, channels: 6, samples: new Float32Array(6 * 480), encoding: 'int16' })), { ffmpeg: null });
    expect(e.code).to.equal('too_many_channels');
    expect(e.message).to.match(/^surround\.wav has 6 channels/);
  });

  it('refuses a WAV with no samples and a 0-byte file (empty)', async () => {
    expect((await refusal(await write('nothing.wav', encodeWav({ sampleRate: 48000, channels: 2, samples: new Float32Array(0), encoding: 'int16' })), { ffmpeg: null })).code).to.equal('empty');
    expect((await refusal(await write('zero.wav', new Uint8Array(0)), { ffmpeg: null })).code).to.equal('empty');
  });

  it('refuses a stem longer than maxSeconds (too_long)', async () => {
    const e = await refusal(await write('long.wav', encodeWav({ sampleRate: 48000, channels: 1, samples: new Float32Array(48000 * 3), encoding: 'int16' })), { ffmpeg: null, maxSeconds: 2 });
    expect(e.code).to.equal('too_long');
    expect(e.message).to.match(/long\.wav is 3\.0 s long, longer than the 2\.0 s a stem may last/);
  });

  it('refuses a truncated WAV (malformed) with a message naming the file and the cause', async () => {
    const bytes = encodeWav({ sampleRate: 48000, channels: 2, samples: sine(440, 48000, 1, 0.5, 2), encoding: 'int16' });
    const e = await refusal(await write('cut.wav', bytes.subarray(0, 50_000)), { ffmpeg: null });
    expect(e.code).to.equal('malformed');
    expect(e.message).to.match(/^cut\.wav is not a usable WAV file: data chunk declares 192000 bytes but the file ends after 49956/);
  });

  it('refuses a WAV holding compressed audio (unsupported_format), naming the format', async () => {
    const bytes = encodeWav({ sampleRate: 48000, channels: 2, samples: new Float32Array(96), encoding: 'int16' });
    new DataView(bytes.buffer).setUint16(20, 0x55, true);
    const e = await refusal(await write('mp3-in-wav.wav', bytes), { ffmpeg: null });
    expect(e.code).to.equal('unsupported_format');
    expect(e.message).to.match(/0x0055 \(MP3\)/);
  });

  it('refuses a text file (unsupported_format), saying it found text and what is accepted', async () => {
    const e = await refusal(await write('notes.wav', 'these are my liner notes\n'), { ffmpeg: null });
    expect(e.code).to.equal('unsupported_format');
    expect(e.message).to.equal('notes.wav is not an audio stem: found text; accepted stems are WAV (PCM or float), FLAC or MP3');
  });

  it('refuses garbage bytes (unsupported_format), showing the first bytes', async () => {
    const e = await refusal(await write('noise.flac', new Uint8Array([0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08])), { ffmpeg: null });
    expect(e.code).to.equal('unsupported_format');
    expect(e.message).to.match(/unrecognised data \(first bytes 00 01 02 03/);
  });

  it('refuses a WAV whose name says .flac (extension_mismatch)', async () => {
    const e = await refusal(await write('named.flac', encodeWav({ sampleRate: 48000, channels: 2, samples: new Float32Array(96), encoding: 'int16' })), { ffmpeg: null });
    expect(e.code).to.equal('extension_mismatch');
    expect(e.message).to.match(/^named\.flac contains WAV but its name ends in \.flac/);
  });

  it('refuses a missing file and a folder (unreadable)', async () => {
    expect((await refusal(path.join(dir.path, 'absent.wav'), { ffmpeg: null })).code).to.equal('unreadable');
    await fsp.mkdir(path.join(dir.path, 'folder.wav'));
    expect((await refusal(path.join(dir.path, 'folder.wav'), { ffmpeg: null })).code).to.equal('unreadable');
  });
});

describe('decodeStem with FLAC and MP3 (fixtures made by native ffmpeg)', function () {
  let native: NativeFfmpeg | null;
  let dir: { path: string; remove(): Promise<void> };
  const fixture = (name: string) => path.join(dir.path, name);
  const ffmpegMake = (...args: string[]) => run(native!.ffmpeg, ['-nostdin', '-v', 'error', '-y', ...args]);
  const both = async (file: string, opts: { maxSeconds?: number } = {}) => ({
    ffmpeg: await decodeStem(file, { ffmpeg: native!.ffmpeg, ...opts }),
    builtin: await decodeStem(file, { ffmpeg: null, ...opts }),
  });

  before(async function () {
    native = await findNativeFfmpeg(null);
    requireComponent('ffmpeg', native !== null, this);
    dir = await tempDir('decode-ffmpeg');
    await fsp.writeFile(fixture('music44.wav'), encodeWav({ sampleRate: 44100, channels: 2, samples: musicLike(44100, 6, 2), encoding: 'int16' }));
    await fsp.writeFile(fixture('music48.wav'), encodeWav({ sampleRate: 48000, channels: 2, samples: musicLike(48000, 6, 2, 7), encoding: 'int24' }));
    await fsp.writeFile(fixture('mono44.wav'), encodeWav({ sampleRate: 44100, channels: 1, samples: musicLike(44100, 3, 1, 3), encoding: 'int16' }));
    await fsp.writeFile(fixture('six.wav'), encodeWav({ sampleRate: 48000, channels: 6, samples: new Float32Array(6 * 4800).fill(0.1), encoding: 'int16' }));
    await Promise.all([
      ffmpegMake('-i', fixture('music44.wav'), '-c:a', 'flac', fixture('music44.flac')),
      ffmpegMake('-i', fixture('music48.wav'), '-c:a', 'flac', '-sample_fmt', 's32', fixture('music48-24bit.flac')),
      ffmpegMake('-i', fixture('music44.wav'), '-c:a', 'libmp3lame', '-b:a', '192k', fixture('music44.mp3')),
      // No Xing/LAME header: nothing tells a decoder about the encoder delay, so neither can drop it.
      ffmpegMake('-i', fixture('music44.wav'), '-c:a', 'libmp3lame', '-b:a', '192k', '-write_xing', '0', fixture('music44-no-xing.mp3')),
      ffmpegMake('-i', fixture('mono44.wav'), '-c:a', 'flac', fixture('mono44.flac')),
      ffmpegMake('-i', fixture('mono44.wav'), '-c:a', 'libmp3lame', '-b:a', '96k', fixture('mono44.mp3')),
      ffmpegMake('-i', fixture('six.wav'), '-c:a', 'flac', fixture('six.flac')),
    ]);
    await fsp.copyFile(fixture('music44.mp3'), fixture('really-an-mp3.wav'));
    await fsp.copyFile(fixture('music44.flac'), fixture('really-a-flac.mp3'));
    const flac = await fsp.readFile(fixture('music44.flac'));
    await fsp.writeFile(fixture('cut.flac'), flac.subarray(0, Math.floor(flac.length / 2)));
  });
  after(async () => {
    await dir?.remove();
  });

  it('finds ffmpeg on PATH with its version and ffprobe', () => {
    expect(native!.version).to.match(/\S+/);
    expect(native!.ffprobe).to.be.a('string');
  });

  it('uses a given ffmpeg path over PATH, and answers null when the given path does not run', async () => {
    const { stdout } = await run('sh', ['-c', 'command -v ffmpeg']);
    const absolute = stdout.trim();
    expect((await findNativeFfmpeg(absolute))?.ffmpeg).to.equal(absolute);
    expect(await findNativeFfmpeg(path.join(dir.path, 'no-such-ffmpeg'))).to.equal(null);
  });

  it('answers null when there is no ffmpeg on PATH', async () => {
    const saved = process.env['PATH'];
    process.env['PATH'] = dir.path; // a folder with no ffmpeg in it
    try {
      expect(await findNativeFfmpeg(null)).to.equal(null);
    } finally {
      process.env['PATH'] = saved;
    }
  });

  for (const [name, minCorrelation] of [['music44.flac', 0.9999], ['music48-24bit.flac', 0.9999], ['music44.mp3', 0.99], ['music44-no-xing.mp3', 0.99]] as const) {
    it(`decodes ${name} to the same audio with ffmpeg and with the built-in decoder`, async () => {
      const { ffmpeg, builtin } = await both(fixture(name));
      expect(ffmpeg.decoder).to.equal('ffmpeg');
      expect(builtin.decoder).to.equal('builtin');
      expect(ffmpeg.source).to.deep.equal(builtin.source);
      expect(ffmpeg.resampled).to.equal(name.includes('44'));
      expect(Math.abs(ffmpeg.frames - builtin.frames)).to.be.at.most(2);
      // Both decoders drop the MP3 encoder delay (gapless); allow a small search in case one did not.
      const aligned = bestAlignment(left(ffmpeg).subarray(0, 96000), left(builtin).subarray(0, 96000), 1200);
      expect(Math.abs(aligned.lag)).to.be.at.most(1);
      expect(correlationAt(left(ffmpeg), left(builtin), aligned.lag)).to.be.above(minCorrelation);
      expect(Math.abs(db(rms(channel(ffmpeg.interleaved, 2, 1)) / rms(channel(builtin.interleaved, 2, 1))))).to.be.below(0.05);
    });
  }

  it('resamples a 44.1 kHz WAV with ffmpeg (soxr when present) to the same result as the built-in resampler', async () => {
    const { ffmpeg, builtin } = await both(fixture('music44.wav'));
    expect(ffmpeg.frames).to.equal(builtin.frames);
    const diff = new Float32Array(ffmpeg.interleaved.length);
    for (let i = 0; i < diff.length; i++) diff[i] = (ffmpeg.interleaved[i] as number) - (builtin.interleaved[i] as number);
    expect(db(rms(diff, 2000, diff.length - 2000) / rms(builtin.interleaved))).to.be.below(-60);
  });

  it('decodes FLAC to the samples of the WAV it was made from', async () => {
    const fromWav = await decodeStem(fixture('music48.wav'), { ffmpeg: null });
    const fromFlac = await decodeStem(fixture('music48-24bit.flac'), { ffmpeg: null });
    expect(fromFlac.frames).to.equal(fromWav.frames);
    let worst = 0;
    for (let i = 0; i < fromWav.interleaved.length; i++) worst = Math.max(worst, Math.abs((fromWav.interleaved[i] as number) - (fromFlac.interleaved[i] as number)));
    expect(worst).to.be.at.most(1 / 8388608);
  });

  for (const name of ['mono44.flac', 'mono44.mp3']) {
    it(`duplicates mono ${path.extname(name).slice(1).toUpperCase()} to both channels in both decoders`, async () => {
      for (const stem of Object.values(await both(fixture(name)))) {
        expect(stem.source.channels, stem.decoder).to.equal(1);
        let worst = 0;
        for (let i = 0; i < stem.frames; i++) worst = Math.max(worst, Math.abs((stem.interleaved[2 * i] as number) - (stem.interleaved[2 * i + 1] as number)));
        expect(worst, stem.decoder).to.equal(0);
        expect(rms(left(stem)), stem.decoder).to.be.above(0.01);
      }
    });
  }

  it('refuses 6-channel FLAC and WAV in both decoders (too_many_channels)', async () => {
    for (const name of ['six.flac', 'six.wav']) {
      for (const ffmpeg of [native!.ffmpeg, null]) {
        const e = await refusal(fixture(name), { ffmpeg });
        expect(e.code, `${name} ${ffmpeg}`).to.equal('too_many_channels');
        expect(e.message).to.contain(`${name} has 6 channels`);
      }
    }
  });

  it('refuses a .wav file that is really an MP3 (extension_mismatch), saying what it contains', async () => {
    const e = await refusal(fixture('really-an-mp3.wav'), { ffmpeg: native!.ffmpeg });
    expect(e.code).to.equal('extension_mismatch');
    expect(e.message).to.match(/^really-an-mp3\.wav contains MP3 but its name ends in \.wav; rename it to \.mp3/);
    expect((await refusal(fixture('really-a-flac.mp3'), { ffmpeg: null })).code).to.equal('extension_mismatch');
  });

  it('refuses a FLAC cut in half (malformed) in both decoders', async () => {
    for (const ffmpeg of [native!.ffmpeg, null]) {
      const e = await refusal(fixture('cut.flac'), { ffmpeg });
      expect(e.code).to.equal('malformed');
      expect(e.message).to.match(/^cut\.flac is cut short or damaged: it decodes to [\d.]+ s but its header says 6\.00 s/);
    }
  });

  it('refuses FLAC and MP3 longer than maxSeconds in both decoders (too_long)', async () => {
    for (const name of ['music44.flac', 'music44.mp3', 'music44-no-xing.mp3']) {
      for (const ffmpeg of [native!.ffmpeg, null]) {
        expect((await refusal(fixture(name), { ffmpeg, maxSeconds: 2 })).code, `${name} ${ffmpeg}`).to.equal('too_long');
      }
    }
  });

  it('reports progress that rises to 1 when decoding with ffmpeg', async () => {
    const progress: number[] = [];
    await decodeStem(fixture('music44.flac'), { ffmpeg: native!.ffmpeg, onProgress: (f) => progress.push(f) });
    expect(progress.length).to.be.greaterThan(2);
    expect(progress.at(-1)).to.equal(1);
    expect(progress).to.deep.equal([...progress].sort((a, b) => a - b));
  });

  it('lets an exception from onProgress through unchanged, in both decoders', async () => {
    for (const ffmpeg of [native!.ffmpeg, null]) {
      const stop = new Error('cancelled by the caller');
      let caught: unknown;
      await decodeStem(fixture('music44.flac'), { ffmpeg, onProgress: (f) => { if (f > 0.2) throw stop; } }).catch((e: unknown) => (caught = e));
      expect(caught, String(ffmpeg)).to.equal(stop);
    }
  });

  it("turns a failing ffmpeg into an AudioDecodeError naming the file and ffmpeg's last stderr line", async () => {
    const fake = fixture('fake-ffmpeg');
    await fsp.writeFile(fake, '#!/bin/sh\necho "some context" >&2\necho "Invalid data found when processing input" >&2\nexit 1\n', { mode: 0o755 });
    const e = await refusal(fixture('music44.flac'), { ffmpeg: fake });
    expect(e.code).to.equal('malformed');
    expect(e.message).to.equal('music44.flac could not be decoded by ffmpeg (exit 1): Invalid data found when processing input');
    expect(e.file).to.equal(fixture('music44.flac'));
  });

  it('reports an ffmpeg that cannot be started as decoder_failed', async () => {
    expect((await refusal(fixture('music44.flac'), { ffmpeg: fixture('missing-ffmpeg') })).code).to.equal('decoder_failed');
  });

  it("reads the source's rate and channels from ffmpeg's own output when there is no ffprobe", async () => {
    const bin = fixture('bin-no-probe');
    await fsp.mkdir(bin);
    const { stdout } = await run('sh', ['-c', 'command -v ffmpeg']);
    await fsp.symlink(stdout.trim(), path.join(bin, 'ffmpeg'));
    const saved = process.env['PATH'];
    process.env['PATH'] = bin; // no ffprobe reachable: neither beside this ffmpeg nor on PATH
    try {
      const stem = await decodeStem(fixture('mono44.mp3'), { ffmpeg: path.join(bin, 'ffmpeg') });
      expect(stem.source).to.include({ container: 'mp3', sampleRate: 44100, channels: 1 });
      expect(stem.resampled).to.equal(true);
    } finally {
      process.env['PATH'] = saved;
    }
  });

  it('writes cache WAVs that ffmpeg reads back to the same samples', async () => {
    const samples = musicLike(48000, 1, 2);
    const file = fixture('cache.wav');
    await writeWavFloat32(file, samples, 48000, 2);
    const stem = await decodeStem(file, { ffmpeg: native!.ffmpeg });
    expect(stem.frames).to.equal(48000);
    expect(Buffer.from(stem.interleaved.buffer, stem.interleaved.byteOffset, stem.interleaved.byteLength).equals(Buffer.from(samples.buffer))).to.equal(true);
  });
});

describe('ffmpeg output parsing (media/audio/ffmpeg.ts)', () => {
  it("reads rate, channels and duration from ffmpeg's input banner", () => {
    const banner = [
      "Input #0, flac, from 'file:/x/a.flac':",
      '  Duration: 00:01:30.50, start: 0.000000, bitrate: 1411 kb/s',
      '  Stream #0:0: Audio: flac, 44100 Hz, stereo, s16',
      "Output #0, f32le, to 'pipe:1':",
      '  Stream #0:0: Audio: pcm_f32le, 48000 Hz, stereo, flt, 3072 kb/s',
    ].join('\n');
    expect(parseFfmpegBanner(banner)).to.deep.equal({ codec: 'flac', sampleRate: 44100, channels: 2, durationSeconds: 90.5 });
    expect(parseFfmpegBanner('  Stream #0:0(und): Audio: mp3 (mp3float), 22050 Hz, mono, fltp, 64 kb/s')?.channels).to.equal(1);
    expect(parseFfmpegBanner('  Stream #0:0: Audio: flac, 48000 Hz, 5.1(side), s32 (24 bit)')?.channels).to.equal(6);
    expect(parseFfmpegBanner('  Stream #0:0: Audio: pcm_s16le, 48000 Hz, 10 channels, s16, 7680 kb/s')?.channels).to.equal(10);
    expect(parseFfmpegBanner('nothing here')).to.equal(null);
  });

  it('reads the first audio stream from ffprobe JSON', () => {
    const json = JSON.stringify({
      streams: [{ codec_type: 'video', codec_name: 'png' }, { codec_type: 'audio', codec_name: 'mp3', sample_rate: '44100', channels: 2, duration: '5.041633' }],
      format: { duration: '5.041633' },
    });
    expect(parseFfprobeJson(json)).to.deep.equal({ codec: 'mp3', sampleRate: 44100, channels: 2, durationSeconds: 5.041633 });
    expect(parseFfprobeJson('{"streams":[]}')).to.equal(null);
    expect(parseFfprobeJson('not json')).to.equal(null);
  });
});
