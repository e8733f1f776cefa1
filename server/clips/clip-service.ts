// Clips: a member commits the last N seconds of a room; the window of the room's
// state timeline is stored with the job at once (the timeline itself is kept in
// memory only), so the render survives a restart of the process; an in-process
// queue renders it (concurrency bounded by the cores), the renderer replays the
// window through the room's mixer and visual engine, the audio is watermarked
// with the render's id, and a signed manifest goes beside the files and inside
// them. Progress goes to the room (socket.io) and to GET /api/clips/:id.
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { renderClip } from '../../media/render/clip-render.ts';
import { renderLoop } from '../../media/render/loop-render.ts';
import { MIN_EMBED_SEC } from '../../media/watermark/watermark.ts';
import { engineArtwork, readVisualPack } from '../../media/visuals/visual-pack.ts';
import { renderStillPng } from '../../media/visuals/still.ts';
import type { RoomRelease, RoomState } from '../../shared/room-doc.ts';
import type { RenderProgress } from '../../shared/socket-events.ts';
import { VisualEngine } from '../../shared/visual-engine.ts';
import { beatPhaseAt, energyFromRms, VisualSequence } from '../../shared/visual-timeline.ts';
import { neutralMaster } from '../../shared/room-doc.ts';
import type { ScheduledState } from '../../media/mixer/render-offline.ts';
import type { StemCache } from '../live/stem-cache.ts';
import type { Logger } from '../logger.ts';
import { toRoomRelease, type RoomManager } from '../rooms/room-manager.ts';
import { applyEvent, type TimelineWindow } from '../rooms/timeline.ts';
import type { DataLayout } from '../store/paths.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import { planClip, type ClipPlan } from './clip-plan.ts';
import { MANIFEST_VERSION, SOFTWARE, type Manifest, type ManifestSigner, type SignedManifest } from './manifest.ts';

export const VIDEO = { width: 1280, height: 720, fps: 30 } as const;
/** Shortest clip: one whole period of the watermark, so that every clip carries the mark. */
export const MIN_CLIP_SEC = Math.ceil(MIN_EMBED_SEC);
const LINK_TTL_SEC = 3600;
const PROGRESS_EVERY_MS = 500;

export interface ClipRequest {
  kind: 'clip';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  /** What the member asked for (the window may be shorter when the room had less to give). */
  requestedSeconds: number;
  requestedBy: { userId: string; name: string };
  window: TimelineWindow;
  prompts: { text: string; by: string; name: string; atMs: number }[];
}

/** The longer version of a remix, bought: the room's mix at the clip's end, over the whole piece (or the release's set length). */
export interface FullRequest {
  kind: 'full';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  requestedBy: { userId: string; name: string };
  orderId: string;
  clipId: string;
  mix: RoomState['mix'];
  visualParams: unknown;
  contributors: Manifest['contributors'];
}

/** A short seamless loop of the room's visuals as they are now (MP4 and GIF). */
export interface LoopRequest {
  kind: 'loop';
  releaseId: string;
  roomCreatedAtMs: number;
  seconds: number;
  requestedBy: { userId: string; name: string };
  startMs: number;
  visualParams: unknown;
}

export interface ClipResult {
  /** What to download, by role: video, audio, gif, manifest → file name in the render's folder. */
  files?: Record<string, string>;
  manifest?: SignedManifest;
  error?: string;
  timings?: Record<string, number>;
}

export interface ClipView {
  clipId: string;
  roomId: string;
  status: RenderRecord['status'];
  progress: number;
  seconds: number;
  createdAt: string;
  /** When done: signed links that expire (`expiresAt`). */
  downloads?: Record<string, string> & { expiresAt: string };
  manifest?: SignedManifest;
  error?: string;
}

export type ClipServiceEvents = { progress: [roomId: string, progress: RenderProgress]; done: [render: RenderRecord] };

export interface ClipServiceDeps {
  store: Store;
  layout: DataLayout;
  manager: RoomManager;
  stems: StemCache;
  log: Logger;
  /** A native ffmpeg; without one clips are refused (the WebAssembly path is not built). */
  ffmpeg: string | null;
  concurrency: number;
  signer: ManifestSigner;
  /** HMAC key of download links. */
  linkSecret: string;
  /** Size and rate of the video (default 1280x720 at 30 fps). */
  video?: { width: number; height: number; fps: number };
  /** Marks the audio with the render's id (the watermark). */
  watermark?: (pcm: Float32Array, renderId: string) => Float32Array | Promise<Float32Array>;
  now?: () => number;
}

export class ClipError extends Error {
  override readonly name = 'ClipError';
  readonly code: 'not_found' | 'conflict' | 'unavailable' | 'bad_request';
  constructor(code: ClipError['code'], message: string) {
    super(message);
    this.code = code;
  }
}

export class ClipService extends EventEmitter<ClipServiceEvents> {
  readonly #deps: ClipServiceDeps;
  readonly #queue: string[] = [];
  readonly #running = new Map<string, AbortController>();
  readonly #progress = new Map<string, number>();
  readonly #engines = new Map<string, Promise<VisualEngine>>();
  #closed = false;
  #drained: Promise<void> = Promise.resolve();

  constructor(deps: ClipServiceDeps) {
    super();
    this.#deps = deps;
  }

  get available(): boolean {
    return this.#deps.ffmpeg !== null;
  }

  /** Picks up what a previous process left queued or running. */
  async resume(): Promise<void> {
    for (const r of await this.#deps.store.listRenders(['queued', 'running'])) {
      if (r.status === 'running') await this.#deps.store.updateRender(r.id, { status: 'queued' });
      this.#enqueue(r.id);
    }
  }

  /**
   * Commits the last `seconds` of a loaded room. The same idempotency key (per
   * member) answers the first commit's clip; with a different length it is refused.
   */
  async commit(input: { roomId: string; member: { userId: string; name: string }; seconds: number; idempotencyKey: string }): Promise<{ clip: ClipView; created: boolean }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    if (!this.available) throw new ClipError('unavailable', 'this server has no native ffmpeg, so it cannot render clips');
    const room = this.#deps.manager.get(input.roomId);
    if (!room || room.closed) throw new ClipError('conflict', 'the room is not live on this server; join it and try again');
    const now = (this.#deps.now ?? Date.now)();
    const oldest = room.timeline.oldestMs;
    if (oldest === null) throw new ClipError('conflict', 'the room has no recorded moments yet');
    const seconds = Math.min(input.seconds, (now - oldest) / 1000);
    if (seconds < MIN_CLIP_SEC) throw new ClipError('conflict', `the room has recorded less than ${MIN_CLIP_SEC} s so far (a clip is at least ${MIN_CLIP_SEC} s long); try again in a moment`);
    const window = room.timeline.window(now - seconds * 1000, now);
    if (!window) throw new ClipError('conflict', 'that moment is no longer kept');
    const history = (room.doc.getMap('visual').get('history') as { toJSON(): Record<string, { text: string; by: string; name: string; atMs: number }> } | undefined)?.toJSON() ?? {};
    const request: ClipRequest = {
      kind: 'clip',
      releaseId: room.release.id,
      roomCreatedAtMs: room.state().meta.createdAtMs,
      seconds: Math.round(seconds * 1000) / 1000,
      requestedSeconds: input.seconds,
      requestedBy: input.member,
      window,
      prompts: Object.values(history).filter((h) => h.atMs >= window.fromMs && h.atMs <= window.toMs),
    };
    const { render, created } = await this.#deps.store.createRender(
      { id: newRenderId(), roomId: input.roomId, kind: 'clip', status: 'queued', request, createdAt: new Date(now).toISOString() },
      `${input.member.userId}:${input.idempotencyKey}`,
    );
    if (!created) {
      const earlier = render.request as ClipRequest;
      if (render.roomId !== input.roomId || earlier.requestedSeconds !== input.seconds) {
        throw new ClipError('conflict', 'this Idempotency-Key was used for a different request; use a new key');
      }
    } else this.#enqueue(render.id);
    return { clip: this.#view(render), created };
  }

  async view(clipId: string): Promise<ClipView | null> {
    if (!RENDER_ID.test(clipId)) return null;
    const render = await this.#deps.store.getRender(clipId);
    return render && (render.kind === 'clip' || render.kind === 'loop') ? this.#view(render) : null;
  }

  /** Any render's status and downloads (an order's full-length render included). */
  async renderView(renderId: string): Promise<ClipView | null> {
    if (!RENDER_ID.test(renderId)) return null;
    const render = await this.#deps.store.getRender(renderId);
    return render ? this.#view(render) : null;
  }

  /**
   * Queues the full-length render an order entitles to (once per order: a second
   * call answers the first render): the mix the room had at the end of the clip,
   * over the whole piece or the length the release sets.
   */
  async commitFull(input: { orderId: string; clipId: string; buyer: { userId: string; name: string } }): Promise<RenderRecord> {
    const clip = await this.#deps.store.getRender(input.clipId);
    if (!clip || clip.kind !== 'clip') throw new ClipError('not_found', 'no such clip');
    const clipRequest = clip.request as ClipRequest;
    const record = await this.#deps.store.getRelease(clipRequest.releaseId);
    if (!record) throw new ClipError('not_found', 'the release of this clip is gone');
    const state = structuredClone(clipRequest.window.initial);
    for (const e of clipRequest.window.events) applyEvent(state, e);
    const mix = (state['mix'] ?? {}) as RoomState['mix'];
    const contributors = ((clip.result as ClipResult | null)?.manifest?.manifest.contributors ?? []) as Manifest['contributors'];
    const request: FullRequest = {
      kind: 'full',
      releaseId: record.id,
      roomCreatedAtMs: clipRequest.roomCreatedAtMs,
      seconds: Math.min(record.manifest.rules.purchase.lengthSeconds ?? record.durationSec, record.durationSec),
      requestedBy: input.buyer,
      orderId: input.orderId,
      clipId: input.clipId,
      mix: { stems: mix.stems ?? {}, master: { ...neutralMaster(), ...(mix.master ?? {}) } },
      visualParams: ((state['visual'] ?? {}) as { params?: unknown }).params ?? null,
      contributors,
    };
    const { render, created } = await this.#deps.store.createRender(
      { id: newRenderId(), roomId: clip.roomId, kind: 'full', status: 'queued', request, createdAt: new Date((this.#deps.now ?? Date.now)()).toISOString() },
      `order:${input.orderId}`,
    );
    if (created || render.status === 'queued') this.#enqueue(render.id);
    return render;
  }

  /** The file behind a signed link; throws ClipError('not_found') for a bad, tampered or expired link. */
  async file(clipId: string, name: string, expires: string, sig: string): Promise<{ path: string; contentType: string; downloadName: string }> {
    const nowSec = Math.floor((this.#deps.now ?? Date.now)() / 1000);
    const exp = Number(expires);
    if (!RENDER_ID.test(clipId) || !FILE_NAMES.has(name) || !Number.isInteger(exp) || typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) {
      throw new ClipError('not_found', 'no such download');
    }
    const expected = Buffer.from(this.#linkSignature(clipId, name, exp), 'hex');
    if (!crypto.timingSafeEqual(expected, Buffer.from(sig, 'hex'))) throw new ClipError('not_found', 'this download link is not valid');
    if (exp < nowSec) throw new ClipError('not_found', 'this download link has expired; ask for the clip again to get a fresh one');
    const render = await this.#deps.store.getRender(clipId);
    if (!render || render.status !== 'done') throw new ClipError('not_found', 'no such download');
    const file = path.join(this.#renderDir(clipId), name);
    return { path: file, contentType: FILE_NAMES.get(name)!, downloadName: `remixroom-${clipId}${path.extname(name)}` };
  }

  /** Queues a loop of the room's visuals as they are now (1–15 s, rounded to whole beats so that the pulse loops too). */
  async commitLoop(input: { roomId: string; member: { userId: string; name: string }; seconds: number; idempotencyKey: string }): Promise<{ clip: ClipView; created: boolean }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    if (!this.available) throw new ClipError('unavailable', 'this server has no native ffmpeg, so it cannot render loops');
    const room = this.#deps.manager.get(input.roomId);
    if (!room || room.closed) throw new ClipError('conflict', 'the room is not live on this server; join it and try again');
    const beatSec = 60 / (room.release.bpm && room.release.bpm > 0 ? room.release.bpm : 120);
    const seconds = Math.max(beatSec, Math.round(input.seconds / beatSec) * beatSec);
    const now = (this.#deps.now ?? Date.now)();
    const request: LoopRequest = {
      kind: 'loop',
      releaseId: room.release.id,
      roomCreatedAtMs: room.state().meta.createdAtMs,
      seconds: Math.round(seconds * 1000) / 1000,
      requestedBy: input.member,
      startMs: now,
      visualParams: room.state().visual.params,
    };
    const { render, created } = await this.#deps.store.createRender(
      { id: newRenderId(), roomId: input.roomId, kind: 'loop', status: 'queued', request: { ...request, requestedSeconds: input.seconds }, createdAt: new Date(now).toISOString() },
      `${input.member.userId}:loop:${input.idempotencyKey}`,
    );
    if (!created) {
      if (render.roomId !== input.roomId || (render.request as { requestedSeconds?: number }).requestedSeconds !== input.seconds) {
        throw new ClipError('conflict', 'this Idempotency-Key was used for a different request; use a new key');
      }
    } else this.#enqueue(render.id);
    return { clip: this.#view(render), created };
  }

  /**
   * A PNG of the room's visuals at `atMs` (default now; within what the room's
   * timeline keeps), with a signed manifest in its metadata; recorded as a render
   * so that its id can be traced.
   */
  async still(input: { roomId: string; member: { userId: string; name: string }; atMs?: number; width: number; height: number }): Promise<{ png: Buffer; renderId: string }> {
    const room = this.#deps.manager.get(input.roomId);
    if (!room || room.closed) throw new ClipError('conflict', 'the room is not live on this server; join it and try again');
    const now = (this.#deps.now ?? Date.now)();
    const atMs = input.atMs ?? now;
    const oldest = room.timeline.oldestMs;
    if (oldest === null || atMs < oldest || atMs > now) throw new ClipError('bad_request', 'that moment is not kept (the room keeps its recent past only)');
    // The window leading up to the moment, for a cross-fade in progress then.
    const window = room.timeline.window(Math.max(oldest, atMs - 3000), Math.max(atMs, Math.max(oldest, atMs - 3000) + 1));
    if (!window) throw new ClipError('bad_request', 'that moment is not kept');
    const plan = planClip(window, room.release);
    const engine = await this.#engine(room.release.id);
    const record = await this.#deps.store.getRelease(room.release.id);
    const renderId = newRenderId();
    const manifest: Manifest = {
      version: MANIFEST_VERSION,
      renderId,
      kind: 'still',
      release: { id: room.release.id, title: record?.title ?? room.release.id, artist: record?.artist ?? '' },
      assets: { stems: [], artwork: room.release.artwork.map((a) => a.id) },
      room: { id: room.id },
      window: { fromMs: atMs, toMs: atMs, seconds: 0 },
      requestedBy: input.member,
      contributors: plan.contributors,
      software: SOFTWARE,
      createdAt: new Date(now).toISOString(),
    };
    const signed = this.#deps.signer.sign(manifest);
    const frame = plan.visuals.frameAt(atMs, room.state().meta.createdAtMs, { energy: 0.5, beatPhase: plan.beatAt((atMs - window.fromMs) / 1000) });
    // JSON escapes everything outside ASCII, so the manifest fits PNG's Latin-1 text.
    const json = JSON.stringify(signed).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    const png = await renderStillPng(engine, input.width, input.height, frame, { Software: SOFTWARE, 'remixroom:manifest': json });
    await this.#deps.store.createRender({ id: renderId, roomId: room.id, kind: 'still', status: 'done', request: { atMs, requestedBy: input.member }, createdAt: manifest.createdAt }, null);
    await this.#deps.store.updateRender(renderId, { status: 'done', result: { manifest: signed } satisfies ClipResult });
    return { png, renderId };
  }

  /** Verifies a render id found in a file: what it is, when, from where. */
  async lookup(renderId: string): Promise<{ render: RenderRecord; manifest: SignedManifest | null } | null> {
    if (!RENDER_ID.test(renderId)) return null;
    const render = await this.#deps.store.getRender(renderId);
    if (!render) return null;
    return { render, manifest: (render.result as ClipResult | null)?.manifest ?? null };
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.length = 0;
    for (const c of this.#running.values()) c.abort(new Error('the server is shutting down'));
    await this.#drained;
  }

  // ------------------------------------------------------------------ jobs

  #enqueue(id: string): void {
    if (this.#queue.includes(id) || this.#running.has(id)) return;
    this.#queue.push(id);
    this.#progress.set(id, 0);
    this.#pump();
  }

  #pump(): void {
    while (!this.#closed && this.#running.size < Math.max(1, this.#deps.concurrency) && this.#queue.length > 0) {
      const id = this.#queue.shift()!;
      const controller = new AbortController();
      this.#running.set(id, controller);
      const job = this.#run(id, controller.signal)
        .catch((err: unknown) => this.#deps.log.error({ err, renderId: id }, 'clip job failed unexpectedly'))
        .finally(() => {
          this.#running.delete(id);
          this.#pump();
        });
      const previous = this.#drained;
      this.#drained = Promise.all([previous, job]).then(() => {});
    }
  }

  async #run(id: string, signal: AbortSignal): Promise<void> {
    const { store, log } = this.#deps;
    const render = await store.getRender(id);
    if (!render || render.status === 'done' || render.status === 'failed') return;
    const request = render.request as ClipRequest | FullRequest | LoopRequest;
    await store.updateRender(id, { status: 'running' });
    this.#report(render.roomId, id, 'running', 0);
    const started = performance.now();
    try {
      const result = request.kind === 'loop' ? await this.#renderLoop(render, request, signal) : await this.#render(render, request, signal);
      await store.updateRender(id, { status: 'done', result });
      this.#progress.set(id, 1);
      this.#report(render.roomId, id, 'done', 1);
      this.emit('done', render);
      log.info({ renderId: id, kind: render.kind, roomId: render.roomId, seconds: request.seconds, ms: Math.round(performance.now() - started) }, 'render done');
    } catch (err) {
      if (signal.aborted) {
        // Shutting down: left queued for the next process (resume()).
        await store.updateRender(id, { status: 'queued' }).catch(() => {});
        return;
      }
      log.error({ err, renderId: id }, 'clip render failed');
      await store.updateRender(id, { status: 'failed', result: { error: 'the render failed' } satisfies ClipResult });
      this.#report(render.roomId, id, 'failed', this.#progress.get(id) ?? 0, 'the render failed; try again');
    } finally {
      this.#progress.delete(id);
    }
  }

  async #render(render: RenderRecord, request: ClipRequest | FullRequest, signal: AbortSignal): Promise<ClipResult> {
    const { store, stems: cache } = this.#deps;
    const record = await store.getRelease(request.releaseId);
    if (!record) throw new Error(`the release ${request.releaseId} is gone`);
    const release: RoomRelease = toRoomRelease(record);
    const plan = request.kind === 'clip' ? planClip(request.window, release) : planFull(request, release);
    const fromMs = request.kind === 'clip' ? request.window.fromMs : 0;
    const engine = await this.#engine(release.id);
    const stems = await cache.acquire(release.id, release.stems.map((s) => s.id));
    try {
      const dir = this.#renderDir(render.id);
      await fsp.mkdir(dir, { recursive: true });
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
        software: SOFTWARE,
        createdAt: render.createdAt,
      };
      // The copy inside the files carries no file hashes (a file cannot hash itself).
      const embedded = this.#deps.signer.sign(manifest);
      let lastReport = 0;
      const out = await renderClip(
        {
          ffmpeg: this.#deps.ffmpeg!,
          stems,
          bpm: release.bpm,
          schedule: plan.schedule,
          durationSec: plan.durationSec,
          video: {
            engine,
            ...(this.#deps.video ?? VIDEO),
            frameAt: (tSec, energy) =>
              plan.visuals.frameAt(fromMs + tSec * 1000, request.kind === 'clip' ? request.roomCreatedAtMs : 0, { energy, beatPhase: plan.beatAt(tSec) }),
          },
          ...(this.#deps.watermark ? { markAudio: (pcm: Float32Array) => this.#deps.watermark!(pcm, render.id) } : {}),
          metadata: { comment: JSON.stringify(embedded), title: `${record.title} — Remixroom ${request.kind === 'clip' ? 'clip' : 'remix'} ${render.id}` },
          outputs: { mp4: path.join(dir, 'clip.mp4'), audio: path.join(dir, 'clip.m4a') },
          workDir: this.#deps.layout.tmpDir,
          signal,
          onProgress: (fraction) => {
            this.#progress.set(render.id, fraction);
            const t = performance.now();
            if (t - lastReport >= PROGRESS_EVERY_MS) {
              lastReport = t;
              this.#report(render.roomId, render.id, 'running', fraction);
            }
          },
        },
        energyFromRms,
      );
      const files = await Promise.all(['clip.mp4', 'clip.m4a'].map(async (name) => ({ name, ...(await hashFile(path.join(dir, name))) })));
      const signed = this.#deps.signer.sign({ ...manifest, files });
      const tmp = path.join(dir, `manifest.json.${process.pid}.part`);
      await fsp.writeFile(tmp, JSON.stringify(signed, null, 2));
      await fsp.rename(tmp, path.join(dir, 'manifest.json'));
      return {
        files: { video: 'clip.mp4', audio: 'clip.m4a', manifest: 'manifest.json' },
        manifest: signed,
        timings: { mixSec: out.timings.mixSec, drawSec: out.timings.drawSec, totalSec: out.timings.totalSec },
      };
    } finally {
      cache.release(release.id);
    }
  }

  async #renderLoop(render: RenderRecord, request: LoopRequest, signal: AbortSignal): Promise<ClipResult> {
    const record = await this.#deps.store.getRelease(request.releaseId);
    if (!record) throw new Error(`the release ${request.releaseId} is gone`);
    const engine = await this.#engine(record.id);
    const dir = this.#renderDir(render.id);
    await fsp.mkdir(dir, { recursive: true });
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
      software: SOFTWARE,
      createdAt: render.createdAt,
    };
    const visuals = new VisualSequence(null, 0).withInitial(request.visualParams);
    const bpm = record.manifest.bpm ?? 120;
    const video = this.#deps.video ?? VIDEO;
    await renderLoop({
      ffmpeg: this.#deps.ffmpeg!,
      engine,
      width: video.width,
      height: video.height,
      fps: video.fps,
      seconds: request.seconds,
      // The music does not drive a loop (it has none): a steady pulse on the release's beat.
      frameAt: (tSec) => visuals.frameAt(request.startMs + tSec * 1000, request.roomCreatedAtMs, { energy: 0.5, beatPhase: beatPhaseAt(tSec, bpm) }),
      metadata: { comment: JSON.stringify(this.#deps.signer.sign(manifest)), title: `${record.title} — Remixroom visuals ${render.id}` },
      outputs: { mp4: path.join(dir, 'loop.mp4'), gif: path.join(dir, 'loop.gif') },
      signal,
      onProgress: (fraction) => this.#progress.set(render.id, fraction),
    });
    const files = await Promise.all(['loop.mp4', 'loop.gif'].map(async (name) => ({ name, ...(await hashFile(path.join(dir, name))) })));
    const signed = this.#deps.signer.sign({ ...manifest, files });
    const tmp = path.join(dir, `manifest.json.${process.pid}.part`);
    await fsp.writeFile(tmp, JSON.stringify(signed, null, 2));
    await fsp.rename(tmp, path.join(dir, 'manifest.json'));
    return { files: { video: 'loop.mp4', gif: 'loop.gif', manifest: 'manifest.json' }, manifest: signed };
  }

  #engine(releaseId: string): Promise<VisualEngine> {
    let engine = this.#engines.get(releaseId);
    if (!engine) {
      engine = readVisualPack(path.join(this.#deps.layout.releaseDir(releaseId), 'visual-pack')).then((pack) => new VisualEngine(engineArtwork(pack)));
      engine.catch(() => this.#engines.delete(releaseId));
      this.#engines.set(releaseId, engine);
    }
    return engine;
  }

  #report(roomId: string, clipId: string, status: RenderProgress['status'], progress: number, message?: string): void {
    this.emit('progress', roomId, { clipId, status, progress: Math.round(progress * 1000) / 1000, ...(message ? { message } : {}) });
  }

  #view(render: RenderRecord): ClipView {
    const request = render.request as ClipRequest;
    const result = render.result as ClipResult | null;
    const view: ClipView = {
      clipId: render.id,
      roomId: render.roomId,
      status: render.status,
      progress: render.status === 'done' ? 1 : (this.#progress.get(render.id) ?? 0),
      seconds: request.seconds,
      createdAt: render.createdAt,
    };
    if (render.status === 'done' && result?.files) {
      const expires = Math.floor((this.#deps.now ?? Date.now)() / 1000) + LINK_TTL_SEC;
      const link = (name: string) => `/api/clips/${render.id}/files/${name}?expires=${expires}&sig=${this.#linkSignature(render.id, name, expires)}`;
      const downloads: Record<string, string> = {};
      for (const [role, name] of Object.entries(result.files)) downloads[role] = link(name);
      view.downloads = { ...downloads, expiresAt: new Date(expires * 1000).toISOString() };
      if (result.manifest) view.manifest = result.manifest;
    }
    if (render.status === 'failed') view.error = result?.error ?? 'the render failed';
    return view;
  }

  #linkSignature(id: string, name: string, expires: number): string {
    return crypto.createHmac('sha256', this.#deps.linkSecret).update(`clip-file\n${id}\n${name}\n${expires}`).digest('hex');
  }

  #renderDir(id: string): string {
    if (!RENDER_ID.test(id)) throw new ClipError('not_found', 'no such clip');
    return path.join(this.#deps.layout.rendersDir, id);
  }
}

/** 64 random bits, as the watermark carries them. */
export const RENDER_ID = /^[0-9a-f]{16}$/;
const FILE_NAMES = new Map([
  ['clip.mp4', 'video/mp4'],
  ['clip.m4a', 'audio/mp4'],
  ['loop.mp4', 'video/mp4'],
  ['loop.gif', 'image/gif'],
  ['manifest.json', 'application/json'],
]);

function newRenderId(): string {
  return crypto.randomBytes(8).toString('hex');
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
