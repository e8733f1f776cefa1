// Offline rendering: the live mixer, driven by a recorded schedule instead of a
// room. Same code, same block grid, so a render equals what the live stream
// carried, sample for sample, and runs as fast as the CPU allows.
import { Mixer, type MixerStem } from './mixer.ts';
import type { MixerState } from './mixer-state.ts';

export interface ScheduledState {
  /** Block index (0-based) at whose start the state applies. */
  block: number;
  state: MixerState;
}

export interface RenderOptions {
  sampleRate?: number;
  blockFrames?: number;
}

/**
 * Renders `totalFrames` frames of interleaved stereo. Each scheduled state is
 * applied at the start of its block (several for one block: the last wins),
 * exactly as a live mixer given setState() before that block's process().
 */
export function renderOffline(
  stems: readonly MixerStem[],
  bpm: number | null,
  schedule: readonly ScheduledState[],
  totalFrames: number,
  options: RenderOptions = {},
): Float32Array {
  if (!Number.isInteger(totalFrames) || totalFrames < 0) throw new RangeError(`totalFrames must be a whole number ≥ 0, got ${totalFrames}`);
  const mixer = new Mixer({ sampleRate: options.sampleRate ?? 48000, stems, bpm, ...(options.blockFrames === undefined ? {} : { blockFrames: options.blockFrames }) });
  const n = mixer.blockFrames;
  const blocks = Math.ceil(totalFrames / n);
  const sorted = schedule.map((s, i) => ({ s, i })).sort((a, b) => a.s.block - b.s.block || a.i - b.i);
  const out = new Float32Array(blocks * n * 2);
  let next = 0;
  for (let b = 0; b < blocks; b++) {
    while (next < sorted.length && sorted[next]!.s.block <= b) mixer.setState(sorted[next++]!.s.state);
    mixer.process(out.subarray(b * n * 2, (b + 1) * n * 2), n);
  }
  return blocks * n === totalFrames ? out : out.slice(0, totalFrames * 2);
}
