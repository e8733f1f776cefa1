// The render runner: takes a render row and renders it (a clip or a bought
// version through the mixer and the visual engine, or a loop of the visuals),
// watermarks the audio, signs the manifest, and keeps the files through
// RenderFiles (render-files.ts), answering the result to store. It does no
// queueing and writes no status: the queues (render-queue.ts, in-process, and
// redis-render-worker.ts, separate renderer processes) do that, since they own the
// attempts and the leases that decide it.
//
// Two parts: RenderStager does the work into a local folder (it mixes, watermarks
// and draws synchronously, for seconds: the in-process queue runs it in a worker
// thread, server/work/render-worker.ts; a renderer process on its own main thread),
// and RenderRunner stages into RenderFiles' folder and commits on the thread that
// owns the RenderFiles (ThreadedRenderRunner does the same around its threads).
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { renderClip } from '../../media/render/clip-render.ts';
import { CreditOverlay, creditLine } from '../../media/render/credit.ts';
import { wasmCoreDir } from '../../media/render/encoder.ts';
import { renderLoop } from '../../media/render/loop-render.ts';
import { embedWatermark } from '../../media/watermark/watermark.ts';
import type { RoomRelease } from '../../shared/room-doc.ts';
import type { VisualEngine } from '../../shared/visual-engine.ts';
import { beatPhaseAt, energyFromRms, VisualSequence } from '../../shared/visual-timeline.ts';
import type { ScheduledState } from '../../media/mixer/render-offline.ts';
import type { StemCache } from '../live/stem-cache.ts';
import type { Logger } from '../logger.ts';
import { toRoomRelease } from '../rooms/room-manager.ts';
import type { DataLayout } from '../store/paths.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import { EngineCache } from '../work/engine-cache.ts';
import type { ReleaseFolders } from '../catalog/release-files.ts';
import { planClip, type ClipPlan } from './clip-plan.ts';
import { MANIFEST_VERSION, SOFTWARE, manifestVisualModels, type Manifest, type ManifestSigner, type SignedManifest } from './manifest.ts';
import { addGeneratedTextures, type GeneratedTextureLoader } from '../work/generated-textures.ts';
import { VISUAL_MODEL_METHOD } from '../../media/visuals/model/types.ts';
import type { RenderFile, RenderFiles } from './render-files.ts';
import { RENDER_FILES, type ClipRequest, type ClipResult, type FullRequest, type LoopRequest, type Renderer, type RenderHooks, type RenderRequest } from './render-job.ts';

export const VIDEO = { width: 1280, height: 720, fps: 30 } as const;
/** A clip's vertical version, for phones' short-video apps (at the clip video's frame rate). */
export const VERTICAL_VIDEO = { width: 1080, height: 1920 } as const;
const PROGRESS_EVERY_MS = 500;

export interface RenderStagerDeps {
  /** Where the release's record comes from (a worker thread is handed it). */
  store: Pick<Store, 'getRelease'>;
  /** The folder for intermediate files, and (without `releases`) the releases' visual packs. */
  layout: DataLayout;
  /** Where a release's files are on this machine (DATA_DIR's folder, or fetched from S3); DATA_DIR's by default. */
  releases?: ReleaseFolders;
  /** Where the release's stems come from (a worker thread is handed them). */
  stems: Pick<StemCache, 'acquire' | 'release'>;
  log: Logger;
  /** A native ffmpeg; without one the WebAssembly build (@ffmpeg/core) encodes, slower. */
  ffmpeg: string | null;
  signer: ManifestSigner;
  /** Size and rate of the video (default 1280x720 at 30 fps). */
  video?: { width: number; height: number; fps: number };
  /** Where the textures the visual model generated for prompts are read (none: drawn without them). */
  textures?: GeneratedTextureLoader | null;
  /** Marks the audio with the render's id (the watermark). */
  watermark?: (pcm: Float32Array, renderId: string) => Float32Array | Promise<Float32Array>;
}

/** A render made in a staging folder: its result, and the files to commit. */
export interface StagedRender {
  result: ClipResult;
  files: RenderFile[];
}

/**
 * Stages a render in `files`' staging folder and commits what it made: the one way
 * render output reaches RenderFiles (on this thread, or around a worker thread's `stage`).
 * `hooks.beforeCommit` may refuse the commit (it throws): then nothing is kept.
 */
export async function stageAndCommit(
  files: RenderFiles,
  renderId: string,
  stage: (dir: string) => Promise<StagedRender>,
  hooks: Pick<RenderHooks, 'beforeCommit'> = {},
): Promise<ClipResult> {
  const staged = await stage(await files.stagingDir(renderId));
  await hooks.beforeCommit?.();
  await files.commit(renderId, staged.files);
  return staged.result;
}

/** Renders on this thread and keeps the files through `files`. */
export class RenderRunner implements Renderer {
  readonly #stager: RenderStager;
  readonly #files: RenderFiles;

  constructor(deps: RenderStagerDeps & { files: RenderFiles }) {
    const { files, ...stagerDeps } = deps;
    this.#stager = new RenderStager(stagerDeps);
    this.#files = files;
  }

  render(render: RenderRecord, signal: AbortSignal, hooks: RenderHooks): Promise<ClipResult> {
    return stageAndCommit(this.#files, render.id, (dir) => this.#stager.stage(render, dir, signal, hooks), hooks);
  }
}

/** Renders a render row's files into a local folder (no queueing, no status, no keeping). */
export class RenderStager {
  readonly #deps: RenderStagerDeps;
  readonly #engines: EngineCache;

  constructor(deps: RenderStagerDeps) {
    this.#deps = deps;
    this.#engines = new EngineCache(deps.releases ?? deps.layout);
  }

  /** Renders `render` into `dir`; throws when it cannot (the caller records the failure). */
  async stage(render: RenderRecord, dir: string, signal: AbortSignal, hooks: RenderHooks): Promise<StagedRender> {
    if (!this.#deps.ffmpeg && !wasmCoreDir()) throw new Error('neither native ffmpeg nor @ffmpeg/core: this process cannot render');
    const request = render.request as RenderRequest;
    return request.kind === 'loop' ? this.#renderLoop(render, request, dir, signal, hooks) : this.#render(render, request, dir, signal, hooks);
  }

  /** The visual engine of a release (its visual pack, read once). */
  engine(releaseId: string): Promise<VisualEngine> {
    return this.#engines.get(releaseId);
  }

  async #render(render: RenderRecord, request: ClipRequest | FullRequest, dir: string, signal: AbortSignal, hooks: RenderHooks): Promise<StagedRender> {
    const { store, stems: cache } = this.#deps;
    const record = await store.getRelease(request.releaseId);
    if (!record) throw new Error(`the release ${request.releaseId} is gone`);
    const release: RoomRelease = toRoomRelease(record);
    const plan = request.kind === 'clip' ? planClip(request.window, release) : planFull(request, release);
    const fromMs = request.kind === 'clip' ? request.window.fromMs : 0;
    const engine = await this.engine(release.id);
    const models = await addGeneratedTextures(engine, release.id, plan.visuals.allParams, this.#deps.textures ?? null, this.#deps.log);
    const stems = await cache.acquire(release.id, release.stems.map((s) => s.id));
    try {
      const manifest: Manifest = {
        version: MANIFEST_VERSION,
        renderId: render.id,
        kind: request.kind,
        release: { id: record.id, title: record.title, artist: record.artist },
        assets: { stems: release.stems.map((s) => s.id), artwork: release.artwork.map((a) => a.id) },
        room: { id: render.roomId },
        window: request.kind === 'clip' ? { fromMs: request.window.fromMs, toMs: request.window.toMs, seconds: request.seconds } : { fromMs: 0, toMs: request.seconds * 1000, seconds: request.seconds },
        requestedBy: request.requestedBy,
        contributors: request.kind === 'clip' ? mergePrompts(plan.contributors, request.prompts) : request.contributors,
        ...manifestVisualModels(record.id, models, VISUAL_MODEL_METHOD),
        software: SOFTWARE,
        createdAt: render.createdAt,
      };
      // The copy inside the files carries no file hashes (a file cannot hash itself).
      const embedded = this.#deps.signer.sign(manifest);
      let lastReport = 0;
      const landscape = this.#deps.video ?? VIDEO;
      const video = request.kind === 'clip' && request.shape === 'vertical' ? { ...VERTICAL_VIDEO, fps: landscape.fps } : landscape;
      const out = await renderClip(
        {
          ffmpeg: this.#deps.ffmpeg,
          stems,
          bpm: release.bpm,
          schedule: plan.schedule,
          durationSec: plan.durationSec,
          video: {
            engine,
            ...video,
            credit: new CreditOverlay(creditLine(record), video.width, video.height),
            frameAt: (tSec, energy) =>
              plan.visuals.frameAt(fromMs + tSec * 1000, request.kind === 'clip' ? request.roomCreatedAtMs : 0, { energy, beatPhase: plan.beatAt(tSec) }),
          },
          ...(this.#deps.watermark ? { markAudio: (pcm: Float32Array) => this.#deps.watermark!(pcm, render.id) } : {}),
          metadata: { comment: JSON.stringify(embedded), title: `${record.title} — Remixroom ${request.kind === 'clip' ? (request.shape === 'vertical' ? 'vertical clip' : 'clip') : 'remix'} ${render.id}` },
          outputs: { mp4: path.join(dir, 'clip.mp4'), audio: path.join(dir, 'clip.m4a') },
          workDir: this.#deps.layout.tmpDir,
          signal,
          onProgress: (fraction) => {
            hooks.onProgress(fraction);
            const t = performance.now();
            if (t - lastReport >= PROGRESS_EVERY_MS) {
              lastReport = t;
              hooks.onReport(fraction);
            }
          },
        },
        energyFromRms,
      );
      const files = await signedManifestBeside(this.#deps.signer, manifest, dir, ['clip.mp4', 'clip.m4a']);
      return {
        result: {
          files: { video: 'clip.mp4', audio: 'clip.m4a', manifest: 'manifest.json' },
          manifest: files.signed,
          timings: { mixSec: out.timings.mixSec, drawSec: out.timings.drawSec, totalSec: out.timings.totalSec },
        },
        files: files.staged,
      };
    } finally {
      cache.release(release.id);
    }
  }

  async #renderLoop(render: RenderRecord, request: LoopRequest, dir: string, signal: AbortSignal, hooks: RenderHooks): Promise<StagedRender> {
    const record = await this.#deps.store.getRelease(request.releaseId);
    if (!record) throw new Error(`the release ${request.releaseId} is gone`);
    const engine = await this.engine(record.id);
    const models = await addGeneratedTextures(engine, record.id, [request.visualParams], this.#deps.textures ?? null, this.#deps.log);
    const manifest: Manifest = {
      version: MANIFEST_VERSION,
      renderId: render.id,
      kind: 'loop',
      release: { id: record.id, title: record.title, artist: record.artist },
      assets: { stems: [], artwork: toRoomRelease(record).artwork.map((a) => a.id) },
      room: { id: render.roomId },
      window: { fromMs: request.startMs, toMs: request.startMs + request.seconds * 1000, seconds: request.seconds },
      requestedBy: request.requestedBy,
      contributors: [],
      ...manifestVisualModels(record.id, models, VISUAL_MODEL_METHOD),
      software: SOFTWARE,
      createdAt: render.createdAt,
    };
    const visuals = new VisualSequence(null, 0).withInitial(request.visualParams);
    const bpm = record.manifest.bpm ?? 120;
    const video = this.#deps.video ?? VIDEO;
    await renderLoop({
      ffmpeg: this.#deps.ffmpeg,
      engine,
      width: video.width,
      height: video.height,
      fps: video.fps,
      seconds: request.seconds,
      credit: new CreditOverlay(creditLine(record), video.width, video.height),
      // The music does not drive a loop (it has none): a steady pulse on the release's beat.
      frameAt: (tSec) => visuals.frameAt(request.startMs + tSec * 1000, request.roomCreatedAtMs, { energy: 0.5, beatPhase: beatPhaseAt(tSec, bpm) }),
      metadata: { comment: JSON.stringify(this.#deps.signer.sign(manifest)), title: `${record.title} — Remixroom visuals ${render.id}` },
      outputs: { mp4: path.join(dir, 'loop.mp4'), gif: path.join(dir, 'loop.gif') },
      signal,
      onProgress: (fraction) => hooks.onProgress(fraction),
    });
    const files = await signedManifestBeside(this.#deps.signer, manifest, dir, ['loop.mp4', 'loop.gif']);
    return { result: { files: { video: 'loop.mp4', gif: 'loop.gif', manifest: 'manifest.json' }, manifest: files.signed }, files: files.staged };
  }
}

/** The watermark every clip and bought version carries: the render's id, keyed by the token secret, with headroom kept. */
export function watermarker(key: Uint8Array): (pcm: Float32Array, renderId: string) => Float32Array {
  return (pcm, renderId) => withHeadroom(embedWatermark(pcm, { payload: BigInt(`0x${renderId}`), key }).pcm);
}

/** The watermark's key, derived from the token secret: every node and renderer marks and reads alike. */
export function watermarkKeyOf(tokenSecret: string): Uint8Array {
  return new Uint8Array(crypto.hkdfSync('sha256', tokenSecret, 'remixroom', 'watermark-v1', 32));
}

/**
 * The mark moves bands by up to ~1.75 dB, so a mix limited at −1 dBFS can peak
 * just over full scale once marked: scale the whole clip down under −0.2 dBFS
 * when it does (the mark survives level changes of ±6 dB).
 */
function withHeadroom(pcm: Float32Array): Float32Array {
  let peak = 0;
  for (let i = 0; i < pcm.length; i++) {
    const a = Math.abs(pcm[i]!);
    if (a > peak) peak = a;
  }
  const ceiling = 10 ** (-0.2 / 20);
  if (peak <= ceiling) return pcm;
  const g = ceiling / peak;
  for (let i = 0; i < pcm.length; i++) pcm[i]! *= g;
  return pcm;
}

/**
 * Signs the manifest with the rendered files' hashes and writes it beside them (manifest.json);
 * answers the signed manifest and every staged file, the manifest last.
 */
async function signedManifestBeside(signer: ManifestSigner, manifest: Manifest, dir: string, names: readonly string[]): Promise<{ signed: SignedManifest; staged: RenderFile[] }> {
  const hashed = await Promise.all(names.map(async (name) => ({ name, ...(await hashFile(path.join(dir, name))) })));
  const signed = signer.sign({ ...manifest, files: hashed });
  await writeAtomically(path.join(dir, 'manifest.json'), JSON.stringify(signed, null, 2));
  const staged = [...names, 'manifest.json'].map((name) => ({ name, path: path.join(dir, name), contentType: RENDER_FILES.get(name)! }));
  return { signed, staged };
}

async function writeAtomically(file: string, text: string): Promise<void> {
  const tmp = `${file}.${process.pid}-${crypto.randomBytes(4).toString('hex')}.part`;
  await fsp.writeFile(tmp, text);
  await fsp.rename(tmp, file);
}

async function hashFile(file: string): Promise<{ sha256: string; bytes: number }> {
  const hash = crypto.createHash('sha256');
  let bytes = 0;
  for await (const chunk of fs.createReadStream(file)) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

function mergePrompts(contributors: Manifest['contributors'], prompts: ClipRequest['prompts']): Manifest['contributors'] {
  const byId = new Map(contributors.map((c) => [c.userId, { ...c, prompts: [...c.prompts] }]));
  for (const p of prompts) {
    let c = byId.get(p.by);
    if (!c) byId.set(p.by, (c = { userId: p.by, name: p.name, changes: 0, prompts: [] }));
    c.prompts.push({ text: p.text, atMs: p.atMs });
  }
  return [...byId.values()];
}

/** The bought version: the one mix, from the piece's start, looping the whole piece, with the room's last visuals. */
function planFull(request: FullRequest, release: RoomRelease): ClipPlan {
  const state: ScheduledState['state'] = {
    stems: request.mix.stems,
    master: request.mix.master,
    playing: true,
    region: { startSec: 0, endSec: release.durationSec },
    targetSourceSec: 0,
  };
  const tempo = request.mix.master.tempo > 0 ? request.mix.master.tempo : 1;
  return {
    schedule: [{ block: 0, state }],
    visuals: new VisualSequence(null, 0).withInitial(request.visualParams),
    beatAt: (tSec: number) => beatPhaseAt((tSec * tempo) % release.durationSec, release.bpm),
    contributors: request.contributors,
    durationSec: request.seconds,
  };
}
