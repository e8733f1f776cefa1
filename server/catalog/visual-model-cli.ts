// What the command-line tools (`npm run train-visuals`, `npm run ingest`) share to
// train a release's visual model: a progress bar on stderr and a summary of the record.
import type { TrainProgress } from '../../media/visuals/model/types.ts';
import type { VisualModelRecord } from './visual-model-record.ts';

/** One bar on a terminal, redrawn in place; a line per quarter otherwise (as the ingest's progress). */
export class TrainingProgressPrinter {
  readonly #tty = process.stderr.isTTY;
  readonly #out: NodeJS.WritableStream;
  #lastQuarter = -1;
  #drawn = false;

  constructor(out: NodeJS.WritableStream = process.stderr) {
    this.#out = out;
  }

  update(p: TrainProgress): void {
    const fraction = p.of > 0 ? Math.min(1, p.step / p.of) : 0;
    const pct = Math.round(fraction * 100);
    const loss = Number.isFinite(p.loss) ? p.loss.toFixed(4) : String(p.loss);
    if (this.#tty) {
      const width = 24;
      const filled = Math.round(fraction * width);
      this.#out.write(`\r\x1b[Ktrain visual model [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% step ${p.step}/${p.of} loss ${loss}`);
      this.#drawn = true;
    } else {
      const quarter = Math.floor(fraction * 4);
      if (quarter !== this.#lastQuarter) this.#out.write(`train visual model ${pct}% step ${p.step}/${p.of} loss ${loss}\n`);
      this.#lastQuarter = quarter;
    }
  }

  done(): void {
    if (this.#tty && this.#drawn) this.#out.write('\n');
    this.#drawn = false;
  }
}

/** A few lines a person reads: which model, from what, how long. */
export function recordSummary(r: VisualModelRecord): string {
  const last = r.lossCurve.at(-1);
  return [
    `visual model ${r.modelId} of ${r.releaseId} (${r.method}/${r.methodVersion}): ${r.steps} steps, seed ${r.seed}, ${(r.durationMs / 1000).toFixed(1)} s (${(r.cpuMs / 1000).toFixed(1)} s CPU)${last ? `, final loss ${last[1].toFixed(4)}` : ''}`,
    `  trained on ${r.assets.length} artwork image${r.assets.length === 1 ? '' : 's'}: ${r.assets.map((a) => `${a.id} (${a.sha256.slice(0, 12)}…)`).join(', ')}`,
    ...(r.excluded.length > 0 ? [`  not trained on: ${r.excluded.map((a) => `${a.id} (${a.because})`).join(', ')}`] : []),
    `  weights ${r.weights.bytes} bytes, ${r.weights.format}; record at /api/releases/${r.releaseId}/visual-model/${r.modelId}`,
  ].join('\n');
}
