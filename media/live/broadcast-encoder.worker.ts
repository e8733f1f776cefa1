// The broadcast encoder's thread (see broadcast-encoder.ts): the mixer's PCM
// and the drawn frames, written on the wall clock into one ffmpeg, and its two
// fragmented-MP4 outputs cut into CMAF chunks for the main thread.
import { spawn, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import type { Readable, Writable } from 'node:stream';
import { parentPort, workerData } from 'node:worker_threads';
import { CLOCK_TICKS, processCpuTicks } from './process-cpu.ts';
import { yuv420Bytes } from '../../shared/visual-engine.ts';
import { CmafSplitter } from './cmaf.ts';
import { loadPcmSource, type PcmSource } from './pcm-source.ts';
import { RoomVisualDrawer } from './room-visuals.ts';
import type { BroadcastRenditionName, BroadcastStats, BroadcastWorkerData, FromBroadcastWorker, ToBroadcastWorker } from './broadcast-encoder.ts';

const SAMPLE_RATE = 48_000;
const BLOCK_FRAMES = 960; // 20 ms
const BLOCK_MS = (BLOCK_FRAMES / SAMPLE_RATE) * 1000;
const TICK_MS = 10;
/** ffmpeg has this much unread input (either pipe): it has stopped keeping up, and is restarted. */
const MAX_BACKLOG_SEC = 3;
const STOP_WAIT_MS = 2000;

const port = parentPort;
if (!port) throw new Error('broadcast-encoder.worker.ts must run as a worker thread');
const data = workerData as BroadcastWorkerData;
const settings = data.settings;
const withVideo = data.artwork !== null;
const renditions: BroadcastRenditionName[] = withVideo ? ['audio', 'video'] : ['audio'];
const frameMs = 1000 / settings.fps;
const frameBytes = yuv420Bytes(settings.width, settings.height);
const audioBytesPerSec = SAMPLE_RATE * 2 * 2;

function post(message: FromBroadcastWorker, transfer: ArrayBuffer[] = []): void {
  port!.postMessage(message, transfer);
}

const drawer = withVideo ? new RoomVisualDrawer(data.artwork!, data.release, data.room, data.energy) : null;
const pcm = new Float32Array(BLOCK_FRAMES * 2);

interface Encoder {
  proc: ChildProcess;
  audioIn: Writable;
  videoIn: Writable | null;
  startMs: number;
  wallStartMs: number;
  blocksWritten: number;
  framesWritten: number;
  lastFrame: Buffer | null;
  closed: boolean;
  exited: Promise<void>;
}

let source: PcmSource | null = null;
let encoder: Encoder | null = null;
let stopped = false;
let gaveUp = false;
let timer: NodeJS.Timeout | null = null;
let restartTimer: NodeJS.Timeout | null = null;
let consecutiveFailures = 0;
let upSince = performance.now();
const threadStart = performance.now();
const cpuStart = process.threadCpuUsage();
let finishedEncoderTicks = 0;
const unreaped = new Set<Promise<void>>();
const stats = { encoders: 0, encoderFailures: 0, audioBlocksWritten: 0, framesWritten: 0, framesRepeated: 0, drawMsTotal: 0, framesDrawn: 0, chunks: { audio: 0, video: 0 } };

function ffmpegArgs(): string[] {
  const partUs = String(Math.round(settings.partSec * 1_000_000));
  const audioIn = ['-f', 's16le', '-ar', String(SAMPLE_RATE), '-ac', '2', '-thread_queue_size', '1024', '-i', 'pipe:0'];
  const aac = ['-c:a', 'aac', '-b:a', `${settings.audioKbps}k`, '-ar', String(SAMPLE_RATE), '-ac', '2'];
  // One fragment per part: cut by duration, and (with video) at every keyframe, so a segment can start there.
  const fmp4 = (keyframes: boolean) => ['-f', 'mp4', '-movflags', `${keyframes ? '+frag_keyframe' : ''}+empty_moov+default_base_moof`, '-frag_duration', partUs, '-flush_packets', '1'];
  const args = ['-hide_banner', '-loglevel', 'error', '-nostats', ...audioIn];
  if (withVideo) {
    const gop = String(Math.max(1, Math.round(settings.fps * settings.keyframeIntervalSec)));
    args.push(
      '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-s', `${settings.width}x${settings.height}`, '-framerate', String(settings.fps), '-thread_queue_size', '64', '-i', 'pipe:3',
      '-map', '1:v:0', '-map', '0:a:0',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-profile:v', 'main', '-pix_fmt', 'yuv420p',
      '-g', gop, '-keyint_min', gop, '-sc_threshold', '0',
      '-b:v', `${settings.videoKbps}k`, '-maxrate', `${Math.round(settings.videoKbps * 1.25)}k`, '-bufsize', `${settings.videoKbps}k`,
      ...aac, ...fmp4(true), 'pipe:1',
    );
  }
  args.push('-map', '0:a:0', ...aac, ...fmp4(false), 'pipe:4');
  return args;
}

function startEncoder(): Encoder {
  stats.encoders++;
  const proc = spawn(data.ffmpeg, ffmpegArgs(), { stdio: ['pipe', 'pipe', 'pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => {
    proc.once('close', () => resolve());
    proc.once('error', () => resolve());
  });
  unreaped.add(exited);
  void exited.then(() => unreaped.delete(exited));
  const audioIn = proc.stdio[0] as Writable;
  const videoIn = withVideo ? (proc.stdio[3] as Writable) : null;
  const enc: Encoder = { proc, audioIn, videoIn, startMs: performance.now(), wallStartMs: Date.now(), blocksWritten: 0, framesWritten: 0, lastFrame: null, closed: false, exited };
  audioIn.on('error', () => undefined);
  videoIn?.on('error', () => undefined);
  let stderr = '';
  proc.stderr!.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-2000);
  });
  const outputs: [BroadcastRenditionName, Readable][] = [['audio', proc.stdio[4] as Readable]];
  if (withVideo) outputs.push(['video', proc.stdout!]);
  for (const [rendition, stream] of outputs) {
    const splitter = new CmafSplitter();
    splitter.on('init', (init) => {
      if (enc !== encoder || enc.closed) return;
      const bytes = new Uint8Array(init.data);
      post({ type: 'init', rendition, init: { ...init, data: Buffer.from(bytes.buffer) }, wallClockMs: enc.wallStartMs }, [bytes.buffer]);
    });
    splitter.on('chunk', (chunk) => {
      if (enc !== encoder || enc.closed) return;
      stats.chunks[rendition]++;
      const bytes = new Uint8Array(chunk.data);
      post({ type: 'chunk', rendition, chunk: { ...chunk, data: Buffer.from(bytes.buffer), wallClockMs: enc.wallStartMs + chunk.startSec * 1000 } }, [bytes.buffer]);
    });
    splitter.on('error', (err) => encoderFailed(enc, `the ${rendition} output could not be read: ${err.message}`));
    stream.on('data', (bytes: Buffer) => {
      if (!enc.closed) splitter.push(bytes);
    });
    stream.on('error', () => undefined);
  }
  proc.on('error', (err) => encoderFailed(enc, `ffmpeg: ${err.message}`));
  proc.on('close', (code, signal) => {
    if (!enc.closed && !stopped) encoderFailed(enc, `the broadcast encoder exited (${code ?? signal}): ${stderr.trim().slice(-500)}`);
  });
  return enc;
}

function stopEncoder(enc: Encoder): void {
  if (enc.closed) return;
  finishedEncoderTicks += processCpuTicks(enc.proc.pid);
  enc.closed = true;
  enc.audioIn.destroy();
  enc.videoIn?.destroy();
  enc.proc.kill('SIGKILL');
}

function encoderFailed(enc: Encoder, why: string): void {
  if (stopped || gaveUp || enc !== encoder || enc.closed) return;
  const now = performance.now();
  if (now - upSince >= data.restart.healthyMs) consecutiveFailures = 0;
  consecutiveFailures++;
  stats.encoderFailures++;
  stopEncoder(enc);
  encoder = null;
  if (consecutiveFailures >= data.restart.maxFailures) {
    gaveUp = true;
    post({ type: 'failed', message: `the broadcast encoder failed ${consecutiveFailures} times in a row; the broadcast stops (last: ${why})` });
    return;
  }
  const delayMs = Math.min(data.restart.maxMs, data.restart.initialMs * 2 ** (consecutiveFailures - 1));
  post({ type: 'error', message: `${why}; failure ${consecutiveFailures} of ${data.restart.maxFailures}, restarting in ${delayMs} ms` });
  restartTimer = setTimeout(() => {
    restartTimer = null;
    if (stopped || gaveUp) return;
    upSince = performance.now();
    // The room's sound jumps to where the room is now (the frames between were never heard).
    source?.skip?.(Math.round((delayMs / 1000) * SAMPLE_RATE));
    encoder = startEncoder();
  }, delayMs);
}

function writeAudio(enc: Encoder, blocks: number): void {
  // s16le through a typed array (this machine and ffmpeg's input are little-endian): no call per sample.
  const samples = new Int16Array(blocks * BLOCK_FRAMES * 2);
  for (let b = 0; b < blocks; b++) {
    source!.render(pcm, BLOCK_FRAMES);
    const base = b * BLOCK_FRAMES * 2;
    for (let i = 0; i < BLOCK_FRAMES * 2; i++) {
      const v = pcm[i]!;
      samples[base + i] = v >= 1 ? 32767 : v <= -1 ? -32768 : Math.round(v * 32767);
    }
  }
  enc.audioIn.write(Buffer.from(samples.buffer, samples.byteOffset, samples.byteLength));
  enc.blocksWritten += blocks;
  stats.audioBlocksWritten += blocks;
}

function writeFrames(enc: Encoder, frames: number): void {
  // Only the newest slot is drawn: any before it that the loop missed repeat the previous frame, so
  // the video's timeline (frame count / fps) stays the wall clock, like the sound's.
  for (let f = 0; f < frames - 1 && enc.lastFrame; f++) {
    enc.videoIn!.write(enc.lastFrame);
    stats.framesRepeated++;
  }
  const frame = Buffer.allocUnsafe(frameBytes);
  const t0 = performance.now();
  drawer!.drawYuv420(frame, settings.width, settings.height, enc.wallStartMs + (enc.framesWritten + frames - 1) * frameMs);
  stats.drawMsTotal += performance.now() - t0;
  stats.framesDrawn++;
  enc.videoIn!.write(frame);
  enc.lastFrame = frame;
  enc.framesWritten += frames;
  stats.framesWritten += frames;
}

function tick(): void {
  timer = null;
  if (stopped || gaveUp) return;
  const enc = encoder;
  if (enc && !enc.closed) {
    const elapsed = performance.now() - enc.startMs;
    try {
      const backlogSec = Math.max(enc.audioIn.writableLength / audioBytesPerSec, enc.videoIn ? enc.videoIn.writableLength / frameBytes / settings.fps : 0);
      if (backlogSec > MAX_BACKLOG_SEC) {
        encoderFailed(enc, `the broadcast encoder stopped keeping up (${backlogSec.toFixed(1)} s of input unread)`);
      } else {
        const blocks = Math.floor(elapsed / BLOCK_MS) - enc.blocksWritten;
        if (blocks > 0) writeAudio(enc, blocks);
        if (enc.videoIn) {
          const frames = Math.floor(elapsed / frameMs) + 1 - enc.framesWritten;
          if (frames > 0) writeFrames(enc, frames);
        }
      }
    } catch (err) {
      post({ type: 'error', message: `broadcast loop: ${err instanceof Error ? err.message : String(err)}` });
    }
  }
  timer = setTimeout(tick, TICK_MS);
}

function currentStats(): BroadcastStats {
  const elapsedMs = Math.max(1, performance.now() - threadStart);
  const cpu = process.threadCpuUsage(cpuStart);
  const ticks = finishedEncoderTicks + (encoder && !encoder.closed ? processCpuTicks(encoder.proc.pid) : 0);
  return {
    renditions,
    settings,
    encoders: stats.encoders,
    encoderFailures: stats.encoderFailures,
    audioBlocksWritten: stats.audioBlocksWritten,
    framesWritten: stats.framesWritten,
    framesRepeated: stats.framesRepeated,
    drawMsMean: stats.framesDrawn ? stats.drawMsTotal / stats.framesDrawn : 0,
    chunks: { ...stats.chunks },
    threadCpuFraction: (cpu.user + cpu.system) / 1000 / elapsedMs,
    encoderCpuFraction: ((ticks / CLOCK_TICKS) * 1000) / elapsedMs,
    elapsedMs,
  };
}

port.on('message', (message: ToBroadcastWorker) => {
  switch (message.type) {
    case 'room-state':
      drawer?.setRoom(message.room);
      break;
    case 'texture':
      drawer?.addTexture(message.artwork);
      break;
    case 'source-control':
      try {
        source?.control?.(message.message);
      } catch (err) {
        post({ type: 'error', message: `control: ${err instanceof Error ? err.message : String(err)}` });
      }
      break;
    case 'kill-encoder':
      encoder?.proc.kill('SIGKILL');
      break;
    case 'stats':
      post({ type: 'stats', id: message.id, stats: currentStats() });
      break;
    case 'stop':
      stopped = true;
      if (timer) clearTimeout(timer);
      if (restartTimer) clearTimeout(restartTimer);
      if (encoder) stopEncoder(encoder);
      void Promise.race([Promise.all([...unreaped, Promise.resolve(source?.close?.())]), new Promise((r) => setTimeout(r, STOP_WAIT_MS))]).finally(() => post({ type: 'stopped' }));
      break;
  }
});

try {
  source = await loadPcmSource(data.source);
} catch (err) {
  post({ type: 'start-failed', message: err instanceof Error ? err.message : String(err) });
}
if (source) {
  encoder = startEncoder();
  post({ type: 'ready', renditions });
  tick();
}
