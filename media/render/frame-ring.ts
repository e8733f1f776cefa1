// The control words of the ring of frame slots (a SharedArrayBuffer) that a renderer shares with
// an encoder's worker thread (encoder.ts and its two workers): one definition for both sides.

/** Indexes into the Int32Array of control words. */
export const CTRL = {
  /** Frames the renderer has committed. */
  written: 0,
  /** Frames the worker has taken (a slot is free again once its frame is consumed). */
  consumed: 1,
  /** One of STATE. */
  state: 2,
} as const;

export const STATE = { running: 0, ended: 1, aborted: 2 } as const;
