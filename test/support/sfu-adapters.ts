// Which SFU adapters the tests that play audio run against, decided here and
// nowhere else: the embedded SFU always; mediasoup as well whenever
// MEDIASOUP_WORKER_BIN is set. Whether that worker really runs is found once
// per test process (a real worker started and closed) in the suites' `before`
// hooks, through requireSfuAdapter: a worker that does not start skips the
// mediasoup suites with the reason on a developer's machine, and fails them
// under CI=true (someone set the variable meaning it to run). Unset, only the
// embedded half is generated: CI on a machine without a worker, as before.
import type { SfuKind } from '../../media/sfu/sfu.ts';
import { isExecutableFile } from '../../media/sfu/select-sfu.ts';

/** MEDIASOUP_WORKER_BIN of the test process (an empty value counts as unset). */
export const MEDIASOUP_WORKER_BIN: string | undefined = process.env['MEDIASOUP_WORKER_BIN'] || undefined;

/** The adapters to generate suites for; suites name theirs in their titles (`… [mediasoup]`). */
export const SFU_ADAPTERS: readonly SfuKind[] = MEDIASOUP_WORKER_BIN ? ['embedded', 'mediasoup'] : ['embedded'];

/** A suite title naming the adapter it runs against. */
export function adapterTitle(title: string, adapter: SfuKind): string {
  return `${title} [${adapter}]`;
}

let probe: Promise<string | null> | null = null;

/** Null when the mediasoup worker starts; otherwise why it does not (one line). */
export function mediasoupUnrunnable(): Promise<string | null> {
  probe ??= (async () => {
    const bin = MEDIASOUP_WORKER_BIN;
    if (!bin) return 'MEDIASOUP_WORKER_BIN is not set';
    if (!isExecutableFile(bin)) return `MEDIASOUP_WORKER_BIN=${bin} is not an executable file`;
    try {
      // Lazy, as in select-sfu: mediasoup's JavaScript loads only when a worker is named.
      const { MediasoupSfu } = await import('../../media/sfu/mediasoup-sfu.ts');
      const sfu = await MediasoupSfu.create({ workerBin: bin, numWorkers: 1 });
      await sfu.close();
      return null;
    } catch (err) {
      return `the mediasoup worker at ${bin} does not start: ${err instanceof Error ? err.message : String(err)}`;
    }
  })();
  return probe;
}

/**
 * Call first in the `before` hook of a suite generated per adapter. The
 * embedded SFU is always there; mediasoup must start, or the suite is skipped
 * with the reason (a developer's machine) or fails (CI=true).
 */
export async function requireSfuAdapter(adapter: SfuKind, ctx: Mocha.Context): Promise<void> {
  if (adapter === 'embedded') return;
  const reason = await mediasoupUnrunnable();
  if (!reason) return;
  if (process.env['CI'] === 'true') {
    throw new Error(`mediasoup is not runnable: ${reason}. Under CI=true a MEDIASOUP_WORKER_BIN that is set must name a worker that starts (or leave it unset to run the embedded SFU only)`);
  }
  const suite = ctx.test?.parent?.fullTitle() || 'this suite';
  console.warn(`      ⚠ mediasoup not runnable: skipping "${suite}" (${reason}; in CI this fails the run)`);
  ctx.skip();
}

/** The server config that makes a test server use `adapter` (config.mediasoupWorkerBin). */
export function adapterConfig(adapter: SfuKind): { mediasoupWorkerBin: string | null } {
  if (adapter === 'embedded') return { mediasoupWorkerBin: null };
  if (!MEDIASOUP_WORKER_BIN) throw new Error('the mediasoup adapter was asked for, but MEDIASOUP_WORKER_BIN is not set');
  return { mediasoupWorkerBin: MEDIASOUP_WORKER_BIN };
}

/** The environment that makes a server process (`node server/main.ts`) use `adapter`. */
export function adapterEnv(adapter: SfuKind): Record<string, string> {
  const { mediasoupWorkerBin } = adapterConfig(adapter);
  return mediasoupWorkerBin ? { MEDIASOUP_WORKER_BIN: mediasoupWorkerBin } : {};
}

/**
 * The log line a server process prints at start naming its SFU (LiveStreams:
 * "live streams use the … SFU"); wait for it to know the process did not fall
 * back to the embedded SFU when mediasoup was asked for.
 */
export function adapterLogLine(adapter: SfuKind): RegExp {
  return new RegExp(`live streams use the ${adapter} SFU`);
}
