// Decodes one stem file to 48 kHz stereo float: with a native ffmpeg when the
// caller has one, else with built-in decoders (WAV here, FLAC and MP3 in
// WebAssembly) and the TypeScript resampler. Either way the container is
// identified by its bytes, and the same limits are enforced.
import { spawn } from 'node:child_process';
import { open } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { FLACDecoder } from '@wasm-audio-decoders/flac';
import { MPEGDecoder } from 'mpg123-decoder';
import { ffmpegFileArg, ffmpegHasSoxr, ffprobeFor, lastLine, parseFfmpegBanner, probeAudio } from './ffmpeg.ts';
import type { ProbedAudio } from './ffmpeg.ts';
import { Resampler, resampledFrameCount } from './resample.ts';
import { fileSource, readWavBlocks, scanWav, WavError } from './wav.ts';
import type { ByteSource, WavLayout } from './wav.ts';

export type AudioContainer = 'wav' | 'flac' | 'mp3';

export interface DecodedStem {
  sampleRate: 48000;
  channels: 2;
  frames: number;
  interleaved: Float32Array;
  source: { container: AudioContainer; sampleRate: number; channels: number; frames: number };
  /** True when the source was not 48 kHz. */
  resampled: boolean;
  decoder: 'ffmpeg' | 'builtin';
}

export type AudioDecodeErrorCode =
  | 'unreadable'
  | 'unsupported_format'
  | 'extension_mismatch'
  | 'malformed'
  | 'too_many_channels'
  | 'empty'
  | 'too_long'
  /** The decoder itself failed (could not start, crashed), not the file. */
  | 'decoder_failed';

export class AudioDecodeError extends Error {
  override readonly name = 'AudioDecodeError';
  readonly code: AudioDecodeErrorCode;
  /** The path as given to decodeStem. Messages name only its base name. */
  readonly file: string;
  constructor(code: AudioDecodeErrorCode, file: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.file = file;
  }
}

export interface DecodeStemOptions {
  /** Native ffmpeg to use (from findNativeFfmpeg); null decodes with the built-in decoders. */
  ffmpeg: string | null;
  /** Longest accepted stem. Default 15 minutes. */
  maxSeconds?: number;
  /** Called with 0…1 as decoding advances; ends with 1 on success. */
  onProgress?: (fraction: number) => void;
}

export const OUTPUT_SAMPLE_RATE = 48000;
export const DEFAULT_MAX_SECONDS = 15 * 60;
const ACCEPTED = 'accepted stems are WAV (PCM or float), FLAC or MP3';
const EXTENSIONS: Readonly<Record<string, AudioContainer>> = { '.wav': 'wav', '.wave': 'wav', '.flac': 'flac', '.mp3': 'mp3' };
const CONTAINER_NAMES: Readonly<Record<AudioContainer, string>> = { wav: 'WAV', flac: 'FLAC', mp3: 'MP3' };
const SNIFF_BYTES = 64 * 1024;
const READ_CHUNK_BYTES = 512 * 1024;
// +36 dBFS. Beyond it a float sample is corrupt data; clamping keeps the mixer's sums finite.
const SAMPLE_LIMIT = 64;
// Output frames by which a FLAC may fall short of its STREAMINFO count before we call it cut short (resampler rounding).
const FLAC_SHORTFALL_TOLERANCE_FRAMES = 64;

// ---------------------------------------------------------------- sniffing

function ascii(b: Uint8Array, at: number, s: string): boolean {
  if (at + s.length > b.length) return false;
  for (let i = 0; i < s.length; i++) if (b[at + i] !== s.charCodeAt(i)) return false;
  return true;
}

/** Bytes from the start of an ID3v2 tag to just after it (header, body, optional footer). */
function id3TagLength(b: Uint8Array, at: number): number | null {
  if (!ascii(b, at, 'ID3') || at + 10 > b.length) return null;
  const sizeBytes = [b[at + 6] ?? 0, b[at + 7] ?? 0, b[at + 8] ?? 0, b[at + 9] ?? 0];
  if (sizeBytes.some((x) => x & 0x80)) return null; // sizes are 7 bits per byte ("syncsafe")
  const size = ((sizeBytes[0] as number) << 21) | ((sizeBytes[1] as number) << 14) | ((sizeBytes[2] as number) << 7) | (sizeBytes[3] as number);
  const hasFooter = ((b[at + 5] ?? 0) & 0x10) !== 0;
  return 10 + size + (hasFooter ? 10 : 0);
}

interface MpegFrameHeader {
  readonly sampleRate: number;
  readonly channels: 1 | 2;
  readonly layer: 1 | 2 | 3;
  readonly mpeg1: boolean;
  readonly samplesPerFrame: number;
  /** Bytes; null for free-format streams. */
  readonly frameBytes: number | null;
  readonly bitrateKbps: number;
}

const MPEG_RATES: Readonly<Record<number, readonly number[]>> = { 3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000] };
const BITRATES_V1: Readonly<Record<number, readonly number[]>> = {
  1: [0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448],
  2: [0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384],
  3: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
};
const BITRATES_V2_L1 = [0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256];
const BITRATES_V2_L23 = [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160];

function parseMpegHeader(b: Uint8Array, at: number): MpegFrameHeader | null {
  if (at + 4 > b.length) return null;
  const b1 = b[at + 1] as number;
  const b2 = b[at + 2] as number;
  const b3 = b[at + 3] as number;
  if (b[at] !== 0xff || (b1 & 0xe0) !== 0xe0) return null;
  const version = (b1 >> 3) & 3; // 0 = MPEG 2.5, 1 = reserved, 2 = MPEG 2, 3 = MPEG 1
  const layerBits = (b1 >> 1) & 3; // 0 = reserved (and what AAC ADTS has here)
  const bitrateIndex = b2 >> 4;
  const rateIndex = (b2 >> 2) & 3;
  if (version === 1 || layerBits === 0 || bitrateIndex === 15 || rateIndex === 3) return null;
  const layer = (4 - layerBits) as 1 | 2 | 3;
  const mpeg1 = version === 3;
  const sampleRate = (MPEG_RATES[version] as readonly number[])[rateIndex] as number;
  const table = mpeg1 ? (BITRATES_V1[layer] as readonly number[]) : layer === 1 ? BITRATES_V2_L1 : BITRATES_V2_L23;
  const bitrateKbps = table[bitrateIndex] as number;
  const padding = (b2 >> 1) & 1;
  const samplesPerFrame = layer === 1 ? 384 : layer === 2 || mpeg1 ? 1152 : 576;
  let frameBytes: number | null = null;
  if (bitrateKbps > 0) {
    frameBytes = layer === 1
      ? (Math.floor((12 * bitrateKbps * 1000) / sampleRate) + padding) * 4
      : Math.floor(((samplesPerFrame / 8) * bitrateKbps * 1000) / sampleRate) + padding;
  }
  return { sampleRate, channels: b3 >> 6 === 3 ? 1 : 2, layer, mpeg1, samplesPerFrame, frameBytes, bitrateKbps };
}

/** An MPEG audio frame at `at`, confirmed by the next frame's header when the bytes reach that far. */
function mpegFrameAt(b: Uint8Array, at: number): MpegFrameHeader | null {
  const h = parseMpegHeader(b, at);
  if (!h) return null;
  if (h.frameBytes !== null && at + h.frameBytes + 4 <= b.length) {
    const next = parseMpegHeader(b, at + h.frameBytes);
    if (!next || next.sampleRate !== h.sampleRate || next.layer !== h.layer) return null;
  }
  return h;
}

/**
 * The container by its first bytes (not its name): RIFF/WAVE, fLaC, or MPEG
 * audio (an ID3v2 tag or a frame sync). An ID3 tag followed by fLaC is FLAC.
 */
export function sniffContainer(head: Uint8Array): AudioContainer | null {
  if (ascii(head, 0, 'RIFF') && ascii(head, 8, 'WAVE')) return 'wav';
  if (ascii(head, 0, 'fLaC')) return 'flac';
  const tag = id3TagLength(head, 0);
  if (tag !== null) return ascii(head, tag, 'fLaC') ? 'flac' : 'mp3';
  if (mpegFrameAt(head, 0)) return 'mp3';
  return null;
}

/** A short human description of what a non-audio (or unsupported audio) file looks like. */
function describeContent(head: Uint8Array): string {
  const riffType = String.fromCharCode(...head.subarray(8, 12));
  if (ascii(head, 0, 'RIFF')) return `a RIFF '${riffType}' file${riffType === 'AVI ' ? ' (video)' : ''}`;
  if (ascii(head, 0, 'RF64') || ascii(head, 0, 'BW64')) return 'an RF64/BW64 WAV (the over-4-GB variant, not supported)';
  if (ascii(head, 0, 'RIFX')) return 'a big-endian RIFX WAV (not supported)';
  if (ascii(head, 0, 'OggS')) return 'an Ogg file (Vorbis, Opus or Ogg FLAC)';
  if (ascii(head, 4, 'ftyp')) return 'an MP4/M4A file';
  if (ascii(head, 0, 'FORM') && (ascii(head, 8, 'AIFF') || ascii(head, 8, 'AIFC'))) return 'an AIFF file';
  if (head[0] === 0xff && ((head[1] ?? 0) & 0xf6) === 0xf0) return 'raw AAC (ADTS)';
  if (head[0] === 0x1a && head[1] === 0x45 && head[2] === 0xdf && head[3] === 0xa3) return 'a Matroska/WebM file';
  if (ascii(head, 0, 'caff')) return 'a Core Audio (CAF) file';
  if (ascii(head, 0, 'wvpk')) return 'a WavPack file';
  if (ascii(head, 0, 'MAC ')) return "a Monkey's Audio (APE) file";
  if (ascii(head, 0, 'MThd')) return 'a MIDI file';
  if (ascii(head, 0, 'PK\u0003\u0004')) return 'a ZIP archive';
  if (ascii(head, 0, '%PDF')) return 'a PDF document';
  if (ascii(head, 0, 'ID3')) return 'an ID3 tag with no MPEG audio after it';
  if (looksLikeText(head)) return 'text';
  const hex = Array.from(head.subarray(0, 8), (x) => x.toString(16).padStart(2, '0')).join(' ');
  return `unrecognised data (first bytes ${hex})`;
}

function looksLikeText(head: Uint8Array): boolean {
  const n = Math.min(head.length, 1024);
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = head[i] as number;
    if (c < 0x09 || (c > 0x0d && c < 0x20) || c === 0x7f) return false;
  }
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(head.subarray(0, n));
  } catch {
    // A cut in the middle of a multi-byte character at the end is still text.
    return n === head.length ? false : true;
  }
  return true;
}

// ---------------------------------------------------------------- output

/** Keeps every sample finite and within ±SAMPLE_LIMIT, in place. */
function sanitize(x: Float32Array, from = 0, to = x.length): void {
  for (let i = from; i < to; i++) {
    const v = x[i] as number;
    if (v - v !== 0) x[i] = 0; // NaN or ±Infinity
    else if (v > SAMPLE_LIMIT) x[i] = SAMPLE_LIMIT;
    else if (v < -SAMPLE_LIMIT) x[i] = -SAMPLE_LIMIT;
  }
}

/**
 * The one growing interleaved-stereo buffer a decode writes into. Sized from
 * the best estimate of the length so that, usually, no copy is ever made.
 */
class StereoSink {
  frames = 0;
  private buffer: Float32Array;
  private bytes: Uint8Array;
  private byteFill = 0;
  private readonly maxFrames: number;
  private readonly onTooLong: () => Error;

  constructor(estimatedFrames: number, maxFrames: number, onTooLong: () => Error) {
    this.maxFrames = maxFrames;
    this.onTooLong = onTooLong;
    this.buffer = new Float32Array(2 * Math.max(1024, Math.min(maxFrames, Math.ceil(estimatedFrames))));
    this.bytes = new Uint8Array(this.buffer.buffer);
  }

  private ensure(frames: number): void {
    if (frames > this.maxFrames) throw this.onTooLong();
    if (frames * 2 <= this.buffer.length) return;
    const capacity = Math.min(this.maxFrames, Math.max(frames, Math.ceil((this.buffer.length / 2) * 1.25)));
    const grown = new Float32Array(capacity * 2);
    grown.set(this.buffer.subarray(0, this.frames * 2));
    this.buffer = grown;
    this.bytes = new Uint8Array(grown.buffer);
  }

  /** Appends interleaved frames of 1 channel (duplicated to both) or 2. */
  push(interleaved: Float32Array, channels: 1 | 2): void {
    const n = interleaved.length / channels;
    if (n === 0) return;
    this.ensure(this.frames + n);
    const out = this.buffer;
    const o = this.frames * 2;
    if (channels === 2) {
      out.set(interleaved, o);
    } else {
      for (let i = 0; i < n; i++) {
        const v = interleaved[i] as number;
        out[o + 2 * i] = v;
        out[o + 2 * i + 1] = v;
      }
    }
    sanitize(out, o, o + 2 * n);
    this.frames += n;
    this.byteFill = this.frames * 8;
  }

  /** Appends the first `n` samples of each plane (1 plane → duplicated). */
  pushPlanar(planes: readonly Float32Array[], n: number): void {
    if (n === 0) return;
    this.ensure(this.frames + n);
    const out = this.buffer;
    const o = this.frames * 2;
    const left = planes[0] as Float32Array;
    const right = (planes[1] ?? left) as Float32Array;
    for (let i = 0; i < n; i++) {
      out[o + 2 * i] = left[i] as number;
      out[o + 2 * i + 1] = right[i] as number;
    }
    sanitize(out, o, o + 2 * n);
    this.frames += n;
    this.byteFill = this.frames * 8;
  }

  /** Appends raw little-endian f32 stereo bytes as they arrive from a pipe (any split). */
  pushBytes(chunk: Uint8Array): void {
    const end = this.byteFill + chunk.length;
    this.ensure(Math.ceil(end / 8));
    this.bytes.set(chunk, this.byteFill);
    sanitize(this.buffer, this.byteFill >> 2, end >> 2);
    this.byteFill = end;
    this.frames = Math.floor(end / 8);
  }

  /** The samples, without a copy unless the estimate was far off. */
  finish(): Float32Array {
    const used = this.frames * 2;
    const slack = this.buffer.length - used;
    if (slack === 0) return this.buffer;
    // A little slack stays (a view); a lot is given back (one copy).
    return slack * 4 <= Math.max(256 * 1024, this.buffer.byteLength * 0.02) ? this.buffer.subarray(0, used) : this.buffer.slice(0, used);
  }
}

/** Carries an exception thrown by the caller's onProgress out of the decode, to be rethrown as it was. */
class CallbackFailure {
  readonly error: unknown;
  constructor(error: unknown) {
    this.error = error;
  }
}

/** Calls back at most once per percent, always rising, and always with 1 at the end. */
function progressReporter(callback: ((fraction: number) => void) | undefined): (fraction: number) => void {
  let last = -1;
  return (fraction) => {
    if (!callback) return;
    const f = Math.min(1, Math.max(0, fraction));
    if (f > last && (f === 1 || f - last >= 0.01)) {
      last = f;
      try {
        callback(f);
      } catch (e) {
        throw new CallbackFailure(e);
      }
    }
  };
}

// ---------------------------------------------------------------- shared checks

interface Job {
  readonly file: string;
  readonly name: string;
  readonly src: ByteSource;
  readonly container: AudioContainer;
  /** Where the audio stream starts (after any ID3 tags). */
  readonly audioStart: number;
  readonly maxSeconds: number;
  readonly maxOutputFrames: number;
  readonly report: (fraction: number) => void;
}

/** What the container's own header says, read before any decoding. */
interface HeaderFacts {
  readonly sampleRate: number | null;
  readonly channels: number | null;
  /** Exact source frames when the header states them (WAV, FLAC STREAMINFO). */
  readonly exactFrames: number | null;
  /** Best guess of source frames, for sizing the output. */
  readonly estimatedFrames: number | null;
  readonly wav: WavLayout | null;
}

function fail(job: Pick<Job, 'file'>, code: AudioDecodeErrorCode, message: string, cause?: unknown): AudioDecodeError {
  return new AudioDecodeError(code, job.file, message, cause === undefined ? undefined : { cause });
}

function tooManyChannels(job: Job, channels: number): AudioDecodeError {
  return fail(job, 'too_many_channels', `${job.name} has ${channels} channels; a stem must be mono or stereo (export surround mixes as separate stereo stems)`);
}

function tooLong(job: Job, seconds?: number): AudioDecodeError {
  const length = seconds === undefined ? 'is longer than' : `is ${formatDuration(seconds)} long, longer than`;
  return fail(job, 'too_long', `${job.name} ${length} the ${formatDuration(job.maxSeconds)} a stem may last`);
}

function emptyStem(job: Pick<Job, 'file' | 'name'>): AudioDecodeError {
  return fail(job, 'empty', `${job.name} contains no audio (0 samples)`);
}

function formatDuration(seconds: number): string {
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s` : `${seconds < 10 ? seconds.toFixed(1) : s} s`;
}

function checkLimits(job: Job, channels: number | null, frames: number | null, sampleRate: number | null): void {
  if (channels !== null && channels > 2) throw tooManyChannels(job, channels);
  if (frames !== null && sampleRate) {
    if (frames === 0) throw emptyStem(job);
    if (resampledFrameCount(frames, sampleRate, OUTPUT_SAMPLE_RATE) > job.maxOutputFrames) throw tooLong(job, frames / sampleRate);
  }
}

async function readHeaderFacts(job: Job): Promise<HeaderFacts> {
  const { src } = job;
  if (job.container === 'wav') {
    let layout: WavLayout;
    try {
      layout = await scanWav(src);
    } catch (e) {
      if (!(e instanceof WavError)) throw e;
      const code = e.code === 'unsupported' ? 'unsupported_format' : 'malformed';
      throw fail(job, code, `${job.name} is not a usable WAV file: ${e.message}${code === 'unsupported_format' ? ` (${ACCEPTED})` : ''}`, e);
    }
    const { channels, sampleRate } = layout.format;
    checkLimits(job, channels, layout.frames, sampleRate);
    return { sampleRate, channels, exactFrames: layout.frames, estimatedFrames: layout.frames, wav: layout };
  }
  if (job.container === 'flac') {
    // fLaC, then a metadata block header (last-flag | type 0 = STREAMINFO, 24-bit length 34), then STREAMINFO.
    const b = await src.read(job.audioStart, 42);
    if (b.length < 42 || ((b[4] ?? 0) & 0x7f) !== 0) throw fail(job, 'malformed', `${job.name} is not a usable FLAC file: no STREAMINFO block after the fLaC marker`);
    const sampleRate = ((b[18] as number) << 12) | ((b[19] as number) << 4) | ((b[20] as number) >> 4);
    const channels = (((b[20] as number) >> 1) & 7) + 1;
    const totalSamples = ((b[21] as number) & 0x0f) * 2 ** 32 + (((b[22] as number) << 24) >>> 0) + ((b[23] as number) << 16) + ((b[24] as number) << 8) + (b[25] as number);
    if (sampleRate === 0) throw fail(job, 'malformed', `${job.name} is not a usable FLAC file: STREAMINFO says a sample rate of 0 Hz`);
    const exactFrames = totalSamples > 0 ? totalSamples : null; // 0 means "unknown" in FLAC
    checkLimits(job, channels, exactFrames, sampleRate);
    return { sampleRate, channels, exactFrames, estimatedFrames: exactFrames, wav: null };
  }
  // MP3: the first frame gives rate and channels; a Xing/Info or VBRI frame gives the frame count.
  const b = await src.read(job.audioStart, SNIFF_BYTES);
  let at = -1;
  for (let i = 0; i + 4 <= b.length; i++) {
    if (b[i] === 0xff && mpegFrameAt(b, i)) {
      at = i;
      break;
    }
  }
  const h = at >= 0 ? parseMpegHeader(b, at) : null;
  if (!h) throw fail(job, 'malformed', `${job.name} is not a usable MP3 file: no MPEG audio frame in its first ${SNIFF_BYTES / 1024} KB`);
  const sideInfo = h.mpeg1 ? (h.channels === 1 ? 17 : 32) : h.channels === 1 ? 9 : 17;
  const be32 = (o: number) => (((b[o] as number) << 24) >>> 0) + ((b[o + 1] as number) << 16) + ((b[o + 2] as number) << 8) + (b[o + 3] as number);
  let xingFrames: number | null = null;
  const xing = at + 4 + sideInfo;
  if ((ascii(b, xing, 'Xing') || ascii(b, xing, 'Info')) && xing + 12 <= b.length && (be32(xing + 4) & 1) === 1) xingFrames = be32(xing + 8);
  else if (ascii(b, at + 36, 'VBRI') && at + 54 <= b.length) xingFrames = be32(at + 36 + 14);
  let estimatedFrames: number | null = null;
  if (xingFrames !== null) estimatedFrames = xingFrames * h.samplesPerFrame;
  else if (h.bitrateKbps > 0) estimatedFrames = Math.ceil((((src.size - job.audioStart) * 8) / (h.bitrateKbps * 1000)) * h.sampleRate);
  // The frame count includes the encoder's delay and padding (up to ~3000 samples): allow for it.
  if (xingFrames !== null && estimatedFrames !== null && (estimatedFrames - 3000) / h.sampleRate > job.maxSeconds) throw tooLong(job, estimatedFrames / h.sampleRate);
  return { sampleRate: h.sampleRate, channels: h.channels, exactFrames: null, estimatedFrames, wav: null };
}

function checkFlacComplete(job: Job, facts: HeaderFacts, outputFrames: number): void {
  if (job.container !== 'flac' || facts.exactFrames === null || facts.sampleRate === null) return;
  const expected = resampledFrameCount(facts.exactFrames, facts.sampleRate, OUTPUT_SAMPLE_RATE);
  if (outputFrames + FLAC_SHORTFALL_TOLERANCE_FRAMES < expected) {
    const got = (outputFrames / OUTPUT_SAMPLE_RATE).toFixed(2);
    const want = (facts.exactFrames / facts.sampleRate).toFixed(2);
    throw fail(job, 'malformed', `${job.name} is cut short or damaged: it decodes to ${got} s but its header says ${want} s`);
  }
}

function sourceFramesFrom(facts: HeaderFacts, sourceRate: number, outputFrames: number): number {
  if (facts.exactFrames !== null) return facts.exactFrames;
  return sourceRate === OUTPUT_SAMPLE_RATE ? outputFrames : Math.round((outputFrames * sourceRate) / OUTPUT_SAMPLE_RATE);
}

// ---------------------------------------------------------------- ffmpeg path

const STDERR_KEEP_BYTES = 16384;

interface FfmpegRun {
  readonly done: Promise<{ stderrHead: string }>;
  /** Stops the decode; `done` then rejects with `reason`. */
  abort(reason: unknown): void;
}

/** Spawns ffmpeg writing 48 kHz stereo f32le to a pipe, straight into the sink. */
function runFfmpegDecode(ffmpeg: string, job: Job, sink: StereoSink, soxr: boolean, verbose: boolean, expectedFrames: number | null): FfmpegRun {
  const args = [
    '-nostdin', '-hide_banner', '-nostats', '-v', verbose ? 'info' : 'error',
    '-i', ffmpegFileArg(job.file),
    '-map', '0:a:0', '-vn', '-sn', '-dn',
    ...(soxr ? ['-af', `aresample=${OUTPUT_SAMPLE_RATE}:resampler=soxr`] : []),
    '-ar', String(OUTPUT_SAMPLE_RATE), '-ac', '2',
    // A backstop in case the header under-reported the length; the sink enforces the real limit.
    '-t', String(job.maxSeconds + 2),
    '-c:a', 'pcm_f32le', '-f', 'f32le', 'pipe:1',
  ];
  const child = spawn(ffmpeg, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let failure: unknown = null;
  const abort = (reason: unknown) => {
    if (failure === null) failure = reason;
    child.kill('SIGKILL');
  };
  const done = new Promise<{ stderrHead: string }>((resolve, reject) => {
    let stderrHead = '';
    let stderrTail = '';
    child.stdout.on('data', (chunk: Buffer) => {
      if (failure !== null) return;
      try {
        sink.pushBytes(chunk);
        if (expectedFrames) job.report(Math.min(0.99, sink.frames / expectedFrames));
      } catch (e) {
        abort(e);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (text: string) => {
      if (stderrHead.length < STDERR_KEEP_BYTES) stderrHead += text.slice(0, STDERR_KEEP_BYTES - stderrHead.length);
      stderrTail = (stderrTail + text).slice(-STDERR_KEEP_BYTES);
    });
    child.once('error', (e) => {
      // Spawning failed: 'close' may never come, so settle here.
      if (failure === null) failure = fail(job, 'decoder_failed', `${job.name}: could not run ffmpeg (${ffmpeg}): ${e.message}`, e);
      reject(failure);
    });
    child.once('close', (code, signal) => {
      if (failure !== null) reject(failure);
      else if (code === 0) resolve({ stderrHead });
      else if (code === null) reject(fail(job, 'decoder_failed', `${job.name}: ffmpeg was stopped by ${signal} while decoding it`));
      else reject(fail(job, 'malformed', `${job.name} could not be decoded by ffmpeg (exit ${code}): ${lastLine(stderrTail) || 'no message'}`));
    });
  });
  return { done, abort };
}

/** Applies what ffprobe/ffmpeg say about the source to the same limits the header checks enforce. */
function checkProbed(job: Job, audio: ProbedAudio): ProbedAudio {
  if (audio.channels > 2) throw tooManyChannels(job, audio.channels);
  // Probe durations of MP3 are estimates: a second of grace avoids refusing on rounding.
  if (audio.durationSeconds !== null && audio.durationSeconds - 1 > job.maxSeconds) throw tooLong(job, audio.durationSeconds);
  return audio;
}

async function decodeWithFfmpeg(ffmpeg: string, job: Job, facts: HeaderFacts): Promise<DecodedStem> {
  const [ffprobe, soxr] = await Promise.all([ffprobeFor(ffmpeg), ffmpegHasSoxr(ffmpeg)]);
  const expectedSourceFrames = facts.estimatedFrames;
  const expectedFrames = expectedSourceFrames !== null && facts.sampleRate
    ? resampledFrameCount(expectedSourceFrames, facts.sampleRate, OUTPUT_SAMPLE_RATE)
    : null;
  const sink = new StereoSink((expectedFrames ?? 60 * OUTPUT_SAMPLE_RATE) * 1.002 + 4096, job.maxOutputFrames, () => tooLong(job));

  // The header checks have already refused what they can, so the probe runs beside the decode
  // rather than before it (each ffmpeg process costs ~0.2 s just to start).
  const run = runFfmpegDecode(ffmpeg, job, sink, soxr, ffprobe === null, expectedFrames);
  let source: ProbedAudio;
  if (ffprobe) {
    const probed = probeAudio(job.file, { ffmpeg, ffprobe }).then(
      (outcome) => {
        if (!outcome.ok) throw fail(job, 'malformed', `${job.name} could not be read by ffprobe: ${outcome.reason}`);
        return checkProbed(job, outcome.audio);
      },
      (e: unknown) => {
        throw fail(job, 'decoder_failed', `${job.name}: could not run ${ffprobe}: ${(e as Error).message}`, e);
      },
    );
    probed.catch((e: unknown) => run.abort(e));
    try {
      [source] = await Promise.all([probed, run.done]);
    } catch (e) {
      run.abort(e);
      await Promise.allSettled([probed, run.done]);
      throw e;
    }
  } else {
    const { stderrHead } = await run.done;
    const banner = parseFfmpegBanner(stderrHead);
    if (!banner) throw fail(job, 'decoder_failed', `${job.name}: ffmpeg decoded it but did not describe the source`);
    source = checkProbed(job, banner);
  }

  if (sink.frames === 0) throw emptyStem(job);
  checkFlacComplete(job, facts, sink.frames);
  return {
    sampleRate: OUTPUT_SAMPLE_RATE,
    channels: 2,
    frames: sink.frames,
    interleaved: sink.finish(),
    source: { container: job.container, sampleRate: source.sampleRate, channels: source.channels, frames: sourceFramesFrom(facts, source.sampleRate, sink.frames) },
    resampled: source.sampleRate !== OUTPUT_SAMPLE_RATE,
    decoder: 'ffmpeg',
  };
}

// ---------------------------------------------------------------- built-in path

/** Feeds planar or interleaved source blocks through an optional resampler into the sink. */
class BuiltinPipeline {
  readonly sink: StereoSink;
  sourceFrames = 0;
  private readonly resampler: Resampler | null;
  private readonly channels: 1 | 2;

  constructor(job: Job, sourceRate: number, channels: 1 | 2, estimatedSourceFrames: number | null) {
    this.channels = channels;
    this.resampler = sourceRate === OUTPUT_SAMPLE_RATE ? null : new Resampler(sourceRate, OUTPUT_SAMPLE_RATE, channels);
    const estimate = estimatedSourceFrames === null ? 60 * OUTPUT_SAMPLE_RATE : resampledFrameCount(estimatedSourceFrames, sourceRate, OUTPUT_SAMPLE_RATE);
    this.sink = new StereoSink(estimate, job.maxOutputFrames, () => tooLong(job));
  }

  interleaved(block: Float32Array): void {
    sanitize(block); // before the filter, or one NaN would spread across a hundred outputs
    this.sourceFrames += block.length / this.channels;
    this.sink.push(this.resampler ? this.resampler.process(block) : block, this.channels);
  }

  planar(planes: readonly Float32Array[], n: number): void {
    for (const p of planes) sanitize(p, 0, n);
    this.sourceFrames += n;
    if (this.resampler) this.sink.push(this.resampler.processPlanar(planes, n), this.channels);
    else this.sink.pushPlanar(planes, n);
  }

  end(): void {
    if (this.resampler) this.sink.push(this.resampler.flush(), this.channels);
  }
}

function builtinResult(job: Job, pipeline: BuiltinPipeline, sourceRate: number, sourceChannels: number, facts: HeaderFacts): DecodedStem {
  if (pipeline.sink.frames === 0) throw emptyStem(job);
  checkFlacComplete(job, facts, pipeline.sink.frames);
  return {
    sampleRate: OUTPUT_SAMPLE_RATE,
    channels: 2,
    frames: pipeline.sink.frames,
    interleaved: pipeline.sink.finish(),
    source: { container: job.container, sampleRate: sourceRate, channels: sourceChannels, frames: pipeline.sourceFrames },
    resampled: sourceRate !== OUTPUT_SAMPLE_RATE,
    decoder: 'builtin',
  };
}

async function decodeWavBuiltin(job: Job, layout: WavLayout, facts: HeaderFacts): Promise<DecodedStem> {
  const { sampleRate, channels } = layout.format;
  const pipeline = new BuiltinPipeline(job, sampleRate, channels as 1 | 2, layout.frames);
  try {
    for await (const block of readWavBlocks(job.src, layout)) {
      pipeline.interleaved(block);
      job.report((0.99 * pipeline.sourceFrames) / layout.frames);
    }
  } catch (e) {
    if (e instanceof WavError) throw fail(job, 'malformed', `${job.name} is not a usable WAV file: ${e.message}`, e);
    throw e;
  }
  pipeline.end();
  return builtinResult(job, pipeline, sampleRate, channels, facts);
}

interface WasmDecoded {
  channelData: Float32Array[];
  samplesDecoded: number;
  sampleRate: number;
  errors: { message: string }[];
}

/** Shared loop for the WebAssembly decoders: read the file in chunks, decode, and feed the pipeline. */
async function decodeCompressedBuiltin(
  job: Job,
  facts: HeaderFacts,
  decodeChunk: (bytes: Uint8Array) => Promise<WasmDecoded> | WasmDecoded,
  finish: () => Promise<WasmDecoded | null>,
  useChannels: 1 | 2,
): Promise<DecodedStem> {
  let pipeline: BuiltinPipeline | null = null;
  let sourceRate = 0;
  let firstError: string | null = null;
  let errorCount = 0;
  const take = (d: WasmDecoded) => {
    for (const e of d.errors) {
      errorCount++;
      firstError ??= e.message;
    }
    if (d.samplesDecoded === 0) return;
    if (!pipeline) {
      sourceRate = d.sampleRate;
      if (d.channelData.length > 2) throw tooManyChannels(job, d.channelData.length);
      pipeline = new BuiltinPipeline(job, sourceRate, useChannels, facts.estimatedFrames);
    } else if (d.sampleRate !== sourceRate) {
      throw fail(job, 'malformed', `${job.name} changes sample rate mid-file (${sourceRate} Hz to ${d.sampleRate} Hz)`);
    }
    pipeline.planar(d.channelData.slice(0, useChannels), d.samplesDecoded);
  };
  const size = job.src.size;
  for (let pos = job.audioStart; pos < size; pos += READ_CHUNK_BYTES) {
    const bytes = await job.src.read(pos, READ_CHUNK_BYTES);
    take(await decodeChunk(bytes));
    job.report((0.99 * (pos + bytes.length - job.audioStart)) / Math.max(1, size - job.audioStart));
  }
  const tail = await finish();
  if (tail) take(tail);
  const done = pipeline as BuiltinPipeline | null;
  if (!done) {
    if (errorCount > 0) throw fail(job, 'malformed', `${job.name} could not be decoded: ${firstError}`);
    throw emptyStem(job);
  }
  done.end();
  return builtinResult(job, done, sourceRate, facts.channels ?? useChannels, facts);
}

async function decodeFlacBuiltin(job: Job, facts: HeaderFacts): Promise<DecodedStem> {
  const decoder = new FLACDecoder();
  await decoder.ready;
  try {
    return await decodeCompressedBuiltin(job, facts, (b) => decoder.decode(b), () => decoder.flush(), (facts.channels ?? 2) === 1 ? 1 : 2);
  } finally {
    decoder.free();
  }
}

async function decodeMp3Builtin(job: Job, facts: HeaderFacts): Promise<DecodedStem> {
  // Gapless: mpg123 drops the encoder delay and padding that a LAME/Info header declares, as ffmpeg does.
  const decoder = new MPEGDecoder({ enableGapless: true });
  await decoder.ready;
  try {
    // mpg123 always hands out two planes; a mono source is taken from the first only.
    return await decodeCompressedBuiltin(job, facts, (b) => decoder.decode(b), () => Promise.resolve(null), facts.channels === 1 ? 1 : 2);
  } finally {
    decoder.free();
  }
}

// ---------------------------------------------------------------- entry point

function extensionOf(file: string): string {
  return path.extname(file).toLowerCase();
}

/** Finds the container and where its audio starts, looking past ID3v2 tags of any size. */
async function identify(file: string, name: string, src: ByteSource): Promise<{ container: AudioContainer; audioStart: number }> {
  const head = await src.read(0, SNIFF_BYTES);
  const sniffed = sniffContainer(head);
  let container = sniffed;
  let audioStart = 0;
  if (sniffed !== null && sniffed !== 'wav' && ascii(head, 0, 'ID3')) {
    // Tags can be megabytes (cover art) and there can be more than one.
    let at = 0;
    for (let i = 0; i < 8; i++) {
      const header = await src.read(at, 10);
      const length = id3TagLength(header, 0);
      if (length === null) break;
      at += length;
    }
    const after = await src.read(at, SNIFF_BYTES);
    if (ascii(after, 0, 'fLaC')) container = 'flac';
    else {
      // Some taggers leave padding or junk between the tag and the first frame.
      let sync = -1;
      for (let i = 0; i + 4 <= after.length; i++) {
        if (after[i] === 0xff && mpegFrameAt(after, i)) {
          sync = i;
          break;
        }
      }
      container = sync >= 0 ? 'mp3' : null;
      at += Math.max(0, sync);
    }
    audioStart = at;
  }
  if (container === null) {
    throw new AudioDecodeError('unsupported_format', file, `${name} is not an audio stem: found ${describeContent(head)}; ${ACCEPTED}`);
  }
  const ext = extensionOf(file);
  const byName = EXTENSIONS[ext];
  if (byName !== container) {
    const said = ext ? `its name ends in ${ext}` : 'its name has no extension';
    const fix = byName ? `rename it to .${container === 'wav' ? 'wav' : container}` : `give it the .${container} extension`;
    throw new AudioDecodeError('extension_mismatch', file, `${name} contains ${CONTAINER_NAMES[container]} but ${said}; ${fix} or re-export it (${ACCEPTED}, named .wav, .flac or .mp3)`);
  }
  return { container, audioStart };
}

/**
 * Decodes one stem to 48 kHz stereo float. Throws AudioDecodeError (with a
 * message naming the file) for anything that is not a usable stem.
 */
export async function decodeStem(file: string, opts: DecodeStemOptions): Promise<DecodedStem> {
  const maxSeconds = opts.maxSeconds ?? DEFAULT_MAX_SECONDS;
  if (!(maxSeconds > 0)) throw new RangeError(`maxSeconds must be positive, got ${maxSeconds}`);
  const name = path.basename(file);
  let fh: FileHandle;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    throw new AudioDecodeError('unreadable', file, `${name} cannot be read: ${ioReason(e)}`, { cause: e });
  }
  try {
    const stat = await fh.stat();
    if (!stat.isFile()) throw new AudioDecodeError('unreadable', file, `${name} is not a regular file`);
    if (stat.size === 0) throw new AudioDecodeError('empty', file, `${name} is empty (0 bytes)`);
    const src = fileSource(fh, stat.size);
    const { container, audioStart } = await identify(file, name, src);
    const job: Job = {
      file, name, src, container, audioStart, maxSeconds,
      maxOutputFrames: Math.ceil(maxSeconds * OUTPUT_SAMPLE_RATE),
      report: progressReporter(opts.onProgress),
    };
    const facts = await readHeaderFacts(job);
    let stem: DecodedStem;
    // A 48 kHz WAV needs no codec and no resampling: reading it here is several times faster than starting ffmpeg.
    const plainWav = container === 'wav' && facts.wav !== undefined && (facts.wav as WavLayout).format.sampleRate === OUTPUT_SAMPLE_RATE;
    if (opts.ffmpeg && !plainWav) stem = await decodeWithFfmpeg(opts.ffmpeg, job, facts);
    else if (container === 'wav') stem = await decodeWavBuiltin(job, facts.wav as WavLayout, facts);
    else if (container === 'flac') stem = await decodeFlacBuiltin(job, facts);
    else stem = await decodeMp3Builtin(job, facts);
    job.report(1);
    return stem;
  } catch (e) {
    if (e instanceof AudioDecodeError) throw e;
    if (e instanceof CallbackFailure) throw e.error; // the caller's own exception (e.g. a cancellation), untouched
    const code = (e as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) throw new AudioDecodeError('unreadable', file, `${name} cannot be read: ${ioReason(e)}`, { cause: e });
    throw new AudioDecodeError('decoder_failed', file, `${name} could not be decoded: ${(e as Error).message ?? String(e)}`, { cause: e });
  } finally {
    await fh.close().catch(() => {});
  }
}

function ioReason(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ENOENT': return 'no such file';
    case 'EACCES':
    case 'EPERM': return 'permission denied';
    case 'EISDIR': return 'it is a folder';
    default: return code ?? (e as Error).message ?? String(e);
  }
}
