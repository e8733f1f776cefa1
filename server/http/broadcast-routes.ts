// A room's broadcast over HTTP: the host switches broadcast mode
// (PUT /api/rooms/:roomId/broadcast), anyone sees whether it is on
// (GET /api/rooms/:roomId/broadcast; members also get the playlists' addresses
// with the room's listen key), and the host sends the room to an RTMP ingest
// (PUT/GET/DELETE /api/rooms/:roomId/rtmp). The playlists and media themselves
// are served before Express, by hls-server.ts (the audience's hot path).
import { Router, type Request } from 'express';
import { z } from 'zod';
import type { MemberDirectory } from '../auth/members.ts';
import type { TokenSigner } from '../auth/tokens.ts';
import type { Limits } from '../limits/limits.ts';
import { RTMP_KEY_MAX_CHARS, RtmpTargetError, checkRtmpTarget } from '../live/rtmp-target.ts';
import { BroadcastRefusedError, type LiveStreams } from '../live/live-streams.ts';
import type { RoomManager } from '../rooms/room-manager.ts';
import type { Store } from '../store/store.ts';
import { HttpError } from './http-error.ts';
import type { ListenKeys } from './hls-server.ts';
import { memberOf, openRoom, parse, roomIdOf, take } from './route-helpers.ts';

export interface BroadcastRoutesDeps {
  store: Store;
  manager: RoomManager;
  members: MemberDirectory;
  signer: TokenSigner;
  limits: Limits;
  live: LiveStreams;
  /** The rooms' listen keys (shared with the HLS server, which checks them). */
  keys: ListenKeys;
  /** RTMP_ALLOW_PRIVATE: pushes may reach loopback and private addresses. */
  rtmpAllowPrivate: boolean;
}

const BroadcastBody = z.object({ enabled: z.boolean() }).strict();
// Checked in full by checkRtmpTarget; here only their type and size (the key is never echoed back).
const RtmpBody = z.object({ url: z.string().min(1).max(2048), key: z.string().min(1).max(RTMP_KEY_MAX_CHARS) }).strict();

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
  const listenKey = (roomId: string) => deps.keys.of(roomId);

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

  /** The caller, when the store knows them as a host of the room now (never as their token says). */
  const requireHost = async (req: Request, roomId: string, action = 'send the room to a streaming platform') => {
    const { claims, standing } = await memberOf(deps.members, deps.signer, req, roomId, "the host's token");
    if (standing.role !== 'host') throw new HttpError('forbidden', `only a host can ${action}`);
    return claims;
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
    const claims = await requireHost(req, roomId, 'switch broadcast mode');
    const { enabled } = parse(BroadcastBody, req.body);
    await take(limits, ['room.moderate.member'], { member: claims.sub });
    const refused = enabled ? deps.live.broadcastRefusal(roomId) : null;
    if (refused) throw new HttpError('not_ready', refused, { status: 503, retryAfterMs: 60_000 });
    const room = await openRoom(deps.manager, roomId);
    // The rules carry it to every member and every node; the node serving the room starts the encoder.
    room.setBroadcast(enabled);
    res.json(statusOf(roomId, enabled, true));
  });


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
    const push = await deps.live.startRtmp(room, target).catch((err: unknown) => {
      // Another room took this node's last broadcast meanwhile.
      if (err instanceof BroadcastRefusedError) throw new HttpError('not_ready', err.message, { status: 503, retryAfterMs: 60_000 });
      throw err;
    });
    res.status(201).json({ roomId, push });
  });

  router.delete('/:roomId/rtmp', async (req, res) => {
    const roomId = roomIdOf(req);
    await requireHost(req, roomId);
    res.json({ roomId, push: await deps.live.stopRtmp(roomId) });
  });

  return router;
}
