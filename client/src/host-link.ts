// The host's way back in from another device: a private host link that lets one
// person in (POST /api/rooms/:id/tokens with role host and maxUses 1), made on
// demand and shown with a warning. On this browser the host needs no link: it
// comes back as the same member (session.ts).
import { api } from './api.ts';
import { h } from './dom.ts';
import type { Membership } from './session.ts';
import { apiErrorWords } from './words.ts';

/** Only the room's creator can make host links (the server says so too). */
export function hostLinkBox(me: Membership): HTMLElement | null {
  if (!me.creator) return null;
  const out = h('div', { class: 'extra-link host-link', role: 'status' });
  const make = h('button', { type: 'button' }, 'Make a private host link for another device');
  make.addEventListener('click', () => {
    make.disabled = true;
    api
      .newLink(me.roomId, me.token, 'host', 1)
      .then(({ joinUrl }) => {
        out.replaceChildren(
          h('label', { htmlFor: 'host-link' }, 'Your private host link (works once)'),
          h('input', { id: 'host-link', type: 'text', readonly: true, value: joinUrl }),
          h('p', { class: 'warning', role: 'alert' }, 'Do not share this link: whoever opens it first becomes a host of this room. Open it yourself on your other device.'),
        );
      })
      .catch((err: unknown) => {
        out.textContent = `Could not make the link. ${apiErrorWords(err)}`;
      })
      .finally(() => {
        make.disabled = false;
      });
  });
  return h(
    'fieldset',
    { class: 'links host-return' },
    h('legend', {}, 'Your way back in'),
    h('p', { class: 'hint' }, 'In this browser you come back as yourself: open the room’s address again. For another device, make a private link:'),
    make,
    out,
  );
}
