// What the server refuses, in words a fan reads. The server's refusals carry a
// code (shared/refusals.ts, shared/errors.ts) and a message written for
// developers ("card: Too small: expected string…", "(limit chat.member)"):
// the page branches on the code and says what happened and what to do, next to
// the thing refused. A message that is already a plain sentence is kept,
// starting with a capital and ending with a full stop.
import type { Refusal } from '../../shared/refusals.ts';
import { ApiError } from './api.ts';

/** "the host has locked the lead" → "The host has locked the lead." */
export function sentence(text: string): string {
  const t = text.trim();
  if (!t) return t;
  const capital = t[0]!.toUpperCase() + t.slice(1);
  return /[.!?…]$/.test(capital) ? capital : `${capital}.`;
}

function waitWords(ms: number | undefined): string {
  if (ms === undefined) return 'Try again in a little while.';
  const sec = Math.max(1, Math.ceil(ms / 1000));
  return `Try again in ${sec} ${sec === 1 ? 'second' : 'seconds'}.`;
}

/** Why a chat message, a prompt or a change was refused. */
export function refusalWords(r: Refusal, what: 'message' | 'prompt' | 'change' | 'reaction'): string {
  switch (r.code) {
    case 'blocked_words':
      return `This ${what} has a word this room does not allow. Change it and send it again.`;
    case 'too_long':
    case 'empty':
      return sentence(r.message);
    case 'rate_limited':
      return r.retryAfterMs !== undefined ? `You are sending ${what === 'change' ? 'changes' : `${what}s`} too fast. ${waitWords(r.retryAfterMs)}` : `Too many ${what}s are waiting already. Try again once the host has gone through them.`;
    case 'read_only':
      return what === 'message' ? 'The host has turned chat off.' : 'You are listening: you can hear the mix, chat and react, but not change the mix.';
    case 'prompts_closed':
      return 'The host has turned prompts off.';
    case 'stem_locked':
    case 'out_of_range':
    case 'rules_widen':
      return sentence(r.message);
    case 'host_only':
      return 'Only the host can do that.';
    case 'not_found':
      return 'The room is not available just now. Reload the page to come back in.';
    case 'unavailable':
      return 'The server could not do that just now. Try again.';
    default:
      // malformed, unknown_field, invalid_value, server_managed, too_large, missing_history, out_of_order:
      // the page and the server disagree; the server's text is for developers.
      return 'The server did not accept this. Reload the page and try again.';
  }
}

/**
 * An HTTP API error in plain words. `invalid` says what was wrong with what the
 * person typed, for the case where the server refused the input itself.
 */
export function apiErrorWords(err: unknown, invalid = 'The server did not accept what was sent. Check it and try again.'): string {
  if (!(err instanceof ApiError)) return 'Something went wrong. Try again.';
  switch (err.code) {
    case 'network':
      return 'The server could not be reached. Check your connection and try again.';
    case 'invalid_body':
    case 'bad_request':
      return invalid;
    case 'unauthorized':
      return 'Your place in the room has run out. Reload the page, or ask the host for a new link.';
    case 'rate_limited':
      return 'Too many tries just now. Wait a minute and try again.';
    case 'not_found':
      return 'It is not there any more (the room or the clip may have ended).';
    case 'forbidden':
    case 'conflict':
      return sentence(err.message);
    case 'payload_too_large':
      return 'That is too large to send.';
    default:
      return 'Something went wrong on the server. Try again in a moment.';
  }
}
