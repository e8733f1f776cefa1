// What a shutting-down server says to its members over socket.io: that it is
// restarting (so that they come back by themselves), before it disconnects them;
// while an ended room stays a real end. The browser side is
// test/browser/restart-recovery.test.ts.
import { expect } from 'chai';
import type { Notice } from '../../shared/socket-events.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { api, connectSocket, joinAs, openRoom, type RoomSocket } from '../support/room-clients.ts';

/** Everything the socket hears until it is disconnected, in order. */
function record(s: RoomSocket): Promise<string[]> {
  const heard: string[] = [];
  s.on('room:notice', (n: Notice) => heard.push(`notice:${n.code}`));
  s.on('room:ended', () => heard.push('ended'));
  return new Promise((resolve) =>
    s.once('disconnect', (reason) => {
      heard.push(`disconnect:${reason}`);
      resolve(heard);
    }),
  );
}

describe('a server going away, over socket.io', function () {
  this.timeout(30_000);
  let t: TestServer | null = null;
  afterEach(async () => {
    await t?.close();
    t = null;
  });

  it('tells every member that it is restarting, then disconnects them', async () => {
    t = await startTestServer();
    const room = await openRoom(t.url);
    const host = await connectSocket(t.url, room.roomId, room.hostToken);
    const fan = await connectSocket(t.url, room.roomId, (await joinAs(t.url, room, 'listener', 'Fan')).token);
    const heard = [record(host), record(fan)];
    await t.close();
    t = null;
    for (const h of await Promise.all(heard)) {
      expect(h[0]).to.equal('notice:server_restarting');
      expect(h.at(-1)).to.equal('disconnect:io server disconnect');
      expect(h).not.to.include('ended');
    }
  });

  it('an ended room is still the end: no restart notice, `room:ended` before the disconnect', async () => {
    t = await startTestServer();
    const room = await openRoom(t.url);
    const fan = await connectSocket(t.url, room.roomId, (await joinAs(t.url, room, 'listener', 'Fan')).token);
    const heard = record(fan);
    await api(t.url, 'DELETE', `/api/rooms/${room.roomId}`, undefined, room.hostToken);
    const h = await heard;
    expect(h).to.include('ended');
    expect(h.filter((e) => e.startsWith('notice:'))).to.deep.equal([]);
  });
});
