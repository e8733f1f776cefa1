// The server side of `npm run bench -- connection-cost`: a bare HTTP server holding either
// plain ws connections (as the sync endpoint makes them) or socket.io connections (with the
// options the room socket server uses), and nothing else. It answers the parent's "measure"
// with its heap and RSS after full garbage collections.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { WebSocketServer, type WebSocket } from 'ws';
import { handshakeReleaser } from '../../server/realtime/socket-server.ts';

const kind = process.argv[2];
const server = http.createServer();
const held = new Set<unknown>();
if (kind === 'ws') {
  const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 });
  server.on('upgrade', (req, socket, head) =>
    wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      held.add(ws);
      ws.on('message', () => {});
      ws.on('close', () => held.delete(ws));
    }),
  );
} else if (kind === 'socket.io') {
  const io = new Server(server, { maxHttpBufferSize: 32 * 1024, serveClient: false, cors: { origin: false } });
  // What the room socket server lets go of after the handshake, let go of here too.
  const releaseHandshake = handshakeReleaser(io);
  io.on('connection', (socket) => {
    releaseHandshake(socket);
    socket.on('chat', () => {});
  });
} else {
  throw new Error(`unknown kind ${kind}`);
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc');
server.listen(0, '127.0.0.1', () => process.send!({ port: (server.address() as AddressInfo).port }));
process.on('message', (m) => {
  if (m !== 'measure') return;
  for (let i = 0; i < 4; i++) gc();
  const mu = process.memoryUsage();
  process.send!({ heapUsed: mu.heapUsed, rss: mu.rss });
});
