// `npm run bench -- listeners [--adapter embedded|mediasoup] [--steps 50,100,...] [--seconds 8]`
//
// Listeners one SFU core holds with no loss and steady jitter. The room's mix
// (a live output with a noise source) goes through the adapter to N listeners;
// the listeners are werift peers in a thread of their own (on loopback), which
// count lost packets and RFC 3550 interarrival jitter from what they receive.
// N grows in steps until a step loses packets (at the receivers, or dropped late
// inside the SFU) or its jitter stops being steady. A failed step is measured
// once more before it counts: the machine is shared, and one descheduling of
// the SFU's thread by another process is not the SFU's limit. Frames the send
// loop skipped are reported, not counted: that loop is another thread, and a
// saturated SFU shows up as packets dropped late in the SFU anyway.
//
// Embedded adapter: all its peers live in one thread, so the N it held is per
// core; its thread's utilization says how close to the limit it ran.
// mediasoup (when MEDIASOUP_WORKER_BIN names a worker): one worker, one router,
// so the N it held is per worker process (one core).
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, workerData, Worker } from 'node:worker_threads';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RtpPacket } from 'werift';
import { LiveOutput } from '../media/live/live-output.ts';
import { EmbeddedSfu } from '../media/sfu/embedded-sfu.ts';
import { isExecutableFile } from '../media/sfu/select-sfu.ts';
import { cacheSrtpKeys } from '../media/sfu/werift-tuning.ts';
import { OPUS_FMTP, type Sfu, type SfuKind, type SfuRoom } from '../media/sfu/sfu.ts';

const ROLE = 'listeners-bench-receivers';
const DEFAULT_STEPS = [25, 50, 100, 150, 200, 250, 300, 350, 400];
const DEFAULT_SECONDS = 8;
const SETTLE_MS = 2000;
/** Jitter is "steady" while the listeners' p99 stays under this (ms). 20 ms = one packet interval. */
const STEADY_JITTER_P99_MS = 10;

// ---- Receivers (run in their own thread) -------------------------------------

interface WindowStats {
  peers: number;
  received: number;
  expected: number;
  lost: number;
  jitterMs: { p50: number; p99: number; max: number };
  maxGapMs: number;
  peersSilent: number;
  cpuFraction: number;
}

type ToReceivers =
  | { type: 'join'; adapter: SfuKind; memberIds: string[] }
  | { type: 'window-start' }
  | { type: 'window-end'; id: number }
  | { type: 'signal-reply'; id: number; ok: boolean; result?: unknown; error?: string }
  | { type: 'close' };

type FromReceivers =
  | { type: 'signal'; id: number; memberId: string; message: unknown }
  | { type: 'joined'; memberIds: string[]; failed: number }
  | { type: 'window'; id: number; stats: WindowStats }
  | { type: 'closed' };

interface Listener {
  pc: RTCPeerConnection;
  received: number;
  firstSeq: number | null;
  lastExtSeq: number;
  cycles: number;
  lastSeq: number;
  lastArrival: number;
  lastTs: number;
  jitter: number;
  maxGap: number;
}

function startReceivers(): void {
  const port = parentPort!;
  const listeners: Listener[] = [];
  const pendingSignals = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let elu = performance.eventLoopUtilization();

  const signal = (memberId: string, message: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pendingSignals.set(id, { resolve, reject });
      port.postMessage({ type: 'signal', id, memberId, message } satisfies FromReceivers);
    });

  const config = () => ({
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: 111, parameters: OPUS_FMTP })] },
    headerExtensions: { audio: [] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  });

  function track(listener: Listener, rtp: RtpPacket): void {
    const now = performance.now();
    const { sequenceNumber: seq, timestamp } = rtp.header;
    if (listener.firstSeq === null) {
      listener.firstSeq = seq;
      listener.lastSeq = seq;
      listener.lastExtSeq = seq;
    } else {
      if (seq < 0x1000 && listener.lastSeq > 0xf000) listener.cycles += 0x10000;
      listener.lastSeq = seq;
      const ext = listener.cycles + seq;
      if (ext > listener.lastExtSeq) listener.lastExtSeq = ext;
      // RFC 3550 A.8: interarrival jitter in ms (48 kHz RTP clock).
      const d = now - listener.lastArrival - ((timestamp - listener.lastTs) | 0) / 48;
      listener.jitter += (Math.abs(d) - listener.jitter) / 16;
      listener.maxGap = Math.max(listener.maxGap, now - listener.lastArrival);
    }
    listener.received++;
    listener.lastArrival = now;
    listener.lastTs = timestamp;
  }

  async function joinEmbedded(memberId: string): Promise<Listener> {
    const offer = (await signal(memberId, { type: 'join' })) as { transportId: string; sdp: string };
    const pc = new RTCPeerConnection(config());
    const listener: Listener = { pc, received: 0, firstSeq: null, lastExtSeq: 0, cycles: 0, lastSeq: 0, lastArrival: 0, lastTs: 0, jitter: 0, maxGap: 0 };
    pc.onTrack.subscribe((t: MediaStreamTrack) => t.onReceiveRtp.subscribe((rtp) => track(listener, rtp)));
    pc.connectionStateChange.subscribe((s) => s === 'connected' && cacheSrtpKeys(pc));
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await signal(memberId, { type: 'answer', transportId: offer.transportId, sdp: pc.localDescription!.sdp });
    return listener;
  }

  async function joinMediasoup(memberId: string): Promise<Listener> {
    const t = (await signal(memberId, { type: 'join' })) as {
      transportId: string;
      iceParameters: { usernameFragment: string; password: string };
      iceCandidates: { ip?: string; address?: string; port: number; priority: number; foundation: string; protocol: string }[];
      dtlsParameters: { fingerprints: { algorithm: string; value: string }[] };
    };
    const pc = new RTCPeerConnection(config());
    const listener: Listener = { pc, received: 0, firstSeq: null, lastExtSeq: 0, cycles: 0, lastSeq: 0, lastArrival: 0, lastTs: 0, jitter: 0, maxGap: 0 };
    pc.onTrack.subscribe((tr: MediaStreamTrack) => tr.onReceiveRtp.subscribe((rtp) => track(listener, rtp)));
    pc.connectionStateChange.subscribe((s) => s === 'connected' && cacheSrtpKeys(pc));
    const consumer = (await signal(memberId, { type: 'consume', transportId: t.transportId, rtpCapabilities: { codecs: [{ kind: 'audio', mimeType: 'audio/opus', clockRate: 48_000, channels: 2, preferredPayloadType: 100, parameters: {}, rtcpFeedback: [] }], headerExtensions: [] } })) as {
      consumerId: string;
      rtpParameters: { codecs: { payloadType: number; parameters: Record<string, unknown> }[]; encodings: { ssrc: number }[]; rtcp?: { cname?: string } };
    };
    // mediasoup's WebRtcTransport is ICE-lite and DTLS-passive-capable: offer as
    // mediasoup-client's RemoteSdp would, and answer it with werift.
    const codec = consumer.rtpParameters.codecs[0]!;
    const fmtp = Object.entries(codec.parameters).map(([k, v]) => `${k}=${String(v)}`).join(';');
    const fp = t.dtlsParameters.fingerprints.find((f) => f.algorithm === 'sha-256') ?? t.dtlsParameters.fingerprints[0]!;
    const sdp = [
      'v=0',
      'o=- 0 0 IN IP4 127.0.0.1',
      's=-',
      't=0 0',
      'a=ice-lite',
      'a=group:BUNDLE 0',
      `m=audio 7 UDP/TLS/RTP/SAVPF ${codec.payloadType}`,
      'c=IN IP4 127.0.0.1',
      'a=mid:0',
      'a=sendonly',
      `a=ice-ufrag:${t.iceParameters.usernameFragment}`,
      `a=ice-pwd:${t.iceParameters.password}`,
      `a=fingerprint:${fp.algorithm} ${fp.value}`,
      'a=setup:actpass',
      'a=rtcp-mux',
      `a=rtpmap:${codec.payloadType} opus/48000/2`,
      ...(fmtp ? [`a=fmtp:${codec.payloadType} ${fmtp}`] : []),
      `a=ssrc:${consumer.rtpParameters.encodings[0]!.ssrc} cname:${consumer.rtpParameters.rtcp?.cname ?? 'mix'}`,
      ...t.iceCandidates.map((c) => `a=candidate:${c.foundation} 1 ${c.protocol} ${c.priority} ${c.address ?? c.ip} ${c.port} typ host`),
      'a=end-of-candidates',
      '',
    ].join('\r\n');
    await pc.setRemoteDescription({ type: 'offer', sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    const answerFp = /a=fingerprint:(\S+) (\S+)/.exec(pc.localDescription!.sdp);
    await signal(memberId, { type: 'connect', transportId: t.transportId, dtlsParameters: { role: 'client', fingerprints: [{ algorithm: answerFp![1], value: answerFp![2] }] } });
    await signal(memberId, { type: 'resume', transportId: t.transportId, consumerId: consumer.consumerId });
    return listener;
  }

  let windowStart = new Map<Listener, { received: number; extSeq: number }>();
  port.on('message', (msg: ToReceivers) => {
    switch (msg.type) {
      case 'signal-reply': {
        const p = pendingSignals.get(msg.id);
        pendingSignals.delete(msg.id);
        if (msg.ok) p?.resolve(msg.result);
        else p?.reject(new Error(msg.error));
        break;
      }
      case 'join': {
        const join = msg.adapter === 'embedded' ? joinEmbedded : joinMediasoup;
        Promise.allSettled(msg.memberIds.map((id) => join(id))).then((results) => {
          let failed = 0;
          for (const r of results) {
            if (r.status === 'fulfilled') listeners.push(r.value);
            else failed++;
          }
          port.postMessage({ type: 'joined', memberIds: msg.memberIds, failed } satisfies FromReceivers);
        });
        break;
      }
      case 'window-start':
        windowStart = new Map(listeners.map((l) => [l, { received: l.received, extSeq: l.lastExtSeq }]));
        for (const l of listeners) l.maxGap = 0;
        elu = performance.eventLoopUtilization();
        break;
      case 'window-end': {
        let received = 0;
        let expected = 0;
        let silent = 0;
        const jitters: number[] = [];
        let maxGap = 0;
        for (const l of listeners) {
          const start = windowStart.get(l);
          if (!start) continue;
          const got = l.received - start.received;
          received += got;
          expected += l.lastExtSeq - start.extSeq;
          if (got === 0) silent++;
          jitters.push(l.jitter);
          maxGap = Math.max(maxGap, l.maxGap);
        }
        jitters.sort((a, b) => a - b);
        const pick = (q: number) => jitters[Math.min(jitters.length - 1, Math.floor(q * jitters.length))] ?? 0;
        const stats: WindowStats = {
          peers: windowStart.size,
          received,
          expected,
          lost: Math.max(0, expected - received),
          jitterMs: { p50: pick(0.5), p99: pick(0.99), max: jitters[jitters.length - 1] ?? 0 },
          maxGapMs: maxGap,
          peersSilent: silent,
          cpuFraction: performance.eventLoopUtilization(elu).utilization,
        };
        port.postMessage({ type: 'window', id: msg.id, stats } satisfies FromReceivers);
        break;
      }
      case 'close':
        Promise.allSettled(listeners.map((l) => l.pc.close())).then(() => {
          port.postMessage({ type: 'closed' } satisfies FromReceivers);
          port.close();
        });
        break;
    }
  });
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe((s) => {
      if (s === 'complete') {
        unSubscribe();
        resolve();
      }
    });
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) startReceivers();

// ---- The benchmark (main thread) --------------------------------------------------

interface StepResult {
  listeners: number;
  joinFailures: number;
  joinSeconds: number;
  received: number;
  lost: number;
  droppedLateInSfu: number;
  skippedBySendLoop: number;
  jitterMs: WindowStats['jitterMs'];
  maxArrivalGapMs: number;
  silentListeners: number;
  /** Share of one core the SFU used (embedded: its thread; mediasoup: its worker process). */
  sfuCpuFraction: number;
  receiversCpuFraction: number;
  sendLoopLatenessMs: { p50: number; p99: number; max: number };
  /** 1-minute load average of the machine when the step ended (other processes included). */
  loadAverage: number;
  attempt: number;
  pass: boolean;
}

class Receivers {
  readonly #worker: Worker;
  readonly #room: SfuRoom;
  #waiters = new Map<string, (msg: FromReceivers) => void>();
  #nextId = 1;

  constructor(room: SfuRoom) {
    this.#room = room;
    this.#worker = new Worker(new URL(import.meta.url), { workerData: { role: ROLE }, name: 'listeners' });
    this.#worker.on('message', (msg: FromReceivers) => {
      if (msg.type === 'signal') {
        this.#room.signal(msg.memberId, msg.message).then(
          (result) => this.#worker.postMessage({ type: 'signal-reply', id: msg.id, ok: true, result } satisfies ToReceivers),
          (err: unknown) => this.#worker.postMessage({ type: 'signal-reply', id: msg.id, ok: false, error: String(err) } satisfies ToReceivers),
        );
        return;
      }
      const key = msg.type === 'window' ? `window:${msg.id}` : msg.type;
      this.#waiters.get(key)?.(msg);
      this.#waiters.delete(key);
    });
  }

  #wait(key: string): Promise<FromReceivers> {
    return new Promise((resolve) => this.#waiters.set(key, resolve));
  }

  async join(adapter: SfuKind, memberIds: string[]): Promise<number> {
    const done = this.#wait('joined');
    this.#worker.postMessage({ type: 'join', adapter, memberIds } satisfies ToReceivers);
    const msg = (await done) as Extract<FromReceivers, { type: 'joined' }>;
    return msg.failed;
  }

  startWindow(): void {
    this.#worker.postMessage({ type: 'window-start' } satisfies ToReceivers);
  }

  async endWindow(): Promise<WindowStats> {
    const id = this.#nextId++;
    const done = this.#wait(`window:${id}`);
    this.#worker.postMessage({ type: 'window-end', id } satisfies ToReceivers);
    return ((await done) as Extract<FromReceivers, { type: 'window' }>).stats;
  }

  async close(): Promise<void> {
    const done = Promise.race([this.#wait('closed'), new Promise((r) => setTimeout(r, 5000))]);
    this.#worker.postMessage({ type: 'close' } satisfies ToReceivers);
    await done;
    await this.#worker.terminate();
  }
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

async function measureAdapter(kind: SfuKind, steps: number[], seconds: number): Promise<Record<string, unknown>> {
  let sfu: Sfu;
  let sfuCpu: () => Promise<number>;
  if (kind === 'embedded') {
    const embedded = await EmbeddedSfu.create({ maxConcurrentHandshakes: 4, connectTimeoutMs: 60_000, handshakeSlotMs: 2000 });
    sfu = embedded;
    // CPU time of the SFU's thread, not its event-loop utilization: on a shared
    // machine a thread descheduled while busy would look busier than it is.
    sfuCpu = async () => (await embedded.workerStats()).threadCpuFraction;
  } else {
    const { MediasoupSfu } = await import('../media/sfu/mediasoup-sfu.ts');
    // One worker and one router: the figure is per worker process (per core).
    const ms = await MediasoupSfu.create({ workerBin: process.env['MEDIASOUP_WORKER_BIN']!, numWorkers: 1, maxConsumersPerRouter: 100_000, connectTimeoutMs: 60_000 });
    sfu = ms;
    let last = { cpuMs: 0, at: performance.now() };
    const usage = async () => {
      const [w] = await ms.workerStats();
      return w ? w.usage.ru_utime + w.usage.ru_stime : 0;
    };
    last = { cpuMs: await usage(), at: performance.now() };
    sfuCpu = async () => {
      const cpuMs = await usage();
      const now = performance.now();
      const fraction = (cpuMs - last.cpuMs) / (now - last.at);
      last = { cpuMs, at: now };
      return fraction;
    };
  }
  const room = await sfu.createRoom('bench');
  const producer = await room.produceMix();
  const output = await LiveOutput.create({ source: { kind: 'test', signal: { kind: 'noise', amplitude: 0.2 } }, sink: producer.rtpSink, ssrc: producer.ssrc, payloadType: producer.payloadType });
  const receivers = new Receivers(room);
  const results: StepResult[] = [];
  let joined = 0;
  try {
    for (const target of steps) {
      const ids = Array.from({ length: target - joined }, (_, i) => `l${joined + i}`);
      const joinStarted = performance.now();
      // In groups, as listeners arrive in a real room: not all at once.
      let joinFailures = 0;
      for (let i = 0; i < ids.length; i += 25) joinFailures += await receivers.join(kind, ids.slice(i, i + 25));
      const joinSeconds = (performance.now() - joinStarted) / 1000;
      joined = target;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      for (let attempt = 1; attempt <= 3; attempt++) {
        const roomBefore = await room.stats();
        const loopBefore = await output.stats();
        await sfuCpu();
        receivers.startWindow();
        await new Promise((r) => setTimeout(r, seconds * 1000));
        const window = await receivers.endWindow();
        const cpu = await sfuCpu();
        const roomAfter = await room.stats();
        const loopAfter = await output.stats();
        const step: StepResult = {
          listeners: target,
          joinFailures,
          joinSeconds,
          received: window.received,
          lost: window.lost,
          droppedLateInSfu: roomAfter.packetsDroppedLate - roomBefore.packetsDroppedLate,
          skippedBySendLoop: loopAfter.framesSkipped - loopBefore.framesSkipped,
          jitterMs: window.jitterMs,
          maxArrivalGapMs: window.maxGapMs,
          silentListeners: window.peersSilent,
          sfuCpuFraction: cpu,
          receiversCpuFraction: window.cpuFraction,
          sendLoopLatenessMs: loopAfter.latenessMs,
          loadAverage: os.loadavg()[0]!,
          attempt,
          pass: false,
        };
        step.pass =
          joinFailures === 0 && step.lost === 0 && step.droppedLateInSfu === 0 && step.silentListeners === 0 && step.jitterMs.p99 < STEADY_JITTER_P99_MS;
        results.push(step);
        console.error(`listeners: ${kind} ${JSON.stringify(step)}`);
        if (step.pass) break;
      }
      if (!results[results.length - 1]!.pass) break;
    }
  } finally {
    await receivers.close();
    await output.close();
    producer.close();
    room.close();
    await sfu.close();
  }
  const passed = results.filter((r) => r.pass);
  const best = passed[passed.length - 1];
  // CPU per listener from the largest step measured (its joins done): what one
  // core would hold if nothing else competed for it.
  const largest = [...results].sort((a, b) => b.listeners - a.listeners)[0];
  const cpuPerListener = largest && largest.sfuCpuFraction > 0 ? largest.sfuCpuFraction / largest.listeners : null;
  return {
    adapter: kind,
    listenersPerCore: best?.listeners ?? 0,
    cpuPercentOfCorePerListener: cpuPerListener === null ? null : Math.round(cpuPerListener * 100_000) / 1000,
    projectedPerCoreFromCpu: cpuPerListener ? Math.floor(1 / cpuPerListener) : null,
    limitedBy: results[results.length - 1]?.pass !== false ? 'steps exhausted' : describeFailure(results[results.length - 1]!),
    steps: results,
  };
}

function describeFailure(step: StepResult): string {
  const reasons: string[] = [];
  if (step.joinFailures) reasons.push(`${step.joinFailures} joins failed`);
  if (step.lost) reasons.push(`${step.lost} packets lost at listeners`);
  if (step.droppedLateInSfu) reasons.push(`${step.droppedLateInSfu} dropped late in the SFU`);
  if (step.skippedBySendLoop) reasons.push(`${step.skippedBySendLoop} frames skipped by the send loop`);
  if (step.silentListeners) reasons.push(`${step.silentListeners} listeners silent`);
  if (step.jitterMs.p99 >= STEADY_JITTER_P99_MS) reasons.push(`jitter p99 ${step.jitterMs.p99.toFixed(1)} ms`);
  return `${step.listeners} listeners: ${reasons.join(', ')}`;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const steps = (option(args, 'steps') ?? DEFAULT_STEPS.join(',')).split(',').map(Number).filter((n) => n > 0);
  const seconds = Number(option(args, 'seconds') ?? DEFAULT_SECONDS);
  const requested = option(args, 'adapter');
  const mediasoup = isExecutableFile(process.env['MEDIASOUP_WORKER_BIN']);
  const adapters: SfuKind[] = requested ? [requested as SfuKind] : mediasoup ? ['embedded', 'mediasoup'] : ['embedded'];
  const machine = { cores: os.availableParallelism(), loadAverageAtStart: os.loadavg()[0], cpu: os.cpus()[0]?.model, node: process.version };
  const results: Record<string, unknown>[] = [];
  for (const kind of adapters) results.push(await measureAdapter(kind, steps, seconds));
  const first = results[0]!;
  return {
    adapter: first['adapter'],
    listenersPerCore: first['listenersPerCore'],
    goalPerCore: 200,
    mediasoupRun: mediasoup,
    machine: { ...machine, loadAverageAtEnd: os.loadavg()[0] },
    adapters: results,
  };
}
