// The clip renderer with real parts: the demo release's stems and visual pack,
// Debian's ffmpeg, and ffprobe on what comes out.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import fsp from 'node:fs/promises';
import { expect } from 'chai';
import { findNativeFfmpeg, runCapture, type NativeFfmpeg } from '../../media/audio/ffmpeg.ts';
import { readWavFloat32 } from '../../media/audio/wav.ts';
import { neutralMixerState } from '../../media/mixer/mixer-state.ts';
import { AUDIO_KBPS, VIDEO_MAXRATE_KBPS, frameEnergies, renderClip } from '../../media/render/clip-render.ts';
import { RenderError } from '../../media/render/ffmpeg-pipe.ts';
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
  streams: { codec_type: string; codec_name: string; width?: number; height?: number; sample_rate?: string; channels?: number; pix_fmt?: string; avg_frame_rate?: string; nb_frames?: string }[];
  format: { duration: string; tags?: Record<string, string> };
}

describe('clip renderer (mixer + visual engine + native ffmpeg or @ffmpeg/core)', function () {
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

  // The same assertions for both encoders; the WebAssembly case is shorter (it is several times slower).
  const cases = [
    { kind: 'native' as const, seconds: 3, width: 1280, height: 720 },
    { kind: 'wasm' as const, seconds: 2, width: 640, height: 360 },
  ];
  const ffmpegFor = (kind: 'native' | 'wasm') => (kind === 'native' ? native!.ffmpeg : null);
  const leftovers = async (prefix: string) => (await fsp.readdir(work.path)).filter((f) => (f.startsWith(prefix) && f.endsWith('.part')) || f.endsWith('.f32') || f.endsWith('.wav'));

  for (const c of cases) {
    it(`${c.kind}: renders an MP4 (H.264 ${c.width}x${c.height}, AAC) and an audio file of the requested length, not silent, with the metadata given`, async () => {
      const { seconds, width, height } = c;
      const region = { startSec: 8, endSec: 40 };
      const sequence = new VisualSequence(neutralVisualParams(), 0);
      const storm = neutralVisualParams();
      storm.motion.ripple = 0.8;
      storm.palette.brightness = -0.3;
      sequence.push(1000, storm);
      const outputs = { mp4: path.join(work.path, `clip-${c.kind}.mp4`), audio: path.join(work.path, `clip-${c.kind}.m4a`) };
      const progress: number[] = [];
      const result = await renderClip(
        {
          ffmpeg: ffmpegFor(c.kind),
          stems,
          bpm: 120,
          schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), region, true) }],
          durationSec: seconds,
          video: { engine, width, height, fps: 30, frameAt: (t, energy) => sequence.frameAt(t * 1000, 0, { energy, beatPhase: (t * 2) % 1 }) },
          metadata: { comment: '{"clip":"test"}' },
          outputs,
          workDir: work.path,
          onProgress: (f) => progress.push(f),
        },
        energyFromRms,
      );
      expect(result.encoder).to.equal(c.kind);
      expect(result.videoFrames).to.equal(seconds * 30);
      expect(progress.at(-1)).to.equal(1);
      const mp4 = await probe(outputs.mp4);
      const video = mp4.streams.find((s) => s.codec_type === 'video')!;
      const audio = mp4.streams.find((s) => s.codec_type === 'audio')!;
      expect(video).to.include({ codec_name: 'h264', width, height, pix_fmt: 'yuv420p', avg_frame_rate: '30/1' });
      expect(video.nb_frames).to.equal(String(seconds * 30));
      expect(audio).to.include({ codec_name: 'aac', channels: 2, sample_rate: '48000' });
      expect(Number(mp4.format.duration)).to.be.closeTo(seconds, 1 / 30 + 0.03);
      expect(mp4.format.tags?.['comment']).to.equal('{"clip":"test"}');
      const m4a = await probe(outputs.audio);
      expect(m4a.streams).to.have.length(1);
      expect(m4a.streams[0]).to.include({ codec_type: 'audio', codec_name: 'aac' });
      expect(Number(m4a.format.duration)).to.be.closeTo(seconds, 0.05);
      expect(m4a.format.tags?.['comment']).to.equal('{"clip":"test"}');
      // Not silent: decode the audio file and measure.
      const decoded = await runCapture(native!.ffmpeg, ['-hide_banner', '-nostats', '-i', outputs.audio, '-af', 'volumedetect', '-f', 'null', '-']);
      const mean = /mean_volume: (-?[\d.]+) dB/.exec(decoded.stderr);
      expect(mean, decoded.stderr).to.not.equal(null);
      expect(Number(mean![1])).to.be.greaterThan(-40);
      // The pictures are the engine's: the first decoded frame matches the engine's own drawing of it.
      const first = spawnSync(native!.ffmpeg, ['-v', 'error', '-i', outputs.mp4, '-frames:v', '1', '-f', 'rawvideo', '-pix_fmt', 'rgba', '-'], { maxBuffer: 64 << 20 });
      expect(first.status, String(first.stderr)).to.equal(0);
      const drawn = new Uint8ClampedArray(width * height * 4);
      const energy = frameEnergies(result.pcm, 30, 1, energyFromRms)[0]!;
      engine.renderFrame(drawn, width, height, sequence.frameAt(0, 0, { energy, beatPhase: 0 }));
      expect(first.stdout.length).to.equal(drawn.length);
      let diff = 0;
      let level = 0;
      for (let i = 0; i < drawn.length; i++) {
        if ((i & 3) === 3) continue;
        diff += Math.abs(first.stdout[i]! - drawn[i]!);
        level += drawn[i]!;
      }
      const px = (drawn.length / 4) * 3;
      expect(level / px, 'the engine drew something').to.be.greaterThan(10);
      expect(diff / px, 'mean absolute error of the encoded first frame').to.be.lessThan(6);
      // No temporary files left.
      expect(await leftovers('clip')).to.deep.equal([]);
    });

    it(`${c.kind}: an abort stops the encode and leaves no files`, async () => {
      const controller = new AbortController();
      const outputs = { mp4: path.join(work.path, `aborted-${c.kind}.mp4`), audio: path.join(work.path, `aborted-${c.kind}.m4a`) };
      let err: unknown;
      await renderClip(
        {
          ffmpeg: ffmpegFor(c.kind),
          stems,
          bpm: 120,
          schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), { startSec: 0, endSec: 20 }, true) }],
          durationSec: 10,
          video: { engine, width: c.width, height: c.height, fps: 30, frameAt: () => new VisualSequence().frameAt(0, 0, { energy: 0, beatPhase: 0 }) },
          outputs,
          workDir: work.path,
          signal: controller.signal,
          // Abort once a second of video has gone to the encoder.
          onProgress: (f, step) => {
            if (step === 'video' && f > 0.1) controller.abort();
          },
        },
        energyFromRms,
      ).catch((e: unknown) => (err = e));
      expect((err as Error | undefined)?.name).to.equal('AbortError');
      expect(await leftovers('aborted')).to.deep.equal([]);
      expect(fs.existsSync(outputs.mp4) || fs.existsSync(outputs.audio)).to.equal(false);
    });
  }

  it('native: a busy 720p clip fits the sharing budget (the video capped, whatever the visuals do)', async () => {
    // Visuals that cost the most bits: ripple, glitch, grain and a prompt change, on a pulse.
    const seconds = 8;
    const sequence = new VisualSequence(neutralVisualParams(), 0);
    const busy = neutralVisualParams();
    busy.motion.ripple = 1;
    busy.motion.glitch = 1;
    busy.texture.grain = 1;
    busy.speed = 3;
    busy.intensity = 1;
    sequence.push(2000, busy);
    const outputs = { mp4: path.join(work.path, 'budget.mp4'), audio: path.join(work.path, 'budget.m4a') };
    await renderClip(
      {
        ffmpeg: native!.ffmpeg,
        stems,
        bpm: 120,
        schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), { startSec: 8, endSec: 40 }, true) }],
        durationSec: seconds,
        video: { engine, width: 1280, height: 720, fps: 30, frameAt: (t, energy) => sequence.frameAt(t * 1000, 0, { energy, beatPhase: (t * 2) % 1 }) },
        outputs,
        workDir: work.path,
      },
      energyFromRms,
    );
    // What the cap allows at most: the rate over the clip plus one full buffer (one second's worth), and the audio.
    const bound = ((VIDEO_MAXRATE_KBPS * (seconds + 1) + AUDIO_KBPS * seconds) * 1000) / 8;
    const bytes = (await fsp.stat(outputs.mp4)).size;
    expect(bytes, `${bytes} bytes for ${seconds} s`).to.be.at.most(bound * 1.03);
    // So a 30 s clip stays under 10 MB.
    expect(((VIDEO_MAXRATE_KBPS * 31 + AUDIO_KBPS * 30) * 1000) / 8).to.be.below(9.5e6);
  });

  it('native: outputs whose paths the tee muxer cannot take are encoded separately, with the same result', async () => {
    const dir = path.join(work.path, "odd [dir] it's");
    await fsp.mkdir(dir, { recursive: true });
    const outputs = { mp4: path.join(dir, 'a|b.mp4'), audio: path.join(dir, 'a|b.m4a') };
    await renderClip(
      {
        ffmpeg: native!.ffmpeg,
        stems,
        bpm: 120,
        schedule: [{ block: 0, state: neutralMixerState(stems.map((s) => s.id), { startSec: 0, endSec: 10 }, true) }],
        durationSec: 1,
        video: { engine, width: 64, height: 36, fps: 10, frameAt: () => new VisualSequence().frameAt(0, 0, { energy: 0, beatPhase: 0 }) },
        metadata: { comment: 'x|y[z]' },
        outputs,
        workDir: work.path,
      },
      energyFromRms,
    );
    const mp4 = await probe(outputs.mp4);
    expect(mp4.streams.map((s) => s.codec_name).sort()).to.deep.equal(['aac', 'h264']);
    expect(mp4.format.tags?.['comment']).to.equal('x|y[z]');
    const m4a = await probe(outputs.audio);
    expect(m4a.streams.map((s) => s.codec_name)).to.deep.equal(['aac']);
    expect(Number(m4a.format.duration)).to.be.closeTo(1, 0.05);
  });

  it('refuses nonsense lengths and sizes before starting anything, and leaves nothing behind when ffmpeg fails (both encoders)', async () => {
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
    // An ffmpeg that fails (an unknown preset): a clear error, no files — native and WebAssembly.
    for (const ffmpeg of [native!.ffmpeg, null]) {
      let ffErr: unknown;
      await renderClip({ ...base, ffmpeg, durationSec: 1, preset: 'no-such-preset' }, energyFromRms).catch((e: unknown) => (ffErr = e));
      expect(ffErr, String(ffmpeg)).to.be.instanceOf(RenderError);
      expect(String(ffErr)).to.match(/ffmpeg failed/);
      expect((await fsp.readdir(work.path)).filter((f) => f.startsWith('bad') || f.endsWith('.f32') || f.endsWith('.wav'))).to.deep.equal([]);
    }
  });
});
