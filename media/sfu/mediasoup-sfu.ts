// The production SFU: mediasoup, one C++ worker process per core, one router
// per room. The mix comes in through a PlainTransport (the live-output thread
// sends plain RTP to it over UDP, so no packet touches this event loop); each
// member gets a WebRtcTransport and a consumer. When a room's router serves
// maxConsumersPerRouter members, new members go to a router on another worker
// fed through pipeToRouter (a single router is overwhelmed at 200–300 viewers).
//
// mediasoup is imported lazily: the embedded path must never need its native
// worker (which is not installed on machines where its build cannot run).
import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Logger } from 'pino';
import type { types as ms } from 'mediasoup';
import { OPUS_PAYLOAD_TYPE } from '../live/rtp-packetizer.ts';
import type { RtpSink } from '../live/rtp-sink.ts';
import {
  InvalidStateError,
  NO_VISUALS_PRODUCER,
  VP8_CLOCK_RATE,
  VP8_MIME_TYPE,
  VP8_PAYLOAD_TYPE,
  OPUS_CHANNELS,
  OPUS_CLOCK_RATE,
  OPUS_MIME_TYPE,
  SignalError,
  mediasoupClientSignalSchema,
  parseSignal,
  randomSsrc,
  type MemberLeftReason,
  type MixProducer,
  type MixProducerEvents,
  type MixProducerOptions,
  type ServerSignal,
  type Sfu,
  type SfuEvents,
  type SfuRoom,
  type SfuRoomEvents,
  type SfuRoomStats,
  type VisualsProducer,
} from './sfu.ts';

export interface MediasoupSfuOptions {
  /** Path of the mediasoup-worker binary (mediasoup's own `workerBin` setting). */
  workerBin: string;
  /** Default: one per core. */
  numWorkers?: number;
  /** Address the transports listen on. Default 127.0.0.1. */
  listenIp?: string;
  /** Address (or host name) written into ICE candidates. Default: listenIp. */
  announcedAddress?: string;
  rtcMinPort?: number;
  rtcMaxPort?: number;
  /** Members one router serves before new members go to a piped router on another worker. Default 400. */
  maxConsumersPerRouter?: number;
  /** A transport that has not connected (DTLS) by then is closed. Default 15 s. */
  connectTimeoutMs?: number;
  /** How long an ICE-disconnected member may take to come back. Default 5 s. */
  disconnectGraceMs?: number;
  /** ICE consent timeout of each transport, seconds (mediasoup's iceConsentTimeout). Default 30. */
  iceConsentTimeoutS?: number;
  log?: Logger;
}

type Settings = Required<Omit<MediasoupSfuOptions, 'log' | 'rtcMinPort' | 'rtcMaxPort' | 'announcedAddress'>> &
  Pick<MediasoupSfuOptions, 'rtcMinPort' | 'rtcMaxPort' | 'announcedAddress'>;

type MediasoupModule = typeof import('mediasoup');

const OPUS_PARAMETERS = { minptime: 10, useinbandfec: 1, stereo: 1, 'sprop-stereo': 1 };

const VP8_FEEDBACK: ms.RtcpFeedback[] = [{ type: 'nack' }, { type: 'nack', parameter: 'pli' }, { type: 'ccm', parameter: 'fir' }];

const ROUTER_CODECS: ms.RouterRtpCodecCapability[] = [
  { kind: 'audio', mimeType: OPUS_MIME_TYPE, clockRate: OPUS_CLOCK_RATE, channels: OPUS_CHANNELS, parameters: OPUS_PARAMETERS },
  { kind: 'video', mimeType: VP8_MIME_TYPE, clockRate: VP8_CLOCK_RATE, rtcpFeedback: VP8_FEEDBACK },
];

interface WorkerSlot {
  worker: ms.Worker;
  /** Routers on this worker (rooms' own and piped ones). */
  routers: number;
  consumers: number;
}

export class MediasoupSfu extends EventEmitter<SfuEvents> implements Sfu {
  readonly kind = 'mediasoup' as const;
  readonly #mediasoup: MediasoupModule;
  readonly #settings: Settings;
  readonly #log: Logger | undefined;
  readonly #slots: WorkerSlot[] = [];
  readonly #rooms = new Map<string, MediasoupSfuRoom>();
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(mediasoup: MediasoupModule, settings: Settings, log: Logger | undefined) {
    super();
    this.#mediasoup = mediasoup;
    this.#settings = settings;
    this.#log = log;
  }

  static async create(options: MediasoupSfuOptions): Promise<MediasoupSfu> {
    const mediasoup = await import('mediasoup');
    const listenIp = options.listenIp ?? '127.0.0.1';
    const sfu = new MediasoupSfu(
      mediasoup,
      {
        workerBin: options.workerBin,
        numWorkers: options.numWorkers ?? os.availableParallelism(),
        listenIp,
        announcedAddress: options.announcedAddress,
        rtcMinPort: options.rtcMinPort,
        rtcMaxPort: options.rtcMaxPort,
        maxConsumersPerRouter: options.maxConsumersPerRouter ?? 400,
        connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
        disconnectGraceMs: options.disconnectGraceMs ?? 5_000,
        iceConsentTimeoutS: options.iceConsentTimeoutS ?? 30,
      },
      options.log,
    );
    try {
      for (let i = 0; i < sfu.#settings.numWorkers; i++) sfu.#slots.push(await sfu.#createWorkerSlot());
    } catch (err) {
      await sfu.close();
      throw err;
    }
    return sfu;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get settings(): Settings {
    return this.#settings;
  }

  async #createWorkerSlot(): Promise<WorkerSlot> {
    const worker = await this.#mediasoup.createWorker({
      workerBin: this.#settings.workerBin,
      logLevel: 'warn',
      ...(this.#settings.rtcMinPort !== undefined ? { rtcMinPort: this.#settings.rtcMinPort } : {}),
      ...(this.#settings.rtcMaxPort !== undefined ? { rtcMaxPort: this.#settings.rtcMaxPort } : {}),
    });
    const slot: WorkerSlot = { worker, routers: 0, consumers: 0 };
    worker.on('died', (error) => this.#onWorkerDied(slot, error));
    return slot;
  }

  async createRoom(roomId: string): Promise<SfuRoom> {
    this.#assertOpen();
    if (this.#rooms.has(roomId)) throw new InvalidStateError(`room ${roomId} already exists in the SFU`);
    const slot = this.leastLoadedSlot();
    const router = await slot.worker.createRouter({ mediaCodecs: ROUTER_CODECS });
    if (this.#closed) {
      router.close();
      throw new InvalidStateError('the SFU closed');
    }
    const room = new MediasoupSfuRoom(this, roomId, { router, slot }, this.#log?.child({ roomId }));
    this.#rooms.set(roomId, room);
    room.once('closed', () => this.#rooms.delete(roomId));
    return room;
  }

  /** @internal The worker with the fewest consumers (then routers), optionally not `avoid`. */
  leastLoadedSlot(avoid?: WorkerSlot): WorkerSlot {
    const candidates = this.#slots.filter((s) => !s.worker.died && !s.worker.closed && s !== avoid);
    const pool = candidates.length ? candidates : this.#slots.filter((s) => !s.worker.died && !s.worker.closed);
    const best = pool.sort((a, b) => a.consumers - b.consumers || a.routers - b.routers)[0];
    if (!best) throw new InvalidStateError('no mediasoup worker is alive');
    return best;
  }

  /** CPU time and memory of each worker process (mediasoup's getResourceUsage). */
  async workerStats(): Promise<{ pid: number; consumers: number; routers: number; usage: ms.WorkerResourceUsage }[]> {
    return Promise.all(this.#slots.map(async (s) => ({ pid: s.worker.pid, consumers: s.consumers, routers: s.routers, usage: await s.worker.getResourceUsage() })));
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const room of [...this.#rooms.values()]) room.close();
      this.#rooms.clear();
      for (const slot of this.#slots) slot.worker.close();
      this.#slots.length = 0;
      this.emit('closed');
    })();
    return this.#closing;
  }

  #onWorkerDied(slot: WorkerSlot, error: Error): void {
    if (this.#closed) return;
    const roomIds = [...this.#rooms.values()].filter((r) => r.usesSlot(slot)).map((r) => r.roomId);
    this.#log?.error({ err: error, pid: slot.worker.pid, roomIds }, 'mediasoup worker died; its rooms are closed and a new worker started');
    for (const roomId of roomIds) this.#rooms.get(roomId)?.close();
    const index = this.#slots.indexOf(slot);
    this.emit('workerdied', { workerId: String(slot.worker.pid), error, roomIds });
    // Replace it so that the owner can recreate its rooms at once.
    this.#createWorkerSlot().then(
      (fresh) => {
        if (this.#closed) fresh.worker.close();
        else if (index >= 0) this.#slots[index] = fresh;
      },
      (err: unknown) => this.#log?.error({ err }, 'could not start a replacement mediasoup worker'),
    );
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the SFU is closed');
  }
}

interface ServingRouter {
  router: ms.Router;
  slot: WorkerSlot;
  consumers: number;
  /** The mix's producer id as this router knows it (pipeToRouter keeps the id). */
  piped: boolean;
}

interface Member {
  transport: ms.WebRtcTransport;
  serving: ServingRouter;
  consumer: ms.Consumer | null;
  /** Whether the member joined asking for the visuals (and the room published them then). */
  video: boolean;
  videoConsumer: ms.Consumer | null;
  state: 'connecting' | 'connected';
  timer: NodeJS.Timeout | null;
}

class MediasoupSfuRoom extends EventEmitter<SfuRoomEvents> implements SfuRoom {
  readonly roomId: string;
  readonly #sfu: MediasoupSfu;
  readonly #log: Logger | undefined;
  readonly #routers: ServingRouter[];
  readonly #members = new Map<string, Member>();
  #producer: MediasoupMixProducer | null = null;
  #visuals: MediasoupMixProducer | null = null;
  #closed = false;

  constructor(sfu: MediasoupSfu, roomId: string, primary: { router: ms.Router; slot: WorkerSlot }, log: Logger | undefined) {
    super();
    this.#sfu = sfu;
    this.roomId = roomId;
    this.#log = log;
    primary.slot.routers++;
    this.#routers = [{ router: primary.router, slot: primary.slot, consumers: 0, piped: false }];
    primary.router.on('workerclose', () => this.close());
  }

  get closed(): boolean {
    return this.#closed;
  }

  get memberCount(): number {
    return this.#members.size;
  }

  /** @internal */
  usesSlot(slot: WorkerSlot): boolean {
    return this.#routers.some((r) => r.slot === slot);
  }

  get #primary(): ServingRouter {
    return this.#routers[0]!;
  }

  async produceMix(options: MixProducerOptions = {}): Promise<MixProducer> {
    this.#assertOpen();
    if (this.#producer && !this.#producer.closed) throw new InvalidStateError(`room ${this.roomId} already produces its mix`);
    const ssrc = options.ssrc ?? randomSsrc();
    const payloadType = options.payloadType ?? OPUS_PAYLOAD_TYPE;
    const { listenIp } = this.#sfu.settings;
    // comedia: the transport learns the sender's address from its first packet.
    const transport = await this.#primary.router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: listenIp }, rtcpMux: true, comedia: true });
    try {
      const producer = await transport.produce({
        kind: 'audio',
        rtpParameters: {
          codecs: [{ mimeType: OPUS_MIME_TYPE, payloadType, clockRate: OPUS_CLOCK_RATE, channels: OPUS_CHANNELS, parameters: OPUS_PARAMETERS }],
          encodings: [{ ssrc }],
        },
      });
      const { localAddress, localPort } = transport.tuple;
      const mix = new MediasoupMixProducer(this, producer, transport, { kind: 'udp', address: localAddress, port: localPort }, ssrc, payloadType, 'audio');
      this.#producer = mix;
      // Routers added before this producer existed get it now.
      for (const serving of this.#routers) if (serving.piped) await this.#primary.router.pipeToRouter({ producerId: producer.id, router: serving.router });
      return mix;
    } catch (err) {
      transport.close();
      throw err;
    }
  }

  async produceVisuals(options: MixProducerOptions = {}): Promise<VisualsProducer> {
    this.#assertOpen();
    if (this.#visuals && !this.#visuals.closed) throw new InvalidStateError(`room ${this.roomId} already produces its visuals`);
    const ssrc = options.ssrc ?? randomSsrc();
    const payloadType = options.payloadType ?? VP8_PAYLOAD_TYPE;
    const { listenIp } = this.#sfu.settings;
    // comedia: mediasoup learns the encoder's address from its first packet and
    // sends the consumers' keyframe requests (RTCP PLI/FIR, muxed) back there.
    const transport = await this.#primary.router.createPlainTransport({ listenInfo: { protocol: 'udp', ip: listenIp }, rtcpMux: true, comedia: true });
    try {
      const producer = await transport.produce({
        kind: 'video',
        rtpParameters: {
          codecs: [{ mimeType: VP8_MIME_TYPE, payloadType, clockRate: VP8_CLOCK_RATE, rtcpFeedback: VP8_FEEDBACK }],
          encodings: [{ ssrc }],
        },
      });
      const { localAddress, localPort } = transport.tuple;
      const visuals = new MediasoupMixProducer(this, producer, transport, { kind: 'udp', address: localAddress, port: localPort }, ssrc, payloadType, 'video');
      this.#visuals = visuals;
      for (const serving of this.#routers) if (serving.piped) await this.#primary.router.pipeToRouter({ producerId: producer.id, router: serving.router });
      return visuals as VisualsProducer;
    } catch (err) {
      transport.close();
      throw err;
    }
  }

  async signal(memberId: string, message: unknown): Promise<ServerSignal> {
    this.#assertOpen();
    const msg = parseSignal(mediasoupClientSignalSchema, message);
    if (msg.type === 'join') return this.#join(memberId, msg.video === true);
    if (msg.type === 'leave') {
      this.leave(memberId);
      return { type: 'left' };
    }
    const member = this.#members.get(memberId);
    if (!member) throw new SignalError('unknown-member', `member ${memberId} has not joined room ${this.roomId}`);
    // Only the member's own transport, which only ever consumes this room's mix.
    if (member.transport.id !== msg.transportId) throw new SignalError('wrong-transport', 'that transport is not this member’s');
    switch (msg.type) {
      case 'connect':
        await member.transport.connect({ dtlsParameters: msg.dtlsParameters as ms.DtlsParameters });
        return { type: 'connected', transportId: member.transport.id };
      case 'consume': {
        const kind = msg.kind ?? 'audio';
        if (kind === 'video' && !member.video) throw new SignalError('out-of-order', 'join with { video: true } to receive the visuals');
        const producer = kind === 'video' ? this.#visuals : this.#producer;
        if (!producer || producer.closed) throw new SignalError('no-producer', kind === 'video' ? NO_VISUALS_PRODUCER : 'the room’s mix is not playing yet');
        const existing = kind === 'video' ? member.videoConsumer : member.consumer;
        if (existing && !existing.closed) throw new SignalError('out-of-order', 'already consuming');
        const rtpCapabilities = msg.rtpCapabilities as ms.RtpCapabilities;
        if (!member.serving.router.canConsume({ producerId: producer.producerId, rtpCapabilities })) {
          throw new SignalError('cannot-consume', `the browser cannot receive the ${kind === 'video' ? 'visuals’' : 'mix’s'} codec`);
        }
        const consumer = await member.transport.consume({ producerId: producer.producerId, rtpCapabilities, paused: true });
        if (kind === 'video') member.videoConsumer = consumer;
        else member.consumer = consumer;
        return { type: 'consumer', transportId: member.transport.id, consumerId: consumer.id, producerId: producer.producerId, kind, rtpParameters: consumer.rtpParameters };
      }
      case 'resume': {
        const consumer = [member.consumer, member.videoConsumer].find((c) => c && c.id === msg.consumerId);
        if (!consumer) throw new SignalError('out-of-order', 'no such consumer');
        await consumer.resume();
        // A resumed video consumer asks the producer for a keyframe itself (mediasoup sends PLI upstream).
        return { type: 'resumed', consumerId: consumer.id };
      }
    }
  }

  async #join(memberId: string, wantsVideo: boolean): Promise<ServerSignal> {
    if (this.#members.has(memberId)) this.#drop(memberId, 'left');
    const serving = await this.#servingRouter();
    const { listenIp, announcedAddress, iceConsentTimeoutS, connectTimeoutMs } = this.#sfu.settings;
    const transport = await serving.router.createWebRtcTransport({
      listenInfos: [{ protocol: 'udp', ip: listenIp, ...(announcedAddress ? { announcedAddress } : {}) }],
      iceConsentTimeout: iceConsentTimeoutS,
    });
    if (this.#closed) {
      transport.close();
      throw new InvalidStateError(`room ${this.roomId} closed`);
    }
    const video = wantsVideo && this.#visuals !== null && !this.#visuals.closed;
    const member: Member = { transport, serving, consumer: null, video, videoConsumer: null, state: 'connecting', timer: null };
    this.#members.set(memberId, member);
    serving.consumers++;
    serving.slot.consumers++;
    // Half-open: a member that never connects is dropped.
    member.timer = setTimeout(() => {
      if (this.#members.get(memberId) === member && member.state !== 'connected') this.#drop(memberId, 'connect-timeout');
    }, connectTimeoutMs);
    transport.on('dtlsstatechange', (state) => {
      if (this.#members.get(memberId) !== member) return;
      if (state === 'connected') {
        member.state = 'connected';
        this.#clearTimer(member);
        this.emit('memberconnected', memberId);
      } else if (state === 'failed' || state === 'closed') {
        this.#drop(memberId, 'disconnected');
      }
    });
    transport.on('icestatechange', (state) => {
      if (this.#members.get(memberId) !== member) return;
      if (state === 'disconnected' || state === 'closed') {
        this.#clearTimer(member);
        member.timer = setTimeout(() => {
          if (this.#members.get(memberId) === member && transport.iceState !== 'connected' && transport.iceState !== 'completed') this.#drop(memberId, 'disconnected');
        }, this.#sfu.settings.disconnectGraceMs);
      } else if (state === 'connected' || state === 'completed') {
        if (member.state === 'connected') this.#clearTimer(member);
      }
    });
    return {
      type: 'transport',
      adapter: 'mediasoup',
      transportId: transport.id,
      routerRtpCapabilities: serving.router.rtpCapabilities,
      iceParameters: transport.iceParameters,
      iceCandidates: transport.iceCandidates,
      dtlsParameters: transport.dtlsParameters,
      video,
      ...(wantsVideo && !video ? { videoRefused: NO_VISUALS_PRODUCER } : {}),
    };
  }

  /** The router a new member goes to: the first with room, else a new one on another worker, piped. */
  async #servingRouter(): Promise<ServingRouter> {
    const limit = this.#sfu.settings.maxConsumersPerRouter;
    const free = this.#routers.find((r) => r.consumers < limit && !r.router.closed);
    if (free) return free;
    const slot = this.#sfu.leastLoadedSlot(this.#primary.slot);
    const router = await slot.worker.createRouter({ mediaCodecs: ROUTER_CODECS });
    slot.routers++;
    const serving: ServingRouter = { router, slot, consumers: 0, piped: true };
    this.#routers.push(serving);
    router.on('workerclose', () => this.close());
    for (const producer of [this.#producer, this.#visuals]) {
      if (producer && !producer.closed) await this.#primary.router.pipeToRouter({ producerId: producer.producerId, router });
    }
    this.#log?.info({ routers: this.#routers.length }, 'room outgrew its router: piped the mix to another worker');
    return serving;
  }

  leave(memberId: string): void {
    if (this.#closed) return;
    this.#drop(memberId, 'left');
  }

  async stats(): Promise<SfuRoomStats> {
    this.#assertOpen();
    const members = await Promise.all(
      [...this.#members].map(async ([memberId, m]) => {
        const stats = m.consumer && !m.consumer.closed ? await m.consumer.getStats() : [];
        const out = stats.find((s) => s.type === 'outbound-rtp');
        return { memberId, state: m.state, packetsSent: out?.packetCount ?? 0 };
      }),
    );
    const producer = this.#producer;
    const inStats = producer && !producer.closed ? await producer.getStats() : [];
    const visuals = this.#visuals;
    const visualsStats = visuals && !visuals.closed ? await visuals.getStats() : [];
    return {
      roomId: this.roomId,
      members,
      packetsIn: inStats.reduce((n, s) => n + (s.packetCount ?? 0), 0),
      packetsDroppedLate: 0,
      videoPacketsIn: visualsStats.reduce((n, s) => n + (s.packetCount ?? 0), 0),
      videoMembers: [...this.#members.values()].filter((m) => m.videoConsumer && !m.videoConsumer.closed).length,
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const memberId of [...this.#members.keys()]) this.#drop(memberId, 'room-closed');
    this.#producer?.parentClosed();
    this.#producer = null;
    this.#visuals?.parentClosed();
    this.#visuals = null;
    // Closing a router closes its transports, producers and consumers (and the pipe transports).
    for (const serving of this.#routers) {
      serving.slot.routers--;
      serving.router.close();
    }
    this.emit('closed');
  }

  /** @internal */
  producerClosed(producer: MediasoupMixProducer): void {
    if (this.#producer === producer) this.#producer = null;
    if (this.#visuals === producer) this.#visuals = null;
  }

  #drop(memberId: string, reason: MemberLeftReason): void {
    const member = this.#members.get(memberId);
    if (!member) return;
    this.#members.delete(memberId);
    this.#clearTimer(member);
    member.serving.consumers--;
    member.serving.slot.consumers--;
    member.transport.close();
    this.emit('memberleft', memberId, reason);
  }

  #clearTimer(member: Member): void {
    if (member.timer) clearTimeout(member.timer);
    member.timer = null;
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError(`room ${this.roomId} is closed`);
  }
}

class MediasoupMixProducer extends EventEmitter<MixProducerEvents> implements MixProducer {
  readonly kind: 'audio' | 'video';
  readonly id: string;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly rtpSink: RtpSink;
  readonly #room: MediasoupSfuRoom;
  readonly #producer: ms.Producer;
  readonly #transport: ms.PlainTransport;
  #closed = false;

  constructor(room: MediasoupSfuRoom, producer: ms.Producer, transport: ms.PlainTransport, rtpSink: RtpSink, ssrc: number, payloadType: number, kind: 'audio' | 'video') {
    super();
    this.kind = kind;
    this.#room = room;
    this.#producer = producer;
    this.#transport = transport;
    this.id = producer.id;
    this.rtpSink = rtpSink;
    this.ssrc = ssrc;
    this.payloadType = payloadType;
    transport.on('routerclose', () => this.parentClosed());
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** @internal */
  get producerId(): string {
    return this.#producer.id;
  }

  /** @internal */
  getStats(): Promise<ms.ProducerStat[]> {
    return this.#producer.getStats();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#transport.close();
    this.#room.producerClosed(this);
    this.emit('closed');
  }

  /** @internal */
  parentClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.emit('closed');
  }
}
