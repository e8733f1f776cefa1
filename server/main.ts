// The process entry point: config, logger, server, signals. The only place that
// prints to the console directly (for a failed start, before a logger exists).
import { ConfigError, loadConfig } from './config.ts';
import { createLogger, PrettyConsole } from './logger.ts';
import { RemixroomServer, StartupError } from './server.ts';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) fail(`bad configuration: ${err.message}`);
    throw err;
  }
  // At a terminal, where to open the app is the first line; the start-up details follow it.
  const prettyConsole = config.logFormat === 'pretty' ? new PrettyConsole({ holdStartup: true }) : null;
  const log = createLogger(config, prettyConsole ?? undefined);
  process.once('exit', () => prettyConsole?.release());
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
    prettyConsole?.release();
    if (starting.signal.aborted) {
      log.info('start cancelled; nothing was left half-made');
      process.exit(0);
    }
    if (err instanceof StartupError) fail(err.message);
    log.fatal({ err }, 'failed to start');
    fail((err as Error).message);
  }
  const running = server;
  const announce = () =>
    log.info(
      {
        url: running.url,
        ...(running.publicUrl !== running.url ? { publicUrl: running.publicUrl } : {}),
        dataDir: config.dataDir,
        mode: config.redisUrl ? 'scale-out (Redis)' : 'embedded',
      },
      `Remixroom is running: open ${running.url}/ in your browser and start a room with the demo release`,
    );
  if (prettyConsole) prettyConsole.ready(announce);
  else announce();
}

function fail(message: string): never {
  console.error(`remixroom: failed to start: ${message}`);
  process.exit(1);
}

await main();
