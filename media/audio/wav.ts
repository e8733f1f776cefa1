// RIFF/WAVE reading and writing. Reading walks the chunk list with positional
// reads, so a large file's header is found without loading the file, and the
// samples are then converted block by block.
import { open, readFile, rename, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';

export type WavSampleFormat = 'int' | 'float';

export interface WavFormat {
  /** 1 = PCM, 3 = IEEE float, 0xFFFE = WAVE_FORMAT_EXTENSIBLE (then `sampleFormat` comes from its sub-format). */
  readonly formatTag: number;
  readonly sampleFormat: WavSampleFormat;
  readonly channels: number;
  readonly sampleRate: number;
  /** Bits per sample as stored (the container): 8, 16, 24, 32 or 64. */
  readonly containerBits: number;
  /** Meaningful bits; equals containerBits unless an extensible header says less (e.g. 20 in 24). */
  readonly validBits: number;
  /** Bytes per frame (all channels). */
  readonly blockAlign: number;
  /** Speaker mask from an extensible header, else null. */
  readonly channelMask: number | null;
}

export interface WavLayout {
  readonly format: WavFormat;
  /** Byte offset of the first sample in the file. */
  readonly dataOffset: number;
  /** Bytes of whole frames in the data chunk. */
  readonly dataBytes: number;
  readonly frames: number;
}

export interface DecodedWav {
  readonly sampleRate: number;
  readonly channels: number;
  readonly frames: number;
  /** Interleaved samples, full scale = ±1. */
  readonly interleaved: Float32Array;
  readonly format: WavFormat;
}

export type WavErrorCode = 'truncated' | 'malformed' | 'unsupported';

export class WavError extends Error {
  override readonly name = 'WavError';
  readonly code: WavErrorCode;
  constructor(code: WavErrorCode, message: string) {
    super(message);
    this.code = code;
  }
}

/** Anything with a size and positional reads: a file or bytes in memory. */
export interface ByteSource {
  readonly size: number;
  /** Up to `length` bytes at `position`; fewer only at the end. */
  read(position: number, length: number): Promise<Uint8Array>;
}

const WAVE_FORMAT_PCM = 0x0001;
const WAVE_FORMAT_IEEE_FLOAT = 0x0003;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;
// KSDATAFORMAT_SUBTYPE_* GUIDs share everything but their first two bytes.
const KSDATAFORMAT_GUID_TAIL = [0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xaa, 0x00, 0x38, 0x9b, 0x71];
const KNOWN_FORMAT_NAMES: Readonly<Record<number, string>> = {
  0x0002: 'Microsoft ADPCM',
  0x0006: 'A-law',
  0x0007: 'µ-law',
  0x0011: 'IMA ADPCM',
  0x0050: 'MPEG audio',
  0x0055: 'MP3',
  0x00ff: 'AAC',
  0x2000: 'AC-3',
};
const MAX_CHANNELS = 64;
const MIN_SAMPLE_RATE_HZ = 1000;
const MAX_SAMPLE_RATE_HZ = 768_000;
// The data size written by streaming encoders that never came back to fix the header.
const DATA_SIZE_UNKNOWN = 0xffffffff;
const MAX_CHUNKS = 100_000;
const FLOAT32_HEADER_BYTES = 56;
const IS_LITTLE_ENDIAN = os.endianness() === 'LE';

export function bytesSource(bytes: Uint8Array): ByteSource {
  return {
    size: bytes.length,
    read: (position, length) => Promise.resolve(bytes.subarray(position, Math.min(bytes.length, position + length))),
  };
}

export function fileSource(fh: FileHandle, size: number): ByteSource {
  return {
    size,
    async read(position, length) {
      const n = Math.max(0, Math.min(length, size - position));
      const buf = new Uint8Array(n);
      let got = 0;
      while (got < n) {
        const { bytesRead } = await fh.read(buf, got, n - got, position + got);
        if (bytesRead === 0) break; // the file shrank under us
        got += bytesRead;
      }
      return got === n ? buf : buf.subarray(0, got);
    },
  };
}

function fourcc(b: Uint8Array, at: number): string {
  return String.fromCharCode(b[at] ?? 0, b[at + 1] ?? 0, b[at + 2] ?? 0, b[at + 3] ?? 0);
}

function u16(b: Uint8Array, at: number): number {
  return (b[at] ?? 0) | ((b[at + 1] ?? 0) << 8);
}

function u32(b: Uint8Array, at: number): number {
  return ((b[at] ?? 0) | ((b[at + 1] ?? 0) << 8) | ((b[at + 2] ?? 0) << 16) | ((b[at + 3] ?? 0) << 24)) >>> 0;
}

/** Chunk ids are four printable ASCII characters; anything else means we lost the chunk boundary. */
function plausibleChunkId(b: Uint8Array): boolean {
  if (b.length < 4) return false;
  for (let i = 0; i < 4; i++) {
    const c = b[i] ?? 0;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

const COMMON_CHUNK_IDS = new Set(['fmt ', 'data', 'fact', 'LIST', 'JUNK', 'junk', 'PAD ', 'bext', 'iXML', 'id3 ', 'ID3 ', 'cue ', 'smpl', 'inst', 'acid', 'PEAK', 'cart', 'axml', 'minf', 'elm1', 'regn', 'umid', 'DGDA', 'FLLR', 'ds64']);

/** 2 for a well-known chunk id, 1 for a plausible one whose size fits in the file, else 0. */
function chunkHeaderScore(header: Uint8Array, at: number, fileSize: number): number {
  if (!plausibleChunkId(header)) return 0;
  if (COMMON_CHUNK_IDS.has(fourcc(header, 0))) return 2;
  return at + 8 + u32(header, 4) <= fileSize ? 1 : 0;
}

function formatName(tag: number): string {
  const known = KNOWN_FORMAT_NAMES[tag];
  return `format 0x${tag.toString(16).padStart(4, '0')}${known ? ` (${known})` : ''}`;
}

function parseFmt(body: Uint8Array): WavFormat {
  if (body.length < 16) throw new WavError('malformed', `fmt chunk is ${body.length} bytes; at least 16 are needed`);
  const formatTag = u16(body, 0);
  const channels = u16(body, 2);
  const sampleRate = u32(body, 4);
  const blockAlign = u16(body, 12);
  const bitsPerSample = u16(body, 14);
  if (channels === 0) throw new WavError('malformed', 'header says 0 channels');
  if (channels > MAX_CHANNELS) throw new WavError('malformed', `header says ${channels} channels (more than ${MAX_CHANNELS} is not a real recording)`);
  if (sampleRate < MIN_SAMPLE_RATE_HZ || sampleRate > MAX_SAMPLE_RATE_HZ) {
    throw new WavError('malformed', `header says a sample rate of ${sampleRate} Hz (accepted: ${MIN_SAMPLE_RATE_HZ}–${MAX_SAMPLE_RATE_HZ} Hz)`);
  }

  let sampleFormat: WavSampleFormat;
  let validBits = bitsPerSample;
  let channelMask: number | null = null;
  if (formatTag === WAVE_FORMAT_PCM) sampleFormat = 'int';
  else if (formatTag === WAVE_FORMAT_IEEE_FLOAT) sampleFormat = 'float';
  else if (formatTag === WAVE_FORMAT_EXTENSIBLE) {
    if (body.length < 40 || u16(body, 16) < 22) {
      throw new WavError('malformed', `WAVE_FORMAT_EXTENSIBLE fmt chunk is ${body.length} bytes; 40 are needed`);
    }
    validBits = u16(body, 18) || bitsPerSample; // 0 means "all of them" in some writers
    channelMask = u32(body, 20);
    const subFormat = u16(body, 24);
    for (let i = 0; i < KSDATAFORMAT_GUID_TAIL.length; i++) {
      if (body[26 + i] !== KSDATAFORMAT_GUID_TAIL[i]) {
        throw new WavError('unsupported', 'WAVE_FORMAT_EXTENSIBLE with a vendor-specific sub-format GUID');
      }
    }
    if (subFormat === WAVE_FORMAT_PCM) sampleFormat = 'int';
    else if (subFormat === WAVE_FORMAT_IEEE_FLOAT) sampleFormat = 'float';
    else throw new WavError('unsupported', `WAVE_FORMAT_EXTENSIBLE with sub-${formatName(subFormat)}; only PCM and IEEE float are accepted`);
  } else {
    throw new WavError('unsupported', `${formatName(formatTag)}; only PCM and IEEE float WAV are accepted`);
  }

  // The container size decides the layout; a header that says 24 bits in 4-byte slots is honoured.
  const containerBytes = blockAlign / channels;
  const minBytes = Math.ceil(bitsPerSample / 8);
  const okInt = sampleFormat === 'int' && bitsPerSample >= 1 && bitsPerSample <= 32 && [1, 2, 3, 4].includes(containerBytes) && containerBytes >= minBytes;
  const okFloat = sampleFormat === 'float' && ((bitsPerSample === 32 && containerBytes === 4) || (bitsPerSample === 64 && containerBytes === 8));
  if (!okInt && !okFloat) {
    if (!Number.isInteger(containerBytes) || containerBytes < minBytes) {
      throw new WavError('malformed', `block align ${blockAlign} does not fit ${channels} channel(s) of ${bitsPerSample}-bit samples`);
    }
    throw new WavError('unsupported', `${bitsPerSample}-bit ${sampleFormat === 'int' ? 'integer' : 'float'} samples in ${containerBytes}-byte slots; accepted: 8/16/24/32-bit integer, 32/64-bit float`);
  }
  if (validBits > containerBytes * 8) {
    throw new WavError('malformed', `extensible header says ${validBits} valid bits in a ${containerBytes * 8}-bit container`);
  }
  return { formatTag, sampleFormat, channels, sampleRate, containerBits: containerBytes * 8, validBits, blockAlign, channelMask };
}

/**
 * Finds the format and the sample data of a RIFF/WAVE stream. Unknown chunks are
 * skipped, the pad byte after odd-sized chunks is honoured (and its absence
 * tolerated), and `fmt ` may come after `data`. Throws WavError.
 */
export async function scanWav(src: ByteSource): Promise<WavLayout> {
  const head = await src.read(0, 12);
  if (head.length < 12) throw new WavError('truncated', `file is ${src.size} bytes; a WAV header needs at least 44`);
  const riff = fourcc(head, 0);
  if (riff !== 'RIFF') {
    if (riff === 'RF64' || riff === 'BW64') throw new WavError('unsupported', `${riff} (WAV over 4 GB) is not supported`);
    if (riff === 'RIFX') throw new WavError('unsupported', 'big-endian RIFX WAV is not supported');
    throw new WavError('malformed', 'does not start with RIFF');
  }
  if (fourcc(head, 8) !== 'WAVE') throw new WavError('malformed', `RIFF type is '${fourcc(head, 8)}', not 'WAVE'`);

  let format: WavFormat | null = null;
  let dataOffset = -1;
  let declaredDataBytes = 0;
  let pos = 12;
  let previousWasOdd = false;
  for (let n = 0; n < MAX_CHUNKS && pos + 8 <= src.size; n++) {
    let header = await src.read(pos, 8);
    if (previousWasOdd) {
      // Some writers forget the pad byte after an odd-sized chunk: take whichever reading looks more like a chunk.
      const unpadded = await src.read(pos - 1, 8);
      if (chunkHeaderScore(unpadded, pos - 1, src.size) > chunkHeaderScore(header, pos, src.size)) {
        pos -= 1;
        header = unpadded;
      }
    }
    if (!plausibleChunkId(header)) {
      if (format && dataOffset >= 0) break; // trailing junk after everything we need
      throw new WavError('malformed', `unreadable chunk header at byte ${pos}`);
    }
    const id = fourcc(header, 0);
    const size = u32(header, 4);
    const bodyAt = pos + 8;
    if (id === 'fmt ') {
      if (format) throw new WavError('malformed', 'two fmt chunks');
      if (bodyAt + size > src.size) throw new WavError('truncated', `fmt chunk declares ${size} bytes but the file ends after ${src.size - bodyAt}`);
      if (size > 4096) throw new WavError('malformed', `fmt chunk declares ${size} bytes`);
      format = parseFmt(await src.read(bodyAt, size));
    } else if (id === 'data') {
      if (dataOffset >= 0) throw new WavError('malformed', 'two data chunks');
      dataOffset = bodyAt;
      const available = src.size - bodyAt;
      if (size === DATA_SIZE_UNKNOWN) declaredDataBytes = available;
      else if (size > available) {
        throw new WavError('truncated', `data chunk declares ${size} bytes but the file ends after ${available} (the file is cut short)`);
      } else declaredDataBytes = size;
      if (format) break;
      pos = bodyAt + declaredDataBytes + (declaredDataBytes & 1);
      previousWasOdd = (declaredDataBytes & 1) === 1;
      continue;
    } else if (bodyAt + size > src.size) {
      if (format && dataOffset >= 0) break;
      throw new WavError('truncated', `'${id}' chunk declares ${size} bytes but the file ends after ${src.size - bodyAt}`);
    }
    pos = bodyAt + size + (size & 1);
    previousWasOdd = (size & 1) === 1;
  }
  if (!format) throw new WavError(dataOffset >= 0 ? 'malformed' : 'truncated', 'no fmt chunk');
  if (dataOffset < 0) throw new WavError('truncated', 'no data chunk');
  // A trailing partial frame is dropped rather than refused: it carries no whole sample.
  const frames = Math.floor(declaredDataBytes / format.blockAlign);
  return { format, dataOffset, dataBytes: frames * format.blockAlign, frames };
}

/** Converts whole frames of stored samples into float (±1) at `out[outOffset…]`. */
export function convertWavSamples(bytes: Uint8Array, format: WavFormat, out: Float32Array, outOffset: number): number {
  const bytesPerSample = format.containerBits / 8;
  const samples = Math.floor(bytes.length / format.blockAlign) * format.channels;
  if (outOffset + samples > out.length) throw new RangeError('output too small');
  const b = bytes;
  if (format.sampleFormat === 'float') {
    const view = new DataView(b.buffer, b.byteOffset, samples * bytesPerSample);
    if (bytesPerSample === 4) {
      if (IS_LITTLE_ENDIAN && (b.byteOffset & 3) === 0) {
        out.set(new Float32Array(b.buffer, b.byteOffset, samples), outOffset);
      } else {
        for (let i = 0; i < samples; i++) out[outOffset + i] = view.getFloat32(i * 4, true);
      }
    } else {
      for (let i = 0; i < samples; i++) out[outOffset + i] = view.getFloat64(i * 8, true);
    }
    return samples;
  }
  // Integer samples are left-justified in their container, so scaling by the container's full scale is exact.
  switch (bytesPerSample) {
    case 1:
      for (let i = 0; i < samples; i++) out[outOffset + i] = ((b[i] as number) - 128) / 128;
      break;
    case 2:
      for (let i = 0, j = 0; i < samples; i++, j += 2) {
        out[outOffset + i] = ((((b[j] as number) | ((b[j + 1] as number) << 8)) << 16) >> 16) / 32768;
      }
      break;
    case 3:
      for (let i = 0, j = 0; i < samples; i++, j += 3) {
        out[outOffset + i] = ((((b[j] as number) << 8) | ((b[j + 1] as number) << 16) | ((b[j + 2] as number) << 24)) >> 8) / 8388608;
      }
      break;
    default:
      for (let i = 0, j = 0; i < samples; i++, j += 4) {
        out[outOffset + i] = ((b[j] as number) | ((b[j + 1] as number) << 8) | ((b[j + 2] as number) << 16) | ((b[j + 3] as number) << 24)) / 2147483648;
      }
  }
  return samples;
}

/** Decodes a whole WAV held in memory. Throws WavError. */
export async function decodeWav(bytes: Uint8Array): Promise<DecodedWav> {
  const layout = await scanWav(bytesSource(bytes));
  const out = new Float32Array(layout.frames * layout.format.channels);
  convertWavSamples(bytes.subarray(layout.dataOffset, layout.dataOffset + layout.dataBytes), layout.format, out, 0);
  return { sampleRate: layout.format.sampleRate, channels: layout.format.channels, frames: layout.frames, interleaved: out, format: layout.format };
}

/**
 * Yields the samples of `layout` as interleaved float blocks of up to
 * `framesPerBlock` frames, reading the file piece by piece.
 */
export async function* readWavBlocks(src: ByteSource, layout: WavLayout, framesPerBlock = 65536): AsyncGenerator<Float32Array> {
  const { format } = layout;
  const blockBytes = Math.max(1, framesPerBlock) * format.blockAlign;
  for (let done = 0; done < layout.dataBytes; ) {
    const want = Math.min(blockBytes, layout.dataBytes - done);
    const bytes = await src.read(layout.dataOffset + done, want);
    if (bytes.length < want) throw new WavError('truncated', `file ended at byte ${layout.dataOffset + done + bytes.length} while reading samples`);
    const out = new Float32Array((want / format.blockAlign) * format.channels);
    convertWavSamples(bytes, format, out, 0);
    done += want;
    yield out;
  }
}

/** Decodes a WAV file to interleaved float, reading it in blocks. Throws WavError or a file-system error. */
export async function readWav(file: string, onProgress?: (fraction: number) => void): Promise<DecodedWav> {
  const fh = await open(file, 'r');
  try {
    const { size } = await fh.stat();
    const src = fileSource(fh, size);
    const layout = await scanWav(src);
    const out = new Float32Array(layout.frames * layout.format.channels);
    let at = 0;
    for await (const block of readWavBlocks(src, layout)) {
      out.set(block, at);
      at += block.length;
      onProgress?.(at / Math.max(1, out.length));
    }
    return { sampleRate: layout.format.sampleRate, channels: layout.format.channels, frames: layout.frames, interleaved: out, format: layout.format };
  } finally {
    await fh.close();
  }
}

function float32WavHeader(frames: number, sampleRate: number, channels: number): Uint8Array {
  const dataBytes = frames * channels * 4;
  const h = new Uint8Array(FLOAT32_HEADER_BYTES);
  const v = new DataView(h.buffer);
  const ascii = (at: number, s: string) => {
    for (let i = 0; i < 4; i++) h[at + i] = s.charCodeAt(i);
  };
  ascii(0, 'RIFF');
  v.setUint32(4, FLOAT32_HEADER_BYTES - 8 + dataBytes, true);
  ascii(8, 'WAVE');
  ascii(12, 'fmt ');
  v.setUint32(16, 16, true);
  v.setUint16(20, WAVE_FORMAT_IEEE_FLOAT, true);
  v.setUint16(22, channels, true);
  v.setUint32(24, sampleRate, true);
  v.setUint32(28, sampleRate * channels * 4, true);
  v.setUint16(32, channels * 4, true);
  v.setUint16(34, 32, true);
  // A fact chunk is required for non-PCM formats, and it also puts the samples at a 4-byte-aligned offset (56).
  ascii(36, 'fact');
  v.setUint32(40, 4, true);
  v.setUint32(44, frames, true);
  ascii(48, 'data');
  v.setUint32(52, dataBytes, true);
  return h;
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length; ) {
    const { bytesWritten } = await fh.write(bytes, off, Math.min(bytes.length - off, 1 << 24));
    off += bytesWritten;
  }
}

/**
 * Writes a 32-bit float WAV atomically: a temporary file beside `file` is
 * written and synced, then renamed over it, so readers see the old file or the
 * whole new one.
 */
export async function writeWavFloat32(file: string, interleaved: Float32Array, sampleRate: number, channels: number): Promise<void> {
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_CHANNELS) throw new RangeError(`channels must be 1–${MAX_CHANNELS}, got ${channels}`);
  if (!Number.isInteger(sampleRate) || sampleRate < MIN_SAMPLE_RATE_HZ || sampleRate > MAX_SAMPLE_RATE_HZ) {
    throw new RangeError(`sampleRate must be a whole number of Hz from ${MIN_SAMPLE_RATE_HZ} to ${MAX_SAMPLE_RATE_HZ}, got ${sampleRate}`);
  }
  if (interleaved.length % channels !== 0) throw new RangeError(`${interleaved.length} samples is not a whole number of ${channels}-channel frames`);
  const frames = interleaved.length / channels;
  if (FLOAT32_HEADER_BYTES + interleaved.byteLength > 0xffffffff) throw new RangeError('audio too large for a RIFF WAV (4 GB)');

  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const fh = await open(tmp, 'wx');
  let ok = false;
  try {
    await writeAll(fh, float32WavHeader(frames, sampleRate, channels));
    if (IS_LITTLE_ENDIAN) {
      await writeAll(fh, new Uint8Array(interleaved.buffer, interleaved.byteOffset, interleaved.byteLength));
    } else {
      const chunkSamples = 1 << 18;
      for (let i = 0; i < interleaved.length; i += chunkSamples) {
        const part = interleaved.subarray(i, i + chunkSamples);
        const le = new DataView(new ArrayBuffer(part.length * 4));
        for (let k = 0; k < part.length; k++) le.setFloat32(k * 4, part[k] as number, true);
        await writeAll(fh, new Uint8Array(le.buffer));
      }
    }
    await fh.datasync();
    await fh.close();
    await rename(tmp, file);
    ok = true;
  } finally {
    if (!ok) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
    }
  }
  // Best effort: make the rename itself durable.
  const dirHandle = await open(dir, 'r').catch(() => null);
  if (dirHandle) {
    await dirHandle.sync().catch(() => {});
    await dirHandle.close().catch(() => {});
  }
}

/**
 * Reads a WAV back as float. A 32-bit float file at an aligned offset (what
 * writeWavFloat32 makes) is returned as a view on the bytes read, with no
 * conversion; any other WAV is converted.
 */
export async function readWavFloat32(file: string): Promise<{ sampleRate: number; channels: number; frames: number; interleaved: Float32Array }> {
  const buf = await readFile(file);
  const bytes = new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
  const layout = await scanWav(bytesSource(bytes));
  const { format } = layout;
  const samples = layout.frames * format.channels;
  let interleaved: Float32Array;
  if (IS_LITTLE_ENDIAN && format.sampleFormat === 'float' && format.containerBits === 32 && ((bytes.byteOffset + layout.dataOffset) & 3) === 0) {
    interleaved = new Float32Array(bytes.buffer, bytes.byteOffset + layout.dataOffset, samples);
  } else {
    interleaved = new Float32Array(samples);
    convertWavSamples(bytes.subarray(layout.dataOffset, layout.dataOffset + layout.dataBytes), format, interleaved, 0);
  }
  return { sampleRate: format.sampleRate, channels: format.channels, frames: layout.frames, interleaved };
}
