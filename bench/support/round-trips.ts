// Edit round trips between two members of a room, for the benchmarks that ask
// whether something elsewhere slows a room down: one member sets
// mix.master.reverbMix, and the round trip ends when the other's document shows it.
import type * as Y from 'yjs';
import type { Client } from './fanout-members.ts';
import { percentile, round, sleep } from './proc.ts';
import type { BenchRoom } from './server.ts';

// Long enough to measure a server that stalls (stills drawn on its main thread took round trips past 10 s).
const ROUND_TRIP_TIMEOUT_MS = 60_000;

export interface Latencies {
  samples: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

export function master(c: Client): Y.Map<unknown> {
  return c.doc.getMap('mix').get('master') as Y.Map<unknown>;
}

/** A member token through the room's invite, from `address`. */
export async function joinFrom(url: string, room: BenchRoom, name: string, address: string): Promise<string> {
  const res = await fetch(`${url}/api/rooms/${room.roomId}/join`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({ invite: room.invite, name }),
  });
  const body = (await res.json()) as { token?: string };
  if (res.status !== 201 || !body.token) throw new Error(`joining room ${room.roomId} failed (${res.status}): ${JSON.stringify(body)}`);
  return body.token;
}


/** Round trips in room B, one every 50–100 ms (a fixed spread), `count` of them or for `forMs`. */
export async function roundTrips(writer: Client, reader: Client, nextValue: () => number, until: { count?: number; forMs?: number }): Promise<Latencies> {
  const times: number[] = [];
  const started = performance.now();
  for (let k = 0; ; k++) {
    if (until.count !== undefined && k >= until.count) break;
    if (until.forMs !== undefined && performance.now() - started >= until.forMs) break;
    times.push(await roundTrip(writer, reader, nextValue()));
    await sleep(50 + ((k * 37) % 51));
  }
  const sorted = [...times].sort((a, b) => a - b);
  return { samples: sorted.length, p50Ms: round(percentile(sorted, 50), 1), p99Ms: round(percentile(sorted, 99), 1), maxMs: round(sorted.at(-1) ?? Number.NaN, 1) };
}

function roundTrip(writer: Client, reader: Client, value: number): Promise<number> {
  const seen = master(reader);
  return new Promise<number>((resolve, reject) => {
    const t0 = performance.now();
    const timer = setTimeout(() => {
      seen.unobserve(observer);
      reject(new Error(`an edit did not reach the other member of room B within ${ROUND_TRIP_TIMEOUT_MS} ms`));
    }, ROUND_TRIP_TIMEOUT_MS);
    const observer = () => {
      if (seen.get('reverbMix') !== value) return;
      clearTimeout(timer);
      seen.unobserve(observer);
      resolve(performance.now() - t0);
    };
    seen.observe(observer);
    master(writer).set('reverbMix', value);
  });
}

