// The room fuzzer: one real server (in this process), one room, and for a few seconds:
//
// - honest members: stock WebsocketProvider clients (the host, remixers, listeners), each also
//   on socket.io half the time, making random edits of the room document: mostly sound for their
//   role and the rules they see (controls within range, mute/solo, excerpts and loops, play, pause,
//   seek, and for hosts narrowed or reset ranges, locked stems, prompt policy, chat, roles), some
//   not (test/support/room-edits.ts); the first host also changes roles over HTTP. They chat,
//   react, send prompts, approve them, change their awareness, drop off and come back (editing
//   while away), some edits in bursts or in one transaction;
// - attackers at the same time: raw y-websocket connections with valid tokens (a remixer, a
//   listener, a second host) sending random bytes, honest frames replayed and mutated, crafted
//   updates (invalid values of every Yjs content type, huge or deep content, missing history,
//   version-2 encodings, structs under other members' client ids), unknown message types, huge
//   varints, oversized frames, awareness floods and states for others' client ids; socket.io
//   clients sending random and malformed payloads for every event and unknown ones, in floods;
//   hand-written engine.io/socket.io packets (broken JSON, deep nesting, missing attachments);
// - bulk churn: a few hundred connections opened and dropped at once, good and bad tokens, TCP
//   garbage; and perhaps a blackout: everyone drops at once for about the grace period, so that
//   the room unloads and loads again under all of the above.
//
// Then the invariants (checkSettled, checkServer): the server answers /healthz and raised nothing;
// the room's document is valid for its current rules (fuzz.ts validates it without the DocGuard's
// code) and state() is what it holds; the guard's shadow is in step; every honest member, after a
// quiet period and again after a fresh sync, holds the server's document; no honest member saw an
// invalid document for long while connected (short ones are counted as transient); no honest
// member was refused as malformed or dropped; each one's awareness is its own; and once everyone
// has left, the room unloads and holds nothing, and no connection comes back (one that does is
// named: the server's count and the fuzzer's own connections still open).
//
// A seed fixes every choice each actor makes (each actor draws from its own stream),
// not how the actors interleave in time; a failing seed reproduces the same traffic,
// not always the same race. Its report names the seed.
import net from 'node:net';
import * as Y from 'yjs';
import WebSocket from 'ws';
import * as awarenessProtocol from 'y-protocols/awareness';
import * as decoding from 'lib0/decoding';
import * as encoding from 'lib0/encoding';
import { io, type Socket } from 'socket.io-client';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import type { Room } from '../../server/rooms/room.ts';
import type { ReleaseRecord } from '../../server/store/store.ts';
import { REACTIONS, type ClientToServerEvents, type PendingPrompt, type ServerToClientEvents } from '../../shared/socket-events.ts';
import type { RoomRelease } from '../../shared/room-doc.ts';
import type { Role } from '../../shared/roles.ts';
import { frames, mutateBytes, randomJson, roomDocProblems, rootsJson, firstDifference, weirdString, Rng, MSG_AUTH, MSG_AWARENESS, MSG_SYNC } from './fuzz.ts';
import { api, connectMember, joinAs, openRoom, waitFor, type Member, type OpenedRoom } from './room-clients.ts';
import { mapAt, roleIn, soundEdit, unsoundEdit, type Editor } from './room-edits.ts';
import { startTestServer, type TestServer } from './test-server.ts';

type IoClient = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface RoomFuzzOptions {
  seed: number;
  /** How long the members and attackers run. */
  fuzzMs?: number;
  remixers?: number;
  listeners?: number;
  syncAttackers?: number;
  ioAttackers?: number;
  rawIoAttackers?: number;
  /** Connections opened and dropped in bulk over the run. */
  churnConnections?: number;
  /** Everyone drops at once for about the grace period, once; default: the seed decides. */
  blackout?: boolean;
  /** A release whose rules narrow stems, ranges and prompts; default: the seed decides. */
  strictRelease?: boolean;
  graceMs?: number;
  /** Overrides of how often each y-websocket attack is picked. */
  syncAttackWeights?: Partial<Record<SyncAttack, number>>;
}

export interface RoomFuzzReport {
  seed: number;
  /** Broken invariants; the run failed when there is any. */
  problems: string[];
  /** Things worth knowing that are allowed (transient corrections, refusals seen). */
  notes: string[];
  stats: Record<string, number>;
  timings: { setupMs: number; fuzzMs: number; settleMs: number; totalMs: number };
}

/** How long an honest member may look at an invalid document while connected before it counts as stuck. */
const STAY_MS = 3000;
const SETTLE_TIMEOUT_MS = 15_000;
const HONEST_BAD_REFUSALS = new Set(['malformed', 'too_large', 'missing_history']);
const HONEST_BAD_CLOSES = new Set([4508, 1009, 4403]);
const STRICT_RELEASE_ID = 'fuzz-strict';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

class Stats {
  readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  toObject(): Record<string, number> {
    return Object.fromEntries([...this.counts].sort(([a], [b]) => a.localeCompare(b)));
  }
}

/** Everyone offline while closed; actors wait at it. */
class Gate {
  #closed = false;
  #waiters: (() => void)[] = [];
  #onClose: (() => void)[] = [];
  get closed(): boolean {
    return this.#closed;
  }
  onClose(fn: () => void): void {
    this.#onClose.push(fn);
  }
  close(): void {
    this.#closed = true;
    for (const fn of this.#onClose) fn();
  }
  open(): void {
    this.#closed = false;
    for (const w of this.#waiters.splice(0)) w();
  }
  wait(): Promise<void> {
    return this.#closed ? new Promise((r) => this.#waiters.push(r)) : Promise.resolve();
  }
}

/** Real frames sent by honest clients, for attackers to replay and mutate: the latest few hundred. */
class FramePool {
  readonly frames: Uint8Array[] = [];
  readonly updates: Uint8Array[] = [];
  #nextFrame = 0;
  #nextUpdate = 0;
  push(frame: Uint8Array, update?: Uint8Array): void {
    this.frames[this.#nextFrame++ % 400] = frame;
    if (update) this.updates[this.#nextUpdate++ % 200] = update;
  }
}

class FuzzContext {
  readonly seed: number;
  readonly t: TestServer;
  readonly room: OpenedRoom;
  readonly release: RoomRelease;
  readonly gate = new Gate();
  readonly pool = new FramePool();
  readonly stats = new Stats();
  readonly problems: string[] = [];
  /** Every connection the fuzzer opens, by who opened it: named when the room will not unload. */
  readonly connections = new Set<{ who: string; open: () => boolean }>();
  readonly notes: string[] = [];
  readonly honest: HonestMember[] = [];
  /** Awareness client ids seen in the room, with the last clock seen. */
  readonly awarenessSeen = new Map<number, number>();
  readonly tokens: { remixer: string[]; listener: string[]; host: string; otherRoom: string };
  stopping = false;

  constructor(seed: number, t: TestServer, room: OpenedRoom, release: RoomRelease, tokens: FuzzContext['tokens']) {
    this.seed = seed;
    this.t = t;
    this.room = room;
    this.release = release;
    this.tokens = tokens;
  }

  get wsBase(): string {
    return this.t.url.replace(/^http/, 'ws');
  }

  syncUrl(token: string | null, roomId = this.room.roomId): string {
    return `${this.wsBase}/sync/${roomId}${token === null ? '' : `?token=${encodeURIComponent(token)}`}`;
  }

  serverRoom(): Room | undefined {
    return this.t.server.rooms.get(this.room.roomId);
  }

  track(who: string, open: () => boolean): void {
    this.connections.add({ who, open });
  }

  problem(line: string): void {
    if (!this.problems.includes(line)) this.problems.push(line);
  }
}

// ------------------------------------------------------------------ honest members

class HonestMember {
  readonly label: string;
  readonly tokenRole: Role;
  readonly userId: string;
  readonly token: string;
  readonly rng: Rng;
  readonly #ctx: FuzzContext;
  readonly #isFirstHost: boolean;
  member!: Member;
  socket: IoClient | null = null;
  #wantOnline = true;
  #queue: PendingPrompt[] = [];
  readonly closes: number[] = [];
  /** Since when the document has been invalid, and why. */
  #invalidSince: number | null = null;
  #invalidWhat = '';
  #liveInvalidMs = 0;
  #sampler: NodeJS.Timeout | null = null;
  /**
   * Set by destroy(): nothing planned before it may connect again, such as an offline spell
   * (#offlineFor) that ends after the run and calls reconcile(), which reopens the socket.
   */
  #destroyed = false;
  #pendingHttp = new Set<Promise<unknown>>();
  transient = new Map<string, number>();

  constructor(ctx: FuzzContext, label: string, tokenRole: Role, token: string, userId: string, isFirstHost: boolean) {
    this.#ctx = ctx;
    this.label = label;
    this.tokenRole = tokenRole;
    this.token = token;
    this.userId = userId;
    this.#isFirstHost = isFirstHost;
    this.rng = Rng.derive(ctx.seed, `honest/${label}`);
  }

  get doc(): Y.Doc {
    return this.member.doc;
  }

  get live(): boolean {
    return this.member.provider.wsconnected && this.member.provider.synced;
  }

  role(): Role {
    return roleIn(this.doc, this.#ctx.release, this.userId, this.tokenRole);
  }

  async start(withSocket: boolean): Promise<void> {
    const ctx = this.#ctx;
    this.member = await connectMember(ctx.t.url, ctx.room.roomId, this.token, { awareness: { name: this.label } });
    ctx.track(`${this.label}'s sync provider`, () => this.member.provider.ws !== null);
    const { provider, doc } = this.member;
    provider.on('connection-close', (e) => {
      const code = e?.code ?? 0;
      this.closes.push(code);
      ctx.stats.add(`honest.close.${code}`);
    });
    doc.on('update', (update: Uint8Array, origin: unknown) => {
      if (origin !== provider) ctx.pool.push(frames.update(update), update);
    });
    provider.awareness.on('update', ({ added, updated, removed }: { added: number[]; updated: number[]; removed: number[] }, origin: unknown) => {
      const enc = encoding.createEncoder();
      encoding.writeVarUint(enc, MSG_AWARENESS);
      encoding.writeVarUint8Array(enc, awarenessProtocol.encodeAwarenessUpdate(provider.awareness, [...added, ...updated, ...removed]));
      if (origin === 'local') ctx.pool.push(encoding.toUint8Array(enc));
    });
    doc.on('afterTransaction', () => this.#observe());
    this.#sampler = setInterval(() => this.#sample(), 50);
    if (withSocket) this.#openSocket();
  }

  #openSocket(): void {
    const ctx = this.#ctx;
    const s: IoClient = io(ctx.t.url, {
      auth: { roomId: ctx.room.roomId, token: this.token },
      transports: ['websocket'],
      reconnectionDelay: 50,
      reconnectionDelayMax: 300,
      forceNew: true,
    });
    s.on('prompt:queue', (q) => {
      this.#queue = q;
    });
    s.on('room:refused', (r) => ctx.stats.add(`honest.io.refused.${r.code}`));
    s.on('disconnect', (reason) => {
      ctx.stats.add(`honest.io.disconnect.${reason.replace(/\s+/g, '_')}`);
      // The server ends a socket when the room unloads; a client comes back by itself.
      if (reason === 'io server disconnect' && !ctx.stopping) setTimeout(() => !ctx.stopping && !ctx.gate.closed && !this.#destroyed && s.connect(), 100);
    });
    this.socket = s;
    ctx.track(`${this.label}'s socket.io`, () => s.connected || s.active);
  }

  /** Validates the member's document after every transaction, to see what a person would have seen. */
  #observe(): void {
    const problems = roomDocProblems(this.doc, this.#ctx.release);
    if (problems.length > 0) {
      if (this.#invalidSince === null) {
        this.#invalidSince = performance.now();
        this.#invalidWhat = problems[0]!;
      }
    } else if (this.#invalidSince !== null) {
      const kind = this.#invalidWhat.split(':')[0]!.replace(/\.(?:[a-z]+)$/, '.*');
      this.transient.set(kind, (this.transient.get(kind) ?? 0) + 1);
      this.#invalidSince = null;
      this.#liveInvalidMs = 0;
    }
  }

  #sample(): void {
    if (this.#invalidSince === null || !this.live) return;
    this.#liveInvalidMs += 50;
    if (this.#liveInvalidMs > STAY_MS) {
      this.#ctx.problem(`${this.label} saw an invalid document for more than ${STAY_MS} ms while connected: ${this.#invalidWhat}`);
    }
  }

  /** Connected when it wants to be and the room is not in a blackout. */
  reconcile(): void {
    if (this.#destroyed) return;
    const should = this.#wantOnline && !this.#ctx.gate.closed && !this.#ctx.stopping;
    const p = this.member.provider;
    if (should && !p.shouldConnect) p.connect();
    if (!should && p.shouldConnect && !this.#ctx.stopping) p.disconnect();
    const s = this.socket;
    if (s) {
      if (!this.#ctx.gate.closed && !s.connected && !s.active) s.connect();
      if (this.#ctx.gate.closed && (s.connected || s.active)) s.disconnect();
    }
  }

  async run(until: number): Promise<void> {
    const rng = this.rng;
    const ctx = this.#ctx;
    const editor: Editor = {
      release: ctx.release,
      userId: this.userId,
      others: () => ctx.honest.map((h) => h.userId).concat(['u_nobody']),
      protectedUserId: ctx.honest[0]?.userId,
    };
    while (!ctx.stopping && performance.now() < until) {
      await sleep(rng.int(5, 120));
      if (ctx.stopping) break;
      this.reconcile();
      const role = this.role();
      const n = rng.chance(0.1) ? rng.int(2, 8) : 1;
      const one = () => {
        const what = rng.weighted([
          [80, 'sound'],
          [14, 'unsound'],
          [4, 'awareness'],
          [this.#isFirstHost ? 2 : 0, 'http'],
          [1.2, 'offline'],
          [this.socket ? 4 : 0, 'social'],
        ] as const);
        switch (what) {
          case 'sound':
            ctx.stats.add(`honest.edit.${soundEdit(this.doc, rng, editor, role)}`);
            break;
          case 'unsound':
            ctx.stats.add(`honest.edit.${unsoundEdit(this.doc, rng, editor, role)}`);
            break;
          case 'awareness':
            this.member.provider.awareness.setLocalStateField(
              rng.pick(['holding', 'cursor']),
              rng.chance(0.5) ? `mix.stems.${rng.pick(ctx.release.stems).id}.gainDb` : { x: rng.int(0, 999), y: rng.int(0, 999) },
            );
            break;
          case 'http':
            this.#changeRoleOverHttp();
            break;
          case 'offline':
            void this.#offlineFor(rng.int(50, 900));
            break;
          case 'social':
            this.#social();
            break;
        }
      };
      if (n > 1 && rng.chance(0.3)) this.doc.transact(() => Array.from({ length: n }, one));
      else for (let i = 0; i < n; i++) one();
    }
  }

  async #offlineFor(ms: number): Promise<void> {
    this.#ctx.stats.add('honest.offline');
    this.#wantOnline = false;
    this.reconcile();
    await sleep(ms);
    this.#wantOnline = true;
    this.reconcile();
  }

  #changeRoleOverHttp(): void {
    const ctx = this.#ctx;
    const rng = this.rng;
    const others = ctx.honest.filter((h) => h.userId !== this.userId);
    const target = rng.chance(0.9) && others.length ? rng.pick(others).userId : rng.pick(['u_ghost', 'bad id!', this.userId]);
    const role = rng.weighted([[1, 'host'], [4, 'remixer'], [3, 'listener'], [0.3, 'admin']] as const);
    const p = api(ctx.t.url, 'PUT', `/api/rooms/${ctx.room.roomId}/members/${encodeURIComponent(target)}/role`, { role }, rng.chance(0.9) ? this.token : ctx.tokens.remixer[0])
      .then((r) => ctx.stats.add(`honest.http.role.${r.status}`))
      .catch((err: unknown) => ctx.stats.add(`honest.http.error.${(err as Error).name}`))
      .finally(() => this.#pendingHttp.delete(p));
    this.#pendingHttp.add(p);
  }

  #social(): void {
    const ctx = this.#ctx;
    const rng = this.rng;
    const s = this.socket;
    if (!s || !s.connected) return;
    const ack = (what: string) => (err: Error | null, r?: { ok: boolean; refusal?: { code: string } }) => {
      if (err) {
        // An ack lost to a disconnect is expected; one lost on a live socket is not.
        ctx.stats.add(`honest.io.${what}.${s.connected ? 'timeout' : 'lost'}`);
        if (s.connected && !ctx.gate.closed && !ctx.stopping) ctx.notes.push(`${this.label}: no answer to ${what} within 5 s on a live socket`);
      } else ctx.stats.add(`honest.io.${what}.${r?.ok ? 'ok' : (r?.refusal?.code ?? 'refused')}`);
    };
    const kind = rng.weighted([
      [4, 'chat'],
      [3, 'reaction'],
      [2, 'prompt'],
      [this.role() === 'host' && this.#queue.length ? 3 : 0, 'decide'],
    ] as const);
    const timed = s.timeout(5000);
    switch (kind) {
      case 'chat':
        timed.emit('chat:send', { text: rng.chance(0.1) ? 'x'.repeat(600) : `hello ${weirdString(rng, 20)}` }, ack('chat') as never);
        break;
      case 'reaction':
        timed.emit('reaction:send', { emoji: rng.pick(REACTIONS) }, ack('reaction') as never);
        break;
      case 'prompt':
        timed.emit('prompt:submit', { text: `${rng.pick(['rain', 'neon', 'storm', 'sunrise'])} ${rng.pick(['city', 'sea', 'forest'])}` }, ack('prompt') as never);
        break;
      case 'decide':
        timed.emit('prompt:decide', { promptId: rng.pick(this.#queue).promptId, approve: rng.chance(0.6) }, ack('decide') as never);
        break;
    }
  }

  async settle(): Promise<void> {
    await Promise.allSettled([...this.#pendingHttp]);
  }

  async destroy(): Promise<void> {
    this.#destroyed = true;
    if (this.#sampler) clearInterval(this.#sampler);
    this.#sampler = null;
    this.socket?.disconnect();
    this.socket?.removeAllListeners();
    this.member?.destroy();
  }
}

// ------------------------------------------------------------------ y-websocket attackers

export type SyncAttack =
  | 'randomBytes'
  | 'mutatedFrame'
  | 'mutatedUpdate'
  | 'unsoundEdit'
  | 'soundEdit'
  | 'hugeContent'
  | 'forgedClient'
  | 'missingHistory'
  | 'wrongType'
  | 'hugeVarint'
  | 'awarenessOwn'
  | 'awarenessOthers'
  | 'awarenessBad'
  | 'step1'
  | 'textFrame'
  | 'emptyFrame'
  | 'v2Update'
  | 'oversize'
  | 'replay';

const SYNC_ATTACKS: readonly (readonly [number, SyncAttack])[] = [
  [8, 'randomBytes'],
  [12, 'mutatedFrame'],
  [12, 'mutatedUpdate'],
  [12, 'unsoundEdit'],
  [8, 'soundEdit'],
  [1, 'hugeContent'],
  [4, 'forgedClient'],
  [3, 'missingHistory'],
  [5, 'wrongType'],
  [4, 'hugeVarint'],
  [5, 'awarenessOwn'],
  [6, 'awarenessOthers'],
  [4, 'awarenessBad'],
  [3, 'step1'],
  [1, 'textFrame'],
  [1, 'emptyFrame'],
  [2, 'v2Update'],
  [0.2, 'oversize'],
  [3, 'replay'],
];

class SyncAttacker {
  /** Set by close(): a connect still in flight then must not keep its connection (it would hold the room). */
  #closed = false;
  readonly label: string;
  readonly #ctx: FuzzContext;
  readonly #token: string;
  readonly #role: Role;
  readonly rng: Rng;
  /** The room as the server showed it to this attacker. */
  readonly #mirror = new Y.Doc();
  /** A client of its own, built on the mirror, that keeps its edits like a stock client. */
  readonly #own = new Y.Doc();
  #ws: WebSocket | null = null;
  #awarenessClock = 0;
  #connects = 0;

  readonly #attacks: readonly (readonly [number, SyncAttack])[];

  constructor(ctx: FuzzContext, label: string, token: string, role: Role, weights: Partial<Record<SyncAttack, number>> = {}) {
    this.#ctx = ctx;
    this.label = label;
    this.#token = token;
    this.#role = role;
    this.#attacks = SYNC_ATTACKS.map(([w, kind]) => [weights[kind] ?? w, kind] as const);
    this.rng = Rng.derive(ctx.seed, `sync-attacker/${label}`);
    this.#own.clientID = this.rng.int(1, 2 ** 31);
    ctx.gate.onClose(() => this.#ws?.terminate());
  }

  #stats(key: string): void {
    this.#ctx.stats.add(`attacker.sync.${key}`);
  }

  async #connect(): Promise<WebSocket | null> {
    if (this.#connects++ > 60) return null;
    const ws = new WebSocket(this.#ctx.syncUrl(this.#token));
    this.#ctx.track(`sync attacker ${this.label}`, () => ws.readyState <= WebSocket.OPEN);
    ws.binaryType = 'nodebuffer';
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (isBinary) this.#receive(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    });
    ws.on('close', (code) => this.#stats(`close.${code}`));
    ws.on('error', () => this.#stats('error'));
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('open', () => resolve(true));
      ws.once('close', () => resolve(false));
      ws.once('unexpected-response', (_req, res) => {
        this.#stats(`upgrade.${res.statusCode}`);
        res.resume();
        resolve(false);
      });
    });
    if (!opened || this.#ctx.gate.closed || this.#closed) {
      ws.terminate();
      return null;
    }
    this.#ws = ws;
    ws.send(frames.syncStep1(Y.encodeStateVector(this.#mirror)));
    return ws;
  }

  #receive(frame: Uint8Array): void {
    try {
      const dec = decoding.createDecoder(frame);
      const type = decoding.readVarUint(dec);
      if (type === MSG_SYNC) {
        const step = decoding.readVarUint(dec);
        const payload = decoding.readVarUint8Array(dec);
        if (step === 0) {
          // Like a stock client: answer the server's state vector with what it lacks.
          if (this.rng.chance(0.7)) this.#ws?.send(frames.syncStep2(Y.encodeStateAsUpdate(this.#own, payload)));
        } else {
          Y.applyUpdate(this.#mirror, payload);
          Y.applyUpdate(this.#own, payload);
        }
      } else if (type === MSG_AWARENESS) {
        const a = decoding.createDecoder(decoding.readVarUint8Array(dec));
        const n = decoding.readVarUint(a);
        for (let i = 0; i < n; i++) {
          const id = decoding.readVarUint(a);
          const clock = decoding.readVarUint(a);
          decoding.readVarString(a);
          this.#ctx.awarenessSeen.set(id, Math.max(clock, this.#ctx.awarenessSeen.get(id) ?? 0));
        }
      } else if (type === MSG_AUTH) {
        decoding.readVarUint(dec);
        const r = JSON.parse(decoding.readVarString(dec)) as { code: string };
        this.#stats(`refused.${r.code}`);
      }
    } catch (err) {
      this.#ctx.problem(`${this.label} could not read a frame from the server: ${(err as Error).message}`);
    }
  }

  /** An edit made on a copy of the mirror under `clientId`, as an update. */
  #craft(clientId: number | null, edit: (doc: Y.Doc) => void, base: Y.Doc = this.#mirror): Uint8Array {
    const doc = new Y.Doc();
    Y.applyUpdate(doc, Y.encodeStateAsUpdate(base));
    // After loading: Yjs takes a new id when a remote update writes under its own.
    doc.clientID = clientId ?? this.rng.int(1, 2 ** 31);
    const sv = Y.encodeStateVector(doc);
    doc.transact(() => edit(doc));
    const update = Y.encodeStateAsUpdate(doc, sv);
    doc.destroy();
    return update;
  }

  #editor(): Editor {
    return { release: this.#ctx.release, userId: `attacker-${this.label}`, others: () => this.#ctx.honest.map((h) => h.userId) };
  }

  /** One attack: the frames it sends. */
  #frames(kind: SyncAttack): (Uint8Array | string)[] {
    const rng = this.rng;
    const pool = this.#ctx.pool;
    switch (kind) {
      case 'randomBytes':
        return [rng.bytes(rng.chance(0.9) ? rng.int(0, 64) : rng.int(65, 4096))];
      case 'mutatedFrame':
        return pool.frames.length ? [mutateBytes(rng, rng.pick(pool.frames), rng.pick(pool.frames))] : [];
      case 'mutatedUpdate': {
        if (!pool.updates.length) return [];
        const bad = mutateBytes(rng, rng.pick(pool.updates), rng.pick(pool.updates));
        return [rng.chance(0.8) ? frames.update(bad) : frames.syncStep2(bad)];
      }
      case 'replay':
        return pool.frames.length ? Array.from({ length: rng.int(1, 5) }, () => rng.pick(pool.frames)) : [];
      case 'unsoundEdit':
      case 'soundEdit': {
        const before = Y.encodeStateVector(this.#own);
        this.#own.transact(() => {
          const n = rng.int(1, 3);
          for (let i = 0; i < n; i++) {
            if (kind === 'soundEdit') soundEdit(this.#own, rng, this.#editor(), this.#role);
            else unsoundEdit(this.#own, rng, this.#editor(), this.#role);
          }
        });
        return [frames.update(Y.encodeStateAsUpdate(this.#own, before))];
      }
      case 'hugeContent': {
        const update = this.#craft(null, (d) =>
          rng.pick([
            () => d.getText('huge').insert(0, 'x'.repeat(rng.int(10_000, 200_000))),
            () => {
              const strip = mapAt(d, 'mix', 'stems', rng.pick(this.#ctx.release.stems).id);
              for (let i = 0; i < 5000; i++) strip?.set(`k${i}`, i);
            },
            () => {
              let m = new Y.Map<unknown>();
              const top = m;
              for (let i = 0; i < 200; i++) {
                const next = new Y.Map<unknown>();
                m.set('deeper', next);
                m = next;
              }
              d.getMap('mix').set('master', top);
            },
            () => d.getMap('rules').set('roles', Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`u${i}`, 'host']))),
            () => d.getArray('list').insert(0, Array.from({ length: 20_000 }, (_, i) => i)),
          ])(),
        );
        return [frames.update(update)];
      }
      case 'forgedClient': {
        // Structs under someone else's client id, at that client's next clock.
        // Half the time a live member's current id (an attacker learns it from the latest updates it sees).
        const ids = [...Y.decodeStateVector(Y.encodeStateVector(this.#mirror)).keys()].filter((id) => id !== this.#own.clientID);
        const live = this.#ctx.honest.map((h) => h.doc.clientID);
        if (!ids.length) return [];
        const victim = rng.chance(0.5) ? rng.pick(live) : rng.pick(ids);
        const edit = (d: Y.Doc) => (rng.chance(0.5) ? soundEdit(d, rng, this.#editor(), this.#role) : unsoundEdit(d, rng, this.#editor(), this.#role));
        return [frames.update(this.#craft(victim, edit))];
      }
      case 'missingHistory': {
        const doc = new Y.Doc();
        doc.clientID = rng.int(1, 2 ** 31);
        Y.applyUpdate(doc, Y.encodeStateAsUpdate(this.#mirror));
        soundEdit(doc, rng, this.#editor(), this.#role);
        const sv = Y.encodeStateVector(doc);
        soundEdit(doc, rng, this.#editor(), this.#role);
        mapAt(doc, 'mix', 'master')?.set('gainDb', -1);
        const update = Y.encodeStateAsUpdate(doc, sv);
        doc.destroy();
        return [frames.update(update)];
      }
      case 'wrongType': {
        const enc = encoding.createEncoder();
        const type = rng.chance(0.5) ? rng.int(4, 300) : rng.pick([MSG_SYNC, MSG_AUTH, 3]);
        encoding.writeVarUint(enc, type);
        if (type === MSG_SYNC) encoding.writeVarUint(enc, rng.int(3, 1000));
        encoding.writeUint8Array(enc, rng.bytes(rng.int(0, 32)));
        return [encoding.toUint8Array(enc)];
      }
      case 'hugeVarint': {
        const huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f];
        return [
          rng.pick([
            Uint8Array.from(huge),
            Uint8Array.from([MSG_SYNC, ...huge]),
            Uint8Array.from([MSG_SYNC, 2, 0xff, 0xff, 0xff, 0xff, 0x0f, 1, 2, 3]),
            Uint8Array.from([MSG_SYNC, 0, ...huge, 1]),
            Uint8Array.from([MSG_AWARENESS, 0xfe, 0xff, 0xff, 0xff, 0x0f, 1]),
            Uint8Array.from([MSG_AWARENESS, 6, 1, ...huge.slice(0, 5)]),
            Uint8Array.from([0xff, 0xff, 0xff]),
          ]),
        ];
      }
      case 'awarenessOwn': {
        const n = rng.chance(0.2) ? rng.int(10, 60) : 1;
        return Array.from({ length: n }, () =>
          frames.awareness([{ clientId: this.#own.clientID, clock: ++this.#awarenessClock, json: JSON.stringify(rng.chance(0.8) ? { cursor: randomJson(rng, 2) } : null) }]),
        );
      }
      case 'awarenessOthers': {
        const ids = [...this.#ctx.awarenessSeen.keys(), ...this.#ctx.honest.map((h) => h.doc.clientID)].filter((id) => id !== this.#own.clientID);
        if (!ids.length) return [];
        const id = rng.pick(ids);
        const seen = this.#ctx.awarenessSeen.get(id) ?? 0;
        const clock = rng.pick([seen, seen + 1, seen + rng.int(2, 50), 2 ** 40]);
        const json = JSON.stringify(rng.chance(0.3) ? null : { name: 'The Host', member: { userId: 'forged', role: 'host' }, holding: 'mix.master.gainDb' });
        return [frames.awareness([{ clientId: id, clock, json }])];
      }
      case 'awarenessBad': {
        const id = this.#own.clientID;
        return [
          rng.pick([
            () => frames.awareness(Array.from({ length: rng.int(5, 40) }, (_, i) => ({ clientId: rng.int(1, 2 ** 31), clock: i, json: '{}' }))),
            () => frames.awareness([{ clientId: id, clock: ++this.#awarenessClock, json: JSON.stringify({ pad: 'x'.repeat(rng.int(4097, 20_000)) }) }]),
            () => frames.awareness([{ clientId: id, clock: ++this.#awarenessClock, json: rng.pick(['{', '', 'undefined', '{"a":1', '\u0000']) }]),
            () => frames.awareness([{ clientId: id, clock: ++this.#awarenessClock, json: rng.pick(['42', '[1,2]', '"x"', 'true', '{"__proto__":{"x":1}}']) }]),
            () => frames.awareness([{ clientId: Number.MAX_SAFE_INTEGER, clock: 1, json: '{}' }]),
            () => frames.awareness([
              { clientId: rng.int(1, 2 ** 31), clock: 1, json: '{}' },
              { clientId: rng.int(1, 2 ** 31), clock: 1, json: '{}' },
              { clientId: rng.int(1, 2 ** 31), clock: 1, json: '{}' },
            ]),
          ])(),
        ];
      }
      case 'step1':
        return [frames.syncStep1(rng.chance(0.5) ? new Uint8Array([0]) : rng.bytes(rng.int(1, 40)))];
      case 'textFrame':
        return [rng.pick(['hello', '{"type":"sync"}', weirdString(rng, 200)])];
      case 'emptyFrame':
        return [new Uint8Array(0)];
      case 'v2Update':
        return [frames.update(Y.encodeStateAsUpdateV2(this.#own, new Uint8Array([0])))];
      case 'oversize':
        return [new Uint8Array(1024 * 1024 + rng.int(1, 4096))];
    }
  }

  async run(until: number): Promise<void> {
    const ctx = this.#ctx;
    const rng = this.rng;
    while (!ctx.stopping && performance.now() < until) {
      await ctx.gate.wait();
      if (ctx.stopping) break;
      let ws = this.#ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        this.#ws = null;
        ws = await this.#connect();
        if (!ws) {
          await sleep(rng.int(20, 200));
          if (this.#connects > 60) return;
          continue;
        }
      }
      const flood = rng.chance(0.03) ? rng.int(30, 150) : 1;
      for (let i = 0; i < flood; i++) {
        const kind = rng.weighted(this.#attacks);
        if (flood > 1 && kind === 'oversize') continue;
        let out: (Uint8Array | string)[];
        try {
          out = this.#frames(kind);
        } catch {
          // Its own copy of the room can be beyond Yjs (it keeps what it is sent, refusals and all).
          this.#stats(`craftFailed.${kind}`);
          continue;
        }
        for (const f of out) {
          if (ws.readyState !== WebSocket.OPEN) break;
          ws.send(f, { binary: typeof f !== 'string' });
        }
        this.#stats(`sent.${kind}`);
      }
      if (rng.chance(0.01)) {
        ws.close();
        this.#stats('reconnect');
      }
      await sleep(rng.int(2, 30));
    }
  }

  close(): void {
    this.#closed = true;
    this.#ws?.terminate();
    this.#ws = null;
    this.#mirror.destroy();
    this.#own.destroy();
  }
}

// ------------------------------------------------------------------ socket.io attackers

const KNOWN_EVENTS = ['chat:send', 'reaction:send', 'prompt:submit', 'prompt:decide'] as const;
const ODD_EVENTS = ['presence', 'room:refused', 'room:ended', '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'x'.repeat(300), 'chat:send ', ''];

function payloadFor(rng: Rng, event: string): unknown {
  switch (rng.int(0, 9)) {
    case 0:
      return { text: 'x'.repeat(rng.int(10_001, 40_000)) };
    case 1:
      return Buffer.from(rng.bytes(rng.int(0, 64)));
    case 2: {
      let deep: unknown = 1;
      for (let i = 0; i < rng.int(50, 600); i++) deep = [deep];
      return deep;
    }
    case 3:
      return JSON.parse('{"__proto__":{"polluted":true},"text":"hi"}') as unknown;
    case 4:
      return event === 'chat:send' || event === 'prompt:submit'
        ? { text: weirdString(rng, 600), ...(rng.chance(0.3) ? { extra: 1 } : {}) }
        : event === 'reaction:send'
          ? { emoji: rng.pick([...REACTIONS, '💩', '', null]) }
          : { promptId: rng.pick(['', 'x'.repeat(65), weirdString(rng, 10)]), approve: rng.pick([true, 'yes', 1]) };
    default:
      return randomJson(rng, 4);
  }
}

class IoAttacker {
  /** Set by close(): a connect still in flight then must not keep its connection (it would hold the room). */
  #closed = false;
  readonly label: string;
  readonly #ctx: FuzzContext;
  readonly #token: string;
  readonly rng: Rng;
  #socket: IoClient | null = null;
  #connects = 0;

  constructor(ctx: FuzzContext, label: string, token: string) {
    this.#ctx = ctx;
    this.label = label;
    this.#token = token;
    this.rng = Rng.derive(ctx.seed, `io-attacker/${label}`);
    ctx.gate.onClose(() => this.#socket?.disconnect());
  }

  async #connect(): Promise<IoClient | null> {
    if (this.#connects++ > 40) return null;
    const rng = this.rng;
    const auth = rng.weighted([
      [8, { roomId: this.#ctx.room.roomId, token: this.#token }],
      [1, { roomId: this.#ctx.room.roomId, token: 'rr1.forged.token' }],
      [1, { roomId: this.#ctx.room.roomId }],
      [1, { roomId: 'x'.repeat(100), token: this.#token, extra: true }],
      [1, { roomId: this.#ctx.room.roomId, token: this.#ctx.tokens.otherRoom }],
    ] as const);
    const s: IoClient = io(this.#ctx.t.url, { auth, transports: ['websocket'], reconnection: false, forceNew: true, timeout: 3000 });
    this.#ctx.track(`socket.io attacker ${this.label}`, () => s.connected || s.active);
    const ok = await new Promise<boolean>((resolve) => {
      s.once('connect', () => resolve(true));
      s.once('connect_error', () => resolve(false));
      setTimeout(() => resolve(false), 3000);
    });
    this.#ctx.stats.add(`attacker.io.connect.${ok ? 'ok' : 'refused'}`);
    if (!ok || this.#ctx.gate.closed || this.#closed) {
      s.disconnect();
      return null;
    }
    s.on('disconnect', (reason) => this.#ctx.stats.add(`attacker.io.disconnect.${reason.replace(/\s+/g, '_')}`));
    this.#socket = s;
    return s;
  }

  async run(until: number): Promise<void> {
    const ctx = this.#ctx;
    const rng = this.rng;
    while (!ctx.stopping && performance.now() < until) {
      await ctx.gate.wait();
      if (ctx.stopping) break;
      let s = this.#socket;
      if (!s || !s.connected) {
        s?.disconnect();
        this.#socket = null;
        s = await this.#connect();
        if (!s) {
          if (this.#connects > 40) return;
          await sleep(rng.int(20, 200));
          continue;
        }
      }
      const flood = rng.chance(0.04) ? rng.int(20, 120) : 1;
      for (let i = 0; i < flood && s.connected; i++) {
        const event = rng.chance(0.8) ? rng.pick(KNOWN_EVENTS) : rng.pick(ODD_EVENTS);
        const args = Array.from({ length: rng.weighted([[1, 0], [8, 1], [2, 2]] as const) }, () => payloadFor(rng, event));
        if (rng.chance(0.6)) args.push((..._reply: unknown[]) => ctx.stats.add('attacker.io.ack'));
        try {
          (s.emit as (ev: string, ...a: unknown[]) => unknown)(event, ...args);
          ctx.stats.add('attacker.io.sent');
        } catch {
          ctx.stats.add('attacker.io.client-refused');
        }
      }
      await sleep(rng.int(3, 40));
    }
  }

  close(): void {
    this.#closed = true;
    this.#socket?.disconnect();
    this.#socket?.removeAllListeners();
    this.#socket = null;
  }
}

/** Speaks engine.io and socket.io packets by hand, to send what socket.io-client never would. */
class RawIoAttacker {
  /** Set by close(): a connect still in flight then must not keep its connection (it would hold the room). */
  #closed = false;
  readonly label: string;
  readonly #ctx: FuzzContext;
  readonly #token: string;
  readonly rng: Rng;
  #ws: WebSocket | null = null;
  #connects = 0;

  constructor(ctx: FuzzContext, label: string, token: string) {
    this.#ctx = ctx;
    this.label = label;
    this.#token = token;
    this.rng = Rng.derive(ctx.seed, `raw-io-attacker/${label}`);
    ctx.gate.onClose(() => this.#ws?.terminate());
  }

  async #connect(): Promise<WebSocket | null> {
    if (this.#connects++ > 40) return null;
    const ws = new WebSocket(`${this.#ctx.wsBase}/socket.io/?EIO=4&transport=websocket`);
    this.#ctx.track(`raw socket.io attacker ${this.label}`, () => ws.readyState <= WebSocket.OPEN);
    ws.on('error', () => this.#ctx.stats.add('attacker.rawio.error'));
    ws.on('close', (code) => this.#ctx.stats.add(`attacker.rawio.close.${code}`));
    ws.on('message', (data: Buffer, isBinary: boolean) => {
      if (!isBinary && data.toString() === '2') ws.send('3');
    });
    const opened = await new Promise<boolean>((resolve) => {
      ws.once('message', () => resolve(true));
      ws.once('close', () => resolve(false));
      setTimeout(() => resolve(false), 3000);
    });
    if (!opened || this.#ctx.gate.closed || this.#closed) {
      ws.terminate();
      return null;
    }
    const auth = this.rng.chance(0.85) ? { roomId: this.#ctx.room.roomId, token: this.#token } : randomJson(this.rng, 2);
    ws.send(`40${JSON.stringify(auth)}`);
    this.#ws = ws;
    return ws;
  }

  #packet(): (string | Buffer)[] {
    const rng = this.rng;
    const event = rng.chance(0.8) ? rng.pick(KNOWN_EVENTS) : rng.pick(ODD_EVENTS);
    const valid = `42${JSON.stringify([event, payloadFor(rng, event)])}`;
    return rng.pick([
      () => [valid],
      () => [`42${rng.int(0, 2 ** 40)}${JSON.stringify([event, { text: 'hi' }])}`],
      () => [`4299999999999999999999999${JSON.stringify([event, {}])}`],
      () => [new TextDecoder().decode(mutateBytes(rng, new TextEncoder().encode(valid)))],
      () => [`42${'['.repeat(rng.int(100, 10_000))}`],
      () => [`42[${'['.repeat(rng.int(100, 3000))}"chat:send"${']'.repeat(rng.int(100, 3000))}]`],
      () => [`451-${JSON.stringify([event, { _placeholder: true, num: rng.int(0, 3) }])}`],
      () => [`451-${JSON.stringify([event, { _placeholder: true, num: 0 }])}`, Buffer.from(rng.bytes(rng.int(0, 32)))],
      () => [`4${rng.int(2, 99999)}-${JSON.stringify([event, { _placeholder: true, num: 0 }])}`],
      () => [`4${rng.int(5, 6)}1-${JSON.stringify([event, { deep: [[[{ _placeholder: true, num: 0 }]]] }])}`, Buffer.from('x')],
      () => [`43${rng.int(0, 1000)}[]`],
      () => [`40/admin,${JSON.stringify({ token: this.#token })}`],
      () => [rng.pick(['41', '44', '2', '3', '5', '6', '1', '7', '9', '', '4', '42', '42[]', '42[1]', '42[null]', '42["disconnect"]', '42["connect"]'])],
      () => [Buffer.from(rng.bytes(rng.int(0, 64)))],
      () => [weirdString(rng, 200)],
      () => [`42["chat:send",{"text":"${'x'.repeat(33_000)}"}]`],
    ])();
  }

  async run(until: number): Promise<void> {
    const ctx = this.#ctx;
    const rng = this.rng;
    while (!ctx.stopping && performance.now() < until) {
      await ctx.gate.wait();
      if (ctx.stopping) break;
      let ws = this.#ws;
      if (!ws || ws.readyState !== WebSocket.OPEN) {
        this.#ws = null;
        ws = await this.#connect();
        if (!ws) {
          if (this.#connects > 40) return;
          await sleep(rng.int(20, 200));
          continue;
        }
      }
      const n = rng.chance(0.05) ? rng.int(20, 100) : 1;
      for (let i = 0; i < n && ws.readyState === WebSocket.OPEN; i++) for (const p of this.#packet()) ws.send(p);
      ctx.stats.add('attacker.rawio.sent', n);
      await sleep(rng.int(3, 40));
    }
  }

  close(): void {
    this.#closed = true;
    this.#ws?.terminate();
    this.#ws = null;
  }
}

// ------------------------------------------------------------------ bulk churn

/** Opens `n` connections of every kind at once and drops them at once, or nearly. */
async function churn(ctx: FuzzContext, rng: Rng, n: number): Promise<void> {
  const url = new URL(ctx.t.url);
  const tasks: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const kind = rng.weighted([
      [6, 'sync'],
      [2, 'syncBadToken'],
      [1, 'tcp'],
      [1, 'io'],
    ] as const);
    const dropAfter = rng.weighted([[3, 0], [2, rng.int(1, 30)], [1, -1]] as const);
    tasks.push(
      new Promise<void>((resolve) => {
        const done = setTimeout(finish, 4000);
        let socketToClose: { terminate(): void } | null = null;
        function finish() {
          clearTimeout(done);
          socketToClose?.terminate();
          resolve();
        }
        if (kind === 'tcp') {
          const sock = net.connect({ host: url.hostname, port: Number(url.port) });
          socketToClose = { terminate: () => sock.destroy() };
          sock.on('error', () => {});
          sock.on('connect', () => {
            const partial = `GET /sync/${ctx.room.roomId}?token=${ctx.tokens.remixer[0]} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n`;
            sock.write(rng.chance(0.5) ? partial : Buffer.from(rng.bytes(rng.int(1, 512))));
            setTimeout(finish, Math.max(0, dropAfter));
          });
          sock.on('close', finish);
          return;
        }
        if (kind === 'io') {
          const s: IoClient = io(ctx.t.url, {
            auth: { roomId: ctx.room.roomId, token: rng.chance(0.7) ? rng.pick(ctx.tokens.listener) : 'rr1.x.y' },
            transports: ['websocket'],
            reconnection: false,
            forceNew: true,
            timeout: 3000,
          });
          socketToClose = { terminate: () => s.disconnect() };
          ctx.track('a churn socket.io connection', () => s.connected || s.active);
          s.on('connect', () => setTimeout(finish, Math.max(0, dropAfter)));
          s.on('connect_error', finish);
          if (dropAfter < 0) setTimeout(finish, 0);
          return;
        }
        const token =
          kind === 'sync'
            ? rng.pick([...ctx.tokens.remixer, ...ctx.tokens.listener])
            : rng.pick([null, 'garbage', ctx.tokens.otherRoom, 'rr1.' + 'a'.repeat(3000), ctx.tokens.host.slice(0, -2) + 'xx']);
        const ws = new WebSocket(ctx.syncUrl(token));
        socketToClose = ws;
        ctx.track('a churn sync connection', () => ws.readyState <= WebSocket.OPEN);
        ws.on('error', () => {});
        ws.on('unexpected-response', (_req, res) => {
          ctx.stats.add(`churn.upgrade.${res.statusCode}`);
          res.resume();
          finish();
        });
        ws.on('open', () => {
          ctx.stats.add('churn.open');
          if (rng.chance(0.3)) ws.send(rng.bytes(rng.int(0, 16)));
          setTimeout(finish, Math.max(0, dropAfter));
        });
        ws.on('close', finish);
        // Dropped before the upgrade is even answered.
        if (dropAfter < 0) setImmediate(finish);
      }),
    );
  }
  await Promise.all(tasks);
  ctx.stats.add('churn.connections', n);
}

// ------------------------------------------------------------------ the run

async function addStrictRelease(t: TestServer): Promise<void> {
  const demo = await t.server.store.getRelease(DEMO_RELEASE_ID);
  if (!demo) throw new Error('the demo release is missing');
  const stems = demo.stems.map((s) => s.id);
  const strict: ReleaseRecord = {
    ...demo,
    id: STRICT_RELEASE_ID,
    manifest: {
      ...demo.manifest,
      id: STRICT_RELEASE_ID,
      rules: {
        ...demo.manifest.rules,
        editableStems: stems.slice(0, Math.max(1, stems.length - 1)),
        stemRanges: { gainDb: { min: -24, max: 0 }, pan: { min: -0.5, max: 0.5 }, lowpassHz: { min: 400, max: 20000 } },
        masterRanges: { tempo: { min: 0.9, max: 1.1 }, pitchSemitones: { min: -2, max: 2 }, delayFeedback: { min: 0, max: 0.5 } },
        prompts: { ...demo.manifest.rules.prompts, policy: 'queued' },
      },
    },
  };
  await t.server.store.putRelease(strict, { place() {}, undo() {} });
}

function userIdOf(token: string): string {
  const payload = token.split('.')[1] ?? '';
  return (JSON.parse(Buffer.from(payload, 'base64url').toString()) as { sub: string }).sub;
}

export async function runRoomFuzz(options: RoomFuzzOptions): Promise<RoomFuzzReport> {
  const seed = options.seed;
  const rng = Rng.derive(seed, 'director');
  const o = {
    fuzzMs: options.fuzzMs ?? 8000,
    remixers: options.remixers ?? 3,
    listeners: options.listeners ?? 2,
    syncAttackers: options.syncAttackers ?? 3,
    ioAttackers: options.ioAttackers ?? 2,
    rawIoAttackers: options.rawIoAttackers ?? 1,
    churnConnections: options.churnConnections ?? 400,
    blackout: options.blackout ?? rng.chance(0.6),
    strictRelease: options.strictRelease ?? rng.chance(0.4),
    graceMs: options.graceMs ?? 150,
  };
  const started = performance.now();
  const processErrors: string[] = [];
  const onProcessError = (err: unknown) => processErrors.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.on('uncaughtException', onProcessError);
  process.on('unhandledRejection', onProcessError);
  // Yjs says so on the console when a client id is taken over (the forged-client attack does that on purpose): counted, not printed.
  const consoleLog = console.log;
  let clientIdChanges = 0;
  console.log = (...args: unknown[]) => {
    if (args.map(String).join(' ').includes('Changed the client-id')) clientIdChanges++;
    else consoleLog(...args);
  };

  const t = await startTestServer({}, { roomTimings: { graceMs: o.graceMs, saveDebounceMs: 20, saveMaxWaitMs: 100 } });
  const honest: HonestMember[] = [];
  const syncAttackers: SyncAttacker[] = [];
  const ioAttackers: IoAttacker[] = [];
  const rawIoAttackers: RawIoAttacker[] = [];
  let ctx: FuzzContext | null = null;
  const timings = { setupMs: 0, fuzzMs: 0, settleMs: 0, totalMs: 0 };
  try {
    if (o.strictRelease) await addStrictRelease(t);
    const room = await openRoom(t.url, o.strictRelease ? { releaseId: STRICT_RELEASE_ID } : {});
    const otherRoom = await openRoom(t.url);
    const remixerTokens: { token: string; userId: string }[] = [];
    const listenerTokens: { token: string; userId: string }[] = [];
    for (let i = 0; i < o.remixers + o.syncAttackers + 1; i++) remixerTokens.push(await joinAs(t.url, room, 'remixer', `Remixer ${i}`));
    for (let i = 0; i < o.listeners + 2; i++) listenerTokens.push(await joinAs(t.url, room, 'listener', `Listener ${i}`));
    const otherRoomToken = (await joinAs(t.url, otherRoom, 'remixer', 'Elsewhere')).token;
    // A second host of its own: an attacker with host rights, who is not the honest host.
    const minted = await api<{ token: string }>(t.url, 'POST', `/api/rooms/${room.roomId}/tokens`, { role: 'host', name: 'Rogue Host' }, room.hostToken);
    const rogueHostToken = minted.body.token;

    // The host first: its connection loads the room, and with it the release.
    const hostToken = room.hostToken;
    const loaded = await connectMember(t.url, room.roomId, hostToken);
    const release = t.server.rooms.get(room.roomId)!.release;
    loaded.destroy();
    ctx = new FuzzContext(seed, t, room, release, {
      remixer: remixerTokens.map((x) => x.token),
      listener: listenerTokens.map((x) => x.token),
      host: hostToken,
      otherRoom: otherRoomToken,
    });
    const c = ctx;

    honest.push(new HonestMember(c, 'host', 'host', hostToken, userIdOf(hostToken), true));
    for (let i = 0; i < o.remixers; i++) honest.push(new HonestMember(c, `remixer${i}`, 'remixer', remixerTokens[i]!.token, remixerTokens[i]!.userId, false));
    for (let i = 0; i < o.listeners; i++) honest.push(new HonestMember(c, `listener${i}`, 'listener', listenerTokens[i]!.token, listenerTokens[i]!.userId, false));
    c.honest.push(...honest);
    for (const [i, h] of honest.entries()) await h.start(i % 2 === 0);

    for (let i = 0; i < o.syncAttackers; i++) {
      const role = (['remixer', 'listener', 'host'] as const)[i % 3]!;
      const token = role === 'host' ? rogueHostToken : role === 'remixer' ? remixerTokens[o.remixers + i]!.token : listenerTokens[o.listeners]!.token;
      syncAttackers.push(new SyncAttacker(c, `s${i}-${role}`, token, role, options.syncAttackWeights));
    }
    for (let i = 0; i < o.ioAttackers; i++) ioAttackers.push(new IoAttacker(c, `io${i}`, i % 2 ? rogueHostToken : listenerTokens[o.listeners + 1]!.token));
    for (let i = 0; i < o.rawIoAttackers; i++) rawIoAttackers.push(new RawIoAttacker(c, `rawio${i}`, remixerTokens[o.remixers]!.token));
    timings.setupMs = performance.now() - started;

    // ---- the fuzz
    const fuzzStart = performance.now();
    const until = fuzzStart + o.fuzzMs;
    // The director: bursts of connections, and perhaps one blackout, at seeded times.
    const events: { atMs: number; kind: 'churn' | 'blackout'; n: number }[] = [];
    const bursts = rng.int(2, 4);
    for (let i = 0; i < bursts; i++) events.push({ atMs: rng.float(0.05, 0.9) * o.fuzzMs, kind: 'churn', n: i });
    if (o.blackout) events.push({ atMs: rng.float(0.3, 0.7) * o.fuzzMs, kind: 'blackout', n: 0 });
    events.sort((a, b) => a.atMs - b.atMs);
    const director = (async () => {
      for (const e of events) {
        await sleep(Math.max(0, fuzzStart + e.atMs - performance.now()));
        if (c.stopping) return;
        if (e.kind === 'blackout') await blackout(c, rng, o.graceMs);
        else await churn(c, Rng.derive(seed, `churn/${e.n}`), Math.max(1, Math.round((o.churnConnections / bursts) * rng.float(0.5, 1.5))));
      }
    })();
    await Promise.all([
      ...honest.map((h) => h.run(until)),
      ...syncAttackers.map((a) => a.run(until)),
      ...ioAttackers.map((a) => a.run(until)),
      ...rawIoAttackers.map((a) => a.run(until)),
      sleep(o.fuzzMs),
    ]);
    c.stopping = true;
    c.gate.open();
    await director;
    timings.fuzzMs = performance.now() - fuzzStart;

    // ---- settle: attackers gone, honest members online, quiet, then the checks
    const settleStart = performance.now();
    for (const a of [...syncAttackers, ...ioAttackers, ...rawIoAttackers]) a.close();
    await Promise.all(honest.map((h) => h.settle()));
    for (const h of honest) if (!h.member.provider.shouldConnect) h.member.provider.connect();
    await checkSettled(c, honest);
    timings.settleMs = performance.now() - settleStart;

    await checkServer(c);
    for (const h of honest) {
      for (const r of h.member.refusals) {
        c.stats.add(`honest.refused.${r.code}`);
        if (HONEST_BAD_REFUSALS.has(r.code)) c.problem(`${h.label} (an unmodified client) was refused as "${r.code}": ${r.message}`);
      }
      for (const code of h.closes) if (HONEST_BAD_CLOSES.has(code)) c.problem(`${h.label} (an unmodified client) was disconnected by the server with ${code}`);
      for (const [kind, n] of h.transient) c.stats.add(`honest.transient.${kind}`, n);
    }
    const transient = [...honest.flatMap((h) => [...h.transient.values()])].reduce((s, n) => s + n, 0);
    if (transient) c.notes.push(`${transient} transient invalid states seen by honest members (own refused edits before their correction, rules before their clamp)`);

    // ---- leaving: the room unloads, holding nothing, and nothing the fuzzer planned brings it back
    const roomBefore = c.serverRoom();
    for (const h of honest) await h.destroy();
    const leftAt = performance.now();
    let unloaded = true;
    if (roomBefore) {
      await waitFor(() => roomBefore.closed, 10_000, 'the room to unload after everyone left').catch(async (err: unknown) => {
        unloaded = false;
        c.problem(`${(err as Error).message}; ${await whatIsOpen(c)}`);
      });
      const left = roomBefore.resources();
      if (left.timers || left.peers || left.holders || left.disposers) c.problem(`the room still holds ${JSON.stringify(left)} after it unloaded`);
    }
    if (unloaded) {
      // A second after leaving, the fuzzer's own timers are over (an offline spell lasts under a second):
      // a connection opened since would hold the room, or load it again after the check above.
      await sleep(Math.max(0, leftAt + 1000 - performance.now()));
      const until = performance.now() + 3000;
      let open = await serverConnections(c.t);
      while ((open.socket || open.sync) && performance.now() < until) {
        await sleep(50);
        open = await serverConnections(c.t);
      }
      if (open.socket || open.sync || c.serverRoom()) c.problem(`after everyone left, ${c.serverRoom() ? 'the room was loaded again and ' : ''}${await whatIsOpen(c)}`);
    }
  } catch (err) {
    (ctx?.problems ?? processErrors).push(`the run itself failed: ${(err as Error).stack ?? String(err)}`);
  } finally {
    if (ctx) ctx.stopping = true;
    ctx?.gate.open();
    for (const a of [...syncAttackers, ...ioAttackers, ...rawIoAttackers]) a.close();
    for (const h of honest) await h.destroy().catch(() => undefined);
    await t.close().catch((err: unknown) => processErrors.push(`closing the server failed: ${String(err)}`));
    process.off('uncaughtException', onProcessError);
    process.off('unhandledRejection', onProcessError);
    console.log = consoleLog;
  }
  ctx?.stats.add('yjs.clientIdChanged', clientIdChanges);
  timings.totalMs = performance.now() - started;
  const problems = [...(ctx?.problems ?? []), ...processErrors.map((e) => `the process raised: ${e}`)];
  return { seed, problems, notes: ctx?.notes ?? [], stats: ctx?.stats.toObject() ?? {}, timings };
}

/** The socket.io and sync connections the server holds now (its connection gauges). */
async function serverConnections(t: TestServer): Promise<{ socket: number; sync: number }> {
  const read = async (name: string) => (await t.server.metrics.registry.getSingleMetric(name)?.get())?.values[0]?.value ?? 0;
  return { socket: await read('remixroom_socket_connections'), sync: await read('remixroom_sync_connections') };
}

/** What is still connected: the server's count, and which of the fuzzer's own connections are open. */
async function whatIsOpen(ctx: FuzzContext): Promise<string> {
  const { socket, sync } = await serverConnections(ctx.t);
  const mine = new Map<string, number>();
  for (const c of ctx.connections) if (c.open()) mine.set(c.who, (mine.get(c.who) ?? 0) + 1);
  const list = [...mine].map(([who, n]) => (n > 1 ? `${who} (${n})` : who)).join(', ');
  return `the server holds ${socket} socket.io and ${sync} sync connections; open on the fuzzer's side: ${list || 'none'}`;
}

/** Everyone drops at once (the room may unload and load again), then comes back. */
async function blackout(ctx: FuzzContext, rng: Rng, graceMs: number): Promise<void> {
  if (ctx.stopping) return;
  ctx.stats.add('blackout');
  ctx.gate.close();
  for (const h of ctx.honest) h.reconcile();
  const before = ctx.serverRoom();
  // Wait for the server to see everyone gone; then stay away for about the grace period, so that
  // the room unloads about half the time, and everyone comes back while it does.
  const drained = await waitFor(() => !before || before.closed || before.resources().holders === 0, 3000, 'the room to empty').then(
    () => true,
    () => false,
  );
  if (!drained) ctx.stats.add(`blackout.notDrained.${before?.resources().holders}`);
  await sleep(rng.float(0.5, 4) * graceMs);
  if (before?.closed) ctx.stats.add('blackout.unloaded');
  ctx.gate.open();
  for (const h of ctx.honest) h.reconcile();
}

/** Every honest member connected, synced and equal to the server after a quiet period, then after a fresh sync. */
async function checkSettled(ctx: FuzzContext, honest: HonestMember[]): Promise<void> {
  const allSynced = () => honest.every((h) => h.live);
  await waitFor(allSynced, SETTLE_TIMEOUT_MS, 'every honest member to be connected and synced').catch(() =>
    ctx.problem(`honest members not connected and synced ${SETTLE_TIMEOUT_MS} ms after the fuzz: ${honest.filter((h) => !h.live).map((h) => h.label).join(', ')}`),
  );
  const room = ctx.serverRoom();
  if (!room) {
    ctx.problem('the room is not loaded while honest members are connected');
    return;
  }
  let lastChange = performance.now();
  const onUpdate = () => {
    lastChange = performance.now();
  };
  room.doc.on('update', onUpdate);
  const equal = () => {
    const truth = rootsJson(room.doc);
    return honest.every((h) => rootsJson(h.doc) === truth);
  };
  try {
    await waitFor(() => performance.now() - lastChange > 300 && equal(), SETTLE_TIMEOUT_MS, 'quiet and convergence');
  } catch {
    const truth = rootsJson(room.doc);
    for (const h of honest) {
      const mine = rootsJson(h.doc);
      if (mine !== truth) ctx.problem(`${h.label} differs from the server after a quiet period (live: ${h.live}): ${firstDifference(mine, truth)}`);
    }
  } finally {
    room.doc.off('update', onUpdate);
  }

  // A final sync: each member reconnects and exchanges state vectors with the server.
  for (const h of honest) {
    h.member.provider.disconnect();
    h.member.provider.connect();
  }
  await waitFor(allSynced, SETTLE_TIMEOUT_MS, 'the final sync').catch(() => ctx.problem('honest members did not sync again after the fuzz'));
  await sleep(200);
  const now = ctx.serverRoom();
  if (!now) return ctx.problem('the room unloaded during the final sync');
  const truth = rootsJson(now.doc);
  for (const h of honest) {
    const mine = rootsJson(h.doc);
    if (mine !== truth) ctx.problem(`${h.label} differs from the server after the final sync: ${firstDifference(mine, truth)}`);
    const problems = roomDocProblems(h.doc, ctx.release);
    if (problems.length) ctx.problem(`${h.label} ends with an invalid document: ${problems.slice(0, 3).join('; ')}`);
    if (h.doc.store.pendingStructs || h.doc.store.pendingDs) ctx.problem(`${h.label} holds updates it cannot apply (pending structs)`);
  }

  // Awareness: each member is seen as itself, and nobody else speaks for it.
  for (const h of honest) h.member.provider.awareness.setLocalStateField('final', `${ctx.seed}/${h.label}`);
  const seenRight = (h: HonestMember) => {
    const s = ctx.serverRoom()?.awareness.getStates().get(h.member.provider.awareness.clientID) as { final?: string; member?: { userId?: string } } | undefined;
    return s?.final === `${ctx.seed}/${h.label}` && s.member?.userId === h.userId;
  };
  await waitFor(() => honest.every(seenRight), 5000, 'awareness').catch(() => {
    for (const h of honest) {
      if (seenRight(h)) continue;
      const aw = h.member.provider.awareness;
      const server = ctx.serverRoom()?.awareness;
      const s = server?.getStates().get(aw.clientID);
      const clocks = `server clock ${server?.meta.get(aw.clientID)?.clock ?? 'none'}, member clock ${aw.meta.get(aw.clientID)?.clock ?? 'none'}`;
      ctx.problem(`${h.label}'s awareness on the server is not its own latest state (${clocks}): ${JSON.stringify(s ?? null)}`);
    }
  });
}

async function checkServer(ctx: FuzzContext): Promise<void> {
  const health = await fetch(`${ctx.t.url}/healthz`).then(
    async (r) => ({ status: r.status, body: (await r.json()) as unknown }),
    (err: unknown) => ({ status: 0, body: String(err) }),
  );
  if (health.status !== 200) ctx.problem(`/healthz answered ${health.status}: ${JSON.stringify(health.body)}`);
  const room = ctx.serverRoom();
  if (!room) return ctx.problem('the room is not loaded at the end');
  const problems = roomDocProblems(room.doc, ctx.release);
  for (const p of problems.slice(0, 10)) ctx.problem(`the server's room document is invalid: ${p}`);
  // state() is what the mixer and renders read: it must be what the document holds.
  const state = room.state();
  if (JSON.stringify(state) !== JSON.stringify(Object.fromEntries(['meta', 'mix', 'arrangement', 'visual', 'rules'].map((n) => [n, room.doc.getMap(n).toJSON()])))) {
    ctx.problem('room.state() does not match the document');
  }
  if (!room.guardInStep()) ctx.problem("the DocGuard's shadow is out of step with the room's document");
  if (room.doc.store.pendingStructs || room.doc.store.pendingDs) ctx.problem('the server document holds pending updates');
}
