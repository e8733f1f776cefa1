// "The clip sounds like what the room heard": a listener records the room's live stream
// (WebRTC through the SFU, Opus decoded), a member changes the mix on the way, a clip of
// the last 8 s is committed and rendered, and its audio (the downloaded M4A, decoded by
// native ffmpeg) is compared with the recorded stream: aligned by cross-correlation, the
// two waveforms correlate closely, and a few milliseconds off alignment they do not (the
// measure is of waveforms, not loudness). The clip carries the watermark; the stream does not.
// (This test found the clip renderer giving every block the stems' final values.) Per SFU
// adapter (test/support/sfu-adapters.ts).
import { expect } from 'chai';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type * as Y from 'yjs';
import { findNativeFfmpeg, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import type { ClipView } from '../../server/clips/clip-service.ts';
import { requireComponent } from '../support/components.ts';
import { api, connectMember, joinAs, masterMap, openRoom, stemMap, type Member } from '../support/room-clients.ts';
import { SFU_ADAPTERS, adapterTitle, requireSfuAdapter } from '../support/sfu-adapters.ts';
import { startTestServer, type TestServer } from '../support/test-server.ts';
import { listenToRoom, type WeriftListener } from '../support/werift-listener.ts';

const RATE = 48_000;

function decodeToFloat(ffmpeg: string, file: string): Promise<Float32Array> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpeg, ['-v', 'error', '-i', file, '-f', 'f32le', '-ar', String(RATE), '-ac', '2', 'pipe:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    const chunks: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => chunks.push(c));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code !== 0) return reject(new Error(`ffmpeg exited ${code}: ${stderr}`));
      const b = Buffer.concat(chunks);
      resolve(new Float32Array(b.buffer, b.byteOffset, b.byteLength >> 2).slice());
    });
  });
}

/** Interleaved stereo → mono. */
function mono(x: ArrayLike<number>, scale: number): Float32Array {
  const out = new Float32Array(x.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = ((x[2 * i]! + x[2 * i + 1]!) / 2) * scale;
  return out;
}

/** RMS per hop of samples. */
function envelope(x: Float32Array, hop: number): Float32Array {
  const out = new Float32Array(Math.floor(x.length / hop));
  for (let k = 0; k < out.length; k++) {
    let s = 0;
    for (let i = k * hop; i < (k + 1) * hop; i++) s += x[i]! * x[i]!;
    out[k] = Math.sqrt(s / hop);
  }
  return out;
}

/** Normalized cross-correlation of `a` with `b` starting at `offset` (means removed). */
function ncc(a: Float32Array, b: Float32Array, offset: number): number {
  const n = a.length;
  if (offset < 0 || offset + n > b.length) return -2;
  let ma = 0;
  let mb = 0;
  for (let i = 0; i < n; i++) {
    ma += a[i]!;
    mb += b[offset + i]!;
  }
  ma /= n;
  mb /= n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    const da = a[i]! - ma;
    const db = b[offset + i]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  return saa > 0 && sbb > 0 ? sab / Math.sqrt(saa * sbb) : 0;
}

for (const adapter of SFU_ADAPTERS) {
  describe(adapterTitle('a clip sounds like what the room heard (the live stream against the render)', adapter), function () {
    this.timeout(180_000);
    let native: NativeFfmpeg | null;
    let t: TestServer;
    let member: Member | null = null;
    let listener: WeriftListener | null = null;

    before(async function () {
      await requireSfuAdapter(adapter, this);
      native = await findNativeFfmpeg();
      requireComponent('ffmpeg', native !== null, this);
      t = await startTestServer({ renderVideo: { width: 320, height: 180, fps: 30 } }, { adapter });
    });
    after(async () => {
      await listener?.close();
      member?.destroy();
      await t?.close();
    });

    it('correlates with the recorded stream over the clip, aligned to the sample', async function () {
      const room = await openRoom(t.url);
      const { token } = await joinAs(t.url, room, 'remixer', 'Mixer');
      member = await connectMember(t.url, room.roomId, token);
      const m = member;
      const lee = await joinAs(t.url, room, 'listener', 'Lee');
      listener = await listenToRoom(t.url, room.roomId, lee.token, 20_000, { keepPcm: true });
      m.doc.transact(() => (m.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
      // Changes inside the window, so that the clip has to follow them where the stream did.
      const steps: [number, () => void][] = [
        [1500, () => stemMap(m.doc, 'drums').set('gainDb', -9)],
        [3000, () => stemMap(m.doc, 'bass').set('mute', true)],
        [4500, () => masterMap(m.doc).set('reverbMix', 0.5)],
        [6000, () => stemMap(m.doc, 'bass').set('mute', false)],
        [7500, () => stemMap(m.doc, 'lead').set('pan', -0.8)],
      ];
      const started = Date.now();
      for (const [at, change] of steps) {
        await new Promise((r) => setTimeout(r, Math.max(0, started + at - Date.now())));
        m.doc.transact(change);
      }
      await new Promise((r) => setTimeout(r, Math.max(0, started + 10_000 - Date.now())));
      const res = await fetch(`${t.url}/api/rooms/${room.roomId}/clips`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': 'vs-live' },
        body: JSON.stringify({ seconds: 8 }),
      });
      const committed = (await res.json()) as ClipView;
      expect(res.status, JSON.stringify(committed)).to.equal(202);
      // Keep recording a little past the commit (the stream reaches the listener a little late).
      await new Promise((r) => setTimeout(r, 1500));
      const live = mono(Int16Array.from(listener.pcm.flatMap((p) => Array.from(p))), 1 / 32768);
      await listener.close();
      listener = null;

      const deadline = Date.now() + 120_000;
      let view: ClipView;
      for (;;) {
        view = (await api<ClipView>(t.url, 'GET', `/api/clips/${committed.clipId}`, undefined, token)).body;
        if (view.status === 'done' || view.status === 'failed') break;
        if (Date.now() > deadline) throw new Error(`the clip did not finish: ${JSON.stringify(view)}`);
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(view.status, JSON.stringify(view)).to.equal('done');
      const file = path.join(fs.mkdtempSync(path.join(t.dataDir, 'vs-live-')), 'clip.m4a');
      fs.writeFileSync(file, Buffer.from(await (await fetch(t.url + view.downloads!.audio!)).arrayBuffer()));
      const clip = mono(await decodeToFloat(native!.ffmpeg, file), 1);
      expect(clip.length / RATE).to.be.closeTo(8, 0.1);
      expect(live.length / RATE, 'seconds of stream recorded').to.be.above(9);

      // Coarse: loudness envelopes every 10 ms; fine: the waveform, sample by sample, around it.
      const hop = RATE / 100;
      const clipEnv = envelope(clip, hop);
      const liveEnv = envelope(live, hop);
      let coarse = 0;
      let coarseR = -2;
      for (let k = 0; k + clipEnv.length <= liveEnv.length; k++) {
        const r = ncc(clipEnv, liveEnv, k);
        if (r > coarseR) [coarse, coarseR] = [k, r];
      }
      // The middle 6 s of the clip (the ends may straddle what the listener got).
      const part = clip.subarray(RATE, 7 * RATE);
      let best = 0;
      let bestR = -2;
      for (let lag = coarse * hop - hop; lag <= coarse * hop + hop; lag++) {
        const r = ncc(part, live, lag + RATE);
        if (r > bestR) [best, bestR] = [lag, r];
      }
      const offBy7ms = Math.max(ncc(part, live, best + RATE + 336), ncc(part, live, best + RATE - 336));
      this.test!.title += ` (envelope r ${coarseR.toFixed(3)}, waveform r ${bestR.toFixed(3)}, 7 ms off ${offBy7ms.toFixed(3)})`;
      expect(coarseR, 'loudness envelopes').to.be.above(0.8);
      expect(bestR, 'waveforms, aligned').to.be.above(0.95);
      expect(offBy7ms, 'waveforms, 7 ms off').to.be.below(bestR - 0.3);
    });
  });
}
