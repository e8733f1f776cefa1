// `npm run renderer`: a render process for scale-out (RENDER_QUEUE=redis, the
// default with REDIS_URL). It reads the same environment as the server
// (DATA_DIR, REDIS_URL, TOKEN_SECRET, FFMPEG_PATH, RENDER_VIDEO, RENDER_*,
// DATABASE_URL, S3_*), opens the shared store, takes render jobs from Redis, at
// most RENDER_CONCURRENCY at once (default: the cores less one, at least 1), and
// keeps the files where the nodes serve them: the shared DATA_DIR (one machine),
// or the S3 bucket, reading the releases from there too into its own cache (on a
// machine of its own, DATA_DIR holds only that cache and scratch files).
// SIGTERM: stops taking jobs and hands the running ones back.
import fsp from 'node:fs/promises';
import { findNativeFfmpeg } from '../media/audio/ffmpeg.ts';
import { wasmCoreDir } from '../media/render/encoder.ts';
import { ManifestSigner } from './clips/manifest.ts';
import { RenderWorker } from './clips/redis-render-worker.ts';
import { renderFilesFor } from './clips/blob-render-files.ts';
import { blobTextureLoader } from './work/generated-textures.ts';
import { RenderRunner, watermarker, watermarkKeyOf } from './clips/render-runner.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { StemCache } from './live/stem-cache.ts';
import { createLogger } from './logger.ts';
import { loadSecrets } from './secrets.ts';
import { DataLayout } from './store/paths.ts';
import { openStore } from './store/open-store.ts';
import { openBlobStore } from './store/open-blobs.ts';
import { ReleaseFiles } from './catalog/release-files.ts';
import type { Store } from './store/store.ts';
import type { BlobStore } from './store/blob-store.ts';

async function main(): Promise<void> {
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`bad configuration: ${err.message}`);
    throw err;
  }
  if (!config.redisUrl) fail('a renderer takes its jobs from Redis: set REDIS_URL (the same as the servers’)');
  if (config.renderQueue !== 'redis') fail('RENDER_QUEUE=local: the servers render in their own processes, so a renderer would get no jobs; unset RENDER_QUEUE or set it to redis');
  const log = createLogger(config).child({ component: 'renderer' });
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  const layout = new DataLayout(config.dataDir);
  let secrets;
  try {
    secrets = loadSecrets(config, layout);
  } catch (err) {
    fail((err as Error).message);
  }
  const native = await findNativeFfmpeg(config.ffmpegPath);
  if (config.ffmpegPath && !native) fail(`FFMPEG_PATH=${config.ffmpegPath} is not a working ffmpeg`);
  // Without a native ffmpeg the WebAssembly build encodes (slower, one job at a time).
  if (!native && !wasmCoreDir()) fail('no native ffmpeg found and @ffmpeg/core is not installed: install ffmpeg or set FFMPEG_PATH');
  let store: Store;
  try {
    await fsp.mkdir(layout.tmpDir, { recursive: true });
    store = await openStore(config, layout, log);
  } catch (err) {
    fail(`${(err as Error).message}${config.databaseUrl ? '' : " (without DATABASE_URL a renderer shares the servers' DATA_DIR)"}`);
  }
  let blobs: BlobStore;
  try {
    blobs = await openBlobStore(config, layout, log, null);
  } catch (err) {
    await store.close();
    fail((err as Error).message);
  }
  // The releases' files: DATA_DIR's, or fetched from the bucket into this machine's cache.
  const releases = new ReleaseFiles({ store, blobs, layout, log: log.child({ component: 'release-files' }) });
  const runner = new RenderRunner({
    store,
    layout,
    releases,
    files: renderFilesFor(blobs, layout, { presign: false }),
    stems: new StemCache(releases),
    log,
    ffmpeg: native?.ffmpeg ?? null,
    signer: new ManifestSigner(secrets.tokenSecret),
    video: config.renderVideo,
    watermark: watermarker(watermarkKeyOf(secrets.tokenSecret)),
    // The textures the visual models generated for prompts, from the same blob store as the node's.
    textures: blobTextureLoader(blobs),
  });
  let worker: RenderWorker;
  try {
    worker = await RenderWorker.create({
      redisUrl: config.redisUrl,
      store,
      log,
      runner,
      concurrency: config.renderConcurrency ?? (native ? Math.max(1, config.cores - 1) : 1),
      leaseMs: config.renderLeaseMs,
      maxAttempts: config.renderMaxAttempts,
      retryBaseMs: config.renderRetryMs,
    });
  } catch (err) {
    await store.close();
    await blobs.close();
    fail(`cannot reach Redis: ${(err as Error).message}; check REDIS_URL`);
  }
  let signals = 0;
  const shutdown = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal, running: worker.running }, 'signal received: handing running jobs back');
    worker
      .close()
      .then(() => store.close())
      .then(() => blobs.close())
      .then(
        () => {
          log.info('renderer stopped');
          process.exit(0);
        },
        (err: unknown) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  await worker.start();
  log.info({ ffmpeg: native?.ffmpeg ?? '@ffmpeg/core (WebAssembly)', dataDir: config.dataDir, video: config.renderVideo }, 'renderer ready');
}

function fail(message: string): never {
  console.error(`remixroom renderer: failed to start: ${message}`);
  process.exit(1);
}

await main();
