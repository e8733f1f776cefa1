// What a room's socket.io channel does besides presence: chat, reactions and
// prompts, each rate-limited per member and moderated with the release's words.
// One per loaded room; it lives and dies with the room.
import crypto from 'node:crypto';
import * as Y from 'yjs';
import { compileModeration, moderateText, type CompiledModeration, type ModerationLists } from '../../shared/moderation.ts';
import type { RoomRelease } from '../../shared/room-doc.ts';
import { refusal, type Refusal } from '../../shared/refusals.ts';
import { interpretPrompt } from '../../shared/prompt-interpreter.ts';
import type { AppliedPrompt, ChatMessage, PendingPrompt, Reaction } from '../../shared/socket-events.ts';
import { parseVisualParams } from '../../shared/visual-params.ts';
import { REACTIONS } from '../../shared/socket-events.ts';
import type { Member, Room } from '../rooms/room.ts';
import { RateLimiter } from '../util/rate-limiter.ts';

export const CHAT_MAX_LENGTH = 500;
/** Prompts waiting for the host beyond this are refused until the host catches up. */
export const PROMPT_QUEUE_LIMIT = 50;

export type Result<T> = { ok: true; value: T } | { ok: false; refusal: Refusal };

/** Where the channel sends what it decided; the socket server implements it. */
export interface ChannelOutput {
  toRoom(message: { chat: ChatMessage } | { reaction: Reaction } | { applied: AppliedPrompt }): void;
  toHosts(queue: PendingPrompt[]): void;
}

/** What a room's texts are moderated with: the release's lists, the default ones, the artist's own name allowed. */
export function moderationListsOf(release: RoomRelease, artist?: string): ModerationLists {
  const p = release.rules.prompts;
  return {
    blockedWords: p.blockedWords,
    blockedNames: p.blockedNames,
    includeDefaults: true,
    blockOtherArtists: p.blockOtherArtists,
    allowedNames: artist ? [artist] : [],
  };
}

export class RoomChannel {
  readonly #room: Room;
  readonly #out: ChannelOutput;
  readonly #chatLimiter = new RateLimiter({ capacity: 5, refillPerSec: 1 });
  readonly #reactionLimiter = new RateLimiter({ capacity: 10, refillPerSec: 3 });
  readonly #promptLimiter = new RateLimiter({ capacity: 3, refillPerSec: 0.2 });
  readonly #moderation: CompiledModeration;
  readonly #now: () => number;

  /**
   * `moderation`: the room's lists (moderationListsOf) already compiled, to share one compiled
   * set between the rooms of a release; compiled here otherwise.
   */
  constructor(room: Room, out: ChannelOutput, opts: { now?: () => number; artist?: string; moderation?: CompiledModeration } = {}) {
    this.#room = room;
    this.#out = out;
    this.#now = opts.now ?? Date.now;
    this.#moderation = opts.moderation ?? compileModeration(moderationListsOf(room.release, opts.artist));
  }

  chat(member: Member, raw: string): Result<ChatMessage> {
    if (!this.#room.rules.chatEnabled && this.#room.roleOf(member) !== 'host') {
      return { ok: false, refusal: refusal('read_only', 'the host has turned chat off') };
    }
    const limited = this.#limit(this.#chatLimiter, member, 'messages');
    if (limited) return limited;
    const v = moderateText(raw, this.#moderation, CHAT_MAX_LENGTH, { noun: 'message' });
    if (!v.ok) return { ok: false, refusal: refusal(v.code, v.message) };
    const message: ChatMessage = {
      id: crypto.randomUUID(),
      userId: member.userId,
      name: member.name,
      role: this.#room.roleOf(member),
      text: v.text,
      atMs: this.#now(),
    };
    this.#out.toRoom({ chat: message });
    return { ok: true, value: message };
  }

  react(member: Member, emoji: (typeof REACTIONS)[number]): Result<Reaction> {
    const limited = this.#limit(this.#reactionLimiter, member, 'reactions');
    if (limited) return limited;
    const reaction: Reaction = { userId: member.userId, name: member.name, emoji, atMs: this.#now() };
    this.#out.toRoom({ reaction });
    return { ok: true, value: reaction };
  }

  /** Applies a prompt at once (open rooms, and the host's own), queues it for the host, or refuses it. */
  submitPrompt(member: Member, raw: string): Result<{ status: 'applied' | 'queued'; promptId: string }> {
    const role = this.#room.roleOf(member);
    const policy = this.#room.rules.promptPolicy;
    if (policy === 'closed' && role !== 'host') return { ok: false, refusal: refusal('prompts_closed', 'prompts are closed in this room') };
    const limited = this.#limit(this.#promptLimiter, member, 'prompts');
    if (limited) return limited;
    const v = moderateText(raw, this.#moderation, this.#room.release.rules.prompts.maxLength, { noun: 'prompt' });
    if (!v.ok) return { ok: false, refusal: refusal(v.code, v.message) };
    const prompt: PendingPrompt = { promptId: crypto.randomUUID(), text: v.text, userId: member.userId, name: member.name, atMs: this.#now() };
    if (policy === 'open' || role === 'host') {
      this.#apply(prompt);
      return { ok: true, value: { status: 'applied', promptId: prompt.promptId } };
    }
    const queue = this.#queueMap();
    if (queue.size >= PROMPT_QUEUE_LIMIT) return { ok: false, refusal: refusal('rate_limited', 'the host has many prompts to review; try again in a while') };
    this.#room.change(() => queue.set(prompt.promptId, prompt));
    this.#out.toHosts(this.pendingPrompts());
    return { ok: true, value: { status: 'queued', promptId: prompt.promptId } };
  }

  /** The host lets a queued prompt through, or drops it. */
  decidePrompt(member: Member, promptId: string, approve: boolean): Result<null> {
    if (this.#room.roleOf(member) !== 'host') return { ok: false, refusal: refusal('host_only', 'only the host can approve prompts') };
    const queue = this.#queueMap();
    const prompt = queue.get(promptId) as PendingPrompt | undefined;
    if (!prompt) return { ok: false, refusal: refusal('not_found', 'that prompt is no longer waiting') };
    this.#room.change(() => queue.delete(promptId));
    if (approve) this.#apply(prompt);
    this.#out.toHosts(this.pendingPrompts());
    return { ok: true, value: null };
  }

  pendingPrompts(): PendingPrompt[] {
    return ([...this.#queueMap().values()] as PendingPrompt[]).sort((a, b) => a.atMs - b.atMs);
  }

  #apply(p: PendingPrompt): void {
    // Each prompt builds on what the visuals show now ("slower", "less glitch").
    const previous = parseVisualParams(this.#room.doc.getMap('visual').get('params'));
    const meaning = interpretPrompt(p.text, { artwork: this.#room.release.artwork, previous });
    this.#room.applyPrompt(
      { text: p.text, by: p.userId, name: p.name, atMs: this.#now(), summary: meaning.summary },
      meaning.params as unknown as Record<string, unknown>,
    );
    this.#out.toRoom({ applied: { promptId: p.promptId, text: p.text, userId: p.userId, name: p.name, summary: meaning.summary, effects: meaning.effects } });
  }

  #queueMap(): Y.Map<unknown> {
    return this.#room.doc.getMap('visual').get('queue') as Y.Map<unknown>;
  }

  #limit(limiter: RateLimiter, member: Member, what: string): { ok: false; refusal: Refusal } | null {
    const r = limiter.take(member.userId);
    if (r.ok) return null;
    return { ok: false, refusal: refusal('rate_limited', `too many ${what}; wait ${Math.ceil(r.retryAfterMs / 1000)} s`) };
  }
}
