// What a room's socket.io channel does besides presence: chat, reactions and
// prompts, each limited per member and per address (shared/limits.ts, across every
// node when the limits live in Redis) and moderated with the release's words.
// One per loaded room; it lives and dies with the room.
import crypto from 'node:crypto';
import * as Y from 'yjs';
import { compileModeration, moderateText, type CompiledModeration, type ModerationLists } from '../../shared/moderation.ts';
import type { RoomRelease } from '../../shared/room-doc.ts';
import { limitRefusal, refusal, type Refusal } from '../../shared/refusals.ts';
import type { RateLimitName } from '../../shared/limits.ts';
import { interpretPrompt } from '../../shared/prompt-interpreter.ts';
import type { AppliedPrompt, ChatMessage, PendingPrompt, Reaction } from '../../shared/socket-events.ts';
import { parseVisualParams, type VisualParams } from '../../shared/visual-params.ts';
import { GENERATED_ID_PREFIX } from '../../media/visuals/model/types.ts';
import { REACTIONS } from '../../shared/socket-events.ts';
import type { Member, Room } from '../rooms/room.ts';
import type { Limits } from '../limits/limits.ts';
import { GENERATED_EFFECT, type PromptVisuals } from '../rooms/prompt-visuals.ts';

export const CHAT_MAX_LENGTH = 500;

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
  readonly #limits: Limits;
  readonly #moderation: CompiledModeration;
  readonly #now: () => number;
  readonly #history: { add(roomId: string, message: ChatMessage): Promise<void> } | null;
  /**
   * The address each prompt waiting for the host came from, by prompt id (kept here, not in the
   * document that every member reads); prompts queued through another node are not known here.
   */
  readonly #promptAddresses = new Map<string, string>();
  /** The release's visual model, where there is one to steer (none: the interpreter's params as they are). */
  readonly #visuals: Pick<PromptVisuals, 'steer'> | null;
  /** Prompts are applied one after another, in the order they were let through, whatever their texture costs. */
  #applying: Promise<void> = Promise.resolve();

  /**
   * `moderation`: the room's lists (moderationListsOf) already compiled, to share one compiled
   * set between the rooms of a release; compiled here otherwise.
   * `history`: where accepted chat messages are kept (none: they are only sent).
   */
  constructor(
    room: Room,
    out: ChannelOutput,
    limits: Limits,
    opts: {
      now?: () => number;
      artist?: string;
      moderation?: CompiledModeration;
      history?: { add(roomId: string, message: ChatMessage): Promise<void> };
      visuals?: Pick<PromptVisuals, 'steer'> | null;
    } = {},
  ) {
    this.#visuals = opts.visuals ?? null;
    this.#room = room;
    this.#out = out;
    this.#limits = limits;
    this.#now = opts.now ?? Date.now;
    this.#history = opts.history ?? null;
    this.#moderation = opts.moderation ?? compileModeration(moderationListsOf(room.release, opts.artist));
  }

  async chat(member: Member, raw: string): Promise<Result<ChatMessage>> {
    if (!this.#room.rules.chatEnabled && this.#room.roleOf(member) !== 'host') {
      return { ok: false, refusal: refusal('read_only', 'the host has turned chat off') };
    }
    const limited = await this.#limit(['chat.member', 'chat.address'], member);
    if (limited) return limited;
    if (this.#room.closed) return gone();
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
    // Kept first: a message the room heard is one a reload finds. One that could not be kept is not sent.
    if (this.#history) {
      try {
        await this.#history.add(this.#room.id, message);
      } catch {
        return { ok: false, refusal: refusal('unavailable', 'the message could not be kept; send it again in a moment') };
      }
    }
    this.#out.toRoom({ chat: message });
    return { ok: true, value: message };
  }

  async react(member: Member, emoji: (typeof REACTIONS)[number]): Promise<Result<Reaction>> {
    const limited = await this.#limit(['reaction.member', 'reaction.address'], member);
    if (limited) return limited;
    if (this.#room.closed) return gone();
    const reaction: Reaction = { userId: member.userId, name: member.name, emoji, atMs: this.#now() };
    this.#out.toRoom({ reaction });
    return { ok: true, value: reaction };
  }

  /** Applies a prompt at once (open rooms, and the host's own), queues it for the host, or refuses it. */
  async submitPrompt(member: Member, raw: string): Promise<Result<{ status: 'applied' | 'queued'; promptId: string }>> {
    const policy = this.#room.rules.promptPolicy;
    if (policy === 'closed' && this.#room.roleOf(member) !== 'host') return { ok: false, refusal: refusal('prompts_closed', 'prompts are closed in this room') };
    const limited = await this.#limit(['prompt.member', 'prompt.address'], member);
    if (limited) return limited;
    if (this.#room.closed) return gone();
    // Read again after the wait: a host may have changed the role or the policy meanwhile.
    const role = this.#room.roleOf(member);
    const policyNow = this.#room.rules.promptPolicy;
    if (policyNow === 'closed' && role !== 'host') return { ok: false, refusal: refusal('prompts_closed', 'prompts are closed in this room') };
    const v = moderateText(raw, this.#moderation, this.#room.release.rules.prompts.maxLength, { noun: 'prompt' });
    if (!v.ok) return { ok: false, refusal: refusal(v.code, v.message) };
    const prompt: PendingPrompt = { promptId: crypto.randomUUID(), text: v.text, userId: member.userId, name: member.name, atMs: this.#now() };
    if (policyNow === 'open' || role === 'host') {
      await this.#apply(prompt, member.address);
      return { ok: true, value: { status: 'applied', promptId: prompt.promptId } };
    }
    const full = this.#queueFull(member);
    if (full) return { ok: false, refusal: full };
    this.#room.change(() => this.#queueMap().set(prompt.promptId, prompt));
    this.#promptAddresses.set(prompt.promptId, member.address);
    this.#out.toHosts(this.pendingPrompts());
    return { ok: true, value: { status: 'queued', promptId: prompt.promptId } };
  }

  /** Why the approval queue has no room for another of this member's prompts (null: it has). */
  #queueFull(member: Member): Refusal | null {
    const waiting = this.pendingPrompts();
    for (const id of this.#promptAddresses.keys()) if (!waiting.some((p) => p.promptId === id)) this.#promptAddresses.delete(id);
    if (waiting.length >= this.#limits.cap('prompt.queue.room')) return limitRefusal('prompt.queue.room', null);
    if (waiting.filter((p) => p.userId === member.userId).length >= this.#limits.cap('prompt.queue.member')) return limitRefusal('prompt.queue.member', null);
    const fromAddress = waiting.filter((p) => this.#promptAddresses.get(p.promptId) === member.address).length;
    if (fromAddress >= this.#limits.cap('prompt.queue.address')) return limitRefusal('prompt.queue.address', null);
    return null;
  }

  /** The host lets a queued prompt through, or drops it. */
  async decidePrompt(member: Member, promptId: string, approve: boolean): Promise<Result<null>> {
    if (this.#room.roleOf(member) !== 'host') return { ok: false, refusal: refusal('host_only', 'only the host can approve prompts') };
    const queue = this.#queueMap();
    const prompt = queue.get(promptId) as PendingPrompt | undefined;
    if (!prompt) return { ok: false, refusal: refusal('not_found', 'that prompt is no longer waiting') };
    this.#room.change(() => queue.delete(promptId));
    const address = this.#promptAddresses.get(promptId) ?? null;
    this.#promptAddresses.delete(promptId);
    this.#out.toHosts(this.pendingPrompts());
    if (approve) await this.#apply(prompt, address);
    return { ok: true, value: null };
  }

  pendingPrompts(): PendingPrompt[] {
    return ([...this.#queueMap().values()] as PendingPrompt[]).sort((a, b) => a.atMs - b.atMs);
  }

  /** Applies a prompt after those before it; resolves once the room shows it (or the room is gone). */
  #apply(p: PendingPrompt, address: string | null): Promise<void> {
    const run = this.#applying.then(() => this.#applyNow(p, address));
    this.#applying = run.catch(() => {});
    return run;
  }

  /** `address`: where the prompt came from (null: queued through another node), for the generation limits. */
  async #applyNow(p: PendingPrompt, address: string | null): Promise<void> {
    if (this.#room.closed) return;
    // Each prompt builds on what the visuals show now ("slower", "less glitch").
    const previous = parseVisualParams(this.#room.doc.getMap('visual').get('params'));
    const release = this.#room.release;
    const meaning = interpretPrompt(p.text, { artwork: release.artwork, previous: previous && withoutGenerated(previous) });
    // A new texture costs the prompter's generation limits; a kept one (a prompt seen before) costs nothing.
    const mayGenerate = async () =>
      (await this.#limits.refusalFor(address ? ['visualmodel.generate.member', 'visualmodel.generate.address'] : ['visualmodel.generate.member'], { member: p.userId, address: address ?? '' })) === null;
    const steered = this.#visuals && release.artwork.length > 0 ? await this.#visuals.steer(release.id, release.artwork[0]!.id, meaning.params, p.text, { mayGenerate }) : null;
    if (this.#room.closed) return;
    const generated = steered?.generated ?? null;
    const effects = generated ? [...meaning.effects, GENERATED_EFFECT] : meaning.effects;
    const summary = generated ? `${meaning.summary}, ${GENERATED_EFFECT}` : meaning.summary;
    this.#room.applyPrompt(
      { text: p.text, by: p.userId, name: p.name, atMs: this.#now(), summary },
      (steered?.params ?? meaning.params) as unknown as Record<string, unknown>,
      generated,
    );
    this.#out.toRoom({
      applied: { promptId: p.promptId, text: p.text, userId: p.userId, name: p.name, summary, effects, ...(generated ? { generated } : {}) },
    });
  }

  #queueMap(): Y.Map<unknown> {
    return this.#room.doc.getMap('visual').get('queue') as Y.Map<unknown>;
  }

  async #limit(names: readonly RateLimitName[], member: Member): Promise<{ ok: false; refusal: Refusal } | null> {
    const r = await this.#limits.refusalFor(names, { member: member.userId, address: member.address });
    return r ? { ok: false, refusal: r } : null;
  }
}

/**
 * Params as the interpreter knows them: a generated texture is not an artwork it can name, so
 * the next prompt builds on the artworks it was drawn with (their shares as they were).
 */
function withoutGenerated(p: VisualParams): VisualParams {
  const own = p.artworks.filter((a) => !a.id.startsWith(GENERATED_ID_PREFIX));
  return own.length === p.artworks.length ? p : { ...p, artworks: own };
}

function gone(): { ok: false; refusal: Refusal } {
  return { ok: false, refusal: refusal('not_found', 'the room is not available') };
}
