// The room's address (/r/:roomId): a member of this tab goes straight in, and so
// does a member this browser has been (a new tab, the plain address opened again:
// the same member, no new join); someone with a join link ("#invite=…") has the link
// checked first, then gives a display name and joins (or, when this browser has been
// a member, may go back in as that member); anyone else is told that they need a link. A room that does not
// exist, has ended, or a link that would not let them in is said at once, before
// anyone types a name.
import type { InviteProblem } from '../../shared/api-types.ts';
import { api, ApiError } from './api.ts';
import { h } from './dom.ts';
import { rememberName, rememberedName } from './landing.ts';
import { showRoom } from './room-view.ts';
import { knownMembership, loadMembership, saveMembership, type Membership } from './session.ts';
import { apiErrorWords } from './words.ts';

/** Why a link does not let someone in, and what to do. */
const INVITE_WORDS: Record<InviteProblem, { title: string; text: string }> = {
  room_ended: { title: 'This room has ended', text: 'The host has ended this room. Nobody can join it any more; you can open a room of your own.' },
  expired: { title: 'This join link has expired', text: 'Join links last a limited time. Ask the host to send you a new one.' },
  revoked: { title: 'This join link was withdrawn', text: 'The host has withdrawn this link. Ask the host for a new one.' },
  used_up: { title: 'This join link is used up', text: 'The link has let in as many people as the host allowed. Ask the host for a new one.' },
  wrong_room: { title: 'This join link is for another room', text: 'The link does not belong to this room. Open the whole link the host sent you, exactly as it came.' },
  locked: { title: 'The host has locked this room to new people', text: 'Nobody new can join while it is locked; the people already in stay. Ask the host to unlock it, then open your link again.' },
  not_a_link: { title: 'This join link does not work', text: 'The link may be cut short or mistyped. Open the whole link the host sent you, exactly as it came, or ask for a new one.' },
};

export function showRoomEntry(main: HTMLElement, roomId: string, app: { navigate(path: string): void }): () => void {
  let leave: (() => void) | null = null;
  let left = false;
  const enter = () => {
    const m = loadMembership(roomId);
    if (!m || left) return;
    leave = showRoom(main, m, app);
  };
  const invite = new URLSearchParams(location.hash.slice(1)).get('invite');
  const tab = loadMembership(roomId);
  const known = tab ? null : knownMembership(roomId);
  if (tab) {
    if (invite) history.replaceState(null, '', location.pathname);
    // Kept for the browser too (a tab from before the browser kept members): a new tab finds it.
    saveMembership(tab);
    enter();
  } else if (known && !invite) {
    // This browser has been a member here: the same member comes back, in this tab too.
    saveMembership(known);
    enter();
  } else {
    document.title = 'Join a room · Remixroom';
    const checking = h('section', { class: 'panel narrow' }, h('p', { class: 'loading', role: 'status' }, invite ? 'Checking your join link…' : 'Looking for the room…'));
    main.append(checking);
    checkEntry(roomId, invite)
      .then((outcome) => {
        if (left) return;
        checking.remove();
        if (outcome.kind === 'form') showJoinForm(main, roomId, invite!, outcome, enter, known);
        else main.append(explain(outcome.title, outcome.text));
      })
      .catch((err: unknown) => {
        if (left) return;
        checking.replaceWith(explain('The room could not be checked', apiErrorWords(err)));
      });
  }
  return () => {
    left = true;
    leave?.();
  };
}

type Outcome = { kind: 'explain'; title: string; text: string } | { kind: 'form'; title: string; about: string };

async function checkEntry(roomId: string, invite: string | null): Promise<Outcome> {
  const [room, check] = await Promise.all([
    api.room(roomId).catch((err: unknown) => {
      if (err instanceof ApiError && err.status === 404) return null;
      throw err;
    }),
    invite ? api.checkInvite(roomId, invite).catch((err: unknown) => (err instanceof ApiError && err.status === 404 ? null : Promise.reject(err))) : Promise.resolve(null),
  ]);
  if (!room) return { kind: 'explain', title: 'This room does not exist', text: 'There is no room at this address. The link may be mistyped or cut short; check it with the person who sent it, or open a room of your own.' };
  if (room.info.ended) return { kind: 'explain', ...INVITE_WORDS.room_ended };
  if (!invite) return { kind: 'explain', title: 'You need a join link', text: 'To join this room, open the link the host shared with you. Or open a room of your own.' };
  if (check && !check.ok) return { kind: 'explain', ...INVITE_WORDS[check.reason] };
  const release = await api.release(room.info.releaseId);
  const n = room.info.memberCount;
  const listen = check?.ok && check.role === 'listener' ? ' This link lets you listen, chat and react.' : ' Everyone moves the same faders and hears the same mix.';
  return { kind: 'form', title: `Join the room: ${release.title}`, about: `${release.artist} · ${n} ${n === 1 ? 'person' : 'people'} here now.${listen}` };
}

function explain(title: string, text: string): HTMLElement {
  return h('section', { class: 'panel narrow entry-problem' }, h('h1', {}, title), h('p', { role: 'alert' }, text), h('a', { href: '/', class: 'button' }, 'Open a room of your own'));
}

function showJoinForm(main: HTMLElement, roomId: string, invite: string, outcome: { title: string; about: string }, enter: () => void, known: Membership | null): void {
  const heading = h('h1', { id: 'join-title' }, outcome.title);
  const about = h('p', { class: 'about' }, outcome.about);
  const status = h('p', { class: 'form-status', role: 'status' });
  const name = h('input', { id: 'join-name', name: 'name', type: 'text', required: true, maxlength: 48, autocomplete: 'nickname', placeholder: 'e.g. Alex', value: rememberedName() });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Join');
  const form = h(
    'form',
    { class: 'join-form', 'aria-labelledby': 'join-title' },
    h('label', { htmlFor: 'join-name' }, 'Your display name (others in the room see it)'),
    name,
    submit,
    status,
  );
  // Someone this browser has already been in the room: the same member, or a new one with this link.
  const back = known
    ? h(
        'div',
        { class: 'come-back' },
        h('p', {}, `You have been in this room as ${known.name}${known.role === 'host' ? ' (host)' : ''}.`),
        h(
          'button',
          {
            type: 'button',
            class: 'primary',
            onclick: () => {
              saveMembership(known);
              history.replaceState(null, '', location.pathname);
              main.replaceChildren();
              enter();
            },
          },
          `Go back in as ${known.name}`,
        ),
        h('p', { class: 'hint' }, 'Or join as someone new with this link:'),
      )
    : null;
  main.append(h('section', { class: 'panel narrow' }, heading, about, ...(back ? [back] : []), form));
  name.focus();

  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const display = name.value.trim();
    if (!display) {
      status.textContent = 'Type a display name first.';
      name.focus();
      return;
    }
    submit.disabled = true;
    status.textContent = 'Joining…';
    rememberName(display);
    api
      .join(roomId, invite, display)
      .then((joined) => {
        saveMembership({ roomId, token: joined.token, userId: joined.userId, name: joined.name, role: joined.role });
        // The invite leaves the address bar: this tab's membership is kept in the session.
        history.replaceState(null, '', location.pathname);
        main.replaceChildren();
        enter();
      })
      .catch((err: unknown) => {
        submit.disabled = false;
        const linkGone = err instanceof ApiError && err.code === 'unauthorized';
        status.textContent = `Could not join. ${linkGone ? 'This join link no longer works; ask the host for a new one.' : apiErrorWords(err, 'Your display name must be 1 to 48 characters.')}`;
      });
  });
}
