// The takes panel: save the room's mix, arrangement and visuals under a name, see the
// room's takes, and return the room to one (everyone hears it at once). Who may: the
// host, and remixers when the host allows it (the rule takesByRemixers, which the host
// sets here). The list is read again whenever anyone saves a take (meta.takesSavedAtMs).
import type { RoomState } from '../../shared/room-doc.ts';
import type { Role } from '../../shared/roles.ts';
import { TAKE_NAME_MAX, type TakeView } from '../../shared/takes.ts';
import { api } from './api.ts';
import { h } from './dom.ts';
import type { RoomConnection } from './room-connection.ts';
import type { Membership } from './session.ts';
import { apiErrorWords } from './words.ts';

export class TakesPanel {
  readonly element: HTMLElement;
  readonly #me: Membership;
  readonly #conn: RoomConnection;
  readonly #name = h('input', { id: 'take-name', type: 'text', maxLength: TAKE_NAME_MAX, placeholder: 'e.g. Heavy drums', autocomplete: 'off' });
  readonly #save = h('button', { type: 'submit', class: 'primary' }, 'Save take');
  readonly #lock = h('p', { class: 'lock-reason takes-lock', hidden: true });
  readonly #result = h('p', { class: 'takes-result', role: 'status' });
  readonly #list = h('ul', { class: 'takes-list', id: 'takes-list' });
  readonly #empty = h('p', { class: 'hint' }, 'No takes yet.');
  readonly #remixersMay = h('input', { type: 'checkbox', id: 'takes-by-remixers' });
  readonly #hostOnly: HTMLElement;
  #takes: TakeView[] = [];
  /** The last meta.takesSavedAtMs the list was read for (a symbol at first: read it once anyway). */
  #seenSavedAt: unknown = Symbol('unread');
  #mayUse = false;
  #busy = false;
  #closed = false;

  constructor(me: Membership, conn: RoomConnection) {
    this.#me = me;
    this.#conn = conn;
    const form = h(
      'form',
      { class: 'takes-form', onsubmit: (ev: SubmitEvent) => (ev.preventDefault(), void this.#saveTake()) },
      h('label', { htmlFor: 'take-name' }, 'Name of the take'),
      h('div', { class: 'inline' }, this.#name, this.#save),
    );
    this.#remixersMay.addEventListener('change', () => {
      const rules = this.#conn.doc.getMap('rules');
      this.#conn.doc.transact(() => rules.set('takesByRemixers', this.#remixersMay.checked));
    });
    this.#hostOnly = h('label', { class: 'toggle', htmlFor: 'takes-by-remixers', hidden: true }, this.#remixersMay, ' Remixers may save takes and return to them');
    this.element = h(
      'section',
      { class: 'takes', 'aria-labelledby': 'takes-title' },
      h('h3', { id: 'takes-title' }, 'Takes'),
      h('p', { class: 'hint' }, 'A take keeps the mix, the arrangement and the visuals under a name. Returning to one changes them for everyone at once.'),
      this.#lock,
      form,
      this.#result,
      this.#empty,
      this.#list,
      this.#hostOnly,
    );
  }

  close(): void {
    this.#closed = true;
  }

  /** Brings the panel to the room's state and this member's role; reads the list again when a take was saved. */
  update(state: RoomState, role: Role): void {
    const may = role === 'host' || (role === 'remixer' && state.rules.takesByRemixers);
    if (may !== this.#mayUse) {
      this.#mayUse = may;
      this.#renderList();
    }
    this.#lock.hidden = may;
    this.#lock.textContent = may ? '' : role === 'listener' ? '🔒 You are listening: the host and the remixers they allow save takes.' : '🔒 Only the host can save takes and return to them in this room.';
    this.#name.disabled = !may;
    this.#save.disabled = !may || this.#busy;
    this.#hostOnly.hidden = role !== 'host';
    this.#remixersMay.checked = state.rules.takesByRemixers;
    const savedAt = (state.meta as Record<string, unknown>)['takesSavedAtMs'];
    if (savedAt !== this.#seenSavedAt) {
      this.#seenSavedAt = savedAt;
      void this.#load();
    }
  }

  async #load(): Promise<void> {
    try {
      const r = await api.takes(this.#me.roomId, this.#me.token);
      if (this.#closed) return;
      this.#takes = r.takes;
      this.#renderList();
    } catch (err) {
      if (!this.#closed) this.#say(`The takes could not be read. ${apiErrorWords(err)}`);
    }
  }

  async #saveTake(): Promise<void> {
    const name = this.#name.value.trim();
    if (!name) return this.#say('Give the take a name first.');
    this.#busy = true;
    this.#save.disabled = true;
    try {
      const take = await api.saveTake(this.#me.roomId, name, this.#me.token);
      if (this.#closed) return;
      this.#name.value = '';
      this.#say(`Saved “${take.name}”.`);
      await this.#load();
    } catch (err) {
      this.#say(`Not saved. ${apiErrorWords(err, `A take needs a name of 1 to ${TAKE_NAME_MAX} characters.`)}`);
    } finally {
      this.#busy = false;
      this.#save.disabled = !this.#mayUse;
    }
  }

  async #returnTo(take: TakeView, button: HTMLButtonElement): Promise<void> {
    button.disabled = true;
    try {
      const r = await api.returnToTake(this.#me.roomId, take.takeId, this.#me.token);
      if (this.#closed) return;
      this.#say(r.adjusted.length === 0 ? `The room is back to “${r.name}”.` : `The room is back to “${r.name}”, within the room’s rules of now: ${r.adjusted.join('; ')}.`);
    } catch (err) {
      this.#say(`The room did not go back to “${take.name}”. ${apiErrorWords(err)}`);
    } finally {
      button.disabled = !this.#mayUse;
    }
  }

  #renderList(): void {
    this.#empty.hidden = this.#takes.length > 0;
    this.#list.replaceChildren(
      ...this.#takes.map((take) => {
        const back = h('button', { type: 'button', class: 'take-return', 'aria-label': `Return the room to “${take.name}”`, disabled: !this.#mayUse }, 'Return to it');
        back.addEventListener('click', () => void this.#returnTo(take, back));
        const at = new Date(take.createdAt).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
        return h('li', { 'data-take': take.takeId }, h('span', { class: 'take-name' }, take.name), h('span', { class: 'hint' }, ` by ${take.savedBy}, ${at} `), back);
      }),
    );
  }

  #say(text: string): void {
    this.#result.textContent = text;
  }
}
