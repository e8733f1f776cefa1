// `npm run ingest -- <folder> [--replace]`: checks and ingests a release folder
// into DATA_DIR (and its files into the S3 bucket when S3_BUCKET is set). A
// command-line entry point, so it prints to the console.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { ConfigError, loadConfig } from '../config.ts';
import { pino } from 'pino';
import { DataLayout } from '../store/paths.ts';
import { openBlobStore } from '../store/open-blobs.ts';
import { openStore } from '../store/open-store.ts';
import { IngestError, ingestRelease, type IngestProgress } from './ingest.ts';

const USAGE = 'usage: npm run ingest -- <release folder> [--replace]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ allowPositionals: true, options: { replace: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.values.help || args.positionals.length !== 1) {
    console.error(USAGE);
    return args.values.help ? 0 : 2;
  }
  const folder = path.resolve(args.positionals[0]!);
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`ingest: bad configuration: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const layout = new DataLayout(config.dataDir);
  const native = await findNativeFfmpeg(config.ffmpegPath);
  console.error(`ingest: ${folder} into ${layout.root} (${native ? `native ffmpeg ${native.version}` : 'bundled decoders, no native ffmpeg'})`);

  try {
    await fsp.mkdir(layout.root, { recursive: true });
  } catch (err) {
    console.error(`ingest: DATA_DIR ${layout.root} cannot be made: ${(err as Error).message}`);
    return 1;
  }
  // Warnings of the stores go to stderr with the progress; stdout holds the result alone.
  const log = pino({ level: 'warn' }, pino.destination(2));
  // The configured store: SQLite in DATA_DIR, or PostgreSQL (DATABASE_URL) shared with the nodes.
  const store = await openStore(config, layout, log).catch((err: unknown) => {
    console.error(`ingest: ${(err as Error).message}`);
    return null;
  });
  if (!store) return 1;
  const blobs = await openBlobStore(config, layout, log, null).catch((err: unknown) => {
    console.error(`ingest: ${(err as Error).message}`);
    return null;
  });
  if (!blobs) {
    await store.close();
    return 1;
  }
  if (blobs.kind === 's3') console.error(`ingest: files into ${blobs.description}`);
  const progress = new ProgressPrinter();
  try {
    const { record, notes } = await ingestRelease(folder, {
      store,
      layout,
      blobs,
      ffmpeg: native?.ffmpeg ?? null,
      replace: args.values.replace,
      onProgress: (p) => progress.update(p),
    });
    progress.done();
    for (const note of notes) console.error(`note: ${note}`);
    const used = record.artwork.filter((a) => a.consent).length;
    console.log(
      `ingested "${record.title}" by ${record.artist} as ${record.id}: ${record.stems.length} stems, ` +
        `${record.durationSec.toFixed(1)} s, ${record.manifest.excerpts.length} excerpts, ${used} artwork images`,
    );
    return 0;
  } catch (err) {
    progress.done();
    if (err instanceof IngestError) {
      console.error(`ingest refused, nothing was changed:\n  ${err.file ?? folder}: ${err.problems.join('\n  ')}`);
      return 1;
    }
    throw err;
  } finally {
    await blobs.close();
    await store.close();
  }
}

/** One line per step on a terminal, redrawn in place; a few lines per file otherwise. */
class ProgressPrinter {
  #last = '';
  #lastQuarter = -1;
  readonly #tty = process.stderr.isTTY;

  update(p: IngestProgress): void {
    const label = `${p.step}${p.file ? ` ${p.file}` : ''}`;
    const pct = Math.round(p.fraction * 100);
    if (this.#tty) {
      const width = 24;
      const filled = Math.round(p.fraction * width);
      process.stderr.write(`\r\x1b[K${label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}%`);
    } else {
      const quarter = Math.floor(p.fraction * 4);
      if (label !== this.#last || quarter !== this.#lastQuarter) process.stderr.write(`${label} ${pct}%\n`);
      this.#lastQuarter = quarter;
    }
    this.#last = label;
  }

  done(): void {
    if (this.#tty && this.#last) process.stderr.write('\n');
    this.#last = '';
  }
}

process.exitCode = await main();
