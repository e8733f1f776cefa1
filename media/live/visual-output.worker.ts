// The visual output's thread: draws the room's visuals every 1/fps s on a
// monotonic clock, feeds them to ffmpeg (libvpx, realtime) as yuv420p (drawn
// so by the engine: a third of RGBA's bytes through the pipe, no conversion in
// ffmpeg), packetizes its VP8 and sends it to the SFU. See visual-output.ts.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { parentPort, workerData } from 'node:worker_threads';
import { CLOCK_TICKS, processCpuTicks } from './process-cpu.ts';
import { yuv420Bytes } from '../../shared/visual-engine.ts';
import { RoomVisualDrawer } from './room-visuals.ts';
import { openRtpSink } from './rtp-sink.ts';
import { IvfReader, Vp8Packetizer, type IvfFrame } from './vp8-rtp.ts';
import type { FromVisualWorker, ToVisualWorker, VisualOutputStats, VisualOutputWorkerData } from './visual-output.ts';

/** The encoder is restarted for a keyframe at most this often (a restart costs a process start). */
const KEYFRAME_RESTART_MIN_MS = 1000;
/** A keyframe this recent answers a request already. */
const RECENT_KEYFRAME_MS = 250;
/** Frames the encoder may hold before new ones are skipped instead of queued. */
const MAX_QUEUED_FRAMES = 2;

const port = parentPort;
if (!port) throw new Error('visual-output.worker.ts must run as a worker thread');
const data = workerData as VisualOutputWorkerData;
const frameMs = 1000 / data.fps;
const frameBytes = yuv420Bytes(data.width, data.height);
const restartPolicy = data.restart;

function post(message: FromVisualWorker): void {
  port!.postMessage(message);
}

const drawer = new RoomVisualDrawer(data.artwork, data.release, data.room, data.energy);
const sink = openRtpSink(
  data.sink,
  (err) => post({ type: 'error', message: `RTP sink: ${err.message}` }),
  () => requestKeyframe(),
);
const packetizer = new Vp8Packetizer({ ssrc: data.ssrc, payloadType: data.payloadType });

interface Encoder {
  proc: ChildProcessWithoutNullStreams;
  /** Monotonic time of each frame given to it, by its own frame number (its IVF pts). */
  times: Map<number, number>;
  nextFrame: number;
  reader: IvfReader;
  /** Frames it has put out (its first is a keyframe). */
  framesOut: number;
  closed: boolean;
}

/** How long 'stop' waits for the killed encoders to be reaped (the main thread waits 2 s for 'stopped'). */
const STOP_WAIT_MS = 1500;

/**
 * Every encoder process not yet reaped (those killed by a restart too): the thread must not end
 * before they are, for a child whose thread is gone is never waited for and stays a zombie.
 */
const unreaped = new Set<Promise<void>>();

let encoder: Encoder | null = null;
/**
 * A second ffmpeg, started and waiting for its first frame: a keyframe request
 * switches to it (its first frame is a keyframe) instead of starting a process
 * then (measured here: ~170 ms to the first frame warm against 300–600 ms cold,
 * under load). It costs an idle process, no CPU.
 */
let standby: Encoder | null = null;
let stopped = false;
let timer: NodeJS.Timeout | null = null;
const startMs = performance.now();
let nextSlot = 0;
const stats = {
  framesDrawn: 0,
  framesSkipped: 0,
  framesEncoded: 0,
  keyframes: 0,
  keyframeRequests: 0,
  encoderRestarts: 0,
  encoderFailures: 0,
  packetsSent: 0,
  bytesSent: 0,
  drawMsTotal: 0,
  firstKeyframeMs: null as number | null,
  lastKeyframeResponseMs: null as number | null,
};
/** Encoder failures (exits, broken output) in a row: since the encoders last ran restartPolicy.healthyMs without one. */
let consecutiveFailures = 0;
/**
 * Since the start or the last restart after a failure: the encoders have run
 * without failing since. Keyframe restarts do not reset it (with viewers asking
 * often, no single encoder lasts healthyMs, yet the video runs fine).
 */
let upSince = performance.now();
/** The restart after a failure, waiting out its backoff. */
let restartTimer: NodeJS.Timeout | null = null;
/** Too many failures in a row: no more encoders; the main thread closes the output. */
let gaveUp = false;
let lastKeyframeAt = Number.NEGATIVE_INFINITY;
let lastRestartAt = Number.NEGATIVE_INFINITY;
let pendingRequestAt: number | null = null;
/** CPU ticks of encoders that have exited. */
let finishedEncoderTicks = 0;
const cpuStart = process.threadCpuUsage();

function startEncoder(): Encoder {
  const gop = Math.max(1, Math.round(data.fps * data.keyframeIntervalSec));
  const args = [
    '-hide_banner', '-loglevel', 'error',
    // No probing: the input's format is given, and probing would hold the first frames back.
    '-probesize', '32', '-analyzeduration', '0', '-fflags', 'nobuffer',
    // yuv420p in and out: ffmpeg converts nothing (the engine draws BT.601 limited range, as swscale would).
    '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${data.width}x${data.height}`, '-framerate', String(data.fps), '-i', 'pipe:0',
    '-an',
    '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-threads', '1',
    '-b:v', `${data.bitrateKbps}k`, '-maxrate', `${Math.round(data.bitrateKbps * 1.5)}k`, '-bufsize', `${data.bitrateKbps}k`,
    '-g', String(gop), '-lag-in-frames', '0', '-auto-alt-ref', '0', '-error-resilient', '1',
    '-flush_packets', '1', '-f', 'ivf', 'pipe:1',
  ];
  const proc = spawn(data.ffmpeg, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  const ended = new Promise<void>((resolve) => {
    proc.once('exit', () => resolve());
    proc.once('error', () => resolve());
  });
  unreaped.add(ended);
  void ended.then(() => unreaped.delete(ended));
  const enc: Encoder = { proc, times: new Map(), nextFrame: 0, reader: new IvfReader(), framesOut: 0, closed: false };
  let stderr = '';
  proc.stderr.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  proc.stdout.on('data', (chunk: Buffer) => {
    if (enc.closed) return;
    let frames: IvfFrame[];
    try {
      frames = enc.reader.push(chunk);
    } catch (err) {
      const why = `encoder output: ${(err as Error).message}`;
      if (enc === encoder) encoderFailed(enc, why);
      else {
        post({ type: 'error', message: `standby ${why}` });
        stopEncoder(enc);
        if (standby === enc) standby = null;
      }
      return;
    }
    for (const frame of frames) sendFrame(enc, frame);
  });
  proc.stdin.on('error', () => undefined);
  proc.on('error', (err) => post({ type: 'error', message: `ffmpeg: ${err.message}` }));
  // 'close', not 'exit': a spawn that fails (ENOENT, EACCES) emits no 'exit'; and stderr is complete by then.
  proc.on('close', (code, signal) => {
    if (enc === standby) {
      standby = null;
      if (!enc.closed && !stopped) post({ type: 'error', message: `the standby VP8 encoder exited (${code ?? signal}): ${stderr.trim()}` });
      return;
    }
    if (!enc.closed && !stopped) encoderFailed(enc, `the VP8 encoder exited (${code ?? signal}): ${stderr.trim()}`);
  });
  return enc;
}

/**
 * The encoder in use died or broke: restart it after a backoff that doubles
 * with each failure in a row (a broken ffmpeg is not restarted every second
 * forever), and give the video up after restartPolicy.maxFailures of them.
 */
function encoderFailed(enc: Encoder, why: string): void {
  if (stopped || gaveUp || enc !== encoder || restartTimer) return;
  const now = performance.now();
  // Encoders that ran fine for a while end the run: this failure is the first of a new one.
  if (now - upSince >= restartPolicy.healthyMs) consecutiveFailures = 0;
  consecutiveFailures++;
  stats.encoderFailures++;
  stopEncoder(enc);
  if (consecutiveFailures >= restartPolicy.maxFailures) {
    gaveUp = true;
    if (timer) clearTimeout(timer);
    timer = null;
    if (standby) stopEncoder(standby);
    standby = null;
    post({ type: 'failed', message: `the VP8 encoder failed ${consecutiveFailures} times in a row; the room's video stops (last: ${why})` });
    return;
  }
  const delayMs = Math.min(restartPolicy.maxMs, restartPolicy.initialMs * 2 ** (consecutiveFailures - 1));
  post({ type: 'error', message: `${why}; failure ${consecutiveFailures} of ${restartPolicy.maxFailures}, restarting in ${delayMs} ms` });
  restartTimer = setTimeout(() => {
    restartTimer = null;
    if (encoder !== enc || stopped) return;
    upSince = performance.now();
    restartEncoder();
  }, delayMs);
}

function sendFrame(enc: Encoder, frame: IvfFrame): void {
  if (enc !== encoder) return;
  enc.framesOut++;
  const at = enc.times.get(frame.pts);
  enc.times.delete(frame.pts);
  const timeMs = at ?? performance.now();
  for (const packet of packetizer.packetize(frame.data, timeMs)) {
    stats.packetsSent++;
    stats.bytesSent += packet.length;
    sink.send(packet);
  }
  stats.framesEncoded++;
  if (frame.keyframe) {
    const now = performance.now();
    stats.keyframes++;
    lastKeyframeAt = now;
    stats.firstKeyframeMs ??= now - startMs;
    if (pendingRequestAt !== null) stats.lastKeyframeResponseMs = now - pendingRequestAt;
    pendingRequestAt = null;
  }
}

function stopEncoder(enc: Encoder): void {
  if (enc.closed) return;
  finishedEncoderTicks += processCpuTicks(enc.proc.pid);
  enc.closed = true;
  enc.proc.stdin.destroy();
  enc.proc.kill('SIGKILL');
}

function restartEncoder(): void {
  if (stopped || gaveUp) return;
  if (encoder) stopEncoder(encoder);
  stats.encoderRestarts++;
  lastRestartAt = performance.now();
  const warm = standby && !standby.closed && standby.proc.exitCode === null ? standby : null;
  encoder = warm ?? startEncoder();
  standby = startEncoder();
}

function requestKeyframe(): void {
  stats.keyframeRequests++;
  const now = performance.now();
  if (now - lastKeyframeAt < RECENT_KEYFRAME_MS) return;
  pendingRequestAt ??= now;
  // A fresh encoder's first frame is a keyframe already on its way.
  if (encoder && !encoder.closed && encoder.framesOut === 0) return;
  // A restart after a failure is due (its first frame is a keyframe) or none will come: a request must not skip the backoff.
  if (restartTimer || gaveUp) return;
  if (now - lastRestartAt < KEYFRAME_RESTART_MIN_MS) return;
  // A fresh encoder starts with a keyframe; the packetizer's numbering carries on.
  restartEncoder();
}

function draw(enc: Encoder, slotMs: number): void {
  const frame = Buffer.allocUnsafe(frameBytes);
  const t0 = performance.now();
  drawer.drawYuv420(frame, data.width, data.height);
  stats.drawMsTotal += performance.now() - t0;
  stats.framesDrawn++;
  enc.times.set(enc.nextFrame++, slotMs);
  enc.proc.stdin.write(frame);
}

function tick(): void {
  timer = null;
  if (stopped) return;
  const now = performance.now();
  const due = Math.floor((now - startMs) / frameMs);
  if (due > nextSlot) {
    stats.framesSkipped += due - nextSlot;
    nextSlot = due;
  }
  const enc = encoder;
  if (enc && !enc.closed && enc.proc.stdin.writable) {
    if (enc.proc.stdin.writableLength > MAX_QUEUED_FRAMES * frameBytes) stats.framesSkipped++;
    else {
      try {
        draw(enc, startMs + nextSlot * frameMs);
      } catch (err) {
        post({ type: 'error', message: `visuals: ${err instanceof Error ? err.message : String(err)}` });
      }
    }
  }
  nextSlot++;
  timer = setTimeout(tick, Math.max(0, startMs + nextSlot * frameMs - performance.now()));
}

function currentStats(): VisualOutputStats {
  const elapsedMs = Math.max(1, performance.now() - startMs);
  const cpu = process.threadCpuUsage(cpuStart);
  const ticks = finishedEncoderTicks + [encoder, standby].reduce((n, e) => n + (e && !e.closed ? processCpuTicks(e.proc.pid) : 0), 0);
  return {
    width: data.width,
    height: data.height,
    fps: data.fps,
    framesDrawn: stats.framesDrawn,
    framesSkipped: stats.framesSkipped,
    framesEncoded: stats.framesEncoded,
    keyframes: stats.keyframes,
    keyframeRequests: stats.keyframeRequests,
    encoderRestarts: stats.encoderRestarts,
    encoderFailures: stats.encoderFailures,
    packetsSent: stats.packetsSent,
    bytesSent: stats.bytesSent,
    drawMsMean: stats.framesDrawn ? stats.drawMsTotal / stats.framesDrawn : 0,
    threadCpuFraction: (cpu.user + cpu.system) / 1000 / elapsedMs,
    encoderCpuFraction: ((ticks / CLOCK_TICKS) * 1000) / elapsedMs,
    threadCpuMs: (cpu.user + cpu.system) / 1000,
    encoderCpuMs: (ticks / CLOCK_TICKS) * 1000,
    elapsedMs,
    firstKeyframeMs: stats.firstKeyframeMs,
    lastKeyframeResponseMs: stats.lastKeyframeResponseMs,
    fading: drawer.fading,
  };
}

port.on('message', (message: ToVisualWorker) => {
  switch (message.type) {
    case 'room-state':
      drawer.setRoom(message.room);
      break;
    case 'texture':
      drawer.addTexture(message.artwork);
      break;
    case 'keyframe':
      requestKeyframe();
      break;
    case 'stats':
      post({ type: 'stats', id: message.id, stats: currentStats() });
      break;
    case 'stop':
      stopped = true;
      if (timer) clearTimeout(timer);
      if (restartTimer) clearTimeout(restartTimer);
      if (encoder) stopEncoder(encoder);
      if (standby) stopEncoder(standby);
      // 'stopped' once the killed encoders are reaped (the main thread ends this thread then;
      // it stops waiting after 2 s, and so does this, so as to answer before it).
      void Promise.race([
        Promise.all([sink.close(), ...unreaped]),
        new Promise((r) => setTimeout(r, STOP_WAIT_MS)),
      ]).finally(() => post({ type: 'stopped' }));
      break;
  }
});

encoder = startEncoder();
standby = startEncoder();
post({ type: 'ready' });
tick();
