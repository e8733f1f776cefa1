// The release's visual model as the host sees it: whether a model trained only on
// the artist's artwork draws part of the picture, what it was trained on (the
// artworks with their hashes and consent, the steps, the seed, the weights' hash),
// a link to the whole record, and while one trains, how far it has got.
import { h } from './dom.ts';

const POLL_TRAINING_MS = 4000;

interface RecordAsset {
  id: string;
  sha256: string;
  consentBy?: string;
  consentAt?: string;
}

interface ModelRecordView {
  modelId: string;
  method: string;
  assets: RecordAsset[];
  excluded: { id: string; because: string }[];
  seed: number;
  steps: number;
  startedAt: string;
  durationMs: number;
  weights: { sha256: string; bytes: number };
}

interface ModelView {
  status: 'none' | 'queued' | 'training' | 'ready' | 'failed';
  progress: { step: number; of: number; loss: number } | null;
  failure: string | null;
  current: ModelRecordView | null;
  history: { modelId: string; status: 'ready' | 'retired'; retired?: { at: string; because: string }; record: string }[];
}

export class ModelPanel {
  readonly element: HTMLElement;
  readonly #releaseId: string;
  readonly #status = h('p', { class: 'model-status', role: 'status' });
  readonly #details = h('div', { class: 'model-details' });
  #timer: ReturnType<typeof setTimeout> | null = null;
  #closed = false;

  constructor(releaseId: string) {
    this.#releaseId = releaseId;
    this.element = h(
      'section',
      { class: 'model-panel', 'aria-label': 'The visual model' },
      h('h3', {}, 'Visual model'),
      h('p', { class: 'hint' }, 'Prompts generate new imagery with a small model trained from scratch on this release’s artwork only, with the artist’s consent. Nothing else went into it.'),
      this.#status,
      this.#details,
    );
    void this.#refresh();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) clearTimeout(this.#timer);
  }

  async #refresh(): Promise<void> {
    if (this.#closed) return;
    let view: ModelView | null = null;
    try {
      const res = await fetch(this.#url());
      if (res.ok) view = (await res.json()) as ModelView;
    } catch {
      // shown below as not known
    }
    if (this.#closed) return;
    this.#render(view);
    if (view && (view.status === 'training' || view.status === 'queued')) this.#timer = setTimeout(() => void this.#refresh(), POLL_TRAINING_MS);
  }

  #url(): string {
    return `/api/releases/${encodeURIComponent(this.#releaseId)}/visual-model`;
  }

  #render(view: ModelView | null): void {
    if (!view) {
      this.#status.textContent = 'The model’s state could not be read.';
      this.#details.replaceChildren();
      return;
    }
    const p = view.progress;
    const training = view.status === 'training' && p ? ` A new one is training: step ${p.step} of ${p.of}.` : view.status === 'queued' ? ' A new one is waiting to train.' : '';
    const c = view.current;
    if (!c) {
      const why = view.status === 'failed' ? ` The last training failed: ${view.failure ?? 'unknown reason'}.` : '';
      this.#status.textContent = `No model yet: the visuals are the artwork itself, moved by the prompts.${training}${why}`;
    } else {
      const minutes = Math.max(1, Math.round(c.durationMs / 60000));
      this.#status.textContent = `Trained on ${c.assets.length} artwork${c.assets.length === 1 ? '' : 's'} of this release, ${c.steps} steps (about ${minutes} min), seed ${c.seed}.${training}`;
    }
    const retired = view.history.filter((m) => m.status === 'retired');
    const parts: (HTMLElement | null)[] = [
      c
        ? h(
            'ul',
            { class: 'model-assets' },
            ...c.assets.map((a) =>
              h('li', {}, h('b', {}, a.id), ` sha256 ${a.sha256.slice(0, 12)}…`, a.consentBy ? `, consent by ${a.consentBy}` : '', a.consentAt ? ` (${a.consentAt.slice(0, 10)})` : ''),
            ),
            ...c.excluded.map((a) => h('li', { class: 'excluded' }, h('b', {}, a.id), ` not used: ${a.because}`)),
          )
        : null,
      c ? h('p', {}, `Weights ${c.weights.sha256.slice(0, 16)}… (${Math.round(c.weights.bytes / 1024)} KB). `, h('a', { href: `${this.#url()}/${c.modelId}`, target: '_blank', rel: 'noopener' }, 'The whole training record')) : null,
      retired.length > 0 ? h('p', { class: 'hint' }, `${retired.length} earlier model${retired.length === 1 ? ' was' : 's were'} retired: ${retired.map((r) => r.retired?.because ?? 'retired').join('; ')}.`) : null,
    ];
    this.#details.replaceChildren(...parts.filter((x): x is HTMLElement => x !== null));
  }
}
