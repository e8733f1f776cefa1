// Which SFU this process uses: mediasoup when its worker binary is there, the
// embedded one otherwise. The caller passes MEDIASOUP_WORKER_BIN in (config is
// read in one place, not here) and logs the answer at start.
// For operators who build the worker themselves: a worker linked against
// Debian's system OpenSSL (built with kernel TLS) starts, then crashes at the
// first DTLS handshake, because mediasoup's BIO callback makes OpenSSL believe
// kernel TLS is on; mediasoup's bundled OpenSSL does not do this, so build with it.
import fs from 'node:fs';
import type { Logger } from 'pino';
import type { EmbeddedSfuOptions } from './embedded-sfu.ts';
import type { MediasoupSfuOptions } from './mediasoup-sfu.ts';
import type { Sfu, SfuKind } from './sfu.ts';

export interface SelectSfuOptions {
  /** Path of mediasoup's worker binary (MEDIASOUP_WORKER_BIN), if any. */
  mediasoupWorkerBin?: string | undefined;
  embedded?: Omit<EmbeddedSfuOptions, 'log'>;
  mediasoup?: Omit<MediasoupSfuOptions, 'workerBin' | 'log'>;
  log?: Logger;
}

export interface SelectedSfu {
  sfu: Sfu;
  kind: SfuKind;
  /** Why this one, for the start-up log line. */
  reason: string;
}

/** Whether `file` is an executable regular file. */
export function isExecutableFile(file: string | undefined): file is string {
  if (!file) return false;
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export async function selectSfu(options: SelectSfuOptions = {}): Promise<SelectedSfu> {
  const bin = options.mediasoupWorkerBin;
  const log = options.log;
  let reason = bin ? `MEDIASOUP_WORKER_BIN=${bin} is not an executable file` : 'no mediasoup worker binary given (MEDIASOUP_WORKER_BIN)';
  if (isExecutableFile(bin)) {
    try {
      // Lazy: the mediasoup package's JS is loaded only on this path.
      const { MediasoupSfu } = await import('./mediasoup-sfu.ts');
      const sfu = await MediasoupSfu.create({ ...options.mediasoup, workerBin: bin, ...(log ? { log } : {}) });
      return { sfu, kind: 'mediasoup', reason: `mediasoup worker binary at ${bin}` };
    } catch (err) {
      // A binary that cannot start (wrong build, missing libraries) is no worker:
      // the rooms still get sound through the embedded path, and the log says why.
      reason = `mediasoup worker at ${bin} failed to start: ${err instanceof Error ? err.message : String(err)}`;
      log?.error({ err }, 'mediasoup worker failed to start; using the embedded SFU');
    }
  }
  const { EmbeddedSfu } = await import('./embedded-sfu.ts');
  const sfu = await EmbeddedSfu.create({ ...options.embedded, ...(log ? { log } : {}) });
  return { sfu, kind: 'embedded', reason };
}
