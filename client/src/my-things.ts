// "My clips and purchases": every clip, loop and still this member made in the room
// and every order they placed, read from the server (GET /api/rooms/:id/members/me/things)
// with fresh download links, so that nothing a fan made is lost to a reload, a new
// tab or the end of the room. Shown in the room and on the page of an ended room.
import type { RenderProgress } from '../../shared/socket-events.ts';
import { api, type ClipView, type MyThings, type OrderView } from './api.ts';
import { formatPrice } from './clips.ts';
import { h } from './dom.ts';
import type { Membership } from './session.ts';
import { apiErrorWords } from './words.ts';

/** Progress events come in bursts while a render runs: the list is read again once things settle. */
const REREAD_AFTER_MS = 1500;
/** A link this close to its expiry is renewed before it is used. */
const LINK_MARGIN_MS = 30_000;

const FILES: Record<string, string> = { video: 'Video (MP4)', audio: 'Audio (M4A)', gif: 'GIF', manifest: 'Manifest' };
const STATUS: Record<ClipView['status'], string> = { queued: 'waiting to be made', running: 'being made', done: 'ready', failed: 'could not be made' };
const ORDER_STATUS: Record<OrderView['status'], string> = {
  payment_pending: 'payment pending',
  paid: 'paid; the longer version is being made',
  declined: 'declined: nothing was charged',
  fulfilled: 'paid; ready',
  failed: 'could not be completed',
  refunded: 'refunded',
};

export class MyThingsPanel {
  readonly element: HTMLElement;
  readonly #me: Membership;
  readonly #list = h('ul', { class: 'my-things-list' });
  readonly #status = h('p', { class: 'hint', role: 'status' });
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  #reading = false;
  /** Asked to read again while a read was under way: its answer may predate what changed, so read once more after it. */
  #again: string | null = null;

  constructor(me: Membership, opts: { ended?: boolean } = {}) {
    this.#me = me;
    const refresh = h('button', { type: 'button', class: 'refresh-things', onclick: () => this.refresh() }, 'Refresh');
    this.element = h(
      'section',
      { class: 'panel my-things', 'aria-labelledby': 'my-things-title' },
      h('h2', { id: 'my-things-title' }, 'My clips and purchases'),
      h('p', { class: 'hint' }, opts.ended ? 'What you made and bought in this room stays yours: download it here.' : 'Everything you make and buy in this room, kept for you (also after the room ends).'),
      this.#list,
      h('div', { class: 'inline' }, refresh, this.#status),
    );
    this.refresh();
  }

  /** A render changed: read the list again once the burst is over (finished, failed or new). */
  progress(p: RenderProgress): void {
    // A running render's ticks change nothing listed, once it is listed: a render that starts at once
    // (nothing queued before it) is never `queued`, and would otherwise be listed only when done.
    // Its ticks (every half second) must not put off a read already due either.
    if (p.status === 'running' && (this.#timer || this.#list.querySelector(`li[data-clip="${CSS.escape(p.clipId)}"]`))) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.refresh();
    }, REREAD_AFTER_MS);
  }

  /** Reads the list again; `note`: what to say once it is shown. */
  refresh(note = ''): void {
    if (this.#closed) return;
    if (this.#reading) {
      this.#again = note || this.#again || '';
      return;
    }
    this.#reading = true;
    this.#status.textContent = 'Loading…';
    api
      .myThings(this.#me.roomId, this.#me.token)
      .then((things) => {
        if (this.#closed) return;
        this.#render(things);
        this.#status.textContent = note;
      })
      .catch((err: unknown) => {
        if (!this.#closed) this.#status.textContent = `Your clips could not be listed. ${apiErrorWords(err)}`;
      })
      .finally(() => {
        this.#reading = false;
        const again = this.#again;
        this.#again = null;
        if (again !== null) this.refresh(again);
      });
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #render(things: MyThings): void {
    const items = [...things.clips.map((c) => this.#clipItem(c)), ...things.orders.map((o) => this.#orderItem(o))];
    this.#list.replaceChildren(...(items.length ? items : [h('li', { class: 'empty' }, 'Nothing yet. Clips, loops, pictures and purchases you make here appear in this list.')]));
  }

  #clipItem(c: MyThings['clips'][number]): HTMLElement {
    const what = c.kind === 'clip' ? `Clip, ${Math.round(c.seconds)} s` : c.kind === 'loop' ? `Loop of the visuals, ${Math.round(c.seconds)} s` : 'Picture of the visuals';
    const when = new Date(c.createdAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
    const status = c.kind === 'still' ? 'saved to your device when you took it' : STATUS[c.status];
    return h('li', { class: 'my-thing', 'data-clip': c.clipId, 'data-kind': c.kind }, h('b', {}, what), h('span', { class: 'hint' }, ` · ${when} · ${status}`), this.#downloads(c, what));
  }

  #orderItem(o: OrderView): HTMLElement {
    const when = new Date(o.createdAt).toLocaleString([], { dateStyle: 'short', timeStyle: 'short' });
    return h(
      'li',
      { class: 'my-thing', 'data-order': o.orderId, 'data-kind': 'order' },
      h('b', {}, `Longer version, ${formatPrice(o.amountCents, o.currency)}`),
      h('span', { class: 'hint' }, ` · ${when} · ${ORDER_STATUS[o.status]}`),
      o.render ? this.#downloads(o.render, 'longer version') : null,
    );
  }

  /** Download links; one older than its expiry (links last an hour) reads the list again instead. */
  #downloads(v: ClipView, what: string): HTMLElement | null {
    if (!v.downloads) return null;
    const expiresAtMs = Date.parse(v.downloads.expiresAt);
    const links = Object.keys(FILES)
      .filter((n) => v.downloads?.[n])
      .map((n) => {
        const a = h('a', { class: 'button download', href: v.downloads![n]!, download: '', 'data-file': n, 'aria-label': `Download the ${what.toLowerCase()}: ${FILES[n]}` }, `⬇ ${FILES[n]}`);
        a.addEventListener('click', (ev) => {
          if (Date.now() < expiresAtMs - LINK_MARGIN_MS) return;
          ev.preventDefault();
          this.refresh('That link had expired: here are fresh ones. Press it again.');
        });
        return a;
      });
    return links.length ? h('div', { class: 'downloads', role: 'group', 'aria-label': `Download the ${what.toLowerCase()}` }, ...links) : null;
  }
}
