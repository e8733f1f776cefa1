// The host's limits: narrow the range any control may take in this room (within
// what the release allows). Written to the room document's rules; the server
// checks them (a limit wider than the release's is refused, with the reason),
// and narrowing clamps the live value at once for everyone.
import { MASTER_CONTROLS, STEM_CONTROLS, type ControlRange } from '../../shared/controls.ts';
import type { RangeRule, RoomState } from '../../shared/room-doc.ts';
import { h } from './dom.ts';

type Section = 'masterRanges' | 'stemRanges';

const CHOICES: { value: string; section: Section; key: string; control: ControlRange; label: string }[] = [
  ...Object.entries(MASTER_CONTROLS).map(([key, control]) => ({ value: `masterRanges.${key}`, section: 'masterRanges' as const, key, control, label: key === 'gainDb' ? 'Master level' : `${control.label} (master)` })),
  ...Object.entries(STEM_CONTROLS).map(([key, control]) => ({ value: `stemRanges.${key}`, section: 'stemRanges' as const, key, control, label: `${control.label} (every stem)` })),
];

const fmt = (v: number) => String(Math.round(v * 1000) / 1000);

export class LimitsEditor {
  readonly element: HTMLElement;
  readonly #select = h('select', { id: 'limit-control' });
  readonly #min = h('input', { id: 'limit-min', type: 'number', step: 'any', required: true });
  readonly #max = h('input', { id: 'limit-max', type: 'number', step: 'any', required: true });
  readonly #list = h('ul', { class: 'limits', 'aria-live': 'polite' });
  readonly #error = h('p', { class: 'hint', role: 'alert' });
  readonly #range = h('p', { class: 'hint', id: 'limit-range' });
  readonly #write: (section: Section, ranges: Record<string, RangeRule>) => void;
  #state: RoomState | null = null;

  constructor(write: (section: Section, ranges: Record<string, RangeRule>) => void) {
    this.#write = write;
    for (const c of CHOICES) this.#select.append(h('option', { value: c.value }, c.label));
    this.#select.addEventListener('change', () => this.#fillFromChoice());
    const form = h(
      'form',
      { class: 'limit-form' },
      h('div', { class: 'field' }, h('label', { htmlFor: 'limit-control' }, 'Control'), this.#select),
      h('div', { class: 'field' }, h('label', { htmlFor: 'limit-min' }, 'Lowest'), this.#min),
      h('div', { class: 'field' }, h('label', { htmlFor: 'limit-max' }, 'Highest'), this.#max),
      h('button', { type: 'submit' }, 'Set limit'),
    );
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      this.#apply();
    });
    this.element = h('fieldset', { class: 'limits-box' }, h('legend', {}, 'Limits for everyone (within the release’s)'), form, this.#range, this.#error, this.#list);
    this.#fillFromChoice();
  }

  update(state: RoomState): void {
    this.#state = state;
    const items: HTMLElement[] = [];
    for (const c of CHOICES) {
      const r = (state.rules[c.section] as Record<string, RangeRule | undefined>)[c.key];
      if (!r) continue;
      const remove = h('button', { type: 'button', 'aria-label': `Remove the limit on ${c.label}` }, 'Remove');
      remove.addEventListener('click', () => {
        const next = { ...(state.rules[c.section] as Record<string, RangeRule>) };
        delete next[c.key];
        this.#write(c.section, next);
      });
      items.push(h('li', { 'data-limit': c.value }, `${c.label}: ${fmt(r.min)} to ${fmt(r.max)}${c.control.unit ? ` ${c.control.unit}` : ''} `, remove));
    }
    this.#list.replaceChildren(...(items.length ? items : [h('li', { class: 'hint' }, 'No limits: every control has the release’s full range.')]));
  }

  #choice() {
    return CHOICES.find((c) => c.value === this.#select.value) ?? CHOICES[0]!;
  }

  #fillFromChoice(): void {
    const c = this.#choice();
    const current = this.#state ? (this.#state.rules[c.section] as Record<string, RangeRule | undefined>)[c.key] : undefined;
    this.#min.value = fmt(current?.min ?? c.control.min);
    this.#max.value = fmt(current?.max ?? c.control.max);
    // No min/max attributes: the browser's own bubble would block the form without saying it in the page.
    this.#min.setAttribute('aria-describedby', 'limit-range');
    this.#max.setAttribute('aria-describedby', 'limit-range');
    this.#range.textContent = `${c.section === 'masterRanges' && c.key === 'gainDb' ? 'The master level' : c.control.label} can go from ${fmt(c.control.min)} to ${fmt(c.control.max)}${c.control.unit ? ` ${c.control.unit}` : ''}.`;
    this.#error.textContent = '';
  }

  #apply(): void {
    const c = this.#choice();
    const min = Number(this.#min.value);
    const max = Number(this.#max.value);
    if (!Number.isFinite(min) || !Number.isFinite(max) || min > max) {
      this.#error.textContent = 'The lowest value must be a number no higher than the highest.';
      return;
    }
    if (min < c.control.min || max > c.control.max) {
      // The range itself is said just above (#range): this says only which end is too far.
      const unit = c.control.unit ? ` ${c.control.unit}` : '';
      this.#error.textContent = min < c.control.min ? `The lowest can be no less than ${fmt(c.control.min)}${unit}.` : `The highest can be at most ${fmt(c.control.max)}${unit}.`;
      return;
    }
    this.#error.textContent = '';
    const current = this.#state ? (this.#state.rules[c.section] as Record<string, RangeRule>) : {};
    this.#write(c.section, { ...current, [c.key]: { min, max } });
  }
}
