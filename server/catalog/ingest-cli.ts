// `npm run ingest -- <folder> [--replace]`: checks and ingests a release folder
// into DATA_DIR (and its files into the S3 bucket when S3_BUCKET is set). A
// command-line entry point, so it prints to the console.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { ConfigError, loadConfig, type Config } from '../config.ts';
import type { Logger } from '../logger.ts';
import type { BlobStore } from '../store/blob-store.ts';
import type { Store } from '../store/store.ts';
import { pino } from 'pino';
import { DataLayout } from '../store/paths.ts';
import { openBlobStore } from '../store/open-blobs.ts';
import { openStore } from '../store/open-store.ts';
import { IngestError, ingestRelease, type IngestProgress } from './ingest.ts';
import { ReleaseFiles } from './release-files.ts';
import { TrainingProgressPrinter, recordSummary } from './visual-model-cli.ts';
import { VisualModels } from './visual-models.ts';

const USAGE = 'usage: npm run ingest -- <release folder> [--replace] [--no-train]';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ allowPositionals: true, options: { replace: { type: 'boolean', default: false }, 'no-train': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } } });
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
    const train = !args.values['no-train'] && config.visualModel.train !== 'off';
    return await visualModel(record.id, { train, config, store, blobs, layout, log });
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

/**
 * The release's visual model after an ingest: models trained on artwork whose consent is now
 * withdrawn are retired (always), and unless told not to, a model is trained on the consented
 * artwork when none fits it. A running server notices both by itself.
 */
async function visualModel(
  releaseId: string,
  o: { train: boolean; config: Config; store: Store; blobs: BlobStore; layout: DataLayout; log: Logger },
): Promise<number> {
  const models = new VisualModels({
    store: o.store,
    blobs: o.blobs,
    layout: o.layout,
    folders: new ReleaseFiles({ store: o.store, blobs: o.blobs, layout: o.layout, log: o.log }),
    log: o.log,
    config: { ...o.config.visualModel, train: 'off' },
  });
  const stop = () => void models.close();
  process.once('SIGINT', stop);
  const progress = new TrainingProgressPrinter();
  try {
    for (const modelId of await models.reconcile(releaseId)) {
      console.error(`note: visual model ${modelId} is retired: ${(await models.model(releaseId, modelId))?.retired?.because ?? 'consent withdrawn'}`);
    }
    const current = await models.current(releaseId);
    if (current) {
      console.log(`visual model ${current.modelId}: already trained on this artwork`);
      return 0;
    }
    if (!o.train) {
      console.error(`note: no visual model trained (${o.config.visualModel.train === 'off' ? 'VISUAL_MODEL_TRAIN=off' : '--no-train'}); npm run train-visuals -- ${releaseId} trains one`);
      return 0;
    }
    const record = await models.train(releaseId, { onProgress: (p) => progress.update(p) });
    progress.done();
    console.log(recordSummary(record));
    return 0;
  } catch (err) {
    progress.done();
    console.error(`the release is ingested, but its visual model was not trained: ${(err as Error).message}\n  npm run train-visuals -- ${releaseId} tries again`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    await models.close();
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
