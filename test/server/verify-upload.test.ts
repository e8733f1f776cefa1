// POST /api/verify as an upload: the address's rate and the process-wide gate come
// before the body is read, the body is streamed to a file with a hard cap, and that
// file is gone on every path out. Each test comes from addresses of its own
// (X-Forwarded-For from loopback, which the server trusts), so that their buckets
// do not meet.
import { expect } from 'chai';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { findNativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { wasmDecodeAvailable } from '../../media/audio/wasm-decode.ts';
import { embedWatermark } from '../../media/watermark/watermark.ts';
import { ManifestSigner, type Manifest } from '../../server/clips/manifest.ts';
import { watermarkKeyOf } from '../../server/clips/render-runner.ts';
import { verifyMedia } from '../../server/clips/verify.ts';
import { LIMITS } from '../../shared/limits.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { freePort, stopChild } from '../support/redis.ts';
import { spawnServer } from '../support/server-process.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';

const MB = 2 ** 20;
const CAP = LIMITS['verify.upload.bytes'].max;
const RUNNING = LIMITS['verify.running.process'].max;
const WAITING = LIMITS['verify.waiting.process'].max;

interface Answer {
  status: number;
  retryAfter: string | undefined;
  body: { error?: { code: string; limit?: string; retryAfterSec?: number }; found?: boolean } & Record<string, unknown>;
}

/** An upload the test feeds by hand (chunked unless `contentLength` is given). */
interface OpenUpload {
  req: http.ClientRequest;
  /** The answer, or the error the client met (its connection reset). */
  answer: Promise<Answer | Error>;
  /** Writes `bytes` of zeros in 1 MB chunks, stopping early once answered; resolves with the bytes written. */
  send(bytes: number): Promise<number>;
}

const ZEROS = Buffer.alloc(MB);

function openUpload(url: string, address: string, contentLength?: number): OpenUpload {
  const { hostname, port } = new URL(url);
  const req = http.request({
    host: hostname,
    port,
    method: 'POST',
    path: '/api/verify',
    headers: { 'content-type': 'application/octet-stream', 'x-forwarded-for': address, ...(contentLength !== undefined ? { 'content-length': String(contentLength) } : {}) },
  });
  let answered = false;
  const answer = new Promise<Answer | Error>((resolve) => {
    req.once('error', (err) => resolve(err));
    req.once('response', (res) => {
      answered = true;
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.once('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body: text ? (JSON.parse(text) as Answer['body']) : {} });
      });
      res.once('error', (err) => resolve(err));
    });
  });
  req.flushHeaders();
  return {
    req,
    answer,
    async send(bytes) {
      let sent = 0;
      while (sent < bytes && !answered && !req.destroyed) {
        const n = Math.min(MB, bytes - sent);
        if (!req.write(n === MB ? ZEROS : ZEROS.subarray(0, n))) {
          await new Promise<void>((resolve) => {
            const done = () => {
              req.off('drain', done);
              req.off('close', done);
              resolve();
            };
            req.on('drain', done).on('close', done);
          });
        }
        sent += n;
      }
      return sent;
    },
  };
}

async function post(url: string, address: string, body: Uint8Array): Promise<Answer> {
  const res = await fetch(`${url}/api/verify`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-forwarded-for': address }, body: new Uint8Array(body) });
  return { status: res.status, retryAfter: res.headers.get('retry-after') ?? undefined, body: (await res.json()) as Answer['body'] };
}

function answered(a: Answer | Error): Answer {
  if (a instanceof Error) throw new Error(`no answer: ${a.message}`);
  return a;
}

/** Whether `p` settles within `ms`. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([p.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  return r;
}

async function until(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('verify: uploads are limited before they are read, streamed with a cap, and leave nothing behind', function () {
  this.timeout(60_000);
  let t: TestServer;
  let tmpDir: string;
  const uploadsOnDisk = () => fs.readdirSync(tmpDir).filter((f) => f.startsWith('verify-'));
  const open: OpenUpload[] = [];

  before(async function () {
    requireComponent('ffmpeg', (await findNativeFfmpeg()) !== null, this);
    t = await startTestServer();
    tmpDir = path.join(t.dataDir, 'tmp');
  });
  afterEach(async () => {
    for (const u of open.splice(0)) u.req.destroy();
    // Whatever a test left, the server removes once its clients are gone.
    if (t) await until('the uploads to be removed', () => uploadsOnDisk().length === 0);
  });
  after(async () => {
    await t?.close();
  });

  it('a chunked upload (no Content-Length) is refused 413 as soon as it passes the cap, and leaves no file', async () => {
    const u = openUpload(t.url, '198.51.100.1');
    open.push(u);
    const sent = await u.send(CAP + 16 * MB);
    const a = answered(await u.answer);
    expect(a.status).to.equal(413);
    expect(a.body.error).to.include({ code: 'payload_too_large', limit: 'verify.upload.bytes' });
    expect(sent, 'answered before the whole body was sent').to.be.lessThan(CAP + 16 * MB);
    await until('the upload to be removed', () => uploadsOnDisk().length === 0);
  });

  it('a Content-Length over the cap is refused 413 at once, without reading the body', async () => {
    const u = openUpload(t.url, '198.51.100.2', CAP + 1);
    open.push(u);
    // Nothing of the body is sent: the answer cannot be waiting for it.
    const a = answered(await u.answer);
    expect(a.status).to.equal(413);
    expect(a.body.error).to.include({ code: 'payload_too_large', limit: 'verify.upload.bytes' });
    expect(uploadsOnDisk()).to.deep.equal([]);
  });

  it('an upload whose client goes away mid-way leaves no file', async () => {
    const u = openUpload(t.url, '198.51.100.3');
    open.push(u);
    await u.send(4 * MB);
    await until('the upload to reach the disk', () => uploadsOnDisk().some((f) => fs.statSync(path.join(tmpDir, f), { throwIfNoEntry: false })?.size));
    u.req.destroy();
    await until('the upload to be removed', () => uploadsOnDisk().length === 0);
    // The turn was given back: the next upload is checked.
    const next = await post(t.url, '198.51.100.4', Buffer.from('this is not a media file at all'.repeat(100)));
    expect(next.status).to.equal(400);
    expect(next.body.error?.code).to.equal('bad_request');
  });

  it(`more uploads than ${RUNNING} running and ${WAITING} waiting are refused 503 with Retry-After; the waiting ones are not read; one that leaves gives up its place; the server keeps answering`, async () => {
    // The running one, stalled half-way through its body.
    const running = openUpload(t.url, '198.51.100.10');
    open.push(running);
    await running.send(2 * MB);
    await until('the running upload to reach the disk', () => uploadsOnDisk().length === 1);
    const waiting: OpenUpload[] = [];
    for (let i = 0; i < WAITING; i++) {
      const w = openUpload(t.url, `198.51.100.${11 + i}`);
      open.push(w);
      waiting.push(w);
      await w.send(2 * MB);
    }
    const refused = openUpload(t.url, '198.51.100.20', 10 * MB);
    open.push(refused);
    const a = answered(await refused.answer);
    expect(a.status).to.equal(503);
    expect(Number(a.retryAfter)).to.be.at.least(1);
    expect(a.body.error).to.include({ code: 'not_ready', limit: 'verify.waiting.process' });
    expect(a.body.error!.retryAfterSec).to.equal(Number(a.retryAfter));
    // Those in line have sent megabytes; none of it was read into a file.
    expect(uploadsOnDisk()).to.have.length(1);
    for (const w of waiting) expect(await settlesWithin(w.answer, 10), 'a waiting upload is not answered').to.equal(false);
    // Everything else is still served.
    expect((await fetch(`${t.url}/healthz`)).status).to.equal(200);
    expect((await fetch(`${t.url}/api/releases`)).status).to.equal(200);

    // One in line goes away: its place is free (after the next probe of the line), and the one after it waits instead of being refused.
    waiting.shift()!.req.destroy();
    await new Promise((r) => setTimeout(r, 2500));
    const late = openUpload(t.url, '198.51.100.21', 10 * MB);
    open.push(late);
    expect(await settlesWithin(late.answer, 500), 'a free place in line is taken').to.equal(false);
    const another = openUpload(t.url, '198.51.100.22', 10 * MB);
    open.push(another);
    expect(answered(await another.answer).status).to.equal(503);

    // The running one finishes its body: it is answered, then the next in line gets its turn.
    await running.send(1 * MB);
    running.req.end();
    const checked = answered(await running.answer);
    expect(checked.status).to.equal(400);
    expect(checked.body.error?.code).to.equal('bad_request');
    await until('the next in line to be read', () => uploadsOnDisk().length === 1);
  });

  it('the address rate answers 429 with Retry-After for one address while another is still served', async () => {
    const capacity = LIMITS['verify.address'].capacity;
    // Empty bodies: each takes from the address's bucket and is refused (400) before any work,
    // so that the bucket is emptied well before it refills one.
    for (let i = 0; i < capacity; i++) expect((await post(t.url, '203.0.113.7', new Uint8Array(0))).status).to.equal(400);
    const text = Buffer.from('not media '.repeat(50));
    const limited = await post(t.url, '203.0.113.7', text);
    expect(limited.status).to.equal(429);
    expect(Number(limited.retryAfter)).to.be.at.least(1);
    expect(limited.body.error).to.include({ code: 'rate_limited', limit: 'verify.address' });
    const other = await post(t.url, '203.0.113.8', text);
    expect(other.status).to.equal(400);
    expect(other.body.error?.code).to.equal('bad_request');
  });

  /** A marked WAV and the render it names, on record with a signed manifest naming that exact file. */
  let marked: Promise<{ renderId: string; wav: Buffer }> | null = null;
  const markedRender = () =>
    (marked ??= (async () => {
      const secret = t.server.secrets.tokenSecret;
      const renderId = crypto.randomBytes(8).toString('hex');
      // 12 s of noise with a few tones, marked with the render's id, as a float WAV.
      const frames = 12 * 48_000;
      const pcm = new Float32Array(frames * 2);
      let seed = 1;
      for (let i = 0; i < frames; i++) {
        seed = (seed * 1_103_515_245 + 12_345) >>> 0;
        const noise = (seed / 2 ** 32 - 0.5) * 0.2;
        const tone = 0.1 * Math.sin((2 * Math.PI * 220 * i) / 48_000) + 0.05 * Math.sin((2 * Math.PI * 1320 * i) / 48_000);
        pcm[2 * i] = noise + tone;
        pcm[2 * i + 1] = noise * 0.8 + tone;
      }
      const wav = floatWav(embedWatermark(pcm, { payload: Buffer.from(renderId, 'hex'), key: watermarkKeyOf(secret) }).pcm);
      const manifest: Manifest = {
        version: 1,
        renderId,
        kind: 'clip',
        release: { id: 'remixroom-demo', title: 'Demo', artist: 'Remixroom' },
        assets: { stems: [], artwork: [] },
        room: { id: 'room-for-verify' },
        window: { fromMs: 0, toMs: 12_000, seconds: 12 },
        requestedBy: { userId: 'u1', name: 'Tester' },
        contributors: [],
        software: 'test',
        createdAt: new Date().toISOString(),
        files: [{ name: 'clip.wav', sha256: crypto.createHash('sha256').update(wav).digest('hex'), bytes: wav.length }],
      };
      const signed = new ManifestSigner(secret).sign(manifest);
      await t.server.store.createRender({ id: renderId, roomId: 'room-for-verify', kind: 'clip', status: 'queued', request: { seconds: 12 }, createdAt: new Date().toISOString() }, null);
      await t.server.store.updateRender(renderId, { status: 'done', result: { files: { audio: 'clip.wav' }, manifest: signed } });
      return { renderId, wav };
    })());

  it('a marked file is traced from the file on disk (hashed as a stream), and the answer holds no way to download the render', async () => {
    const { renderId, wav } = await markedRender();
    const exact = await post(t.url, '192.0.2.50', wav);
    expect(exact.status, JSON.stringify(exact.body)).to.equal(200);
    expect(exact.body).to.include({ found: true, renderId, manifestGenuine: true, fileMatchesManifest: true });
    // The same size, one byte changed at the end (past the audio's first seconds): traced, not the file.
    const edited = Buffer.from(wav);
    edited[edited.length - 1] = edited[edited.length - 1]! ^ 1;
    expect((await post(t.url, '192.0.2.51', edited)).body).to.include({ found: true, renderId, fileMatchesManifest: false });

    // What it tells: the render and its signed manifest. Not how to fetch it: no links, no signed query, no files on disk.
    expect(Object.keys(exact.body).sort()).to.deep.equal(['detection', 'fileMatchesManifest', 'found', 'manifest', 'manifestGenuine', 'render', 'renderId']);
    expect(Object.keys(exact.body['manifest'] as object).sort()).to.deep.equal(['algorithm', 'manifest', 'publicKey', 'signature']);
    const text = JSON.stringify(exact.body);
    expect(text).not.to.match(/https?:|\/api\/|[?&](sig|expires)=|downloads|"path"|"url"/i);
    expect(uploadsOnDisk()).to.deep.equal([]);
  });

  it('without a native ffmpeg, the file is read through the WebAssembly build and traced alike', async function () {
    requireComponent('@ffmpeg/core', wasmDecodeAvailable(), this);
    this.timeout(120_000);
    const { renderId, wav } = await markedRender();
    const file = path.join(tmpDir, `wasm-check-${renderId}.wav`);
    fs.writeFileSync(file, wav);
    try {
      const secret = t.server.secrets.tokenSecret;
      const deps = { ffmpeg: null, watermarkKey: watermarkKeyOf(secret), clips: t.server.clips, manifestPublicKey: new ManifestSigner(secret).publicKey, tmpDir };
      expect(await verifyMedia(deps, file)).to.include({ found: true, renderId, manifestGenuine: true, fileMatchesManifest: true });
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});

describe('verify: a server shutting down with uploads in flight', function () {
  this.timeout(120_000);

  it('leaves no file when it exits on SIGTERM (its connections closed at the deadline)', async function () {
    requireComponent('ffmpeg', (await findNativeFfmpeg()) !== null, this);
    // The real entry point: it exits as soon as the server has closed.
    const data = await demoDataDir();
    const port = await freePort();
    const p = spawnServer({ PORT: String(port), HOST: '127.0.0.1', DATA_DIR: data.path, SHUTDOWN_TIMEOUT_MS: '300' });
    const url = `http://127.0.0.1:${port}`;
    const uploads: OpenUpload[] = [];
    try {
      await p.waitFor(/Remixroom is running/, 90_000);
      const running = openUpload(url, '198.51.100.30');
      const waiting = openUpload(url, '198.51.100.31');
      uploads.push(running, waiting);
      const tmpDir = path.join(data.path, 'tmp');
      const uploadsOnDisk = () => fs.readdirSync(tmpDir).filter((f) => f.startsWith('verify-'));
      await running.send(2 * MB);
      await until('the upload to reach the disk', () => uploadsOnDisk().length === 1);
      await waiting.send(2 * MB);
      p.child.kill('SIGTERM');
      expect((await p.exited).code, p.output()).to.equal(0);
      expect(uploadsOnDisk()).to.deep.equal([]);
      expect(await running.answer).to.be.instanceOf(Error);
    } finally {
      for (const u of uploads) u.req.destroy();
      await stopChild(p.child, 'SIGKILL');
      await data.remove();
    }
  });
});

/** 32-bit float stereo WAV at 48 kHz. */
function floatWav(pcm: Float32Array): Buffer {
  const data = Buffer.from(pcm.buffer, pcm.byteOffset, pcm.byteLength);
  const head = Buffer.alloc(44);
  head.write('RIFF', 0, 'latin1');
  head.writeUInt32LE(36 + data.length, 4);
  head.write('WAVE', 8, 'latin1');
  head.write('fmt ', 12, 'latin1');
  head.writeUInt32LE(16, 16);
  head.writeUInt16LE(3, 20);
  head.writeUInt16LE(2, 22);
  head.writeUInt32LE(48_000, 24);
  head.writeUInt32LE(48_000 * 8, 28);
  head.writeUInt16LE(8, 32);
  head.writeUInt16LE(32, 34);
  head.write('data', 36, 'latin1');
  head.writeUInt32LE(data.length, 40);
  return Buffer.concat([head, data]);
}
