// `npm run train-visuals -- <releaseId>`: trains the release's visual model on its
// consented artwork (in a child process, with a progress bar on stderr), stores it in
// DATA_DIR or the S3 bucket with its training record, and prints the record's summary.
// A running server notices the new model by itself. A command-line entry point, so it
// prints to the console.
import fsp from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config.ts';
import { openBlobStore } from '../store/open-blobs.ts';
import { openStore } from '../store/open-store.ts';
import { DataLayout } from '../store/paths.ts';
import { ReleaseFiles } from './release-files.ts';
import { TrainingProgressPrinter, recordSummary } from './visual-model-cli.ts';
import { VisualModels } from './visual-models.ts';

const USAGE = 'usage: npm run train-visuals -- <release id> [--out <folder>]\n  --out: also write weights.bin and record.json there (how media/demo/visual-model/ is made)';

async function main(): Promise<number> {
  let args;
  try {
    args = parseArgs({ allowPositionals: true, options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (args.values.help || args.positionals.length !== 1) {
    console.error(USAGE);
    return args.values.help ? 0 : 2;
  }
  const releaseId = args.positionals[0]!;
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`train-visuals: bad configuration: ${err.message}`);
      return 2;
    }
    throw err;
  }
  const layout = new DataLayout(config.dataDir);
  const log = pino({ level: 'warn' }, pino.destination(2));
  const store = await openStore(config, layout, log).catch((err: unknown) => {
    console.error(`train-visuals: ${(err as Error).message}`);
    return null;
  });
  if (!store) return 1;
  const blobs = await openBlobStore(config, layout, log, null).catch((err: unknown) => {
    console.error(`train-visuals: ${(err as Error).message}`);
    return null;
  });
  if (!blobs) {
    await store.close();
    return 1;
  }
  // Asked for by name: it trains whatever VISUAL_MODEL_TRAIN says (that is about training by itself).
  const models = new VisualModels({ store, blobs, layout, folders: new ReleaseFiles({ store, blobs, layout, log }), log, config: { ...config.visualModel, train: 'off' } });
  const stop = () => void models.close();
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const progress = new TrainingProgressPrinter();
  try {
    if (!(await store.getRelease(releaseId))) {
      console.error(`train-visuals: no release "${releaseId}" in ${blobs.kind === 's3' ? 'the store' : layout.root} (npm run ingest adds one)`);
      return 1;
    }
    // Models trained on artwork whose consent was withdrawn are retired first.
    await models.reconcile(releaseId);
    console.error(`train-visuals: ${releaseId}, ${config.visualModel.steps ?? 'the default number of'} steps, seed ${config.visualModel.seed}`);
    const record = await models.train(releaseId, { onProgress: (p) => progress.update(p) });
    progress.done();
    console.log(recordSummary(record));
    if (args.values.out) {
      const out = path.resolve(args.values.out);
      await fsp.mkdir(out, { recursive: true });
      await fsp.writeFile(path.join(out, 'weights.bin'), await models.weights(releaseId, record.modelId));
      await fsp.writeFile(path.join(out, 'record.json'), `${JSON.stringify(record, null, 2)}\n`);
      console.log(`wrote ${path.join(out, 'weights.bin')} and record.json`);
    }
    return 0;
  } catch (err) {
    progress.done();
    console.error(`train-visuals: the visual model of ${releaseId} was not trained: ${(err as Error).message}`);
    return 1;
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    await models.close();
    await blobs.close();
    await store.close();
  }
}

process.exitCode = await main();
