// A room in broadcast mode on a bench server: opened on the demo release, its
// transport playing (through a remixer's stock WebsocketProvider), broadcast
// switched on by the host, and its playlists' addresses (with the listen key)
// once the first part of the audio rendition exists.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { WebsocketProvider } from 'y-websocket';
import * as Y from 'yjs';
import { cpuSeconds, sleep } from './proc.ts';
import { joinWithInvite, openBenchRoom, type BenchRoom } from './server.ts';

export interface BroadcastRoom {
  room: BenchRoom;
  remixerToken: string;
  doc: Y.Doc;
  provider: WebsocketProvider;
  /** Media playlist paths with the listen key, by rendition. */
  renditions: Record<string, string>;
  setMuted(muted: boolean): void;
  close(): void;
}

export async function openBroadcastRoom(url: string, opts: { muted?: boolean } = {}): Promise<BroadcastRoom> {
  const room = await openBenchRoom(url);
  const remixerToken = await joinWithInvite(url, room, 'Remixer');
  const doc = new Y.Doc();
  const provider = new WebsocketProvider(url.replace(/^http/, 'ws') + '/sync', room.roomId, doc, { params: { token: remixerToken }, disableBc: true });
  provider.awareness.setLocalState(null);
  const deadline = Date.now() + 10_000;
  while (!provider.synced) {
    if (Date.now() > deadline) throw new Error('the remixer did not sync within 10 s');
    await sleep(10);
  }
  const stems = doc.getMap('mix').get('stems') as Y.Map<Y.Map<unknown>>;
  const transport = doc.getMap('arrangement').get('transport') as Y.Map<unknown>;
  const setMuted = (muted: boolean) =>
    doc.transact(() => {
      for (const strip of stems.values()) strip.set('mute', muted);
    });
  if (opts.muted) setMuted(true);
  doc.transact(() => transport.set('playing', true));

  const put = await fetch(`${url}/api/rooms/${room.roomId}/broadcast`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${room.hostToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ enabled: true }),
  });
  if (put.status !== 200) throw new Error(`switching broadcast mode on failed (${put.status}): ${await put.text()}`);
  const status = await fetch(`${url}/api/rooms/${room.roomId}/broadcast`, { headers: { authorization: `Bearer ${remixerToken}` } });
  const body = (await status.json()) as { renditions?: Record<string, string> };
  if (!body.renditions?.['audio']) throw new Error(`the broadcast status names no audio playlist: ${JSON.stringify(body)}`);
  // The first part: a plain request waits for it (up to the blocking limit), or 503 while the encoder starts.
  for (let attempt = 0; ; attempt++) {
    const r = await fetch(url + body.renditions['audio']);
    const text = await r.text();
    if (r.status === 200 && text.includes('#EXT-X-PART:')) break;
    if (attempt > 30) throw new Error(`the audio playlist did not start (${r.status}): ${text.slice(0, 200)}`);
    await sleep(500);
  }
  return {
    room,
    remixerToken,
    doc,
    provider,
    renditions: body.renditions,
    setMuted,
    close: () => provider.destroy(),
  };
}

/** The server's threads by name (/proc/<pid>/task/<tid>/comm) with their CPU seconds so far. */
export function threadCpu(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = fs.readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(name, (out.get(name) ?? 0) + cpuSeconds(pid, Number(tid)));
    } catch {
      // The thread ended.
    }
  }
  return out;
}

/** The server's ffmpeg children that encode a broadcast (their arguments read raw PCM: `-f s16le`). */
export function encoderPids(serverPid: number): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== serverPid) continue;
      const args = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (args.some((a) => a.includes('ffmpeg')) && args.join(' ').includes('-f s16le')) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

/** Forks a TypeScript module of bench/support as a child (IPC on), its output passed through. */
export function forkChild(module: URL, arg: string): ChildProcess {
  return fork(module, [arg], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
}
