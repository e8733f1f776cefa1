import { expect } from 'chai';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { decodeWav, readWav, readWavFloat32, scanWav, bytesSource, writeWavFloat32, WavError } from '../../media/audio/wav.ts';
import { encodeWav, sine } from '../support/audio-fixtures.ts';
import type { PcmWavSpec } from '../support/audio-fixtures.ts';
import { tempDir } from '../support/temp.ts';

async function refusal(bytes: Uint8Array): Promise<WavError> {
  try {
    await decodeWav(bytes);
  } catch (e) {
    expect(e).to.be.instanceOf(WavError);
    return e as WavError;
  }
  throw new Error('expected the WAV to be refused');
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs((a[i] as number) - (b[i] as number)));
  return m;
}

function patch(bytes: Uint8Array, at: number, write: (v: DataView) => void): Uint8Array {
  const copy = bytes.slice();
  write(new DataView(copy.buffer, at));
  return copy;
}

const signal = sine(997, 44100, 0.25, 0.8, 2);
const base: PcmWavSpec = { sampleRate: 44100, channels: 2, samples: signal, encoding: 'int16' };

describe('WAV reader (media/audio/wav.ts)', () => {
  const cases: { encoding: PcmWavSpec['encoding']; extensible: boolean; step: number }[] = [
    { encoding: 'u8', extensible: false, step: 1 / 128 },
    { encoding: 'int16', extensible: false, step: 1 / 32768 },
    { encoding: 'int24', extensible: false, step: 1 / 8388608 },
    { encoding: 'int32', extensible: false, step: 1e-7 },
    { encoding: 'float32', extensible: false, step: 0 },
    { encoding: 'float64', extensible: false, step: 1e-7 },
    { encoding: 'int16', extensible: true, step: 1 / 32768 },
    { encoding: 'int24', extensible: true, step: 1 / 8388608 },
    { encoding: 'float32', extensible: true, step: 0 },
  ];
  for (const c of cases) {
    it(`reads ${c.encoding}${c.extensible ? ' WAVE_FORMAT_EXTENSIBLE' : ''} back within one quantisation step`, async () => {
      const wav = await decodeWav(encodeWav({ ...base, encoding: c.encoding, extensible: c.extensible }));
      expect(wav.sampleRate).to.equal(44100);
      expect(wav.channels).to.equal(2);
      expect(wav.frames).to.equal(signal.length / 2);
      expect(wav.format.sampleFormat).to.equal(c.encoding.startsWith('float') ? 'float' : 'int');
      expect(maxAbsDiff(wav.interleaved, signal)).to.be.at.most(c.step);
    });
  }

  it('reads a file block by block with the same result as decoding it in memory, reporting progress to 1', async () => {
    const dir = await tempDir('wav');
    try {
      const bytes = encodeWav({ ...base, encoding: 'int24', samples: sine(440, 44100, 3, 0.5, 2) });
      const file = path.join(dir.path, 'long.wav');
      await fsp.writeFile(file, bytes);
      const progress: number[] = [];
      const fromFile = await readWav(file, (f) => progress.push(f));
      const inMemory = await decodeWav(bytes);
      expect(maxAbsDiff(fromFile.interleaved, inMemory.interleaved)).to.equal(0);
      expect(progress.at(-1)).to.equal(1);
      expect(progress).to.deep.equal([...progress].sort((a, b) => a - b));
    } finally {
      await dir.remove();
    }
  });

  it('skips unknown chunks before fmt, between fmt and data and after data, honouring odd-size padding', async () => {
    const odd = new Uint8Array([1, 2, 3, 4, 5]);
    const bytes = encodeWav({
      ...base,
      chunksBeforeFmt: [{ id: 'JUNK', body: new Uint8Array(28) }, { id: 'bext', body: odd }],
      chunksBeforeData: [{ id: 'LIST', body: odd }, { id: 'fact', body: new Uint8Array(4) }],
      chunksAfterData: [{ id: 'id3 ', body: odd }],
    });
    const wav = await decodeWav(bytes);
    expect(wav.frames).to.equal(signal.length / 2);
    expect(maxAbsDiff(wav.interleaved, (await decodeWav(encodeWav(base))).interleaved)).to.equal(0);
  });

  it('tolerates a writer that left out the pad byte after an odd-sized chunk', async () => {
    const bytes = encodeWav({ ...base, omitPadBytes: true, chunksBeforeData: [{ id: 'LIST', body: new Uint8Array([1, 2, 3]) }] });
    const wav = await decodeWav(bytes);
    expect(wav.frames).to.equal(signal.length / 2);
  });

  it('finds a fmt chunk that comes after the data chunk', async () => {
    const wav = await decodeWav(encodeWav({ ...base, fmtAfterData: true }));
    expect(wav.frames).to.equal(signal.length / 2);
    expect(wav.sampleRate).to.equal(44100);
  });

  it('reads to the end of the file when the data size is the streaming placeholder 0xFFFFFFFF', async () => {
    const bytes = encodeWav(base);
    const layout = await scanWav(bytesSource(bytes));
    const streamed = patch(bytes, layout.dataOffset - 4, (v) => v.setUint32(0, 0xffffffff, true));
    expect((await decodeWav(streamed)).frames).to.equal(signal.length / 2);
  });

  it('drops a trailing partial frame instead of refusing the file', async () => {
    const bytes = encodeWav(base);
    const layout = await scanWav(bytesSource(bytes));
    const oddSize = patch(bytes, layout.dataOffset - 4, (v) => v.setUint32(0, layout.dataBytes - 1, true));
    expect((await decodeWav(oddSize)).frames).to.equal(signal.length / 2 - 1);
  });

  describe('refuses broken files with a clear reason', () => {
    it('refuses a file cut short inside the data chunk, saying it is cut short', async () => {
      const bytes = encodeWav(base);
      const e = await refusal(bytes.subarray(0, bytes.length - 1000));
      expect(e.code).to.equal('truncated');
      expect(e.message).to.match(/data chunk declares \d+ bytes but the file ends after \d+/);
    });

    it('refuses a file shorter than a RIFF header', async () => {
      expect((await refusal(encodeWav(base).subarray(0, 10))).code).to.equal('truncated');
    });

    it('refuses a file that stops before its data chunk', async () => {
      const e = await refusal(encodeWav(base).subarray(0, 36));
      expect(e.message).to.match(/no data chunk/);
    });

    it('refuses bytes that are not RIFF/WAVE', async () => {
      const garbage = new Uint8Array(4096).map((_, i) => (i * 7919) & 0xff);
      expect((await refusal(garbage)).message).to.match(/does not start with RIFF/);
      const avi = encodeWav(base);
      avi.set([0x41, 0x56, 0x49, 0x20], 8);
      expect((await refusal(avi)).message).to.match(/RIFF type is 'AVI '/);
    });

    it('refuses garbage where a chunk header should be', async () => {
      const bytes = encodeWav(base);
      bytes.fill(0x01, 12, 20);
      expect((await refusal(bytes)).message).to.match(/unreadable chunk header at byte 12/);
    });

    it('refuses a header that says zero channels', async () => {
      const e = await refusal(patch(encodeWav(base), 22, (v) => v.setUint16(0, 0, true)));
      expect(e.code).to.equal('malformed');
      expect(e.message).to.match(/0 channels/);
    });

    it('refuses an absurd channel count', async () => {
      expect((await refusal(patch(encodeWav(base), 22, (v) => v.setUint16(0, 5000, true)))).message).to.match(/5000 channels/);
    });

    it('refuses an absurd sample rate', async () => {
      expect((await refusal(patch(encodeWav(base), 24, (v) => v.setUint32(0, 0, true)))).message).to.match(/sample rate of 0 Hz/);
      expect((await refusal(patch(encodeWav(base), 24, (v) => v.setUint32(0, 4_000_000_000, true)))).message).to.match(/sample rate/);
    });

    it('refuses a block align that does not fit the channels and sample size', async () => {
      const e = await refusal(patch(encodeWav(base), 32, (v) => v.setUint16(0, 3, true)));
      expect(e.message).to.match(/block align 3 does not fit 2 channel\(s\) of 16-bit samples/);
    });

    it('refuses compressed WAV formats, naming the format', async () => {
      const e = await refusal(patch(encodeWav(base), 20, (v) => v.setUint16(0, 0x0002, true)));
      expect(e.code).to.equal('unsupported');
      expect(e.message).to.match(/0x0002 \(Microsoft ADPCM\)/);
    });

    it('refuses an extensible header with a vendor-specific sub-format', async () => {
      const bytes = encodeWav({ ...base, extensible: true });
      bytes[20 + 30] = 0x42; // inside the GUID tail
      expect((await refusal(bytes)).message).to.match(/vendor-specific/);
    });

    it('refuses an RF64 file as unsupported, saying what it is', async () => {
      const bytes = encodeWav(base);
      bytes.set([0x52, 0x46, 0x36, 0x34], 0);
      const e = await refusal(bytes);
      expect(e.code).to.equal('unsupported');
      expect(e.message).to.match(/RF64/);
    });
  });
});

describe('float WAV cache files (writeWavFloat32 / readWavFloat32)', () => {
  let dir: { path: string; remove(): Promise<void> };
  beforeEach(async () => {
    dir = await tempDir('wavcache');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('writes 32-bit float and reads the same samples back bit for bit', async () => {
    const samples = sine(1000, 48000, 2, 1.5, 2); // above full scale on purpose: float keeps it
    samples[7] = -0;
    samples[8] = 1e-30;
    const file = path.join(dir.path, 'stem.wav');
    await writeWavFloat32(file, samples, 48000, 2);
    const back = await readWavFloat32(file);
    expect(back).to.include({ sampleRate: 48000, channels: 2, frames: samples.length / 2 });
    expect(Buffer.from(back.interleaved.buffer, back.interleaved.byteOffset, back.interleaved.byteLength).equals(Buffer.from(samples.buffer))).to.equal(true);
    const layout = await scanWav(bytesSource(new Uint8Array(await fsp.readFile(file))));
    expect(layout.format).to.include({ formatTag: 3, sampleFormat: 'float', containerBits: 32 });
    expect(layout.dataOffset % 4).to.equal(0);
  });

  it('replaces an existing file and leaves no temporary file behind', async () => {
    const file = path.join(dir.path, 'stem.wav');
    await writeWavFloat32(file, new Float32Array([0.1, 0.2]), 48000, 2);
    await writeWavFloat32(file, new Float32Array([0.3, 0.4, 0.5, 0.6]), 48000, 2);
    expect((await readWavFloat32(file)).frames).to.equal(2);
    expect(fs.readdirSync(dir.path)).to.deep.equal(['stem.wav']);
  });

  it('leaves no temporary file when the final rename fails', async () => {
    const target = path.join(dir.path, 'taken.wav');
    await fsp.mkdir(target);
    await fsp.writeFile(path.join(target, 'x'), 'x'); // a non-empty folder cannot be renamed over
    let failed = false;
    await writeWavFloat32(target, new Float32Array(2), 48000, 2).catch(() => (failed = true));
    expect(failed).to.equal(true);
    expect(fs.readdirSync(dir.path)).to.deep.equal(['taken.wav']);
  });

  it('converts a WAV of another encoding when reading it back', async () => {
    const file = path.join(dir.path, 'int16.wav');
    await fsp.writeFile(file, encodeWav(base));
    const back = await readWavFloat32(file);
    expect(back.frames).to.equal(signal.length / 2);
    expect(maxAbsDiff(back.interleaved, signal)).to.be.at.most(1 / 32768);
  });

  it('refuses samples that are not whole frames, and impossible channel counts or rates', async () => {
    const file = path.join(dir.path, 'bad.wav');
    for (const [samples, rate, channels] of [[3, 48000, 2], [2, 48000, 0], [2, 0, 2]] as const) {
      let error: unknown;
      await writeWavFloat32(file, new Float32Array(samples), rate, channels).catch((e: unknown) => (error = e));
      expect(error).to.be.instanceOf(RangeError);
    }
    expect(fs.readdirSync(dir.path)).to.deep.equal([]);
  });
});
