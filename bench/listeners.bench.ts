// `npm run bench -- listeners [--adapter embedded|mediasoup] [--steps 50,100,...] [--seconds 8]
//                             [--windows 3] [--receivers 2] [--decrypt] [--werift-send-path]
//                             [--cpu-prof DIR]`
//
// Listeners one SFU core holds with no loss and steady jitter. The room's mix
// (a live output with a noise source) goes through the adapter to N listeners;
// the listeners are werift peers spread over `--receivers` child processes (on
// loopback), which count lost packets and RFC 3550 interarrival jitter from what
// they receive. N grows in steps until a step loses packets (at the receivers, or
// dropped late inside the SFU) or its jitter stops being steady. A step is
// measured `--windows` times: it passes when one window passes (the machine is
// shared, and one descheduling of the SFU's thread by another process is not the
// SFU's limit), and its CPU figures are the medians over its windows.
//
// The receivers do not decrypt: every peer does ICE and DTLS-SRTP as a browser
// does, but once connected its RTP packets are counted (sequence number and RTP
// timestamp, which SRTP leaves in the clear, and the arrival time) as they come
// off the socket, and only one in SAMPLE_EVERY goes on to werift, which
// authenticates and decrypts it (its receiver then sends the receiver reports the
// SFU listens for, and `sampledDecrypted` checks the SFU sent valid SRTP).
// Decrypting everything cost the receivers more than the SFU spent sending it
// (werift in one thread saturated at about 140 listeners); `--decrypt` brings
// that back for comparison.
//
// Embedded adapter: all its peers live in one thread, so the N it held is per
// core; `sfuCpuFraction` is that thread's own CPU time (process.threadCpuUsage),
// which a busy machine does not inflate. mediasoup (when MEDIASOUP_WORKER_BIN
// names a worker): one worker, one router, so the N it held is per worker
// process (one core); its CPU is the worker's rusage.
// The bench's own CPU is reported beside it: the receivers' processes (CPU time
// from process.cpuUsage in each, summed, and the busiest one's event-loop
// utilization: below 1 means they were not the limit) and the rest of the bench's
// process (the live output's send loop and signalling).
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters } from 'werift';
import { LiveOutput } from '../media/live/live-output.ts';
import { EmbeddedSfu } from '../media/sfu/embedded-sfu.ts';
import { isExecutableFile } from '../media/sfu/select-sfu.ts';
import { cacheSrtpKeys } from '../media/sfu/werift-tuning.ts';
import { OPUS_FMTP, type Sfu, type SfuKind, type SfuRoom } from '../media/sfu/sfu.ts';

const ROLE_ENV = 'LISTENERS_BENCH_ROLE';
const DEFAULT_STEPS = [50, 100, 200, 300, 400, 500, 600];
const DEFAULT_SECONDS = 8;
const DEFAULT_WINDOWS = 3;
const SETTLE_MS = 2000;
/** How long the listeners of a step may take to connect (ICE + DTLS) before those still connecting count as failed joins. */
const CONNECT_WAIT_MS = 30_000;
/** Jitter is "steady" while the listeners' p99 stays under this (ms). 20 ms = one packet interval. */
const STEADY_JITTER_P99_MS = 10;
/** One RTP packet in this many (by sequence number) is decrypted by werift; the rest are only counted. */
const SAMPLE_EVERY = 25;
const GOAL_EMBEDDED_PER_CORE = 200;
const GOAL_MEDIASOUP_PER_CORE = 1000;

// ---- Receivers (each a child process) ------------------------------------------

interface WindowStats {
  peers: number;
  received: number;
  expected: number;
  lost: number;
  /** Per-listener RFC 3550 jitter, sorted (merged across processes by the parent). */
  jitters: number[];
  maxGapMs: number;
  peersSilent: number;
  /** Silent peers whose own connection state is not 'connected' (their DTLS never finished on this side, say). */
  silentNotConnected: number;
  /** Packets handed to werift to decrypt, and those that came out of it (authenticated). */
  sampled: number;
  sampledDecrypted: number;
  /** CPU time of this process over the window, as a share of one core. */
  cpuFraction: number;
  eventLoopUtilization: number;
}

type ToReceivers =
  | { type: 'join'; adapter: SfuKind; memberIds: string[]; decrypt: boolean }
  | { type: 'window-start' }
  | { type: 'window-end'; id: number }
  | { type: 'signal-reply'; id: number; ok: boolean; result?: unknown; error?: string }
  | { type: 'close' };

type FromReceivers =
  | { type: 'signal'; id: number; memberId: string; message: unknown }
  | { type: 'joined'; memberIds: string[]; failed: number; errors: string[] }
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
  sampled: number;
  sampledDecrypted: number;
}

function newListener(pc: RTCPeerConnection): Listener {
  return { pc, received: 0, firstSeq: null, lastExtSeq: 0, cycles: 0, lastSeq: 0, lastArrival: 0, lastTs: 0, jitter: 0, maxGap: 0, sampled: 0, sampledDecrypted: 0 };
}

/** RFC 5761: version 2, and not an RTCP packet type (200–206 land in 192–223). */
function isRtp(data: Buffer): boolean {
  return data.length >= 12 && data[0]! >> 6 === 2 && (data[1]! < 192 || data[1]! > 223);
}

function track(listener: Listener, seq: number, timestamp: number): void {
  const now = performance.now();
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

/**
 * Counts the peer's RTP as it comes off its sockets, before werift's ICE, DTLS
 * and SRTP layers see it, and passes on only one packet in SAMPLE_EVERY (and
 * everything that is not RTP: STUN, DTLS, RTCP). werift's internals, not its
 * API: returns false when the shape is not the one expected.
 */
function countBeforeDecrypting(listener: Listener, decrypt: boolean): boolean {
  const connection = listener.pc.dtlsTransports[0]?.iceTransport.connection as unknown as
    | { protocols?: { transport?: { onData?: (data: Buffer, addr: unknown) => void } }[] }
    | undefined;
  let hooked = false;
  for (const protocol of connection?.protocols ?? []) {
    const transport = protocol.transport;
    const onData = transport?.onData;
    if (!transport || typeof onData !== 'function') continue;
    transport.onData = (data: Buffer, addr: unknown) => {
      if (isRtp(data)) {
        const seq = data.readUInt16BE(2);
        track(listener, seq, data.readUInt32BE(4));
        if (!decrypt && seq % SAMPLE_EVERY !== 0) return;
        listener.sampled++;
      }
      onData(data, addr);
    };
    hooked = true;
  }
  return hooked;
}

function startReceivers(): void {
  const send = (msg: FromReceivers) => process.send!(msg);
  const listeners: Listener[] = [];
  const pendingSignals = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let elu = performance.eventLoopUtilization();
  let cpu = { usage: process.cpuUsage(), at: performance.now() };

  const signal = (memberId: string, message: unknown) =>
    new Promise<unknown>((resolve, reject) => {
      const id = nextId++;
      pendingSignals.set(id, { resolve, reject });
      send({ type: 'signal', id, memberId, message });
    });

  const config = () => ({
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: 111, parameters: OPUS_FMTP })] },
    headerExtensions: { audio: [] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  });

  function watch(listener: Listener, decrypt: boolean): void {
    const { pc } = listener;
    pc.onTrack.subscribe((t: MediaStreamTrack) =>
      t.onReceiveRtp.subscribe((rtp) => {
        listener.sampledDecrypted++;
        // Until the socket hook is in, werift's path is the only one that sees packets.
        if (!hooked) track(listener, rtp.header.sequenceNumber, rtp.header.timestamp);
      }),
    );
    let hooked = false;
    pc.connectionStateChange.subscribe((s) => {
      if (s !== 'connected' || hooked) return;
      cacheSrtpKeys(pc);
      hooked = countBeforeDecrypting(listener, decrypt);
    });
  }

  async function joinEmbedded(memberId: string, decrypt: boolean): Promise<Listener> {
    const offer = (await signal(memberId, { type: 'join' })) as { transportId: string; sdp: string };
    const pc = new RTCPeerConnection(config());
    const listener = newListener(pc);
    watch(listener, decrypt);
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    await gathered(pc);
    await signal(memberId, { type: 'answer', transportId: offer.transportId, sdp: pc.localDescription!.sdp });
    return listener;
  }

  async function joinMediasoup(memberId: string, decrypt: boolean): Promise<Listener> {
    const t = (await signal(memberId, { type: 'join' })) as {
      transportId: string;
      iceParameters: { usernameFragment: string; password: string };
      iceCandidates: { ip?: string; address?: string; port: number; priority: number; foundation: string; protocol: string }[];
      dtlsParameters: { fingerprints: { algorithm: string; value: string }[] };
    };
    const pc = new RTCPeerConnection(config());
    const listener = newListener(pc);
    watch(listener, decrypt);
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

  let windowStart = new Map<Listener, { received: number; extSeq: number; sampled: number; sampledDecrypted: number }>();
  process.on('message', (msg: ToReceivers) => {
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
        Promise.allSettled(msg.memberIds.map((id) => join(id, msg.decrypt))).then((results) => {
          const errors: string[] = [];
          for (const r of results) {
            if (r.status === 'fulfilled') listeners.push(r.value);
            else errors.push(String(r.reason));
          }
          send({ type: 'joined', memberIds: msg.memberIds, failed: errors.length, errors: errors.slice(0, 3) });
        });
        break;
      }
      case 'window-start':
        windowStart = new Map(listeners.map((l) => [l, { received: l.received, extSeq: l.lastExtSeq, sampled: l.sampled, sampledDecrypted: l.sampledDecrypted }]));
        for (const l of listeners) l.maxGap = 0;
        elu = performance.eventLoopUtilization();
        cpu = { usage: process.cpuUsage(), at: performance.now() };
        break;
      case 'window-end': {
        const used = process.cpuUsage(cpu.usage);
        const stats: WindowStats = {
          peers: windowStart.size,
          received: 0,
          expected: 0,
          lost: 0,
          jitters: [],
          maxGapMs: 0,
          peersSilent: 0,
          silentNotConnected: 0,
          sampled: 0,
          sampledDecrypted: 0,
          cpuFraction: (used.user + used.system) / 1000 / (performance.now() - cpu.at),
          eventLoopUtilization: performance.eventLoopUtilization(elu).utilization,
        };
        for (const l of listeners) {
          const start = windowStart.get(l);
          if (!start) continue;
          const got = l.received - start.received;
          stats.received += got;
          stats.expected += l.lastExtSeq - start.extSeq;
          stats.sampled += l.sampled - start.sampled;
          stats.sampledDecrypted += l.sampledDecrypted - start.sampledDecrypted;
          if (got === 0) {
            stats.peersSilent++;
            if (l.pc.connectionState !== 'connected') stats.silentNotConnected++;
          }
          stats.jitters.push(l.jitter);
          stats.maxGapMs = Math.max(stats.maxGapMs, l.maxGap);
        }
        stats.lost = Math.max(0, stats.expected - stats.received);
        send({ type: 'window', id: msg.id, stats });
        break;
      }
      case 'close':
        Promise.allSettled(listeners.map((l) => l.pc.close())).then(() => {
          send({ type: 'closed' });
          process.disconnect();
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

if (process.env[ROLE_ENV] === 'receivers' && process.send) startReceivers();

// ---- The benchmark (main process) --------------------------------------------------

interface WindowResult {
  received: number;
  lost: number;
  droppedLateInSfu: number;
  skippedBySendLoop: number;
  jitterMs: { p50: number; p99: number; max: number };
  maxArrivalGapMs: number;
  silentListeners: number;
  /** Of those, listeners whose own peer connection never reached 'connected' (the SFU may count them connected). */
  silentListenersNotConnected: number;
  sampled: number;
  sampledDecrypted: number;
  /** Share of one core the SFU used (embedded: its thread's CPU time; mediasoup: its worker process). */
  sfuCpuFraction: number;
  /** Embedded: the SFU thread's longest event-loop delay and GC pause in the window (a stall inside the thread, not the scheduler's). */
  sfuLoopDelayMaxMs: number | null;
  sfuGcMaxMs: number | null;
  /** Embedded: the SFU thread's GC pauses in the window, in all. */
  sfuGcMs: number | null;
  /** The receivers' processes together, CPU time as a share of one core. */
  receiversCpuFraction: number;
  /** The busiest receiver process's event-loop utilization (1 = it was the limit). */
  receiversMaxEventLoopUtilization: number;
  /** The bench's own process, the SFU's thread taken out: the live output's send loop, signalling. */
  benchMainCpuFraction: number;
  sendLoopLatenessMs: { p50: number; p99: number; max: number };
  /** 1-minute load average of the machine when the window ended (other processes included). */
  loadAverage: number;
  pass: boolean;
}

interface StepResult {
  listeners: number;
  /** Joins refused, and listeners (of all joined so far) not connected CONNECT_WAIT_MS after their joins. */
  joinFailures: number;
  joinSeconds: number;
  pass: boolean;
  /** Medians over the step's windows. */
  sfuCpuFraction: number;
  sfuCpuPercentPerListener: number;
  receiversCpuFraction: number;
  benchMainCpuFraction: number;
  windows: WindowResult[];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : 0;
};

class Receivers {
  readonly #children: ChildProcess[] = [];
  readonly #room: SfuRoom;
  #waiters = new Map<string, (msg: FromReceivers) => void>();
  #nextId = 1;

  constructor(room: SfuRoom, processes: number) {
    this.#room = room;
    const file = fileURLToPath(import.meta.url);
    for (let i = 0; i < processes; i++) {
      const child = fork(file, [], { env: { ...process.env, [ROLE_ENV]: 'receivers' }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      child.on('message', (msg: FromReceivers) => this.#onMessage(i, child, msg));
      this.#children.push(child);
    }
  }

  #onMessage(index: number, child: ChildProcess, msg: FromReceivers): void {
    if (msg.type === 'signal') {
      this.#room.signal(msg.memberId, msg.message).then(
        (result) => child.send({ type: 'signal-reply', id: msg.id, ok: true, result } satisfies ToReceivers),
        (err: unknown) => child.send({ type: 'signal-reply', id: msg.id, ok: false, error: String(err) } satisfies ToReceivers),
      );
      return;
    }
    const key = `${index}:${msg.type === 'window' ? `window:${msg.id}` : msg.type}`;
    this.#waiters.get(key)?.(msg);
    this.#waiters.delete(key);
  }

  #ask<T extends FromReceivers>(index: number, key: string, msg: ToReceivers): Promise<T> {
    const done = new Promise<T>((resolve) => this.#waiters.set(`${index}:${key}`, resolve as (m: FromReceivers) => void));
    this.#children[index]!.send(msg);
    return done;
  }

  /** Joins the members, spread round robin over the processes; returns the failures. */
  async join(adapter: SfuKind, memberIds: string[], decrypt: boolean): Promise<{ failed: number; errors: string[] }> {
    const shares = this.#children.map((_, i) => memberIds.filter((_, k) => k % this.#children.length === i));
    const replies = await Promise.all(
      shares.map((ids, i) => (ids.length ? this.#ask<Extract<FromReceivers, { type: 'joined' }>>(i, 'joined', { type: 'join', adapter, memberIds: ids, decrypt }) : null)),
    );
    return { failed: replies.reduce((n, r) => n + (r?.failed ?? 0), 0), errors: replies.flatMap((r) => r?.errors ?? []) };
  }

  startWindow(): void {
    for (const child of this.#children) child.send({ type: 'window-start' } satisfies ToReceivers);
  }

  async endWindow(): Promise<WindowStats[]> {
    const id = this.#nextId++;
    const replies = await Promise.all(this.#children.map((_, i) => this.#ask<Extract<FromReceivers, { type: 'window' }>>(i, `window:${id}`, { type: 'window-end', id })));
    return replies.map((r) => r.stats);
  }

  async close(): Promise<void> {
    await Promise.all(
      this.#children.map(async (child, i) => {
        if (child.exitCode !== null) return;
        const exited = new Promise((r) => child.once('exit', r));
        await Promise.race([this.#ask(i, 'closed', { type: 'close' }), new Promise((r) => setTimeout(r, 5000))]);
        await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
        if (child.exitCode === null) child.kill('SIGKILL');
      }),
    );
  }
}

function option(args: string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

interface RunOptions {
  steps: number[];
  seconds: number;
  windows: number;
  receivers: number;
  decrypt: boolean;
  weriftSendPath: boolean;
  cpuProfDir: string | undefined;
}

async function measureAdapter(kind: SfuKind, opts: RunOptions): Promise<Record<string, unknown>> {
  let sfu: Sfu;
  /** CPU since the last call, and (embedded) its thread's longest stall and GC pause since then. */
  let sfuCpu: () => Promise<{ cpu: number; loopDelayMaxMs: number | null; gcMaxMs: number | null; gcMs: number | null }>;
  let profile: ((ms: number) => Promise<object>) | null = null;
  if (kind === 'embedded') {
    const embedded = await EmbeddedSfu.create({ maxConcurrentHandshakes: 4, connectTimeoutMs: 60_000, handshakeSlotMs: 2000, weriftSendPath: opts.weriftSendPath });
    sfu = embedded;
    // CPU time of the SFU's thread, not its event-loop utilization: on a shared
    // machine a thread descheduled while busy would look busier than it is.
    sfuCpu = async () => {
      const s = await embedded.workerStats();
      return { cpu: s.threadCpuFraction, loopDelayMaxMs: s.eventLoopDelayMs.max, gcMaxMs: s.gc.maxMs, gcMs: s.gc.totalMs };
    };
    profile = (ms) => embedded.cpuProfile(ms);
  } else {
    const { MediasoupSfu } = await import('../media/sfu/mediasoup-sfu.ts');
    // One worker and one router: the figure is per worker process (per core).
    const ms = await MediasoupSfu.create({ workerBin: process.env['MEDIASOUP_WORKER_BIN']!, numWorkers: 1, maxConsumersPerRouter: 100_000, connectTimeoutMs: 60_000 });
    sfu = ms;
    const usage = async () => {
      const [w] = await ms.workerStats();
      return w ? w.usage.ru_utime + w.usage.ru_stime : 0;
    };
    let last = { cpuMs: await usage(), at: performance.now() };
    sfuCpu = async () => {
      const cpuMs = await usage();
      const now = performance.now();
      const fraction = (cpuMs - last.cpuMs) / (now - last.at);
      last = { cpuMs, at: now };
      return { cpu: fraction, loopDelayMaxMs: null, gcMaxMs: null, gcMs: null };
    };
  }
  const room = await sfu.createRoom('bench');
  const producer = await room.produceMix();
  const output = await LiveOutput.create({ source: { kind: 'test', signal: { kind: 'noise', amplitude: 0.2 } }, sink: producer.rtpSink, ssrc: producer.ssrc, payloadType: producer.payloadType });
  const receivers = new Receivers(room, opts.receivers);
  const results: StepResult[] = [];
  let joined = 0;
  let profiled: string | null = null;
  try {
    for (const target of opts.steps) {
      const ids = Array.from({ length: target - joined }, (_, i) => `l${joined + i}`);
      const joinStarted = performance.now();
      // In groups, as listeners arrive in a real room: not all at once.
      let joinFailures = 0;
      for (let i = 0; i < ids.length; i += 50) {
        const r = await receivers.join(kind, ids.slice(i, i + 50), opts.decrypt);
        joinFailures += r.failed;
        for (const e of r.errors) console.error(`listeners: a join failed: ${e}`);
      }
      // A join is done when the SFU counts the member connected (ICE and DTLS
      // through), not when its answer is sent: on a loaded machine handshakes lag.
      let connected = 0;
      for (const until = performance.now() + CONNECT_WAIT_MS; ; ) {
        connected = (await room.stats()).members.filter((m) => m.state === 'connected').length;
        if (connected >= target - joinFailures || performance.now() > until) break;
        await new Promise((r) => setTimeout(r, 250));
      }
      const notConnected = Math.max(0, target - joinFailures - connected);
      if (notConnected) console.error(`listeners: ${notConnected} of ${target} listeners not connected ${CONNECT_WAIT_MS / 1000} s after their joins`);
      joinFailures += notConnected;
      const joinSeconds = (performance.now() - joinStarted) / 1000;
      joined = target;
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const windows: WindowResult[] = [];
      for (let w = 0; w < opts.windows; w++) {
        const roomBefore = await room.stats();
        const loopBefore = await output.stats();
        await sfuCpu();
        const mainBefore = process.cpuUsage();
        const startedAt = performance.now();
        receivers.startWindow();
        const profiling = profile && opts.cpuProfDir && w === 0 && target === opts.steps[opts.steps.length - 1] ? profile(opts.seconds * 1000) : null;
        await new Promise((r) => setTimeout(r, opts.seconds * 1000));
        const prof = await profiling;
        const stats = await receivers.endWindow();
        const { cpu, loopDelayMaxMs, gcMaxMs, gcMs } = await sfuCpu();
        const mainUsed = process.cpuUsage(mainBefore);
        const wallMs = performance.now() - startedAt;
        const roomAfter = await room.stats();
        const loopAfter = await output.stats();
        if (prof && opts.cpuProfDir) {
          fs.mkdirSync(opts.cpuProfDir, { recursive: true });
          profiled = path.join(opts.cpuProfDir, `listeners-${kind}-${target}.cpuprofile`);
          fs.writeFileSync(profiled, JSON.stringify(prof));
        }
        const jitters = stats.flatMap((s) => s.jitters).sort((a, b) => a - b);
        const pick = (q: number) => jitters[Math.min(jitters.length - 1, Math.floor(q * jitters.length))] ?? 0;
        const sum = (f: (s: WindowStats) => number) => stats.reduce((n, s) => n + f(s), 0);
        const window: WindowResult = {
          received: sum((s) => s.received),
          lost: sum((s) => s.lost),
          droppedLateInSfu: roomAfter.packetsDroppedLate - roomBefore.packetsDroppedLate,
          skippedBySendLoop: loopAfter.framesSkipped - loopBefore.framesSkipped,
          jitterMs: { p50: pick(0.5), p99: pick(0.99), max: jitters[jitters.length - 1] ?? 0 },
          maxArrivalGapMs: Math.max(...stats.map((s) => s.maxGapMs)),
          silentListeners: sum((s) => s.peersSilent),
          silentListenersNotConnected: sum((s) => s.silentNotConnected),
          sampled: sum((s) => s.sampled),
          sampledDecrypted: sum((s) => s.sampledDecrypted),
          sfuCpuFraction: cpu,
          sfuLoopDelayMaxMs: loopDelayMaxMs,
          sfuGcMaxMs: gcMaxMs,
          sfuGcMs: gcMs,
          receiversCpuFraction: sum((s) => s.cpuFraction),
          receiversMaxEventLoopUtilization: Math.max(...stats.map((s) => s.eventLoopUtilization)),
          benchMainCpuFraction: kind === 'embedded' ? Math.max(0, (mainUsed.user + mainUsed.system) / 1000 / wallMs - cpu) : (mainUsed.user + mainUsed.system) / 1000 / wallMs,
          sendLoopLatenessMs: loopAfter.latenessMs,
          loadAverage: os.loadavg()[0]!,
          pass: false,
        };
        // Sampled packets that werift could not authenticate would be the SFU sending garbage.
        const sampledOk = window.sampled - window.sampledDecrypted <= Math.max(2, window.sampled * 0.01);
        window.pass =
          joinFailures === 0 && window.lost === 0 && window.droppedLateInSfu === 0 && window.silentListeners === 0 && window.jitterMs.p99 < STEADY_JITTER_P99_MS && sampledOk;
        windows.push(window);
        console.error(`listeners: ${kind} ${target} window ${w + 1}/${opts.windows} ${JSON.stringify(window)}`);
      }
      const sfuCpuFraction = median(windows.map((w) => w.sfuCpuFraction));
      const step: StepResult = {
        listeners: target,
        joinFailures,
        joinSeconds,
        pass: windows.some((w) => w.pass),
        sfuCpuFraction,
        sfuCpuPercentPerListener: (sfuCpuFraction / target) * 100,
        receiversCpuFraction: median(windows.map((w) => w.receiversCpuFraction)),
        benchMainCpuFraction: median(windows.map((w) => w.benchMainCpuFraction)),
        windows,
      };
      results.push(step);
      console.error(
        `listeners: ${kind} ${target}: ${step.pass ? 'pass' : 'FAIL'}, SFU ${(sfuCpuFraction * 100).toFixed(1)}% of a core (${step.sfuCpuPercentPerListener.toFixed(4)}% per listener), receivers ${(step.receiversCpuFraction * 100).toFixed(1)}%, bench main ${(step.benchMainCpuFraction * 100).toFixed(1)}%`,
      );
      if (!step.pass) break;
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
  // CPU per listener from the largest step that passed (its joins done): what
  // one core would hold if nothing else competed for it.
  const cpuPerListener = best && best.sfuCpuFraction > 0 ? best.sfuCpuFraction / best.listeners : null;
  const last = results[results.length - 1];
  const goal = kind === 'embedded' ? GOAL_EMBEDDED_PER_CORE : GOAL_MEDIASOUP_PER_CORE;
  return {
    adapter: kind,
    listenersPerCore: best?.listeners ?? 0,
    goalPerCore: goal,
    goalMet: (best?.listeners ?? 0) >= goal,
    cpuPercentOfCorePerListener: cpuPerListener === null ? null : Math.round(cpuPerListener * 100_000) / 1000,
    projectedPerCoreFromCpu: cpuPerListener ? Math.floor(1 / cpuPerListener) : null,
    // The SFU's thread at the largest step that passed: below 1 means the steps
    // ran out (or the receivers or the machine stopped it) before the SFU did.
    sfuCpuFractionAtBest: best?.sfuCpuFraction ?? null,
    benchOwnCpuAtBest: best ? { receivers: best.receiversCpuFraction, receiversMaxEventLoopUtilization: median(best.windows.map((w) => w.receiversMaxEventLoopUtilization)), main: best.benchMainCpuFraction } : null,
    limitedBy: !last || last.pass ? 'steps exhausted' : describeFailure(last),
    cpuProfile: profiled,
    steps: results,
  };
}

function describeFailure(step: StepResult): string {
  // The window closest to passing says most about the limit.
  const w = [...step.windows].sort((a, b) => a.lost + a.droppedLateInSfu - (b.lost + b.droppedLateInSfu))[0]!;
  const reasons: string[] = [];
  if (step.joinFailures) reasons.push(`${step.joinFailures} joins failed or never connected`);
  if (w.lost) reasons.push(`${w.lost} packets lost at listeners`);
  if (w.droppedLateInSfu) reasons.push(`${w.droppedLateInSfu} dropped late in the SFU`);
  if (w.skippedBySendLoop) reasons.push(`${w.skippedBySendLoop} frames skipped by the send loop`);
  if (w.silentListeners) reasons.push(`${w.silentListeners} listeners silent (${w.silentListenersNotConnected} of them not connected on their side)`);
  if (w.jitterMs.p99 >= STEADY_JITTER_P99_MS) reasons.push(`jitter p99 ${w.jitterMs.p99.toFixed(1)} ms`);
  if (w.sampled - w.sampledDecrypted > Math.max(2, w.sampled * 0.01)) reasons.push(`${w.sampled - w.sampledDecrypted} of ${w.sampled} sampled packets did not decrypt`);
  return `${step.listeners} listeners: ${reasons.join(', ')} (SFU thread ${(step.sfuCpuFraction * 100).toFixed(0)}% of a core, busiest receiver process ${(w.receiversMaxEventLoopUtilization * 100).toFixed(0)}% busy)`;
}

export async function run(args: string[]): Promise<Record<string, unknown>> {
  const opts: RunOptions = {
    steps: (option(args, 'steps') ?? DEFAULT_STEPS.join(',')).split(',').map(Number).filter((n) => n > 0),
    seconds: Number(option(args, 'seconds') ?? DEFAULT_SECONDS),
    windows: Math.max(1, Number(option(args, 'windows') ?? DEFAULT_WINDOWS)),
    receivers: Math.max(1, Number(option(args, 'receivers') ?? 2)),
    decrypt: args.includes('--decrypt'),
    weriftSendPath: args.includes('--werift-send-path'),
    cpuProfDir: option(args, 'cpu-prof'),
  };
  const requested = option(args, 'adapter') as SfuKind | undefined;
  const workerBin = process.env['MEDIASOUP_WORKER_BIN'];
  const mediasoup = isExecutableFile(workerBin);
  const mediasoupWhyNot = mediasoup ? null : workerBin ? `MEDIASOUP_WORKER_BIN=${workerBin} is not an executable file` : 'MEDIASOUP_WORKER_BIN is not set (no mediasoup worker on this machine)';
  const adapters: SfuKind[] = requested ? [requested] : mediasoup ? ['embedded', 'mediasoup'] : ['embedded'];
  if (!mediasoup && !requested) console.error(`listeners: mediasoup not run: ${mediasoupWhyNot}`);
  const machine = { cores: os.availableParallelism(), loadAverageAtStart: os.loadavg()[0], cpu: os.cpus()[0]?.model, node: process.version };
  const results: Record<string, unknown>[] = [];
  for (const kind of adapters) results.push(await measureAdapter(kind, opts));
  const embedded = results.find((r) => r['adapter'] === 'embedded');
  const ms = results.find((r) => r['adapter'] === 'mediasoup');
  return {
    adapter: results[0]!['adapter'],
    listenersPerCore: results[0]!['listenersPerCore'],
    goalPerCore: GOAL_EMBEDDED_PER_CORE,
    goalMet: embedded ? embedded['goalMet'] : null,
    embeddedCpuPercentPerListener: embedded ? embedded['cpuPercentOfCorePerListener'] : null,
    mediasoup: ms
      ? { run: true, listenersPerCore: ms['listenersPerCore'], goalPerCore: GOAL_MEDIASOUP_PER_CORE, goalMet: ms['goalMet'] }
      : { run: false, goalPerCore: GOAL_MEDIASOUP_PER_CORE, why: mediasoup ? 'not asked for (--adapter)' : mediasoupWhyNot },
    embeddedSendPath: opts.weriftSendPath ? 'werift (--werift-send-path)' : 'DirectAudioSender',
    receivers: { processes: opts.receivers, decrypt: opts.decrypt ? 'every packet' : `1 packet in ${SAMPLE_EVERY}` },
    windowsPerStep: opts.windows,
    secondsPerWindow: opts.seconds,
    machine: { ...machine, loadAverageAtEnd: os.loadavg()[0] },
    adapters: results,
  };
}
