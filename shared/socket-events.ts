// The room's socket.io channel (default path /socket.io): presence, chat,
// reactions, prompts, notices and render progress. Server and client are typed
// with these maps; every inbound payload is parsed with its schema at the handler.
import { z } from 'zod';
import type { Refusal } from './refusals.ts';
import type { Role } from './roles.ts';
import type { GeneratedVisual } from './room-doc.ts';

/** The handshake: `io(origin, { auth: { roomId, token } })`. */
export const HandshakeAuth = z.object({ roomId: z.string().min(1).max(64), token: z.string().min(1).max(2048) }).strict();

export const REACTIONS = ['🔥', '❤️', '👏', '😂', '😮', '🎉', '🙌', '💃', '🕺', '🤘', '✨', '🌊'] as const;

export const ChatSend = z.object({ text: z.string().max(10_000) }).strict();
export const ReactionSend = z.object({ emoji: z.enum(REACTIONS) }).strict();
export const PromptSubmit = z.object({ text: z.string().max(10_000) }).strict();
export const PromptDecide = z.object({ promptId: z.string().min(1).max(64), approve: z.boolean() }).strict();
/** A fresh token of the same member (from POST /api/rooms/:roomId/members/me/token): the session goes on past the old one's expiry. */
export const SessionRenew = z.object({ token: z.string().min(1).max(2048) }).strict();
/**
 * One message of the live stream's signaling (media/sfu/sfu.ts has the exact
 * schemas of each SFU's messages; they are checked there). Here: an object with
 * a string `type`, and not more than a browser's SDP needs.
 */
export const StageRequestPayload = z.object({}).strict();
export const StreamSignal = z.object({ type: z.string().min(1).max(32) }).passthrough();
/** What the server answers to a signaling message (an offer, a transport, a consumer…; see media/sfu/sfu.ts). */
export type StreamSignalReply = { type: string } & Record<string, unknown>;

export interface StreamEnded {
  /**
   * 'idle', 'failed', 'sfu-lost', 'room-closed' (the room ended), 'shutdown' (the room or the
   * server stops here and comes back: join again once the socket has reconnected).
   */
  reason: string;
  /** Whether joining again makes sense now. */
  rejoin: boolean;
}

export interface PresenceMember {
  userId: string;
  name: string;
  role: Role;
  /** The member who opened the room (nobody can demote or remove them). */
  creator?: boolean;
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

/** How many of a room's newest chat messages it keeps (in the store) and sends to whoever (re)joins. */
export const CHAT_HISTORY_KEEP = 200;

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
  /** The visual model that drew part of the picture, with its training record. */
  generated?: GeneratedVisual;
}

/**
 * What a notice is about. Two of them say that the disconnect that follows is not the end,
 * and the client connects again by itself (with backoff, for as long as it takes):
 * `room_closing`: the room closes on this server (saving on its way out) and loads again when asked;
 * `server_restarting`: the server process is going away (a restart, a deploy, a move to another node).
 * A real end never comes as a notice: `room:ended` or `session:ended` says it.
 */
export type NoticeCode = 'role_changed' | 'video_stopped' | 'room_unavailable' | 'room_closing' | 'server_restarting';

export interface Notice {
  level: 'info' | 'warn';
  code: NoticeCode;
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
  /** A listener of a broadcast asks the hosts to bring them onto the stage (a host accepts by making them a remixer). */
  'stage:request': (payload: Record<string, never>, ack: Ack) => void;
  /** A fresh token (same member): the session stays open past the old token's expiry. */
  'session:renew': (payload: z.input<typeof SessionRenew>, ack: Ack<{ expiresAtMs: number }>) => void;
}

/**
 * Why the server ended a member's session; the connection is closed right after.
 * `token_expired`: refresh the token (POST /api/rooms/:roomId/members/me/token) and connect again.
 * `removed`: a host removed the member; do not come back.
 */
export interface SessionEnded {
  reason: 'token_expired' | 'removed';
  message: string;
}

/**
 * What a refused connection says in its error's `data` (socket.io's connect_error): the
 * token's problem, a limit (with when to try again), or the member's standing in the room.
 */
export interface ConnectRefusal {
  code: 'unauthorized' | 'forbidden' | 'not_found' | 'rate_limited';
  reason?: string;
  limit?: string;
  retryAfterMs?: number;
}

export interface ServerToClientEvents {
  /** Who is here; sent on joining and whenever it changes. */
  presence: (presence: Presence) => void;
  'chat:message': (message: ChatMessage) => void;
  /** On (re)joining: the room's kept chat, oldest first (at most CHAT_HISTORY_KEEP messages). */
  'chat:history': (messages: ChatMessage[]) => void;
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
  /** The server ends this session (token expired, member removed); the socket is disconnected next. */
  'session:ended': (info: SessionEnded) => void;
  /** To hosts: a listener asks to join the stage. */
  'stage:requested': (request: StageRequest) => void;
}

export interface StageRequest {
  userId: string;
  name: string;
  atMs: number;
}

export type InterServerEvents = Record<string, never>;

export interface SocketData {
  roomId: string;
  userId: string;
  name: string;
  /** The member's role when it connected, from the store (never from the token). */
  baseRole: Role;
  sessionId: string;
  /** Where it connects from, as the limits key it. */
  address: string;
  /** When its token expires (ms since the epoch); a fresh one sent with `session:renew` moves it on. */
  expiresAtMs: number;
}
