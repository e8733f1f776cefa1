// Clips, purchases and downloads of the visuals. A member saves the last seconds
// of the room (a clip: MP4 video, M4A audio and a signed manifest), follows its
// render (the room's `render:progress` events, with polling as a fallback),
// previews and downloads it, and can buy the full-length version with the
// payment provider (the sandbox's test cards here). Near the visuals: a PNG still
// and a seamless loop (MP4 and GIF) of what the room sees.
import type { ReleaseView } from '../../shared/api-types.ts';
import type { RenderProgress } from '../../shared/socket-events.ts';
import { api, ApiError, type ClipView, type OrderView } from './api.ts';
import { formatDuration, h, uid } from './dom.ts';
import type { Membership } from './session.ts';
import { apiErrorWords } from './words.ts';

const POLL_MS = 2000;
const ORDER_POLL_MS = 1000;
/** Links are re-read this long before they expire. */
const LINK_MARGIN_MS = 60_000;

/** A key for one attempt of a request that must not run twice (a clip, a loop, an order). */
export function idempotencyKey(): string {
  if (typeof crypto.randomUUID === 'function') return crypto.randomUUID();
  return Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, '0')).join('');
}

export function formatPrice(cents: number, currency: string): string {
  try {
    return new Intl.NumberFormat(undefined, { style: 'currency', currency }).format(cents / 100);
  } catch {
    return `${(cents / 100).toFixed(2)} ${currency}`;
  }
}

const DECLINES: Record<string, string> = {
  card_declined: 'the card was declined',
  insufficient_funds: 'the card has insufficient funds',
  not_charged: 'the payment did not go through and nothing was charged',
};

/** A card number as the sandbox takes it: 12 to 19 digits, spaces and dashes aside. */
const CARD_DIGITS = /^\d{12,19}$/;
const CARD_WORDS = 'That is not a card number: type the 12 to 19 digits on the card (in the sandbox: 4242 4242 4242 4242).';

/** What a file of a render is, in words, and the name of its download button. */
const FILES: Record<string, { label: string; kind: string }> = {
  video: { label: 'Video', kind: 'MP4' },
  audio: { label: 'Audio', kind: 'M4A' },
  gif: { label: 'GIF', kind: 'animated' },
  manifest: { label: 'Manifest', kind: 'signed JSON' },
};

/** Where progress of renders arrives from the room (socket.io `render:progress`). */
export interface ProgressSource {
  onProgress(fn: (p: RenderProgress) => void): () => void;
}

/**
 * Follows one render (clip, loop or a purchased full version) to the end: the
 * room's progress events move the bar at once; a slow poll of the clip catches up
 * when an event is missed, and fetches the links once it is done.
 */
class RenderFollower {
  readonly clipId: string;
  #view: ClipView;
  #timer: ReturnType<typeof setTimeout> | null = null;
  #off: () => void;
  #stopped = false;
  readonly #onChange: (v: ClipView) => void;

  readonly #token: () => string;

  /** `token`: the member's token now (it is refreshed while the page is open). */
  constructor(view: ClipView, progress: ProgressSource, token: () => string, onChange: (v: ClipView) => void) {
    this.#token = token;
    this.clipId = view.clipId;
    this.#view = view;
    this.#onChange = onChange;
    this.#off = progress.onProgress((p) => {
      if (p.clipId !== this.clipId || this.#stopped) return;
      if (p.status === 'done' || p.status === 'failed') {
        void this.#poll();
        return;
      }
      this.#update({ ...this.#view, status: p.status, progress: Math.max(this.#view.progress, p.progress) });
    });
    this.#update(view);
    this.#schedule();
  }

  get view(): ClipView {
    return this.#view;
  }

  /** Fresh signed links (they expire after an hour). */
  async refresh(): Promise<ClipView> {
    const v = await api.clip(this.clipId, this.#token());
    this.#update(v);
    return v;
  }

  stop(): void {
    this.#stopped = true;
    this.#off();
    if (this.#timer) clearTimeout(this.#timer);
  }

  #schedule(): void {
    if (this.#stopped || this.#view.status === 'done' || this.#view.status === 'failed') return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => void this.#poll(), POLL_MS);
  }

  async #poll(): Promise<void> {
    if (this.#stopped) return;
    try {
      this.#update(await api.clip(this.clipId, this.#token()));
    } catch {
      // A missed poll is caught up by the next one.
    }
    this.#schedule();
  }

  #update(v: ClipView): void {
    if (this.#stopped) return;
    // The stored progress can lag the room's events: the bar never moves back.
    if (v.status === 'running' && this.#view.status === 'running' && v.progress < this.#view.progress) v = { ...v, progress: this.#view.progress };
    this.#view = v;
    this.#onChange(v);
    if (v.status === 'done' || v.status === 'failed') this.#stopStream();
  }

  #stopStream(): void {
    this.#off();
    if (this.#timer) clearTimeout(this.#timer);
  }
}

/** Where a render's links come from, and fresh ones when they expire. */
interface LinkSource {
  readonly view: ClipView;
  refresh(): Promise<ClipView>;
}

/** Download buttons for a finished render; an expired link is re-read before it is followed. */
function downloadLinks(follower: LinkSource, what: string, names: readonly string[]): HTMLElement {
  const box = h('div', { class: 'downloads', role: 'group', 'aria-label': `Download the ${what}` });
  const render = (v: ClipView) => {
    box.replaceChildren(
      ...names
        .filter((n) => v.downloads?.[n])
        .map((n) => {
          const f = FILES[n] ?? { label: n, kind: '' };
          const a = h('a', { class: 'button download', href: v.downloads![n]!, download: '', 'data-file': n, 'aria-label': `Download the ${what}: ${f.label.toLowerCase()} (${f.kind})` }, `⬇ ${f.label}`, h('span', { class: 'kind' }, ` ${f.kind}`));
          a.addEventListener('click', (ev) => {
            const expires = Date.parse(follower.view.downloads?.expiresAt ?? '');
            if (!Number.isFinite(expires) || expires - Date.now() > LINK_MARGIN_MS) return;
            ev.preventDefault();
            follower.refresh().then(
              (fresh) => {
                const href = fresh.downloads?.[n];
                if (href) location.assign(href);
              },
              () => undefined,
            );
          });
          return a;
        }),
    );
  };
  return Object.assign(box, { renderLinks: render });
}

function progressText(v: ClipView, what: string): string {
  if (v.status === 'queued') return `Your ${what} is waiting its turn…`;
  if (v.status === 'running') return `Making your ${what}… ${Math.round(v.progress * 100)}%`;
  if (v.status === 'done') return `Your ${what} is ready (${formatDuration(v.seconds)}).`;
  return `Your ${what} could not be made: ${v.error ?? 'the render failed'}.`;
}

/** One clip: progress, then a preview, downloads and the purchase of the full version. */
class ClipCard {
  readonly element: HTMLElement;
  readonly #follower: RenderFollower;
  readonly #status = h('p', { class: 'render-status', role: 'status' });
  readonly #bar = h('progress', { max: 1, value: 0 });
  readonly #error = h('p', { class: 'error', role: 'alert' });
  readonly #preview = h('div', { class: 'preview' });
  readonly #links: HTMLElement & { renderLinks(v: ClipView): void };
  readonly #buy = h('div', { class: 'buy' });
  #shownDone = false;
  readonly #ctx: ClipContext;

  constructor(view: ClipView, n: number, ctx: ClipContext) {
    this.#ctx = ctx;
    const titleId = uid('clip');
    this.#bar.setAttribute('aria-labelledby', titleId);
    this.element = h(
      'li',
      { class: 'clip-card', 'data-clip': view.clipId, 'aria-labelledby': titleId },
      h('h3', { id: titleId }, `Clip ${n}`, h('span', { class: 'hint' }, ` · the last ${formatDuration(view.seconds)} · ${new Date(view.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' })}`)),
      this.#status,
      this.#bar,
      this.#error,
      this.#preview,
    );
    this.#follower = new RenderFollower(view, ctx.progress, () => ctx.me.token, (v) => this.#render(v));
    this.#links = downloadLinks(this.#follower, 'clip', ['video', 'audio', 'manifest']) as HTMLElement & { renderLinks(v: ClipView): void };
    this.element.append(this.#links, this.#vertical, this.#buy);
    this.#render(this.#follower.view);
  }

  close(): void {
    this.#follower.stop();
    this.#verticalFollower?.stop();
    this.#buyForm?.close();
  }

  #buyForm: PurchaseForm | null = null;
  readonly #vertical = h('div', { class: 'vertical' });
  #verticalFollower: RenderFollower | null = null;

  /** "A vertical version for phones": the server draws the visuals again at 1080x1920 (not a crop of this one). */
  #offerVertical(clipId: string): void {
    const status = h('p', { class: 'render-status', role: 'status' });
    const button = h('button', { type: 'button', class: 'make-vertical' }, 'Make a vertical version for phones');
    // Its links come from its own render, read again when they expire.
    const source: LinkSource = { get view() { return follower!.view; }, refresh: () => follower!.refresh() };
    let follower: RenderFollower | null = null;
    const links = downloadLinks(source, 'vertical version', ['video']) as HTMLElement & { renderLinks(v: ClipView): void };
    const key = idempotencyKey();
    button.addEventListener('click', () => {
      button.disabled = true;
      status.textContent = 'Asking for the vertical version…';
      api
        .commitVertical(clipId, this.#ctx.me.token, key)
        .then((view) => {
          button.remove();
          follower = new RenderFollower(view, this.#ctx.progress, () => this.#ctx.me.token, (v) => {
            status.textContent = v.status === 'done' ? 'The vertical version (1080×1920) is ready.' : progressText(v, 'vertical version');
            if (v.status === 'done') links.renderLinks(v);
          });
          this.#verticalFollower = follower;
        })
        .catch((err: unknown) => {
          button.disabled = false;
          status.textContent = `The vertical version could not be asked for: ${apiErrorWords(err)}`;
        });
    });
    this.#vertical.replaceChildren(
      h('p', { class: 'hint' }, 'For short-video apps on phones: the same moment, drawn tall.'),
      button,
      status,
      links,
    );
  }

  #render(v: ClipView): void {
    if (!this.#links) return;
    this.element.dataset['status'] = v.status;
    this.#status.textContent = v.status === 'failed' ? 'Your clip could not be made.' : progressText(v, 'clip');
    this.#bar.value = v.status === 'done' ? 1 : v.progress;
    this.#bar.hidden = v.status === 'done' || v.status === 'failed';
    this.#error.textContent = v.status === 'failed' ? `What went wrong: ${v.error ?? 'the render failed'}. Try saving it again.` : '';
    if (v.status !== 'done') return;
    this.#links.renderLinks(v);
    if (this.#shownDone) return;
    this.#shownDone = true;
    const src = v.downloads?.['video'];
    if (src) this.#preview.replaceChildren(h('video', { src, controls: true, preload: 'metadata', playsinline: true, 'aria-label': 'Preview of the clip' }));
    this.#offerVertical(v.clipId);
    const p = this.#ctx.release.rules.purchase;
    if (p.enabled) {
      this.#buyForm = new PurchaseForm(v.clipId, this.#ctx);
      this.#buy.replaceChildren(this.#buyForm.element);
    }
  }
}

interface ClipContext {
  me: Membership;
  release: ReleaseView;
  progress: ProgressSource;
}

/** "Buy the full version": a card number (the sandbox's test cards), then the order followed to its downloads. */
class PurchaseForm {
  readonly element: HTMLElement;
  readonly #ctx: ClipContext;
  readonly #clipId: string;
  readonly #open: HTMLButtonElement;
  readonly #form: HTMLFormElement;
  readonly #card: HTMLInputElement;
  readonly #pay: HTMLButtonElement;
  readonly #status = h('p', { class: 'order-status', role: 'status' });
  readonly #bar = h('progress', { max: 1, value: 0, hidden: true, 'aria-label': 'Rendering the full version' });
  readonly #error = h('p', { class: 'error', role: 'alert' });
  readonly #done = h('div', { class: 'full-version' });
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;
  /** The key of the attempt in flight; kept when the request may not have reached the server, so that its retry is the same attempt. */
  #key: string | null = null;

  constructor(clipId: string, ctx: ClipContext) {
    this.#ctx = ctx;
    this.#clipId = clipId;
    const p = ctx.release.rules.purchase;
    const price = formatPrice(p.priceCents, p.currency);
    const length = p.lengthSeconds ?? ctx.release.durationSec;
    const cardId = uid('card');
    const hintId = uid('card-hint');
    this.#card = h('input', { id: cardId, type: 'text', inputmode: 'numeric', autocomplete: 'cc-number', placeholder: '4242 4242 4242 4242', maxlength: 32, required: true, 'aria-describedby': hintId });
    this.#pay = h('button', { type: 'submit', class: 'primary' }, `Pay ${price}`);
    this.#form = h(
      'form',
      { class: 'buy-form', hidden: true, onsubmit: (ev: SubmitEvent) => this.#submit(ev) },
      h('p', {}, `The whole piece (${formatDuration(length)}) with the room’s mix, in full quality, for ${price}.`),
      h('label', { htmlFor: cardId }, 'Card number'),
      h('div', { class: 'inline' }, this.#card, this.#pay),
      h('p', { id: hintId, class: 'hint sandbox' }, 'Sandbox — no real money moves. Test card: 4242 4242 4242 4242 (4000 0000 0000 0002 is declined).'),
    );
    this.#open = h('button', { type: 'button', class: 'primary buy-open', 'aria-expanded': 'false' }, `Buy the full version (${price})`);
    this.#open.addEventListener('click', () => {
      const show = this.#form.hidden;
      this.#form.hidden = !show;
      this.#open.setAttribute('aria-expanded', String(show));
      if (show) this.#card.focus();
    });
    this.element = h('div', { class: 'purchase' }, this.#open, this.#form, this.#status, this.#bar, this.#error, this.#done);
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  #submit(ev: SubmitEvent): void {
    ev.preventDefault();
    const card = this.#card.value.trim();
    if (!card) {
      this.#error.textContent = 'Type a card number (in the sandbox: 4242 4242 4242 4242).';
      this.#card.focus();
      return;
    }
    if (!CARD_DIGITS.test(card.replace(/[\s-]/g, ''))) {
      this.#error.textContent = CARD_WORDS;
      this.#card.focus();
      return;
    }
    this.#key ??= idempotencyKey();
    const key = this.#key;
    this.#busy(true);
    this.#error.textContent = '';
    this.#status.textContent = 'Placing your order…';
    api
      .placeOrder(this.#clipId, card, this.#ctx.me.token, key)
      .then((order) => {
        this.#key = null;
        this.#follow(order);
      })
      .catch((err: unknown) => {
        // Without an answer the order may exist: the same key makes the retry the same order.
        if (!(err instanceof ApiError && err.status === 0)) this.#key = null;
        this.#busy(false);
        this.#status.textContent = '';
        this.#error.textContent = `The order was not placed. ${apiErrorWords(err, CARD_WORDS)}`;
      });
  }

  #busy(busy: boolean): void {
    this.#pay.disabled = busy;
    this.#card.disabled = busy;
    this.#open.disabled = busy;
  }

  #follow(o: OrderView): void {
    if (this.#closed) return;
    this.element.dataset['order'] = o.status;
    const again = () => {
      this.#timer = setTimeout(() => {
        api.order(o.orderId, this.#ctx.me.token).then(
          (next) => this.#follow(next),
          () => again(),
        );
      }, ORDER_POLL_MS);
    };
    if (o.status === 'payment_pending') {
      this.#status.textContent = 'Waiting for the payment to go through…';
      again();
      return;
    }
    if (o.status === 'declined' || o.status === 'failed') {
      const why = DECLINES[o.declineCode ?? ''] ?? (o.declineCode ? `the payment was refused (${o.declineCode})` : 'the payment was refused');
      this.#status.textContent = '';
      this.#error.textContent = `Payment declined: ${why}. Nothing was charged; you can try another card.`;
      this.#busy(false);
      this.#card.select();
      return;
    }
    if (o.status === 'refunded') {
      this.#bar.hidden = true;
      this.#status.textContent = '';
      this.#done.replaceChildren();
      this.#error.textContent = 'This purchase was refunded; the full version is no longer available.';
      return;
    }
    // Paid: the full version renders; fulfilled once it is done.
    const r = o.render;
    this.#form.hidden = true;
    this.#open.hidden = true;
    if (r?.status === 'failed') {
      this.#bar.hidden = true;
      this.#error.textContent = `Paid, but the full version could not be made: ${r.error ?? 'the render failed'}. Your purchase is kept; reload the page later to try again.`;
      return;
    }
    if (o.status !== 'fulfilled' || r?.status !== 'done') {
      this.#status.textContent = `Paid ${formatPrice(o.amountCents, o.currency)}, thank you! Rendering your full version… ${Math.round((r?.progress ?? 0) * 100)}%`;
      this.#bar.hidden = false;
      this.#bar.value = r?.progress ?? 0;
      again();
      return;
    }
    this.#bar.hidden = true;
    this.#status.textContent = `Your full version is ready (${formatDuration(r.seconds)}).`;
    // Fresh links of the full version come from the order (GET /api/clips/:id shows only clips and loops).
    const source = {
      view: r,
      refresh: async (): Promise<ClipView> => {
        const fresh = (await api.order(o.orderId, this.#ctx.me.token)).render;
        if (!fresh) throw new Error('the order has no full version');
        source.view = fresh;
        links.renderLinks(fresh);
        return fresh;
      },
    };
    const links = downloadLinks(source, 'full version', ['video', 'audio', 'manifest']) as HTMLElement & { renderLinks(v: ClipView): void };
    links.renderLinks(r);
    this.#done.replaceChildren(h('h4', {}, 'The full version'), links);
  }
}

/** The clips panel: length, "Save the last N seconds", and the member's clips. */
export class ClipsPanel {
  readonly element: HTMLElement;
  readonly #ctx: ClipContext;
  readonly #cards: ClipCard[] = [];
  readonly #list = h('ol', { class: 'clip-list', 'aria-label': 'Your clips' });
  readonly #save: HTMLButtonElement;
  readonly #length: HTMLSelectElement;
  readonly #result = h('p', { class: 'error', role: 'alert' });

  constructor(me: Membership, release: ReleaseView, progress: ProgressSource) {
    this.#ctx = { me, release, progress };
    const rules = release.rules.clips;
    const free = rules.freeSeconds;
    const lengths = [...new Set([10, 20, free].filter((s) => s <= free))].sort((a, b) => b - a);
    this.#length = h('select', { id: 'clip-length' }, ...lengths.map((s) => h('option', { value: s, selected: s === free }, `the last ${s} seconds`)));
    this.#save = h('button', { type: 'submit', class: 'primary save-clip', 'aria-describedby': 'clips-hint' }, `Save the last ${free} seconds`);
    this.#length.addEventListener('change', () => (this.#save.textContent = `Save the last ${this.#length.value} seconds`));
    const p = release.rules.purchase;
    const hint = !rules.downloads
      ? 'The artist does not allow clips of this release to be downloaded.'
      : `A clip is the room’s mix and visuals as they just played: video (MP4), audio (M4A) and a signed manifest of who made it.${p.enabled ? ` The full version can be bought for ${formatPrice(p.priceCents, p.currency)}.` : ''}`;
    if (!rules.downloads) {
      this.#save.disabled = true;
      this.#length.disabled = true;
    }
    this.element = h(
      'section',
      { class: 'clips', 'aria-labelledby': 'clips-title' },
      h('h3', { id: 'clips-title' }, 'Clips'),
      h(
        'form',
        { class: 'clip-form', onsubmit: (ev: SubmitEvent) => this.#commit(ev) },
        h('label', { htmlFor: 'clip-length' }, 'Length'),
        h('div', { class: 'inline' }, this.#length, this.#save),
      ),
      h('p', { id: 'clips-hint', class: 'hint' }, hint),
      this.#result,
      this.#list,
    );
  }

  close(): void {
    for (const c of this.#cards) c.close();
  }

  #commit(ev: SubmitEvent): void {
    ev.preventDefault();
    const seconds = Number(this.#length.value);
    this.#save.disabled = true;
    this.#result.textContent = '';
    const label = this.#save.textContent;
    this.#save.textContent = 'Saving…';
    api
      .commitClip(this.#ctx.me.roomId, this.#ctx.me.token, seconds, idempotencyKey())
      .then((view) => {
        const card = new ClipCard(view, this.#cards.length + 1, this.#ctx);
        this.#cards.push(card);
        this.#list.prepend(card.element);
        card.element.scrollIntoView({ block: 'nearest' });
      })
      .catch((err: unknown) => {
        this.#result.textContent = `The clip was not saved. ${apiErrorWords(err, `A clip can be at most ${this.#ctx.release.rules.clips.freeSeconds} seconds long here.`)}`;
      })
      .finally(() => {
        this.#save.disabled = !this.#ctx.release.rules.clips.downloads;
        this.#save.textContent = label;
      });
  }
}

/** "Save picture" and "Save loop", under the visuals. */
export class VisualSaves {
  readonly element: HTMLElement;
  readonly #ctx: ClipContext;
  readonly #status = h('p', { class: 'visual-save-status', role: 'status' });
  readonly #error = h('p', { class: 'error', role: 'alert' });
  readonly #loops = h('ul', { class: 'loop-list', 'aria-label': 'Your loops of the visuals' });
  readonly #followers: RenderFollower[] = [];
  readonly #urls: string[] = [];

  constructor(me: Membership, release: ReleaseView, progress: ProgressSource) {
    this.#ctx = { me, release, progress };
    const picture = h('button', { type: 'button', class: 'save-picture' }, 'Save picture');
    picture.addEventListener('click', () => this.#picture(picture));
    const seconds = h('select', { id: 'loop-length' }, ...[2, 4, 8].map((s) => h('option', { value: s, selected: s === 4 }, `${s} s`)));
    const loop = h('button', { type: 'button', class: 'save-loop' }, 'Save loop');
    loop.addEventListener('click', () => this.#loop(loop, Number(seconds.value)));
    this.element = h(
      'div',
      { class: 'visual-saves', role: 'group', 'aria-label': 'Save the visuals' },
      h('div', { class: 'inline' }, picture, h('label', { htmlFor: 'loop-length', class: 'inline-label' }, 'Loop length'), seconds, loop),
      this.#status,
      this.#error,
      this.#loops,
    );
  }

  close(): void {
    for (const f of this.#followers) f.stop();
    for (const u of this.#urls) URL.revokeObjectURL(u);
  }

  #picture(button: HTMLButtonElement): void {
    button.disabled = true;
    this.#error.textContent = '';
    this.#status.textContent = 'Taking a picture of the visuals…';
    api
      .visualsStill(this.#ctx.me.roomId, this.#ctx.me.token)
      .then((blob) => {
        const url = URL.createObjectURL(blob);
        this.#urls.push(url);
        const name = `remixroom-${this.#ctx.release.id}-${new Date().toISOString().replace(/[:.]/g, '-')}.png`;
        const a = h('a', { href: url, download: name, class: 'button download', 'data-file': 'png' }, '⬇ Picture (PNG)');
        this.#loops.prepend(h('li', { class: 'picture' }, h('img', { src: url, alt: 'The picture of the visuals you saved', width: 160, height: 90 }), a));
        this.#status.textContent = 'Picture saved.';
        a.click();
      })
      .catch((err: unknown) => {
        this.#status.textContent = '';
        this.#error.textContent = `The picture was not saved. ${apiErrorWords(err)}`;
      })
      .finally(() => (button.disabled = false));
  }

  #loop(button: HTMLButtonElement, seconds: number): void {
    button.disabled = true;
    this.#error.textContent = '';
    this.#status.textContent = 'Asking for a loop of the visuals…';
    api
      .commitLoop(this.#ctx.me.roomId, this.#ctx.me.token, seconds, idempotencyKey())
      .then((view) => {
        this.#status.textContent = '';
        const status = h('p', { class: 'render-status', role: 'status' });
        const bar = h('progress', { max: 1, value: 0, 'aria-label': 'Making the loop' });
        const li = h('li', { class: 'loop-card', 'data-clip': view.clipId }, status, bar);
        let links: (HTMLElement & { renderLinks(v: ClipView): void }) | null = null;
        let shown = false;
        const follower = new RenderFollower(view, this.#ctx.progress, () => this.#ctx.me.token, (v) => {
          li.dataset['status'] = v.status;
          status.textContent = progressText(v, 'loop');
          bar.value = v.progress;
          bar.hidden = v.status === 'done' || v.status === 'failed';
          if (v.status === 'failed') status.classList.add('error');
          if (v.status === 'done' && links) {
            links.renderLinks(v);
            const src = v.downloads?.['video'];
            if (!shown && src) {
              shown = true;
              li.prepend(h('video', { src, autoplay: true, loop: true, muted: true, playsinline: true, width: 160, height: 90, 'aria-label': 'Preview of the loop' }));
            }
          }
        });
        links = downloadLinks(follower, 'loop', ['video', 'gif', 'manifest']) as HTMLElement & { renderLinks(v: ClipView): void };
        li.append(links);
        if (follower.view.status === 'done') links.renderLinks(follower.view);
        this.#followers.push(follower);
        this.#loops.prepend(li);
      })
      .catch((err: unknown) => {
        this.#status.textContent = '';
        this.#error.textContent = `The loop was not saved. ${apiErrorWords(err)}`;
      })
      .finally(() => (button.disabled = false));
  }
}
