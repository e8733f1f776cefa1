// Small release folders made at test time: a few seconds of tones per stem and
// generated images, so ingest can be tested on good and broken input.
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { createCanvas } from '@napi-rs/canvas';

export interface FixtureStem {
  id: string;
  seconds?: number;
  sampleRate?: number;
  channels?: number;
  /** File name under stems/; its extension picks the format (.wav int16, .flac and .mp3 through ffmpeg). */
  file?: string;
  frequencyHz?: number;
}

export interface FixtureOptions {
  id?: string;
  stems?: FixtureStem[];
  artwork?: { id: string; file?: string; width?: number; height?: number; consent?: boolean; format?: 'png' | 'jpeg' }[];
  excerpts?: { id: string; title: string; startSec: number; endSec: number }[];
  manifest?: (m: Record<string, unknown>) => Record<string, unknown>;
}

export async function writeFixtureRelease(folder: string, opts: FixtureOptions = {}): Promise<Record<string, unknown>> {
  const stems = opts.stems ?? [
    { id: 'drums', frequencyHz: 110 },
    { id: 'bass', frequencyHz: 55 },
    { id: 'lead', frequencyHz: 880 },
  ];
  const artwork = opts.artwork ?? [
    { id: 'cover', width: 256, height: 256 },
    { id: 'waves', width: 320, height: 180, format: 'jpeg' as const },
  ];
  await fsp.mkdir(path.join(folder, 'stems'), { recursive: true });
  await fsp.mkdir(path.join(folder, 'artwork'), { recursive: true });
  for (const s of stems) {
    const file = path.join(folder, 'stems', s.file ?? `${s.id}.wav`);
    await writeToneFile(file, { seconds: s.seconds ?? 8, sampleRate: s.sampleRate ?? 48000, channels: s.channels ?? 2, frequencyHz: s.frequencyHz ?? 220 });
  }
  for (const [i, a] of artwork.entries()) {
    const format = a.format ?? 'png';
    const file = path.join(folder, 'artwork', a.file ?? `${a.id}.${format === 'png' ? 'png' : 'jpg'}`);
    await fsp.writeFile(file, paint(a.width ?? 256, a.height ?? 256, i, format));
  }
  let manifest: Record<string, unknown> = {
    schemaVersion: 1,
    id: opts.id ?? 'fixture',
    title: 'Fixture',
    artist: 'Test Artist',
    bpm: 120,
    stems: stems.map((s) => ({ id: s.id, title: s.id.toUpperCase(), file: `stems/${s.file ?? `${s.id}.wav`}` })),
    excerpts: opts.excerpts ?? [{ id: 'all', title: 'All of it', startSec: 0, endSec: 7 }],
    artwork: artwork.map((a, i) => ({
      id: a.id,
      title: a.id,
      file: `artwork/${a.file ?? `${a.id}.${(a.format ?? 'png') === 'png' ? 'png' : 'jpg'}`}`,
      kind: i === 0 ? 'cover' : 'graphic',
      tags: ['test'],
      consent: a.consent ?? true,
    })),
  };
  if (opts.manifest) manifest = opts.manifest(manifest);
  await fsp.writeFile(path.join(folder, 'release.json'), JSON.stringify(manifest, null, 2));
  return manifest;
}

export async function writeToneFile(
  file: string,
  o: { seconds: number; sampleRate: number; channels: number; frequencyHz: number },
): Promise<void> {
  const ext = path.extname(file).toLowerCase();
  const wav = int16Wav(o);
  if (ext === '.wav') return fsp.writeFile(file, wav);
  const tmp = `${file}.src.wav`;
  await fsp.writeFile(tmp, wav);
  const codec = ext === '.flac' ? ['-c:a', 'flac'] : ['-c:a', 'libmp3lame', '-b:a', '128k'];
  const r = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', tmp, ...codec, file]);
  await fsp.rm(tmp);
  if (r.status !== 0) throw new Error(`ffmpeg could not make ${file}: ${r.stderr.toString()}`);
}

/** A tone with a slow tremolo, so that the analysis has something to see. */
export function int16Wav(o: { seconds: number; sampleRate: number; channels: number; frequencyHz: number }): Buffer {
  const frames = Math.round(o.seconds * o.sampleRate);
  const buf = Buffer.alloc(44 + frames * o.channels * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + frames * o.channels * 2, 4);
  buf.write('WAVEfmt ', 8);
  buf.writeUInt32LE(16, 16);
  buf.writeUInt16LE(1, 20);
  buf.writeUInt16LE(o.channels, 22);
  buf.writeUInt32LE(o.sampleRate, 24);
  buf.writeUInt32LE(o.sampleRate * o.channels * 2, 28);
  buf.writeUInt16LE(o.channels * 2, 32);
  buf.writeUInt16LE(16, 34);
  buf.write('data', 36);
  buf.writeUInt32LE(frames * o.channels * 2, 40);
  for (let i = 0; i < frames; i++) {
    const t = i / o.sampleRate;
    const v = 0.4 * Math.sin(2 * Math.PI * o.frequencyHz * t) * (0.6 + 0.4 * Math.sin(2 * Math.PI * 2 * t));
    for (let c = 0; c < o.channels; c++) buf.writeInt16LE(Math.round(v * 32767), 44 + (i * o.channels + c) * 2);
  }
  return buf;
}

function paint(width: number, height: number, seed: number, format: 'png' | 'jpeg'): Buffer {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const g = ctx.createLinearGradient(0, 0, width, height);
  g.addColorStop(0, ['#1b1f5e', '#f25c05', '#0f8b8d'][seed % 3]!);
  g.addColorStop(1, ['#e0b1cb', '#2b2d42', '#f4d35e'][seed % 3]!);
  ctx.fillStyle = g;
  ctx.fillRect(0, 0, width, height);
  ctx.fillStyle = '#ffffff';
  ctx.beginPath();
  ctx.arc(width / 2, height / 2, Math.min(width, height) / 4, 0, Math.PI * 2);
  ctx.fill();
  return format === 'png' ? canvas.toBuffer('image/png') : canvas.toBuffer('image/jpeg');
}

/** Every file under a folder, relative, sorted: to prove that a refused ingest changed nothing. */
export async function listTree(root: string): Promise<string[]> {
  const out: string[] = [];
  async function walk(dir: string): Promise<void> {
    for (const e of await fsp.readdir(dir, { withFileTypes: true }).catch(() => [])) {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) {
        out.push(`${path.relative(root, full)}/`);
        await walk(full);
      } else out.push(path.relative(root, full));
    }
  }
  await walk(root);
  return out.filter((f) => !f.startsWith('remixroom.sqlite')).sort();
}
