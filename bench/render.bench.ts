// `npm run bench -- render [--seconds=30] [--preset=…] [--wasm-seconds=30]`
//
// Wall time to render a clip as the clip service does (the demo release's four
// stems through the mixer with changes on the way, the visual engine at
// 1280x720 30 fps with a prompt change, native ffmpeg: H.264 + AAC MP4 and an
// M4A), and its ratio to the encoder's own floor: the same ffmpeg arguments
// (clipEncodeArgs: same preset, CRF and codec settings) encoding the same
// frames and audio read from raw files (the frames drawn beforehand in the
// renderer's raw format, yuv420p, the files in the page cache). The ratio says what drawing costs on top of encoding when
// both run at once on this machine's cores.
//
// Then the WebAssembly path (@ffmpeg/core in a worker thread, what a server
// without native ffmpeg uses): the same render, `--wasm-seconds` long (default
// 30, the full clip; 0 skips it), with its seconds per clip-second and the
// process's peak RSS.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { findNativeFfmpeg } from '../media/audio/ffmpeg.ts';
import { embedWatermark } from '../media/watermark/watermark.ts';
import { readWavFloat32 } from '../media/audio/wav.ts';
import { neutralMixerState } from '../media/mixer/mixer-state.ts';
import type { ScheduledState } from '../media/mixer/render-offline.ts';
import { NATIVE_PRESET, WASM_PRESET, clipEncodeArgs, frameEnergies, renderClip, teeSafe } from '../media/render/clip-render.ts';
import { FRAME_PIXEL_FORMAT } from '../media/render/ffmpeg-pipe.ts';
import { frameBytes } from '../media/render/encoder.ts';
import { engineArtwork, readVisualPack } from '../media/visuals/visual-pack.ts';
import { DEMO_RELEASE_ID } from '../server/catalog/demo-release.ts';
import { DataLayout } from '../server/store/paths.ts';
import { VisualEngine } from '../shared/visual-engine.ts';
import { interpretPrompt } from '../shared/prompt-interpreter.ts';
import { neutralVisualParams } from '../shared/visual-params.ts';
import { VisualSequence, energyFromRms } from '../shared/visual-timeline.ts';
import { demoDataDir, removeDemoTemplate } from '../test/support/demo-data.ts';
import { intArg, parseArgs, round } from './support/proc.ts';

const GOAL = { seconds: 10, ratio: 1.3 };
const W = 1280;
const H = 720;
const FPS = 30;

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['seconds', 'preset', 'wasm-seconds']);
  const seconds = intArg(args, 'seconds', 30, 8, 300);
  const wasmSecondsArg = intArg(args, 'wasm-seconds', 30, 0, 300);
  const preset = args.get('preset') ?? NATIVE_PRESET;
  if (!/^[a-z]+$/.test(preset)) throw new Error(`--preset must be an x264 preset name, not "${preset}"`);
  const native = await findNativeFfmpeg();
  if (!native) throw new Error('the render benchmark needs a native ffmpeg (apt-get install ffmpeg)');
  const data = await demoDataDir();
  const work = await fsp.mkdtemp(path.join(os.tmpdir(), 'render-bench-'));
  try {
    const layout = new DataLayout(data.path);
    const stemIds = ['drums', 'bass', 'harmony', 'lead'];
    const stems = [];
    for (const id of stemIds) stems.push({ id, pcm: (await readWavFloat32(layout.stemFile(DEMO_RELEASE_ID, id))).interleaved });
    const engine = new VisualEngine(engineArtwork(await readVisualPack(path.join(layout.releaseDir(DEMO_RELEASE_ID), 'visual-pack'))));
    // A mix that moves: reverb and delay come in, the drums drop out for a while, tempo and pitch change.
    const region = { startSec: 8, endSec: 40 };
    const schedule: ScheduledState[] = [];
    const base = neutralMixerState(stemIds, region, true);
    schedule.push({ block: 0, state: base });
    const later = structuredClone(base);
    later.master.reverbMix = 0.35;
    later.master.delayMix = 0.25;
    later.master.filterSweep = -0.3;
    later.stems['drums']!.mute = true;
    later.targetSourceSec = null;
    schedule.push({ block: Math.round((seconds / 3) * 100), state: later });
    const last = structuredClone(later);
    last.stems['drums']!.mute = false;
    last.master.tempo = 1.1;
    last.master.pitchSemitones = 2;
    schedule.push({ block: Math.round(((2 * seconds) / 3) * 100), state: last });
    const visuals = new VisualSequence(neutralVisualParams(), 0);
    const ids = engine.artworkIds;
    const prompt = interpretPrompt('stormy neon ripple, faster', { artwork: ids.map((id) => ({ id, tags: [], palette: [] })), previous: null });
    visuals.push((seconds / 2) * 1000, prompt.params);
    const frameAt = (t: number, energy: number) => visuals.frameAt(t * 1000, 0, { energy, beatPhase: (t * 2) % 1 });
    const frames = seconds * FPS;

    // 1. The whole render, as the clip service runs it.
    const outputs = { mp4: path.join(work, 'clip.mp4'), audio: path.join(work, 'clip.m4a') };
    const cpu0 = process.cpuUsage();
    const child0 = childCpuSec();
    const t0 = performance.now();
    // As the clip service does it: the audio is watermarked before it is encoded.
    const key = crypto.randomBytes(32);
    let markSec = 0;
    const markAudio = (pcm: Float32Array) => {
      const m0 = performance.now();
      const marked = embedWatermark(pcm, { payload: 0x0123456789abcdefn, key }).pcm;
      markSec = (performance.now() - m0) / 1000;
      return marked;
    };
    const result = await renderClip({ ffmpeg: native.ffmpeg, preset, stems, bpm: 120, schedule, durationSec: seconds, video: { engine, width: W, height: H, fps: FPS, frameAt }, markAudio, outputs, workDir: work }, energyFromRms);
    const nativeMaxRssMB = process.resourceUsage().maxRSS / 1024;
    const nativeMarkSec = markSec; // markAudio runs again for the WebAssembly render
    const renderSec = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    const renderFfmpegCpu = childCpuSec() - child0;

    // 2. The encoder's floor: the same frames and audio, from files, through the same encoding.
    // The render's own mix after marking: the same audio, and the same energies for the frames.
    const pcm = result.pcm;
    const audioRaw = path.join(work, 'mix.f32');
    await fsp.writeFile(audioRaw, new Uint8Array(pcm.buffer, pcm.byteOffset, pcm.byteLength));
    // The frames exactly as the renderer hands them over (same pixel format, same drawing).
    const raw = path.join(work, `frames.${FRAME_PIXEL_FORMAT}`);
    const fh = await fsp.open(raw, 'w');
    const frame = new Uint8ClampedArray(frameBytes(FRAME_PIXEL_FORMAT, W, H));
    const energies = frameEnergies(pcm, FPS, frames, energyFromRms);
    for (let f = 0; f < frames; f++) {
      engine.renderFrameYuv420(frame, W, H, frameAt(f / FPS, energies[f]!));
      await fh.write(new Uint8Array(frame.buffer));
    }
    await fh.close();
    // Warm the page cache.
    for await (const _chunk of fs.createReadStream(raw, { highWaterMark: 1 << 24 })) void _chunk;
    // As the renderer chooses: the tee muxer (one AAC encode for both files) when the paths allow it.
    if (!teeSafe(outputs.mp4) || !teeSafe(outputs.audio)) throw new Error(`the bench's work folder ${work} has characters the tee muxer cannot take`);
    const floorOut = [path.join(work, 'floor.mp4'), path.join(work, 'floor.m4a')];
    const child1 = childCpuSec();
    const t1 = performance.now();
    await ffmpeg(native.ffmpeg, [
      '-hide_banner', '-loglevel', 'error', '-nostdin', '-y',
      '-f', 'rawvideo', '-pix_fmt', FRAME_PIXEL_FORMAT, '-s', `${W}x${H}`, '-r', String(FPS), '-i', raw,
      '-f', 'f32le', '-ar', '48000', '-ac', '2', '-i', audioRaw,
      ...clipEncodeArgs({ preset, fps: FPS, durationSec: seconds, tee: floorOut.every(teeSafe) }).map((a) => a.replace(/\{out(\d)\}/g, (_m, n: string) => floorOut[Number(n)]!)),
    ]);
    const encoderSec = (performance.now() - t1) / 1000;
    const floorFfmpegCpu = childCpuSec() - child1;
    const ratio = renderSec / encoderSec;
    const mp4Bytes = (await fsp.stat(outputs.mp4)).size;

    // 3. The WebAssembly path: the same render through @ffmpeg/core in a worker thread.
    let wasm: { seconds: number; clipSeconds: number; secPerClipSec: number; preset: string; drawSec: number; maxRssMB: number } | null = null;
    if (wasmSecondsArg > 0) {
      const wasmOut = { mp4: path.join(work, 'wasm.mp4'), audio: path.join(work, 'wasm.m4a') };
      const t2 = performance.now();
      const r = await renderClip({ ffmpeg: null, stems, bpm: 120, schedule, durationSec: wasmSecondsArg, video: { engine, width: W, height: H, fps: FPS, frameAt }, markAudio, outputs: wasmOut, workDir: work }, energyFromRms);
      const sec = (performance.now() - t2) / 1000;
      wasm = { seconds: round(sec), clipSeconds: wasmSecondsArg, secPerClipSec: round(sec / wasmSecondsArg), preset: WASM_PRESET, drawSec: round(r.timings.drawSec), maxRssMB: round(process.resourceUsage().maxRSS / 1024, 0) };
    }
    return {
      bench: 'render',
      clipSeconds: seconds,
      preset,
      seconds: round(renderSec),
      encoderSeconds: round(encoderSec),
      ratioToEncoder: round(ratio),
      mp4MB: round(mp4Bytes / 1e6),
      // Only a full-length (equal to --seconds) WebAssembly render counts as wasmSeconds.
      wasmSeconds: wasm && wasm.clipSeconds === seconds ? wasm.seconds : null,
      wasm,
      nativeMaxRssMB: round(nativeMaxRssMB, 0),
      breakdown: { mixAndMarkSec: round(result.timings.mixSec), watermarkSec: round(nativeMarkSec), drawSec: round(result.timings.drawSec), benchProcessCpuSec: round((cpu.user + cpu.system) / 1e6), ffmpegCpuSec: round(renderFfmpegCpu), encoderFfmpegCpuSec: round(floorFfmpegCpu) },
      frames,
      loadAverage: os.loadavg().map((x) => round(x)),
      cores: os.availableParallelism(),
      goal: GOAL,
      goalMet: renderSec < GOAL.seconds && ratio < GOAL.ratio,
    };
  } finally {
    await fsp.rm(work, { recursive: true, force: true });
    await data.remove();
    await removeDemoTemplate();
  }
}

/** CPU seconds of this process's finished children (ffmpeg), from /proc (Linux); NaN elsewhere. */
function childCpuSec(): number {
  try {
    // Fields after the command's closing parenthesis: state is field 3, cutime and cstime 16 and 17.
    const stat = fs.readFileSync('/proc/self/stat', 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(f[13]) + Number(f[14])) / 100; // USER_HZ is 100 on Linux
  } catch {
    return Number.NaN;
  }
}

function ffmpeg(bin: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (b: Buffer) => (err += b.toString()));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve() : reject(new Error(`ffmpeg exited ${code}: ${err.trim()}`))));
  });
}
