// `npm run bench -- clip-latency [--runs=3] [--seconds=30]`
//
// Commit to link, as a fan sees it: a real server (`node server/main.ts`, the
// local render queue, native ffmpeg) with the demo release, one room with a
// remixer (a stock y-websocket provider and a socket.io client, as the web app
// has), playing and with a change on the way; once the room has recorded
// `--seconds`, `--runs` clips of that length are committed one after another
// (nothing else queued). For each: the time until the room hears `running`
// (what the app shows as "waiting its turn" from the commit's answer on while that
// answer says `queued`), until it hears `done`, and until `GET /api/clips/:id`
// answers the signed download links; the status the commit answered; the video's size.
import os from 'node:os';
import type * as Y from 'yjs';
import type { ClipView } from '../server/clips/clip-service.ts';
import type { RenderProgress } from '../shared/socket-events.ts';
import { connectMember, connectSocket, masterMap } from '../test/support/room-clients.ts';
import { intArg, median, parseArgs, round, sleep } from './support/proc.ts';
import { joinWithInvite, openBenchRoom, startBenchServer } from './support/server.ts';

export async function run(argv: string[]): Promise<Record<string, unknown>> {
  const args = parseArgs(argv, ['runs', 'seconds']);
  const runs = intArg(args, 'runs', 3, 1, 10);
  const seconds = intArg(args, 'seconds', 30, 8, 30);
  const server = await startBenchServer();
  try {
    const room = await openBenchRoom(server.url);
    const token = await joinWithInvite(server.url, room, 'Bench');
    const member = await connectMember(server.url, room.roomId, token);
    const socket = await connectSocket(server.url, room.roomId, token);
    const heard = new Map<string, { status: RenderProgress['status']; at: number }[]>();
    socket.on('render:progress', (p) => {
      const list = heard.get(p.clipId) ?? [];
      list.push({ status: p.status, at: performance.now() });
      heard.set(p.clipId, list);
    });
    try {
      member.doc.transact(() => (member.doc.getMap('arrangement').get('transport') as Y.Map<unknown>).set('playing', true));
      console.error(`clip-latency: letting the room record ${seconds} s`);
      await sleep(seconds * 500);
      member.doc.transact(() => masterMap(member.doc).set('reverbMix', 0.4));
      await sleep(seconds * 500 + 1500);
      const perRun: { answered: string; queuedMs: number; doneHeardMs: number; linkMs: number; videoMB: number }[] = [];
      for (let i = 0; i < runs; i++) {
        const t0 = performance.now();
        const res = await fetch(`${server.url}/api/rooms/${room.roomId}/clips`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': `bench-${i}-${Date.now()}` },
          body: JSON.stringify({ seconds }),
        });
        const body = (await res.json()) as ClipView;
        if (res.status !== 202) throw new Error(`commit refused (${res.status}): ${JSON.stringify(body)}`);
        if (body.seconds < seconds - 0.5) throw new Error(`the clip is ${body.seconds} s, not ${seconds} s`);
        // The app fetches the links when it hears `done` (and polls every 2 s besides); here, at once.
        let view: ClipView;
        for (;;) {
          const events = heard.get(body.clipId) ?? [];
          if (events.some((e) => e.status === 'done' || e.status === 'failed')) {
            const r = await fetch(`${server.url}/api/clips/${body.clipId}`, { headers: { authorization: `Bearer ${token}` } });
            view = (await r.json()) as ClipView;
            if (view.status === 'done' || view.status === 'failed') break;
          }
          if (performance.now() - t0 > 180_000) throw new Error(`clip ${body.clipId} did not finish within 180 s`);
          await sleep(20);
        }
        const linkMs = performance.now() - t0;
        if (view.status !== 'done' || !view.downloads?.['video']) throw new Error(`clip ${body.clipId} failed: ${JSON.stringify(view)}`);
        const events = heard.get(body.clipId)!;
        const running = events.find((e) => e.status === 'running');
        const done = events.find((e) => e.status === 'done')!;
        const video = await fetch(`${server.url}${view.downloads['video']}`);
        const videoBytes = (await video.arrayBuffer()).byteLength;
        const row = { answered: body.status, queuedMs: round((running?.at ?? done.at) - t0, 0), doneHeardMs: round(done.at - t0, 0), linkMs: round(linkMs, 0), videoMB: round(videoBytes / 1e6) };
        console.error(`clip-latency: run ${i + 1}/${runs}: ${JSON.stringify(row)}`);
        perRun.push(row);
      }
      return {
        clipSeconds: seconds,
        runs,
        medianLinkMs: round(median(perRun.map((r) => r.linkMs)), 0),
        medianQueuedMs: round(median(perRun.map((r) => r.queuedMs)), 0),
        medianVideoMB: round(median(perRun.map((r) => r.videoMB))),
        answeredRunning: perRun.filter((r) => r.answered === 'running').length,
        perRun,
        loadAverage: os.loadavg().map((x) => round(x)),
        cores: os.availableParallelism(),
      };
    } finally {
      socket.disconnect();
      member.destroy();
    }
  } finally {
    await server.stop();
  }
}
