// Every limit a guest can meet, with its number, in one place. The server enforces
// them (server/limits/); the web app and SECURITY.md quote them. A refusal names the
// limit and says when to try again (limitRefusal, and Retry-After on HTTP).
//
// Limits belong to people and addresses, never to connections: a member is one
// person however many tabs or nodes they use (its user id), and an address is where
// several member ids can come from (invites exchanged from one place). Most actions
// take from both the member's bucket and the address's; the address's is a few times
// larger so that a household or an office behind one address still fits.
//
// A rate limit is a token bucket: `capacity` actions at once, then `refillPerSec` a
// second. A cap is a count held at once (connections, prompts waiting).

export type LimitScope = 'member' | 'address' | 'invite' | 'room' | 'connection' | 'process';

export interface RateLimitSpec {
  kind: 'rate';
  scope: LimitScope;
  /** Largest burst. */
  capacity: number;
  /** Regained per second. */
  refillPerSec: number;
  /** What is counted, plural, for messages: "chat messages". */
  what: string;
}

export interface CapSpec {
  kind: 'cap';
  scope: LimitScope;
  /** Most held at once. */
  max: number;
  what: string;
}

const perMin = (n: number) => n / 60;

export const LIMITS = {
  // Rooms and joining.
  'room.create.address': { kind: 'rate', scope: 'address', capacity: 20, refillPerSec: 0.2, what: 'rooms opened' },
  'invite.exchange.address': { kind: 'rate', scope: 'address', capacity: 10, refillPerSec: perMin(10), what: 'joins through a link' },
  /** Asking whether a link would let one in (before the name is typed): cheap, but a stranger's probe all the same. */
  'invite.check.address': { kind: 'rate', scope: 'address', capacity: 30, refillPerSec: perMin(30), what: 'join links checked' },
  /** A livestream's link lets a crowd in (a thousand at once, then 50 a second); its use limit is the host's to set. */
  'invite.exchange.invite': { kind: 'rate', scope: 'invite', capacity: 1000, refillPerSec: 50, what: 'joins through this link' },
  'token.mint.member': { kind: 'rate', scope: 'member', capacity: 60, refillPerSec: 1, what: 'tokens and links made' },
  'token.refresh.member': { kind: 'rate', scope: 'member', capacity: 10, refillPerSec: perMin(10), what: 'token refreshes' },
  'role.change.member': { kind: 'rate', scope: 'member', capacity: 30, refillPerSec: 1, what: 'role changes' },
  /** A host's moderation: locking and unlocking the room, clearing prompts from the history. */
  'room.moderate.member': { kind: 'rate', scope: 'member', capacity: 30, refillPerSec: 1, what: 'moderation actions' },
  /** Held sync and socket.io connections from one address, on one node (MAX_CONNECTIONS_PER_ADDRESS overrides it). */
  'connections.address': { kind: 'cap', scope: 'address', max: 256, what: 'connections' },

  /** Saving a take of the mix, or returning the room to one. */
  'take.member': { kind: 'rate', scope: 'member', capacity: 10, refillPerSec: perMin(10), what: 'takes saved or returned to' },
  /** Reading a room's list of takes (every page reads it again after each save: one read a save, and a few to spare). */
  'take.read.member': { kind: 'rate', scope: 'member', capacity: 20, refillPerSec: 1, what: 'reads of the takes' },
  /** A venue's crowd behind one address reads it once each after a save. */
  'take.read.address': { kind: 'rate', scope: 'address', capacity: 600, refillPerSec: 60, what: 'reads of the takes' },
  /** Takes kept with one room (delete none: a room's takes are kept as long as the room). */
  'take.room': { kind: 'cap', scope: 'room', max: 50, what: 'takes kept' },

  // The room document: a member's edits beyond the rate wait and go in together (nothing is lost).
  'sync.update.member': { kind: 'rate', scope: 'member', capacity: 120, refillPerSec: 60, what: 'changes to the room' },
  'sync.update.address': { kind: 'rate', scope: 'address', capacity: 480, refillPerSec: 200, what: 'changes to the room' },
  /** Edits waiting on one connection for the rate; beyond it the connection is dropped (it reconnects and re-sends). */
  'sync.pending.connection': { kind: 'cap', scope: 'connection', max: 512, what: 'changes waiting on one connection' },

  // The socket.io channel.
  'chat.member': { kind: 'rate', scope: 'member', capacity: 5, refillPerSec: 1, what: 'chat messages' },
  'chat.address': { kind: 'rate', scope: 'address', capacity: 20, refillPerSec: 4, what: 'chat messages' },
  'reaction.member': { kind: 'rate', scope: 'member', capacity: 10, refillPerSec: 3, what: 'reactions' },
  'reaction.address': { kind: 'rate', scope: 'address', capacity: 40, refillPerSec: 12, what: 'reactions' },
  'prompt.member': { kind: 'rate', scope: 'member', capacity: 3, refillPerSec: 0.2, what: 'prompts' },
  'prompt.address': { kind: 'rate', scope: 'address', capacity: 10, refillPerSec: 0.5, what: 'prompts' },
  /** Prompts waiting for the host, per room, per member and per address. */
  'prompt.queue.room': { kind: 'cap', scope: 'room', max: 50, what: 'prompts waiting for the host' },
  'prompt.queue.member': { kind: 'cap', scope: 'member', max: 3, what: 'of your prompts waiting for the host' },
  'prompt.queue.address': { kind: 'cap', scope: 'address', max: 10, what: 'prompts from your address waiting for the host' },
  'signal.member': { kind: 'rate', scope: 'member', capacity: 20, refillPerSec: 1, what: 'live-stream signaling messages' },
  /** Asking the host to join the stage (a listener in broadcast mode). */
  'stage.request.member': { kind: 'rate', scope: 'member', capacity: 3, refillPerSec: perMin(2), what: 'requests to join the stage' },

  // A broadcast's HLS: a low-latency player reloads each playlist about twice a second and fetches
  // two parts a second; an address's bucket fits a household or a venue of a dozen players.
  'hls.playlist.address': { kind: 'rate', scope: 'address', capacity: 60, refillPerSec: 30, what: 'playlist requests' },
  'hls.media.address': { kind: 'rate', scope: 'address', capacity: 120, refillPerSec: 40, what: 'media segment requests' },
  /** A host sending the room out by RTMP: each start is an outbound connection. */
  'rtmp.start.member': { kind: 'rate', scope: 'member', capacity: 5, refillPerSec: perMin(2), what: 'RTMP pushes started' },

  // A release's visual model: its record and status (a host's page asks every few seconds while it trains),
  // and the generated textures, which every member of a room fetches once per prompt change.
  'visualmodel.read.address': { kind: 'rate', scope: 'address', capacity: 60, refillPerSec: 2, what: 'reads of a visual model\'s record' },
  /** New textures a member's or an address's prompts make the visual model generate (kept ones cost nothing): each is a core's 0.1 s and 1 MB kept. */
  'visualmodel.generate.member': { kind: 'rate', scope: 'member', capacity: 10, refillPerSec: perMin(3), what: 'new generated textures' },
  'visualmodel.generate.address': { kind: 'rate', scope: 'address', capacity: 20, refillPerSec: perMin(4), what: 'new generated textures' },
  'visualmodel.texture.address': { kind: 'rate', scope: 'address', capacity: 600, refillPerSec: 30, what: 'generated textures fetched' },

  // Renders and files: each costs seconds of CPU.
  'clip.member': { kind: 'rate', scope: 'member', capacity: 3, refillPerSec: perMin(3), what: 'clips' },
  'clip.address': { kind: 'rate', scope: 'address', capacity: 6, refillPerSec: perMin(6), what: 'clips' },
  'loop.member': { kind: 'rate', scope: 'member', capacity: 3, refillPerSec: perMin(3), what: 'loops' },
  'loop.address': { kind: 'rate', scope: 'address', capacity: 6, refillPerSec: perMin(6), what: 'loops' },
  'still.member': { kind: 'rate', scope: 'member', capacity: 10, refillPerSec: perMin(10), what: 'stills' },
  'still.address': { kind: 'rate', scope: 'address', capacity: 20, refillPerSec: perMin(20), what: 'stills' },
  /** Stills waiting for the worker pool, for the whole process (all rooms). */
  'still.queue.process': { kind: 'cap', scope: 'process', max: 8, what: 'stills waiting to be drawn' },
  'order.member': { kind: 'rate', scope: 'member', capacity: 5, refillPerSec: perMin(5), what: 'orders' },
  'order.address': { kind: 'rate', scope: 'address', capacity: 10, refillPerSec: perMin(10), what: 'orders' },
  /** A member's own clips, loops, stills and orders listed with fresh links (also after the room ended). */
  'things.read.member': { kind: 'rate', scope: 'member', capacity: 30, refillPerSec: perMin(30), what: 'lists of your clips and purchases' },
  'things.read.address': { kind: 'rate', scope: 'address', capacity: 60, refillPerSec: perMin(60), what: 'lists of clips and purchases' },
  'verify.address': { kind: 'rate', scope: 'address', capacity: 10, refillPerSec: perMin(10), what: 'files checked' },
  /** Uploads to /api/verify being read or checked at once, for the whole process, and waiting for a turn. */
  'verify.running.process': { kind: 'cap', scope: 'process', max: 1, what: 'file checks running at once' },
  'verify.waiting.process': { kind: 'cap', scope: 'process', max: 4, what: 'files waiting to be checked' },
  /** Bytes of one upload; the body is refused as soon as it passes this. */
  'verify.upload.bytes': { kind: 'cap', scope: 'process', max: 64 * 1024 * 1024, what: 'bytes in one upload' },
} as const satisfies Record<string, RateLimitSpec | CapSpec>;

export type LimitName = keyof typeof LIMITS;
export type RateLimitName = { [K in LimitName]: (typeof LIMITS)[K] extends { kind: 'rate' } ? K : never }[LimitName];
export type CapName = Exclude<LimitName, RateLimitName>;

/** "at most 5 at once, then 1 a second", in words a person can act on. */
export function describeLimit(name: LimitName): string {
  const spec: RateLimitSpec | CapSpec = LIMITS[name];
  if (spec.kind === 'cap') return name.endsWith('.bytes') ? `at most ${spec.max / (1024 * 1024)} MB in one upload` : `at most ${spec.max} ${spec.what}`;
  return `at most ${spec.capacity} ${spec.what} at once, then ${rateWords(spec.refillPerSec)}`;
}

function rateWords(perSec: number): string {
  if (perSec >= 1) return `${round(perSec)} a second`;
  const perMinute = perSec * 60;
  if (perMinute >= 1) return `${round(perMinute)} a minute`;
  return `${round(perMinute * 60)} an hour`;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

/** Whole seconds to wait, at least 1. */
export function retryAfterSec(retryAfterMs: number): number {
  return Math.max(1, Math.ceil(retryAfterMs / 1000));
}

/** What a refused action says: which limit, and when to try again. */
export function limitMessage(name: LimitName, retryAfterMs: number | null): string {
  const spec: RateLimitSpec | CapSpec = LIMITS[name];
  const who = spec.scope === 'address' ? ' from your address' : spec.scope === 'invite' ? '' : spec.scope === 'room' ? ' in this room' : '';
  const head = spec.kind === 'rate' ? `too many ${spec.what}${who} (${describeLimit(name)}; limit ${name})` : `${describeLimit(name)}${who} (limit ${name})`;
  return retryAfterMs === null ? head : `${head}; try again in ${retryAfterSec(retryAfterMs)} s`;
}
