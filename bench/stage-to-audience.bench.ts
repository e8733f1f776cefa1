// `npm run bench -- stage-to-audience [--samples=25] [--threshold-db=-50]`
//
// From a remixer's change on stage to the audience hearing it: (a) the first
// LL-HLS part that carries it, (b) the first WebRTC packet (as control-latency).
// A real server (child process, demo release) plays one room with every stem
// muted, in broadcast mode (one ffmpeg encodes its HLS). The benchmark holds
// the remixer (a stock WebsocketProvider), a WebRTC listener (werift, every Opus
// packet decoded: bench/support/webrtc-listener.ts, shared with control-latency)
// and one HLS viewer of the **audio** rendition (the video rendition carries the
// same AAC from the same encoder: audio alone is enough to time sound), which
// follows the live edge as hls.js does in low-latency mode: blocking reload for
// the next part, then GET it. Every part is decoded (init + the part before it +
// the part, through ffmpeg to 48 kHz PCM; the earlier part only primes the AAC
// decoder and is cut off) into 10 ms windows of level.
//
// Each sample unmutes every stem in one change at wall time t0 and finds:
//  - HLS: the first part (in stream order, after the silence verified since the
//    last mute) with a 10 ms window at or above `--threshold-db` dBFS. `hlsListedMs` = when the blocking reload that
//    first listed it returned − t0 (the part is available to a player);
//    `hlsFetchedMs` = when its GET completed − t0 (the player has it: the
//    headline). `mediaMs` = where the change landed in media time: the part's
//    PROGRAM-DATE-TIME (+ the parts before it in its segment) + the offset of
//    its first loud window − t0 — the mixer applying the change, before any
//    encoding; `packagingMs` = fetched − the end of that part in media time:
//    the encoder's delay (AAC look-ahead, the 512 ms fragment filling up),
//    the splitter, the playlist and the loopback GET.
//  - WebRTC: the first RTP packet after t0 whose decoded level is at or above the
//    threshold (as control-latency).
// Then it mutes them again, waits until both paths are silent (two whole silent
// parts after the mute on HLS), and waits a random 0–600 ms so that changes land
// anywhere in a part. Samples take about 5 s each.
import { spawn } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { intArg, parseArgs, percentile, round, sleep } from './support/proc.ts';
import { openBroadcastRoom } from './support/broadcast-room.ts';
import { HttpConn, nextPart, parseMediaPlaylist } from './support/hls-playlist.ts';
import { joinWithInvite, startBenchServer } from './support/server.ts';
import { listenOverWebRtc, waitFor, waitUntil, type WebRtcListener } from './support/webrtc-listener.ts';

/** The goal (issue 16): p95 under 3 s from a change to the first HLS part that carries it. */
const GOAL_HLS_P95_MS = 3000;
const SAMPLE_TIMEOUT_MS = 10_000;
const WINDOW_MS = 10;
const RATE = 48_000;

/** Wall clock with sub-millisecond resolution (PROGRAM-DATE-TIME is wall clock). */
const nowMs = () => performance.timeOrigin + performance.now();

interface HlsPart {
  msn: number;
  index: number;
  startWallMs: number;
  durationMs: number;
  listedAt: number;
  fetchedAt: number;
  bytes: Buffer;
  /** Level of each 10 ms window (dBFS), once decoded. */
  levels: number[] | null;
}

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['samples', 'threshold-db']);
  const samples = intArg(args, 'samples', 25, 3, 1000);
  const thresholdDb = Number(args.get('threshold-db') ?? -50);
  if (!(thresholdDb < 0 && thresholdDb > -120)) throw new Error('--threshold-db must be between -120 and 0');
  const ffmpeg = process.env['FFMPEG_PATH'] || 'ffmpeg';

  const server = await startBenchServer();
  let room: Awaited<ReturnType<typeof openBroadcastRoom>> | null = null;
  let listener: WebRtcListener | null = null;
  let following = true;
  let follower: Promise<void> | null = null;
  const conn = new HttpConn('127.0.0.1', Number(new URL(server.url).port), { 'X-Forwarded-For': '10.200.0.1' });
  try {
    room = await openBroadcastRoom(server.url, { muted: true });
    listener = await listenOverWebRtc(server.url, room.room.roomId, await joinWithInvite(server.url, room.room, 'Listener'));
    const received = listener.received;

    // The HLS viewer: follows the live edge, keeps every part (bounded) with its times, decodes each.
    const path = room.renditions['audio']!;
    const playlistBase = path.split('?')[0]!;
    const access = path.split('?')[1]!;
    const dir = path.slice(0, path.lastIndexOf('/') + 1);
    const parts: HlsPart[] = [];
    let hlsErrors = 0;
    let decodeErrors = 0;
    let init: Buffer | null = null;
    let decoding = Promise.resolve();
    follower = (async () => {
      let current: { msn: number; index: number } | null = null;
      while (following) {
        try {
          if (!current) {
            const a = await conn.get(path);
            const pl = parseMediaPlaylist(a.body.toString('utf8'));
            const last = pl.parts.at(-1);
            if (a.status !== 200 || !last || !pl.mapUri) {
              await sleep(200);
              continue;
            }
            const i = await conn.get(dir + pl.mapUri);
            if (i.status !== 200) throw new Error(`init ${i.status}`);
            init = Buffer.from(i.body);
            current = { msn: last.msn, index: last.index };
            continue;
          }
          const a = await conn.get(`${playlistBase}?${access}&_HLS_msn=${current.msn}&_HLS_part=${current.index + 1}`);
          const listedAt = nowMs();
          if (a.status !== 200) throw new Error(`reload ${a.status}`);
          const pl = parseMediaPlaylist(a.body.toString('utf8'));
          const next = nextPart(pl, current);
          const listed = next && pl.parts.find((p) => p.msn === next.msn && p.index === next.index);
          if (!listed) throw new Error('the reload did not list the next part');
          const g = await conn.get(dir + listed.uri);
          if (g.status !== 200) throw new Error(`part ${g.status}`);
          const part: HlsPart = {
            msn: listed.msn,
            index: listed.index,
            startWallMs: listed.startWallMs,
            durationMs: listed.durationSec * 1000,
            listedAt,
            fetchedAt: performance.timeOrigin + g.doneAt,
            bytes: Buffer.from(g.body),
            levels: null,
          };
          const prev = parts.at(-1);
          parts.push(part);
          if (parts.length > 400) parts.splice(0, 200);
          const initNow = init!;
          decoding = decoding.then(async () => {
            try {
              part.levels = await decodeLevels(ffmpeg, initNow, prev?.bytes ?? null, part.bytes, part.durationMs);
            } catch (err) {
              decodeErrors++;
              console.error(`stage-to-audience: ${err instanceof Error ? err.message : String(err)}`);
              part.levels = [];
            }
          });
          current = next;
        } catch (err) {
          hlsErrors++;
          if (hlsErrors > 20) throw new Error(`the HLS viewer failed too often; last: ${err instanceof Error ? err.message : String(err)}`);
          current = null;
          await sleep(200);
        }
      }
    })();

    const decoded = (p: HlsPart) => p.levels !== null;
    const loud = (p: HlsPart, fromMs: number) => p.levels!.findIndex((l, w) => p.startWallMs + w * WINDOW_MS >= fromMs - WINDOW_MS && l >= thresholdDb);
    // Where the last verified silence began (media wall time): the next loud window after it is the next change.
    let quietFromMs = 0;
    const hlsSilentAfter = (t: number) => {
      const after = parts.filter((p) => p.startWallMs >= t);
      const silent = after.length >= 2 && after.slice(0, 2).every((p) => decoded(p) && p.levels!.every((l) => l < thresholdDb));
      if (silent) quietFromMs = after[0]!.startWallMs;
      return silent;
    };
    const webrtcSilentFor = (ms: number) => {
      const since = performance.now() - ms;
      const recent = received.filter((r) => r.atMs > since);
      return recent.length >= Math.floor(ms / 20) - 1 && recent.every((r) => r.levelDb < thresholdDb);
    };
    const t00 = nowMs();
    await waitUntil('HLS silence', 20_000, () => hlsSilentAfter(t00));
    await waitUntil('WebRTC silence', 10_000, () => webrtcSilentFor(400));

    const rows: { hlsListedMs: number; hlsFetchedMs: number; mediaMs: number; packagingMs: number; webrtcMs: number | null; offsetInPartMs: number }[] = [];
    let missedHls = 0;
    let missedWebrtc = 0;
    for (let i = 0; i < samples; i++) {
      await sleep(Math.random() * 600);
      const t0 = nowMs();
      const t0perf = performance.now();
      room.setMuted(false);
      const firstPacket = await waitFor(2000, () => received.find((r) => r.atMs > t0perf && r.levelDb >= thresholdDb) ?? null);
      const found = await waitFor(SAMPLE_TIMEOUT_MS, () => {
        for (const p of parts) {
          if (p.startWallMs + p.durationMs <= quietFromMs) continue;
          if (!decoded(p)) return null; // in stream order: wait for this one's audio
          const w = loud(p, quietFromMs);
          if (w >= 0) return { p, w };
        }
        return null;
      });
      if (!firstPacket) missedWebrtc++;
      if (!found) missedHls++;
      else {
        const { p, w } = found;
        rows.push({
          hlsListedMs: p.listedAt - t0,
          hlsFetchedMs: p.fetchedAt - t0,
          mediaMs: p.startWallMs + w * WINDOW_MS - t0,
          packagingMs: p.fetchedAt - (p.startWallMs + p.durationMs),
          webrtcMs: firstPacket ? firstPacket.atMs - t0perf : null,
          offsetInPartMs: w * WINDOW_MS,
        });
      }
      await sleep(200);
      const tMute = nowMs();
      room.setMuted(true);
      await waitUntil('HLS silence after the mute', SAMPLE_TIMEOUT_MS, () => hlsSilentAfter(tMute + 300));
      await waitUntil('WebRTC silence after the mute', 5000, () => webrtcSilentFor(200));
      const last = rows.at(-1);
      console.log(`stage-to-audience: ${i + 1}/${samples}: ${last ? `HLS listed ${round(last.hlsListedMs)} / fetched ${round(last.hlsFetchedMs)} ms (in media at ${round(last.mediaMs)} ms, packaging ${round(last.packagingMs)} ms), WebRTC ${last.webrtcMs === null ? 'missed' : `${round(last.webrtcMs)} ms`}` : 'HLS missed'}`);
    }

    const stats = (xs: number[]) => {
      const s = [...xs].sort((a, b) => a - b);
      return { p50: round(percentile(s, 50)), p95: round(percentile(s, 95)), max: round(s.at(-1) ?? Number.NaN), min: round(s[0] ?? Number.NaN) };
    };
    const fetched = stats(rows.map((r) => r.hlsFetchedMs));
    const webrtc = stats(rows.flatMap((r) => (r.webrtcMs === null ? [] : [r.webrtcMs])));
    return {
      samples: rows.length,
      missedHls,
      missedWebrtc,
      thresholdDb,
      rendition: 'audio',
      partDurationMs: round(parts.at(-1)?.durationMs ?? Number.NaN),
      hlsFetchedMs: fetched,
      hlsListedMs: stats(rows.map((r) => r.hlsListedMs)),
      mediaMs: stats(rows.map((r) => r.mediaMs)),
      packagingMs: stats(rows.map((r) => r.packagingMs)),
      webrtcMs: { ...webrtc, p99: round(percentile([...rows.flatMap((r) => (r.webrtcMs === null ? [] : [r.webrtcMs]))].sort((a, b) => a - b), 99)) },
      hlsViewerErrors: hlsErrors,
      decodeErrors,
      goal: `HLS (change → the first part carrying it, fetched) p95 < ${GOAL_HLS_P95_MS} ms`,
      goalMet: missedHls === 0 && fetched.p95 < GOAL_HLS_P95_MS,
      loadAfter: (await import('node:os')).loadavg().map((x) => round(x)),
    };
  } finally {
    following = false;
    conn.close();
    await follower?.catch(() => undefined);
    await listener?.close();
    room?.close();
    await server.stop();
  }
}

/**
 * The levels (dBFS per 10 ms window) of one part's audio: init + the part before it (primes the
 * AAC decoder; its samples are cut off) + the part, decoded by ffmpeg to mono 48 kHz PCM.
 */
async function decodeLevels(ffmpeg: string, init: Buffer, prev: Buffer | null, part: Buffer, durationMs: number): Promise<number[]> {
  const child = spawn(ffmpeg, ['-hide_banner', '-loglevel', 'error', '-f', 'mp4', '-i', 'pipe:0', '-f', 's16le', '-ac', '1', '-ar', String(RATE), 'pipe:1'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  let err = '';
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  child.stdin.on('error', () => undefined);
  child.stdin.end(Buffer.concat(prev ? [init, prev, part] : [init, part]));
  const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
  if (code !== 0) throw new Error(`ffmpeg could not decode a part (${code}): ${err.slice(0, 300)}`);
  const pcm = Buffer.concat(out);
  const all = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength >> 1);
  const n = Math.round((durationMs / 1000) * RATE);
  const samples = all.subarray(Math.max(0, all.length - n));
  const per = (RATE * WINDOW_MS) / 1000;
  const levels: number[] = [];
  for (let i = 0; i + per <= samples.length; i += per) {
    let sum = 0;
    for (let j = i; j < i + per; j++) sum += samples[j]! * samples[j]!;
    levels.push(20 * Math.log10(Math.sqrt(sum / per) / 32768 + 1e-12));
  }
  return levels;
}
