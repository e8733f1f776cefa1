// The embedded SFU's thread: every werift peer (ICE, DTLS, SRTP) of every room
// lives here, away from the main event loop and from the live-output loop that
// makes the mix. Joins are paced through a queue so that a burst of handshakes
// cannot starve the forwarding of the mix to those already listening, and a
// packet that reaches this thread too late is dropped instead of being sent in
// a burst.
import { Session } from 'node:inspector/promises';
import { PerformanceObserver, monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import net from 'node:net';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, RtpPacket, ntpTime, type RTCRtpTransceiver } from 'werift';
import { OPUS_CHANNELS, OPUS_CLOCK_RATE, OPUS_FMTP, OPUS_MIME_TYPE, VP8_CLOCK_RATE, VP8_MIME_TYPE, VP8_PAYLOAD_TYPE, InvalidStateError, SignalError, type MemberLeftReason, type SfuRoomStats } from './sfu.ts';
import { audioAccepted, dropMdnsCandidates, filterCandidates } from '../../shared/sdp.ts';
import { cacheSrtpKeys } from './werift-tuning.ts';
import { DirectAudioSender } from './direct-audio-sender.ts';
import { toRpcError, type RpcEvent, type RpcReply, type RpcRequest } from './worker-rpc.ts';
import type { RtpPortMessage } from '../live/rtp-sink.ts';

/** @internal Settings the main thread starts this worker with. */
export interface EmbeddedSfuWorkerOptions {
  listenIp: string;
  announcedIp: string;
  portRange: [number, number] | undefined;
  connectTimeoutMs: number;
  idleTimeoutMs: number;
  disconnectGraceMs: number;
  maxConcurrentHandshakes: number;
  handshakeSlotMs: number;
  maxForwardDelayMs: number;
  payloadType: number;
  /** Send the mix through werift's own per-sender path instead of DirectAudioSender (for comparison). */
  weriftSendPath: boolean;
}

/** @internal */
export interface EmbeddedWorkerStats {
  peers: number;
  rooms: number;
  /** Share of one core this thread was busy since the last call (event-loop utilization: includes time it was descheduled while busy). */
  cpuFraction: number;
  /** CPU time this thread really used since the last call, as a share of one core (process.threadCpuUsage). */
  threadCpuFraction: number;
  eventLoopDelayMs: { p50: number; p99: number; max: number };
  handshakesInFlight: number;
  joinsQueued: number;
  /** Garbage collection in this thread since the last call: pauses and their longest. */
  gc: { count: number; totalMs: number; maxMs: number };
}

const port = parentPort;
if (!port) throw new Error('embedded-sfu.worker.ts must run as a worker thread');
const options = workerData as EmbeddedSfuWorkerOptions;
const DELAY_WINDOW = 3000;
// A joiner that has not answered by then gives its handshake slot back (it keeps
// its connect timeout): one that never answers must not hold up the queue.
const ANSWER_SLOT_MS = 1000;
const SWEEP_INTERVAL_MS = 1000;

function emit(event: string, data: unknown): void {
  port!.postMessage({ type: 'event', event, data } satisfies RpcEvent);
}

// ---- Join pacing ---------------------------------------------------------------

/**
 * At most `maxConcurrentHandshakes` joins are in flight at once, from the offer
 * until the peer connects (or fails, or handshakeSlotMs passes): the DTLS
 * handshake (ECDHE, signatures, certificate checks in JavaScript) is what stalls
 * the thread. A join waits for its slot before its offer is made, not between
 * answer and connection: a browser whose checks meet a server that has not yet
 * applied its answer backs off, which made queued answers miss their deadline.
 */
class HandshakeQueue {
  readonly #limit: number;
  readonly #waiting: (() => void)[] = [];
  #inFlight = 0;

  constructor(limit: number) {
    this.#limit = Math.max(1, limit);
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  get queued(): number {
    return this.#waiting.length;
  }

  /** Resolves with a release function once a slot is free. */
  acquire(): Promise<() => void> {
    return new Promise((resolve) => {
      const grant = () => {
        this.#inFlight++;
        let released = false;
        resolve(() => {
          if (released) return;
          released = true;
          this.#inFlight--;
          this.#waiting.shift()?.();
        });
      };
      if (this.#inFlight < this.#limit) grant();
      else this.#waiting.push(grant);
    });
  }
}

const handshakes = new HandshakeQueue(options.maxConcurrentHandshakes);

// ---- Rooms and peers --------------------------------------------------------------

interface Peer {
  transportId: string;
  memberId: string;
  room: Room;
  pc: RTCPeerConnection;
  transceiver: RTCRtpTransceiver;
  /** The visuals' transceiver, when the member asked for video. */
  video: RTCRtpTransceiver | null;
  state: 'connecting' | 'connected';
  /** The mix's sender once connected (null: werift's own path, through the room's track). */
  direct: DirectAudioSender | null;
  createdAt: number;
  lastHeardAt: number;
  disconnectedAt: number | null;
  releaseSlot: (() => void) | null;
  slotTimer: NodeJS.Timeout | null;
  closed: boolean;
}

interface Producer {
  id: string;
  port: MessagePort;
}

/** Keyframe requests from members reach the encoder at most this often. */
const KEYFRAME_REQUEST_MIN_MS = 300;

class Room {
  readonly id: string;
  readonly track = new MediaStreamTrack({ kind: 'audio' });
  readonly peers = new Map<string, Peer>();
  /** Connected peers whose mix goes through a DirectAudioSender, not the track. */
  readonly direct = new Set<DirectAudioSender>();
  producer: Producer | null = null;
  readonly videoTrack = new MediaStreamTrack({ kind: 'video' });
  videoProducer: Producer | null = null;
  videoPacketsIn = 0;
  lastKeyframeRequestAt = Number.NEGATIVE_INFINITY;
  packetsIn = 0;
  droppedLate = 0;
  /** Packets dropped so far: outgoing sequence numbers close the gap, as when the encoder skips. */
  seqShift = 0;
  readonly delays = new Float64Array(DELAY_WINDOW);
  delayCount = 0;

  constructor(id: string) {
    this.id = id;
  }

  forward(message: RtpPortMessage): void {
    const { packet, sentAtMs } = message;
    this.packetsIn++;
    const delay = performance.timeOrigin + performance.now() - sentAtMs;
    this.delays[this.delayCount++ % DELAY_WINDOW] = delay;
    if (delay > options.maxForwardDelayMs) {
      // The thread was held up (a burst of handshakes, GC): sending this now
      // would only push a burst into every listener's jitter buffer.
      this.droppedLate++;
      this.seqShift++;
      return;
    }
    if (this.peers.size === 0) return;
    const buffer = Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength);
    if (this.seqShift) buffer.writeUInt16BE((buffer.readUInt16BE(2) - this.seqShift) & 0xffff, 2);
    if (this.direct.size) {
      const ntp = ntpTime();
      for (const sender of this.direct) sender.send(buffer, ntp);
    }
    // The rest (connecting, or werift not shaped as DirectAudioSender expects):
    // parsed once here; werift's senders each clone it before rewriting the header.
    if (this.peers.size > this.direct.size) this.track.writeRtp(RtpPacket.deSerialize(buffer));
  }

  /**
   * The visuals' packets go out as they come: a dropped packet would spoil the
   * picture until the next keyframe, and a frame's packets arrive together anyway.
   */
  forwardVideo(message: RtpPortMessage): void {
    this.videoPacketsIn++;
    if (this.peers.size === 0) return;
    const { packet } = message;
    this.videoTrack.writeRtp(RtpPacket.deSerialize(Buffer.from(packet.buffer, packet.byteOffset, packet.byteLength)));
  }

  /** A member lost the picture (PLI/FIR) or just joined: asks the encoder for a keyframe, at most every KEYFRAME_REQUEST_MIN_MS. */
  requestKeyframe(): void {
    const now = performance.now();
    if (!this.videoProducer || now - this.lastKeyframeRequestAt < KEYFRAME_REQUEST_MIN_MS) return;
    this.lastKeyframeRequestAt = now;
    this.videoProducer.port.postMessage({ type: 'keyframe' });
  }

  stats(): SfuRoomStats {
    const n = Math.min(this.delayCount, DELAY_WINDOW);
    const sorted = Array.from(this.delays.subarray(0, n)).sort((a, b) => a - b);
    const pick = (q: number) => (n ? sorted[Math.min(n - 1, Math.floor(q * n))]! : 0);
    return {
      roomId: this.id,
      members: [...this.peers.values()].map((p) => ({
        memberId: p.memberId,
        state: p.state,
        // RTP and RTCP the transport sent (the sender keeps its RTP count private).
        packetsSent: p.pc.dtlsTransports[0]?.packetsSent ?? 0,
      })),
      packetsIn: this.packetsIn,
      packetsDroppedLate: this.droppedLate,
      forwardDelayMs: { p50: pick(0.5), p99: pick(0.99), max: n ? sorted[n - 1]! : 0 },
      joinsQueued: handshakes.queued,
      videoPacketsIn: this.videoPacketsIn,
      videoMembers: [...this.peers.values()].filter((p) => p.video).length,
    };
  }
}

const rooms = new Map<string, Room>();
const peers = new Map<string, Peer>();

function room(roomId: string): Room {
  const r = rooms.get(roomId);
  if (!r) throw new InvalidStateError(`no room ${roomId} in the SFU`);
  return r;
}

function peerConfig(): ConstructorParameters<typeof RTCPeerConnection>[0] {
  const v6 = net.isIPv6(options.listenIp);
  return {
    codecs: {
      audio: [
        new RTCRtpCodecParameters({
          mimeType: OPUS_MIME_TYPE,
          clockRate: OPUS_CLOCK_RATE,
          channels: OPUS_CHANNELS,
          payloadType: options.payloadType,
          parameters: OPUS_FMTP,
        }),
      ],
      // The visuals (offered only to members who asked): VP8 with NACK (werift's
      // sender retransmits from its history) and PLI/FIR (passed to the encoder).
      video: [
        new RTCRtpCodecParameters({
          mimeType: VP8_MIME_TYPE,
          clockRate: VP8_CLOCK_RATE,
          payloadType: VP8_PAYLOAD_TYPE,
          rtcpFeedback: [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }],
        }),
      ],
    },
    // No congestion control to feed: no header extensions to write per packet.
    headerExtensions: { audio: [], video: [] },
    bundlePolicy: 'max-bundle',
    // Only the configured address: host discovery would also advertise (and
    // bind) every other interface of the machine.
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: [options.announcedIp],
    iceInterfaceAddresses: v6 ? { udp6: options.listenIp } : { udp4: options.listenIp },
    ...(options.portRange ? { icePortRange: options.portRange } : {}),
  };
}

async function createTransport(args: { roomId: string; memberId: string; transportId: string; video?: boolean }): Promise<{ sdp: string }> {
  const r = room(args.roomId);
  const release = await handshakes.acquire();
  let peer: Peer | null = null;
  try {
    if (!rooms.has(args.roomId)) throw new InvalidStateError(`room ${args.roomId} closed`);
    const pc = new RTCPeerConnection(peerConfig());
    const transceiver = pc.addTransceiver(r.track, { direction: 'sendonly' });
    const video = args.video ? pc.addTransceiver(r.videoTrack, { direction: 'sendonly' }) : null;
    const now = performance.now();
    peer = {
      transportId: args.transportId,
      memberId: args.memberId,
      room: r,
      pc,
      transceiver,
      video,
      state: 'connecting',
      direct: null,
      createdAt: now,
      lastHeardAt: now,
      disconnectedAt: null,
      releaseSlot: release,
      slotTimer: setTimeout(() => releaseSlot(peer!), ANSWER_SLOT_MS),
      closed: false,
    };
    peers.set(peer.transportId, peer);
    r.peers.set(peer.transportId, peer);
    watch(peer);
    await pc.setLocalDescription(await pc.createOffer());
    await waitGathered(pc);
    const sdp = pc.localDescription?.sdp;
    if (!sdp || peer.closed) throw new InvalidStateError('the transport closed while it was being created');
    // The member has connectTimeoutMs from now to answer and connect.
    peer.createdAt = performance.now();
    return { sdp: filterCandidates(sdp, (address) => address === options.announcedIp) };
  } catch (err) {
    if (peer) closePeer(peer.transportId, 'left', false);
    else release();
    throw err;
  }
}

function watch(peer: Peer): void {
  const { pc, transceiver } = peer;
  pc.connectionStateChange.subscribe((state) => {
    if (peer.closed) return;
    if (state === 'connected') {
      peer.disconnectedAt = null;
      peer.lastHeardAt = performance.now();
      releaseSlot(peer);
      if (peer.state !== 'connected') {
        peer.state = 'connected';
        cacheSrtpKeys(pc);
        if (!options.weriftSendPath) {
          peer.direct = DirectAudioSender.attach(pc, transceiver.sender);
          if (peer.direct) peer.room.direct.add(peer.direct);
        }
        emit('transportconnected', { transportId: peer.transportId });
        // A new viewer needs a keyframe before it can show anything.
        if (peer.video) peer.room.requestKeyframe();
      }
    } else if (state === 'disconnected') {
      peer.disconnectedAt ??= performance.now();
    } else if (state === 'failed' || state === 'closed') {
      closePeer(peer.transportId, 'disconnected');
    }
  });
  // Receiver reports arrive every few seconds from a live browser (measured:
  // 2.5–5 s from Chromium); silence beyond idleTimeoutMs means it is gone.
  transceiver.sender.onRtcp.subscribe(() => {
    peer.lastHeardAt = performance.now();
  });
  if (peer.video) {
    peer.video.sender.onRtcp.subscribe(() => {
      peer.lastHeardAt = performance.now();
    });
    peer.video.sender.onPictureLossIndication.subscribe(() => peer.room.requestKeyframe());
  }
}

async function answer(args: { transportId: string; sdp: string }): Promise<Record<string, never>> {
  const peer = peers.get(args.transportId);
  if (!peer) throw new SignalError('wrong-transport', 'no such transport (closed, timed out, or never created)');
  if (peer.pc.remoteDescription) throw new SignalError('out-of-order', 'this transport has already been answered');
  if (!audioAccepted(args.sdp)) throw new SignalError('malformed', 'the answer rejects the audio');
  if (peer.releaseSlot) {
    // Answered in time: the slot is held through ICE and DTLS, up to handshakeSlotMs.
    if (peer.slotTimer) clearTimeout(peer.slotTimer);
    peer.slotTimer = setTimeout(() => releaseSlot(peer), options.handshakeSlotMs);
  }
  try {
    await peer.pc.setRemoteDescription({ type: 'answer', sdp: dropMdnsCandidates(args.sdp) });
  } catch (err) {
    throw new SignalError('malformed', `the answer could not be applied: ${err instanceof Error ? err.message : String(err)}`);
  }
  return {};
}

function releaseSlot(peer: Peer): void {
  if (peer.slotTimer) clearTimeout(peer.slotTimer);
  peer.slotTimer = null;
  const release = peer.releaseSlot;
  peer.releaseSlot = null;
  release?.();
}

function closePeer(transportId: string, reason: MemberLeftReason, notify = true): void {
  const peer = peers.get(transportId);
  if (!peer || peer.closed) return;
  peer.closed = true;
  peers.delete(transportId);
  peer.room.peers.delete(transportId);
  if (peer.direct) peer.room.direct.delete(peer.direct);
  releaseSlot(peer);
  peer.pc.close().catch((err: unknown) => emit('log', { level: 'warn', msg: 'closing a peer failed', err: String(err) }));
  if (notify) emit('transportclosed', { transportId, reason });
}

/** Half-open and vanished transports: one timer for the whole thread. */
const sweep = setInterval(() => {
  const now = performance.now();
  for (const peer of [...peers.values()]) {
    if (peer.state === 'connecting' && now - peer.createdAt > options.connectTimeoutMs) {
      closePeer(peer.transportId, 'connect-timeout');
    } else if (peer.state === 'connected' && peer.disconnectedAt !== null && now - peer.disconnectedAt > options.disconnectGraceMs) {
      closePeer(peer.transportId, 'disconnected');
    } else if (peer.state === 'connected' && now - peer.lastHeardAt > options.idleTimeoutMs) {
      closePeer(peer.transportId, 'disconnected');
    }
  }
}, SWEEP_INTERVAL_MS);

function closeProducer(r: Room): void {
  if (!r.producer) return;
  r.producer.port.close();
  r.producer = null;
}

function closeVideoProducer(r: Room): void {
  if (!r.videoProducer) return;
  r.videoProducer.port.close();
  r.videoProducer = null;
}

function closeRoom(roomId: string): void {
  const r = rooms.get(roomId);
  if (!r) return;
  rooms.delete(roomId);
  closeProducer(r);
  closeVideoProducer(r);
  // The main thread closed the room and forgets its members itself: no events back.
  for (const transportId of [...r.peers.keys()]) closePeer(transportId, 'room-closed', false);
  r.track.stop();
  r.videoTrack.stop();
}

// ---- Warm-up -----------------------------------------------------------------------

/**
 * One complete handshake between two peers of this thread, before the first
 * member's: the first DTLS handshake builds the thread's certificate and
 * @noble/curves' P-256 tables and compiles the whole path, which stalled the
 * thread for 230–390 ms (measured here) — on the first listener's own sound.
 */
async function warmUp(): Promise<{ ms: number }> {
  const started = performance.now();
  const track = new MediaStreamTrack({ kind: 'audio' });
  const loopback = { ...peerConfig(), iceAdditionalHostAddresses: ['127.0.0.1'], iceInterfaceAddresses: { udp4: '127.0.0.1' } };
  const sender = new RTCPeerConnection(loopback);
  const receiver = new RTCPeerConnection(loopback);
  try {
    sender.addTransceiver(track, { direction: 'sendonly' });
    const connected = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('warm-up handshake timed out')), 10_000);
      sender.connectionStateChange.subscribe((state) => {
        if (state === 'connected') {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await sender.setLocalDescription(await sender.createOffer());
    await waitGathered(sender);
    await receiver.setRemoteDescription(sender.localDescription!);
    await receiver.setLocalDescription(await receiver.createAnswer());
    await waitGathered(receiver);
    await sender.setRemoteDescription(receiver.localDescription!);
    await connected;
    return { ms: performance.now() - started };
  } finally {
    track.stop();
    await Promise.allSettled([sender.close(), receiver.close()]);
  }
}

function waitGathered(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    const { unSubscribe } = pc.iceGatheringStateChange.subscribe((state) => {
      if (state === 'complete') {
        unSubscribe();
        resolve();
      }
    });
  });
}

// ---- Thread health -----------------------------------------------------------------

const loopDelay = monitorEventLoopDelay({ resolution: 5 });
loopDelay.enable();
let gc = { count: 0, totalMs: 0, maxMs: 0 };
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    gc.count++;
    gc.totalMs += entry.duration;
    gc.maxMs = Math.max(gc.maxMs, entry.duration);
  }
});
gcObserver.observe({ entryTypes: ['gc'] });
let lastElu = performance.eventLoopUtilization();
let lastCpu = { usage: process.threadCpuUsage(), at: performance.now() };

function workerStats(): EmbeddedWorkerStats {
  const elu = performance.eventLoopUtilization(lastElu);
  lastElu = performance.eventLoopUtilization();
  const cpu = { usage: process.threadCpuUsage(), at: performance.now() };
  const cpuUs = cpu.usage.user + cpu.usage.system - lastCpu.usage.user - lastCpu.usage.system;
  const threadCpuFraction = cpuUs / 1000 / Math.max(1, cpu.at - lastCpu.at);
  lastCpu = cpu;
  const ms = (ns: number) => ns / 1e6;
  const stats: EmbeddedWorkerStats = {
    peers: peers.size,
    rooms: rooms.size,
    cpuFraction: elu.utilization,
    threadCpuFraction,
    eventLoopDelayMs: { p50: ms(loopDelay.percentile(50)), p99: ms(loopDelay.percentile(99)), max: ms(loopDelay.max) },
    handshakesInFlight: handshakes.inFlight,
    joinsQueued: handshakes.queued,
    gc,
  };
  gc = { count: 0, totalMs: 0, maxMs: 0 };
  loopDelay.reset();
  return stats;
}

/**
 * A CPU profile of this thread over `ms` (V8's sampling profiler, as
 * `node --cpu-prof` writes it): for the listeners bench, which profiles the
 * thread under load without restarting it.
 */
async function cpuProfile(args: { ms: number }): Promise<object> {
  const session = new Session();
  session.connect();
  try {
    await session.post('Profiler.enable');
    await session.post('Profiler.setSamplingInterval', { interval: 200 });
    await session.post('Profiler.start');
    await new Promise((r) => setTimeout(r, Math.max(10, Math.min(args.ms, 120_000))));
    const { profile } = await session.post('Profiler.stop');
    return profile;
  } finally {
    session.disconnect();
  }
}

// ---- Requests ------------------------------------------------------------------------

const handlers: Record<string, (args: never) => unknown> = {
  createRoom(args: { roomId: string }) {
    if (rooms.has(args.roomId)) throw new InvalidStateError(`room ${args.roomId} already exists in the SFU`);
    rooms.set(args.roomId, new Room(args.roomId));
    return {};
  },
  closeRoom(args: { roomId: string }) {
    closeRoom(args.roomId);
    return {};
  },
  produce(args: { roomId: string; producerId: string; port: MessagePort }) {
    const r = room(args.roomId);
    if (r.producer) {
      args.port.close();
      throw new InvalidStateError(`room ${args.roomId} already has a producer`);
    }
    const producer: Producer = { id: args.producerId, port: args.port };
    r.producer = producer;
    args.port.on('message', (message: RtpPortMessage) => r.forward(message));
    return {};
  },
  closeProducer(args: { roomId: string; producerId: string }) {
    const r = rooms.get(args.roomId);
    if (r?.producer?.id === args.producerId) closeProducer(r);
    return {};
  },
  produceVideo(args: { roomId: string; producerId: string; port: MessagePort }) {
    const r = room(args.roomId);
    if (r.videoProducer) {
      args.port.close();
      throw new InvalidStateError(`room ${args.roomId} already has a video producer`);
    }
    r.videoProducer = { id: args.producerId, port: args.port };
    args.port.on('message', (message: RtpPortMessage) => r.forwardVideo(message));
    return {};
  },
  closeVideoProducer(args: { roomId: string; producerId: string }) {
    const r = rooms.get(args.roomId);
    if (r?.videoProducer?.id === args.producerId) closeVideoProducer(r);
    return {};
  },
  createTransport: createTransport,
  answer: answer,
  closeTransport(args: { transportId: string }) {
    closePeer(args.transportId, 'left', false);
    return {};
  },
  roomStats(args: { roomId: string }) {
    return room(args.roomId).stats();
  },
  workerStats,
  warmUp,
  cpuProfile,
  async shutdown() {
    clearInterval(sweep);
    loopDelay.disable();
    gcObserver.disconnect();
    for (const roomId of [...rooms.keys()]) closeRoom(roomId);
    return {};
  },
};

port.on('message', (message: RpcRequest) => {
  if (message.type !== 'request') return;
  const reply = (r: RpcReply) => port.postMessage(r);
  const handler = handlers[message.op];
  if (!handler) {
    reply({ type: 'reply', id: message.id, ok: false, error: { name: 'Error', message: `unknown op ${message.op}` } });
    return;
  }
  Promise.resolve()
    .then(() => handler(message.args as never))
    .then(
      (result) => reply({ type: 'reply', id: message.id, ok: true, result }),
      (err: unknown) => reply({ type: 'reply', id: message.id, ok: false, error: toRpcError(err) }),
    );
});
