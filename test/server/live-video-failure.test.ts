// A room whose video encoder keeps failing: the visual output gives up after its restarts
// (media/live/visual-output.ts), and the room's stream stops offering video: the status says
// it is not live, a new video join is answered audio only with the reason, and the audio
// goes on. The encoder is a fake ffmpeg (a shell script that lists libvpx, then crashes on
// every encode); the restarts are shortened through the server's options. Per SFU adapter
// (test/support/sfu-adapters.ts).
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { joinAs, openRoom } from '../support/room-clients.ts';
import { tempDir } from '../support/temp.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;
type SignalReply = { ok: true; signal: Record<string, unknown> } | { ok: false; refusal: { code: string; message: string } };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('live video: an encoder that keeps failing', adapter), function () {
    this.timeout(60_000);
    let dir: Awaited<ReturnType<typeof tempDir>>;
    let t: TestServer | null = null;
    const sockets: Client[] = [];

    let bin = '';
    let starts = '';
    let crashFlag = '';
    let pids = '';

    before(async function () {
      await requireSfuAdapter(adapter, this);
      dir = await tempDir('crashing-ffmpeg');
      bin = path.join(dir.path, 'ffmpeg');
      starts = path.join(dir.path, 'starts');
      crashFlag = path.join(dir.path, 'crash');
      pids = path.join(dir.path, 'pids');
      // Lists a libvpx encoder (so the server offers video). An encode then fails at once while the
      // crash flag exists; without it, it stands in for a running encoder (it takes no frames).
      await fsp.writeFile(
        bin,
        [
          '#!/bin/sh',
          `case "$*" in *-encoders*) echo ' V....D libvpx               libvpx VP8 (codec vp8)'; exit 0;; esac`,
          `echo start >> '${starts}'`,
          `if [ -f '${crashFlag}' ]; then echo 'simulated encoder crash' >&2; exit 1; fi`,
          `echo $$ >> '${pids}'`,
          'exec sleep 60',
          '',
        ].join('\n'),
        { mode: 0o755 },
      );
    });
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.disconnect();
      await t?.close();
      t = null;
      await killFakes();
      await fsp.rm(crashFlag, { force: true });
      await fsp.rm(starts, { force: true });
    });
    after(async () => {
      await dir?.remove();
    });

    /** Kills the fake encoders that stand in for running ones. */
    async function killFakes(): Promise<void> {
      for (const pid of (await fsp.readFile(pids, 'utf8').catch(() => '')).split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      await fsp.rm(pids, { force: true });
    }

    async function connect(url: string, roomId: string, token: string): Promise<Client> {
      const socket: Client = io(url, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
      sockets.push(socket);
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', () => resolve());
        socket.once('connect_error', reject);
      });
      return socket;
    }

    const signal = async (socket: Client, message: unknown): Promise<SignalReply> =>
      (await (socket.timeout(10_000).emitWithAck as (ev: string, m: unknown) => Promise<unknown>)('stream:signal', message)) as SignalReply;

    it('stops the video after its restarts; later video joins get audio only, saying why', async () => {
      await fsp.writeFile(crashFlag, '');
      t = await startTestServer({}, { live: { video: { ffmpeg: bin, restart: { initialMs: 20, maxMs: 40, maxFailures: 3, healthyMs: 60_000 } } }, adapter });
      const room = await openRoom(t.url);
      const first = await joinAs(t.url, room, 'listener', 'First');
      const a = await connect(t.url, room.roomId, first.token);
      const joined = await signal(a, { type: 'join', video: true });
      expect(joined.ok, JSON.stringify(joined)).to.equal(true);

      const stream = t.server.live.stream(room.roomId)!;
      // It gives up after three failures in a row (20 ms, then 40 ms between them).
      const deadline = Date.now() + 20_000;
      while ((await stream.stats()).video.live) {
        if (Date.now() > deadline) throw new Error('the video never stopped');
        await sleep(50);
      }
      const launched = (await fsp.readFile(starts, 'utf8')).split('\n').filter(Boolean).length;
      expect(launched, 'encoders started before it gave up').to.be.within(3, 6);
      expect((await stream.stats()).video).to.include({ live: false, viewers: 0 });

      // A video join now: audio only, with the reason; the stream itself is fine.
      const second = await joinAs(t.url, room, 'listener', 'Second');
      const b = await connect(t.url, room.roomId, second.token);
      const again = await signal(b, { type: 'join', video: true });
      expect(again.ok).to.equal(true);
      if (!again.ok) return;
      expect(again.signal).to.include({ adapter, video: false });
      expect(String(again.signal['videoRefused'])).to.match(/kept failing.*audio only/);
      // Embedded: no video m-line in the offer; mediasoup: a transport that refuses a video consumer.
      if (adapter === 'embedded') expect(String(again.signal['sdp'])).to.match(/m=audio /).and.not.match(/m=video /);
      expect(t.server.live.status(room.roomId)).to.include({ live: true, listeners: 2 });
      // And no encoder is started for it.
      await sleep(300);
      expect((await fsp.readFile(starts, 'utf8')).split('\n').filter(Boolean).length).to.equal(launched);
    });

    it('tells the members watching the video when it stops under them; their audio goes on', async () => {
      t = await startTestServer({}, { live: { video: { ffmpeg: bin, restart: { initialMs: 20, maxMs: 40, maxFailures: 2, healthyMs: 60_000 } } }, adapter });
      const room = await openRoom(t.url);
      const viewer = await joinAs(t.url, room, 'listener', 'Viewer');
      const a = await connect(t.url, room.roomId, viewer.token);
      const notices: { code: string; message: string }[] = [];
      a.on('room:notice', (n) => notices.push(n));
      const joined = await signal(a, { type: 'join', video: true });
      expect(joined.ok).to.equal(true);
      if (!joined.ok) return;
      expect(joined.signal).to.include({ video: true });
      const stream = t.server.live.stream(room.roomId)!;
      expect((await stream.stats()).video).to.include({ live: true, viewers: 1 });

      // The encoder dies, and every restart crashes.
      await fsp.writeFile(crashFlag, '');
      await killFakes();
      const deadline = Date.now() + 20_000;
      while (!notices.some((n) => n.code === 'video_stopped')) {
        if (Date.now() > deadline) throw new Error(`no notice came (${JSON.stringify(notices)})`);
        await sleep(50);
      }
      expect(notices.find((n) => n.code === 'video_stopped')!.message).to.match(/video stopped/);
      expect((await stream.stats()).video).to.include({ live: false, viewers: 0 });
      expect(t.server.live.status(room.roomId)).to.include({ live: true, listeners: 1 });
    });
  });
}
