// A room's push to an RTMP ingest (YouTube, Twitch, any nginx-rtmp): one ffmpeg that remuxes
// the room's already encoded H.264 + AAC fragments (the `video` rendition's fMP4) into FLV over
// RTMP — no second encode. It reconnects with backoff when the ingest drops it or cannot be
// reached, and gives up after a number of failures in a row (a wrong stream key is refused at
// every attempt), with a reason the host can read.
//
// The stream key is a credential: it reaches ffmpeg as its own option (-rtmp_playpath, not in
// the URL ffmpeg prints), and every line of ffmpeg's output is scrubbed of it before it is
// logged or becomes lastError. It still shows in the process list of the machine (ffmpeg's
// command line); the RTMP protocol has no other way to hand it over.
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import type { Logger } from '../logger.ts';
import type { RtmpTarget } from './rtmp-target.ts';

/** The parts of media/live/cmaf.ts's CmafInit / CmafChunk a push needs (those types fit these). */
export interface FragmentInit {
  data: Buffer;
}
export interface FragmentChunk {
  data: Buffer;
  /** The video track's first sample is a sync sample: ffmpeg can start here. */
  independent: boolean;
}
/** A rendition's fragmented MP4: its current init segment, then chunks (moof + mdat) as they are made. */
export interface FragmentSource extends EventEmitter<{ init: [FragmentInit]; chunk: [FragmentChunk] }> {
  readonly init: FragmentInit | null;
}

export type RtmpStatus = 'connecting' | 'live' | 'retrying' | 'failed' | 'stopped';
export interface RtmpState {
  status: RtmpStatus;
  /** Where it goes, without the key (RtmpTarget.display). */
  target: string;
  /** When this status began (ISO 8601). */
  since: string;
  /** Failed attempts in a row (0 while live or on the first try). */
  attempts: number;
  /** Why the last attempt ended, for the host; never holds the key. */
  lastError: string | null;
  /** While retrying: how long until the next attempt. */
  nextRetryInMs: number | null;
}

export interface RtmpPushOptions {
  ffmpeg: string;
  target: RtmpTarget;
  source: FragmentSource;
  log: Logger;
  /** Waits between attempts: initialMs, doubled after each failure in a row, at most maxMs (1 s … 30 s). */
  backoff?: { initialMs: number; maxMs: number };
  /** Failures in a row after which the push gives up (state 'failed'). Default 6 (about a minute). */
  maxFailures?: number;
  /** Bytes waiting for ffmpeg's stdin beyond which chunks are dropped (the ingest is slower than real time). Default 4 MB. */
  maxPendingBytes?: number;
  /** How long ffmpeg has after SIGTERM before SIGKILL. Default 3 s. */
  stopGraceMs?: number;
  /** rtmps: certificate authorities to trust instead of Node's (tests). */
  tlsCa?: string | Buffer;
  /**
   * How long media written to ffmpeg may go unconfirmed (its progress reports no new media time)
   * before the attempt counts as failed: an ingest that accepts the connection and never answers,
   * or stops reading, would otherwise hold the push forever. Default 15 s.
   */
  stallMs?: number;
}

/** One ffmpeg run: what it has shown so far. */
interface PushRun {
  live: boolean;
  stderrTail: string[];
  logged: number;
  /** rtmps: why the relay's TLS connection failed. */
  relayError: string | null;
  /** Set when the watchdog ended the run. */
  stallError: string | null;
  /** The media time ffmpeg last reported (µs). */
  outTimeUs: number;
  /** When data was first written that ffmpeg's progress has not yet confirmed; null when all is confirmed. */
  unconfirmedSince: number | null;
  watchdog: NodeJS.Timeout | null;
}

/** ffmpeg's stderr lines logged per run at most: a flapping ingest must not flood the log. */
const MAX_LOGGED_LINES = 20;
const KEPT_LINES = 8;

export class RtmpPush extends EventEmitter<{ state: [RtmpState] }> {
  readonly #opts: RtmpPushOptions;
  readonly #log: Logger;
  readonly #backoff: { initialMs: number; maxMs: number };
  readonly #maxFailures: number;
  readonly #maxPendingBytes: number;
  #state: RtmpState;
  #child: ChildProcess | null = null;
  #relay: TlsRelay | null = null;
  #retryTimer: NodeJS.Timeout | null = null;
  #retryAt: number | null = null;
  #failures = 0;
  #started = false;
  #stopping: Promise<void> | null = null;
  /** The init the running ffmpeg was given (a different one needs a new ffmpeg). */
  #fedInit: FragmentInit | null = null;
  /** Chunks are skipped until an independent one: at the start of a run and after drops. */
  #needIndependent = true;
  #restartForInit = false;
  #dropped = 0;
  #run: PushRun | null = null;
  readonly #onInit = (init: FragmentInit) => this.#handleInit(init);
  readonly #onChunk = (chunk: FragmentChunk) => this.#handleChunk(chunk);

  constructor(opts: RtmpPushOptions) {
    super();
    this.#opts = opts;
    this.#log = opts.log.child({ rtmp: opts.target.display });
    this.#backoff = opts.backoff ?? { initialMs: 1000, maxMs: 30_000 };
    this.#maxFailures = opts.maxFailures ?? 6;
    this.#maxPendingBytes = opts.maxPendingBytes ?? 4 * 1024 * 1024;
    this.#state = this.#makeState('stopped', null, null);
  }

  /** The state now (while retrying, nextRetryInMs is what is left of the wait). */
  get state(): RtmpState {
    const left = this.#retryAt === null ? null : Math.max(0, this.#retryAt - Date.now());
    return { ...this.#state, nextRetryInMs: this.#state.status === 'retrying' ? left : null };
  }

  /** Chunks dropped because ffmpeg (the ingest) did not keep up. */
  get droppedChunks(): number {
    return this.#dropped;
  }

  /** Starts pushing (again, after 'failed' or stop(): failures are counted anew). */
  start(): void {
    if (this.#stopping) throw new Error('this RTMP push was stopped; make a new one');
    if (this.#started && this.#state.status !== 'failed') return;
    this.#started = true;
    this.#failures = 0;
    this.#opts.source.on('init', this.#onInit);
    this.#opts.source.on('chunk', this.#onChunk);
    this.#spawn();
  }

  /** Stops the push: ffmpeg gets SIGTERM, then SIGKILL after the grace; resolves once it has exited. Idempotent. */
  stop(): Promise<void> {
    this.#stopping ??= this.#stop();
    return this.#stopping;
  }

  async #stop(): Promise<void> {
    this.#detach();
    const child = this.#child;
    if (child) await killChild(child, this.#opts.stopGraceMs ?? 3000);
    this.#closeRelay();
    this.#setState('stopped', this.#state.lastError, null);
  }

  #detach(): void {
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#opts.source.off('init', this.#onInit);
    this.#opts.source.off('chunk', this.#onChunk);
  }

  #spawn(): void {
    this.#retryTimer = null;
    this.#retryAt = null;
    this.#setState('connecting', this.#state.lastError, null);
    const { target } = this.#opts;
    if (target.tls) {
      // ffmpeg's own TLS sends no server name (SNI) when it is handed an address literal, and
      // handing it the name would let DNS answer differently than the check did. So Node opens
      // the TLS connection to the checked address with the name as SNI and verifies the
      // certificate against it; ffmpeg speaks plain RTMP to this relay on loopback.
      this.#relay = new TlsRelay(target, this.#opts.tlsCa, (why) => {
        if (this.#run) this.#run.relayError = why;
      });
      this.#relay.listen().then(
        (port) => {
          if (this.#stopping || !this.#relay) return;
          this.#startFfmpeg(`rtmp://127.0.0.1:${port}/${target.app}`);
        },
        (err: Error) => this.#ended(`could not open a local TLS relay: ${err.message}`),
      );
    } else {
      const host = net.isIPv6(target.address) ? `[${target.address}]` : target.address;
      this.#startFfmpeg(`rtmp://${host}:${target.port}/${target.app}`);
    }
  }

  #startFfmpeg(connectUrl: string): void {
    const { target } = this.#opts;
    const args = [
      '-hide_banner', '-loglevel', 'warning', '-nostats',
      // key=value blocks on stdout every half second: the first with media time > 0 means the
      // ingest accepted the publish (ffmpeg opens the RTMP output before it muxes anything).
      '-progress', 'pipe:1', '-stats_period', '0.5',
      '-f', 'mp4', '-i', 'pipe:0',
      '-map', '0', '-c', 'copy',
      '-f', 'flv', '-flvflags', 'no_duration_filesize',
      '-rtmp_app', target.app, '-rtmp_playpath', target.key, '-rtmp_tcurl', target.tcUrl,
      connectUrl,
    ];
    const child = spawn(this.#opts.ffmpeg, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child = child;
    const run: PushRun = { live: false, stderrTail: [], logged: 0, relayError: null, stallError: null, outTimeUs: 0, unconfirmedSince: null, watchdog: null };
    this.#run = run;
    const stallMs = this.#opts.stallMs ?? 15_000;
    run.watchdog = setInterval(() => {
      if (run.unconfirmedSince === null || Date.now() - run.unconfirmedSince < stallMs || run.stallError) return;
      run.stallError = run.live
        ? `the ingest stopped taking the stream (nothing confirmed for ${Math.round(stallMs / 1000)} s)`
        : `the ingest did not answer within ${Math.round(stallMs / 1000)} s`;
      this.#log.warn({ why: run.stallError }, 'rtmp push stalled; ending this attempt');
      void killChild(child, this.#opts.stopGraceMs ?? 3000);
    }, Math.max(50, Math.min(1000, stallMs / 4)));
    this.#fedInit = null;
    this.#needIndependent = true;
    child.stdin!.on('error', () => {
      // EPIPE when ffmpeg has exited: its exit says why.
    });
    lines(child.stdout!, (line) => {
      const outTime = /^out_time_us=(\d+)$/.exec(line);
      if (!outTime || Number(outTime[1]) <= run.outTimeUs) return;
      run.outTimeUs = Number(outTime[1]);
      run.unconfirmedSince = null;
      if (!run.live) {
        run.live = true;
        this.#failures = 0;
        this.#log.info('rtmp push live');
        this.#setState('live', null, null);
      }
    });
    lines(child.stderr!, (raw) => {
      const line = this.#scrub(raw);
      run.stderrTail.push(line);
      if (run.stderrTail.length > KEPT_LINES) run.stderrTail.shift();
      if (run.logged++ < MAX_LOGGED_LINES) this.#log.warn({ ffmpeg: line }, 'rtmp push: ffmpeg says');
    });
    child.once('error', (err) => {
      // Could not start at all (no ffmpeg): no 'close' follows a failed spawn on every platform.
      run.stderrTail.push(`ffmpeg could not start: ${err.message}`);
    });
    child.once('close', (code, signal) => {
      if (run.watchdog) clearInterval(run.watchdog);
      if (this.#child !== child) return;
      this.#child = null;
      this.#closeRelay();
      if (this.#stopping) return;
      if (this.#restartForInit) {
        this.#restartForInit = false;
        this.#spawn();
        return;
      }
      this.#ended(describeExit(run, code, signal, target.display));
    });
    const init = this.#opts.source.init;
    if (init) this.#writeInit(init);
  }

  #ended(why: string): void {
    if (this.#stopping) return;
    this.#failures++;
    if (this.#failures >= this.#maxFailures) {
      this.#log.warn({ failures: this.#failures, why }, 'rtmp push gave up');
      this.#detach();
      this.#setState('failed', why, null);
      return;
    }
    const delay = Math.min(this.#backoff.maxMs, this.#backoff.initialMs * 2 ** (this.#failures - 1));
    this.#log.warn({ failures: this.#failures, why, retryInMs: delay }, 'rtmp push ended; retrying');
    this.#retryAt = Date.now() + delay;
    this.#setState('retrying', why, delay);
    this.#retryTimer = setTimeout(() => this.#spawn(), delay);
  }

  #writeInit(init: FragmentInit): void {
    this.#fedInit = init;
    this.#needIndependent = true;
    if (this.#run) this.#run.unconfirmedSince ??= Date.now();
    this.#child?.stdin!.write(init.data);
  }

  #handleInit(init: FragmentInit): void {
    const child = this.#child;
    if (!child || this.#fedInit === init) return;
    if (!this.#fedInit) {
      this.#writeInit(init);
      return;
    }
    // A new init means the encoder restarted (its bytes may even be the same): its timestamps
    // start again, and an MP4 input can neither go back in time nor change its tracks midway. So
    // this ffmpeg ends and a new one starts at once with the new init (the ingest sees a reconnect).
    this.#log.info('rtmp push: the source has a new init segment; restarting ffmpeg');
    this.#restartForInit = true;
    void killChild(child, this.#opts.stopGraceMs ?? 3000);
  }

  #handleChunk(chunk: FragmentChunk): void {
    const stdin = this.#child?.stdin;
    if (!stdin || !this.#fedInit || this.#restartForInit || stdin.writableEnded) return;
    if (this.#needIndependent) {
      if (!chunk.independent) return;
      if (stdin.writableLength > this.#maxPendingBytes / 2) {
        this.#dropped++;
        return;
      }
      this.#needIndependent = false;
    } else if (stdin.writableLength > this.#maxPendingBytes) {
      // The ingest (or the way there) is slower than real time: rather than buffer without bound,
      // drop up to the next independent chunk, where ffmpeg can carry on after the gap.
      if (this.#dropped === 0 || this.#dropped % 50 === 0) this.#log.warn({ dropped: this.#dropped + 1 }, 'rtmp push: ingest not keeping up; dropping chunks');
      this.#dropped++;
      this.#needIndependent = true;
      return;
    }
    if (this.#run) this.#run.unconfirmedSince ??= Date.now();
    stdin.write(chunk.data);
  }

  #scrub(line: string): string {
    const { key } = this.#opts.target;
    let out = line;
    for (const form of new Set([key, encodeURIComponent(key), encodeURI(key)])) out = out.split(form).join('[key]');
    return out.length > 500 ? `${out.slice(0, 500)}…` : out;
  }

  #closeRelay(): void {
    this.#relay?.close();
    this.#relay = null;
  }

  #makeState(status: RtmpStatus, lastError: string | null, nextRetryInMs: number | null): RtmpState {
    return { status, target: this.#opts.target.display, since: new Date().toISOString(), attempts: this.#failures, lastError, nextRetryInMs };
  }

  #setState(status: RtmpStatus, lastError: string | null, nextRetryInMs: number | null): void {
    const safeError = lastError === null ? null : this.#scrub(lastError);
    if (this.#state.status === status && this.#state.lastError === safeError && this.#state.attempts === this.#failures && nextRetryInMs === null) return;
    this.#state = this.#makeState(status, safeError, nextRetryInMs);
    this.emit('state', { ...this.#state });
  }
}

/** The host's reason for an ffmpeg run that ended (not by stop()). */
function describeExit(run: PushRun, code: number | null, signal: NodeJS.Signals | null, display: string): string {
  if (run.stallError) return run.stallError;
  if (run.relayError) return run.relayError;
  const text = run.stderrTail.join('\n');
  const last = run.stderrTail.at(-1) ?? (signal ? `ffmpeg was killed (${signal})` : `ffmpeg exited with code ${code}`);
  // ffmpeg's last line is "<what failed> <url>: <why>"; the why is what a host can use.
  const cause = /: ([^:]+)$/.exec(last)?.[1] ?? last;
  if (/could not start/.test(text)) return last;
  if (/Connection refused/i.test(text)) return `could not connect to ${display} (connection refused)`;
  if (/timed out|timeout/i.test(text)) return `could not connect to ${display} (no answer)`;
  if (/Name or service not known|Failed to resolve/i.test(text)) return `could not resolve the host of ${display}`;
  if (!run.live) {
    // ffmpeg opens the RTMP output (connect, then publish) before it muxes anything: a run that
    // connected and ended before any media went out was refused at the publish, which is what
    // YouTube, Twitch and nginx-rtmp's on_publish do with a key they do not know.
    if (/Input\/output error|Server error|NetStream\.Publish|Broken pipe|Connection reset|End of file/i.test(text)) {
      return `the ingest refused the stream (wrong stream key?): ${cause}`;
    }
    return `the push ended before it went live: ${last}`;
  }
  return `the ingest closed the connection (${cause})`;
}

function lines(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (text: string) => {
    rest += text;
    const parts = rest.split(/\r?\n|\r/);
    rest = parts.pop() ?? '';
    if (rest.length > 4096) rest = rest.slice(-4096);
    for (const part of parts) if (part.trim()) onLine(part.trim());
  });
}

async function killChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.stdin?.destroy();
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/**
 * For rtmps: a loopback listener that takes ffmpeg's one connection and carries it over TLS to
 * the checked address, with the host name as SNI and the certificate checked against it.
 */
class TlsRelay {
  readonly #target: RtmpTarget;
  readonly #ca: string | Buffer | undefined;
  readonly #onError: (why: string) => void;
  readonly #server = net.createServer();
  readonly #sockets = new Set<net.Socket>();

  constructor(target: RtmpTarget, ca: string | Buffer | undefined, onError: (why: string) => void) {
    this.#target = target;
    this.#ca = ca;
    this.#onError = onError;
    this.#server.on('connection', (local) => this.#relay(local));
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen(0, '127.0.0.1', () => resolve((this.#server.address() as net.AddressInfo).port));
    });
  }

  #relay(local: net.Socket): void {
    this.#server.close(); // one connection per ffmpeg run
    const t = this.#target;
    const remote = tls.connect({
      host: t.address,
      port: t.port,
      servername: net.isIP(t.host) ? undefined : t.host,
      ca: this.#ca,
      // Checked against the name the host typed, not the address connected to.
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(t.host, cert),
    });
    this.#sockets.add(local).add(remote);
    remote.once('secureConnect', () => {
      local.pipe(remote);
      remote.pipe(local);
    });
    remote.once('error', (err: NodeJS.ErrnoException) => {
      const why = err.code === 'ECONNREFUSED'
        ? `could not connect to ${t.display} (connection refused)`
        : `the TLS connection to ${t.display} failed: ${err.message}`;
      this.#onError(why);
      local.destroy();
    });
    local.once('error', () => remote.destroy());
    local.once('close', () => remote.destroy());
    remote.once('close', () => local.destroy());
  }

  close(): void {
    this.#server.close();
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
  }
}
