// A member flooding a room with edits from several connections at once (run by
// member-flood.bench.ts in a process of its own, so that the flood does not slow
// the clients that time the other room). Config as JSON in argv[2]; prints one
// JSON line with what it sent when done.
import WebSocket from 'ws';
import * as Y from 'yjs';
import { WebsocketProvider } from 'y-websocket';

interface FloodConfig {
  wsBase: string;
  roomId: string;
  token: string;
  address: string;
  connections: number;
  seconds: number;
  /** Edits each connection makes per 10 ms tick. */
  perTick: number;
}

const config = JSON.parse(process.argv[2] ?? '{}') as FloodConfig;
const From = class extends WebSocket {
  constructor(url: string | URL, protocols?: string | string[]) {
    super(url, protocols, { headers: { 'x-forwarded-for': config.address } });
  }
};
const members = Array.from({ length: config.connections }, () => {
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(config.wsBase, config.roomId, doc, {
    params: { token: config.token },
    disableBc: true,
    maxBackoffTime: 1000,
    WebSocketPolyfill: From as unknown as typeof globalThis.WebSocket,
  });
  provider.awareness.setLocalState(null);
  return { doc, provider };
});
const start = Date.now();
while (!members.every((m) => m.provider.synced)) {
  if (Date.now() - start > 30_000) throw new Error('the flooding connections did not sync');
  await new Promise((r) => setTimeout(r, 20));
}
let sent = 0;
let k = 0;
const until = Date.now() + config.seconds * 1000;
while (Date.now() < until) {
  for (const [i, m] of members.entries()) {
    const strip = (m.doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>).get('drums')!;
    for (let j = 0; j < config.perTick; j++) {
      strip.set('gainDb', -((k++ % 200) / 10) - i / 100);
      sent++;
    }
  }
  await new Promise((r) => setTimeout(r, 10));
}
const closes = members.filter((m) => !m.provider.wsconnected).length;
for (const m of members) m.provider.destroy();
process.stdout.write(`${JSON.stringify({ sent, sentPerSec: Math.round(sent / config.seconds), disconnectedAtEnd: closes })}\n`);
process.exit(0);
