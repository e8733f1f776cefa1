// RTMP out from a real room, through the host's routes: the room's broadcast encoder (mixer and
// visual engine into one ffmpeg) feeds the push, a real nginx-rtmp records what arrives, and
// ffprobe/ffmpeg read it back: H.264 + AAC, loud while the stems play and silent once a remixer
// mutes them all. A wrong key is refused by the ingest and ends in 'failed' with a reason; bad
// URLs and keys are refused by the route with nothing changed; the key is in no log line and no
// answer.
import { expect } from 'chai';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { ffmpegCannotBroadcast } from '../../media/live/broadcast-encoder.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { configFor } from '../../server/config.ts';
import type { RtmpState } from '../../server/live/rtmp-push.ts';
import { RemixroomServer } from '../../server/server.ts';
import { commandExists, requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { nginxRtmpAvailable, sharedNginxRtmp, type TestNginxRtmp } from '../support/nginx-rtmp.ts';
import { api, connectMember, joinAs, openRoom, stemMap, type Member, type OpenedRoom } from '../support/room-clients.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RtmpAnswer {
  roomId: string;
  push: RtmpState | null;
}

/** The recording's audio level, in dBFS (RMS), per window of `windowSec`. */
async function audioLevels(file: string, windowSec: number): Promise<number[]> {
  const rate = 8000;
  const { stdout } = await run('ffmpeg', ['-hide_banner', '-loglevel', 'error', '-i', file, '-map', '0:a', '-ac', '1', '-ar', String(rate), '-f', 'f32le', 'pipe:1'], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
  const samples = new Float32Array(stdout.buffer, stdout.byteOffset, Math.floor(stdout.length / 4));
  const per = Math.round(rate * windowSec);
  const levels: number[] = [];
  for (let at = 0; at + per <= samples.length; at += per) {
    let sum = 0;
    for (let i = at; i < at + per; i++) sum += samples[i]! * samples[i]!;
    levels.push(10 * Math.log10(sum / per + 1e-12));
  }
  return levels;
}

describe('RTMP out from a room (real server, real encoder, real nginx-rtmp)', function () {
  this.timeout(90_000);
  let nginx: TestNginxRtmp;
  let server: RemixroomServer;
  let removeData: () => Promise<void>;
  const logLines: string[] = [];
  let room: OpenedRoom;
  let remixer: Member;
  let url: string;
  const keys: string[] = [];

  const rtmp = (method: string, body?: unknown, token = room.hostToken) => api<RtmpAnswer & { error?: string; message?: string }>(url, method, `/api/rooms/${room.roomId}/rtmp`, body, token);
  async function waitForStatus(status: RtmpState['status'], timeoutMs: number): Promise<RtmpState> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const answer = await rtmp('GET');
      if (answer.body.push?.status === status) return answer.body.push;
      if (Date.now() > deadline) throw new Error(`the push did not become ${status}: ${JSON.stringify(answer.body)}`);
      await sleep(200);
    }
  }

  before(async function () {
    requireComponent('ffmpeg', commandExists('ffmpeg') && (await ffmpegCannotBroadcast('ffmpeg')) === null, this);
    requireComponent('nginx libnginx-mod-rtmp', nginxRtmpAvailable(), this);
    nginx = await sharedNginxRtmp();
    const data = await demoDataDir();
    removeData = data.remove;
    const base = configFor({ dataDir: data.path, port: 0, host: '127.0.0.1', logLevel: 'debug' });
    const config = { ...base, broadcast: { ...base.broadcast, rtmpAllowPrivate: true } };
    const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    server = await RemixroomServer.start(config, log, undefined, {
      live: { broadcast: { ffmpeg: 'ffmpeg', segmentSec: 1, rtmp: { backoff: { initialMs: 100, maxMs: 200 }, maxFailures: 3 } } },
    });
    url = server.url;
    room = await openRoom(url);
    const remixerToken = (await joinAs(url, room, 'remixer', 'Mixer')).token;
    remixer = await connectMember(url, room.roomId, remixerToken);
    remixer.doc.transact(() => (remixer.doc.getMap('arrangement').get('transport') as import('yjs').Map<unknown>).set('playing', true));
  });

  after(async () => {
    remixer?.destroy();
    await server?.close();
    await removeData?.();
  });

  it('the host sends the room to an ingest: H.264 + AAC arrive, loud while the stems play, silent after a remixer mutes them all', async () => {
    const key = `room-${Math.random().toString(36).slice(2, 10)}`;
    keys.push(key);
    nginx.allowedKeys.add(key);
    const started = await rtmp('PUT', { url: nginx.url, key });
    expect(started.status, JSON.stringify(started.body)).to.equal(201);
    expect(started.body.push).to.include({ status: 'connecting', target: nginx.url });
    await waitForStatus('live', 30_000);
    await sleep(4000); // the playing mix
    const release = (await api<{ stems: { id: string }[] }>(url, 'GET', `/api/releases/${DEMO_RELEASE_ID}`)).body;
    remixer.doc.transact(() => {
      for (const s of release.stems) stemMap(remixer.doc, s.id).set('mute', true);
    });
    await sleep(5000); // the muted mix reaches the ingest (the encoder's delay is well under a second)
    const stopped = await rtmp('DELETE');
    expect(stopped.status).to.equal(200);
    expect(stopped.body.push).to.include({ status: 'stopped', lastError: null });
    remixer.doc.transact(() => {
      for (const s of release.stems) stemMap(remixer.doc, s.id).set('mute', false);
    });

    const { stdout } = await run('ffprobe', ['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height', '-of', 'json', nginx.recording(key)]);
    const streams = (JSON.parse(stdout) as { streams: Record<string, unknown>[] }).streams;
    expect(streams).to.deep.include({ codec_type: 'video', codec_name: 'h264', width: 640, height: 360 });
    expect(streams.find((s) => s['codec_type'] === 'audio')).to.include({ codec_name: 'aac' });

    const levels = await audioLevels(nginx.recording(key), 0.5);
    const shown = levels.map((d) => d.toFixed(0)).join(' ');
    const firstSilent = levels.findIndex((db) => db < -70);
    expect(firstSilent, `levels ${shown}`).to.be.greaterThan(3);
    expect(Math.max(...levels.slice(0, firstSilent)), `loud before the mute: ${shown}`).to.be.above(-40);
    expect(levels.slice(firstSilent).every((db) => db < -70), `silent after the mute: ${shown}`).to.equal(true);
    expect(levels.length - firstSilent, `at least 3 s of the muted mix: ${shown}`).to.be.at.least(6);
  });

  it('refuses a listener, a URL that is not RTMP or a bad key with a reason, changing nothing', async () => {
    const before = (await rtmp('GET')).body.push;
    const listener = await joinAs(url, room, 'listener', 'Audience');
    expect((await rtmp('PUT', { url: nginx.url, key: 'abc' }, listener.token)).status).to.equal(403);
    for (const [body, reason] of [
      [{ url: 'http://127.0.0.1/live', key: 'abc' }, /only rtmp:\/\/ and rtmps:\/\//],
      [{ url: 'rtmp://user:pw@127.0.0.1/live', key: 'abc' }, /user name or password/],
      [{ url: nginx.url, key: 'has space' }, /stream key/],
      [{ url: nginx.url, key: 'x'.repeat(513) }, /./],
      [{ url: nginx.url }, /./],
    ] as const) {
      const answer = await rtmp('PUT', body);
      expect(answer.status, JSON.stringify(body).slice(0, 80)).to.equal(400);
      expect(JSON.stringify(answer.body)).to.match(reason);
    }
    expect((await rtmp('GET')).body.push).to.deep.equal(before);
  });

  it('a wrong key: the ingest refuses it, the push retries and fails with a reason the host reads; the key is in no log line and no answer', async () => {
    const key = `wrong-${Math.random().toString(36).slice(2, 10)}`;
    keys.push(key);
    const answers: string[] = [];
    const started = await rtmp('PUT', { url: nginx.url, key });
    answers.push(JSON.stringify(started.body));
    expect(started.status).to.equal(201);
    const failed = await waitForStatus('failed', 40_000);
    answers.push(JSON.stringify(failed));
    expect(failed.lastError).to.match(/^the ingest refused the stream \(wrong stream key\?\)/);
    expect(failed.attempts).to.equal(3);
    expect(nginx.publishes.filter((p) => p.name === key).map((p) => p.allowed)).to.deep.equal([false, false, false]);
    const stopped = await rtmp('DELETE');
    answers.push(JSON.stringify(stopped.body));
    expect(stopped.body.push?.status).to.equal('stopped');
    const logged = logLines.join('');
    expect(logged).to.include('rtmp push gave up');
    for (const k of keys) {
      expect(logged, 'the key in a log line').not.to.include(k);
      for (const a of answers) expect(a, 'the key in an answer').not.to.include(k);
    }
  });
});
