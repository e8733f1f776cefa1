// The SFU signaling messages on the wire: what a member's browser sends (checked
// with these schemas on the server) and what the server answers. Shared: the
// browser side (client/src/live/) imports the types, the server the schemas.
import { z } from 'zod';

const id = z.string().min(1).max(128);
// A full SDP is a few kB; anything larger is not from a browser.
const sdp = z.string().min(1).max(64 * 1024);

/** Embedded adapter: the server offers (with stereo Opus), the browser answers. */
// `video: true` asks for the room's visuals as a video track too (opt-in: a
// member that draws the visuals itself does not need the bytes).
const join = z.object({ type: z.literal('join'), video: z.boolean().optional() }).strict();

export const embeddedClientSignalSchema = z.discriminatedUnion('type', [
  join,
  z.object({ type: z.literal('answer'), transportId: id, sdp }).strict(),
  z.object({ type: z.literal('leave') }).strict(),
]);
export type EmbeddedClientSignal = z.infer<typeof embeddedClientSignalSchema>;

export type EmbeddedServerSignal =
  | {
      type: 'offer';
      adapter: 'embedded';
      transportId: string;
      sdp: string;
      /** Whether the offer carries the video track (a second m-line). */
      video: boolean;
      /** Present when the join asked for video and gets audio only: why. */
      videoRefused?: string;
    }
  | { type: 'answered'; transportId: string }
  | { type: 'left' };

const dtlsParameters = z
  .object({
    role: z.enum(['auto', 'client', 'server']).optional(),
    fingerprints: z
      .array(z.object({ algorithm: z.enum(['sha-1', 'sha-224', 'sha-256', 'sha-384', 'sha-512']), value: z.string().min(1).max(200) }).strict())
      .min(1)
      .max(8),
  })
  .strict();

/** mediasoup adapter: mediasoup-client's usual steps (transport, connect, consume, resume). */
export const mediasoupClientSignalSchema = z.discriminatedUnion('type', [
  join,
  z.object({ type: z.literal('connect'), transportId: id, dtlsParameters }).strict(),
  // RtpCapabilities are checked by mediasoup itself (router.canConsume); here only their shape and size.
  z.object({ type: z.literal('consume'), transportId: id, kind: z.enum(['audio', 'video']).optional(), rtpCapabilities: z.object({ codecs: z.array(z.unknown()).max(64).optional(), headerExtensions: z.array(z.unknown()).max(64).optional() }).passthrough() }).strict(),
  z.object({ type: z.literal('resume'), transportId: id, consumerId: id }).strict(),
  z.object({ type: z.literal('leave') }).strict(),
]);
export type MediasoupClientSignal = z.infer<typeof mediasoupClientSignalSchema>;

export type MediasoupServerSignal =
  | {
      type: 'transport';
      adapter: 'mediasoup';
      transportId: string;
      routerRtpCapabilities: unknown;
      iceParameters: unknown;
      iceCandidates: unknown;
      dtlsParameters: unknown;
      /** Whether this member may consume the video (`consume` with kind 'video'). */
      video: boolean;
      videoRefused?: string;
    }
  | { type: 'connected'; transportId: string }
  | { type: 'consumer'; transportId: string; consumerId: string; producerId: string; kind: 'audio' | 'video'; rtpParameters: unknown }
  | { type: 'resumed'; consumerId: string }
  | { type: 'left' };

export type ServerSignal = EmbeddedServerSignal | MediasoupServerSignal;
