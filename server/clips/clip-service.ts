// Clips: the HTTP-facing side of the clip code. A member commits the last N seconds
// of a room; the service checks the request, records a render row with the window
// of the room's state timeline (the timeline itself is kept in memory only, so the
// row is what lets the render survive a restart of the process) and hands its id to
// a RenderQueue (render-queue.ts: in this process by default, or through Redis to
// separate renderer processes). The queue runs it through a Renderer
// (render-runner.ts), which renders, watermarks, signs the manifest and keeps the
// files through RenderFiles (render-files.ts). The service answers reads: status
// and progress, signed download links, and the files behind them (read through
// RenderFiles). Progress goes to the room (socket.io) and to GET /api/clips/:id.
// It renders nothing itself and knows neither the runner nor the render threads:
// the process (server.ts) builds the queue and its runner and hands the queue over.
//
// Stills are drawn at once, not queued: in a pool of threads shared by every room,
// whose bounded queue refuses the overflow ('busy').
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { wasmCoreDir } from '../../media/render/encoder.ts';
import { MIN_EMBED_SEC } from '../../media/watermark/watermark.ts';
import { LIMITS } from '../../shared/limits.ts';
import type { RoomState } from '../../shared/room-doc.ts';
import type { RenderProgress } from '../../shared/socket-events.ts';
import { neutralMaster } from '../../shared/room-doc.ts';
import { localReleaseFolders, type ReleaseFolder, type ReleaseFolders } from '../catalog/release-files.ts';
import type { Logger } from '../logger.ts';
import { BlobStoreUnavailableError } from '../store/blob-store.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import { applyEvent } from '../rooms/timeline.ts';
import type { DataLayout } from '../store/paths.ts';
import type { RenderRecord, Store } from '../store/store.ts';
import { planClip } from './clip-plan.ts';
import { contentDisposition, downloadName, type DownloadWhat } from './download-name.ts';
import { MANIFEST_VERSION, SOFTWARE, manifestVisualModels, type Manifest, type ManifestSigner, type SignedManifest } from './manifest.ts';
import { loadGeneratedTextures, type GeneratedTextureLoader } from '../work/generated-textures.ts';
import { VISUAL_MODEL_METHOD } from '../../media/visuals/model/types.ts';
import type { RenderDownload, RenderFiles } from './render-files.ts';
import { newRenderId, RENDER_FILES, RENDER_ID, type ClipRequest, type ClipResult, type FullRequest, type LoopRequest } from './render-job.ts';
import type { RenderJobCounts, RenderQueue } from './render-queue.ts';
import type { StillTask, StillWorkerData } from '../work/still-worker.ts';
import { PoolClosedError, PoolFullError, WorkerPool } from '../work/worker-pool.ts';

/** Shortest clip: one whole period of the watermark, so that every clip carries the mark. */
export const MIN_CLIP_SEC = Math.ceil(MIN_EMBED_SEC);
const LINK_TTL_SEC = 3600;

export interface ClipView {
  clipId: string;
  roomId: string;
  status: RenderRecord['status'];
  progress: number;
  seconds: number;
  createdAt: string;
  /** A vertical version (1080x1920) of the clip `sourceClipId`. */
  shape?: 'vertical';
  sourceClipId?: string;
  /** When done: signed links that expire (`expiresAt`). */
  downloads?: Record<string, string> & { expiresAt: string };
  manifest?: SignedManifest;
  error?: string;
}

export type ClipServiceEvents = { progress: [roomId: string, progress: RenderProgress]; done: [render: RenderRecord] };

export interface ClipServiceDeps {
  store: Store;
  /** DATA_DIR, for the still threads (they read the releases' visual packs). */
  layout: DataLayout;
  /** Where a release's files are on this machine (DATA_DIR's folder, or fetched from S3); DATA_DIR's by default. */
  releases?: ReleaseFolders;
  manager: RoomManager;
  log: Logger;
  /** A native ffmpeg; without one renders use the WebAssembly build (@ffmpeg/core), and without that clips are refused. */
  ffmpeg: string | null;
  /** Threads that draw stills, shared by every room. */
  stillThreads: number;
  /** Signs the stills' manifests (renders sign theirs where they are rendered). */
  signer: ManifestSigner;
  /** HMAC key of download links. */
  linkSecret: string;
  now?: () => number;
  /** Where renders wait and who runs them (the service hands it ids and hears how they go; the process closes it). */
  queue: RenderQueue;
  /** Where the renders' files are kept: downloads are read through it. */
  files: RenderFiles;
  /** Where the textures the visual model generated for prompts are read (none: stills are drawn without them). */
  textures?: GeneratedTextureLoader | null;
}

/** How long a presigned URL of a bought version lives (each click of the signed link makes a new one). */
const FULL_PRESIGN_SEC = 60;

export class ClipError extends Error {
  override readonly name = 'ClipError';
  /** 'busy': the stills' queue, shared by every room, is full (see retryAfterMs). */
  readonly code: 'not_found' | 'conflict' | 'unavailable' | 'bad_request' | 'busy';
  /** For 'busy': about when the work ahead will have been done. */
  readonly retryAfterMs: number | null;
  constructor(code: ClipError['code'], message: string, retryAfterMs: number | null = null) {
    super(message);
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** A 1280x720 still's usual time in a thread, until some have been timed (4K takes about 1.5 s). */
const EXPECTED_STILL_MS = 500;

export class ClipService extends EventEmitter<ClipServiceEvents> {
  readonly #deps: ClipServiceDeps;
  readonly #queue: RenderQueue;
  /** Stills are drawn here, for every room; the queue's bound is the limit still.queue.process. */
  readonly #stills: WorkerPool<StillTask, Uint8Array>;
  readonly #releases: ReleaseFolders;
  #closed = false;

  constructor(deps: ClipServiceDeps) {
    super();
    this.#deps = deps;
    this.#releases = deps.releases ?? localReleaseFolders(deps.layout);
    const stillData: StillWorkerData = { dataDir: deps.layout.root };
    this.#stills = new WorkerPool({
      name: 'still',
      script: new URL('../work/still-worker.ts', import.meta.url),
      workerData: stillData,
      size: Math.max(1, deps.stillThreads),
      maxQueued: LIMITS['still.queue.process'].max,
      expectedTaskMs: EXPECTED_STILL_MS,
      // Kept a while after a burst (each thread holds the releases' engines), then their memory goes.
      idleMs: 5 * 60_000,
      // Below the main thread (every room's sync) and the live streams when the cores are short.
      nice: 10,
      onCrash: (err) => deps.log.error({ err }, 'a still thread died'),
    });
    this.#queue = deps.queue;
    this.#queue.on('progress', this.#onProgress);
    this.#queue.on('done', this.#onDone);
  }

  readonly #onProgress = (roomId: string, progress: RenderProgress) => this.emit('progress', roomId, progress);
  readonly #onDone = (render: RenderRecord) => this.emit('done', render);

  /** The render jobs in the queue by state. */
  renderJobCounts(): Promise<RenderJobCounts> {
    return this.#queue.counts();
  }

  /** Whether every node hears every render's progress (then each node tells only its own sockets). */
  get progressHeardEverywhere(): boolean {
    return this.#queue.everyNodeHears;
  }

  get available(): boolean {
    return this.#deps.ffmpeg !== null || wasmCoreDir() !== null;
  }

  /** Picks up what a previous process left queued or running. */
  async resume(): Promise<void> {
    await this.#queue.resume();
  }

  /**
   * Commits the last `seconds` of a loaded room. The same idempotency key (per
   * member) answers the first commit's clip; with a different length it is refused.
   */
  async commit(input: { roomId: string; member: { userId: string; name: string }; seconds: number; idempotencyKey: string }): Promise<{ clip: ClipView; created: boolean }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    if (!this.available) throw new ClipError('unavailable', 'this server can render neither with native ffmpeg nor with @ffmpeg/core, so it cannot render clips');
    const key = `${input.member.userId}:${input.idempotencyKey}`;
    // A retried commit finds its clip even when the room is no longer loaded here (or has moved on).
    const earlier = await this.#deps.store.findRenderByKey(key);
    if (earlier) return this.#repeated(earlier, input.roomId, input.seconds);
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
      key,
    );
    if (!created) return this.#repeated(render, input.roomId, input.seconds);
    await this.#enqueue(render.id);
    // Read again: a render that started at once is `running` already, and the answer says so.
    return { clip: await this.#view((await this.#deps.store.getRender(render.id)) ?? render), created };
  }

  /** The answer to a repeated commit (clip or loop): the first one's render, unless the key came with another request. */
  async #repeated(render: RenderRecord, roomId: string, requestedSeconds: number): Promise<{ clip: ClipView; created: boolean }> {
    if (render.roomId !== roomId || (render.request as { requestedSeconds?: number }).requestedSeconds !== requestedSeconds) {
      throw new ClipError('conflict', 'this Idempotency-Key was used for a different request; use a new key');
    }
    // It queues again what is still waiting (a no-op when it is queued already): a queue that was unreachable gets it now.
    if (render.status === 'queued') await this.#enqueue(render.id);
    return { clip: await this.#view(render), created: false };
  }

  async view(clipId: string): Promise<ClipView | null> {
    if (!RENDER_ID.test(clipId)) return null;
    const render = await this.#deps.store.getRender(clipId);
    return render && (render.kind === 'clip' || render.kind === 'loop') ? await this.#view(render) : null;
  }

  /** The room a clip was made in (a clip: not a loop, a still or a bought version), or null when there is no such clip. */
  async clipRoomOf(clipId: string): Promise<string | null> {
    if (!RENDER_ID.test(clipId)) return null;
    const render = await this.#deps.store.getRender(clipId);
    return render?.kind === 'clip' ? render.roomId : null;
  }

  /** Any render's status and downloads (an order's full-length render included). */
  async renderView(renderId: string): Promise<ClipView | null> {
    if (!RENDER_ID.test(renderId)) return null;
    const render = await this.#deps.store.getRender(renderId);
    return render ? await this.#view(render) : null;
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
    if (created || render.status === 'queued') await this.#enqueue(render.id);
    return render;
  }

  /**
   * Queues a vertical version (VERTICAL_VIDEO) of a clip: the same moment, mix and visuals, the
   * visuals drawn for the tall frame (the engine recomposes, nothing is letterboxed). The same key
   * (per member) answers the first request; the same key for another clip is refused.
   */
  async commitVertical(input: { clipId: string; member: { userId: string; name: string }; idempotencyKey: string }): Promise<{ clip: ClipView; created: boolean }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    if (!this.available) throw new ClipError('unavailable', 'this server can render neither with native ffmpeg nor with @ffmpeg/core, so it cannot render clips');
    const source = RENDER_ID.test(input.clipId) ? await this.#deps.store.getRender(input.clipId) : null;
    if (!source || source.kind !== 'clip') throw new ClipError('not_found', 'no such clip');
    const sourceRequest = source.request as ClipRequest;
    if (sourceRequest.shape === 'vertical') throw new ClipError('bad_request', 'this clip is the vertical version already');
    const key = `${input.member.userId}:vertical:${input.idempotencyKey}`;
    const earlier = await this.#deps.store.findRenderByKey(key);
    if (earlier) {
      if ((earlier.request as ClipRequest).sourceClipId !== input.clipId) throw new ClipError('conflict', 'this Idempotency-Key was used for a different request; use a new key');
      if (earlier.status === 'queued') await this.#enqueue(earlier.id);
      return { clip: await this.#view(earlier), created: false };
    }
    const request: ClipRequest = { ...sourceRequest, requestedBy: input.member, shape: 'vertical', sourceClipId: source.id };
    const { render, created } = await this.#deps.store.createRender(
      { id: newRenderId(), roomId: source.roomId, kind: 'clip', status: 'queued', request, createdAt: new Date((this.#deps.now ?? Date.now)()).toISOString() },
      key,
    );
    if (created || render.status === 'queued') await this.#enqueue(render.id);
    return { clip: await this.#view((await this.#deps.store.getRender(render.id)) ?? render), created };
  }

  /** The file behind a signed link; throws ClipError('not_found') for a bad, tampered or expired link. */
  async file(clipId: string, name: string, expires: string, sig: string): Promise<{ download: RenderDownload; contentType: string; downloadName: string }> {
    const nowSec = Math.floor((this.#deps.now ?? Date.now)() / 1000);
    const exp = Number(expires);
    if (!RENDER_ID.test(clipId) || !RENDER_FILES.has(name) || !Number.isInteger(exp) || typeof sig !== 'string' || !/^[0-9a-f]{64}$/.test(sig)) {
      throw new ClipError('not_found', 'no such download');
    }
    const expected = Buffer.from(this.#linkSignature(clipId, name, exp), 'hex');
    if (!crypto.timingSafeEqual(expected, Buffer.from(sig, 'hex'))) throw new ClipError('not_found', 'this download link is not valid');
    if (exp < nowSec) throw new ClipError('not_found', 'this download link has expired; ask for the clip again to get a fresh one');
    const render = await this.#deps.store.getRender(clipId);
    if (!render || render.status !== 'done') throw new ClipError('not_found', 'no such download');
    // A refunded purchase's full version is handed out no more, even by a link given before.
    if (render.kind === 'full' && (await this.#refunded((render.request as FullRequest).orderId))) throw new ClipError('not_found', 'no such download');
    const contentType = RENDER_FILES.get(name)!;
    const downloadName = await this.#downloadName(render, name);
    let download: RenderDownload | null;
    try {
      // A bought version's presigned URL (S3_PUBLIC=1) lasts a minute at most: a refund cuts it off
      // that soon, as it cuts off every proxied request at once (each one checks above).
      const expiresAtSec = render.kind === 'full' ? Math.min(exp, nowSec + FULL_PRESIGN_SEC) : exp;
      download = await this.#deps.files.download(clipId, name, { expiresAtSec, contentType, contentDisposition: contentDisposition(downloadName) });
    } catch (err) {
      // The object store is away: say so rather than "not found" (the file is there, the link stays good).
      this.#deps.log.warn({ err, renderId: clipId, name }, 'a download could not reach the render files');
      throw new ClipError('unavailable', 'the file cannot be reached just now; try the link again in a minute');
    }
    if (download === null) {
      this.#deps.log.error({ renderId: clipId, name }, 'a finished render lacks a file it names');
      throw new ClipError('not_found', 'no such download');
    }
    return { download, contentType, downloadName };
  }

  /** Queues a loop of the room's visuals as they are now (1–15 s, rounded to whole beats so that the pulse loops too). */
  async commitLoop(input: { roomId: string; member: { userId: string; name: string }; seconds: number; idempotencyKey: string }): Promise<{ clip: ClipView; created: boolean }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    if (!this.available) throw new ClipError('unavailable', 'this server can render neither with native ffmpeg nor with @ffmpeg/core, so it cannot render loops');
    const key = `${input.member.userId}:loop:${input.idempotencyKey}`;
    const earlier = await this.#deps.store.findRenderByKey(key);
    if (earlier) return this.#repeated(earlier, input.roomId, input.seconds);
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
      key,
    );
    if (!created) return this.#repeated(render, input.roomId, input.seconds);
    await this.#enqueue(render.id);
    // Read again: a render that started at once is `running` already, and the answer says so.
    return { clip: await this.#view((await this.#deps.store.getRender(render.id)) ?? render), created };
  }

  /**
   * A PNG of the room's visuals at `atMs` (default now; within what the room's
   * timeline keeps), with a signed manifest in its metadata; recorded as a render
   * so that its id can be traced. Drawn in the still threads; ClipError('busy') when
   * their queue is full.
   */
  async still(input: { roomId: string; member: { userId: string; name: string }; atMs?: number; width: number; height: number }): Promise<{ png: Buffer; renderId: string; downloadName: string }> {
    if (this.#closed) throw new ClipError('unavailable', 'the server is shutting down');
    // A burst refused before any work here: no plan, no signature for a still that will not be drawn.
    this.#stillRoom();
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
    const record = await this.#deps.store.getRelease(room.release.id);
    const generated = await loadGeneratedTextures(room.release.id, plan.visuals.allParams, this.#deps.textures ?? null, this.#deps.log);
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
      ...manifestVisualModels(room.release.id, generated.models, VISUAL_MODEL_METHOD),
      software: SOFTWARE,
      createdAt: new Date(now).toISOString(),
    };
    const signed = this.#deps.signer.sign(manifest);
    const frame = plan.visuals.frameAt(atMs, room.state().meta.createdAtMs, { energy: 0.5, beatPhase: plan.beatAt((atMs - window.fromMs) / 1000) });
    // JSON escapes everything outside ASCII, so the manifest fits PNG's Latin-1 text.
    const json = JSON.stringify(signed).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    let bytes: Uint8Array;
    let folder: ReleaseFolder | null = null;
    try {
      // Held while the thread may read the visual pack (once per release and thread).
      folder = await this.#releases.open(room.release.id, 'visual-pack');
      bytes = await this.#stills.run({ releaseId: room.release.id, releaseDir: folder.dir, textures: generated.artworks, width: input.width, height: input.height, frame, text: { Software: SOFTWARE, 'remixroom:manifest': json } });
    } catch (err) {
      throw stillError(err);
    } finally {
      folder?.release();
    }
    const png = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    await this.#deps.store.createRender({ id: renderId, roomId: room.id, kind: 'still', status: 'done', request: { atMs, requestedBy: input.member }, createdAt: manifest.createdAt }, null);
    await this.#deps.store.updateRender(renderId, { status: 'done', result: { manifest: signed } satisfies ClipResult });
    return { png, renderId, downloadName: downloadName(manifest.release, { kind: 'still' }, '.png') };
  }

  #stillRoom(): void {
    try {
      this.#stills.throwIfFull();
    } catch (err) {
      throw stillError(err);
    }
  }

  /** Verifies a render id found in a file: what it is, when, from where. */
  async lookup(renderId: string): Promise<{ render: RenderRecord; manifest: SignedManifest | null } | null> {
    if (!RENDER_ID.test(renderId)) return null;
    const render = await this.#deps.store.getRender(renderId);
    if (!render) return null;
    return { render, manifest: (render.result as ClipResult | null)?.manifest ?? null };
  }

  /** Takes no more commits, stops listening to the queue and ends the still threads; the queue is closed by whoever made it. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#queue.off('progress', this.#onProgress);
    this.#queue.off('done', this.#onDone);
    await this.#stills.close();
  }

  async #enqueue(id: string): Promise<void> {
    try {
      await this.#queue.enqueue(id);
    } catch (err) {
      // The row stays queued: the same commit again, or the next start, queues it.
      this.#deps.log.error({ err, renderId: id }, 'queuing a render failed');
      throw new ClipError('unavailable', 'the render queue cannot be reached; send the same request again in a moment');
    }
  }

  async #view(render: RenderRecord): Promise<ClipView> {
    const request = render.request as ClipRequest;
    const result = render.result as ClipResult | null;
    const view: ClipView = {
      clipId: render.id,
      roomId: render.roomId,
      status: render.status,
      progress: render.status === 'done' ? 1 : render.status === 'running' ? ((await this.#queue.progressOf(render.id).catch(() => undefined)) ?? 0) : 0,
      seconds: request.seconds,
      createdAt: render.createdAt,
      ...(request.kind === 'clip' && request.shape === 'vertical' ? { shape: 'vertical' as const, sourceClipId: request.sourceClipId! } : {}),
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

  /** "<artist> - <title> (Remixroom clip 0m42s-1m12s).mp4": the clip's times from the room's opening. */
  async #downloadName(render: RenderRecord, name: string): Promise<string> {
    const request = render.request as ClipRequest | FullRequest | LoopRequest;
    const release = (render.result as ClipResult | null)?.manifest?.manifest.release ?? (await this.#deps.store.getRelease(request.releaseId)) ?? { title: '', artist: '' };
    const what: DownloadWhat =
      request.kind === 'clip'
        ? { kind: 'clip', fromSec: (request.window.fromMs - request.roomCreatedAtMs) / 1000, toSec: (request.window.toMs - request.roomCreatedAtMs) / 1000, vertical: request.shape === 'vertical' }
        : request.kind === 'loop'
          ? { kind: 'loop', seconds: request.seconds }
          : { kind: 'full' };
    // The manifest beside a clip keeps the clip's name with its own ending.
    return downloadName(release, what, name === 'manifest.json' ? '.manifest.json' : path.extname(name));
  }

  async #refunded(orderId: string): Promise<boolean> {
    const [order, entitlement] = await Promise.all([this.#deps.store.getOrder(orderId), this.#deps.store.getEntitlementByOrder(orderId)]);
    return order?.status === 'refunded' || Boolean(entitlement?.revokedAt);
  }

  #linkSignature(id: string, name: string, expires: number): string {
    return crypto.createHmac('sha256', this.#deps.linkSecret).update(`clip-file\n${id}\n${name}\n${expires}`).digest('hex');
  }
}

/** The still pool's refusals as the API tells them. */
function stillError(err: unknown): unknown {
  if (err instanceof PoolFullError) return new ClipError('busy', 'too many stills are waiting to be drawn on this server; try again in a moment', err.retryAfterMs);
  if (err instanceof PoolClosedError) return new ClipError('unavailable', 'the server is shutting down');
  if (err instanceof BlobStoreUnavailableError) return new ClipError('unavailable', "the release's files cannot be reached just now; try again in a minute");
  return err;
}

