// The room's socket.io channel (default path /socket.io): presence, chat,
// reactions, prompts, notices and render progress. Server and client are typed
// with these maps; every inbound payload is parsed with its schema at the handler.
import { z } from 'zod';
import type { Refusal } from './refusals.ts';
import type { Role } from './roles.ts';

/** The handshake: `io(origin, { auth: { roomId, token } })`. */
export const HandshakeAuth = z.object({ roomId: z.string().min(1).max(64), token: z.string().min(1).max(2048) }).strict();

export const REACTIONS = ['🔥', '❤️', '👏', '😂', '😮', '🎉', '🙌', '💃', '🕺', '🤘', '✨', '🌊'] as const;

export const ChatSend = z.object({ text: z.string().max(10_000) }).strict();
export const ReactionSend = z.object({ emoji: z.enum(REACTIONS) }).strict();
export const PromptSubmit = z.object({ text: z.string().max(10_000) }).strict();
export const PromptDecide = z.object({ promptId: z.string().min(1).max(64), approve: z.boolean() }).strict();
/**
 * One message of the live stream's signaling (media/sfu/sfu.ts has the exact
 * schemas of each SFU's messages; they are checked there). Here: an object with
 * a string `type`, and not more than a browser's SDP needs.
 */
export const StreamSignal = z.object({ type: z.string().min(1).max(32) }).passthrough();
/** What the server answers to a signaling message (an offer, a transport, a consumer…; see media/sfu/sfu.ts). */
export type StreamSignalReply = { type: string } & Record<string, unknown>;

export interface StreamEnded {
  /** 'idle', 'failed', 'sfu-lost', 'shutdown', 'room-closed'. */
  reason: string;
  /** Whether joining again makes sense now. */
  rejoin: boolean;
}

export interface PresenceMember {
  userId: string;
  name: string;
  role: Role;
}

export interface Presence {
  /** Everyone connected, counting each person once. */
  count: number;
  /** Hosts and remixers first; at most PRESENCE_LIST_LIMIT people. */
  members: PresenceMember[];
}
export const PRESENCE_LIST_LIMIT = 100;

export interface ChatMessage {
  id: string;
  userId: string;
  name: string;
  role: Role;
  text: string;
  atMs: number;
}

export interface Reaction {
  userId: string;
  name: string;
  emoji: (typeof REACTIONS)[number];
  atMs: number;
}

export interface PendingPrompt {
  promptId: string;
  text: string;
  userId: string;
  name: string;
  atMs: number;
}

export interface AppliedPrompt {
  promptId: string;
  text: string;
  userId: string;
  name: string;
  /** What the prompt did, for everyone to read: "'stormy' → darker palette, faster ripple". */
  summary: string;
  effects: string[];
}

export interface Notice {
  level: 'info' | 'warn';
  code: string;
  message: string;
}

export interface RenderProgress {
  clipId: string;
  /** What is rendered: a clip, a bought full-length version, a loop of the visuals, or a still. */
  kind: 'clip' | 'full' | 'loop' | 'still';
  status: 'queued' | 'running' | 'done' | 'failed';
  /** 0..1 */
  progress: number;
  message?: string;
}

/** Every acknowledgement: done, or refused with a reason a person can read. */
export type Ack<T = Record<string, never>> = (result: ({ ok: true } & T) | { ok: false; refusal: Refusal }) => void;

export interface ClientToServerEvents {
  'chat:send': (payload: z.input<typeof ChatSend>, ack: Ack<{ message: ChatMessage }>) => void;
  'reaction:send': (payload: z.input<typeof ReactionSend>, ack: Ack) => void;
  'prompt:submit': (payload: z.input<typeof PromptSubmit>, ack: Ack<{ status: 'applied' | 'queued'; promptId: string }>) => void;
  /** Host only: let a queued prompt through, or drop it. */
  'prompt:decide': (payload: z.input<typeof PromptDecide>, ack: Ack) => void;
  /**
   * The live mix: `{ type: 'join' }` starts listening; the answer says which SFU
   * (`adapter`) and carries its offer or transport; the next steps follow that
   * SFU's exchange. `{ type: 'leave' }` stops. Anyone in the room may listen.
   */
  'stream:signal': (payload: z.input<typeof StreamSignal>, ack: Ack<{ signal: StreamSignalReply }>) => void;
}

export interface ServerToClientEvents {
  /** Who is here; sent on joining and whenever it changes. */
  presence: (presence: Presence) => void;
  'chat:message': (message: ChatMessage) => void;
  reaction: (reaction: Reaction) => void;
  /** The active prompt changed (its interpretation is in the room document's `visual` map). */
  'prompt:applied': (prompt: AppliedPrompt) => void;
  /** To hosts: the prompts waiting for approval. */
  'prompt:queue': (queue: PendingPrompt[]) => void;
  /** A change of yours to the room document was refused, and why (the document has been set back). */
  'room:refused': (refusal: Refusal) => void;
  'room:notice': (notice: Notice) => void;
  'render:progress': (progress: RenderProgress) => void;
  /** The host ended the room. */
  'room:ended': () => void;
  /** The room's live stream stopped under its listeners (its SFU worker died, its mixer failed). */
  'stream:ended': (info: StreamEnded) => void;
}

export type InterServerEvents = Record<string, never>;

export interface SocketData {
  roomId: string;
  userId: string;
  name: string;
  tokenRole: Role;
  sessionId: string;
}
