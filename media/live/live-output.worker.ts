// The live loop, in its own thread: every 20 ms on a monotonic clock it pulls
// 20 ms of PCM from the source, encodes Opus and sends one RTP packet. Joins,
// signaling and everything else on the main thread cannot make it late.
import { parentPort, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { FRAME_DURATION_MS, FRAME_SAMPLES, OPUS_CHANNELS, OpusEncoder } from './opus-encoder.ts';
import { RtpPacketizer } from './rtp-packetizer.ts';
import { openRtpSink } from './rtp-sink.ts';
import { loadPcmSource, type PcmSource } from './pcm-source.ts';
import type { LiveOutputStats, LiveOutputWorkerData, ToLiveOutputWorker, FromLiveOutputWorker } from './live-output.ts';

// Lateness samples kept for the percentiles: the last minute of frames.
const LATENESS_WINDOW = 3000;

const port = parentPort;
if (!port) throw new Error('live-output.worker.ts must run as a worker thread');
const data = workerData as LiveOutputWorkerData;

function post(message: FromLiveOutputWorker): void {
  port!.postMessage(message);
}

const encoder = new OpusEncoder({ bitrate: data.bitrate, complexity: data.complexity });
const packetizer = new RtpPacketizer({ ssrc: data.ssrc, payloadType: data.payloadType });
const sink = openRtpSink(data.sink, (err) => post({ type: 'error', message: `RTP sink: ${err.message}` }));
const pcm = new Float32Array(FRAME_SAMPLES * OPUS_CHANNELS);
const lateness = new Float64Array(LATENESS_WINDOW);
const eluStart = performance.eventLoopUtilization();

let source: PcmSource | null = null;
let timer: NodeJS.Timeout | null = null;
let stopped = false;
let startMs = 0;
let nextFrame = 0;
let framesSent = 0;
let framesSkipped = 0;
let encodeMsTotal = 0;

function tick(): void {
  timer = null;
  if (stopped || !source) return;
  const now = performance.now();
  // Index of the latest frame whose slot has begun. Behind by one frame or more:
  // those frames are dropped (source and RTP clock move on), never sent late in a burst.
  const due = Math.floor((now - startMs) / FRAME_DURATION_MS);
  if (due > nextFrame) {
    const behind = due - nextFrame;
    source.skip?.(behind * FRAME_SAMPLES);
    packetizer.skip(behind * FRAME_SAMPLES);
    framesSkipped += behind;
    nextFrame = due;
  }
  lateness[framesSent % LATENESS_WINDOW] = now - (startMs + nextFrame * FRAME_DURATION_MS);
  try {
    source.render(pcm, FRAME_SAMPLES);
    const t0 = performance.now();
    const payload = encoder.encode(pcm);
    encodeMsTotal += performance.now() - t0;
    sink.send(packetizer.packetize(payload, FRAME_SAMPLES));
    framesSent++;
  } catch (err) {
    // A source that throws once would throw every frame: stop and say why.
    post({ type: 'error', message: `live loop: ${err instanceof Error ? err.message : String(err)}` });
    void stop();
    return;
  }
  nextFrame++;
  // Against the clock's origin, not the last tick: timer lateness does not accumulate.
  timer = setTimeout(tick, Math.max(0, startMs + nextFrame * FRAME_DURATION_MS - performance.now()));
}

function stats(): LiveOutputStats {
  const n = Math.min(framesSent, LATENESS_WINDOW);
  const sorted = Array.from(lateness.subarray(0, n)).sort((a, b) => a - b);
  const pick = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))]! : 0);
  return {
    framesSent,
    framesSkipped,
    latenessMs: { p50: pick(0.5), p99: pick(0.99), max: n ? sorted[n - 1]! : 0 },
    encodeMsMean: framesSent ? encodeMsTotal / framesSent : 0,
    cpuFraction: performance.eventLoopUtilization(eluStart).utilization,
    ssrc: packetizer.ssrc,
    payloadType: packetizer.payloadType,
    nextSequenceNumber: packetizer.nextSequenceNumber,
    nextTimestamp: packetizer.nextTimestamp,
  };
}

let stopping: Promise<void> | null = null;
function stop(): Promise<void> {
  stopping ??= (async () => {
    stopped = true;
    if (timer) clearTimeout(timer);
    timer = null;
    try {
      await source?.close?.();
    } finally {
      await sink.close();
    }
  })();
  return stopping;
}

port.on('message', (message: ToLiveOutputWorker) => {
  switch (message.type) {
    case 'control':
      try {
        source?.control?.(message.message);
      } catch (err) {
        post({ type: 'error', message: `control: ${err instanceof Error ? err.message : String(err)}` });
      }
      break;
    case 'stats':
      post({ type: 'stats', id: message.id, stats: stats() });
      break;
    case 'stop':
      stop().then(
        () => post({ type: 'stopped' }),
        (err: unknown) => post({ type: 'stopped', error: err instanceof Error ? err.message : String(err) }),
      );
      break;
  }
});

try {
  source = await loadPcmSource(data.source);
} catch (err) {
  post({ type: 'failed', message: err instanceof Error ? err.message : String(err) });
  await sink.close();
}
if (source) {
  startMs = performance.now();
  post({ type: 'ready' });
  tick();
}
