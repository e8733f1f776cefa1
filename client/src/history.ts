// Undo and redo of this member's own moves. A Yjs UndoManager tracks only the
// transactions this page makes with LOCAL_EDIT as their origin (the mixer's writes):
// the provider applies everyone else's changes, and the server's, under its own
// origin, so they are never undone here. A fader drag is one step: the mixer ends a
// step when a gesture ends (pointerup, a key's change, a toggle), and steps are not
// merged by time in between.
//
// An undo is an edit like any other: the server checks it. When it refuses (the host
// locked that stem since, a range was narrowed), the page says so in plain words.
import * as Y from 'yjs';
import type { Refusal } from '../../shared/refusals.ts';
import { h } from './dom.ts';
import type { RoomConnection } from './room-connection.ts';
import { refusalWords } from './words.ts';

/** The origin of this page's own edits to the mix: the only transactions undo tracks. */
export const LOCAL_EDIT: object = Object.freeze({ kind: 'local-edit' });

/** Long enough that a slow drag is one step; gestures end steps themselves (endStep). */
const CAPTURE_MS = 10 * 60_000;
/** A refusal this soon after an undo or redo is that undo's or redo's. */
const REFUSAL_AFTER_UNDO_MS = 3000;

export class EditHistory {
  readonly element: HTMLElement;
  readonly #conn: RoomConnection;
  readonly #manager: Y.UndoManager;
  readonly #undoButton = h('button', { type: 'button', class: 'history-button', id: 'undo', 'aria-keyshortcuts': 'Control+Z Meta+Z', title: 'Undo your last move (Ctrl+Z)' }, '↶ Undo');
  readonly #redoButton = h('button', { type: 'button', class: 'history-button', id: 'redo', 'aria-keyshortcuts': 'Control+Shift+Z Meta+Shift+Z Control+Y', title: 'Redo (Ctrl+Shift+Z)' }, '↷ Redo');
  readonly #result = h('span', { class: 'history-result', role: 'status' });
  #lastUndo: { what: 'Undo' | 'Redo'; atMs: number } | null = null;
  #resultTimer: ReturnType<typeof setTimeout> | null = null;
  readonly #offs: (() => void)[] = [];
  /** Whether this member may change the mix at all (a listener may not). */
  #enabled = true;

  constructor(conn: RoomConnection) {
    this.#conn = conn;
    const doc = conn.doc;
    this.#manager = new Y.UndoManager([doc.getMap('mix'), doc.getMap('arrangement')], { trackedOrigins: new Set([LOCAL_EDIT]), captureTimeout: CAPTURE_MS });
    this.element = h('div', { class: 'history', role: 'group', 'aria-label': 'Undo and redo your own moves' }, this.#undoButton, this.#redoButton, this.#result);
    this.#undoButton.addEventListener('click', () => this.undo());
    this.#redoButton.addEventListener('click', () => this.redo());
    const refresh = () => this.#showButtons();
    for (const ev of ['stack-item-added', 'stack-item-popped', 'stack-cleared'] as const) {
      this.#manager.on(ev, refresh);
      this.#offs.push(() => this.#manager.off(ev, refresh));
    }
    const onKey = (ev: KeyboardEvent) => this.#onKey(ev);
    document.addEventListener('keydown', onKey);
    this.#offs.push(() => document.removeEventListener('keydown', onKey));
    this.#offs.push(conn.onRefusal((r) => this.#refused(r)));
    this.#showButtons();
  }

  /** Ends the current step: the next edit starts a new one (a drag released, a key's move done). */
  endStep(): void {
    this.#manager.stopCapturing();
  }

  /** A listener's page cannot change the mix: nothing to undo there. */
  setEnabled(enabled: boolean): void {
    if (this.#enabled === enabled) return;
    this.#enabled = enabled;
    this.#showButtons();
  }

  undo(): void {
    if (!this.#enabled || !this.#manager.canUndo()) return;
    this.#lastUndo = { what: 'Undo', atMs: Date.now() };
    this.#manager.undo();
    this.endStep();
  }

  redo(): void {
    if (!this.#enabled || !this.#manager.canRedo()) return;
    this.#lastUndo = { what: 'Redo', atMs: Date.now() };
    this.#manager.redo();
    this.endStep();
  }

  close(): void {
    for (const off of this.#offs.splice(0)) off();
    if (this.#resultTimer) clearTimeout(this.#resultTimer);
    this.#manager.destroy();
  }

  #showButtons(): void {
    this.#undoButton.disabled = !this.#enabled || !this.#manager.canUndo();
    this.#redoButton.disabled = !this.#enabled || !this.#manager.canRedo();
  }

  #onKey(ev: KeyboardEvent): void {
    if (!(ev.ctrlKey || ev.metaKey) || ev.altKey) return;
    const key = ev.key.toLowerCase();
    const isUndo = key === 'z' && !ev.shiftKey;
    const isRedo = (key === 'z' && ev.shiftKey) || (key === 'y' && !ev.shiftKey && ev.ctrlKey);
    if (!isUndo && !isRedo) return;
    // In a text box the keys undo the typing, as everywhere else.
    const t = ev.target as HTMLElement | null;
    if (t && (t.isContentEditable || t instanceof HTMLTextAreaElement || (t instanceof HTMLInputElement && t.type !== 'range' && t.type !== 'checkbox'))) return;
    ev.preventDefault();
    if (isUndo) this.undo();
    else this.redo();
  }

  #refused(r: Refusal): void {
    const last = this.#lastUndo;
    if (!last || Date.now() - last.atMs > REFUSAL_AFTER_UNDO_MS) return;
    this.#lastUndo = null;
    this.#say(`${last.what} not applied: ${refusalWords(r, 'change')}`);
  }

  #say(text: string): void {
    this.#result.textContent = text;
    if (this.#resultTimer) clearTimeout(this.#resultTimer);
    this.#resultTimer = setTimeout(() => (this.#result.textContent = ''), 8000);
  }
}
