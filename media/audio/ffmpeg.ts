// Locating a native ffmpeg and asking it what it can do. The path comes from
// the caller (the server's config); the environment is not read here.
import { spawn } from 'node:child_process';
import path from 'node:path';

export interface NativeFfmpeg {
  readonly ffmpeg: string;
  /** ffprobe beside ffmpeg, else on PATH; null when neither runs. */
  readonly ffprobe: string | null;
  /** As ffmpeg reports it, e.g. "5.1.9-0+deb12u1" or "N-112345-gabcdef". */
  readonly version: string;
}

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

const PROBE_TIMEOUT_MS = 15_000;
const MAX_CAPTURE_BYTES = 4 << 20;

/** Runs a short command to completion, capturing (bounded) output. Rejects only when it cannot start. */
export function runCapture(command: string, args: readonly string[], timeoutMs = PROBE_TIMEOUT_MS): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: timeoutMs, killSignal: 'SIGKILL' });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    let errBytes = 0;
    child.stdout.on('data', (b: Buffer) => {
      if (outBytes < MAX_CAPTURE_BYTES) out.push(b);
      outBytes += b.length;
    });
    child.stderr.on('data', (b: Buffer) => {
      if (errBytes < MAX_CAPTURE_BYTES) err.push(b);
      errBytes += b.length;
    });
    child.once('error', reject);
    child.once('close', (code, signal) => {
      resolve({ code, signal, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The version word from the first line of `-version`, e.g. "ffmpeg version 6.1.1 Copyright…" → "6.1.1". */
export function parseVersionLine(text: string, program: string): string | null {
  const m = new RegExp(`^${program} version (\\S+)`, 'm').exec(text);
  return m?.[1] ?? null;
}

async function versionOf(binary: string, program: 'ffmpeg' | 'ffprobe'): Promise<string | null> {
  try {
    const r = await runCapture(binary, ['-hide_banner', '-version']);
    if (r.code !== 0) return null;
    return parseVersionLine(r.stdout, program);
  } catch {
    return null;
  }
}

/** The ffprobe that belongs with `ffmpeg`: same folder and naming (…/ffmpeg.exe → …/ffprobe.exe). */
function siblingProbe(ffmpeg: string): string | null {
  if (!ffmpeg.includes('/') && !ffmpeg.includes('\\')) return null;
  const base = path.basename(ffmpeg);
  const probeBase = base.replace(/ffmpeg/i, 'ffprobe');
  return probeBase === base ? null : path.join(path.dirname(ffmpeg), probeBase);
}

/**
 * Finds a native ffmpeg. A given path wins: when it does not run as ffmpeg the
 * answer is null, not some other ffmpeg from PATH, so a wrong setting shows.
 * Without one, `ffmpeg` on PATH is tried; null when there is none.
 */
export async function findNativeFfmpeg(preferredPath?: string | null): Promise<NativeFfmpeg | null> {
  const ffmpeg = preferredPath || 'ffmpeg';
  const version = await versionOf(ffmpeg, 'ffmpeg');
  if (!version) return null;
  return { ffmpeg, ffprobe: await ffprobeFor(ffmpeg), version };
}

const ffprobeByBinary = new Map<string, Promise<string | null>>();

/** The ffprobe to use with this ffmpeg: its sibling, else `ffprobe` on PATH, else null. Cached per binary. */
export function ffprobeFor(ffmpeg: string): Promise<string | null> {
  let known = ffprobeByBinary.get(ffmpeg);
  if (!known) {
    known = (async () => {
      const sibling = siblingProbe(ffmpeg);
      if (sibling && (await versionOf(sibling, 'ffprobe'))) return sibling;
      return (await versionOf('ffprobe', 'ffprobe')) ? 'ffprobe' : null;
    })();
    ffprobeByBinary.set(ffmpeg, known);
  }
  return known;
}

const soxrByBinary = new Map<string, Promise<boolean>>();

/**
 * Whether this ffmpeg's aresample can use libsoxr. Found by trying it on a few
 * milliseconds of generated silence: the option is listed in `-h` even when the
 * library is not compiled in, so help text cannot tell. Cached per binary.
 */
export function ffmpegHasSoxr(ffmpeg: string): Promise<boolean> {
  let known = soxrByBinary.get(ffmpeg);
  if (!known) {
    known = runCapture(ffmpeg, [
      '-nostdin', '-hide_banner', '-v', 'error',
      '-f', 'lavfi', '-i', 'anullsrc=r=44100:cl=stereo', '-t', '0.01',
      '-af', 'aresample=48000:resampler=soxr', '-f', 'null', '-',
    ]).then(
      (r) => r.code === 0,
      () => false,
    );
    soxrByBinary.set(ffmpeg, known);
  }
  return known;
}

/** The audio facts of a file as ffprobe (or ffmpeg's banner) reports them. */
export interface ProbedAudio {
  readonly codec: string;
  readonly sampleRate: number;
  readonly channels: number;
  /** Seconds; null when the container does not say. */
  readonly durationSeconds: number | null;
}

/** Reads `-show_streams -show_format` JSON output for the first audio stream; null when there is none. */
export function parseFfprobeJson(json: string): ProbedAudio | null {
  let doc: unknown;
  try {
    doc = JSON.parse(json);
  } catch {
    return null;
  }
  const d = doc as { streams?: Array<Record<string, unknown>>; format?: Record<string, unknown> };
  const stream = d.streams?.find((s) => s['codec_type'] === 'audio');
  if (!stream) return null;
  const sampleRate = Number(stream['sample_rate']);
  const channels = Number(stream['channels']);
  if (!Number.isFinite(sampleRate) || sampleRate <= 0 || !Number.isInteger(channels) || channels <= 0) return null;
  const duration = Number(stream['duration'] ?? d.format?.['duration']);
  return {
    codec: String(stream['codec_name'] ?? 'unknown'),
    sampleRate,
    channels,
    durationSeconds: Number.isFinite(duration) && duration >= 0 ? duration : null,
  };
}

const LAYOUT_CHANNELS: Readonly<Record<string, number>> = {
  mono: 1, stereo: 2, '2.1': 3, '3.0': 3, '3.0(back)': 3, '4.0': 4, quad: 4, 'quad(side)': 4, '3.1': 4,
  '5.0': 5, '5.0(side)': 5, '4.1': 5, '5.1': 6, '5.1(side)': 6, '6.0': 6, '6.0(front)': 6, hexagonal: 6,
  '6.1': 7, '6.1(back)': 7, '6.1(front)': 7, '7.0': 7, '7.0(front)': 7, '7.1': 8, '7.1(wide)': 8,
  '7.1(wide-side)': 8, octagonal: 8, hexadecagonal: 16, downmix: 2, '22.2': 24,
};

/**
 * Parses the input description ffmpeg prints for `-i FILE`, e.g.
 * "  Duration: 00:01:30.00, start: …" and
 * "  Stream #0:0: Audio: flac, 44100 Hz, stereo, s16".
 */
export function parseFfmpegBanner(stderr: string): ProbedAudio | null {
  const stream = /Stream #\d+:\d+[^:]*: Audio: ([^,\s]+)[^,]*, (\d+) Hz, ([^,]+)/.exec(stderr);
  if (!stream) return null;
  const layout = (stream[3] ?? '').trim();
  const counted = /^(\d+) channels/.exec(layout);
  const channels = counted ? Number(counted[1]) : (LAYOUT_CHANNELS[layout] ?? NaN);
  if (!Number.isInteger(channels)) return null;
  const dur = /Duration: (\d+):(\d{2}):(\d{2}(?:\.\d+)?)/.exec(stderr);
  const durationSeconds = dur ? Number(dur[1]) * 3600 + Number(dur[2]) * 60 + Number(dur[3]) : null;
  return { codec: stream[1] ?? 'unknown', sampleRate: Number(stream[2]), channels, durationSeconds };
}

/** The last non-empty line of a tool's stderr: usually the reason it stopped. */
export function lastLine(stderr: string): string {
  const lines = stderr.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  return lines.at(-1) ?? '';
}

/** A path ffmpeg reads as a plain file: no protocol prefix ("concat:", "http:") or "-" is ever interpreted. */
export function ffmpegFileArg(file: string): string {
  return `file:${path.resolve(file)}`;
}

export type ProbeOutcome = { readonly ok: true; readonly audio: ProbedAudio } | { readonly ok: false; readonly reason: string };

/** Source facts from ffprobe JSON when there is an ffprobe, else from ffmpeg's own input banner. */
export async function probeAudio(file: string, tools: { ffmpeg: string; ffprobe: string | null }): Promise<ProbeOutcome> {
  if (tools.ffprobe) {
    const r = await runCapture(tools.ffprobe, [
      '-v', 'error', '-print_format', 'json', '-show_streams', '-show_format', '-select_streams', 'a:0', ffmpegFileArg(file),
    ]);
    const audio = r.code === 0 ? parseFfprobeJson(r.stdout) : null;
    if (audio) return { ok: true, audio };
    return { ok: false, reason: lastLine(r.stderr) || 'ffprobe found no audio stream' };
  }
  // Without an output ffmpeg exits 1 after describing the input; that description is what we need.
  const r = await runCapture(tools.ffmpeg, ['-nostdin', '-hide_banner', '-i', ffmpegFileArg(file)]);
  const audio = parseFfmpegBanner(r.stderr);
  if (audio) return { ok: true, audio };
  const reason = lastLine(r.stderr.replace(/At least one output file must be specified\s*$/, ''));
  return { ok: false, reason: reason || 'ffmpeg found no audio stream' };
}
