// The one place that reads the environment. Everything else receives a Config.
import path from 'node:path';
import net from 'node:net';
import os from 'node:os';
import { z } from 'zod';
import { LIMITS } from '../shared/limits.ts';

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LOG_FORMATS = ['json', 'pretty'] as const;

const port = z.coerce
  .number({ message: 'must be a whole number from 0 to 65535' })
  .int('must be a whole number from 0 to 65535')
  .min(0, 'must be a whole number from 0 to 65535')
  .max(65535, 'must be a whole number from 0 to 65535');

const secret = z
  .string()
  .min(32, 'must be at least 32 characters (e.g. the output of `openssl rand -hex 32`)');

const redisUrl = z
  .string()
  .url('must be a URL like redis://127.0.0.1:6379')
  .refine((u) => URL.canParse(u) && /^rediss?:$/.test(new URL(u).protocol), 'must start with redis:// or rediss://');

const databaseUrl = z
  .string()
  .refine((u) => URL.canParse(u) && /^postgres(ql)?:$/.test(new URL(u).protocol), 'must be a URL like postgres://user:password@host:5432/remixroom (postgres:// or postgresql://)');

/**
 * How much of the picture the model's texture takes by default: judged on the contact sheet
 * (docs/visual-model-contact-sheet.png), where the textures alone read as abstract colour fields
 * and a fan would miss the artist's composition; blended, the composition stays.
 */
export const DEFAULT_VISUAL_MODEL_MIX = 0.4;

const EnvSchema = z.object({
  PORT: port.default(3000),
  HOST: z.string().min(1, 'must not be empty').default('127.0.0.1'),
  DATA_DIR: z.string().min(1, 'must not be empty').default('./data'),
  REDIS_URL: z.preprocess(emptyToUndefined, redisUrl.optional()),
  DATABASE_URL: z.preprocess(emptyToUndefined, databaseUrl.optional()),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1, 'must be a whole number from 1 to 1000').max(1000, 'must be a whole number from 1 to 1000').default(10),
  DATABASE_STATEMENT_TIMEOUT_MS: z.coerce.number().int().min(100, 'must be from 100 to 600000 (ms)').max(600_000, 'must be from 100 to 600000 (ms)').default(5000),
  PUBLIC_URL: z.preprocess(
    emptyToUndefined,
    z.string().url('must be an absolute URL like https://remix.example.com').optional(),
  ),
  LOG_LEVEL: z.enum(LOG_LEVELS, { message: `must be one of ${LOG_LEVELS.join(', ')}` }).default('info'),
  LOG_FORMAT: z.preprocess(emptyToUndefined, z.enum(LOG_FORMATS, { message: 'must be json (one JSON object a line, for a log collector) or pretty (one readable line an event)' }).optional()),
  TOKEN_SECRET: z.preprocess(emptyToUndefined, secret.optional()),
  FFMPEG_PATH: z.preprocess(emptyToUndefined, z.string().optional()),
  MEDIASOUP_WORKER_BIN: z.preprocess(emptyToUndefined, z.string().optional()),
  SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  CORES: z.coerce.number().int().min(1).max(1024).default(Math.max(1, os.availableParallelism())),
  ROOM_GRACE_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(3_600_000).optional()),
  ROOM_SAVE_DEBOUNCE_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(60_000).optional()),
  ROOM_LEASE_TTL_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1000).max(600_000).optional()),
  RENDER_VIDEO: z
    .string()
    .regex(/^\d{2,4}x\d{2,4}@\d{1,2}$/, 'must be WIDTHxHEIGHT@FPS like 1280x720@30')
    .refine((v) => {
      const [w, h, f] = v.split(/[x@]/).map(Number) as [number, number, number];
      return w % 2 === 0 && h % 2 === 0 && w >= 16 && h >= 16 && w <= 3840 && h <= 2160 && f >= 1 && f <= 60;
    }, 'needs even sizes 16–3840 x 16–2160 and 1–60 fps')
    .default('1280x720@30'),
  SANDBOX_SETTLE_MS: z.coerce.number().int().min(0).max(600_000).default(300),
  LIVE_VIDEO: z
    .string()
    .regex(/^\d{2,4}x\d{2,4}@\d{1,2}$/, 'must be WIDTHxHEIGHT@FPS like 640x360@15')
    .refine((v) => {
      const [w, h, f] = v.split(/[x@]/).map(Number) as [number, number, number];
      return w % 2 === 0 && h % 2 === 0 && w >= 16 && h >= 16 && w <= 1920 && h <= 1080 && f >= 1 && f <= 30;
    }, 'needs even sizes 16–1920 x 16–1080 and 1–30 fps')
    .default('640x360@15'),
  LIVE_VIDEO_KBPS: z.coerce.number().int().min(50).max(8000).default(600),
  /** A room goes into broadcast mode by itself above this many WebRTC listeners (0: only when a host switches it). */
  BROADCAST_AUTO_LISTENERS: z.coerce.number().int().min(0).max(1_000_000).default(0),
  /** Rooms one node broadcasts at once (each is an H.264 encoder, about a fifth of a core). */
  BROADCAST_MAX_ROOMS: z.coerce.number().int().min(1).max(1000).default(4),
  /** LL-HLS: the part and segment durations of a broadcast (s). */
  HLS_PART_SEC: z.coerce.number().min(0.2).max(2).default(0.5),
  HLS_SEGMENT_SEC: z.coerce.number().min(1).max(10).default(2),
  /** RTMP out may reach loopback and private addresses (an ingest on the operator's own network; tests). */
  RTMP_ALLOW_PRIVATE: z.enum(['0', '1']).default('0'),
  RENDER_QUEUE: z.preprocess(emptyToUndefined, z.enum(['local', 'redis'], { message: 'must be local or redis' }).optional()),
  RENDER_CONCURRENCY: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(256).optional()),
  RENDER_LEASE_MS: z.coerce.number().int().min(500).max(600_000).default(15_000),
  RENDER_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(20).default(3),
  RENDER_RETRY_MS: z.coerce.number().int().min(0).max(600_000).default(5000),
  MEMBER_TOKEN_TTL_SEC: z.coerce.number().int().min(10).max(30 * 24 * 3600).default(12 * 3600),
  MAX_CONNECTIONS_PER_ADDRESS: z.coerce.number().int().min(1).max(1_000_000).default(LIMITS['connections.address'].max),
  TRUSTED_PROXIES: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((v) => v.split(',').every((entry) => parseProxyEntry(entry.trim()) !== null), 'must be a comma-separated list of IP addresses or CIDR ranges, like 10.0.0.0/8,fd00::/8')
      .optional(),
  ),
  /** `auto`: train a release's visual model at start (when it has none) and after an ingest; `off`: never train here. */
  VISUAL_MODEL_TRAIN: z.preprocess(emptyToUndefined, z.enum(['auto', 'off'], { message: 'must be auto (train a release\'s visual model when it has none) or off (never train in this process)' }).default('auto')),
  /** Training steps per model; unset: the method's default. The budget is in steps, never seconds, so that a seed gives the same weights. */
  VISUAL_MODEL_STEPS: z.preprocess(emptyToUndefined, z.coerce.number({ message: 'must be a whole number of steps from 1 to 100000' }).int('must be a whole number of steps from 1 to 100000').min(1, 'must be a whole number of steps from 1 to 100000').max(100_000, 'must be a whole number of steps from 1 to 100000').optional()),
  /** Share of the picture a prompt's generated texture takes in rooms (the rest: the artwork it names); 0: the model is not used in rooms. */
  VISUAL_MODEL_MIX: z.preprocess(emptyToUndefined, z.coerce.number({ message: 'must be a number from 0 to 1' }).min(0, 'must be a number from 0 to 1').max(1, 'must be a number from 0 to 1').default(DEFAULT_VISUAL_MODEL_MIX)),
  VISUAL_MODEL_SEED: z.preprocess(emptyToUndefined, z.coerce.number({ message: 'must be a whole number from 0 to 4294967295' }).int('must be a whole number from 0 to 4294967295').min(0, 'must be a whole number from 0 to 4294967295').max(0xffffffff, 'must be a whole number from 0 to 4294967295').default(1)),
  S3_BUCKET: z.preprocess(
    emptyToUndefined,
    z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name: 3–63 lowercase letters, digits, dots and hyphens').optional(),
  ),
  S3_ENDPOINT: z.preprocess(
    emptyToUndefined,
    z.string().url('must be a URL like https://s3.example.com or http://127.0.0.1:9000').refine((u) => /^https?:$/.test(new URL(u).protocol), 'must start with http:// or https://').optional(),
  ),
  S3_PUBLIC: z.preprocess(emptyToUndefined, z.enum(['0', '1'], { message: 'must be 1 (download links are presigned S3 URLs) or 0 (the node serves downloads)' }).default('0')),
  S3_CACHE_MB: z.preprocess(emptyToUndefined, z.coerce.number({ message: 'must be a whole number of megabytes' }).int('must be a whole number of megabytes').min(16, 'must be at least 16 (MB)').max(16_000_000).default(2048)),
  S3_PREFIX: z.preprocess(
    emptyToUndefined,
    z.string().regex(/^([A-Za-z0-9_][A-Za-z0-9._-]*\/)*[A-Za-z0-9_][A-Za-z0-9._-]*\/?$/, 'must be folder names of letters, digits, ".", "_" and "-" separated by "/", like remixroom/prod').optional(),
  ),
});

/** An address or CIDR range ('10.0.0.0/8', 'fd00::/8', '172.18.0.5'), or null when it is neither. */
export function parseProxyEntry(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const [address = '', bits, extra] = entry.split('/');
  const version = net.isIP(address);
  if (version === 0 || extra !== undefined) return null;
  const max = version === 4 ? 32 : 128;
  const prefix = bits === undefined ? max : /^\d{1,3}$/.test(bits) ? Number(bits) : NaN;
  if (!(prefix >= 0 && prefix <= max)) return null;
  return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** A value as it may be shown in an error: a URL's password (postgres://user:secret@host) replaced by ***. */
export function withoutPassword(value: string): string {
  return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^/@:\s]*):[^@/\s]*@/i, '$1:***@');
}

function emptyToUndefined(v: unknown): unknown {
  return typeof v === 'string' && v.trim() === '' ? undefined : v;
}

export interface Config {
  readonly port: number;
  readonly host: string;
  /** Absolute path. */
  readonly dataDir: string;
  readonly redisUrl: string | null;
  /** PostgreSQL (postgres:// or postgresql://) for the store, shared by every node; null: SQLite under DATA_DIR. */
  readonly databaseUrl: string | null;
  /** Connections at most in this process's PostgreSQL pool. */
  readonly databasePoolMax: number;
  /** Longest a PostgreSQL statement may run before the server cancels it. */
  readonly databaseStatementTimeoutMs: number;
  /** Base URL used in join links; derived from host and port when unset. */
  readonly publicUrl: string | null;
  readonly logLevel: (typeof LOG_LEVELS)[number];
  /** `json`: pino's lines, for a log collector; `pretty`: one readable line an event, for a person at a terminal. */
  readonly logFormat: (typeof LOG_FORMATS)[number];
  /** Null means: generate one and keep it under DATA_DIR (embedded mode). */
  readonly tokenSecret: string | null;
  readonly ffmpegPath: string | null;
  readonly mediasoupWorkerBin: string | null;
  readonly shutdownTimeoutMs: number;
  readonly cores: number;
  /** How long an empty room stays loaded; null: the room manager's default. */
  readonly roomGraceMs: number | null;
  /** Quiet time before a changed room is saved; null: the room manager's default. */
  readonly roomSaveDebounceMs: number | null;
  /** Scale-out: how long a node's lease on storing a room lasts without renewal; null: the bridge's default. */
  readonly roomLeaseTtlMs: number | null;
  /** Size and rate of rendered video (clips and bought versions). */
  readonly renderVideo: { width: number; height: number; fps: number };
  /** How long the built-in sandbox payment provider keeps a charge pending before it settles. */
  readonly sandboxSettleMs: number;
  /** The visuals as live VP8 video on the SFU (for viewers who cannot draw): size, rate, bitrate. */
  readonly liveVideo: { width: number; height: number; fps: number; bitrateKbps: number };
  /**
   * Broadcast mode (stage on WebRTC, audience on LL-HLS, RTMP out): above `autoListeners` WebRTC
   * listeners a room switches by itself (0: never); the HLS part and segment durations; whether RTMP
   * out may reach private addresses.
   */
  readonly broadcast: { autoListeners: number; maxRooms: number; partSec: number; segmentSec: number; rtmpAllowPrivate: boolean };
  /**
   * Where render jobs wait: `local` (in the server process) or `redis` (separate
   * `npm run renderer` processes take them; the server does not render). Default:
   * `redis` when REDIS_URL is set (nodes share one store, so one queue must hand
   * each render to one process), `local` otherwise.
   */
  readonly renderQueue: 'local' | 'redis';
  /** Renders at once per process; null: the cores less one (at least 1). */
  readonly renderConcurrency: number | null;
  /** Redis queue: how long a renderer's claim on a job lasts without a heartbeat (a renderer that dies is noticed after this). */
  readonly renderLeaseMs: number;
  /** Attempts before a render is given up as failed (a renderer that died counts one in the Redis queue). */
  readonly renderMaxAttempts: number;
  /** Wait before a failed render runs again; four times longer each later time (at most 10 minutes). */
  readonly renderRetryMs: number;
  /**
   * Longest life of a member token; the web app refreshes it before then for as long as the member
   * may stay (their link's or token's life), and open connections end when theirs expires.
   */
  readonly memberTokenTtlSec: number;
  /** Sync and socket.io connections held at once from one address, on one node. */
  readonly maxConnectionsPerAddress: number;
  /**
   * Proxies (addresses or CIDR ranges, besides loopback, which is always trusted) whose
   * X-Forwarded-For names the client: a load balancer on another machine. Limits that belong
   * to addresses count the address it forwards; anyone else's header is ignored.
   */
  readonly trustedProxies: readonly string[];
  /**
   * Object storage (S3_BUCKET set): renders and release assets in an S3-compatible bucket,
   * with a local cache; null: files under DATA_DIR. Credentials and region come from the
   * AWS SDK's own sources (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION, …).
   */
  readonly s3: S3Config | null;
  /**
   * The visual model of each release (server/catalog/visual-models.ts): `train` `auto` trains one
   * for a release without one (at start, after an ingest), `off` never trains in this process;
   * `steps` null: the method's default; `seed` of every training.
   */
  readonly visualModel: { readonly train: 'auto' | 'off'; readonly steps: number | null; readonly seed: number; readonly mix: number };
}

export interface S3Config {
  readonly bucket: string;
  /** For a store other than AWS (MinIO, Ceph, R2); path-style addressing. Null: AWS. */
  readonly endpoint: string | null;
  /** Download links are presigned S3 URLs (the store or a CDN serves the bytes) instead of the node proxying them. */
  readonly public: boolean;
  /** The local cache's size limit. */
  readonly cacheMb: number;
  /** Prepended to every key ('' or a folder ending with '/'): several installations in one bucket. */
  readonly prefix: string;
  /** Never read from the environment (the SDK reads AWS_*): for tests and tools that pass them. */
  readonly credentials?: { accessKeyId: string; secretAccessKey: string };
  readonly region?: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/**
 * Reads and validates the environment once; throws ConfigError naming the variable and what would be right.
 * `stdoutIsTTY` picks LOG_FORMAT's default: pretty for a person at a terminal, json when the output goes elsewhere.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd(), stdoutIsTTY: boolean = process.stdout.isTTY === true): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const name = String(issue.path[0] ?? 'environment');
    const given = env[name];
    throw new ConfigError(`${name}=${JSON.stringify(withoutPassword(given ?? ''))} ${issue.message}`);
  }
  const e = parsed.data;
  if (!e.S3_BUCKET) {
    for (const name of ['S3_ENDPOINT', 'S3_PREFIX'] as const) {
      if (e[name]) throw new ConfigError(`${name}=${JSON.stringify(env[name])} needs S3_BUCKET (the bucket to store objects in); set S3_BUCKET or remove ${name}`);
    }
    if (e.S3_PUBLIC === '1') throw new ConfigError('S3_PUBLIC="1" needs S3_BUCKET (presigned links point into a bucket); set S3_BUCKET or remove S3_PUBLIC');
  }
  if (e.RENDER_QUEUE === 'redis' && !e.REDIS_URL) throw new ConfigError('RENDER_QUEUE="redis" needs REDIS_URL (the queue lives in Redis); set REDIS_URL or RENDER_QUEUE=local');
  return Object.freeze({
    port: e.PORT,
    host: e.HOST,
    dataDir: path.resolve(cwd, e.DATA_DIR),
    redisUrl: e.REDIS_URL ?? null,
    databaseUrl: e.DATABASE_URL ?? null,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseStatementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
    publicUrl: e.PUBLIC_URL ? e.PUBLIC_URL.replace(/\/+$/, '') : null,
    logLevel: e.LOG_LEVEL,
    logFormat: e.LOG_FORMAT ?? (stdoutIsTTY ? 'pretty' : 'json'),
    tokenSecret: e.TOKEN_SECRET ?? null,
    ffmpegPath: e.FFMPEG_PATH ?? null,
    mediasoupWorkerBin: e.MEDIASOUP_WORKER_BIN ?? null,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    cores: e.CORES,
    roomGraceMs: e.ROOM_GRACE_MS ?? null,
    roomSaveDebounceMs: e.ROOM_SAVE_DEBOUNCE_MS ?? null,
    roomLeaseTtlMs: e.ROOM_LEASE_TTL_MS ?? null,
    renderVideo: (([width, height, fps]) => ({ width: width!, height: height!, fps: fps! }))(e.RENDER_VIDEO.split(/[x@]/).map(Number)),
    sandboxSettleMs: e.SANDBOX_SETTLE_MS,
    liveVideo: (([width, height, fps]) => ({ width: width!, height: height!, fps: fps!, bitrateKbps: e.LIVE_VIDEO_KBPS }))(e.LIVE_VIDEO.split(/[x@]/).map(Number)),
    broadcast: Object.freeze({ autoListeners: e.BROADCAST_AUTO_LISTENERS, maxRooms: e.BROADCAST_MAX_ROOMS, partSec: e.HLS_PART_SEC, segmentSec: Math.max(e.HLS_SEGMENT_SEC, e.HLS_PART_SEC), rtmpAllowPrivate: e.RTMP_ALLOW_PRIVATE === '1' }),
    renderQueue: e.RENDER_QUEUE ?? (e.REDIS_URL ? 'redis' : 'local'),
    renderConcurrency: e.RENDER_CONCURRENCY ?? null,
    renderLeaseMs: e.RENDER_LEASE_MS,
    renderMaxAttempts: e.RENDER_MAX_ATTEMPTS,
    renderRetryMs: e.RENDER_RETRY_MS,
    memberTokenTtlSec: e.MEMBER_TOKEN_TTL_SEC,
    maxConnectionsPerAddress: e.MAX_CONNECTIONS_PER_ADDRESS,
    trustedProxies: Object.freeze(e.TRUSTED_PROXIES ? e.TRUSTED_PROXIES.split(',').map((v) => v.trim()) : []),
    s3: e.S3_BUCKET
      ? Object.freeze({
          bucket: e.S3_BUCKET,
          endpoint: e.S3_ENDPOINT ?? null,
          public: e.S3_PUBLIC === '1',
          cacheMb: e.S3_CACHE_MB,
          prefix: e.S3_PREFIX ? `${e.S3_PREFIX.replace(/\/+$/, '')}/` : '',
        })
      : null,
    visualModel: Object.freeze({ train: e.VISUAL_MODEL_TRAIN, steps: e.VISUAL_MODEL_STEPS ?? null, seed: e.VISUAL_MODEL_SEED, mix: e.VISUAL_MODEL_MIX }),
  });
}

/** A config for tests and tools: the defaults, with overrides; no visual model is trained unless asked (minutes of CPU). */
export function configFor(overrides: Partial<Config> & { dataDir: string }): Config {
  return Object.freeze({ ...loadConfig({ VISUAL_MODEL_TRAIN: 'off' }, process.cwd(), false), ...overrides });
}
