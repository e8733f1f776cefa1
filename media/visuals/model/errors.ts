/** Training or generation cannot be done with this input; the message says why, for a person. */
export class VisualModelError extends Error {
  override readonly name = 'VisualModelError';
}
