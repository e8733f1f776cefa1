// `npm run bench -- connection-cost [--connections=2000]`
//
// What one idle connection costs a Node server on its own, for the two connections a
// member holds: a plain ws WebSocket (the sync endpoint) and a socket.io connection
// (websocket transport, the room socket server's options), each in a bare server
// process that holds nothing else (bench/support/connection-cost-server.ts, run with
// the start script's node flags). Heap is measured after full collections; RSS as the
// kernel reports it. This is the floor under `sync-capacity`'s figure per member:
// no room, no document, no code of ours.
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { intArg, parseArgs, round } from './support/proc.ts';
import { startNodeOptions } from './support/server.ts';

const SERVER = fileURLToPath(new URL('./support/connection-cost-server.ts', import.meta.url));
type Kind = 'ws' | 'socket.io';

async function measure(kind: Kind, count: number): Promise<{ heapBytes: number; rssBytes: number }> {
  const child: ChildProcess = fork(SERVER, [kind], { execArgv: [...startNodeOptions(), '--expose-gc'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const next = <T>() => new Promise<T>((resolve, reject) => {
    child.once('message', (m) => resolve(m as T));
    child.once('exit', (code) => reject(new Error(`the ${kind} server exited (${code})`)));
  });
  const held: (WebSocket | Socket)[] = [];
  try {
    const { port } = await next<{ port: number }>();
    await new Promise((r) => setTimeout(r, 300));
    child.send('measure');
    const before = await next<{ heapUsed: number; rss: number }>();
    for (let i = 0; i < count; i++) {
      if (kind === 'ws') {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/sync`);
        await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
        held.push(ws);
      } else {
        const socket = io(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
        await new Promise((resolve, reject) => socket.once('connect', () => resolve(null)).once('connect_error', reject));
        held.push(socket);
      }
    }
    await new Promise((r) => setTimeout(r, 1500));
    child.send('measure');
    const after = await next<{ heapUsed: number; rss: number }>();
    return { heapBytes: (after.heapUsed - before.heapUsed) / count, rssBytes: (after.rss - before.rss) / count };
  } finally {
    for (const h of held) (h as { close(): void }).close();
    child.kill('SIGKILL');
  }
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['connections']);
  const count = intArg(args, 'connections', 2000, 10, 8000);
  const ws = await measure('ws', count);
  console.log(`connection-cost: ws ${round(ws.heapBytes, 0)} B heap, ${round(ws.rssBytes, 0)} B RSS per connection`);
  const sio = await measure('socket.io', count);
  console.log(`connection-cost: socket.io ${round(sio.heapBytes, 0)} B heap, ${round(sio.rssBytes, 0)} B RSS per connection`);
  const memberRss = ws.rssBytes + sio.rssBytes;
  return {
    bench: 'connection-cost',
    connections: count,
    ws: { heapBytes: round(ws.heapBytes, 0), rssBytes: round(ws.rssBytes, 0) },
    socketIo: { heapBytes: round(sio.heapBytes, 0), rssBytes: round(sio.rssBytes, 0) },
    /** Both connections of one member, nothing else. */
    memberHeapBytes: round(ws.heapBytes + sio.heapBytes, 0),
    memberRssBytes: round(memberRss, 0),
    /** What 10,000 members' connections alone take, against sync-capacity's goal of 150 MB for everything. */
    projectedRssMbFor10k: round((memberRss * 10_000) / 2 ** 20, 1),
    nodeOptions: startNodeOptions().join(' '),
  };
}
