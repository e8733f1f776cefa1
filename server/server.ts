// The process's one owner: it opens everything the server needs, in order, and
// closes all of it, in reverse order, exactly once.

import crypto from 'node:crypto';
import fsp from 'node:fs/promises';
import http from 'node:http';
import type { Express } from 'express';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { createClient, type RedisClientType } from 'redis';
import { findNativeFfmpeg } from '../media/audio/ffmpeg.ts';
import { TokenSigner } from './auth/tokens.ts';
import { MemberDirectory } from './auth/members.ts';
import { Catalog } from './catalog/catalog.ts';
import { DEMO_RELEASE_ID, DEMO_VISUAL_MODEL_DIR, ensureDemoRelease } from './catalog/demo-release.ts';
import { VisualModels, visualModelSource, type VisualModelsOptions } from './catalog/visual-models.ts';
import { TextureGenerator } from '../media/visuals/model/texture-generator.ts';
import { PromptVisuals } from './rooms/prompt-visuals.ts';
import { blobTextureLoader, type GeneratedTextureLoader } from './work/generated-textures.ts';
import type { Config } from './config.ts';
import { createApp } from './http/app.ts';
import { ChatHistory } from './realtime/chat-history.ts';
import type { Readiness } from './http/health-routes.ts';
import type { Logger } from './logger.ts';
import { Metrics } from './metrics.ts';
import { loadSecrets, type Secrets } from './secrets.ts';
import { connectSocketAdapter, type SocketAdapter } from './realtime/socket-adapter.ts';
import { ClipService } from './clips/clip-service.ts';
import { ManifestSigner } from './clips/manifest.ts';
import type { RenderFiles } from './clips/render-files.ts';
import { renderFilesFor } from './clips/blob-render-files.ts';
import { LocalRenderQueue, type RenderQueue } from './clips/render-queue.ts';
import { RedisRenderQueue } from './clips/redis-render-queue.ts';
import { watermarkKeyOf } from './clips/render-runner.ts';
import { ThreadedRenderRunner } from './work/threaded-render-runner.ts';
import { OrderService } from './orders/order-service.ts';
import { SandboxPayments } from './orders/payments.ts';
import { LiveStreams, type LiveStreamsOptions } from './live/live-streams.ts';
import { ListenKeys, hlsServer } from './http/hls-server.ts';
import { RoomSocketServer } from './realtime/socket-server.ts';
import { RoomManager, type RoomTimings } from './rooms/room-manager.ts';
import type { Room } from './rooms/room.ts';
import { SyncServer } from './rooms/sync-server.ts';
import { RedisBridge } from './scaleout/redis-bridge.ts';
import { HlsRelay } from './scaleout/hls-relay.ts';
import { DataLayout } from './store/paths.ts';
import { closeRedisClient } from './util/redis-client.ts';
import { openStore } from './store/open-store.ts';
import { PgStore } from './store/pg-store.ts';
import { Limits } from './limits/limits.ts';
import { LocalBucketStore, RedisBucketStore } from './limits/bucket-store.ts';
import { AddressConnections } from './limits/address-connections.ts';
import { ProxyTrust } from './limits/address.ts';
import type { Store } from './store/store.ts';
import type { BlobStore } from './store/blob-store.ts';
import { openBlobStore } from './store/open-blobs.ts';
import { ReleaseFiles } from './catalog/release-files.ts';

/** A start that cannot go on; its message is one line a person can act on. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** Staging folders older than this are leftovers of a crash. */
const STALE_TMP_MS = 60 * 60 * 1000;

/** Connections waiting to be accepted (a livestream's audience arrives at once). */
const LISTEN_BACKLOG = 4096;

export class RemixroomServer {
  readonly config: Config;
  readonly log: Logger;
  readonly layout: DataLayout;
  readonly metrics: Metrics;
  readonly store: Store;
  /** Renders and release assets: files under DATA_DIR, or the S3 bucket of S3_BUCKET (with a local cache). */
  readonly blobs: BlobStore;
  readonly catalog: Catalog;
  /** Each release's visual model: the current one, training, records, generated textures. */
  readonly visualModels: VisualModels;
  readonly #textureMaker: TextureGenerator;
  readonly #promptVisuals: PromptVisuals;
  readonly secrets: Secrets;
  readonly ffmpeg: string | null;
  readonly signer: TokenSigner;
  readonly rooms: RoomManager;
  readonly live: LiveStreams;
  readonly clips: ClipService;
  readonly orders: OrderService;
  readonly payments: SandboxPayments;
  /** Who is in which room with which role (the store's record, the same on every node). */
  readonly members: MemberDirectory;
  /** Every limit a guest meets (shared/limits.ts); in Redis with REDIS_URL, so that nodes share them. */
  readonly limits: Limits;
  /** The HTTP API (express), for what inspects its routes. */
  readonly app: Express;
  readonly #sync: SyncServer;
  readonly #sockets: RoomSocketServer;
  readonly #http: http.Server;
  readonly #redis: RedisClientType | null;
  /** Scale-out (REDIS_URL): links this node's rooms to the other nodes' through Redis. */
  readonly #scaleout: RedisBridge | null;
  /** Scale-out of broadcast mode: the node encoding a room's HLS and what every node follows. */
  readonly #hlsRelay: HlsRelay | null;
  readonly #socketAdapter: SocketAdapter | null;
  /** Where renders wait (in this process, or Redis for `npm run renderer` processes), and this process's render threads (none with Redis). */
  readonly #renderQueue: RenderQueue;
  readonly #renderThreads: ThreadedRenderRunner | null;
  readonly #abort = new AbortController();
  #closing: Promise<void> | null = null;

  private constructor(parts: {
    config: Config;
    log: Logger;
    layout: DataLayout;
    metrics: Metrics;
    store: Store;
    blobs: BlobStore;
    releaseFiles: ReleaseFiles;
    secrets: Secrets;
    ffmpeg: string | null;
    redis: RedisClientType | null;
    scaleout: RedisBridge | null;
    hlsRelay?: HlsRelay | null;
    socketAdapter: SocketAdapter | null;
    live: LiveStreams;
    renderQueue: RenderQueue | null;
    roomTimings?: Partial<RoomTimings>;
    visualModels?: Pick<VisualModelsOptions, 'hyperparameters' | 'code' | 'pollMs'>;
    /** Where the textures the visual models generated are read by those who draw (the live video, renders, stills). */
    textures: GeneratedTextureLoader;
  }) {
    this.config = parts.config;
    this.log = parts.log;
    this.layout = parts.layout;
    this.metrics = parts.metrics;
    this.store = parts.store;
    this.blobs = parts.blobs;
    this.secrets = parts.secrets;
    this.ffmpeg = parts.ffmpeg;
    this.#redis = parts.redis;
    this.#scaleout = parts.scaleout;
    this.#hlsRelay = parts.hlsRelay ?? null;
    this.#socketAdapter = parts.socketAdapter;
    this.live = parts.live;
    this.catalog = new Catalog(this.store, this.layout, parts.releaseFiles);
    this.visualModels = new VisualModels({ store: this.store, blobs: this.blobs, layout: this.layout, folders: parts.releaseFiles, log: this.log, config: this.config.visualModel, ...parts.visualModels });
    // One generation worker for every room (a core's worth at most, and only while it generates).
    this.#textureMaker = new TextureGenerator({ log: this.log.child({ component: 'visual-model' }) });
    this.#promptVisuals = new PromptVisuals({
      source: visualModelSource(this.visualModels),
      maker: this.#textureMaker,
      log: this.log.child({ component: 'visual-model' }),
      mix: this.config.visualModel.mix,
    });
    // A model retired (its artwork's consent withdrawn) or replaced: rooms showing its texture go back to the artwork.
    this.visualModels.on('changed', (releaseId) => void this.#followModel(releaseId));
    this.limits = new Limits(
      parts.redis
        ? new RedisBucketStore(parts.redis, { onFallback: (err) => this.log.warn({ err: err.message }, 'limits: Redis unreachable; each node keeps them by itself meanwhile') })
        : new LocalBucketStore(),
      {
        caps: { 'connections.address': this.config.maxConnectionsPerAddress },
        onRefused: (limit) => this.metrics.limitRefusals.inc({ limit }),
        proxies: new ProxyTrust(this.config.trustedProxies),
      },
    );
    this.signer = new TokenSigner(this.secrets.tokenSecret);
    const manifestSigner = new ManifestSigner(this.secrets.tokenSecret);
    // The watermark's key, derived from the token secret: every node marks and reads alike.
    const watermarkKey = watermarkKeyOf(this.secrets.tokenSecret);
    this.rooms = new RoomManager({
      store: this.store,
      log: this.log,
      timings: { ...roomTimingsOf(this.config), ...parts.roomTimings },
      ...(parts.scaleout ? parts.scaleout.hooks() : {}),
      // After the scale-out bridge has attached (the room's document is the one every node shares):
      // the live streams follow its broadcast mode.
      onRoomOpened: async (room) => {
        await parts.scaleout?.hooks().onRoomOpened(room);
        this.live.watch(room);
        // A room saved while it showed a model since retired (or from another release's past) goes back to its artwork.
        void this.#followModel(room.release.id, [room]);
      },
    });
    this.members = new MemberDirectory({ store: this.store, manager: this.rooms });
    const clipsLog = this.log.child({ component: 'clips' });
    // DATA_DIR/renders, or the bucket (S3_BUCKET): there any renderer's files are served by any node.
    const renderFiles: RenderFiles = renderFilesFor(this.blobs, this.layout, { presign: this.config.s3?.public ?? false });
    // The WebAssembly encoder (no native ffmpeg) is single-threaded and holds ~450 MB a job: one at a time.
    // One core stays with the rooms and their streams.
    const renderConcurrency = this.config.renderConcurrency ?? (this.ffmpeg ? Math.max(1, this.config.cores - 1) : 1);
    if (parts.renderQueue) {
      // RENDER_QUEUE=redis: renders wait in Redis for `npm run renderer` processes; this node renders none.
      this.#renderThreads = null;
      this.#renderQueue = parts.renderQueue;
    } else {
      // Renders run here, each in a thread of its own.
      const threads = new ThreadedRenderRunner({
        store: this.store,
        layout: this.layout,
        files: renderFiles,
        stems: this.live.stems,
        releases: parts.releaseFiles,
        log: clipsLog,
        ffmpeg: this.ffmpeg,
        video: this.config.renderVideo,
        // The render threads derive the manifest's and the watermark's keys from it: every clip and bought version carries the render's id in its audio.
        tokenSecret: this.secrets.tokenSecret,
        concurrency: renderConcurrency,
        textures: parts.textures,
      });
      this.#renderThreads = threads;
      this.#renderQueue = new LocalRenderQueue({
        store: this.store,
        log: clipsLog,
        runner: threads,
        concurrency: renderConcurrency,
        maxAttempts: this.config.renderMaxAttempts,
        retryBaseMs: this.config.renderRetryMs,
      });
    }
    this.clips = new ClipService({
      store: this.store,
      layout: this.layout,
      manager: this.rooms,
      log: clipsLog,
      ffmpeg: this.ffmpeg,
      // Stills are drawn in threads shared by every room; one core stays with the rooms.
      stillThreads: Math.max(1, this.config.cores - 1),
      signer: manifestSigner,
      linkSecret: this.secrets.tokenSecret,
      queue: this.#renderQueue,
      files: renderFiles,
      releases: parts.releaseFiles,
      textures: parts.textures,
    });
    this.metrics.trackRenderJobs(() => this.clips.renderJobCounts());
    // The built-in sandbox payment provider (no real provider is wired yet); it signs its webhooks with a key derived from the token secret.
    this.payments = new SandboxPayments({
      dir: path.join(this.layout.root, 'sandbox-payments'),
      webhookSecret: Buffer.from(crypto.hkdfSync('sha256', this.secrets.tokenSecret, 'remixroom', 'sandbox-webhook-v1', 32)).toString('hex'),
      webhookUrl: () => `${this.url}/api/webhooks/payments`,
      log: this.log.child({ component: 'sandbox-payments' }),
      settleMs: this.config.sandboxSettleMs,
    });
    this.orders = new OrderService({ store: this.store, clips: this.clips, payments: this.payments, log: this.log.child({ component: 'orders' }) });
    const listenKeys = new ListenKeys(this.secrets.tokenSecret);
    const app = (this.app = createApp({
      log: this.log,
      metrics: this.metrics,
      catalog: this.catalog,
      readiness: this.#readiness(),
      limits: this.limits,
      visualModels: this.visualModels,
      rooms: {
        store: this.store,
        manager: this.rooms,
        members: this.members,
        signer: this.signer,
        limits: this.limits,
        publicUrl: () => this.publicUrl,
        memberTokenTtlSec: this.config.memberTokenTtlSec,
        liveStatus: (id) => this.live.status(id),
      },
      broadcast: { store: this.store, manager: this.rooms, members: this.members, signer: this.signer, limits: this.limits, live: this.live, keys: listenKeys, rtmpAllowPrivate: this.config.broadcast.rtmpAllowPrivate },
      orders: { orders: this.orders, clips: this.clips, payments: this.payments, signer: this.signer, store: this.store, log: this.log, limits: this.limits, members: this.members },
      verify: { ffmpeg: this.ffmpeg, watermarkKey, clips: this.clips, manifestPublicKey: manifestSigner.publicKey, tmpDir: this.layout.tmpDir },
      clips: {
        clips: this.clips,
        signer: this.signer,
        members: this.members,
        limits: this.limits,
        manifestPublicKey: manifestSigner.publicKey,
        clipRulesOf: async (roomId) => {
          const room = await this.store.getRoom(roomId);
          const release = room && (await this.store.getRelease(room.releaseId));
          return release ? release.manifest.rules.clips : null;
        },
      },
    }));
    // A broadcast's playlists and media are answered before Express (hls-server.ts): the audience's hot path.
    const hls = hlsServer({ live: this.live, limits: this.limits, keys: listenKeys, metrics: this.metrics, log: this.log.child({ component: 'hls' }) });
    this.#http = http.createServer((req, res) => {
      if (!hls(req, res)) app(req, res);
    });
    const connections = new AddressConnections(this.limits.cap('connections.address'));
    this.#sync = new SyncServer({ manager: this.rooms, signer: this.signer, members: this.members, limits: this.limits, connections, log: this.log, metrics: this.metrics });
    this.#sync.attach(this.#http);
    this.#sockets = new RoomSocketServer(this.#http, {
      manager: this.rooms,
      signer: this.signer,
      members: this.members,
      limits: this.limits,
      connections,
      log: this.log,
      metrics: this.metrics,
      live: this.live,
      chatHistory: new ChatHistory(this.store),
      visuals: this.#promptVisuals,
      ...(parts.socketAdapter ? { adapter: parts.socketAdapter.adapter } : {}),
    });
    // With the Redis queue every node hears every render's progress, so each tells only its own sockets.
    this.clips.on('progress', (roomId, progress) => this.#sockets.renderProgress(roomId, progress, { localOnly: this.clips.progressHeardEverywhere }));
    // Slow or idle clients must not hold a shutdown open.
    this.#http.headersTimeout = 20_000;
    this.#http.requestTimeout = 60_000;
  }

  /**
   * Opens the store, makes the demo release if it is missing, and listens.
   * `signal` cancels a start in progress (a SIGTERM during the first start's demo build).
   */
  static async start(
    config: Config,
    log: Logger,
    signal?: AbortSignal,
    options: { roomTimings?: Partial<RoomTimings>; live?: Pick<LiveStreamsOptions, 'sfu' | 'idleStopMs' | 'video' | 'broadcast'>; visualModels?: Pick<VisualModelsOptions, 'hyperparameters' | 'code' | 'pollMs'> } = {},
  ): Promise<RemixroomServer> {
    const layout = new DataLayout(config.dataDir);
    await prepareDataDir(layout);
    let secrets: Secrets;
    try {
      secrets = loadSecrets(config, layout);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    let store: Store;
    try {
      store = await openStore(config, layout, log);
    } catch (err) {
      throw new StartupError((err as Error).message);
    }
    const opened: { close(): Promise<unknown> }[] = [store];
    try {
      const native = await findNativeFfmpeg(config.ffmpegPath);
      if (config.ffmpegPath && !native) throw new StartupError(`FFMPEG_PATH=${config.ffmpegPath} is not a working ffmpeg`);
      log.info(native ? { ffmpeg: native.ffmpeg, version: native.version } : {}, native ? 'using native ffmpeg' : 'no native ffmpeg: using the decoders bundled with npm packages');
      const redis = config.redisUrl ? connectRedis(config.redisUrl, log) : null;
      if (redis) opened.push({ close: () => redis.close() });
      const metrics = new Metrics({ releaseCount: async () => (await store.listReleases()).length });
      if (store instanceof PgStore) metrics.trackDatabase(store);
      let scaleout: RedisBridge | null = null;
      if (config.redisUrl) {
        try {
          scaleout = await RedisBridge.create({
            redisUrl: config.redisUrl,
            log,
            store,
            onStaleSave: () => metrics.staleSaves.inc(),
            ...(config.roomLeaseTtlMs ? { leaseTtlMs: config.roomLeaseTtlMs } : {}),
          });
        } catch (err) {
          throw new StartupError(`scale-out needs Redis: ${(err as Error).message}; check REDIS_URL`);
        }
        opened.push(scaleout);
      }
      // Broadcast mode across nodes: one node encodes a room's HLS, every node serves it.
      let hlsRelay: HlsRelay | null = null;
      if (config.redisUrl && scaleout) {
        try {
          hlsRelay = await HlsRelay.create({ redisUrl: config.redisUrl, nodeId: scaleout.nodeId, log });
        } catch (err) {
          throw new StartupError(`scale-out needs Redis: ${(err as Error).message}; check REDIS_URL`);
        }
        opened.push(hlsRelay);
      }
      let socketAdapter: SocketAdapter | null = null;
      if (config.redisUrl) {
        socketAdapter = await connectSocketAdapter(config.redisUrl, log);
        opened.push(socketAdapter);
      }
      let renderQueue: RenderQueue | null = null;
      if (config.renderQueue === 'redis' && config.redisUrl) {
        try {
          renderQueue = await RedisRenderQueue.create({ redisUrl: config.redisUrl, store, log: log.child({ component: 'render-queue' }) });
        } catch (err) {
          throw new StartupError(`the render queue needs Redis: ${(err as Error).message}; check REDIS_URL (or set RENDER_QUEUE=local)`);
        }
        const queue = renderQueue;
        opened.push({ close: () => queue.close() });
      }
      let blobs: BlobStore;
      try {
        blobs = await openBlobStore(config, layout, log, metrics);
      } catch (err) {
        throw new StartupError((err as Error).message);
      }
      opened.push(blobs);
      const releaseFiles = new ReleaseFiles({ store, blobs, layout, log: log.child({ component: 'release-files' }) });
      // Says which SFU (and why) in the log.
      const textures = blobTextureLoader(blobs);
      const live = await LiveStreams.create({
        layout,
        textures,
        releases: releaseFiles,
        log,
        mediasoupWorkerBin: config.mediasoupWorkerBin ?? undefined,
        video: { ffmpeg: native?.ffmpeg ?? null, settings: config.liveVideo },
        broadcast: { ffmpeg: native?.ffmpeg ?? null, settings: { partSec: config.broadcast.partSec }, segmentSec: config.broadcast.segmentSec, autoListeners: config.broadcast.autoListeners, maxRooms: config.broadcast.maxRooms },
        hlsRelay,
        ...options.live,
      });
      opened.push(live);
      const { live: _liveOptions, ...rest } = options;
      const server = new RemixroomServer({ config, log, layout, metrics, store, blobs, releaseFiles, secrets, ffmpeg: native?.ffmpeg ?? null, redis, scaleout, hlsRelay, socketAdapter, live, renderQueue, textures, ...rest });
      opened.push({ close: () => server.visualModels.close() });
      const onAbort = () => server.#abort.abort(signal?.reason);
      signal?.addEventListener('abort', onAbort, { once: true });
      try {
        await ensureDemoRelease({ store, layout, ffmpeg: server.ffmpeg, log, blobs, signal: server.#abort.signal });
      } finally {
        signal?.removeEventListener('abort', onAbort);
      }
      signal?.throwIfAborted();
      // The demo's model as shipped, when it was trained on the demo's artwork as made here; then every
      // release without a model is queued for training (VISUAL_MODEL_TRAIN=auto), in the background.
      const shipped = await server.visualModels.installShipped(DEMO_RELEASE_ID, DEMO_VISUAL_MODEL_DIR);
      if (!shipped.installed) log.debug({ reason: shipped.reason }, 'visual model: the demo\'s shipped model is not used');
      await server.visualModels.start();
      await server.#listen();
      // Clips a previous process left queued or running, and orders it left halfway.
      await server.clips.resume();
      await server.payments.resume();
      await server.orders.resume();
      return server;
    } catch (err) {
      for (const o of opened.reverse()) await o.close().catch((e: unknown) => log.warn({ err: e }, 'close after a failed start'));
      throw err;
    }
  }

  /** Where the server listens, e.g. http://127.0.0.1:3000. */
  get url(): string {
    const address = this.#http.address() as AddressInfo | null;
    if (!address) throw new Error('the server is not listening');
    const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
    return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  }

  get port(): number {
    return (this.#http.address() as AddressInfo).port;
  }

  /** The base of links handed to people (join links). */
  get publicUrl(): string {
    return this.config.publicUrl ?? this.url;
  }

  /**
   * Stops accepting, lets requests in flight finish (up to SHUTDOWN_TIMEOUT_MS),
   * then closes everything it opened. Idempotent: every caller gets the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  /** The release's current model changed: the rooms that show another model's texture go back to their artwork. */
  async #followModel(releaseId: string, only?: readonly Room[]): Promise<void> {
    const rooms = (only ?? this.rooms.rooms()).filter((r) => !r.closed && r.release.id === releaseId);
    if (rooms.length === 0) return;
    let current: string | null = null;
    try {
      current = (await this.visualModels.current(releaseId))?.modelId ?? null;
    } catch (err) {
      this.log.warn({ err, releaseId }, 'the visual model could not be read; its rooms keep their picture');
      return;
    }
    for (const room of rooms) {
      if (!room.closed && room.dropGeneratedVisuals(current)) this.log.info({ roomId: room.id, releaseId }, 'the visual model changed: the room shows its artwork without the old model’s texture');
    }
  }

  async #close(): Promise<void> {
    this.log.info('shutting down');
    // Members hear it first, so that the disconnects that follow are not taken as the end.
    this.#sockets.goingAway();
    this.#abort.abort(new Error('the server is shutting down'));
    // A training in progress stops (its child is killed; nothing half-made is stored); so does a generation.
    await this.visualModels.close();
    await this.#textureMaker.close();
    const stopped = new Promise<void>((resolve) => this.#http.close(() => resolve()));
    this.#http.closeIdleConnections();
    const timer = setTimeout(() => {
      this.log.warn('requests still open at the shutdown deadline; closing their connections');
      this.#http.closeAllConnections();
    }, this.config.shutdownTimeoutMs);
    // Rooms save their documents and tell their members to reconnect (to another node, in scale-out).
    // Renders in flight stop and stay queued for the next start; the sandbox stops settling and sending.
    await this.orders.close();
    await this.payments.close();
    await this.clips.close();
    // The queue aborts its renders first (they stay queued for the next start), then their threads end.
    await this.#renderQueue.close();
    await this.#renderThreads?.close();
    await this.rooms.closeAll();
    // The rooms' streams stopped with them; now the SFU and its workers.
    await this.live.close();
    await this.#hlsRelay?.close();
    // After the rooms saved (with their leases still held); then their subscriptions and leases go.
    await this.#scaleout?.close();
    this.#sync.close();
    await this.#sockets.close();
    await this.#socketAdapter?.close();
    await stopped;
    clearTimeout(timer);
    if (this.#redis) await closeRedisClient(this.#redis, this.log, 'readiness');
    await this.store.close();
    await this.blobs.close();
    this.log.info('shut down');
  }

  async #listen(): Promise<void> {
    const { port, host } = this.config;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        this.#http.off('listening', onListening);
        if (err.code === 'EADDRINUSE') reject(new StartupError(`port ${port} on ${host} is already in use; stop the other program or set PORT`));
        else if (err.code === 'EACCES') reject(new StartupError(`not allowed to listen on ${host}:${port}; choose a PORT above 1023`));
        else if (err.code === 'EADDRNOTAVAIL' || err.code === 'ENOTFOUND') reject(new StartupError(`HOST=${host} is not an address of this machine`));
        else reject(err);
      };
      const onListening = () => {
        this.#http.off('error', onError);
        resolve();
      };
      this.#http.once('error', onError);
      this.#http.once('listening', onListening);
      // A broadcast's crowd arriving at once queues (the kernel caps it at somaxconn) instead of being dropped at Node's default 511.
      this.#http.listen({ port, host, backlog: LISTEN_BACKLOG });
    });
    this.#http.on('error', (err) => this.log.error({ err }, 'HTTP server error'));
  }

  #readiness(): Readiness {
    return {
      check: async () => {
        const checks: Record<string, string> = {};
        let ready = true;
        try {
          await this.store.ping();
          checks['store'] = 'ok';
        } catch (err) {
          ready = false;
          checks['store'] = (err as Error).message;
        }
        if (this.#redis) {
          try {
            await withTimeout(this.#redis.ping(), 1000, 'no answer within 1 s');
            checks['redis'] = 'ok';
          } catch (err) {
            ready = false;
            checks['redis'] = `unreachable: ${(err as Error).message}`;
          }
        }
        // Local files are checked with the store (same DATA_DIR); a bucket is checked by itself.
        if (this.blobs.kind === 's3') {
          try {
            await withTimeout(this.blobs.ping(), 2000, 'no answer within 2 s');
            checks['objects'] = 'ok';
          } catch (err) {
            ready = false;
            checks['objects'] = `unreachable: ${(err as Error).message}`;
          }
        }
        if (this.#closing) {
          ready = false;
          checks['process'] = 'shutting down';
        }
        return { ready, checks };
      },
    };
  }
}

async function prepareDataDir(layout: DataLayout): Promise<void> {
  try {
    await fsp.mkdir(layout.root, { recursive: true });
    for (const dir of [layout.releasesDir, layout.rendersDir, layout.tmpDir]) await fsp.mkdir(dir, { recursive: true });
    const probe = path.join(layout.tmpDir, `.write-probe-${process.pid}`);
    await fsp.writeFile(probe, 'ok');
    await fsp.rm(probe);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw new StartupError(`DATA_DIR ${layout.root} is not a writable folder (${code}); set DATA_DIR to a folder this user can write`);
  }
  // Leftovers of an ingest or render that crashed; recent ones may belong to a running `npm run ingest`.
  const now = Date.now();
  for (const entry of await fsp.readdir(layout.tmpDir)) {
    const full = path.join(layout.tmpDir, entry);
    const stat = await fsp.stat(full).catch(() => null);
    if (stat && now - stat.mtimeMs > STALE_TMP_MS) await fsp.rm(full, { recursive: true, force: true });
  }
}

function connectRedis(url: string, log: Logger): RedisClientType {
  const client: RedisClientType = createClient({
    url,
    socket: { connectTimeout: 2000, reconnectStrategy: (retries) => Math.min(100 * 2 ** retries, 5000) },
  });
  let reported = false;
  client.on('error', (err: Error) => {
    // The client retries by itself; say so once per outage, not once per attempt.
    if (!reported) log.warn({ err: err.message }, 'Redis unreachable; retrying');
    reported = true;
  });
  client.on('ready', () => {
    reported = false;
    log.info('Redis connected');
  });
  client.connect().catch((err: unknown) => log.warn({ err }, 'Redis connection failed; retrying'));
  return client;
}

/** Room timings set in the environment (ROOM_GRACE_MS, ROOM_SAVE_DEBOUNCE_MS); the rest keep the room manager's defaults. */
function roomTimingsOf(config: Config): Partial<RoomTimings> {
  return {
    ...(config.roomGraceMs !== null ? { graceMs: config.roomGraceMs } : {}),
    ...(config.roomSaveDebounceMs !== null ? { saveDebounceMs: config.roomSaveDebounceMs } : {}),
  };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

