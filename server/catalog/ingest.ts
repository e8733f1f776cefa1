// Ingest of a release folder: check everything, decode the stems once to 48 kHz
// stereo float, analyse them, stage every file under DATA_DIR/tmp, then move the
// staged folder into place and record the release in one step. A refused ingest
// leaves nothing behind. With an S3 blob store the staged files are uploaded to
// `releases/<id>/<version>/` first and the record written only when all are
// stored, so no node sees the release before its files are there.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { loadImage } from '@napi-rs/canvas';
import {
  MANIFEST_FILE_NAME,
  ReleaseManifestSchema,
  describeManifestIssues,
  type ReleaseManifest,
} from '../../shared/release-manifest.ts';
import { AudioDecodeError, decodeStem } from '../../media/audio/decode.ts';
import { readWavFloat32, writeWavFloat32 } from '../../media/audio/wav.ts';
import { VisualPackError, buildVisualPack, headerSize, writeVisualPack } from '../../media/visuals/visual-pack.ts';
import { DataLayout, PathEscapeError, resolveInside } from '../store/paths.ts';
import type { BlobStore } from '../store/blob-store.ts';
import { releaseFileType, releaseFilesPrefix } from './release-files.ts';
import { ReleaseExistsError, type ArtworkInfo, type ReleaseRecord, type StemInfo, type Store } from '../store/store.ts';

export const SAMPLE_RATE = 48000;
const MAX_MANIFEST_BYTES = 1024 * 1024;
const MAX_STEM_BYTES = 2 * 1024 * 1024 * 1024;
const MAX_ARTWORK_BYTES = 40 * 1024 * 1024;
const MAX_ARTWORK_SIDE = 8192;
const MIN_ARTWORK_SIDE = 64;
/** Decoders disagree by a few ms at the ends (MP3 padding); more than this is a different length. */
const STEM_LENGTH_TOLERANCE_SEC = 0.05;
/** Loudness envelope resolution kept for the visuals and the UI. */
export const ENVELOPE_HZ = 20;

export type IngestStep = 'manifest' | 'decode' | 'analyse' | 'artwork' | 'commit';

export interface IngestProgress {
  step: IngestStep;
  /** The file being worked on, relative to the release folder. */
  file?: string;
  /** 0..1 within this step and file. */
  fraction: number;
}

export interface IngestOptions {
  store: Store;
  layout: DataLayout;
  /** Native ffmpeg, or null for the decoders that need nothing outside npm. */
  ffmpeg: string | null;
  replace?: boolean;
  /** Where the files go when it is a bucket (kind `s3`); otherwise (or without it) DATA_DIR/releases/<id>. */
  blobs?: BlobStore;
  onProgress?: (p: IngestProgress) => void;
  signal?: AbortSignal;
}

export interface IngestResult {
  record: ReleaseRecord;
  notes: string[];
}

/** A release refused, with what is wrong, naming the file. */
export class IngestError extends Error {
  override readonly name = 'IngestError';
  /** The file at fault, relative to the release folder, or null for the release as a whole. */
  readonly file: string | null;
  readonly problems: string[];

  constructor(file: string | null, problems: string[]) {
    super(`${file ?? 'release'}: ${problems.join('; ')}`);
    this.file = file;
    this.problems = problems;
  }
}

export interface ReleaseAnalysis {
  sampleRate: number;
  envelopeHz: number;
  /** RMS per 1/envelopeHz s window, per stem and for the plain sum. */
  envelopes: Record<string, number[]>;
}

export async function ingestRelease(folder: string, opts: IngestOptions): Promise<IngestResult> {
  const root = await realDir(folder);
  const progress = opts.onProgress ?? (() => {});
  const notes: string[] = [];

  progress({ step: 'manifest', file: MANIFEST_FILE_NAME, fraction: 0 });
  const manifest = await readManifest(root);
  progress({ step: 'manifest', file: MANIFEST_FILE_NAME, fraction: 1 });

  if (!opts.replace && (await opts.store.getRelease(manifest.id))) {
    throw new IngestError(MANIFEST_FILE_NAME, [`a release with id "${manifest.id}" exists already (ingest with --replace to update it)`]);
  }

  // Every referenced file must exist inside the folder before any long work starts.
  const stemPaths = new Map<string, string>();
  for (const stem of manifest.stems) stemPaths.set(stem.id, await insideFile(root, stem.file, MAX_STEM_BYTES));
  const artPaths = new Map<string, string>();
  for (const art of manifest.artwork) artPaths.set(art.id, await insideFile(root, art.file, MAX_ARTWORK_BYTES));

  await fsp.mkdir(opts.layout.tmpDir, { recursive: true });
  const staging = await fsp.mkdtemp(path.join(opts.layout.tmpDir, 'ingest-'));
  try {
    await fsp.mkdir(path.join(staging, 'stems'));
    await fsp.mkdir(path.join(staging, 'artwork'));

    const decoded: { id: string; title: string; file: string; frames: number; staged: string }[] = [];
    const analysis: ReleaseAnalysis = { sampleRate: SAMPLE_RATE, envelopeHz: ENVELOPE_HZ, envelopes: {} };
    const stems: StemInfo[] = [];
    let mixEnvelope: number[] = [];

    for (const stem of manifest.stems) {
      opts.signal?.throwIfAborted();
      const source = stemPaths.get(stem.id)!;
      const onProgress = (fraction: number) => progress({ step: 'decode', file: stem.file, fraction });
      let pcm;
      try {
        pcm = await decodeStem(source, { ffmpeg: opts.ffmpeg, onProgress });
      } catch (err) {
        if (err instanceof AudioDecodeError) throw new IngestError(stem.file, [stripFilePrefix(err.message, source)]);
        throw err;
      }
      progress({ step: 'decode', file: stem.file, fraction: 1 });
      if (pcm.resampled) notes.push(`${stem.file}: ${pcm.source.sampleRate} Hz, resampled to ${SAMPLE_RATE} Hz`);
      if (pcm.source.channels === 1) notes.push(`${stem.file}: mono, played on both channels`);

      progress({ step: 'analyse', file: stem.file, fraction: 0 });
      const a = analyse(pcm.interleaved);
      if (a.peak === 0) throw new IngestError(stem.file, ['is silent from start to end']);
      stems.push({ id: stem.id, title: stem.title, peak: round(a.peak, 6), rms: round(a.rms, 6) });
      analysis.envelopes[stem.id] = a.envelope.map((v) => round(v, 5));
      mixEnvelope = addEnvelopes(mixEnvelope, a.envelope);
      progress({ step: 'analyse', file: stem.file, fraction: 1 });

      const staged = path.join(staging, 'stems', `${stem.id}.wav`);
      await writeWavFloat32(staged, pcm.interleaved, SAMPLE_RATE, 2);
      decoded.push({ id: stem.id, title: stem.title, file: stem.file, frames: pcm.frames, staged });
    }
    analysis.envelopes['mix'] = mixEnvelope.map((v) => round(v, 5));

    const frames = await equaliseLengths(decoded, notes);
    const durationSec = frames / SAMPLE_RATE;
    manifest.excerpts.forEach((e, i) => {
      if (e.endSec > durationSec + 1e-6) {
        throw new IngestError(MANIFEST_FILE_NAME, [
          `excerpts[${i}] ("${e.id}") ends at ${e.endSec} s, after the end of the stems (${durationSec.toFixed(2)} s)`,
        ]);
      }
    });

    const artwork: ArtworkInfo[] = [];
    for (const [i, art] of manifest.artwork.entries()) {
      opts.signal?.throwIfAborted();
      progress({ step: 'artwork', file: art.file, fraction: i / manifest.artwork.length });
      const image = await checkImage(artPaths.get(art.id)!, art.file);
      const fileName = `${art.id}${image.mimeType === 'image/png' ? '.png' : '.jpg'}`;
      await fsp.copyFile(artPaths.get(art.id)!, path.join(staging, 'artwork', fileName));
      artwork.push({ id: art.id, title: art.title, kind: art.kind, tags: art.tags, fileName, ...image, consent: art.consent });
      if (!art.consent) notes.push(`${art.file}: no consent from the artist, kept on record but never used`);
    }
    if (!artwork.some((a) => a.consent)) {
      throw new IngestError(MANIFEST_FILE_NAME, ['no artwork has the artist\'s consent ("consent": true); the visuals need at least one']);
    }

    // The visual pack: working textures, palettes and salient regions of the consented artwork.
    progress({ step: 'artwork', file: 'visual pack', fraction: 0.9 });
    try {
      const pack = await buildVisualPack(
        await Promise.all(
          artwork.map(async (a) => ({
            id: a.id,
            tags: a.tags,
            consent: a.consent,
            bytes: await fsp.readFile(path.join(staging, 'artwork', a.fileName)),
            mimeType: a.mimeType,
          })),
        ),
      );
      await writeVisualPack(path.join(staging, 'visual-pack'), pack);
      for (const a of artwork) a.palette = pack.artwork.find((p) => p.id === a.id)?.palette.map((c) => c.hex) ?? [];
    } catch (err) {
      if (err instanceof VisualPackError) {
        const art = manifest.artwork.find((x) => x.id === err.assetId);
        throw new IngestError(art?.file ?? MANIFEST_FILE_NAME, [err.message]);
      }
      throw err;
    }

    await fsp.writeFile(path.join(staging, 'analysis.json'), JSON.stringify(analysis));
    await fsp.writeFile(path.join(staging, MANIFEST_FILE_NAME), JSON.stringify(manifest, null, 2));

    const record: ReleaseRecord = {
      id: manifest.id,
      title: manifest.title,
      artist: manifest.artist,
      frames,
      durationSec: round(durationSec, 6),
      manifest,
      stems,
      artwork,
      ingestedAt: new Date().toISOString(),
      notes,
    };

    progress({ step: 'commit', fraction: 0 });
    opts.signal?.throwIfAborted();
    const afterwards = await commit(record, staging, opts);
    progress({ step: 'commit', fraction: 1 });
    return { record, notes: [...notes, ...afterwards] };
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

async function realDir(folder: string): Promise<string> {
  let stat;
  try {
    stat = await fsp.stat(folder);
  } catch {
    throw new IngestError(null, [`the folder ${folder} does not exist or cannot be read`]);
  }
  if (!stat.isDirectory()) throw new IngestError(null, [`${folder} is not a folder; give the folder that holds ${MANIFEST_FILE_NAME}`]);
  return fsp.realpath(folder);
}

async function readManifest(root: string): Promise<ReleaseManifest> {
  const file = path.join(root, MANIFEST_FILE_NAME);
  let stat;
  try {
    stat = await fsp.stat(file);
  } catch {
    throw new IngestError(MANIFEST_FILE_NAME, ['is missing; a release folder needs a manifest (see the README, "Release format")']);
  }
  if (!stat.isFile()) throw new IngestError(MANIFEST_FILE_NAME, ['is not a file']);
  if (stat.size > MAX_MANIFEST_BYTES) throw new IngestError(MANIFEST_FILE_NAME, [`is ${stat.size} bytes; at most ${MAX_MANIFEST_BYTES} are accepted`]);
  let json: unknown;
  try {
    json = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (err) {
    throw new IngestError(MANIFEST_FILE_NAME, [`is not valid JSON (${(err as Error).message})`]);
  }
  const parsed = ReleaseManifestSchema.safeParse(json);
  if (!parsed.success) throw new IngestError(MANIFEST_FILE_NAME, describeManifestIssues(parsed.error));
  return parsed.data;
}

/** Resolves a manifest path inside the folder, following links, and checks it is a readable file of sane size. */
async function insideFile(root: string, relative: string, maxBytes: number): Promise<string> {
  let target: string;
  try {
    target = resolveInside(root, relative);
  } catch (err) {
    if (err instanceof PathEscapeError) throw new IngestError(relative, ['leads outside the release folder']);
    throw err;
  }
  let real: string;
  try {
    real = await fsp.realpath(target);
  } catch {
    throw new IngestError(relative, ['is missing']);
  }
  if (real !== root && !real.startsWith(root + path.sep)) {
    throw new IngestError(relative, ['is a link that leads outside the release folder']);
  }
  const stat = await fsp.stat(real);
  if (!stat.isFile()) throw new IngestError(relative, ['is not a regular file']);
  if (stat.size === 0) throw new IngestError(relative, ['is empty']);
  if (stat.size > maxBytes) throw new IngestError(relative, [`is ${stat.size} bytes; at most ${maxBytes} are accepted`]);
  try {
    await fsp.access(real, fs.constants.R_OK);
  } catch {
    throw new IngestError(relative, ['cannot be read (permission denied)']);
  }
  return real;
}

function analyse(interleaved: Float32Array): { peak: number; rms: number; envelope: number[] } {
  const frames = interleaved.length / 2;
  const window = SAMPLE_RATE / ENVELOPE_HZ;
  const envelope: number[] = [];
  let peak = 0;
  let total = 0;
  let acc = 0;
  let n = 0;
  for (let i = 0; i < frames; i++) {
    const l = interleaved[2 * i]!;
    const r = interleaved[2 * i + 1]!;
    const m = Math.max(Math.abs(l), Math.abs(r));
    if (m > peak) peak = m;
    const e = (l * l + r * r) / 2;
    total += e;
    acc += e;
    if (++n === window) {
      envelope.push(Math.sqrt(acc / n));
      acc = 0;
      n = 0;
    }
  }
  if (n > 0) envelope.push(Math.sqrt(acc / n));
  return { peak, rms: frames > 0 ? Math.sqrt(total / frames) : 0, envelope };
}

function addEnvelopes(a: number[], b: number[]): number[] {
  const out = new Array<number>(Math.max(a.length, b.length));
  // RMS of a sum of uncorrelated parts: the root of the summed squares.
  for (let i = 0; i < out.length; i++) out[i] = Math.sqrt((a[i] ?? 0) ** 2 + (b[i] ?? 0) ** 2);
  return out;
}

/** All stems must be one length; a few ms of decoder padding is evened out with silence, more is refused. */
async function equaliseLengths(
  decoded: { id: string; file: string; frames: number; staged: string }[],
  notes: string[],
): Promise<number> {
  const longest = Math.max(...decoded.map((d) => d.frames));
  const shortest = Math.min(...decoded.map((d) => d.frames));
  if ((longest - shortest) / SAMPLE_RATE > STEM_LENGTH_TOLERANCE_SEC) {
    const lengths = decoded.map((d) => `${d.file} ${(d.frames / SAMPLE_RATE).toFixed(3)} s`).join(', ');
    const odd = decoded.find((d) => d.frames === shortest)!;
    throw new IngestError(odd.file, [`stems have different lengths (${lengths}); every stem must run the whole piece`]);
  }
  if (longest === shortest) return longest;
  for (const d of decoded) {
    if (d.frames === longest) continue;
    const wav = await readWavFloat32(d.staged);
    const padded = new Float32Array(longest * 2);
    padded.set(wav.interleaved);
    await writeWavFloat32(d.staged, padded, SAMPLE_RATE, 2);
    notes.push(`${d.file}: ${longest - d.frames} frames of silence added at the end to match the other stems`);
    d.frames = longest;
  }
  return longest;
}

const PNG_MAGIC = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const JPEG_MAGIC = [0xff, 0xd8, 0xff];

async function checkImage(file: string, relative: string): Promise<Pick<ArtworkInfo, 'width' | 'height' | 'mimeType'>> {
  const bytes = await fsp.readFile(file);
  const startsWith = (magic: number[]) => magic.every((b, i) => bytes[i] === b);
  const mimeType = startsWith(PNG_MAGIC) ? 'image/png' : startsWith(JPEG_MAGIC) ? 'image/jpeg' : null;
  if (!mimeType) throw new IngestError(relative, ['is not a PNG or JPEG image (its first bytes say otherwise)']);
  const ext = path.extname(relative).toLowerCase();
  if ((ext === '.png') !== (mimeType === 'image/png')) {
    throw new IngestError(relative, [`is named ${ext} but holds a ${mimeType === 'image/png' ? 'PNG' : 'JPEG'} image; rename it`]);
  }
  // The size from the header alone, so that a huge image is refused before it is decoded.
  const size = headerSize(bytes, mimeType);
  if (!size) throw new IngestError(relative, ['has a damaged header; the image size cannot be read']);
  if (size.width > MAX_ARTWORK_SIDE || size.height > MAX_ARTWORK_SIDE) {
    throw new IngestError(relative, [`is ${size.width}x${size.height}; at most ${MAX_ARTWORK_SIDE}x${MAX_ARTWORK_SIDE} is accepted`]);
  }
  if (size.width < MIN_ARTWORK_SIDE || size.height < MIN_ARTWORK_SIDE) {
    throw new IngestError(relative, [`is ${size.width}x${size.height}; at least ${MIN_ARTWORK_SIDE}x${MIN_ARTWORK_SIDE} is needed`]);
  }
  try {
    // A full decode proves the image is whole, not just its header.
    const image = await loadImage(bytes);
    if (image.width !== size.width || image.height !== size.height) throw new Error('size mismatch');
  } catch {
    throw new IngestError(relative, ['is damaged: it cannot be decoded as an image']);
  }
  return { ...size, mimeType };
}

/** Places the files and records the release; answers notes on what could not be tidied afterwards. */
async function commit(record: ReleaseRecord, staging: string, opts: IngestOptions): Promise<string[]> {
  if (opts.blobs?.kind === 's3') return commitToBucket(record, staging, opts, opts.blobs);
  await fsp.mkdir(opts.layout.releasesDir, { recursive: true });
  const final = opts.layout.releaseDir(record.id);
  const trash = path.join(opts.layout.tmpDir, `replaced-${record.id}-${crypto.randomUUID()}`);
  let movedOld = false;
  try {
    await opts.store.putRelease(
      record,
      {
        place() {
          if (fs.existsSync(final)) {
            fs.renameSync(final, trash);
            movedOld = true;
          }
          fs.renameSync(staging, final);
        },
        undo() {
          fs.renameSync(final, staging);
          if (movedOld) fs.renameSync(trash, final);
          movedOld = false;
        },
      },
      { replace: opts.replace ?? false },
    );
  } catch (err) {
    if (movedOld && !fs.existsSync(final)) fs.renameSync(trash, final);
    if (err instanceof ReleaseExistsError) throw new IngestError(MANIFEST_FILE_NAME, [`${err.message} (ingest with --replace to update it)`]);
    throw err;
  }
  if (movedOld) await fsp.rm(trash, { recursive: true, force: true });
  return [];
}

/**
 * Uploads every staged file, then records the release; a failure on the way removes
 * what was uploaded. The previous ingest's files (on --replace) are removed after
 * the new record is in place: nodes that had them open keep their cached copies.
 */
async function commitToBucket(record: ReleaseRecord, staging: string, opts: IngestOptions, blobs: BlobStore): Promise<string[]> {
  const prefix = releaseFilesPrefix(record);
  const previous = opts.replace ? await opts.store.getRelease(record.id) : null;
  const files = await stagedFiles(staging);
  try {
    for (const [i, relative] of files.entries()) {
      opts.signal?.throwIfAborted();
      opts.onProgress?.({ step: 'commit', file: relative, fraction: i / (files.length + 1) });
      await blobs.putFile(`${prefix}${relative}`, path.join(staging, relative), { contentType: releaseFileType(relative) });
    }
    await opts.store.putRelease(record, { place() {}, undo() {} }, { replace: opts.replace ?? false });
  } catch (err) {
    // Files no record names are never read; still, say so when they cannot be removed.
    const leftover = await blobs.deletePrefix(prefix).then(
      () => null,
      (e: unknown) => `the files uploaded so far (${prefix} in ${blobs.description}) could not be removed: ${(e as Error).message}`,
    );
    if (err instanceof ReleaseExistsError) throw new IngestError(MANIFEST_FILE_NAME, [`${err.message} (ingest with --replace to update it)`, ...(leftover ? [leftover] : [])]);
    if (leftover) throw new Error(`${(err as Error).message}; ${leftover}`, { cause: err });
    throw err;
  }
  if (previous && releaseFilesPrefix(previous) !== prefix) {
    return blobs.deletePrefix(releaseFilesPrefix(previous)).then(
      () => [],
      (e: unknown) => [`the previous ingest's files (${releaseFilesPrefix(previous)}) could not be removed: ${(e as Error).message}; no record names them any more`],
    );
  }
  return [];
}

/** Every file under the staging folder, relative, with '/' separators, sorted. */
async function stagedFiles(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) out.push(...(await stagedFiles(path.join(dir, entry.name), `${prefix}${entry.name}/`)));
    else if (entry.isFile()) out.push(`${prefix}${entry.name}`);
  }
  return out.sort();
}

/** Decoder messages start with the file's name; the ingest error names the file already. */
function stripFilePrefix(message: string, file: string): string {
  const name = path.basename(file);
  return message.startsWith(name) ? message.slice(name.length).replace(/^[:\s]+/, '') : message;
}

function round(v: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(v * f) / f;
}

