// The visual output's encoder restarts, with fake ffmpegs (shell scripts in a
// temp dir, given where the output takes the ffmpeg path): a crashing encoder
// is restarted after a backoff that doubles up to its cap, and after
// maxFailures in a row the output gives up (a log line, 'error', `failure`,
// 'close') and starts no more processes; an encoder that ran fine for
// healthyMs before it died starts the count again. Short waits through the
// `restart` option; assertions on counts and order, and lower bounds on time.
import { readFileSync } from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { expect } from 'chai';
import { pino } from 'pino';
import * as Y from 'yjs';
import { VisualOutput, type EncoderRestartPolicy } from '../../media/live/visual-output.ts';
import { normalizeRoomDoc, readRoomState } from '../../shared/room-doc.ts';
import { testRoomRelease } from '../support/room-release.ts';
import { tempDir } from '../support/temp.ts';
import { testArtworks } from '../support/visual-fixtures.ts';

/** The state letter of a process (R, S, Z…); throws when it is gone. */
function stateOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
}

type Seen = { kind: 'error'; message: string } | { kind: 'close' };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, timeoutMs: number, probe: () => boolean): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('visual output: encoder restarts with backoff and a cap', function () {
  this.timeout(30_000);
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const outputs: VisualOutput[] = [];
  const ports: MessagePort[] = [];

  before(async () => {
    dir = await tempDir('fake-ffmpeg');
  });

  afterEach(async () => {
    for (const o of outputs.splice(0)) await o.close();
    for (const p of ports.splice(0)) p.close();
  });

  after(async () => {
    await dir?.remove();
  });

  /** A fake ffmpeg: `body` after a line in `starts` (one per process started). */
  async function fakeFfmpeg(name: string, body: string): Promise<{ bin: string; starts: () => Promise<number> }> {
    const bin = path.join(dir.path, name);
    const starts = path.join(dir.path, `${name}.starts`);
    await fsp.writeFile(bin, `#!/bin/sh\necho start >> '${starts}'\n${body}\n`, { mode: 0o755 });
    return {
      bin,
      starts: async () => (await fsp.readFile(starts, 'utf8').catch(() => '')).split('\n').filter(Boolean).length,
    };
  }

  async function start(ffmpeg: string, restart: Partial<EncoderRestartPolicy>, logLines?: Record<string, unknown>[]) {
    const release = testRoomRelease();
    const doc = new Y.Doc();
    normalizeRoomDoc(doc, release, Date.now());
    const state = readRoomState(doc);
    const channel = new MessageChannel();
    ports.push(channel.port2);
    const log = logLines ? pino({ level: 'warn' }, { write: (line: string) => void logLines.push(JSON.parse(line) as Record<string, unknown>) }) : undefined;
    const output = await VisualOutput.create({
      ffmpeg,
      width: 64,
      height: 36,
      fps: 15,
      sink: { kind: 'port', port: channel.port1 },
      ssrc: 1234,
      payloadType: 96,
      artwork: testArtworks(),
      release,
      room: { mix: state.mix, arrangement: state.arrangement, visual: state.visual },
      restart,
      ...(log ? { log } : {}),
    });
    outputs.push(output);
    const seen: Seen[] = [];
    output.on('error', (err) => seen.push({ kind: 'error', message: err.message }));
    output.on('close', () => seen.push({ kind: 'close' }));
    return { output, seen };
  }

  /** The restarts announced for the encoder in use (not the standby's exits). */
  const restartsOf = (seen: Seen[]) =>
    seen.flatMap((s) => {
      const m = s.kind === 'error' ? /^the VP8 encoder exited .*; failure (\d+) of (\d+), restarting in (\d+) ms$/s.exec(s.message) : null;
      return m ? [{ failure: Number(m[1]), of: Number(m[2]), delayMs: Number(m[3]) }] : [];
    });

  it('a crashing ffmpeg is restarted after 50, 100, 120, 120 ms, then the output gives up and starts nothing more', async () => {
    const fake = await fakeFfmpeg('crashing', 'echo "fake ffmpeg: broken" >&2\nexit 1');
    const logLines: Record<string, unknown>[] = [];
    const t0 = performance.now();
    const { output, seen } = await start(fake.bin, { initialMs: 50, maxMs: 120, maxFailures: 5, healthyMs: 60_000 }, logLines);
    await until('the output to close', 20_000, () => seen.some((s) => s.kind === 'close'));
    const elapsed = performance.now() - t0;

    expect(restartsOf(seen)).to.deep.equal([
      { failure: 1, of: 5, delayMs: 50 },
      { failure: 2, of: 5, delayMs: 100 },
      { failure: 3, of: 5, delayMs: 120 },
      { failure: 4, of: 5, delayMs: 120 },
    ]);
    // Timers never fire early: the four waits happened before the output closed.
    expect(elapsed).to.be.at.least(50 + 100 + 120 + 120);
    // The give-up comes after the last restart and before the close, which is last.
    const giveUp = seen.findIndex((s) => s.kind === 'error' && /failed 5 times in a row/.test(s.message));
    const lastRestart = seen.findLastIndex((s) => s.kind === 'error' && /restarting in/.test(s.message));
    expect(giveUp, JSON.stringify(seen)).to.be.greaterThan(lastRestart);
    expect(seen.at(-1)).to.deep.equal({ kind: 'close' });
    expect(seen.filter((s) => s.kind === 'close')).to.have.length(1);
    expect(output.closed).to.equal(true);
    expect(output.failure?.message).to.match(/the VP8 encoder failed 5 times in a row; the room's video stops \(last: the VP8 encoder exited \(1\): fake ffmpeg: broken\)/);
    await output.stats().then(
      () => expect.fail('stats of a closed output'),
      (err: Error) => expect(err.message).to.match(/closed/),
    );
    // One clear log line at error level says the video stops, and why.
    const errors = logLines.filter((l) => l['level'] === 50);
    expect(errors).to.have.length(1);
    expect(errors[0]!['msg']).to.equal('visual output failed; the video stops');
    expect(JSON.stringify(errors[0]!['err'])).to.match(/failed 5 times in a row/);

    // At least the five that failed; at most the first encoder and its standby and two per restart (the standby is taken if still alive).
    const started = await fake.starts();
    expect(started).to.be.within(5, 2 + 4 * 2);
    // Nothing is started after the output gave up (longer than the longest backoff).
    await sleep(500);
    expect(await fake.starts()).to.equal(started);
  });

  it('an ffmpeg that cannot be spawned at all counts as failing (no exit event) and is given up too', async () => {
    const { output, seen } = await start(path.join(dir.path, 'no-such-ffmpeg'), { initialMs: 10, maxMs: 20, maxFailures: 3, healthyMs: 60_000 });
    await until('the output to close', 20_000, () => seen.some((s) => s.kind === 'close'));
    expect(restartsOf(seen).map((r) => [r.failure, r.delayMs])).to.deep.equal([
      [1, 10],
      [2, 20],
    ]);
    expect(output.failure?.message).to.match(/failed 3 times in a row/);
  });

  it('an encoder that ran fine for healthyMs before it died starts the count again: no give-up', async () => {
    // Dies 400 ms after its first frame; a standby (never fed) lives until it is killed.
    const fake = await fakeFfmpeg('dies-later', 'head -c 1 > /dev/null\nsleep 0.4\nexit 1');
    const { output, seen } = await start(fake.bin, { initialMs: 20, maxMs: 20, maxFailures: 2, healthyMs: 150 });
    await until('three encoder failures', 20_000, () => restartsOf(seen).length >= 3);
    expect(restartsOf(seen).slice(0, 3)).to.deep.equal([
      { failure: 1, of: 2, delayMs: 20 },
      { failure: 1, of: 2, delayMs: 20 },
      { failure: 1, of: 2, delayMs: 20 },
    ]);
    expect(output.closed).to.equal(false);
    expect(output.failure).to.equal(null);
    const stats = await output.stats();
    expect(stats.encoderFailures).to.be.at.least(3);
    // The third failure's restart may still be waiting out its backoff.
    expect(stats.encoderRestarts).to.be.at.least(2);
  });
  it('a closed output leaves no encoder behind: each is killed and reaped, not left a zombie of this process', async () => {
    // Both the encoder and its standby run (exec: the process is the one spawned) until killed.
    const pids = path.join(dir.path, 'running.pids');
    const fake = await fakeFfmpeg('running', `echo $$ >> '${pids}'\nexec sleep 60`);
    const { output } = await start(fake.bin, { initialMs: 1000, maxMs: 1000, maxFailures: 5, healthyMs: 60_000 });
    const started = async () => (await fsp.readFile(pids, 'utf8').catch(() => '')).split('\n').filter(Boolean).map(Number);
    const deadline = Date.now() + 10_000;
    while ((await started()).length < 2 && Date.now() < deadline) await sleep(20);
    const spawned = await started();
    expect(spawned, 'the encoder and its standby').to.have.length(2);
    await output.close();
    // A process that was killed but never waited for stays in /proc as Z until this process exits.
    const left = spawned.flatMap((pid) => {
      try {
        const stat = stateOf(pid);
        return [`${pid} (${stat})`];
      } catch {
        return [];
      }
    });
    expect(left, 'encoder processes still in the process table after close').to.deep.equal([]);
  });
});
