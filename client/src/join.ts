// The room's address (/r/:roomId): a member of this tab goes straight in; someone
// with a join link ("#invite=…") gives a display name and joins; anyone else is
// told that they need a link.
import { api, ApiError } from './api.ts';
import { h } from './dom.ts';
import { rememberName, rememberedName } from './landing.ts';
import { showRoom } from './room-view.ts';
import { loadMembership, saveMembership } from './session.ts';

export function showRoomEntry(main: HTMLElement, roomId: string, app: { navigate(path: string): void }): () => void {
  let leave: (() => void) | null = null;
  let left = false;
  const enter = () => {
    const m = loadMembership(roomId);
    if (!m || left) return;
    leave = showRoom(main, m, app);
  };
  const invite = new URLSearchParams(location.hash.slice(1)).get('invite');
  if (loadMembership(roomId)) {
    if (invite) history.replaceState(null, '', location.pathname);
    enter();
  } else if (invite) {
    showJoinForm(main, roomId, invite, enter);
  } else {
    document.title = 'Join a room · Remixroom';
    main.append(
      h(
        'section',
        { class: 'panel narrow' },
        h('h1', {}, 'You need a join link'),
        h('p', {}, 'To join this room, open the link the host shared with you (it ends in “#invite=…”). Or open a room of your own.'),
        h('a', { href: '/', class: 'button' }, 'Open a room of your own'),
      ),
    );
  }
  return () => {
    left = true;
    leave?.();
  };
}

function showJoinForm(main: HTMLElement, roomId: string, invite: string, enter: () => void): void {
  document.title = 'Join a room · Remixroom';
  const heading = h('h1', {}, 'Join the room');
  const about = h('p', { class: 'about' }, 'Checking the room…');
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
  heading.id = 'join-title';
  main.append(h('section', { class: 'panel narrow' }, heading, about, form));
  name.focus();

  api
    .room(roomId)
    .then(async ({ info }) => {
      if (info.ended) {
        about.textContent = 'This room has ended. Ask the host to open a new one.';
        submit.disabled = true;
        return;
      }
      const release = await api.release(info.releaseId);
      heading.textContent = `Join the room: ${release.title}`;
      about.textContent = `${release.artist} · ${info.memberCount} ${info.memberCount === 1 ? 'person' : 'people'} here now. Everyone moves the same faders and hears the same mix.`;
    })
    .catch((err: unknown) => {
      about.textContent = err instanceof ApiError && err.status === 404 ? 'This room does not exist (the link may be mistyped).' : `The room could not be checked: ${(err as Error).message}`;
    });

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
        status.textContent = `Could not join: ${(err as Error).message}`;
      });
  });
}
