// The process entry point: config, logger, server, signals. The only place that
// prints to the console directly (for a failed start, before a logger exists).
import { ConfigError, loadConfig } from './config.ts';
import { createLogger } from './logger.ts';
import { RemixroomServer, StartupError } from './server.ts';
import { DEMO_RELEASE_ID } from './catalog/demo-release.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`bad configuration: ${err.message}`);
    throw err;
  }
  const log = createLogger(config);
  // One failed promise must not take down every room: log it loudly and keep serving.
  process.on('unhandledRejection', (err) => log.error({ err }, 'unhandled rejection'));
  let server: RemixroomServer | null = null;
  let signals = 0;
  const starting = new AbortController();
  const shutdown = (signal: NodeJS.Signals) => {
    if (++signals > 1) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    log.info({ signal }, 'signal received');
    if (!server) {
      // Still starting: cancel the start; main() exits once it has cleaned up.
      starting.abort(new Error(`${signal} during start`));
      return;
    }
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);

  try {
    server = await RemixroomServer.start(config, log, starting.signal);
  } catch (err) {
    if (starting.signal.aborted) {
      log.info('start cancelled; nothing was left half-made');
      process.exit(0);
    }
    if (err instanceof StartupError) fail(err.message);
    log.fatal({ err }, 'failed to start');
    fail((err as Error).message);
  }
  log.info(
    { url: server.url, dataDir: config.dataDir, mode: config.redisUrl ? 'scale-out (Redis)' : 'embedded' },
    `Remixroom is listening on ${server.url}; the demo release: ${server.url}/api/releases/${DEMO_RELEASE_ID}`,
  );
}

function fail(message: string): never {
  console.error(`remixroom: failed to start: ${message}`);
  process.exit(1);
}

await main();
