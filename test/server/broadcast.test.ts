import { expect } from 'chai';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { WebSocket, WebSocketServer } from 'ws';
import { createRequire } from 'node:module';
import path from 'node:path';
import { Broadcast, type Room } from '../../server/rooms/room.ts';
import { SyncConnection, SyncSweep } from '../../server/rooms/sync-connection.ts';
import { UpdateThrottle } from '../../server/rooms/update-throttle.ts';
import { Limits } from '../../server/limits/limits.ts';
import { LocalBucketStore } from '../../server/limits/bucket-store.ts';
import { AddressConnections } from '../../server/limits/address-connections.ts';
import { TokenSigner } from '../../server/auth/tokens.ts';

// ws's own framing, to compare against: its Sender is not exported, so it is loaded by its file.
const require = createRequire(import.meta.url);
const Sender = require(path.join(path.dirname(require.resolve('ws')), 'lib', 'sender.js')) as { frame(data: Buffer, opts: object): Buffer[] };

const LENGTHS = [0, 1, 125, 126, 300, 65_535, 65_536, 200_000];

function payload(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

describe('Broadcast: one frame for every peer of a room', () => {
  it('frames a message exactly as ws frames a server message, at every length encoding', () => {
    for (const n of LENGTHS) {
      const data = payload(n);
      const parts = Sender.frame(Buffer.from(data), {
        fin: true,
        opcode: 2,
        mask: false,
        readOnly: false,
        rsv1: false,
      });
      expect(Buffer.compare(new Broadcast(data).frame, Buffer.concat(parts)), `length ${n}`).to.equal(0);
    }
  });

  describe('through a real WebSocket', () => {
    let server: http.Server;
    let wss: WebSocketServer;
    let sweep: SyncSweep;
    beforeEach(async () => {
      server = http.createServer();
      wss = new WebSocketServer({ server, perMessageDeflate: false });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      sweep = new SyncSweep({ everyMs: 60_000 });
    });
    afterEach(async () => {
      sweep.stop();
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    });

    async function connect(): Promise<{ conn: SyncConnection; client: WebSocket; serverSide: WebSocket; received: Buffer[] }> {
      const accepted = new Promise<WebSocket>((resolve) => wss.once('connection', resolve));
      const client = new WebSocket(`ws://127.0.0.1:${(server.address() as AddressInfo).port}`);
      const received: Buffer[] = [];
      client.on('message', (data) => received.push(data as Buffer));
      await new Promise((resolve, reject) => client.once('open', resolve).once('error', reject));
      const serverSide = await accepted;
      const room = { id: 'room-1', addPeer() {}, removePeer() {} } as unknown as Room;
      const conn = new SyncConnection(serverSide, room, { sessionId: 's', userId: 'u', name: 'U', baseRole: 'remixer', address: '127.0.0.1' }, Date.now() + 3_600_000, {
        log: pino({ level: 'silent' }),
        throttle: new UpdateThrottle(new Limits(new LocalBucketStore()), pino({ level: 'silent' })),
        signer: new TokenSigner('x'.repeat(32)),
        connections: new AddressConnections(10),
        sweep,
      });
      return { conn, client, serverSide, received };
    }

    const settle = async (received: Buffer[], n: number) => {
      for (let i = 0; i < 200 && received.length < n; i++) await new Promise((r) => setTimeout(r, 10));
    };

    it('the client reads each broadcast as the message, in order with messages sent the usual way', async () => {
      const { conn, client, serverSide, received } = await connect();
      let framedByWs = 0;
      const send = serverSide.send.bind(serverSide);
      serverSide.send = ((...args: Parameters<WebSocket['send']>) => {
        framedByWs++;
        return send(...args);
      }) as WebSocket['send'];
      const sent: Uint8Array[] = [];
      for (const [i, n] of LENGTHS.entries()) {
        const data = payload(n);
        sent.push(data);
        if (i % 3 === 2) conn.send(data);
        else conn.sendBroadcast(new Broadcast(data));
      }
      await settle(received, sent.length);
      expect(received.map((b) => b.length)).to.deep.equal(sent.map((d) => d.length));
      for (const [i, d] of sent.entries()) expect(Buffer.compare(received[i]!, Buffer.from(d)), `message ${i}`).to.equal(0);
      // The broadcasts skipped ws's framing; the plain sends did not.
      expect(framedByWs).to.equal(LENGTHS.filter((_, i) => i % 3 === 2).length);
      client.close();
    });

    it('goes through ws.send when ws has something of its own in flight, and sends nothing once closed', async () => {
      const { conn, client, serverSide, received } = await connect();
      const sender = (serverSide as unknown as { _sender: { _state: number } })._sender;
      let framedByWs = 0;
      const send = serverSide.send.bind(serverSide);
      serverSide.send = ((data: Uint8Array) => {
        framedByWs++;
        // As if ws were busy: take the message the usual way without the state getting in the way.
        sender._state = 0;
        send(data);
        sender._state = 1;
      }) as WebSocket['send'];
      sender._state = 1; // DEFLATING in ws 8
      conn.sendBroadcast(new Broadcast(payload(40)));
      sender._state = 0;
      await settle(received, 1);
      expect(framedByWs).to.equal(1);
      expect(received).to.have.length(1);
      conn.close(1000, 'bye');
      conn.sendBroadcast(new Broadcast(payload(10)));
      await new Promise((r) => setTimeout(r, 100));
      expect(received).to.have.length(1);
      client.terminate();
    });
  });
});
