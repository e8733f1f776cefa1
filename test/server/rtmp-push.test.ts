// The RTMP push with real parts: a live ffmpeg makes the room's H.264 + AAC fragmented MP4
// (a test picture and a tone that stops midway), RtmpPush remuxes it to a real nginx-rtmp,
// whose recording is read back with ffprobe/ffmpeg. A wrong key is refused by the ingest
// itself (nginx-rtmp's on_publish); nginx is stopped and started under a running push.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { EventEmitter } from 'node:events';
import { RtmpPush, type FragmentChunk, type FragmentInit, type FragmentSource, type RtmpState } from '../../server/live/rtmp-push.ts';
import { checkRtmpTarget } from '../../server/live/rtmp-target.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { TestFragmentSource } from '../support/fmp4-source.ts';
import { nginxRtmpAvailable, sharedNginxRtmp, TestNginxRtmp } from '../support/nginx-rtmp.ts';
import { waitFor } from '../support/room-clients.ts';
import { tempDir } from '../support/temp.ts';

const run = promisify(execFile);

function capturedLogger(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void lines.push(line) });
  return { log, lines };
}

function freshKey(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}-Zq9`;
}

/** PIDs of this process's children that are ffmpeg (read from /proc). */
function ffmpegChildren(): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (comm === 'ffmpeg' && ppid === process.pid) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

/** The recording's audio level, in dBFS (RMS), per window of `windowSec`. */
async function audioLevels(file: string, windowSec: number): Promise<number[]> {
  const rate = 8000;
  const { stdout } = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-map', '0:a', '-ac', '1', '-ar', String(rate), '-f', 'f32le', 'pipe:1'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  const samples = new Float32Array(stdout.buffer, stdout.byteOffset, Math.floor(stdout.length / 4));
  const per = Math.round(rate * windowSec);
  const levels: number[] = [];
  for (let at = 0; at + per <= samples.length; at += per) {
    let sum = 0;
    for (let i = at; i < at + per; i++) sum += samples[i]! * samples[i]!;
    levels.push(10 * Math.log10(sum / per + 1e-12));
  }
  return levels;
}

/** Forwards one TestFragmentSource at a time, as the room's source does when its encoder restarts. */
class SwitchingSource extends EventEmitter<{ init: [FragmentInit]; chunk: [FragmentChunk] }> implements FragmentSource {
  init: FragmentInit | null = null;
  #from: TestFragmentSource | null = null;
  readonly #onInit = (init: FragmentInit) => {
    this.init = init;
    this.emit('init', init);
  };
  readonly #onChunk = (chunk: FragmentChunk) => this.emit('chunk', chunk);

  use(source: TestFragmentSource): void {
    this.#from?.off('init', this.#onInit).off('chunk', this.#onChunk);
    this.#from = source;
    source.on('init', this.#onInit).on('chunk', this.#onChunk);
  }
}

describe('RTMP push (real nginx-rtmp, real ffmpeg)', function () {
  this.timeout(120_000);
  let nginx: TestNginxRtmp;
  const sources: TestFragmentSource[] = [];
  const pushes: RtmpPush[] = [];

  before(async function () {
    requireComponent('nginx libnginx-mod-rtmp', nginxRtmpAvailable(), this);
    requireComponent('ffmpeg', commandExists('ffmpeg') && commandExists('ffprobe'), this);
    nginx = await sharedNginxRtmp();
  });

  afterEach(async () => {
    await Promise.all(pushes.splice(0).map((p) => p.stop()));
    await Promise.all(sources.splice(0).map((s) => s.stop()));
  });

  function track<T extends RtmpPush | TestFragmentSource>(thing: T): T {
    if (thing instanceof RtmpPush) pushes.push(thing);
    else sources.push(thing);
    return thing;
  }

  it('pushes H.264 + AAC without re-encoding: the ingest records both, the audio goes silent when the tone stops, and stop() leaves no ffmpeg', async () => {
    const key = freshKey('good');
    nginx.allowedKeys.add(key);
    const { log, lines } = capturedLogger();
    const source = track(new TestFragmentSource({ durationSec: 9, toneOffAtSec: 4.5 }));
    const target = await checkRtmpTarget(nginx.url, key, { allowPrivate: true });
    const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log }));
    const states: RtmpState[] = [];
    push.on('state', (s) => states.push(s));
    push.start(); // before the source's init exists: it is written when it comes
    await waitFor(() => push.state.status === 'live', 20_000, 'the push to go live');
    const pushers = ffmpegChildren().filter((pid) => pid !== source.pid);
    expect(pushers).to.have.length(1);
    await source.ended;
    await new Promise((r) => setTimeout(r, 500)); // the last chunk through ffmpeg
    await push.stop();

    expect(states.map((s) => s.status)).to.deep.equal(['connecting', 'live', 'stopped']);
    expect(push.state).to.include({ status: 'stopped', target: nginx.url, lastError: null });
    expect(push.droppedChunks).to.equal(0);
    for (const pid of pushers) expect(() => process.kill(pid, 0), `ffmpeg ${pid} still runs`).to.throw();
    expect(ffmpegChildren().filter((pid) => pid !== source.pid)).to.deep.equal([]);
    expect(nginx.publishes.filter((p) => p.name === key)).to.deep.equal([{ name: key, tcUrl: nginx.url, allowed: true }]);

    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height,sample_rate', '-of', 'json', nginx.recording(key)]);
    const streams = (JSON.parse(stdout) as { streams: Record<string, unknown>[] }).streams;
    expect(streams).to.deep.include({ codec_type: 'video', codec_name: 'h264', width: 320, height: 180 });
    expect(streams).to.deep.include({ codec_type: 'audio', codec_name: 'aac', sample_rate: '48000' });

    // The tone (lavfi sine, about -21 dBFS RMS) then silence: loud windows, then only silent ones.
    const levels = await audioLevels(nginx.recording(key), 0.5);
    const firstSilent = levels.findIndex((db) => db < -60);
    expect(firstSilent, `levels ${levels.map((d) => d.toFixed(0)).join(' ')}`).to.be.greaterThan(2);
    expect(levels.slice(0, firstSilent - 1).every((db) => db > -30), 'loud before').to.equal(true);
    expect(levels.slice(firstSilent).every((db) => db < -60), 'silent after').to.equal(true);
    expect(levels.length - firstSilent).to.be.greaterThan(4); // at least 2 s of the silence arrived
    expect(lines.join('\n')).not.to.include(key);
  });

  it('a wrong stream key: the ingest refuses it, the push retries with backoff, then fails with a clear reason; the key is in no log line or state', async () => {
    const key = freshKey('wrong');
    const { log, lines } = capturedLogger();
    const source = track(new TestFragmentSource({ durationSec: 30, toneOffAtSec: 30 }));
    const target = await checkRtmpTarget(nginx.url, key, { allowPrivate: true });
    const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, backoff: { initialMs: 100, maxMs: 400 }, maxFailures: 3 }));
    const states: RtmpState[] = [];
    push.on('state', (s) => states.push(s));
    push.start();
    await waitFor(() => push.state.status === 'failed', 30_000, 'the push to give up');

    expect(states.map((s) => s.status)).to.deep.equal(['connecting', 'retrying', 'connecting', 'retrying', 'connecting', 'failed']);
    expect(states.filter((s) => s.status === 'retrying').map((s) => [s.attempts, s.nextRetryInMs])).to.deep.equal([[1, 100], [2, 200]]);
    expect(push.state.attempts).to.equal(3);
    expect(push.state.lastError).to.match(/^the ingest refused the stream \(wrong stream key\?\)/);
    expect(nginx.publishes.filter((p) => p.name === key).map((p) => p.allowed)).to.deep.equal([false, false, false]);
    expect(ffmpegChildren().filter((pid) => pid !== source.pid)).to.deep.equal([]);
    const logged = lines.join('\n');
    expect(logged).to.include('rtmp push gave up');
    expect(logged).not.to.include(key);
    expect(JSON.stringify(states)).not.to.include(key);
    // The source keeps running and nothing is fed any more.
    expect(source.listenerCount('chunk')).to.equal(0);
  });

  it('nginx stopped under a live push: retrying; nginx back: live again, on the same key', async function () {
    const own = await TestNginxRtmp.create();
    try {
      const key = freshKey('again');
      own.allowedKeys.add(key);
      const { log, lines } = capturedLogger();
      const source = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
      const target = await checkRtmpTarget(own.url, key, { allowPrivate: true });
      const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, backoff: { initialMs: 250, maxMs: 1000 }, maxFailures: 100 }));
      const states: RtmpState[] = [];
      push.on('state', (s) => states.push(s));
      push.start();
      await waitFor(() => push.state.status === 'live', 20_000, 'the push to go live');
      await own.stop();
      await waitFor(() => push.state.status === 'retrying', 20_000, 'the push to notice');
      expect(push.state.lastError).to.match(/ingest closed the connection|connection refused/);
      // The next attempts find nothing listening.
      await waitFor(() => /connection refused/.test(push.state.lastError ?? ''), 20_000, 'a refused connection');
      expect(push.state.lastError).to.match(/^could not connect to rtmp:\/\/127\.0\.0\.1:\d+\/live \(connection refused\)$/);
      expect(push.state.attempts).to.be.greaterThan(1);
      await own.start();
      await waitFor(() => push.state.status === 'live', 20_000, 'the push to be live again');
      expect(push.state).to.include({ attempts: 0, lastError: null });
      expect(own.publishes.filter((p) => p.name === key).length).to.equal(2);
      await push.stop();
      expect(states.at(-1)!.status).to.equal('stopped');
      expect(ffmpegChildren().filter((pid) => pid !== source.pid)).to.deep.equal([]);
      expect(lines.join('\n')).not.to.include(key);
    } finally {
      await own.remove();
    }
  });

  it('an ingest that stops reading: chunks are dropped up to the next independent one instead of piling up', async () => {
    const key = freshKey('slow');
    nginx.allowedKeys.add(key);
    const { log } = capturedLogger();
    const source = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
    const target = await checkRtmpTarget(nginx.url, key, { allowPrivate: true });
    const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, maxPendingBytes: 16 * 1024, stallMs: 120_000 }));
    push.start();
    await waitFor(() => push.state.status === 'live', 20_000, 'the push to go live');
    const [pusher] = ffmpegChildren().filter((pid) => pid !== source.pid);
    // ffmpeg frozen: its stdin pipe fills (64 KB in the kernel), then the push's own queue.
    process.kill(pusher!, 'SIGSTOP');
    try {
      await waitFor(() => push.droppedChunks >= 3, 30_000, 'chunks to be dropped');
    } finally {
      process.kill(pusher!, 'SIGCONT');
    }
    expect(push.state.status).to.equal('live');
    await push.stop();
    expect(() => process.kill(pusher!, 0)).to.throw();
  });

  it('rtmps: Node carries the push over TLS to the checked address, with the host name as SNI and the certificate checked against it', async function () {
    requireComponent('openssl', commandExists('openssl'), this);
    // A TLS terminator in front of nginx-rtmp (as stunnel would be), with a certificate for ingest.test.
    const dir = await tempDir('rtmps');
    const servernames: (string | false | null)[] = [];
    let terminator: tls.Server | null = null;
    try {
      const keyFile = path.join(dir.path, 'key.pem');
      const certFile = path.join(dir.path, 'cert.pem');
      await run('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=ingest.test', '-addext', 'subjectAltName=DNS:ingest.test']);
      const cert = fs.readFileSync(certFile);
      terminator = tls.createServer({ key: fs.readFileSync(keyFile), cert }, (socket) => {
        servernames.push(socket.servername);
        const upstream = net.connect(nginx.port, '127.0.0.1');
        socket.pipe(upstream).pipe(socket);
        socket.on('error', () => upstream.destroy());
        upstream.on('error', () => socket.destroy());
        socket.on('close', () => upstream.destroy());
      });
      await new Promise<void>((resolve) => terminator!.listen(0, '127.0.0.1', resolve));
      const tlsPort = (terminator.address() as net.AddressInfo).port;
      const url = `rtmps://ingest.test:${tlsPort}/live`;
      const lookup = async () => ['127.0.0.1'];

      const key = freshKey('tls');
      nginx.allowedKeys.add(key);
      const { log, lines } = capturedLogger();
      const source = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
      const target = await checkRtmpTarget(url, key, { allowPrivate: true, lookup });
      const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, tlsCa: cert }));
      push.start();
      await waitFor(() => push.state.status === 'live', 20_000, 'the rtmps push to go live');
      expect(servernames).to.deep.equal(['ingest.test']);
      expect(nginx.publishes.filter((p) => p.name === key)).to.deep.equal([{ name: key, tcUrl: url, allowed: true }]);
      await push.stop();

      // Without the test's CA the certificate is not trusted: refused, never pushed in the clear.
      const untrusted = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, backoff: { initialMs: 50, maxMs: 50 }, maxFailures: 2 }));
      untrusted.start();
      await waitFor(() => untrusted.state.status === 'failed', 20_000, 'the untrusted push to give up');
      expect(untrusted.state.lastError).to.match(/^the TLS connection to rtmps:\/\/ingest\.test:\d+\/live failed: self[- ]signed certificate/);
      expect(nginx.publishes.filter((p) => p.name === key)).to.have.length(1);
      expect(lines.join('\n')).not.to.include(key);
    } finally {
      terminator?.close();
      await dir.remove();
    }
  });

  it('a new init segment (the encoder restarted): ffmpeg is restarted at once with it, not counted as a failure', async () => {
    const key = freshKey('restart');
    nginx.allowedKeys.add(key);
    const { log } = capturedLogger();
    const source = new SwitchingSource();
    const first = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
    source.use(first);
    const target = await checkRtmpTarget(nginx.url, key, { allowPrivate: true });
    const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, maxFailures: 1 }));
    const states: RtmpState[] = [];
    push.on('state', (s) => states.push(s));
    push.start();
    await waitFor(() => push.state.status === 'live', 20_000, 'the push to go live');
    const [before] = ffmpegChildren().filter((pid) => pid !== first.pid);
    const second = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
    source.use(second);
    await first.stop();
    await waitFor(() => states.filter((s) => s.status === 'live').length === 2, 20_000, 'live again after the new init');
    expect(states.map((s) => s.status)).to.deep.equal(['connecting', 'live', 'connecting', 'live']);
    expect(push.state).to.include({ attempts: 0, lastError: null });
    expect(() => process.kill(before!, 0)).to.throw();
    expect(nginx.publishes.filter((p) => p.name === key)).to.have.length(2);
  });

  it('an ingest that accepts the connection and never answers: the attempt ends after the stall limit, then the push gives up', async () => {
    const sockets = new Set<net.Socket>();
    const blackhole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => undefined);
      socket.resume(); // reads the handshake, never answers
    });
    await new Promise<void>((resolve) => blackhole.listen(0, '127.0.0.1', resolve));
    try {
      const key = freshKey('hole');
      const { log, lines } = capturedLogger();
      const source = track(new TestFragmentSource({ durationSec: 60, toneOffAtSec: 60 }));
      const target = await checkRtmpTarget(`rtmp://127.0.0.1:${(blackhole.address() as net.AddressInfo).port}/live`, key, { allowPrivate: true });
      const push = track(new RtmpPush({ ffmpeg: 'ffmpeg', target, source, log, backoff: { initialMs: 100, maxMs: 100 }, maxFailures: 2, stallMs: 3000 }));
      const states: RtmpState[] = [];
      push.on('state', (s) => states.push(s));
      push.start();
      await waitFor(() => push.state.status === 'failed', 40_000, 'the push to give up');
      expect(states.map((s) => s.status)).to.deep.equal(['connecting', 'retrying', 'connecting', 'failed']);
      expect(push.state.lastError).to.equal('the ingest did not answer within 3 s');
      expect(sockets.size).to.equal(2);
      expect(ffmpegChildren().filter((pid) => pid !== source.pid)).to.deep.equal([]);
      expect(lines.join('\n')).not.to.include(key);
    } finally {
      for (const socket of sockets) socket.destroy();
      blackhole.close();
    }
  });
});
