// The room's socket.io channel. Thin handlers: parse the payload with its schema,
// find the member's room, call one method, acknowledge with the result.
import http from 'node:http';
import { Server, type ServerOptions, type Socket } from 'socket.io';
import type { z } from 'zod';
import { compileModeration, type CompiledModeration } from '../../shared/moderation.ts';
import { refusal, type Refusal } from '../../shared/refusals.ts';
import {
  ChatSend,
  HandshakeAuth,
  PRESENCE_LIST_LIMIT,
  PromptDecide,
  PromptSubmit,
  ReactionSend,
  SessionRenew,
  StageRequestPayload,
  StreamSignal,
  type Ack,
  type ChatMessage,
  type ConnectRefusal,
  type ClientToServerEvents,
  type InterServerEvents,
  type Notice,
  type PresenceMember,
  type RenderProgress,
  type ServerToClientEvents,
  type SessionEnded,
  type SocketData,
} from '../../shared/socket-events.ts';
import type { Role } from '../../shared/roles.ts';
import { TokenError, type TokenSigner } from '../auth/tokens.ts';
import type { MemberDirectory } from '../auth/members.ts';
import { limitMessage } from '../../shared/limits.ts';
import type { AddressConnections } from '../limits/address-connections.ts';
import type { Limits } from '../limits/limits.ts';
import { Deadlines } from '../util/deadlines.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { RoomEndedError, RoomNotFoundError, type RoomManager } from '../rooms/room-manager.ts';
import { flatUUID } from '../rooms/sync-server.ts';
import type { Member, Room } from '../rooms/room.ts';
import { SignalError } from '../../media/sfu/sfu.ts';
import { StreamUnavailableError } from '../live/room-stream.ts';
import type { LiveStreams } from '../live/live-streams.ts';
import type { PromptVisuals } from '../rooms/prompt-visuals.ts';
import { RoomChannel, moderationListsOf } from './room-channel.ts';
import type { ChatHistory } from './chat-history.ts';

type IoServer = Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;
type IoSocket = Socket<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>;

const PRESENCE_DEBOUNCE_MS = 100;

const ROOM_CLOSING: Notice = { level: 'info', code: 'room_closing', message: 'the room is restarting; reconnecting' };
const SERVER_RESTARTING: Notice = { level: 'info', code: 'server_restarting', message: 'the server is restarting; reconnecting' };

export interface SocketServerDeps {
  manager: RoomManager;
  signer: TokenSigner;
  members: MemberDirectory;
  limits: Limits;
  /** Shared with the sync endpoint: connections per address. */
  connections: AddressConnections;
  log: Logger;
  /** The Redis adapter in scale-out mode; the in-memory one otherwise. */
  adapter?: ServerOptions['adapter'];
  /** When given, the connections held are reported as remixroom_socket_connections. */
  metrics?: Metrics;
  /** The live streams; without them `stream:signal` is refused as unavailable. */
  live?: LiveStreams;
  /** Where rooms' chat is kept, and read back to whoever (re)joins; without it chat is only sent. */
  chatHistory?: ChatHistory;
  /** The releases' visual models steering prompts; without it prompts show the artwork alone. */
  visuals?: PromptVisuals | null;
}


const channelOf = (roomId: string) => `room:${roomId}`;
const hostsOf = (roomId: string) => `hosts:${roomId}`;
const userOf = (roomId: string, userId: string) => `user:${roomId}:${userId}`;

export class RoomSocketServer {
  readonly io: IoServer;
  readonly #deps: SocketServerDeps;
  /** One channel per loaded room, closed with it. */
  readonly #channels = new Map<string, RoomChannel>();
  readonly #presenceTimers = new Map<string, NodeJS.Timeout>();
  /**
   * Compiled moderation lists, one per distinct set of lists, shared by the loaded rooms that use
   * it (the rooms of one release): a compiled set with the default lists holds ~150 KB.
   */
  readonly #moderation = new Map<string, { compiled: CompiledModeration; rooms: number }>();
  readonly #untrack: () => void;
  readonly #offLive: () => void;
  /** Each session ends when its token expires (unless renewed): one timer for all of them. */
  readonly #expiries: Deadlines<IoSocket>;
  /** This process is shutting down: whatever is disconnected from now on is told to come back. */
  #goingAway = false;

  constructor(httpServer: http.Server, deps: SocketServerDeps) {
    this.#deps = deps;
    this.io = new Server<ClientToServerEvents, ServerToClientEvents, InterServerEvents, SocketData>(httpServer, {
      maxHttpBufferSize: 32 * 1024,
      serveClient: false,
      // The sync endpoint and the catch-all answer other upgrades; engine.io must not end them after a second.
      destroyUpgrade: false,
      ...(deps.adapter ? { adapter: deps.adapter } : {}),
      // Same origin by default; a deployment that serves the app elsewhere sets a proxy in front.
      cors: { origin: false },
    });
    const releaseHandshake = handshakeReleaser(this.io);
    this.#expiries = new Deadlines<IoSocket>((socket) => this.#expire(socket));
    this.io.use((socket, next) => {
      const auth = HandshakeAuth.safeParse(socket.handshake.auth);
      if (!auth.success) return next(connectError('the handshake needs { roomId, token }', { code: 'unauthorized' }));
      let claims;
      try {
        claims = deps.signer.verify(auth.data.token, auth.data.roomId);
      } catch (err) {
        return next(connectError(err instanceof TokenError ? err.message : 'the token was refused', { code: 'unauthorized', ...(err instanceof TokenError ? { reason: err.reason } : {}) }));
      }
      const address = deps.limits.addressOf({ headers: socket.handshake.headers, socket: { remoteAddress: socket.handshake.address } });
      if (!deps.connections.acquire(address)) {
        const retryAfterMs = 30_000;
        return next(connectError(limitMessage('connections.address', retryAfterMs), { code: 'rate_limited', limit: 'connections.address', retryAfterMs }));
      }
      const roomId = auth.data.roomId;
      // The role comes from the store, as every node sees it; never from the token.
      deps.members.standing(roomId, claims).then(
        (standing) => {
          if (!standing.ok) {
            deps.connections.release(address);
            return next(connectError(standing.message, { code: standing.status === 403 ? 'forbidden' : 'not_found', reason: standing.reason }));
          }
          // Given back when the connection closes, whatever happens after this: even when it closed
          // during the check above (socket.io then drops the socket without a 'disconnect').
          if (socket.conn.readyState !== 'open') {
            deps.connections.release(address);
            return next(connectError('the connection closed', { code: 'not_found' }));
          }
          socket.conn.once('close', () => deps.connections.release(address));
          socket.data = { roomId, userId: claims.sub, name: claims.name, baseRole: standing.role, sessionId: flatUUID(), address, expiresAtMs: claims.exp * 1000 };
          releaseHandshake(socket);
          next();
        },
        (err: unknown) => {
          deps.connections.release(address);
          deps.log.error({ err, roomId }, 'checking a socket.io member failed');
          next(connectError('the room could not be joined; try again', { code: 'not_found' }));
        },
      );
    });
    this.io.on('connection', (socket) =>
      this.#onConnection(socket).catch((err: unknown) => {
        deps.log.error({ err, roomId: socket.data.roomId }, 'socket.io connection failed');
        socket.disconnect(true);
      }),
    );
    this.#untrack = deps.metrics?.trackConnections('socket', () => this.io.of('/').sockets.size) ?? (() => {});
    // Streams are per node: their listeners are this node's sockets.
    const onStreamEnded = (roomId: string, reason: string) => {
      this.io.local.to(channelOf(roomId)).emit('stream:ended', { reason, rejoin: reason !== 'room-closed' && reason !== 'shutdown' });
    };
    // The viewers of a room's video that stopped (streams are per node: its viewers are this node's sockets).
    const onVideoStopped = (roomId: string, viewers: string[], reason: string) => {
      const ids = new Set(viewers);
      for (const socket of this.io.of('/').sockets.values()) {
        if (socket.data.roomId === roomId && ids.has(socket.data.sessionId)) socket.emit('room:notice', { level: 'warn', code: 'video_stopped', message: reason });
      }
    };
    deps.live?.on('ended', onStreamEnded);
    deps.live?.on('videoStopped', onVideoStopped);
    this.#offLive = () => {
      deps.live?.off('ended', onStreamEnded);
      deps.live?.off('videoStopped', onVideoStopped);
    };
  }

  /** A clip's progress, to everyone in its room. */
  /** `localOnly`: to this node's sockets of the room only (when every node hears the same progress). */
  renderProgress(roomId: string, progress: RenderProgress, opts: { localOnly?: boolean } = {}): void {
    (opts.localOnly ? this.io.local : this.io).to(channelOf(roomId)).emit('render:progress', progress);
  }

  /**
   * The process is going away (a restart, a deploy): tells this node's members so before their
   * rooms close, so that they connect again by themselves, with backoff, until a server is back.
   */
  goingAway(): void {
    if (this.#goingAway) return;
    this.#goingAway = true;
    this.io.local.emit('room:notice', SERVER_RESTARTING);
  }

  async close(): Promise<void> {
    this.goingAway();
    this.#untrack();
    this.#offLive();
    this.#expiries.close();
    for (const t of this.#presenceTimers.values()) clearTimeout(t);
    this.#presenceTimers.clear();
    // This node's sockets only: with the Redis adapter, io.disconnectSockets reaches every node's.
    this.io.local.disconnectSockets(true);
    await new Promise<void>((resolve) => this.io.close(() => resolve()));
  }

  async #onConnection(socket: IoSocket): Promise<void> {
    const { roomId } = socket.data;
    const member: Member = { sessionId: socket.data.sessionId, userId: socket.data.userId, name: socket.data.name, baseRole: socket.data.baseRole, address: socket.data.address };
    this.#expiries.set(socket, socket.data.expiresAtMs);
    socket.once('disconnect', () => this.#expiries.delete(socket));
    // Handlers are attached at once, so that nothing a client sends right after connecting is lost while the room loads.
    const ready = this.#deps.manager.open(roomId).then((room) => ({ room, channel: this.#channelFor(room) }));
    ready.catch(() => {});
    const handle = <T extends z.ZodType, R>(event: keyof ClientToServerEvents, schema: T, run: (c: RoomChannel, p: z.infer<T>) => R | Promise<R>) =>
      socket.on(event, (payload: unknown, ack: unknown) => {
        const p = parse(schema, payload, ack);
        if (!p) return;
        ready
          .then(async ({ channel }) => {
            // An event that was on its way when the session ended counts for nothing.
            if (!socket.connected) return reply(ack, { ok: false, refusal: refusal('not_found', 'your session has ended') });
            reply(ack, (await run(channel, p)) as Outcome);
          })
          .catch((err: unknown) => {
            if (!(err instanceof RoomEndedError || err instanceof RoomNotFoundError)) this.#deps.log.error({ err, roomId, event }, 'a socket.io event failed');
            reply(ack, { ok: false, refusal: refusal('not_found', 'the room is not available') });
          });
      });
    handle('chat:send', ChatSend, async (c, p) => mapValue(await c.chat(member, p.text), (message) => ({ message })));
    handle('reaction:send', ReactionSend, async (c, p) => mapValue(await c.react(member, p.emoji), () => ({})));
    handle('prompt:submit', PromptSubmit, (c, p) => c.submitPrompt(member, p.text));
    handle('prompt:decide', PromptDecide, async (c, p) => mapValue(await c.decidePrompt(member, p.promptId, p.approve), () => ({})));
    socket.on('stage:request', (payload: unknown, ack: unknown) => {
      if (!parse(StageRequestPayload, payload ?? {}, ack)) return;
      const ask = async () => {
        const limited = await this.#deps.limits.refusalFor(['stage.request.member'], { member: member.userId });
        if (limited) return reply(ack, { ok: false, refusal: limited });
        const { room } = await ready;
        if (!room.rules.broadcast) return reply(ack, { ok: false, refusal: refusal('out_of_order', 'the room is not broadcasting: everyone is on the stage already') });
        if (room.roleOf(member) !== 'listener') return reply(ack, { ok: false, refusal: refusal('out_of_order', 'you are on the stage already') });
        this.io.to(hostsOf(roomId)).emit('stage:requested', { userId: member.userId, name: member.name, atMs: Date.now() });
        reply(ack, { ok: true, value: {} });
      };
      ask().catch(() => reply(ack, { ok: false, refusal: refusal('not_found', 'the room is not available') }));
    });
    socket.on('session:renew', (payload: unknown, ack: unknown) => {
      const p = parse(SessionRenew, payload, ack);
      if (p) reply(ack, this.#renew(socket, p.token));
    });
    socket.on('stream:signal', (payload: unknown, ack: unknown) => {
      const p = parse(StreamSignal, payload, ack);
      if (!p) return;
      const signal = async () => {
        const limited = await this.#deps.limits.refusalFor(['signal.member'], { member: member.userId, address: member.address });
        if (limited) return reply(ack, { ok: false, refusal: limited });
        const { room } = await ready;
        const live = this.#deps.live;
        if (!live) throw new StreamUnavailableError('this server does not stream');
        // A broadcast's audience is on its HLS (encoded once for all of them); the SFU is the stage's.
        if (p.type === 'join' && room.rules.broadcast && room.roleOf(member) === 'listener') return reply(ack, { ok: false, refusal: refusal('broadcast', BROADCAST_LISTENER) });
        if (!socket.connected) throw new StreamUnavailableError('disconnected');
        const answer = await live.signal(room, member.sessionId, p);
        // A join answered after the socket went away would leave a transport nobody owns.
        if (!socket.connected) live.leave(roomId, member.sessionId);
        reply(ack, { ok: true, value: { signal: answer } });
      };
      signal().catch((err: unknown) => reply(ack, { ok: false, refusal: signalRefusal(err, this.#deps.log, roomId) }));
    });

    let room: Room;
    let channel: RoomChannel;
    try {
      ({ room, channel } = await ready);
    } catch (err) {
      const message = err instanceof RoomEndedError ? 'this room has ended' : err instanceof RoomNotFoundError ? 'no such room' : 'the room could not be opened; try again';
      if (!(err instanceof RoomEndedError || err instanceof RoomNotFoundError)) this.#deps.log.error({ err, roomId }, 'opening a room for socket.io failed');
      socket.emit('room:notice', this.#goingAway ? SERVER_RESTARTING : { level: 'warn', code: 'room_unavailable', message });
      socket.disconnect(true);
      return;
    }
    if (!socket.connected) return;
    if (room.closing) {
      // Closing since it was opened for this socket: the member comes back and it loads again.
      socket.emit('room:notice', this.#goingAway ? SERVER_RESTARTING : ROOM_CLOSING);
      socket.disconnect(true);
      return;
    }
    if (room.isRemoved(member.userId)) return this.#end(socket, { reason: 'removed', message: 'a host removed you from this room' });
    let role = room.roleOf(member);
    room.hold(socket);
    // Released on disconnect, which is registered at once: should anything below throw, the
    // connection is dropped (see the constructor) and must not keep the room loaded forever.
    let broadcasting = room.rules.broadcast;
    const onRules = () => {
      if (room.isRemoved(member.userId)) return this.#end(socket, { reason: 'removed', message: 'a host removed you from this room' });
      const now = room.roleOf(member);
      // Broadcast mode came on (or they became a listener in it): a listener's WebRTC session ends; the page moves to the HLS.
      if (room.rules.broadcast && now === 'listener' && (!broadcasting || role !== 'listener')) {
        this.#deps.live?.leave(roomId, member.sessionId);
        socket.emit('stream:ended', { reason: 'broadcast', rejoin: false });
      }
      broadcasting = room.rules.broadcast;
      if (now === role) return;
      role = now;
      socket.emit('room:notice', { level: 'info', code: 'role_changed', message: roleMessage(now) });
      if (now === 'host') {
        socket.join(hostsOf(roomId));
        socket.emit('prompt:queue', channel.pendingPrompts());
      } else socket.leave(hostsOf(roomId));
      this.#schedulePresence(room);
    };
    room.on('rules', onRules);
    socket.on('disconnect', () => {
      this.#deps.live?.leave(roomId, member.sessionId);
      room.off('rules', onRules);
      if (!room.closed) {
        room.unhold(socket);
        this.#schedulePresence(room);
      }
    });
    socket.join([channelOf(roomId), userOf(roomId, member.userId)]);
    this.#sendChatHistory(socket, roomId);
    if (role === 'host') {
      socket.join(hostsOf(roomId));
      socket.emit('prompt:queue', channel.pendingPrompts());
    }
    this.#schedulePresence(room);
  }

  /** The room's kept chat, to one socket that has just joined (a message sent meanwhile may come twice: the app drops repeats by id). */
  #sendChatHistory(socket: IoSocket, roomId: string): void {
    const history = this.#deps.chatHistory;
    if (!history) return;
    history.recent(roomId).then(
      (messages) => {
        if (socket.connected) socket.emit('chat:history', messages);
      },
      (err: unknown) => this.#deps.log.warn({ err: (err as Error).message, roomId }, 'the chat history could not be read'),
    );
  }

  /** The session's token ran out: it is told why, then disconnected (its app refreshes the token and comes back). */
  #expire(socket: IoSocket): void {
    if (!socket.connected) return;
    // A fresh token may have moved the deadline on since it was set.
    if (socket.data.expiresAtMs > Date.now()) return this.#expiries.set(socket, socket.data.expiresAtMs);
    this.#end(socket, { reason: 'token_expired', message: 'your token has expired; refresh it and connect again' });
  }

  #end(socket: IoSocket, info: SessionEnded): void {
    this.#expiries.delete(socket);
    socket.emit('session:ended', info);
    socket.disconnect(true);
  }

  /** A fresh token of the same member moves the session's expiry on. */
  #renew(socket: IoSocket, token: string): Outcome {
    let claims;
    try {
      claims = this.#deps.signer.verify(token, socket.data.roomId, 'member');
    } catch (err) {
      if (err instanceof TokenError) return { ok: false, refusal: refusal('malformed', `the fresh token was refused: ${err.message}`) };
      throw err;
    }
    if (claims.sub !== socket.data.userId) return { ok: false, refusal: refusal('malformed', 'the fresh token is of another member') };
    if (claims.exp * 1000 > socket.data.expiresAtMs) {
      socket.data.expiresAtMs = claims.exp * 1000;
      this.#expiries.set(socket, socket.data.expiresAtMs);
    }
    return { ok: true, value: { expiresAtMs: socket.data.expiresAtMs } };
  }

  #keepChat(history: ChatHistory): { add(roomId: string, message: ChatMessage): Promise<void> } {
    return {
      add: (roomId, message) =>
        history.add(roomId, message).catch((err: unknown) => {
          this.#deps.log.error({ err, roomId }, 'a chat message could not be kept');
          throw err;
        }),
    };
  }

  #channelFor(room: Room): RoomChannel {
    let channel = this.#channels.get(room.id);
    if (channel) return channel;
    const roomId = room.id;
    const lists = moderationListsOf(room.release);
    const listsKey = JSON.stringify(lists);
    let moderation = this.#moderation.get(listsKey);
    if (!moderation) {
      moderation = { compiled: compileModeration(lists), rooms: 0 };
      this.#moderation.set(listsKey, moderation);
    }
    moderation.rooms++;
    const shared = moderation;
    channel = new RoomChannel(
      room,
      {
        toRoom: (m) => {
          const to = this.io.to(channelOf(roomId));
          if ('chat' in m) to.emit('chat:message', m.chat);
          else if ('reaction' in m) to.emit('reaction', m.reaction);
          else to.emit('prompt:applied', m.applied);
        },
        toHosts: (queue) => this.io.to(hostsOf(roomId)).emit('prompt:queue', queue),
      },
      this.#deps.limits,
      {
        moderation: shared.compiled,
        visuals: this.#deps.visuals ?? null,
        ...(this.#deps.chatHistory ? { history: this.#keepChat(this.#deps.chatHistory) } : {}),
      },
    );
    this.#channels.set(roomId, channel);
    const onRefused = (member: Member, r: Refusal) => this.io.to(userOf(roomId, member.userId)).emit('room:refused', r);
    room.on('refused', onRefused);
    room.once('close', (reason) => {
      this.#channels.delete(roomId);
      if (--shared.rooms === 0) this.#moderation.delete(listsKey);
      const timer = this.#presenceTimers.get(roomId);
      if (timer) clearTimeout(timer);
      this.#presenceTimers.delete(roomId);
      // A shutdown closes this node's rooms: its members only (another node may serve the same room).
      const shutdown = reason === 'shutdown' || this.#goingAway;
      const sockets = shutdown ? this.io.local.in(channelOf(roomId)) : this.io.in(channelOf(roomId));
      if (reason === 'ended') sockets.emit('room:ended');
      else sockets.emit('room:notice', shutdown ? SERVER_RESTARTING : ROOM_CLOSING);
      sockets.disconnectSockets(true);
    });
    return channel;
  }

  /** Presence is sent at most every PRESENCE_DEBOUNCE_MS per room, so a burst of joins costs one list. */
  #schedulePresence(room: Room): void {
    if (this.#presenceTimers.has(room.id)) return;
    this.#presenceTimers.set(
      room.id,
      setTimeout(() => {
        this.#presenceTimers.delete(room.id);
        this.#sendPresence(room).catch((err: unknown) => this.#deps.log.warn({ err: (err as Error).message, roomId: room.id }, 'presence could not be gathered'));
      }, PRESENCE_DEBOUNCE_MS),
    );
  }

  async #sendPresence(room: Room): Promise<void> {
    if (room.closed) return;
    const sockets = await this.io.in(channelOf(room.id)).fetchSockets();
    const people = new Map<string, PresenceMember>();
    for (const s of sockets) {
      const d = s.data;
      if (room.isRemoved(d.userId)) continue;
      people.set(d.userId, { userId: d.userId, name: d.name, role: room.roleOf({ userId: d.userId, baseRole: d.baseRole }), ...(d.userId === room.creatorId ? { creator: true } : {}) });
    }
    const order: Record<Role, number> = { host: 0, remixer: 1, listener: 2 };
    const members = [...people.values()].sort((a, b) => order[a.role] - order[b.role] || a.name.localeCompare(b.name)).slice(0, PRESENCE_LIST_LIMIT);
    this.io.to(channelOf(room.id)).emit('presence', { count: people.size, members });
  }
}

/**
 * What a socket.io connection holds for its whole life and nothing reads after the handshake
 * has been checked: engine.io keeps the response stand-in of a WebSocket upgrade and through it
 * the upgrade's request (~3 KB), and the handshake keeps the request's headers (~600 B). Installs
 * what it needs on `io` and returns the function that lets go of both for one socket.
 */
export function handshakeReleaser(io: Server): (socket: Socket) => void {
  const upgrades = new WeakMap<http.IncomingMessage, { req: unknown }>();
  io.engine.use((req: http.IncomingMessage, res: unknown, next: (err?: Error) => void) => {
    if (res && typeof res === 'object' && !(res instanceof http.ServerResponse) && 'req' in res) upgrades.set(req, res);
    next();
  });
  return (socket) => {
    const conn = socket.conn as { request: http.IncomingMessage | null };
    const upgrade = conn.request ? upgrades.get(conn.request) : undefined;
    if (upgrade) upgrade.req = null;
    conn.request = null;
    socket.handshake.headers = {};
  };
}

/** A refused handshake: socket.io hands `data` to the client's connect_error. */
function connectError(message: string, data: ConnectRefusal): Error {
  return Object.assign(new Error(`${data.code}: ${message}`), { data });
}

function parse<T extends z.ZodType>(schema: T, payload: unknown, ack: unknown): z.infer<T> | null {
  const r = schema.safeParse(payload);
  if (r.success) return r.data;
  if (typeof ack === 'function') {
    const issue = r.error.issues[0]!;
    (ack as Ack)({ ok: false, refusal: refusal('malformed', `${issue.path.join('.') || 'payload'}: ${issue.message}`) });
  }
  return null;
}

type Outcome = { ok: true; value: unknown } | { ok: false; refusal: Refusal };

function mapValue<T, R>(result: { ok: true; value: T } | { ok: false; refusal: Refusal }, shape: (v: T) => R): Outcome {
  return result.ok ? { ok: true, value: shape(result.value) } : result;
}

function reply(ack: unknown, result: Outcome): void {
  if (typeof ack !== 'function') return;
  const send = ack as (r: unknown) => void;
  if (result.ok) send({ ok: true, ...(result.value as object) });
  else send({ ok: false, refusal: result.refusal });
}

function signalRefusal(err: unknown, log: Logger, roomId: string): Refusal {
  if (err instanceof SignalError) {
    if (err.code === 'malformed') return refusal('malformed', err.message);
    return refusal('out_of_order', err.message);
  }
  if (err instanceof StreamUnavailableError) return refusal('unavailable', err.message);
  if (err instanceof RoomEndedError || err instanceof RoomNotFoundError) return refusal('not_found', 'the room is not available');
  log.error({ err, roomId }, 'stream signaling failed');
  return refusal('unavailable', 'the live stream is not available just now; try again');
}

const BROADCAST_LISTENER = 'this room is broadcasting: listeners hear it through its stream (about a few seconds behind the stage); ask the host to join the stage';

function roleMessage(role: Role): string {
  if (role === 'host') return 'the host made you a host of this room';
  if (role === 'remixer') return 'the host made you a remixer: you can change the mix';
  return 'the host made you a listener: you can listen, chat and react';
}
