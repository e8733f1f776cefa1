// The clip renderer with real parts: the demo release's stems and visual pack,
// Debian's ffmpeg, and ffprobe on what comes out.
import path from 'node:path';
import fsp from 'node:fs/promises';
import { expect } from 'chai';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { readWavFloat32 } from '../../media/audio/wav.ts';
import { neutralMixerState } from '../../media/mixer/mixer-state.ts';
import { renderClip } from '../../media/render/clip-render.ts';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { DEMO_RELEASE_ID } from '../../server/catalog/demo-release.ts';
import { DataLayout } from '../../server/store/paths.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { neutralVisualParams } from '../../shared/visual-params.ts';
import { VisualSequence, energyFromRms } from '../../shared/visual-timeline.ts';
import { requireComponent } from '../support/components.ts';
import { demoDataDir } from '../support/demo-data.ts';
import { tempDir } from '../support/temp.ts';

interface Probe {
  streams: { codec_type: string; codec_name: string; width?: number; height?: number; sample_rate?: string; channels?: number }[];
  format: { duration: string; tags?: Record<string, string> };
}

describe('clip renderer (mixer + visual engine + native ffmpeg)', function () {
  this.timeout(120_000);
  let native: NativeFfmpeg | null;
  let data: { path: string; remove(): Promise<void> };
  let work: { path: string; remove(): Promise<void> };
  let stems: { id: string; pcm: Float32Array }[];
  let engine: VisualEngine;

  before(async function () {
    native = await findNativeFfmpeg();
    requireComponent('ffmpeg', native !== null && native.ffprobe !== null, this);
    data = await demoDataDir();
    work = await tempDir('clip-render');
    const layout = new DataLayout(data.path);
    stems = [];
    for (const id of ['drums', 'bass', 'harmony', 'lead']) stems.push({ id, pcm: (await readWavFloat32(layout.stemFile(DEMO_RELEASE_ID, id))).interleaved });
    engine = new VisualEngine(engineArtwork(await readVisualPack(path.join(layout.releaseDir(DEMO_RELEASE_ID), 'visual-pack'))));
  });
  after(async () => {
    await work?.remove();
    await data?.remove();
  });

  async function probe(file: string): Promise<Probe> {
    const r = await runCapture(native!.ffprobe!, ['-v', 'error', '-show_streams', '-show_format', '-of', 'json', file]);
    expect(r.code, r.stderr).to.equal(0);
    return JSON.parse(r.stdout) as Probe;
  }

  it('renders an MP4 (H.264 1280x720, AAC) and an audio file of the requested length, not silent, with the metadata given', async () => {
    const seconds = 3;
    const region = { startSec: 8, endSec: 40 };
    const sequence = new VisualSequence(neutralVisualParams(), 0);
    const storm = neutralVisualParams();
    storm.motion.ripple = 0.8;
    storm.palette.brightness = -0.3;
    sequence.push(1000, storm);
    const outputs = { mp4: path.join(work.path, 'clip.mp4'), audio: path.join(work.path, 'clip.m4a') };
    const progress: number[] = [];
    const result = await renderClip(
      {
        ffmpeg: native!.ffmpeg,
        stems,
        bpm: 120,
        schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), region, true) }],
        durationSec: seconds,
        video: { engine, width: 1280, height: 720, fps: 30, frameAt: (t, energy) => sequence.frameAt(t * 1000, 0, { energy, beatPhase: (t * 2) % 1 }) },
        metadata: { comment: '{"clip":"test"}' },
        outputs,
        workDir: work.path,
        onProgress: (f) => progress.push(f),
      },
      energyFromRms,
    );
    expect(result.videoFrames).to.equal(90);
    expect(progress.at(-1)).to.equal(1);
    const mp4 = await probe(outputs.mp4);
    const video = mp4.streams.find((s) => s.codec_type === 'video')!;
    const audio = mp4.streams.find((s) => s.codec_type === 'audio')!;
    expect(video).to.include({ codec_name: 'h264', width: 1280, height: 720 });
    expect(audio).to.include({ codec_name: 'aac', channels: 2 });
    expect(Number(mp4.format.duration)).to.be.closeTo(seconds, 1 / 30 + 0.03);
    expect(mp4.format.tags?.['comment']).to.equal('{"clip":"test"}');
    const m4a = await probe(outputs.audio);
    expect(m4a.streams).to.have.length(1);
    expect(m4a.streams[0]).to.include({ codec_type: 'audio', codec_name: 'aac' });
    expect(Number(m4a.format.duration)).to.be.closeTo(seconds, 0.05);
    // Not silent: decode the audio file and measure.
    const decoded = await runCapture(native!.ffmpeg, ['-hide_banner', '-nostats', '-i', outputs.audio, '-af', 'volumedetect', '-f', 'null', '-']);
    const mean = /mean_volume: (-?[\d.]+) dB/.exec(decoded.stderr);
    expect(mean, decoded.stderr).to.not.equal(null);
    expect(Number(mean![1])).to.be.greaterThan(-40);
    // No temporary files left.
    expect((await fsp.readdir(work.path)).filter((f) => f.endsWith('.part') || f.endsWith('.wav'))).to.deep.equal([]);
  });

  it('refuses nonsense lengths and sizes before starting anything, and leaves nothing behind when ffmpeg fails', async () => {
    const base = {
      ffmpeg: native!.ffmpeg,
      stems,
      bpm: 120,
      schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), { startSec: 0, endSec: 10 }, true) }],
      video: { engine, width: 64, height: 36, fps: 10, frameAt: () => new VisualSequence().frameAt(0, 0, { energy: 0, beatPhase: 0 }) },
      outputs: { mp4: path.join(work.path, 'bad.mp4'), audio: path.join(work.path, 'bad.m4a') },
      workDir: work.path,
    };
    for (const durationSec of [0, -1, Number.NaN, 1e9]) {
      let err: unknown;
      await renderClip({ ...base, durationSec }, energyFromRms).catch((e: unknown) => (err = e));
      expect(err, String(durationSec)).to.be.instanceOf(RangeError);
    }
    let sizeErr: unknown;
    await renderClip({ ...base, durationSec: 1, video: { ...base.video, width: 63 } }, energyFromRms).catch((e: unknown) => (sizeErr = e));
    expect(sizeErr).to.be.instanceOf(RangeError);
    // An ffmpeg that fails (an unknown preset): a clear error, no files.
    let ffErr: unknown;
    await renderClip({ ...base, durationSec: 1, preset: 'no-such-preset' }, energyFromRms).catch((e: unknown) => (ffErr = e));
    expect(String(ffErr)).to.match(/ffmpeg failed/);
    expect((await fsp.readdir(work.path)).filter((f) => f.startsWith('bad') || f.endsWith('.wav'))).to.deep.equal([]);
  });
});
