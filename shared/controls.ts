// The absolute range of every control a room can move. A release's rules and a
// room's host may only narrow these; the mixer never sees a value outside them.

export interface ControlRange {
  readonly min: number;
  readonly max: number;
  /** The value a fresh room starts at. */
  readonly neutral: number;
  readonly unit: string;
  readonly label: string;
}

/** Controls on each stem's channel strip. */
export const STEM_CONTROLS = {
  gainDb: { min: -60, max: 6, neutral: 0, unit: 'dB', label: 'Level' },
  pan: { min: -1, max: 1, neutral: 0, unit: '', label: 'Pan' },
  eqLowDb: { min: -24, max: 12, neutral: 0, unit: 'dB', label: 'Low EQ' },
  eqMidDb: { min: -24, max: 12, neutral: 0, unit: 'dB', label: 'Mid EQ' },
  eqHighDb: { min: -24, max: 12, neutral: 0, unit: 'dB', label: 'High EQ' },
  /** Low-pass cutoff; the top of the range means open. */
  lowpassHz: { min: 80, max: 20000, neutral: 20000, unit: 'Hz', label: 'Low-pass' },
  /** High-pass cutoff; the bottom of the range means open. */
  highpassHz: { min: 20, max: 8000, neutral: 20, unit: 'Hz', label: 'High-pass' },
  filterQ: { min: 0.5, max: 12, neutral: 0.707, unit: '', label: 'Resonance' },
} as const satisfies Record<string, ControlRange>;

/** Controls of the master section. */
export const MASTER_CONTROLS = {
  gainDb: { min: -60, max: 6, neutral: 0, unit: 'dB', label: 'Master' },
  tempo: { min: 0.75, max: 1.25, neutral: 1, unit: '×', label: 'Tempo' },
  pitchSemitones: { min: -12, max: 12, neutral: 0, unit: 'st', label: 'Pitch' },
  reverbMix: { min: 0, max: 1, neutral: 0, unit: '', label: 'Reverb' },
  reverbSize: { min: 0, max: 1, neutral: 0.5, unit: '', label: 'Room size' },
  delayMix: { min: 0, max: 1, neutral: 0, unit: '', label: 'Delay' },
  delayFeedback: { min: 0, max: 0.9, neutral: 0.35, unit: '', label: 'Feedback' },
  /** Beats per repeat of the tempo-synced delay. */
  delayBeats: { min: 0.25, max: 2, neutral: 0.75, unit: 'beats', label: 'Delay time' },
  /** One knob: below 0 sweeps a low-pass down, above 0 a high-pass up, 0 is open. */
  filterSweep: { min: -1, max: 1, neutral: 0, unit: '', label: 'Filter' },
} as const satisfies Record<string, ControlRange>;

export type StemControl = keyof typeof STEM_CONTROLS;
export type MasterControl = keyof typeof MASTER_CONTROLS;

export const STEM_CONTROL_NAMES = Object.keys(STEM_CONTROLS) as StemControl[];
export const MASTER_CONTROL_NAMES = Object.keys(MASTER_CONTROLS) as MasterControl[];

/** Clamps into [min, max]; NaN becomes the neutral value. */
export function clampToRange(value: number, range: { min: number; max: number; neutral?: number }): number {
  if (Number.isNaN(value)) return range.neutral ?? range.min;
  return Math.min(range.max, Math.max(range.min, value));
}
