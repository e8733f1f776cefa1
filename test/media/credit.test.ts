// The credit line in every clip and loop: title, artist and "made in Remixroom" drawn into the
// frames handed to ffmpeg, in a corner box that reads on any picture; found again in a frame
// that ffmpeg decodes from the encoded file.
import { spawnSync } from 'node:child_process';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'chai';
import { findNativeFfmpeg, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { renderClip } from '../../media/render/clip-render.ts';
import { CreditOverlay, creditLine, creditText } from '../../media/render/credit.ts';
import { frameBytes } from '../../media/render/encoder.ts';
import { renderLoop } from '../../media/render/loop-render.ts';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { neutralMixerState } from '../../media/mixer/mixer-state.ts';
import { readWavFloat32 } from '../../media/audio/wav.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { VisualSequence, energyFromRms } from '../../shared/visual-timeline.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { tempDir } from '../support/temp.ts';

const W = 1280;
const H = 720;

/** Mean absolute difference of the luma plane inside and outside a box, between two frames. */
function lumaDiff(a: Uint8Array, b: Uint8Array, w: number, box: { x: number; y: number; width: number; height: number }): { inside: number; outside: number } {
  let inSum = 0;
  let inN = 0;
  let outSum = 0;
  let outN = 0;
  const h = (a.length * 2) / 3 / w;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const d = Math.abs(a[y * w + x]! - b[y * w + x]!);
      if (x >= box.x && x < box.x + box.width && y >= box.y && y < box.y + box.height) {
        inSum += d;
        inN++;
      } else {
        outSum += d;
        outN++;
      }
    }
  }
  return { inside: inSum / inN, outside: outSum / outN };
}

describe('the credit line in clips and loops', function () {
  this.timeout(120_000);

  it('says title, artist and "made in Remixroom" in the font it has: accents dropped, emoji and control characters left out', () => {
    expect(creditLine({ title: 'Night Bus Glow', artist: 'Remixroom House Band' })).to.equal('Night Bus Glow | Remixroom House Band | made in Remixroom');
    expect(creditLine({ title: 'Café 🔥', artist: 'Beyoncé\n\u0000' })).to.equal('Cafe | Beyonce | made in Remixroom');
    expect(creditLine({ title: '🔥🔥', artist: '' })).to.equal('made in Remixroom');
    expect(creditText('“Quoted” — it’s')).to.equal('"Quoted" - it\'s');
  });

  it('sits in a small bottom-left box, inside the frame, cut with "..." when too long; only the box changes', () => {
    const o = new CreditOverlay(creditLine({ title: 'Night Bus Glow', artist: 'Remixroom House Band' }), W, H);
    expect(o.box.x).to.be.below(W / 10);
    expect(o.box.y + o.box.height).to.be.within(H - H / 10, H);
    expect(o.box.height).to.be.within(16, 40);
    expect(o.box.width).to.be.below(W * 0.7);
    for (const [w, h] of [[W, H], [1080, 1920], [640, 360], [16, 16]] as const) {
      const long = new CreditOverlay('x'.repeat(500), w, h);
      expect(long.box.x + long.box.width, `${w}x${h}`).to.be.at.most(w);
      expect(long.box.y, `${w}x${h}`).to.be.at.least(0);
      if (long.text) expect(long.text.endsWith('...')).to.equal(true);
    }
    // On a phone-shaped frame the title gives way, "made in Remixroom" stays.
    const tall = new CreditOverlay(creditLine({ title: 'A rather long title of a piece', artist: 'An artist with a long name' }), 1080, 1920);
    expect(tall.text).to.match(/^A rather long title.*\.\.\. \| made in Remixroom$/);
    expect(tall.box.x + tall.box.width).to.be.at.most(1080);
    // A mid-grey, colourful frame: the credit changes the box and nothing else, white text on a dark ground.
    const frame = new Uint8Array(frameBytes('yuv420p', W, H));
    frame.fill(120, 0, W * H);
    frame.fill(200, W * H);
    const before = frame.slice();
    o.drawYuv420(frame);
    let lit = 0;
    let dark = 0;
    for (let y = 0; y < H; y++) {
      for (let x = 0; x < W; x++) {
        const inBox = x >= o.box.x && x < o.box.x + o.box.width && y >= o.box.y && y < o.box.y + o.box.height;
        const v = frame[y * W + x]!;
        if (!inBox) expect(v).to.equal(before[y * W + x]);
        else if (v === 230) lit++;
        else if (v < 60) dark++;
      }
    }
    expect(lit, 'text pixels').to.be.greaterThan(1000);
    expect(dark, 'box pixels').to.be.greaterThan(lit);
    // Chroma outside the box is untouched.
    const cw = W / 2;
    expect(frame[W * H + 0]).to.equal(200);
    expect(frame[W * H + ((o.box.y >> 1) + 2) * cw + (o.box.x >> 1) + 2]).to.be.below(200);
  });

  describe('through ffmpeg', () => {
    let native: NativeFfmpeg | null;
    let data: { path: string; remove(): Promise<void> };
    let work: { path: string; remove(): Promise<void> };
    let engine: VisualEngine;
    let stems: { id: string; pcm: Float32Array }[];

    before(async function () {
      native = await findNativeFfmpeg();
      requireComponent('ffmpeg', native !== null, this);
      data = await demoDataDir();
      work = await tempDir('credit');
      const layout = new DataLayout(data.path);
      engine = new VisualEngine(engineArtwork(await readVisualPack(path.join(layout.releaseDir(DEMO_RELEASE_ID), 'visual-pack'))));
      stems = [];
      for (const id of ['drums', 'bass', 'harmony', 'lead']) stems.push({ id, pcm: (await readWavFloat32(layout.stemFile(DEMO_RELEASE_ID, id))).interleaved });
    });
    after(async () => {
      await work?.remove();
      await data?.remove();
    });

    /** Frame `n` of a video, decoded by ffmpeg as yuv420p. */
    function decodedFrame(file: string, n: number): Uint8Array {
      const r = spawnSync(native!.ffmpeg, ['-v', 'error', '-i', file, '-vf', `select=eq(n\\,${n})`, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'yuv420p', '-'], { maxBuffer: 64 << 20 });
      expect(r.status, String(r.stderr)).to.equal(0);
      return new Uint8Array(r.stdout.buffer, r.stdout.byteOffset, r.stdout.byteLength);
    }

    it('a clip: the decoded frame differs from the same render without the credit in the credit box, and hardly elsewhere', async () => {
      const credit = new CreditOverlay(creditLine({ title: 'Night Bus Glow', artist: 'Remixroom House Band' }), W, H);
      const sequence = new VisualSequence(neutralVisualParams(), 0);
      const files: string[] = [];
      for (const withCredit of [false, true]) {
        const outputs = { mp4: path.join(work.path, `clip-${withCredit}.mp4`), audio: path.join(work.path, `clip-${withCredit}.m4a`) };
        await renderClip(
          {
            ffmpeg: native!.ffmpeg,
            stems,
            bpm: 120,
            schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), { startSec: 8, endSec: 40 }, true) }],
            durationSec: 1,
            video: { engine, width: W, height: H, fps: 30, frameAt: (t, energy) => sequence.frameAt(t * 1000, 0, { energy, beatPhase: (t * 2) % 1 }), ...(withCredit ? { credit } : {}) },
            outputs,
            workDir: work.path,
          },
          energyFromRms,
        );
        files.push(outputs.mp4);
      }
      const d = lumaDiff(decodedFrame(files[0]!, 15), decodedFrame(files[1]!, 15), W, credit.box);
      expect(d.inside, JSON.stringify(d)).to.be.greaterThan(20);
      expect(d.outside, JSON.stringify(d)).to.be.below(2);
    });

    it('a loop: the credit stands still through the cross-fade that closes it', async () => {
      const credit = new CreditOverlay(creditLine({ title: 'Night Bus Glow', artist: 'Remixroom House Band' }), 640, 360);
      const sequence = new VisualSequence(neutralVisualParams(), 0);
      const files: string[] = [];
      for (const withCredit of [false, true]) {
        const outputs = { mp4: path.join(work.path, `loop-${withCredit}.mp4`), gif: path.join(work.path, `loop-${withCredit}.gif`) };
        await renderLoop({ ffmpeg: native!.ffmpeg, engine, width: 640, height: 360, fps: 30, seconds: 1, frameAt: (t) => sequence.frameAt(t * 1000, 0, { energy: 0.5, beatPhase: (t * 2) % 1 }), outputs, ...(withCredit ? { credit } : {}) });
        files.push(outputs.mp4);
      }
      // Frame 3 is inside the cross-fade, frame 20 after it: the credit is there in both.
      for (const n of [3, 20]) {
        const d = lumaDiff(decodedFrame(files[0]!, n), decodedFrame(files[1]!, n), 640, credit.box);
        expect(d.inside, `frame ${n}: ${JSON.stringify(d)}`).to.be.greaterThan(20);
        expect(d.outside, `frame ${n}: ${JSON.stringify(d)}`).to.be.below(2);
      }
    });
  });
});
