// The embedded SFU: werift peers in a worker thread of their own. Installs from
// npm with no native build; used where mediasoup's worker binary is missing.
// This side owns the rooms, members and producers and talks to the thread.
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { MessageChannel, Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { OPUS_PAYLOAD_TYPE } from '../live/rtp-packetizer.ts';
import type { RtpSink } from '../live/rtp-sink.ts';
import {
  InvalidStateError,
  NO_VISUALS_PRODUCER,
  SignalError,
  VP8_PAYLOAD_TYPE,
  embeddedClientSignalSchema,
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
import { WorkerRpc } from './worker-rpc.ts';
import type { EmbeddedSfuWorkerOptions, EmbeddedWorkerStats } from './embedded-sfu.worker.ts';

export interface EmbeddedSfuOptions {
  /** Address the peers' UDP sockets bind to. Default 127.0.0.1. */
  listenIp?: string;
  /** Address written into the offers' ICE candidates (a public or LAN address behind NAT). Default: listenIp. */
  announcedIp?: string;
  portRange?: [number, number];
  /** A transport that has not connected by then is closed (a member that never answers). Default 15 s. */
  connectTimeoutMs?: number;
  /** A connected member heard from (RTCP) no longer than this is closed. Default 30 s. */
  idleTimeoutMs?: number;
  /** How long an ICE 'disconnected' member may take to come back. Default 5 s. */
  disconnectGraceMs?: number;
  /** Joins in flight at once (offer → answer → ICE → DTLS connected); later joins wait for their offer. Default 2. */
  maxConcurrentHandshakes?: number;
  /** How long one join may hold its slot (a member that never answers must not block the queue). Default 3 s. */
  handshakeSlotMs?: number;
  /** A mix packet older than this when the SFU thread gets to it is dropped, not sent late. Default 80 ms. */
  maxForwardDelayMs?: number;
  /**
   * Send the mix through werift's own per-listener path (as before
   * DirectAudioSender): for the listeners bench's comparison, not for production.
   */
  weriftSendPath?: boolean;
  log?: Logger;
}

export type { EmbeddedWorkerStats };

export class EmbeddedSfu extends EventEmitter<SfuEvents> implements Sfu {
  readonly kind = 'embedded' as const;
  readonly #options: EmbeddedSfuWorkerOptions;
  readonly #log: Logger | undefined;
  readonly #rooms = new Map<string, EmbeddedSfuRoom>();
  #rpc: WorkerRpc;
  #closed = false;
  #closing: Promise<void> | null = null;

  private constructor(options: EmbeddedSfuWorkerOptions, log: Logger | undefined) {
    super();
    this.#options = options;
    this.#log = log;
    this.#rpc = this.#spawn();
  }

  static async create(options: EmbeddedSfuOptions = {}): Promise<EmbeddedSfu> {
    const listenIp = options.listenIp ?? '127.0.0.1';
    const sfu = new EmbeddedSfu(
      {
        listenIp,
        announcedIp: options.announcedIp ?? listenIp,
        portRange: options.portRange,
        connectTimeoutMs: options.connectTimeoutMs ?? 15_000,
        idleTimeoutMs: options.idleTimeoutMs ?? 30_000,
        disconnectGraceMs: options.disconnectGraceMs ?? 5_000,
        maxConcurrentHandshakes: options.maxConcurrentHandshakes ?? 2,
        handshakeSlotMs: options.handshakeSlotMs ?? 3_000,
        maxForwardDelayMs: options.maxForwardDelayMs ?? 80,
        weriftSendPath: options.weriftSendPath ?? false,
        payloadType: OPUS_PAYLOAD_TYPE,
      },
      options.log,
    );
    try {
      const { ms } = await sfu.#rpc.request<{ ms: number }>('warmUp', {});
      sfu.#log?.debug({ ms }, 'embedded SFU thread warmed up');
      // Its one handshake is not the members' load.
      await sfu.workerStats();
    } catch (err) {
      await sfu.close();
      throw err;
    }
    return sfu;
  }

  get closed(): boolean {
    return this.#closed;
  }

  #spawn(): WorkerRpc {
    const worker = new Worker(new URL('./embedded-sfu.worker.ts', import.meta.url), { workerData: this.#options, name: 'embedded-sfu' });
    const rpc = new WorkerRpc(worker);
    rpc.on('event', (name, data) => this.#onWorkerEvent(name, data));
    rpc.on('died', (error) => this.#onWorkerDied(rpc, error));
    return rpc;
  }

  /** @internal */
  get rpc(): WorkerRpc {
    return this.#rpc;
  }

  async createRoom(roomId: string): Promise<SfuRoom> {
    this.#assertOpen();
    if (this.#rooms.has(roomId)) throw new InvalidStateError(`room ${roomId} already exists in the SFU`);
    const room = new EmbeddedSfuRoom(this, roomId, this.#log?.child({ roomId }));
    this.#rooms.set(roomId, room);
    try {
      await this.#rpc.request('createRoom', { roomId });
    } catch (err) {
      this.#rooms.delete(roomId);
      throw err;
    }
    room.once('closed', () => this.#rooms.delete(roomId));
    return room;
  }

  /** The SFU thread's load: peers, CPU, event-loop delay, joins waiting. */
  workerStats(): Promise<EmbeddedWorkerStats> {
    return this.#rpc.request('workerStats', {});
  }

  /** A V8 CPU profile of the SFU's thread over the next `ms` (for benchmarks; the thread keeps serving). */
  cpuProfile(ms: number): Promise<object> {
    return this.#rpc.request('cpuProfile', { ms });
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      for (const room of [...this.#rooms.values()]) room.parentClosed();
      this.#rooms.clear();
      try {
        if (!this.#rpc.ended) await this.#rpc.request('shutdown', {});
      } catch (err) {
        this.#log?.warn({ err }, 'embedded SFU: shutdown request failed');
      } finally {
        await this.#rpc.terminate();
        this.emit('closed');
      }
    })();
    return this.#closing;
  }

  #onWorkerEvent(name: string, data: unknown): void {
    if (name === 'transportconnected' || name === 'transportclosed') {
      const { transportId, reason } = data as { transportId: string; reason?: MemberLeftReason };
      for (const room of this.#rooms.values()) if (room.onTransportEvent(name, transportId, reason)) return;
    } else if (name === 'log') {
      const { level, ...rest } = data as { level: 'warn' | 'info'; msg: string };
      this.#log?.[level](rest, rest.msg);
    }
  }

  #onWorkerDied(rpc: WorkerRpc, error: Error): void {
    if (this.#closed || rpc !== this.#rpc) return;
    const roomIds = [...this.#rooms.keys()];
    this.#log?.error({ err: error, roomIds }, 'embedded SFU thread died; its rooms are closed and a new thread started');
    for (const room of this.#rooms.values()) room.parentClosed();
    this.#rooms.clear();
    // Like a mediasoup worker: the owner recreates its rooms on the new thread.
    this.#rpc = this.#spawn();
    this.#rpc.request('warmUp', {}).catch((err: unknown) => this.#log?.warn({ err }, 'embedded SFU: warm-up of the new thread failed'));
    this.emit('workerdied', { workerId: `thread-${rpc.threadId}`, error, roomIds });
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError('the SFU is closed');
  }
}

interface Member {
  transportId: string;
  state: 'connecting' | 'connected';
}

class EmbeddedSfuRoom extends EventEmitter<SfuRoomEvents> implements SfuRoom {
  readonly roomId: string;
  readonly #sfu: EmbeddedSfu;
  readonly #log: Logger | undefined;
  readonly #members = new Map<string, Member>();
  #producer: EmbeddedMixProducer | null = null;
  #visuals: EmbeddedMixProducer | null = null;
  #closed = false;

  constructor(sfu: EmbeddedSfu, roomId: string, log: Logger | undefined) {
    super();
    this.#sfu = sfu;
    this.roomId = roomId;
    this.#log = log;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get memberCount(): number {
    return this.#members.size;
  }

  async produceMix(options: MixProducerOptions = {}): Promise<MixProducer> {
    this.#assertOpen();
    if (this.#producer && !this.#producer.closed) throw new InvalidStateError(`room ${this.roomId} already produces its mix`);
    const producerId = randomUUID();
    const { port1, port2 } = new MessageChannel();
    const producer = new EmbeddedMixProducer(this, producerId, options, port1, 'audio');
    this.#producer = producer;
    try {
      await this.#sfu.rpc.request('produce', { roomId: this.roomId, producerId, port: port2 }, [port2]);
    } catch (err) {
      this.#producer = null;
      port1.close();
      throw err;
    }
    return producer;
  }

  async produceVisuals(options: MixProducerOptions = {}): Promise<VisualsProducer> {
    this.#assertOpen();
    if (this.#visuals && !this.#visuals.closed) throw new InvalidStateError(`room ${this.roomId} already produces its visuals`);
    const producerId = randomUUID();
    const { port1, port2 } = new MessageChannel();
    const producer = new EmbeddedMixProducer(this, producerId, { payloadType: VP8_PAYLOAD_TYPE, ...options }, port1, 'video');
    this.#visuals = producer;
    try {
      await this.#sfu.rpc.request('produceVideo', { roomId: this.roomId, producerId, port: port2 }, [port2]);
    } catch (err) {
      this.#visuals = null;
      port1.close();
      throw err;
    }
    return producer as VisualsProducer;
  }

  async signal(memberId: string, message: unknown): Promise<ServerSignal> {
    this.#assertOpen();
    const msg = parseSignal(embeddedClientSignalSchema, message);
    switch (msg.type) {
      case 'join': {
        if (this.#members.has(memberId)) this.#drop(memberId, 'left', true);
        const transportId = randomUUID();
        this.#members.set(memberId, { transportId, state: 'connecting' });
        const video = msg.video === true && this.#visuals !== null && !this.#visuals.closed;
        try {
          const { sdp } = await this.#sfu.rpc.request<{ sdp: string }>('createTransport', { roomId: this.roomId, memberId, transportId, video });
          if (this.#members.get(memberId)?.transportId !== transportId) throw new SignalError('out-of-order', 'the join was replaced or left while it was being set up');
          return { type: 'offer', adapter: 'embedded', transportId, sdp, video, ...(msg.video && !video ? { videoRefused: NO_VISUALS_PRODUCER } : {}) };
        } catch (err) {
          if (this.#members.get(memberId)?.transportId === transportId) this.#members.delete(memberId);
          throw err;
        }
      }
      case 'answer': {
        const member = this.#members.get(memberId);
        if (!member) throw new SignalError('unknown-member', `member ${memberId} has not joined room ${this.roomId}`);
        // A member can answer only its own transport: transport ids of other members or rooms are refused here.
        if (member.transportId !== msg.transportId) throw new SignalError('wrong-transport', 'that transport is not this member’s');
        await this.#sfu.rpc.request('answer', { transportId: msg.transportId, sdp: msg.sdp });
        return { type: 'answered', transportId: msg.transportId };
      }
      case 'leave':
        this.leave(memberId);
        return { type: 'left' };
    }
  }

  leave(memberId: string): void {
    if (this.#closed) return;
    this.#drop(memberId, 'left', true);
  }

  async stats(): Promise<SfuRoomStats> {
    this.#assertOpen();
    return this.#sfu.rpc.request('roomStats', { roomId: this.roomId });
  }

  close(): void {
    if (this.#closed) return;
    this.#closeLocal();
    if (!this.#sfu.rpc.ended) {
      this.#sfu.rpc.request('closeRoom', { roomId: this.roomId }).catch((err: unknown) => this.#log?.warn({ err }, 'closing the room in the SFU thread failed'));
    }
    this.emit('closed');
  }

  /** @internal The SFU closed (or its thread died): the thread needs no message. */
  parentClosed(): void {
    if (this.#closed) return;
    this.#closeLocal();
    this.emit('closed');
  }

  /** @internal Returns whether the transport was this room's. */
  onTransportEvent(name: string, transportId: string, reason: MemberLeftReason | undefined): boolean {
    for (const [memberId, member] of this.#members) {
      if (member.transportId !== transportId) continue;
      if (name === 'transportconnected') {
        member.state = 'connected';
        this.emit('memberconnected', memberId);
      } else {
        this.#drop(memberId, reason ?? 'disconnected', false);
      }
      return true;
    }
    return false;
  }

  /** @internal */
  producerClosed(producer: EmbeddedMixProducer): void {
    if (this.#producer === producer) this.#producer = null;
    if (this.#visuals === producer) this.#visuals = null;
    if (!this.#closed && !this.#sfu.rpc.ended) {
      this.#sfu.rpc.request(producer.kind === 'video' ? 'closeVideoProducer' : 'closeProducer', { roomId: this.roomId, producerId: producer.id }).catch((err: unknown) => this.#log?.warn({ err }, 'closing the producer failed'));
    }
  }

  #drop(memberId: string, reason: MemberLeftReason, tellThread: boolean): void {
    const member = this.#members.get(memberId);
    if (!member) return;
    this.#members.delete(memberId);
    if (tellThread && !this.#sfu.rpc.ended) {
      this.#sfu.rpc.request('closeTransport', { transportId: member.transportId }).catch((err: unknown) => this.#log?.warn({ err }, 'closing a transport failed'));
    }
    this.emit('memberleft', memberId, reason);
  }

  #closeLocal(): void {
    this.#closed = true;
    this.#producer?.parentClosed();
    this.#producer = null;
    this.#visuals?.parentClosed();
    this.#visuals = null;
    for (const memberId of [...this.#members.keys()]) {
      this.#members.delete(memberId);
      this.emit('memberleft', memberId, 'room-closed');
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new InvalidStateError(`room ${this.roomId} is closed`);
  }
}

class EmbeddedMixProducer extends EventEmitter<MixProducerEvents> implements MixProducer {
  readonly kind: 'audio' | 'video';
  readonly id: string;
  readonly ssrc: number;
  readonly payloadType: number;
  readonly rtpSink: RtpSink;
  readonly #room: EmbeddedSfuRoom;
  #closed = false;

  constructor(room: EmbeddedSfuRoom, id: string, options: MixProducerOptions, port: import('node:worker_threads').MessagePort, kind: 'audio' | 'video') {
    super();
    this.kind = kind;
    this.#room = room;
    this.id = id;
    this.ssrc = options.ssrc ?? randomSsrc();
    this.payloadType = options.payloadType ?? OPUS_PAYLOAD_TYPE;
    this.rtpSink = { kind: 'port', port };
  }

  get closed(): boolean {
    return this.#closed;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
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
