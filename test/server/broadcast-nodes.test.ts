// Broadcast mode across nodes, with real parts: a real redis-server, three
// `node server/main.ts` processes sharing one DATA_DIR and TOKEN_SECRET (as in
// scaleout.test.ts), and the real ffmpeg each node would encode with. The room
// is loaded on nodes A and B (members on both); node C never loads it. One node
// encodes the room (one libx264 ffmpeg on the machine for it); a player that
// alternates between the nodes, as a viewer behind a round-robin balancer does,
// sees one numbering and the same bytes for the same part everywhere, C
// included. An RTMP push started on the node that does not encode remuxes the
// other's encode (no second encoder). The encoding node is killed (SIGKILL): the
// other takes over within seconds, its playlist goes on after a discontinuity with
// higher numbers, and the player keeps getting parts; shut down (SIGTERM), it hands
// the room over at once; switched off, the playlists end everywhere.
import fs from 'node:fs';
import crypto from 'node:crypto';
import { expect } from 'chai';
import { createClient, type RedisClientType } from 'redis';
import { ffmpegCannotBroadcast } from '../../media/live/broadcast-encoder.ts';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { commandExists, requireComponent } from '../support/components.ts';
import { nginxRtmpAvailable, sharedNginxRtmp } from '../support/nginx-rtmp.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { redisAvailable, startRedis, stopChild, type TestRedis } from '../support/redis.ts';
import { api, connectMember, joinAs, openRoom, type Member, type OpenedRoom } from '../support/room-clients.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

interface Node {
  name: string;
  url: string;
  nodeId: string;
  process: ServerProcess;
}

interface Part {
  msn: number;
  index: number;
  uri: string;
}

interface View {
  text: string;
  mediaSequence: number;
  discontinuitySequence: number;
  parts: Part[];
  /** msn of each segment that opens with EXT-X-DISCONTINUITY. */
  discontinuities: number[];
  map: string | null;
}

function readPlaylist(text: string): View {
  const mediaSequence = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1] ?? NaN);
  const parts: Part[] = [];
  const discontinuities: number[] = [];
  let map: string | null = null;
  let msn = mediaSequence;
  let index = 0;
  for (const line of text.split('\n')) {
    if (line === '#EXT-X-DISCONTINUITY') discontinuities.push(msn);
    const m = /#EXT-X-MAP:URI="([^"]+)"/.exec(line);
    if (m) map = m[1]!;
    const p = /#EXT-X-PART:DURATION=[\d.]+,URI="([^"]+)"/.exec(line);
    if (p) parts.push({ msn, index: index++, uri: p[1]! });
    if (line && !line.startsWith('#')) {
      msn++;
      index = 0;
    }
  }
  return { text, mediaSequence, discontinuitySequence: Number(/#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)/.exec(text)?.[1] ?? 0), parts, discontinuities, map };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const LEASE = (roomId: string) => `remixroom:hls-lease:${roomId}`;

/** The libx264 ffmpeg processes whose parent is `pid` (a broadcast encoder of that node). */
function encodersOf(pid: number): number {
  let count = 0;
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (cmd.includes('ffmpeg') && cmd.includes('libx264')) count++;
    } catch {
      // gone meanwhile
    }
  }
  return count;
}

describe('broadcast mode across nodes: one encoder per room, the same playlists on every node', function () {
  this.timeout(180_000);
  let redis: TestRedis;
  let admin: RedisClientType;
  let data: { path: string; remove(): Promise<void> };
  const tokenSecret = crypto.randomBytes(32).toString('hex');
  const nodes: Node[] = [];
  const members: Member[] = [];
  let a: Node;
  let b: Node;
  let c: Node;
  /** The node that encodes after the kill. */
  let holder: Node;
  let room: OpenedRoom;
  /** The audio rendition's playlist path with the listen key. */
  let audio = '';

  before(async function () {
    requireComponent('ffmpeg', commandExists('ffmpeg') && (await ffmpegCannotBroadcast('ffmpeg')) === null, this);
    requireComponent('redis-server', redisAvailable(), this);
    redis = await startRedis();
    admin = createClient({ url: redis.url });
    await admin.connect();
    data = await demoDataDir();
    [a, b, c] = await Promise.all([spawnNode('A'), spawnNode('B'), spawnNode('C')]);
    room = await openRoom(a.url);
    // A remixer on A plays the room; one on B keeps it loaded there too. C never sees it.
    const onA = await member(a, 'remixer', 'Ana');
    await member(b, 'remixer', 'Bo');
    onA.doc.transact(() => (onA.doc.getMap('arrangement').get('transport') as import('yjs').Map<unknown>).set('playing', true));
    const on = await api<{ renditions: Record<string, string> }>(a.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: true }, room.hostToken);
    expect(on.status).to.equal(200);
    audio = on.body.renditions['audio']!;
  });

  after(async () => {
    while (members.length) members.pop()!.destroy();
    for (const n of nodes) await stopChild(n.process.child);
    await admin?.close();
    await redis?.stop();
    await data?.remove();
  });

  async function spawnNode(name: string): Promise<Node> {
    const p = spawnServer({
      PORT: '0',
      DATA_DIR: data.path,
      REDIS_URL: redis.url,
      TOKEN_SECRET: tokenSecret,
      ROOM_GRACE_MS: '60000',
      ROOM_LEASE_TTL_MS: '3000',
      HLS_SEGMENT_SEC: '1',
      RTMP_ALLOW_PRIVATE: '1',
    });
    const node: Node = { name, url: '', nodeId: '', process: p };
    nodes.push(node);
    const listening = await p.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/, 60_000);
    node.url = listening.slice(listening.indexOf('http'));
    const bridge = await p.waitFor(/"nodeId":"[^"]+"[^\n]*scale-out bridge connected/);
    node.nodeId = /"nodeId":"([^"]+)"/.exec(bridge)![1]!;
    return node;
  }

  async function member(node: Node, role: 'remixer' | 'listener', name: string): Promise<Member> {
    const { token } = await joinAs(node.url, room, role, name);
    const m = await connectMember(node.url, room.roomId, token);
    members.push(m);
    return m;
  }

  const get = (node: Node, path: string) => fetch(`${node.url}${path}`);
  const resolve = (uri: string) => {
    const u = new URL(uri, `http://x${audio}`);
    return u.pathname + u.search;
  };

  async function playlist(node: Node, query = ''): Promise<View | null> {
    const res = await get(node, `${audio}${query}`);
    if (res.status !== 200) {
      await res.arrayBuffer();
      return null;
    }
    return readPlaylist(await res.text());
  }

  async function until<T>(what: string, timeoutMs: number, check: () => Promise<T | null | undefined | false>): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const v = await check();
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(100);
    }
  }

  async function partBytes(node: Node, uri: string): Promise<Buffer | null> {
    const res = await get(node, resolve(uri));
    if (res.status !== 200) {
      await res.arrayBuffer();
      return null;
    }
    return Buffer.from(await res.arrayBuffer());
  }

  /** The part after `p` as a player asks for it: a blocking reload for it, retried on 503 (as hls.js does). */
  async function nextPart(node: Node, p: Part, timeoutMs: number): Promise<{ view: View; part: Part }> {
    return until(`the part after ${p.msn}.${p.index} on ${node.name}`, timeoutMs, async () => {
      const view = await playlist(node, `&_HLS_msn=${p.msn}&_HLS_part=${p.index + 1}`);
      if (!view) return null;
      const part = view.parts.find((q) => (q.msn === p.msn && q.index === p.index + 1) || q.msn > p.msn);
      return part ? { view, part } : null;
    });
  }

  const encoding = (): Node[] => [a, b].filter((n) => n.process.child.exitCode === null && n.process.child.signalCode === null && encodersOf(n.process.child.pid!) > 0);

  it('one node encodes the room: one libx264 ffmpeg on the machine, the lease names that node', async () => {
    await until('parts on A and B', 30_000, async () => ((await playlist(a))?.parts.length ?? 0) >= 3 && ((await playlist(b))?.parts.length ?? 0) >= 3);
    const encoders = [a, b, c].map((n) => encodersOf(n.process.child.pid!));
    expect(encoders.reduce((x, y) => x + y, 0), `encoders per node A, B, C: ${encoders}`).to.equal(1);
    expect(encoders[2], 'C has not loaded the room').to.equal(0);
    const holder = await admin.get(LEASE(room.roomId));
    expect(holder).to.equal(encoding()[0]!.nodeId);
  });

  it('a player alternating between the nodes sees one numbering and the same bytes for the same part; C, which never loaded the room, serves it too', async () => {
    let last = (await until('a playlist on A', 10_000, () => playlist(a)))!.parts.at(-1)!;
    const order = [b, c, a];
    for (let i = 0; i < 12; i++) {
      const node = order[i % order.length]!;
      const { view, part } = await nextPart(node, last, 15_000);
      // The very next part: the next index in the segment, or the next segment's first.
      const expected = part.msn === last.msn ? { msn: last.msn, index: last.index + 1 } : { msn: last.msn + 1, index: 0 };
      expect({ msn: part.msn, index: part.index }, `after ${last.msn}.${last.index} on ${node.name}`).to.deep.equal(expected);
      const bytes = await Promise.all([a, b, c].map((n) => until(`${part.uri} on ${n.name}`, 5000, () => partBytes(n, part.uri))));
      expect(bytes[0]!.length).to.be.greaterThan(0);
      expect(bytes[1]!.equals(bytes[0]!) && bytes[2]!.equals(bytes[0]!), `${part.uri}: the same bytes on A, B and C`).to.equal(true);
      // The same window and sequence numbers everywhere (each node lists the part by now).
      const views = await Promise.all([a, b, c].map((n) => playlist(n, `&_HLS_msn=${part.msn}&_HLS_part=${part.index}`)));
      for (const v of views) {
        expect(v!.mediaSequence).to.equal(view.mediaSequence);
        expect(v!.discontinuitySequence).to.equal(view.discontinuitySequence);
        expect(v!.map).to.equal(view.map);
        expect(v!.parts.find((q) => q.uri === part.uri), `${part.uri} listed`).to.not.equal(undefined);
      }
      last = part;
    }
    const map = (await playlist(a))!.map!;
    const init = await Promise.all([a, b, c].map((n) => partBytes(n, map)));
    expect(init[1]!.equals(init[0]!) && init[2]!.equals(init[0]!), 'the same init segment everywhere').to.equal(true);
  });

  it('an RTMP push started on the node that does not encode remuxes what the other encodes: still one encoder on the machine', async function () {
    requireComponent('nginx libnginx-mod-rtmp', nginxRtmpAvailable(), this);
    const nginx = await sharedNginxRtmp();
    const key = `nodes-${crypto.randomBytes(6).toString('hex')}`;
    nginx.allowedKeys.add(key);
    const follower = encoding()[0] === a ? b : a;
    const started = await api<{ push: { status: string } }>(follower.url, 'PUT', `/api/rooms/${room.roomId}/rtmp`, { url: nginx.url, key }, room.hostToken);
    expect(started.status).to.equal(201);
    await until('the push live', 20_000, async () => {
      const st = await api<{ push: { status: string } | null }>(follower.url, 'GET', `/api/rooms/${room.roomId}/rtmp`, undefined, room.hostToken);
      return st.body.push?.status === 'live';
    });
    await sleep(3000);
    expect(encodersOf(follower.process.child.pid!), 'the follower started no encoder of its own').to.equal(0);
    expect([a, b, c].reduce((n, node) => n + encodersOf(node.process.child.pid!), 0)).to.equal(1);
    const stopped = await api<{ push: { status: string } }>(follower.url, 'DELETE', `/api/rooms/${room.roomId}/rtmp`, undefined, room.hostToken);
    expect(stopped.body.push.status).to.equal('stopped');
    const { stdout } = await promisify(execFile)('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_name', '-of', 'csv=p=0', nginx.recording(key)]);
    expect(stdout.split('\n').filter(Boolean).sort()).to.deep.equal(['aac', 'h264']);
  });

  it('the encoding node killed (SIGKILL): the other takes over within seconds, the playlist goes on after a discontinuity with higher numbers, players keep getting parts', async function () {
    const [victim] = encoding();
    expect(victim, 'a node encodes').to.not.equal(undefined);
    const survivor = victim === a ? b : a;
    let last = (await playlist(survivor))!.parts.at(-1)!;
    const lastBefore = last;
    const killedAt = Date.now();
    victim!.process.child.kill('SIGKILL');
    await victim!.process.exited;
    // The player goes on asking the survivor (and C) for the next part.
    const { view, part } = await nextPart(survivor, last, 30_000);
    const takeoverMs = Date.now() - killedAt;
    console.log(`      takeover: the first part after the kill was served ${takeoverMs} ms after SIGKILL`);
    expect(part.msn, 'a new segment after the takeover').to.be.greaterThan(lastBefore.msn);
    expect(view.discontinuities, 'a discontinuity before it').to.include(part.msn);
    expect(encodersOf(survivor.process.child.pid!), 'the survivor encodes').to.equal(1);
    expect(await admin.get(LEASE(room.roomId))).to.equal(survivor.nodeId);
    holder = survivor;
    last = part;
    // And keeps going: the next parts come one after another, from the survivor and from C alike.
    for (let i = 0; i < 8; i++) {
      const node = i % 2 === 0 ? survivor : c;
      const next = await nextPart(node, last, 10_000);
      const expected = next.part.msn === last.msn ? { msn: last.msn, index: last.index + 1 } : { msn: last.msn + 1, index: 0 };
      expect({ msn: next.part.msn, index: next.part.index }).to.deep.equal(expected);
      const [x, y] = await Promise.all([survivor, c].map((n) => until(`${next.part.uri} on ${n.name}`, 5000, () => partBytes(n, next.part.uri))));
      expect(x!.equals(y!), `${next.part.uri}: the same bytes on ${survivor.name} and C`).to.equal(true);
      last = next.part;
    }
    const views = await Promise.all([survivor, c].map((n) => playlist(n, `&_HLS_msn=${last.msn}&_HLS_part=${last.index}`)));
    expect(views[1]!.discontinuitySequence).to.equal(views[0]!.discontinuitySequence);
    expect(views[1]!.discontinuities).to.deep.equal(views[0]!.discontinuities);
  });

  it('the encoding node shut down (SIGTERM, a rolling restart): it gives the lease back and a node that has the room loaded goes on at once', async () => {
    const d = await spawnNode('D');
    await member(d, 'remixer', 'Dee');
    // D follows the room's playlists (it has loaded the room) before the holder goes.
    await until('parts on D', 20_000, async () => ((await playlist(d))?.parts.length ?? 0) >= 3);
    const last = (await playlist(c))!.parts.at(-1)!;
    const stoppedAt = Date.now();
    await stopChild(holder.process.child, 'SIGTERM');
    // The stopping node may still publish its last parts while it shuts down: the new node's first
    // part is the first one after a discontinuity past `last`.
    let seen = last;
    let handedOver: { view: View; part: Part } | null = null;
    while (!handedOver) {
      if (Date.now() - stoppedAt > 20_000) throw new Error('no part of the new encoder within 20 s of SIGTERM');
      const next = await nextPart(c, seen, 20_000);
      if (next.view.discontinuities.includes(next.part.msn) && next.part.index === 0 && next.part.msn > last.msn) handedOver = next;
      seen = next.part;
    }
    const { view, part } = handedOver;
    console.log(`      handover: the first part after the shutdown was served ${Date.now() - stoppedAt} ms after SIGTERM (its exit included)`);
    expect(part.msn).to.be.greaterThan(last.msn);
    expect(view.discontinuities).to.include(part.msn);
    expect(await admin.get(LEASE(room.roomId))).to.equal(d.nodeId);
    expect(encodersOf(d.process.child.pid!)).to.equal(1);
    const next = await nextPart(d, part, 10_000);
    const [x, y] = await Promise.all([c, d].map((n) => until(`${next.part.uri} on ${n.name}`, 5000, () => partBytes(n, next.part.uri))));
    expect(x!.equals(y!)).to.equal(true);
  });

  it('switched off through any node: the encoder stops and the playlists end on every node (EXT-X-ENDLIST), C included', async () => {
    const alive = nodes.filter((n) => n !== c).filter((n) => n.process.child.exitCode === null && n.process.child.signalCode === null);
    const off = await api(alive[0]!.url, 'PUT', `/api/rooms/${room.roomId}/broadcast`, { enabled: false }, room.hostToken);
    expect(off.status).to.equal(200);
    for (const n of [...alive, c]) {
      await until(`EXT-X-ENDLIST on ${n.name}`, 10_000, async () => (await playlist(n))?.text.includes('#EXT-X-ENDLIST'));
    }
    await until('no encoder left', 10_000, async () => alive.every((n) => encodersOf(n.process.child.pid!) === 0));
    await until('the encoding lease given back', 10_000, async () => (await admin.get(LEASE(room.roomId))) === null);
  });
});
