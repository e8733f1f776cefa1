// A room's broadcast over HTTP: the host switches broadcast mode
// (PUT /api/rooms/:roomId/broadcast), anyone sees whether it is on
// (GET /api/rooms/:roomId/broadcast; members also get the playlist's address
// with its listen key), and players read the LL-HLS playlists and media:
//   /api/rooms/:roomId/hls/index.m3u8            the multivariant playlist
//   /api/rooms/:roomId/hls/<rendition>/index.m3u8 a media playlist (blocking reloads: _HLS_msn, _HLS_part)
//   /api/rooms/:roomId/hls/<rendition>/<file>     init-<n>.mp4, seg-<msn>.m4s, part-<msn>.<i>.m4s
// Reading them needs the room's listen key (`?k=`): a member's page gets it from
// the status, a host can hand the address to anyone (a listen link). It is the
// same for every viewer, so a CDN caches one copy of each file. A part that does
// not exist yet, or was dropped, is a 404 that costs nothing; playlist and media
// requests are limited per address.
import crypto from 'node:crypto';
import { Router, type Request, type Response } from 'express';
import { z } from 'zod';
import type { MemberDirectory } from '../auth/members.ts';
import type { TokenSigner } from '../auth/tokens.ts';
import type { Limits } from '../limits/limits.ts';
import { RTMP_KEY_MAX_CHARS, RtmpTargetError, checkRtmpTarget } from '../live/rtmp-target.ts';
import { HlsError, PLAYLIST_CONTENT_TYPE, hlsCacheControl, multivariantPlaylist, parseBlockingQuery } from '../live/hls/ll-hls.ts';
import type { LiveStreams } from '../live/live-streams.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { Store } from '../store/store.ts';
import { HttpError } from './http-error.ts';
import { memberOf, openRoom, parse, roomIdOf, take } from './route-helpers.ts';

export interface BroadcastRoutesDeps {
  store: Store;
  manager: RoomManager;
  members: MemberDirectory;
  signer: TokenSigner;
  limits: Limits;
  live: LiveStreams;
  /** The key listen keys are derived from (the token secret). */
  secret: string;
  /** RTMP_ALLOW_PRIVATE: pushes may reach loopback and private addresses. */
  rtmpAllowPrivate: boolean;
}

const BroadcastBody = z.object({ enabled: z.boolean() }).strict();
// Checked in full by checkRtmpTarget; here only their type and size (the key is never echoed back).
const RtmpBody = z.object({ url: z.string().min(1).max(2048), key: z.string().min(1).max(RTMP_KEY_MAX_CHARS) }).strict();
const RENDITION = /^(audio|video)$/;
/** A listen key: 22 characters of base64url (128 bits of an HMAC). */
const LISTEN_KEY = /^[A-Za-z0-9_-]{22}$/;
/** How long a request for a broadcast that is starting waits for its encoder. */
const START_WAIT_MS = 5000;

export interface BroadcastStatusBody {
  roomId: string;
  enabled: boolean;
  /** Whether this node can encode a broadcast at all, and why not. */
  unavailable: string | null;
  /** The encoder runs (on this node). */
  live: boolean;
  /** Why this node's encoder last gave up (the room then left broadcast mode), if it did. */
  failure: string | null;
  /** The multivariant playlist, with the listen key: members only. */
  playlist?: string;
  /** The renditions' own playlists (audio alone; video with the sound), with the key: members only. */
  renditions?: Record<string, string>;
}

export function broadcastRoutes(deps: BroadcastRoutesDeps): Router {
  const router = Router();
  const { limits } = deps;
  const listenKeyBase = Buffer.from(crypto.hkdfSync('sha256', deps.secret, 'remixroom', 'hls-listen-key-v1', 32));
  const listenKey = (roomId: string) => crypto.createHmac('sha256', listenKeyBase).update(roomId).digest('base64url').slice(0, 22);

  const statusOf = (roomId: string, enabled: boolean, withKey: boolean): BroadcastStatusBody => {
    const b = deps.live.broadcast(roomId);
    const body: BroadcastStatusBody = { roomId, enabled, unavailable: deps.live.broadcastUnavailable, live: b?.live ?? false, failure: b?.failure ?? null };
    if (withKey && enabled) {
      const k = listenKey(roomId);
      body.playlist = `/api/rooms/${roomId}/hls/index.m3u8?k=${k}`;
      const names = b && b.renditionNames.length > 0 ? b.renditionNames : ['audio', 'video'];
      body.renditions = Object.fromEntries(names.map((name) => [name, `/api/rooms/${roomId}/hls/${name}/index.m3u8?k=${k}`]));
    }
    return body;
  };

  /** Whether the room is in broadcast mode; a member (bearer token) also gets the playlists' addresses. */
  router.get('/:roomId/broadcast', async (req, res) => {
    const roomId = roomIdOf(req);
    const withKey = req.headers.authorization !== undefined;
    if (withKey) {
      // A member may load the room (as its page's connections do); the answer is the room's rules.
      await memberOf(deps.members, deps.signer, req, roomId);
      const room = await openRoom(deps.manager, roomId);
      res.json(statusOf(roomId, room.rules.broadcast, true));
      return;
    }
    // Anyone else: as this node sees it, never loading the room (a loaded room in broadcast mode starts an encoder).
    await take(limits, ['hls.playlist.address'], { address: limits.addressOf(req) });
    const loaded = deps.manager.get(roomId);
    if (!loaded && !(await deps.store.getRoomSummary(roomId))) throw new HttpError('not_found', `no room "${roomId}"`);
    res.json(statusOf(roomId, loaded ? loaded.rules.broadcast : false, false));
  });

  /** The host switches broadcast mode: the stage stays on WebRTC, listeners move to HLS. */
  router.put('/:roomId/broadcast', async (req, res) => {
    const roomId = roomIdOf(req);
    const { claims, standing } = await memberOf(deps.members, deps.signer, req, roomId, "the host's token");
    if (standing.role !== 'host') throw new HttpError('forbidden', 'only a host can switch broadcast mode');
    const { enabled } = parse(BroadcastBody, req.body);
    await take(limits, ['room.moderate.member'], { member: claims.sub });
    const refused = enabled ? deps.live.broadcastRefusal(roomId) : null;
    if (refused) throw new HttpError('not_ready', refused, { status: 503, retryAfterMs: 60_000 });
    const room = await openRoom(deps.manager, roomId);
    // The rules carry it to every member and every node; the node serving the room starts the encoder.
    room.setBroadcast(enabled);
    res.json(statusOf(roomId, enabled, true));
  });

  const requireHost = async (req: Request, roomId: string) => {
    const { claims, standing } = await memberOf(deps.members, deps.signer, req, roomId, "the host's token");
    if (standing.role !== 'host') throw new HttpError('forbidden', 'only a host can send the room to a streaming platform');
    return claims;
  };

  /** Host: the room's push to a streaming platform, as it stands (never the key). */
  router.get('/:roomId/rtmp', async (req, res) => {
    const roomId = roomIdOf(req);
    await requireHost(req, roomId);
    res.json({ roomId, push: deps.live.rtmpState(roomId) });
  });

  /** Host: sends the room to an RTMP ingest (YouTube, Twitch, any RTMP server); replaces a push already running. */
  router.put('/:roomId/rtmp', async (req, res) => {
    const roomId = roomIdOf(req);
    const claims = await requireHost(req, roomId);
    const { url, key } = parse(RtmpBody, req.body);
    await take(limits, ['rtmp.start.member'], { member: claims.sub });
    const refused = deps.live.broadcastRefusal(roomId);
    if (refused) throw new HttpError('not_ready', refused, { status: 503, retryAfterMs: 60_000 });
    let target;
    try {
      target = await checkRtmpTarget(url, key, { allowPrivate: deps.rtmpAllowPrivate });
    } catch (err) {
      if (err instanceof RtmpTargetError) throw new HttpError('bad_request', err.message);
      throw err;
    }
    const room = await openRoom(deps.manager, roomId);
    const push = await deps.live.startRtmp(room, target);
    res.status(201).json({ roomId, push });
  });

  router.delete('/:roomId/rtmp', async (req, res) => {
    const roomId = roomIdOf(req);
    await requireHost(req, roomId);
    res.json({ roomId, push: await deps.live.stopRtmp(roomId) });
  });

  const checkKey = (req: Request, roomId: string) => {
    const k = req.query['k'];
    const expected = listenKey(roomId);
    // The shape first: timingSafeEqual compares bytes, and a key of other characters is no key.
    if (typeof k !== 'string' || !LISTEN_KEY.test(k) || !crypto.timingSafeEqual(Buffer.from(k), Buffer.from(expected))) {
      throw new HttpError('forbidden', "this needs the room's listen link (the playlist address a member's page or the host gives)");
    }
    return k;
  };

  /**
   * The broadcast on this node: 404 when the room does not broadcast; one that is starting (its
   * encoder's first second) is waited for a little, then 503 with a time to come back.
   */
  const broadcastOf = async (roomId: string) => {
    const b = deps.live.hls(roomId);
    if (!b) throw new HttpError('not_found', 'this room is not broadcasting now');
    if (!(await b.whenStarted(START_WAIT_MS))) throw new HttpError('not_ready', 'the broadcast is starting; try again in a moment', { status: 503, retryAfterMs: 1000 });
    return b;
  };

  const sendPlaylist = (res: Response, text: string, blocking: boolean) => {
    res.setHeader('Content-Type', PLAYLIST_CONTENT_TYPE);
    // A blocking reload's address names its msn/part: its answer never changes, and a CDN may keep it.
    res.setHeader('Cache-Control', hlsCacheControl(blocking ? 'blocking' : 'playlist'));
    res.send(text);
  };

  router.get('/:roomId/hls/index.m3u8', async (req, res) => {
    const roomId = roomIdOf(req);
    await take(limits, ['hls.playlist.address'], { address: limits.addressOf(req) });
    const k = checkKey(req, roomId);
    const b = await broadcastOf(roomId);
    const size = b.videoSize;
    const variants = b.renditionNames.map((name) => {
      const r = b.rendition(name)!;
      return { name, codecs: r.codecs, bandwidth: r.bandwidth, ...(name === 'video' ? { resolution: `${size.width}x${size.height}` } : {}) };
    });
    sendPlaylist(res, multivariantPlaylist(variants, `k=${k}`), false);
  });

  router.get('/:roomId/hls/:rendition/:file', async (req, res) => {
    const roomId = roomIdOf(req);
    const renditionName = req.params['rendition'];
    const file = req.params['file'];
    const isPlaylist = file === 'index.m3u8';
    await take(limits, [isPlaylist ? 'hls.playlist.address' : 'hls.media.address'], { address: limits.addressOf(req) });
    const k = checkKey(req, roomId);
    if (typeof renditionName !== 'string' || !RENDITION.test(renditionName) || typeof file !== 'string') throw new HttpError('not_found', 'no such rendition');
    const rendition = (await broadcastOf(roomId)).rendition(renditionName);
    if (!rendition) throw new HttpError('not_found', 'no such rendition');
    if (isPlaylist) {
      let text: string;
      try {
        const query = parseBlockingQuery(new URL(req.originalUrl, 'http://x').searchParams);
        text = await rendition.playlist({ ...query, access: `k=${k}` });
      } catch (err: unknown) {
        throw hlsHttpError(err);
      }
      sendPlaylist(res, text, query(req));
      return;
    }
    // The part a preload hint names is held until it exists (players fetch it ahead); anything else answers at once.
    const found = await rendition.awaitFile(file);
    if (!found) {
      res.setHeader('Cache-Control', hlsCacheControl('not-found'));
      throw new HttpError('not_found', 'no such part or segment (not made yet, or dropped from the window)');
    }
    res.setHeader('Content-Type', found.contentType);
    res.setHeader('Cache-Control', hlsCacheControl(found.immutable ? 'media' : 'playlist'));
    // Names are never reused (numbered from the broadcast's start): the name is the entity tag, and
    // Express does not hash every part it sends to make one.
    res.setHeader('ETag', `"${renditionName}-${file}"`);
    res.send(found.body);
  });

  return router;
}

const query = (req: Request) => req.query['_HLS_msn'] !== undefined;

function hlsHttpError(err: unknown): unknown {
  if (!(err instanceof HlsError)) return err;
  if (err.status === 400) return new HttpError('bad_request', err.message);
  if (err.status === 404) return new HttpError('not_found', err.message);
  return new HttpError('not_ready', err.message, { status: 503, retryAfterMs: 1000 });
}
