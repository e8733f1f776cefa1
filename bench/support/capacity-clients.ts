// A client process of the sync-capacity benchmark (forked, with an IPC channel).
// It holds, for each member it is given, a sync connection and a socket.io
// connection, and stays idle. To keep thousands of members light, the sync side
// speaks the minimal y-websocket protocol over a raw `ws` socket instead of a full
// WebsocketProvider: sync step 1 with an empty state vector, an empty step 2 in
// answer to the server's step 1, no awareness. The server does its full work either
// way (token check, room, guard, peer, timers). socket.io is the stock client.
//
// Messages: parent → { type: 'connect', ... } | { type: 'stats' } | { type: 'close' };
//           child → { type: 'progress' | 'connected' | 'stats', ...ClientStats } | { type: 'closed' }.
import * as decoding from 'lib0/decoding';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';

export interface CapacityMember {
  roomId: string;
  token: string;
}

export interface ConnectOrder {
  type: 'connect';
  url: string;
  members: CapacityMember[];
  /** Connections being opened at once by this process. */
  concurrency: number;
  /** Source address for this process's connections (127.x.y.z), to spread them over more ports. */
  localAddress: string;
}

export interface ClientStats {
  /** Sync connections open and synced (the server's step 2 arrived). */
  syncOpen: number;
  /** socket.io connections connected. */
  socketOpen: number;
  /** Connections that failed to open, or closed after opening. */
  syncFailed: number;
  socketFailed: number;
  syncClosed: number;
  socketClosed: number;
  /** How long the opening took, in ms (0 until done). */
  connectMs: number;
  rssBytes: number;
}

export type ParentMessage = ConnectOrder | { type: 'stats' } | { type: 'close' };
export type ChildMessage = ({ type: 'progress' | 'connected' | 'stats' } & ClientStats) | { type: 'closed' };

const MESSAGE_SYNC = 0;
const SYNC_STEP_1 = 0;
const SYNC_STEP_2 = 1;
/** Sync step 1 with an empty state vector: [messageSync, step1, length 1, zero clients]. */
const EMPTY_STEP_1 = Uint8Array.of(MESSAGE_SYNC, SYNC_STEP_1, 1, 0);
/** Sync step 2 with an empty update (no structs, no deletes): [messageSync, step2, length 2, 0, 0]. */
const EMPTY_STEP_2 = Uint8Array.of(MESSAGE_SYNC, SYNC_STEP_2, 2, 0, 0);
const OPEN_TIMEOUT_MS = 60_000;

const syncSockets: WebSocket[] = [];
const ioSockets: Socket[] = [];
const stats: ClientStats = { syncOpen: 0, socketOpen: 0, syncFailed: 0, socketFailed: 0, syncClosed: 0, socketClosed: 0, connectMs: 0, rssBytes: 0 };

function send(message: ChildMessage): void {
  if (process.connected) process.send!(message);
}

function snapshot(type: 'progress' | 'connected' | 'stats'): ChildMessage {
  return { type, ...stats, rssBytes: process.memoryUsage.rss() };
}

function openSync(url: string, m: CapacityMember, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/sync/${m.roomId}?token=${encodeURIComponent(m.token)}`, {
      perMessageDeflate: false,
      localAddress,
    });
    ws.binaryType = 'nodebuffer';
    syncSockets.push(ws);
    let synced = false;
    let settled = false;
    const done = (ok: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (ok) stats.syncOpen++;
      else stats.syncFailed++;
      resolve();
    };
    const timer = setTimeout(() => {
      done(false);
      ws.terminate();
    }, OPEN_TIMEOUT_MS);
    ws.on('open', () => ws.send(EMPTY_STEP_1));
    ws.on('message', (data: Buffer) => {
      const dec = decoding.createDecoder(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      if (decoding.readVarUint(dec) !== MESSAGE_SYNC) return;
      const step = decoding.readVarUint(dec);
      if (step === SYNC_STEP_1) ws.send(EMPTY_STEP_2);
      else if (step === SYNC_STEP_2 && !synced) {
        synced = true;
        done(true);
      }
    });
    ws.on('unexpected-response', (_req, res) => {
      res.resume();
      done(false);
      ws.terminate();
    });
    ws.on('error', () => done(false));
    ws.on('close', () => {
      if (synced) {
        stats.syncOpen--;
        stats.syncClosed++;
      } else done(false);
    });
  });
}

function openSocket(url: string, m: CapacityMember, localAddress: string): Promise<void> {
  return new Promise((resolve) => {
    const socket = io(url, {
      transports: ['websocket'],
      auth: { roomId: m.roomId, token: m.token },
      forceNew: true,
      reconnection: false,
      timeout: OPEN_TIMEOUT_MS,
      // engine.io-client hands this on to the `ws` socket it opens.
      localAddress,
    } as Parameters<typeof io>[1]);
    ioSockets.push(socket);
    let connected = false;
    socket.once('connect', () => {
      connected = true;
      stats.socketOpen++;
      resolve();
    });
    socket.once('connect_error', () => {
      stats.socketFailed++;
      resolve();
    });
    socket.on('disconnect', () => {
      if (!connected) return;
      connected = false;
      stats.socketOpen--;
      stats.socketClosed++;
    });
  });
}

async function connectAll(order: ConnectOrder): Promise<void> {
  const start = performance.now();
  let next = 0;
  const progress = setInterval(() => send(snapshot('progress')), 2000);
  const worker = async () => {
    while (next < order.members.length) {
      const m = order.members[next++]!;
      await Promise.all([openSync(order.url, m, order.localAddress), openSocket(order.url, m, order.localAddress)]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(order.concurrency, order.members.length) }, worker));
  clearInterval(progress);
  stats.connectMs = Math.round(performance.now() - start);
  send(snapshot('connected'));
}

function closeAll(): void {
  for (const ws of syncSockets) ws.terminate();
  for (const s of ioSockets) s.disconnect();
  syncSockets.length = 0;
  ioSockets.length = 0;
}

process.on('message', (message: ParentMessage) => {
  if (message.type === 'connect') void connectAll(message);
  else if (message.type === 'stats') send(snapshot('stats'));
  else if (message.type === 'close') {
    closeAll();
    send({ type: 'closed' });
    process.disconnect();
  }
});
// The benchmark went away: close everything and end.
process.on('disconnect', () => {
  closeAll();
  setTimeout(() => process.exit(0), 500).unref();
});
