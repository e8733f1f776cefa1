// Parameter smoothing for the mixer. A control is read once per block; the
// smoother moves toward it as a one-pole evaluated at block ends, and the DSP
// ramps linearly from `start` to `end` inside the block. The result is a
// continuous, piecewise-linear curve: no steps (clicks) and no per-block
// staircase (zipper noise), at the cost of one exp() per smoother at construction.

export class Smoother {
  /** Value at the start of the current block. */
  start: number;
  /** Value at the end of the current block (the next block starts here). */
  end: number;
  target: number;
  /** Fraction of the remaining distance left after one block. */
  private readonly keep: number;
  /** Closer than this to the target, the smoother snaps onto it exactly, so neutral values are exact and bypass can engage. */
  private readonly epsilon: number;

  constructor(initial: number, timeConstantSec: number, blockSec: number, epsilon: number) {
    this.start = initial;
    this.end = initial;
    this.target = initial;
    this.keep = timeConstantSec > 0 ? Math.exp(-blockSec / timeConstantSec) : 0;
    this.epsilon = epsilon;
  }

  /** Advances one block toward the target. */
  step(): void {
    this.start = this.end;
    if (this.end !== this.target) {
      const next = this.target + (this.end - this.target) * this.keep;
      this.end = Math.abs(next - this.target) <= this.epsilon ? this.target : next;
    }
  }

  /** Jumps to the target (used when nothing is audible, e.g. on resume). */
  snap(): void {
    this.start = this.target;
    this.end = this.target;
  }

  /** Whether the value changes inside the current block. */
  get moving(): boolean {
    return this.start !== this.end;
  }

  /** At the target and not moving: an effect at its neutral target may be bypassed. */
  get settled(): boolean {
    return this.start === this.end && this.end === this.target;
  }
}

/** A finite number inside [min, max]; anything else (NaN, a string, undefined) becomes `fallback`. */
export function finiteIn(value: unknown, min: number, max: number, fallback: number): number {
  if (typeof value !== 'number' || value !== value) return fallback;
  return value < min ? min : value > max ? max : value;
}
