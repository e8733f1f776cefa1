// A broadcast's playlists and media, answered straight from node:http, before
// Express: the audience's requests are the hottest path the server has (a
// low-latency player makes about four a second, every viewer at once when a
// part lands), and Express's routing, pino-http's logger per request and the
// body's SHA-1 ETag cost about 180 µs a request where this costs a fraction
// (bench/README.md, hls-viewers). What it does is what the routes did:
//   GET /api/rooms/:roomId/hls/index.m3u8?k=                 the multivariant playlist
//   GET /api/rooms/:roomId/hls/<audio|video>/index.m3u8?k=   a media playlist (blocking reloads: _HLS_msn, _HLS_part)
//   GET /api/rooms/:roomId/hls/<audio|video>/<file>?k=       init-<n>.mp4, seg-<msn>.m4s, part-<msn>.<i>.m4s
// with the room's listen key, the per-address limits, the API's error bodies
// (and Retry-After), cache headers a CDN can use, and the request counted in
// /metrics. These requests are not logged one by one.
import crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ApiErrorBody } from '../../shared/errors.ts';
import type { RateLimitName } from '../../shared/limits.ts';
import type { Limits } from '../limits/limits.ts';
import type { LiveStreams } from '../live/live-streams.ts';
import { HlsError, PLAYLIST_CONTENT_TYPE, hlsCacheControl, multivariantPlaylist, parseBlockingQuery } from '../live/hls/ll-hls.ts';
import type { Logger } from '../logger.ts';
import type { Metrics } from '../metrics.ts';
import { HttpError } from './http-error.ts';

/** /api/rooms/<roomId>/hls/index.m3u8 or /api/rooms/<roomId>/hls/<rendition>/<file>, then the query. */
const HLS_URL = /^\/api\/rooms\/([A-Za-z0-9_-]{8,32})\/hls\/(?:(index\.m3u8)|(audio|video)\/([A-Za-z0-9.-]{1,48}))(?:\?(.*))?$/;
/** A listen key: 22 characters of base64url (128 bits of an HMAC). */
const LISTEN_KEY = /^[A-Za-z0-9_-]{22}$/;
/** How long a request for a broadcast that is starting waits for its encoder. */
const START_WAIT_MS = 5000;
const ROUTE = '/api/rooms/:roomId/hls';
const FORBIDDEN = "this needs the room's listen link (the playlist address a member's page or the host gives)";

/**
 * Each room's listen key: an HMAC of the room id under a key derived from the token secret, the
 * same for every viewer (a CDN keeps one copy of each file). Kept once made: the HMAC was a sixth
 * of the time a request took.
 */
export class ListenKeys {
  readonly #base: Buffer;
  readonly #made = new Map<string, string>();

  constructor(secret: string) {
    this.#base = Buffer.from(crypto.hkdfSync('sha256', secret, 'remixroom', 'hls-listen-key-v1', 32));
  }

  of(roomId: string): string {
    let key = this.#made.get(roomId);
    if (key === undefined) {
      key = crypto.createHmac('sha256', this.#base).update(roomId).digest('base64url').slice(0, 22);
      // Bounded: a flood of room ids costs a recomputation, never memory.
      if (this.#made.size >= 10_000) this.#made.clear();
      this.#made.set(roomId, key);
    }
    return key;
  }

  /** Whether `k` is the room's key (its shape first: timingSafeEqual compares bytes). */
  matches(roomId: string, k: string | null): boolean {
    return k !== null && LISTEN_KEY.test(k) && crypto.timingSafeEqual(Buffer.from(k), Buffer.from(this.of(roomId)));
  }
}

export interface HlsServerDeps {
  live: LiveStreams;
  limits: Limits;
  keys: ListenKeys;
  metrics: Metrics;
  log: Logger;
}

/** A request handler for the HLS paths; answers false for any other request (Express takes it). */
export function hlsServer(deps: HlsServerDeps): (req: IncomingMessage, res: ServerResponse) => boolean {
  return (req, res) => {
    const url = req.url;
    if (!url || !url.startsWith('/api/rooms/') || (req.method !== 'GET' && req.method !== 'HEAD')) return false;
    const m = HLS_URL.exec(url);
    if (!m) return false;
    const end = deps.metrics.httpDuration.startTimer();
    res.once('finish', () => {
      end({ method: req.method!, route: ROUTE });
      deps.metrics.httpRequests.inc({ method: req.method!, route: ROUTE, status: String(res.statusCode) });
    });
    serve(deps, req, res, m).catch((err: unknown) => sendError(deps, req, res, err));
    return true;
  };
}

async function serve(deps: HlsServerDeps, req: IncomingMessage, res: ServerResponse, m: RegExpExecArray): Promise<void> {
  const roomId = m[1]!;
  const renditionName = m[3];
  const file = m[4];
  const isPlaylist = m[2] !== undefined || file === 'index.m3u8';
  const params = new URLSearchParams(m[5] ?? '');
  const limit: RateLimitName = isPlaylist ? 'hls.playlist.address' : 'hls.media.address';
  const verdict = await deps.limits.take([limit], { address: deps.limits.addressOf(req) });
  if (!verdict.ok) throw HttpError.limited(verdict.limit, verdict.retryAfterMs);
  const k = params.get('k');
  if (!deps.keys.matches(roomId, k)) throw new HttpError('forbidden', FORBIDDEN);
  const access = `k=${k}`;

  const broadcast = deps.live.hls(roomId);
  if (!broadcast) throw new HttpError('not_found', 'this room is not broadcasting now');
  if (!(await broadcast.whenStarted(START_WAIT_MS))) throw new HttpError('not_ready', 'the broadcast is starting; try again in a moment', { status: 503, retryAfterMs: 1000 });

  if (renditionName === undefined) {
    const size = broadcast.videoSize;
    const variants = broadcast.renditionNames.map((name) => {
      const r = broadcast.rendition(name)!;
      return { name, codecs: r.codecs, bandwidth: r.bandwidth, ...(name === 'video' ? { resolution: `${size.width}x${size.height}` } : {}) };
    });
    return send(req, res, 200, PLAYLIST_CONTENT_TYPE, hlsCacheControl('playlist'), multivariantPlaylist(variants, access));
  }
  const rendition = broadcast.rendition(renditionName);
  if (!rendition) throw new HttpError('not_found', 'no such rendition');
  if (isPlaylist) {
    const query = parseBlockingQuery(params);
    const text = await rendition.playlist({ ...query, access });
    // A blocking reload's address names its msn/part: any later answer to it lists that part too.
    return send(req, res, 200, PLAYLIST_CONTENT_TYPE, hlsCacheControl(query.msn !== undefined ? 'blocking' : 'playlist'), text);
  }
  // The part a preload hint names is held until it exists (players fetch it ahead); anything else answers at once.
  const found = await rendition.awaitFile(file!);
  if (!found) throw new HttpError('not_found', 'no such part or segment (not made yet, or dropped from the window)');
  // Names are never reused (numbered from the broadcast's start): the name is the entity tag.
  const etag = `"${renditionName}-${file}"`;
  res.setHeader('ETag', etag);
  if (req.headers['if-none-match'] === etag) return send(req, res, 304, found.contentType, hlsCacheControl('media'), null);
  return send(req, res, 200, found.contentType, hlsCacheControl(found.immutable ? 'media' : 'playlist'), found.body);
}

function send(req: IncomingMessage, res: ServerResponse, status: number, contentType: string, cacheControl: string, body: string | Buffer | null): void {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  res.statusCode = status;
  res.setHeader('Content-Type', contentType);
  res.setHeader('Cache-Control', cacheControl);
  res.setHeader('X-Content-Type-Options', 'nosniff');
  // A player on another site (an embed of the listen link) may read it: it is public with the key.
  res.setHeader('Access-Control-Allow-Origin', '*');
  if (bytes) res.setHeader('Content-Length', bytes.length);
  res.end(req.method === 'HEAD' || !bytes ? undefined : bytes);
}

function sendError(deps: HlsServerDeps, req: IncomingMessage, res: ServerResponse, thrown: unknown): void {
  let err: HttpError;
  if (thrown instanceof HttpError) err = thrown;
  else if (thrown instanceof HlsError) {
    err = thrown.status === 400 ? new HttpError('bad_request', thrown.message) : thrown.status === 404 ? new HttpError('not_found', thrown.message) : new HttpError('not_ready', thrown.message, { status: 503, retryAfterMs: 1000 });
  } else {
    deps.log.error({ err: thrown, url: req.url?.replace(/([?&]k=)[^&]*/, '$1[redacted]') }, 'unhandled error serving a broadcast');
    err = new HttpError('internal', 'something went wrong on our side; it has been logged');
  }
  if (res.headersSent) {
    res.end();
    return;
  }
  const body: ApiErrorBody = { error: { code: err.code, message: err.message, ...(err.limit ? { limit: err.limit } : {}), ...(err.retryAfterSec !== null ? { retryAfterSec: err.retryAfterSec } : {}) } };
  if (err.retryAfterSec !== null) res.setHeader('Retry-After', String(err.retryAfterSec));
  // A part asked for a moment early exists a moment later: a 404 must not be kept.
  send(req, res, err.status, 'application/json; charset=utf-8', hlsCacheControl(err.status === 404 ? 'not-found' : 'error'), JSON.stringify(body));
}
