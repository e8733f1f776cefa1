// The SFU adapter: what the rest of the server sees of the machinery that takes
// a room's mix (RTP in) and delivers it to each member's browser (WebRTC out).
// Two implementations: mediasoup (production; needs its C++ worker binary) and
// an embedded werift one (npm only). Both run the same contract suite.
//
// Signaling is plain JSON, client-driven and request/response: the browser sends
// a ClientSignal (over the room's socket.io channel), the room answers with one
// ServerSignal. Every inbound message is parsed with its schema here.
import type { EventEmitter } from 'node:events';
import type { z } from 'zod';
import type { RtpSink } from '../live/rtp-sink.ts';
import type { ServerSignal } from '../../shared/sfu-signals.ts';

export type SfuKind = 'embedded' | 'mediasoup';

export type SfuEvents = {
  /**
   * A worker behind the SFU died (mediasoup worker process, embedded SFU thread).
   * Its rooms have been closed; the owner recreates them (and their producers) elsewhere.
   */
  workerdied: [info: { workerId: string; error: Error; roomIds: string[] }];
  closed: [];
};

export interface Sfu extends EventEmitter<SfuEvents> {
  readonly kind: SfuKind;
  readonly closed: boolean;
  /** One room = one router-like object; the room's mix and its members' transports live in it. */
  createRoom(roomId: string): Promise<SfuRoom>;
  /** Closes every room, then the workers; idempotent. */
  close(): Promise<void>;
}

export type MemberLeftReason =
  /** The member or the server asked (leave(), a new join replacing the old transport). */
  | 'left'
  /** The transport never connected in time: a half-open join. */
  | 'connect-timeout'
  /** The connection was lost (ICE/DTLS failed or closed, nothing heard from the member). */
  | 'disconnected'
  /** The room closed. */
  | 'room-closed';

export type SfuRoomEvents = {
  memberconnected: [memberId: string];
  memberleft: [memberId: string, reason: MemberLeftReason];
  closed: [];
};

export interface SfuRoom extends EventEmitter<SfuRoomEvents> {
  readonly roomId: string;
  readonly closed: boolean;
  /** Members with a transport, connected or still connecting. */
  readonly memberCount: number;
  /**
   * Creates the producer of the room's mix. Its `rtpSink` goes to the live
   * output (LiveOutput.create({ sink })); packets must carry `ssrc` and `payloadType`.
   */
  produceMix(options?: MixProducerOptions): Promise<MixProducer>;
  /**
   * Creates the producer of the room's visuals as VP8 video (one per room; the
   * visual output's encoder feeds its `rtpSink`). Members who join with
   * `{ type: 'join', video: true }` while it exists also get the video track.
   * Keyframe requests from the members (PLI/FIR) come back through the sink: a
   * `{ type: 'keyframe' }` message on a port sink, RTCP PLI/FIR on a UDP one.
   */
  produceVisuals(options?: MixProducerOptions): Promise<VisualsProducer>;
  /**
   * Handles one signaling message from a member of this room (a member can only
   * ever receive this room's mix: nothing in the messages names another room or
   * producer). Throws SignalError on a malformed or out-of-order message.
   */
  signal(memberId: string, message: unknown): Promise<ServerSignal>;
  /** Closes the member's transport (idempotent). */
  leave(memberId: string): void;
  stats(): Promise<SfuRoomStats>;
  close(): void;
}

export interface MixProducerOptions {
  /** Default: random. */
  ssrc?: number;
  /** Default: 111. */
  payloadType?: number;
}

export type MixProducerEvents = { closed: [] };

export interface MixProducer extends EventEmitter<MixProducerEvents> {
  readonly id: string;
  readonly ssrc: number;
  readonly payloadType: number;
  /** Where the live output sends RTP. A MessagePort in it can be transferred once. */
  readonly rtpSink: RtpSink;
  readonly closed: boolean;
  close(): void;
}

/** The room's visuals as VP8; packets carry its `ssrc` and `payloadType`, on a 90 kHz clock. */
export interface VisualsProducer extends MixProducer {
  readonly kind: 'video';
}

export interface SfuMemberStats {
  memberId: string;
  state: 'connecting' | 'connected';
  packetsSent: number;
}

export interface SfuRoomStats {
  roomId: string;
  members: SfuMemberStats[];
  /** RTP packets of the mix that reached the SFU. */
  packetsIn: number;
  /** Packets the SFU dropped because they reached it too late to be worth sending (embedded adapter). */
  packetsDroppedLate: number;
  /** How late the forwarder handled packets against the time they were sent (ms; embedded adapter). */
  forwardDelayMs?: { p50: number; p99: number; max: number };
  /** Joins waiting for a handshake slot (embedded adapter). */
  joinsQueued?: number;
  /** RTP packets of the visuals that reached the SFU (0 while the room publishes no video). */
  videoPacketsIn?: number;
  /** Members receiving the video track. */
  videoMembers?: number;
}

// ---- Opus as both adapters offer it ----------------------------------------

export const OPUS_MIME_TYPE = 'audio/opus';
export const OPUS_CLOCK_RATE = 48_000;
export const OPUS_CHANNELS = 2;
/**
 * The Opus format parameters the SFU offers. `stereo=1; sprop-stereo=1` must be
 * said by the server: Chromium's own answer drops `stereo=1` and then decodes
 * to mono (measured here), so the browser side also writes it into its answer.
 */
export const OPUS_FMTP = 'minptime=10;useinbandfec=1;stereo=1;sprop-stereo=1';

// ---- VP8 as both adapters offer it ------------------------------------------

export const VP8_MIME_TYPE = 'video/VP8';
export const VP8_CLOCK_RATE = 90_000;
export const VP8_PAYLOAD_TYPE = 96;

/** Why a join that asked for video got audio only, when the adapter itself refused it. */
export const NO_VISUALS_PRODUCER = 'the room does not publish its visuals as video';

// ---- Signaling (shared/sfu-signals.ts: the browser side uses the same types) ----

export {
  embeddedClientSignalSchema,
  mediasoupClientSignalSchema,
  type EmbeddedClientSignal,
  type EmbeddedServerSignal,
  type MediasoupClientSignal,
  type MediasoupServerSignal,
  type ServerSignal,
} from '../../shared/sfu-signals.ts';

// ---- Errors -------------------------------------------------------------------

export class InvalidStateError extends Error {
  override readonly name = 'InvalidStateError';
}

/** A signaling message refused: malformed, for an unknown member or transport, or out of order. */
export class SignalError extends Error {
  override readonly name = 'SignalError';
  readonly code: 'malformed' | 'unknown-member' | 'wrong-transport' | 'out-of-order' | 'no-producer' | 'cannot-consume';
  constructor(code: SignalError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export function parseSignal<T>(schema: z.ZodType<T>, message: unknown): T {
  const parsed = schema.safeParse(message);
  if (!parsed.success) throw new SignalError('malformed', `malformed signaling message: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
  return parsed.data;
}

export function randomSsrc(): number {
  // Never 0: some stacks treat SSRC 0 as "unset".
  return (crypto.getRandomValues(new Uint32Array(1))[0]! % 0xffff_fffe) + 1;
}
