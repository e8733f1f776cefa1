// The one rule for which SFU adapters the audio tests run against
// (test/support/sfu-adapters.ts), seen from outside: a child mocha runs a suite
// generated per adapter, with MEDIASOUP_WORKER_BIN and CI as a machine has them.
import { spawn } from 'node:child_process';
import { expect } from 'chai';
import { REPO_ROOT } from '../support/server-process.ts';

const FIXTURE = 'test/sfu/fixtures/adapter-suite.ts';

async function runSuite(env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  // Only PATH and HOME from this process: its own MEDIASOUP_WORKER_BIN and CI must not leak in.
  const child = spawn(process.execPath, ['node_modules/mocha/bin/mocha.js', '--no-config', '--extension', 'ts', '--timeout', '30000', '--exit', FIXTURE], {
    cwd: REPO_ROOT,
    env: { PATH: process.env['PATH'] ?? '', HOME: process.env['HOME'] ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  return { code, out };
}

describe('SFU adapters the audio tests run against', function () {
  this.timeout(60_000);

  it('without MEDIASOUP_WORKER_BIN: the embedded SFU only, also in CI', async () => {
    const { code, out } = await runSuite({ CI: 'true' });
    expect(code, out).to.equal(0);
    expect(out).to.include('a suite that plays audio [embedded]');
    expect(out).to.not.include('[mediasoup]');
  });

  it('a MEDIASOUP_WORKER_BIN that does not start: the mediasoup suite is generated and skipped, saying why', async () => {
    const { code, out } = await runSuite({ MEDIASOUP_WORKER_BIN: '/bin/false' });
    expect(code, out).to.equal(0);
    expect(out).to.include('a suite that plays audio [embedded]');
    expect(out).to.include('a suite that plays audio [mediasoup]');
    expect(out).to.match(/mediasoup not runnable: skipping .*\[mediasoup\].*\/bin\/false does not start/);
    expect(out).to.match(/1 passing/).and.match(/1 pending/);
  });

  it('the same under CI=true fails the run, naming the worker', async () => {
    const { code, out } = await runSuite({ MEDIASOUP_WORKER_BIN: '/nonexistent/mediasoup-worker', CI: 'true' });
    expect(code, out).to.not.equal(0);
    expect(out).to.match(/mediasoup is not runnable: MEDIASOUP_WORKER_BIN=\/nonexistent\/mediasoup-worker is not an executable file/);
    expect(out).to.match(/1 passing/).and.match(/1 failing/);
  });
});
