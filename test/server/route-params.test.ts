// Every route of the HTTP API, found by walking the app's own router (so that a
// route added later is walked too), called with every path parameter replaced by
// values that are not ids: prototype keys, dot segments, empty, very long, and
// encoded tricks. The answer is a refusal (4xx), never a 500, and the server goes
// on serving.
import { expect } from 'chai';
import type { Express } from 'express';
import { api, joinAs, openRoom, type OpenedRoom } from '../support/room-clients.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

interface RouteLayer {
  rawPath?: string;
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: RouteLayer[] };
}

/** Method and full path of every route the app serves. */
function routesOf(app: Express): { method: string; path: string }[] {
  const out: { method: string; path: string }[] = [];
  const walk = (stack: RouteLayer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        for (const m of Object.keys(layer.route.methods)) if (m !== '_all') out.push({ method: m.toUpperCase(), path: prefix + layer.route.path });
      } else if (layer.handle?.stack) walk(layer.handle.stack, prefix + (layer.rawPath && layer.rawPath !== '/' ? layer.rawPath : ''));
    }
  };
  walk((app as unknown as { router: { stack: RouteLayer[] } }).router.stack, '');
  return out;
}

const BAD = ['constructor', '__proto__', 'prototype', 'hasOwnProperty', '..', '.', '%2e%2e', '..%2f..%2fetc%2fpasswd', '%00', ' ', 'x'.repeat(10 * 1024), '%F0%9F%98%80', '%ZZ'];

describe('every route refuses bad path parameters cleanly', function () {
  this.timeout(120_000);
  let t: TestServer;
  let room: OpenedRoom;
  let member: string;

  before(async () => {
    t = await startTestServer();
    room = await openRoom(t.url);
    member = (await joinAs(t.url, room, 'remixer', 'M')).token;
  });
  after(async () => {
    await t?.close();
  });

  it('finds the routes with parameters (the walk sees the API)', () => {
    const withParams = routesOf(t.server.app).filter((r) => r.path.includes(':'));
    const paths = withParams.map((r) => `${r.method} ${r.path}`);
    expect(paths).to.include.members([
      'PUT /api/rooms/:roomId/members/:userId/role',
      'DELETE /api/rooms/:roomId/members/:userId',
      'DELETE /api/rooms/:roomId/prompts/:entryId',
      'GET /api/clips/:clipId',
      'GET /api/clips/:clipId/files/:name',
      'GET /api/orders/:orderId',
      'GET /api/releases/:releaseId',
    ]);
  });

  it('answers 4xx, never 500, for prototype keys, dot segments, empty, 10 KB and encoded values in every parameter', async () => {
    const routes = routesOf(t.server.app).filter((r) => r.path.includes(':'));
    const failures: string[] = [];
    let calls = 0;
    for (const r of routes) {
      const params = [...r.path.matchAll(/:(\w+)/g)].map((m) => m[1]!);
      for (const param of params) {
        for (const bad of [...BAD, '']) {
          // The other parameters hold sound values, so that the bad one is what is refused.
          const path = r.path.replace(/:(\w+)/g, (_m, name: string) => (name === param ? bad : name === 'roomId' ? room.roomId : name === 'userId' ? 'u_AAAAAAAAAAA' : 'x'));
          for (const token of [room.hostToken, member, undefined]) {
            const res = await fetch(`${t.url}${path}`, {
              method: r.method,
              headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), 'idempotency-key': `k${calls}` },
              ...(r.method === 'GET' || r.method === 'HEAD' ? {} : { body: JSON.stringify({ role: 'listener', name: 'X', invite: 'x', releaseId: bad.slice(0, 100) }) }),
            });
            calls++;
            await res.arrayBuffer();
            if (res.status >= 500) failures.push(`${r.method} ${path.slice(0, 120)} → ${res.status}`);
          }
        }
      }
    }
    expect(failures, failures.join('\n')).to.deep.equal([]);
    expect(calls).to.be.above(100);
    // The server is still up and the room still works.
    expect((await api(t.url, 'GET', `/api/rooms/${room.roomId}`)).status).to.equal(200);
  });

  it("PUT /api/rooms/:roomId/members/constructor/role is a 404, and the room's roles are untouched", async () => {
    for (const id of ['constructor', '__proto__', 'toString']) {
      const r = await api<{ error: { code: string } }>(t.url, 'PUT', `/api/rooms/${room.roomId}/members/${id}/role`, { role: 'host' }, room.hostToken);
      expect(r.status, id).to.equal(404);
      expect(r.body.error.code).to.equal('not_found');
    }
  });
});
