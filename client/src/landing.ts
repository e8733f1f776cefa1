// The landing page: the releases on this server (the demo first), and opening a
// room for one of them with your name. The opener becomes the room's host.
import type { ReleaseListItem } from '../../shared/api-types.ts';
import { api } from './api.ts';
import { formatDuration, h, uid } from './dom.ts';
import { saveMembership, tokenClaims } from './session.ts';

const DEMO_RELEASE_ID = 'remixroom-demo';

export function showLanding(main: HTMLElement, app: { navigate(path: string): void }): void {
  const list = h('div', { class: 'releases', 'aria-busy': 'true' }, h('p', {}, 'Loading the releases…'));
  main.append(
    h(
      'section',
      { class: 'intro' },
      h('h1', {}, 'Remix an album together, live'),
      h(
        'p',
        {},
        'Pick a release and open a room. Share the link: everyone in the room moves the same faders, hears the same mix, and types prompts that change the visuals made from the album’s artwork.',
      ),
    ),
    h('h2', { id: 'releases-title' }, 'Releases'),
    list,
  );
  list.setAttribute('aria-labelledby', 'releases-title');

  api
    .releases()
    .then((releases) => {
      list.removeAttribute('aria-busy');
      list.replaceChildren();
      if (releases.length === 0) {
        list.append(h('p', {}, 'This server has no releases yet.'));
        return;
      }
      const sorted = [...releases].sort((a, b) => Number(b.id === DEMO_RELEASE_ID) - Number(a.id === DEMO_RELEASE_ID));
      for (const r of sorted) list.append(releaseCard(r, app));
    })
    .catch((err: unknown) => {
      list.removeAttribute('aria-busy');
      list.replaceChildren(h('p', { class: 'error', role: 'alert' }, `The releases could not be loaded: ${(err as Error).message}`));
    });
}

function releaseCard(r: ReleaseListItem, app: { navigate(path: string): void }): HTMLElement {
  const nameId = uid('host-name');
  const roleId = uid('join-role');
  const status = h('p', { class: 'form-status', role: 'status' });
  const name = h('input', { id: nameId, name: 'name', type: 'text', required: true, maxlength: 48, autocomplete: 'nickname', placeholder: 'e.g. Sam', value: rememberedName() });
  const joinRole = h(
    'select',
    { id: roleId, name: 'joinRole' },
    h('option', { value: 'remixer' }, 'remix with me'),
    h('option', { value: 'listener' }, 'only listen, chat and react'),
  );
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Open a room');
  const form = h(
    'form',
    { class: 'open-room', 'aria-label': `Open a room for ${r.title}` },
    h('label', { htmlFor: nameId }, 'Your name'),
    name,
    h('label', { htmlFor: roleId }, 'People who join by your link can'),
    joinRole,
    submit,
    status,
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const hostName = name.value.trim();
    if (!hostName) {
      status.textContent = 'Type your name first.';
      name.focus();
      return;
    }
    submit.disabled = true;
    status.textContent = 'Opening a room…';
    rememberName(hostName);
    api
      .openRoom(r.id, hostName, joinRole.value === 'listener' ? 'listener' : 'remixer')
      .then((opened) => {
        const claims = tokenClaims(opened.hostToken);
        saveMembership({ roomId: opened.roomId, token: opened.hostToken, userId: opened.userId ?? claims?.sub ?? 'host', name: hostName, role: 'host', joinUrl: opened.joinUrl, creator: true });
        app.navigate(`/r/${opened.roomId}`);
      })
      .catch((err: unknown) => {
        submit.disabled = false;
        status.textContent = `The room could not be opened: ${(err as Error).message}`;
      });
  });
  return h(
    'article',
    { class: 'release-card', 'data-release': r.id },
    r.coverUrl ? h('img', { src: r.coverUrl, alt: `Cover of ${r.title}`, width: 160, height: 160, loading: 'lazy' }) : h('div', { class: 'cover-placeholder', 'aria-hidden': 'true' }),
    h(
      'div',
      { class: 'release-body' },
      h('h3', {}, r.title),
      h('p', { class: 'artist' }, `${r.artist} · ${formatDuration(r.durationSec)}`, r.id === DEMO_RELEASE_ID ? h('span', { class: 'badge' }, 'demo') : null),
      form,
    ),
  );
}

export function rememberedName(): string {
  try {
    return localStorage.getItem('remixroom.name') ?? '';
  } catch {
    return '';
  }
}

export function rememberName(name: string): void {
  try {
    localStorage.setItem('remixroom.name', name);
  } catch {
    // Not remembered; no harm.
  }
}
