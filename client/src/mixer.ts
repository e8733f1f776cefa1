// The mixer: a channel strip per stem (level, pan, mute, solo; EQ and filters
// folded away) and the master section, every control bound to the room document
// both ways. A move writes the document (throttled); every change in the
// document, anyone's, moves the control, except the one this person is holding.
// A refused change comes back from the server as the old value, so the control
// snaps back by itself; the reason is shown by the room view.
// Who else is moving a control is shown from y-websocket awareness.
import * as Y from 'yjs';
import type { ReleaseView } from '../../shared/api-types.ts';
import { MASTER_CONTROLS, STEM_CONTROLS, type ControlRange, type MasterControl, type StemControl } from '../../shared/controls.ts';
import { effectiveRange, type RoomState } from '../../shared/room-doc.ts';
import { h, uid } from './dom.ts';
import { LOCAL_EDIT } from './history.ts';
import type { RoomConnection } from './room-connection.ts';

const WRITE_INTERVAL_MS = 50;
const HOLD_CLEAR_MS = 1200;

type Target = { kind: 'stem'; stemId: string; key: StemControl } | { kind: 'master'; key: MasterControl };

interface Slider {
  id: string;
  target: Target;
  control: ControlRange;
  log: boolean;
  input: HTMLInputElement;
  output: HTMLOutputElement;
  heldBy: HTMLElement;
  range: { min: number; max: number };
  held: boolean;
  pending: number | null;
  lastWriteMs: number;
  timer: ReturnType<typeof setTimeout> | null;
}

interface Toggle {
  id: string;
  stemId: string;
  key: 'mute' | 'solo';
  input: HTMLInputElement;
}

export interface Permissions {
  /** Why this person may not touch the mix at all (a listener), or null. */
  mixLocked(state: RoomState): string | null;
  /** Why this person may not touch this stem, or null. */
  stemLocked(state: RoomState, stemId: string): string | null;
}

/**
 * How far a fader moves: one arrow key (and the grain of a drag), and Shift+arrow.
 * In the units a musician counts in: tempo by 0.01× (0.05× with Shift), levels
 * and EQ by 0.5 dB (3 dB, about twice or half as loud), pitch by a semitone (an
 * octave), the delay by a sixteenth note (a quarter note), amounts in percent
 * (1%, 10%), filter cutoffs by a semitone of frequency (an octave).
 */
export const FADER_STEPS: Record<StemControl | MasterControl, { fine: number; coarse: number }> = {
  gainDb: { fine: 0.5, coarse: 3 },
  pan: { fine: 0.05, coarse: 0.25 },
  eqLowDb: { fine: 0.5, coarse: 3 },
  eqMidDb: { fine: 0.5, coarse: 3 },
  eqHighDb: { fine: 0.5, coarse: 3 },
  filterQ: { fine: 0.05, coarse: 0.5 },
  tempo: { fine: 0.01, coarse: 0.05 },
  pitchSemitones: { fine: 1, coarse: 12 },
  reverbMix: { fine: 0.01, coarse: 0.1 },
  reverbSize: { fine: 0.01, coarse: 0.1 },
  delayMix: { fine: 0.01, coarse: 0.1 },
  delayFeedback: { fine: 0.01, coarse: 0.1 },
  delayBeats: { fine: 0.25, coarse: 1 },
  filterSweep: { fine: 0.01, coarse: 0.1 },
  // Log faders count positions in semitones of frequency.
  lowpassHz: { fine: 1, coarse: 12 },
  highpassHz: { fine: 1, coarse: 12 },
};
const LOG_CONTROLS = new Set(['lowpassHz', 'highpassHz']);
const MAIN_STEM_CONTROLS: StemControl[] = ['gainDb', 'pan'];
const EQ_STEM_CONTROLS: StemControl[] = ['eqLowDb', 'eqMidDb', 'eqHighDb', 'highpassHz', 'lowpassHz', 'filterQ'];
const MASTER_ORDER: MasterControl[] = ['gainDb', 'tempo', 'pitchSemitones', 'reverbMix', 'reverbSize', 'delayMix', 'delayFeedback', 'delayBeats', 'filterSweep'];

export class Mixer {
  readonly element: HTMLElement;
  readonly #conn: RoomConnection;
  readonly #release: ReleaseView;
  readonly #perm: Permissions;
  readonly #sliders = new Map<string, Slider>();
  readonly #toggles: Toggle[] = [];
  readonly #stripLocks = new Map<string, { box: HTMLElement; reason: HTMLElement }>();
  readonly #masterLock: { box: HTMLElement };
  /** Why the whole mix is out of reach (a listener): said once, above the strips. */
  readonly #mixLock = h('p', { class: 'lock-reason mixer-lock', id: uid('mix-lock'), hidden: true });
  #holdTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #offs: (() => void)[] = [];

  /** Called when a gesture ends (a drag released, a key's move, a toggle): one undo step each. */
  readonly #stepDone: () => void;

  constructor(conn: RoomConnection, release: ReleaseView, perm: Permissions, stepDone: () => void = () => {}) {
    this.#conn = conn;
    this.#stepDone = stepDone;
    this.#release = release;
    this.#perm = perm;
    const strips = h('div', { class: 'strips' });
    for (const stem of release.stems) strips.append(this.#strip(stem));
    const masterControls = h('div', { class: 'master-controls' });
    for (const key of MASTER_ORDER) masterControls.append(this.#slider({ kind: 'master', key }, MASTER_CONTROLS[key], this.#mixLock.id));
    const master = h('section', { class: 'strip master', 'aria-labelledby': 'master-title' }, h('h3', { id: 'master-title' }, 'Master'), masterControls);
    this.#masterLock = { box: master };
    this.element = h('div', { class: 'mixer' }, this.#mixLock, strips, master);

    const onAwareness = () => this.#showHolders();
    conn.provider.awareness.on('change', onAwareness);
    this.#offs.push(() => conn.provider.awareness.off('change', onAwareness));
  }

  close(): void {
    for (const off of this.#offs.splice(0)) off();
    for (const s of this.#sliders.values()) if (s.timer) clearTimeout(s.timer);
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
  }

  /** Brings every control to the document's state, ranges and locks. */
  update(state: RoomState): void {
    const mixLock = this.#perm.mixLocked(state);
    this.#mixLock.hidden = !mixLock;
    this.#mixLock.textContent = mixLock ? `🔒 ${mixLock}` : '';
    for (const stem of this.#release.stems) {
      // A listener is told once, above the strips; a locked stem in its own strip.
      const stemReason = mixLock ? null : this.#perm.stemLocked(state, stem.id);
      const lock = this.#stripLocks.get(stem.id)!;
      lock.reason.hidden = !stemReason;
      lock.reason.textContent = stemReason ? `🔒 ${stemReason}` : '';
      lock.box.classList.toggle('locked', Boolean(mixLock ?? stemReason));
      lock.box.dataset['locked'] = mixLock ?? stemReason ? 'true' : 'false';
    }
    this.#masterLock.box.classList.toggle('locked', Boolean(mixLock));

    for (const s of this.#sliders.values()) {
      const t = s.target;
      const locked = t.kind === 'stem' ? (mixLock ?? this.#perm.stemLocked(state, t.stemId)) : mixLock;
      s.input.disabled = Boolean(locked);
      const range =
        t.kind === 'stem'
          ? effectiveRange(s.control, this.#release.rules.stemRanges[t.key], state.rules.stemRanges[t.key])
          : effectiveRange(s.control, this.#release.rules.masterRanges[t.key], state.rules.masterRanges[t.key]);
      if (range.min !== s.range.min || range.max !== s.range.max) {
        s.range = range;
        this.#applyRange(s);
      }
      const value = t.kind === 'stem' ? state.mix.stems[t.stemId]?.[t.key] : state.mix.master[t.key];
      if (typeof value !== 'number') continue;
      if (!s.held) this.#showValue(s, value);
    }
    for (const t of this.#toggles) {
      const locked = mixLock ?? this.#perm.stemLocked(state, t.stemId);
      t.input.disabled = Boolean(locked);
      const v = state.mix.stems[t.stemId]?.[t.key];
      if (typeof v === 'boolean') t.input.checked = v;
    }
  }

  #strip(stem: { id: string; title: string }): HTMLElement {
    const titleId = uid('strip');
    const reason = h('p', { class: 'lock-reason', id: uid('lock'), hidden: true });
    const toggles = h('div', { class: 'toggles' });
    for (const key of ['mute', 'solo'] as const) {
      const id = uid(key);
      const input = h('input', { type: 'checkbox', id, 'data-control': `${stem.id}.${key}`, 'aria-describedby': `${this.#mixLock.id} ${reason.id}` });
      input.addEventListener('change', () => this.#writeToggle(stem.id, key, input.checked));
      this.#toggles.push({ id, stemId: stem.id, key, input });
      toggles.append(h('label', { class: `toggle ${key}`, htmlFor: id }, input, h('span', {}, key === 'mute' ? 'Mute' : 'Solo'), h('span', { class: 'visually-hidden' }, ` ${stem.title}`)));
    }
    const main = h('div', { class: 'strip-main' });
    const describedBy = `${this.#mixLock.id} ${reason.id}`;
    for (const key of MAIN_STEM_CONTROLS) main.append(this.#slider({ kind: 'stem', stemId: stem.id, key }, STEM_CONTROLS[key], describedBy, stem.title));
    const eq = h('details', { class: 'eq' }, h('summary', {}, 'EQ & filters'));
    for (const key of EQ_STEM_CONTROLS) eq.append(this.#slider({ kind: 'stem', stemId: stem.id, key }, STEM_CONTROLS[key], describedBy, stem.title));
    const box = h('section', { class: 'strip', 'data-stem': stem.id, 'aria-labelledby': titleId }, h('h3', { id: titleId }, stem.title), reason, toggles, main, eq);
    this.#stripLocks.set(stem.id, { box, reason });
    return box;
  }

  #slider(target: Target, control: ControlRange, describedBy: string, stemTitle?: string): HTMLElement {
    const id = target.kind === 'stem' ? `stem-${target.stemId}-${target.key}` : `master-${target.key}`;
    const log = LOG_CONTROLS.has(target.key);
    const steps = FADER_STEPS[target.key];
    const input = h('input', {
      type: 'range',
      id,
      step: steps.fine,
      'data-control': target.kind === 'stem' ? `${target.stemId}.${target.key}` : `master.${target.key}`,
      'aria-describedby': describedBy,
    });
    const output = h('output', { htmlFor: id, class: 'value' });
    const heldBy = h('span', { class: 'held-by', 'aria-live': 'polite' });
    const s: Slider = { id, target, control, log, input, output, heldBy, range: { min: control.min, max: control.max }, held: false, pending: null, lastWriteMs: 0, timer: null };
    this.#sliders.set(id, s);
    this.#applyRange(s);
    const release = () => {
      if (!s.held) return;
      s.held = false;
      this.#flush(s);
      this.#stepDone();
      // Back to the document's value (a refused move shows as the old value).
      const state = this.#valueInDoc(s.target);
      if (typeof state === 'number') this.#showValue(s, state);
    };
    input.addEventListener('pointerdown', () => {
      s.held = true;
    });
    input.addEventListener('pointerup', release);
    input.addEventListener('pointercancel', release);
    input.addEventListener('blur', release);
    input.addEventListener('input', () => {
      const value = this.#fromSlider(s, Number(input.value));
      output.textContent = formatValue(s.target.key, value, control);
      input.setAttribute('aria-valuetext', output.textContent);
      this.#queueWrite(s, value);
    });
    // Keyboard moves end with "change"; a drag's end is the pointerup above.
    input.addEventListener('change', () => {
      this.#flush(s);
      // Show what the room holds: the value as written (rounded), or what the server set back.
      if (!s.held) {
        this.#stepDone();
        const v = this.#valueInDoc(s.target);
        if (typeof v === 'number') this.#showValue(s, v);
      }
    });
    // Shift+arrow: the coarse step (a browser's range input has only the one step).
    input.addEventListener('keydown', (ev) => {
      const dir = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 }[ev.key];
      if (!ev.shiftKey || dir === undefined || input.disabled) return;
      ev.preventDefault();
      const at = Number(input.value);
      const next = Math.min(Number(input.max), Math.max(Number(input.min), at + dir * steps.coarse));
      if (next === at) return;
      input.value = String(next);
      input.dispatchEvent(new Event('input', { bubbles: true }));
      input.dispatchEvent(new Event('change', { bubbles: true }));
    });
    input.addEventListener('dblclick', () => {
      if (input.disabled) return;
      this.#queueWrite(s, Math.min(s.range.max, Math.max(s.range.min, control.neutral)));
      this.#flush(s);
      this.#stepDone();
    });
    return h(
      'div',
      { class: 'control' },
      h('label', { htmlFor: id }, h('span', { class: 'visually-hidden' }, stemTitle ? `${stemTitle} ` : 'Master '), target.kind === 'master' && target.key === 'gainDb' ? 'Level' : control.label),
      input,
      output,
      heldBy,
    );
  }

  /** A linear fader's input holds the value itself; a log fader's counts semitones of frequency above the bottom. */
  #applyRange(s: Slider): void {
    const { min, max } = s.range;
    s.input.min = '0';
    s.input.max = String(s.log ? Math.max(0, Math.round(12 * Math.log2(max / min))) : max);
    s.input.min = s.log ? '0' : String(min);
  }

  #toSlider(s: Slider, value: number): number {
    const { min, max } = s.range;
    if (!s.log) return Math.min(max, Math.max(min, value));
    if (max <= min) return 0;
    return Math.round(12 * Math.log2(Math.min(max, Math.max(min, value)) / min));
  }

  #fromSlider(s: Slider, pos: number): number {
    const { min, max } = s.range;
    const raw = s.log ? min * Math.pow(2, pos / 12) : pos;
    return Math.min(max, Math.max(min, roundFor(s.target.key, raw)));
  }

  #showValue(s: Slider, value: number): void {
    s.input.value = String(this.#toSlider(s, value));
    s.output.textContent = formatValue(s.target.key, value, s.control);
    s.input.setAttribute('aria-valuetext', s.output.textContent);
    s.input.dataset['value'] = String(value);
  }

  #valueInDoc(t: Target): unknown {
    const mix = this.#conn.doc.getMap('mix');
    const map = t.kind === 'stem' ? (mix.get('stems') as Y.Map<unknown> | undefined)?.get(t.stemId) : mix.get('master');
    return map instanceof Y.Map ? map.get(t.key) : undefined;
  }

  #queueWrite(s: Slider, value: number): void {
    s.pending = value;
    this.#announceHold(s.id);
    const wait = s.lastWriteMs + WRITE_INTERVAL_MS - performance.now();
    if (wait <= 0) this.#flush(s);
    else s.timer ??= setTimeout(() => this.#flush(s), wait);
  }

  #flush(s: Slider): void {
    if (s.timer) clearTimeout(s.timer);
    s.timer = null;
    if (s.pending === null) return;
    const value = s.pending;
    s.pending = null;
    s.lastWriteMs = performance.now();
    this.#set(s.target.kind === 'stem' ? ['stems', s.target.stemId] : ['master'], s.target.key, value);
  }

  #writeToggle(stemId: string, key: 'mute' | 'solo', value: boolean): void {
    this.#announceHold(`stem-${stemId}-${key}`);
    this.#set(['stems', stemId], key, value);
    this.#stepDone();
  }

  /** Writes one key of a map under `mix`, looked up fresh (the server may replace nested maps). */
  #set(path: string[], key: string, value: unknown): void {
    let map: unknown = this.#conn.doc.getMap('mix');
    for (const p of path) map = map instanceof Y.Map ? map.get(p) : undefined;
    if (!(map instanceof Y.Map)) return;
    if (map.get(key) === value) return;
    const target = map;
    // Tagged as this page's own edit: the only kind undo takes back.
    this.#conn.doc.transact(() => target.set(key, value), LOCAL_EDIT);
  }

  #announceHold(controlId: string): void {
    const awareness = this.#conn.provider.awareness;
    const local = (awareness.getLocalState() ?? {}) as Record<string, unknown>;
    if (local['holding'] !== controlId) awareness.setLocalStateField('holding', controlId);
    if (this.#holdTimer) clearTimeout(this.#holdTimer);
    const clearLater = () => {
      this.#holdTimer = setTimeout(() => {
        // A fader still under the pointer is still held, however still it is.
        if ([...this.#sliders.values()].some((s) => s.held)) return clearLater();
        this.#holdTimer = null;
        awareness.setLocalStateField('holding', null);
      }, HOLD_CLEAR_MS);
    };
    clearLater();
  }

  #showHolders(): void {
    const holders = new Map<string, string[]>();
    const awareness = this.#conn.provider.awareness;
    awareness.getStates().forEach((state, clientId) => {
      if (clientId === awareness.clientID) return;
      const holding = (state as { holding?: unknown }).holding;
      const name = (state as { user?: { name?: unknown } }).user?.name;
      if (typeof holding !== 'string' || typeof name !== 'string') return;
      holders.set(holding, [...(holders.get(holding) ?? []), name]);
    });
    for (const s of this.#sliders.values()) {
      const names = holders.get(s.id);
      s.heldBy.textContent = names ? `${names.join(', ')} ${names.length === 1 ? 'is' : 'are'} moving this` : '';
    }
  }
}

function roundFor(key: string, v: number): number {
  if (key.endsWith('Hz')) return Math.round(v);
  if (key.endsWith('Db') || key === 'gainDb' || key === 'pitchSemitones') return Math.round(v * 10) / 10;
  return Math.round(v * 1000) / 1000;
}

export function formatValue(key: string, v: number, control: ControlRange): string {
  switch (key) {
    case 'pan':
      return Math.abs(v) < 0.005 ? 'centre' : `${Math.round(Math.abs(v) * 100)}% ${v < 0 ? 'left' : 'right'}`;
    case 'tempo':
      return `${v.toFixed(2)}×`;
    case 'pitchSemitones':
      return `${v > 0 ? '+' : ''}${v.toFixed(1)} st`;
    case 'filterSweep':
      return Math.abs(v) < 0.005 ? 'open' : v < 0 ? `low-pass ${Math.round(-v * 100)}%` : `high-pass ${Math.round(v * 100)}%`;
    case 'delayBeats':
      return `${v.toFixed(2)} beats`;
    case 'filterQ':
      return v.toFixed(2);
  }
  if (control.unit === 'Hz') return v >= 1000 ? `${(v / 1000).toFixed(1)} kHz` : `${Math.round(v)} Hz`;
  if (control.unit === 'dB') return `${v > 0 ? '+' : ''}${v.toFixed(1)} dB`;
  if (control.max <= 1 && control.min >= 0) return `${Math.round(v * 100)}%`;
  return `${Math.round(v * 100) / 100}${control.unit ? ` ${control.unit}` : ''}`;
}
