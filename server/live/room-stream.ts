// One room's live stream: while anyone listens, the room's mixer runs in a
// worker thread (LiveOutput with the mixer source), its Opus/RTP goes into the
// room's SFU producer, and every member who joined gets it from the SFU.
//
// The stream starts with the first join and stops IDLE_STOP_MS after the last
// listener left (a reload does not restart the mixer), or when the room closes.
// A room with nobody listening does not mix. The mixer follows the room's
// checked document only: every applied update posts the new mix and
// arrangement to the worker, at most once per turn of the event loop.
import { EventEmitter } from 'node:events';
import { fileURLToPath } from 'node:url';
import { LiveOutput } from '../../media/live/live-output.ts';
import type { MixerSourceInit, MixerSourceStateMessage } from '../../media/live/mixer-source.ts';
import { SignalError, embeddedClientSignalSchema, mediasoupClientSignalSchema, parseSignal, type MixProducer, type ServerSignal, type Sfu, type SfuRoom } from '../../media/sfu/sfu.ts';
import type { Logger } from '../logger.ts';
import type { Room } from '../rooms/room.ts';
import { STEM_SAMPLE_RATE, type StemCache } from './stem-cache.ts';

const MIXER_SOURCE_MODULE = fileURLToPath(new URL('../../media/live/mixer-source.ts', import.meta.url));

export const DEFAULT_IDLE_STOP_MS = 10_000;

export type RoomStreamEndReason = 'room-closed' | 'failed' | 'idle' | 'sfu-lost' | 'shutdown';

export type RoomStreamEvents = {
  /** The stream stopped; members who were listening must join again to hear it (unless the room closed). */
  ended: [reason: RoomStreamEndReason];
  listeners: [count: number];
};

export interface RoomStreamOptions {
  room: Room;
  sfu: Sfu;
  stems: StemCache;
  log: Logger;
  idleStopMs?: number;
}

interface Running {
  sfuRoom: SfuRoom;
  producer: MixProducer;
  output: LiveOutput;
  /** Whose stems it holds in the cache. */
  releaseId: string;
}

export class RoomStream extends EventEmitter<RoomStreamEvents> {
  readonly room: Room;
  readonly #opts: RoomStreamOptions;
  readonly #log: Logger;
  readonly #idleStopMs: number;
  #starting: Promise<Running> | null = null;
  #running: Running | null = null;
  /** Bumped by every stop: a start that finishes under an older generation is torn down. */
  #generation = 0;
  #idleTimer: NodeJS.Timeout | null = null;
  #statePosted = false;
  #closed = false;
  readonly #disposers: (() => void)[] = [];

  constructor(opts: RoomStreamOptions) {
    super();
    this.room = opts.room;
    this.#opts = opts;
    this.#log = opts.log.child({ roomId: opts.room.id, component: 'room-stream' });
    this.#idleStopMs = opts.idleStopMs ?? DEFAULT_IDLE_STOP_MS;
    const onUpdate = () => this.#scheduleState();
    opts.room.on('update', onUpdate);
    this.#disposers.push(() => opts.room.off('update', onUpdate));
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether the mixer is running now. */
  get live(): boolean {
    return this.#running !== null;
  }

  /** Members with a transport on the SFU (connected or connecting). */
  get listening(): number {
    return this.#running && !this.#running.sfuRoom.closed ? this.#running.sfuRoom.memberCount : 0;
  }

  /** One signaling message from a member (its socket session); starts the stream on a join. */
  async signal(memberId: string, message: unknown): Promise<ServerSignal> {
    if (this.#closed) throw new StreamUnavailableError('the room is closing');
    // Only a join starts the mixer; anything else for a stream not running is out of order.
    if (!this.#running) {
      // Checked against the SFU's own schema first, so a malformed message is named as such.
      const { type } = this.#opts.sfu.kind === 'mediasoup' ? parseSignal(mediasoupClientSignalSchema, message) : parseSignal(embeddedClientSignalSchema, message);
      if (type !== 'join') throw new SignalError('out-of-order', 'the live stream is not running; join it first');
    }
    const running = this.#running ?? (await this.#start());
    this.#cancelIdleStop();
    const reply = await running.sfuRoom.signal(memberId, message);
    this.#checkIdle();
    return reply;
  }

  /** The member's socket went away. */
  leave(memberId: string): void {
    this.#running?.sfuRoom.leave(memberId);
  }

  async stats(): Promise<{ live: boolean; listeners: number; output: Awaited<ReturnType<LiveOutput['stats']>> | null }> {
    const running = this.#running;
    return { live: running !== null, listeners: this.listening, output: running && !running.output.closed ? await running.output.stats() : null };
  }

  /** Stops everything; the stream cannot start again. */
  async close(reason: RoomStreamEndReason = 'room-closed'): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const d of this.#disposers.splice(0)) d();
    await this.#stop(reason);
  }

  #start(): Promise<Running> {
    if (!this.#starting) {
      const generation = this.#generation;
      this.#starting = this.#startOnce().then(
        async (running) => {
          // Stopped (or closed) while it started: this one is nobody's.
          if (generation !== this.#generation || this.#closed) {
            await this.#teardown(running);
            throw new StreamUnavailableError('the stream was stopped while it started; join again');
          }
          this.#running = running;
          return running;
        },
        (err: unknown) => {
          if (generation === this.#generation) this.#starting = null;
          if (err instanceof StreamUnavailableError) throw err;
          this.#log.error({ err }, 'the live stream could not start');
          throw new StreamUnavailableError('the live stream could not start; try again');
        },
      );
    }
    return this.#starting;
  }

  async #startOnce(): Promise<Running> {
    const { room, sfu, stems: cache } = this.#opts;
    const release = room.release;
    const started = performance.now();
    // The stems load while the SFU room and its producer are made.
    const stemsLoading = cache.acquire(release.id, release.stems.map((s) => s.id));
    let stemsMs = 0;
    const stemsTimed = stemsLoading.then((stems) => {
      stemsMs = performance.now() - started;
      return stems;
    });
    stemsTimed.catch(() => {});
    let sfuRoom: SfuRoom | null = null;
    let producer: MixProducer | null = null;
    try {
      if (this.#closed) throw new StreamUnavailableError('the room closed');
      sfuRoom = await sfu.createRoom(room.id);
      producer = await sfuRoom.produceMix();
      const stems = await stemsTimed;
      const state = room.state();
      const init: MixerSourceInit = {
        sampleRate: STEM_SAMPLE_RATE,
        stems,
        release: { bpm: release.bpm, excerpts: release.excerpts },
        room: { mix: state.mix, arrangement: state.arrangement },
      };
      const outputStarted = performance.now();
      const output = await LiveOutput.create({
        source: { kind: 'module', module: MIXER_SOURCE_MODULE, init },
        sink: producer.rtpSink,
        ssrc: producer.ssrc,
        payloadType: producer.payloadType,
        log: this.#log,
      });
      if (this.#closed) {
        await output.close();
        throw new StreamUnavailableError('the room closed');
      }
      const running: Running = { sfuRoom, producer, output, releaseId: release.id };
      output.on('error', (err) => {
        this.#log.error({ err }, 'the live output failed; stopping the stream');
        void this.#stop('failed');
      });
      sfuRoom.on('memberleft', () => {
        this.emit('listeners', this.listening);
        this.#checkIdle();
      });
      sfuRoom.on('memberconnected', () => this.emit('listeners', this.listening));
      sfuRoom.once('closed', () => {
        // The SFU closed the room under us (its worker died): members must join again.
        if (this.#running === running) void this.#stop('sfu-lost');
      });
      const now = performance.now();
      this.#log.info({ ms: Math.round(now - started), stemsMs: Math.round(stemsMs), mixerStartMs: Math.round(now - outputStarted), adapter: sfu.kind }, 'live stream started');
      return running;
    } catch (err) {
      producer?.close();
      sfuRoom?.close();
      // Whether the stems loaded or not, this start's hold on them ends.
      await stemsLoading.catch(() => {});
      cache.release(release.id);
      throw err;
    }
  }

  #scheduleState(): void {
    if (this.#statePosted || !this.#running) return;
    this.#statePosted = true;
    // One post per turn: a transaction with follow-ups (the server's stamps) posts the final state once.
    queueMicrotask(() => {
      this.#statePosted = false;
      const running = this.#running;
      if (!running || running.output.closed || this.room.closed) return;
      const state = this.room.state();
      const message: MixerSourceStateMessage = { type: 'room-state', room: { mix: state.mix, arrangement: state.arrangement } };
      running.output.control(message);
    });
  }

  #checkIdle(): void {
    if (!this.#running || this.#closed || this.listening > 0 || this.#idleTimer) return;
    this.#idleTimer = setTimeout(() => {
      this.#idleTimer = null;
      if (this.listening === 0) void this.#stop('idle');
    }, this.#idleStopMs);
  }

  #cancelIdleStop(): void {
    if (this.#idleTimer) clearTimeout(this.#idleTimer);
    this.#idleTimer = null;
  }

  async #stop(reason: RoomStreamEndReason): Promise<void> {
    this.#cancelIdleStop();
    // A start in progress sees the new generation and tears itself down.
    this.#generation++;
    this.#starting = null;
    const running = this.#running;
    this.#running = null;
    if (!running) return;
    const hadListeners = !running.sfuRoom.closed && running.sfuRoom.memberCount > 0;
    await this.#teardown(running);
    this.#log.info({ reason }, 'live stream stopped');
    if (hadListeners || reason !== 'idle') this.emit('ended', reason);
  }

  async #teardown(running: Running): Promise<void> {
    await running.output.close().catch((err: unknown) => this.#log.warn({ err }, 'closing the live output'));
    running.producer.close();
    running.sfuRoom.close();
    this.#opts.stems.release(running.releaseId);
  }
}

/** The stream cannot serve the request now (it failed to start, the room is closing). */
export class StreamUnavailableError extends Error {
  override readonly name = 'StreamUnavailableError';
}
