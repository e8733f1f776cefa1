// The embedded mode renders too: a server process that finds no native ffmpeg (its PATH
// holds only node) renders a committed clip with @ffmpeg/core (WebAssembly), and the
// downloaded files are what a native render gives: H.264 + AAC MP4 at the configured
// size and length, an M4A, and the watermark with the render's id; POST /api/verify reads
// the download with @ffmpeg/core too and traces it. ffprobe and ffmpeg (native, in the
// test process only) check the files.
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type * as Y from 'yjs';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { wasmCoreDir } from '../../media/render/encoder.ts';
import { detectWatermark } from '../../media/watermark/watermark.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import { watermarkKeyOf } from '../../server/clips/render-runner.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { stopChild } from '../support/redis.ts';
import { api, connectMember, joinAs, openRoom, stemMap, type Member } from '../support/room-clients.ts';
import { spawnServer, type ServerProcess } from '../support/server-process.ts';

const TOKEN_SECRET = crypto.randomBytes(32).toString('hex');

/** A child's whole stdout as bytes. */
function runCaptureBuffer(cmd: string, args: string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${cmd} exited ${code}: ${stderr}`))));
  });
}

describe('clips without native ffmpeg: the WebAssembly encoder (a server process)', function () {
  this.timeout(240_000);
  let native: NativeFfmpeg | null;
  let data: { path: string; remove(): Promise<void> };
  let server: ServerProcess;
  let url: string;
  let member: Member | null = null;

  before(async function () {
    native = await findNativeFfmpeg();
    // ffprobe checks the output; the server itself is denied ffmpeg.
    requireComponent('ffprobe', native !== null && native.ffprobe !== null, this);
    expect(wasmCoreDir(), '@ffmpeg/core is a dependency').to.be.a('string');
    data = await demoDataDir();
    server = spawnServer({ PORT: '0', DATA_DIR: data.path, RENDER_VIDEO: '640x360@30', TOKEN_SECRET, PATH: path.dirname(process.execPath) });
    const listening = await server.waitFor(/Remixroom is running: open http:\/\/[\d.:]+/, 60_000);
    url = listening.slice(listening.indexOf('http'));
    expect(server.output()).to.match(/no native ffmpeg/);
  });
  after(async () => {
    member?.destroy();
    if (server) await stopChild(server.child);
    await data?.remove();
  });

  it("renders a committed clip: ffprobe accepts it, its audio carries the render's id, and verify traces it with @ffmpeg/core", async () => {
    const room = await openRoom(url);
    const { token } = await joinAs(url, room, 'remixer', 'Wasm');
    member = await connectMember(url, room.roomId, token);
    const m = member;
    m.doc.transact(() => (m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
    await new Promise((r) => setTimeout(r, 500));
    m.doc.transact(() => stemMap(m.doc, 'drums').set('gainDb', -4));
    await new Promise((r) => setTimeout(r, 8200));
    const res = await fetch(`${url}/api/rooms/${room.roomId}/clips`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'wasm-1' },
      body: JSON.stringify({ seconds: 8 }),
    });
    const committed = (await res.json()) as ClipView;
    expect(res.status, JSON.stringify(committed)).to.equal(202);
    const deadline = Date.now() + 200_000;
    let view: ClipView;
    for (;;) {
      view = (await api<ClipView>(url, 'GET', `/api/clips/${committed.clipId}`, undefined, token)).body;
      if (view.status === 'done' || view.status === 'failed') break;
      if (Date.now() > deadline) throw new Error(`the clip did not finish: ${JSON.stringify(view)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(view.status, JSON.stringify(view)).to.equal('done');
    const dir = fs.mkdtempSync(path.join(data.path, 'dl-'));
    const get = async (link: string, name: string) => {
      const r = await fetch(url + link);
      expect(r.status, link).to.equal(200);
      const file = path.join(dir, name);
      fs.writeFileSync(file, Buffer.from(await r.arrayBuffer()));
      return file;
    };
    const mp4 = await get(view.downloads!.video!, 'clip.mp4');
    const m4a = await get(view.downloads!.audio!, 'clip.m4a');
    const probe = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', mp4]);
    expect(probe.code, probe.stderr).to.equal(0);
    const info = JSON.parse(probe.stdout) as { streams: { codec_type: string; codec_name: string; width?: number; height?: number }[]; format: { duration: string } };
    const video = info.streams.find((s) => s.codec_type === 'video')!;
    expect(video).to.include({ codec_name: 'h264', width: 640, height: 360 });
    expect(info.streams.find((s) => s.codec_type === 'audio')!.codec_name).to.equal('aac');
    expect(Number(info.format.duration)).to.be.closeTo(8, 1 / 30 + 0.03);
    const audioProbe = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-of', 'json', m4a]);
    expect((JSON.parse(audioProbe.stdout) as { streams: { codec_name: string }[] }).streams.map((s) => s.codec_name)).to.deep.equal(['aac']);
    // The mark is in it, with the render's id (read here with the test's own ffmpeg and the key
    // the server derives from its token secret).
    const decoded = await runCaptureBuffer(native!.ffmpeg, ['-v', 'error', '-i', m4a, '-f', 'f32le', '-ar', '48000', '-ac', '2', 'pipe:1']);
    const pcm = new Float32Array(decoded.buffer, decoded.byteOffset, decoded.byteLength >> 2);
    const mark = detectWatermark(pcm, { key: watermarkKeyOf(TOKEN_SECRET) });
    expect(mark?.payloadHex).to.equal(committed.clipId);
    // The server, with no native ffmpeg, reads uploads with @ffmpeg/core: it traces the clip, and
    // refuses what is not media.
    const verify = async (body: Buffer) => {
      const r = await fetch(`${url}/api/verify`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: new Uint8Array(body) });
      return { status: r.status, body: (await r.json()) as { found?: boolean; renderId?: string; manifestGenuine?: boolean; fileMatchesManifest?: boolean; error?: { code: string } } };
    };
    const traced = await verify(fs.readFileSync(mp4));
    expect(traced.status, JSON.stringify(traced.body)).to.equal(200);
    expect(traced.body).to.include({ found: true, renderId: committed.clipId, manifestGenuine: true, fileMatchesManifest: true });
    const text = await verify(Buffer.from('not a media file at all '.repeat(200)));
    expect(text.status, JSON.stringify(text.body)).to.equal(400);
  });
});
