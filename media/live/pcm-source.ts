// Where the live loop's PCM comes from. The room's mixer is one source (loaded
// in the live-output worker from a module path); test signals are another, so
// that the media path can be tested and benchmarked without a mixer.

/** Something that renders interleaved stereo float PCM at 48 kHz, one block at a time. */
export interface PcmSource {
  /** Writes the next `frames` frames into `out` (interleaved L R, `frames * 2` samples). */
  render(out: Float32Array, frames: number): void;
  /**
   * The loop fell behind and will never send these frames: move the source's own
   * clock on by `frames` without rendering, so that what follows is on time.
   */
  skip?(frames: number): void;
  /** A message from the owner of the live output (e.g. new room state for a mixer). */
  control?(message: unknown): void;
  close?(): void | Promise<void>;
}

/**
 * A module that provides a source for the live-output worker exports this
 * function (as `createPcmSource`, or the name given in the source spec). `init`
 * is the data given to LiveOutput.create, structured-cloned into the worker
 * (MessagePorts in it may be transferred).
 */
export type PcmSourceFactory = (init: unknown) => PcmSource | Promise<PcmSource>;

/** Where a live loop's PCM comes from: a test signal, or a module's factory (the room's mixer). */
export type PcmSourceSpec =
  | { kind: 'test'; signal: TestSignal }
  | {
      kind: 'module';
      /** Absolute path or file: URL of a module exporting a PcmSourceFactory (e.g. the mixer). */
      module: string;
      /** Default: createPcmSource. */
      exportName?: string;
      /** Structured-cloned into the worker and handed to the factory. */
      init?: unknown;
      /** Transferables inside `init` (e.g. a MessagePort for room state, SharedArrayBuffers need none). */
      transferList?: Transferable[];
    };

/** A spec as it reaches a worker (its transferables already moved). */
export type WorkerPcmSourceSpec = Exclude<PcmSourceSpec, { kind: 'module' }> | Omit<Extract<PcmSourceSpec, { kind: 'module' }>, 'transferList'>;

/** Loads the source a spec names (in the worker that runs the loop). */
export async function loadPcmSource(spec: WorkerPcmSourceSpec): Promise<PcmSource> {
  if (spec.kind === 'test') return new TestSignalSource(spec.signal);
  const url = spec.module.startsWith('file:') ? spec.module : (await import('node:url')).pathToFileURL(spec.module).href;
  const mod = (await import(url)) as Record<string, unknown>;
  const exportName = spec.exportName ?? 'createPcmSource';
  const factory = mod[exportName];
  if (typeof factory !== 'function') throw new TypeError(`${spec.module} exports no function ${exportName}`);
  return await (factory as PcmSourceFactory)(spec.init);
}

export type TestSignal =
  /** A sine per channel, so that the two channels can be told apart at the receiver. */
  | { kind: 'tone'; leftHz: number; rightHz: number; amplitude?: number }
  | { kind: 'noise'; amplitude?: number; seed?: number }
  | { kind: 'silence' };

/** Control message understood by the test-signal source. */
export interface SetTestSignal {
  type: 'set-signal';
  signal: TestSignal;
}

const SAMPLE_RATE = 48_000;
const DEFAULT_AMPLITUDE = 0.3;
const TWO_PI = 2 * Math.PI;

/** Test tones, noise or silence; switching keeps the phase continuous (no click). */
export class TestSignalSource implements PcmSource {
  #signal: TestSignal;
  #phaseL = 0;
  #phaseR = 0;
  #seed: number;

  constructor(signal: TestSignal) {
    this.#signal = checkTestSignal(signal);
    this.#seed = (signal.kind === 'noise' ? signal.seed : undefined) ?? 0x9e3779b9;
  }

  get signal(): TestSignal {
    return this.#signal;
  }

  render(out: Float32Array, frames: number): void {
    const signal = this.#signal;
    if (signal.kind === 'silence') {
      out.fill(0, 0, frames * 2);
    } else if (signal.kind === 'tone') {
      const a = signal.amplitude ?? DEFAULT_AMPLITUDE;
      const stepL = (TWO_PI * signal.leftHz) / SAMPLE_RATE;
      const stepR = (TWO_PI * signal.rightHz) / SAMPLE_RATE;
      let pl = this.#phaseL;
      let pr = this.#phaseR;
      for (let i = 0; i < frames; i++) {
        out[2 * i] = a * Math.sin(pl);
        out[2 * i + 1] = a * Math.sin(pr);
        pl += stepL;
        pr += stepR;
      }
      this.#phaseL = pl % TWO_PI;
      this.#phaseR = pr % TWO_PI;
    } else {
      const a = signal.amplitude ?? DEFAULT_AMPLITUDE;
      let s = this.#seed;
      for (let i = 0; i < frames * 2; i++) {
        // xorshift32: cheap, seeded, repeatable.
        s ^= s << 13;
        s ^= s >>> 17;
        s ^= s << 5;
        out[i] = a * ((s >>> 0) / 0x8000_0000 - 1);
      }
      this.#seed = s;
    }
  }

  skip(frames: number): void {
    if (this.#signal.kind === 'tone') {
      this.#phaseL = (this.#phaseL + (TWO_PI * this.#signal.leftHz * frames) / SAMPLE_RATE) % TWO_PI;
      this.#phaseR = (this.#phaseR + (TWO_PI * this.#signal.rightHz * frames) / SAMPLE_RATE) % TWO_PI;
    }
  }

  control(message: unknown): void {
    if (typeof message !== 'object' || message === null || (message as { type?: unknown }).type !== 'set-signal') {
      throw new TypeError('the test-signal source understands only { type: "set-signal", signal }');
    }
    this.#signal = checkTestSignal((message as SetTestSignal).signal);
  }
}

function checkTestSignal(signal: TestSignal): TestSignal {
  const amplitude = signal.kind === 'silence' ? 0 : (signal.amplitude ?? DEFAULT_AMPLITUDE);
  if (!(amplitude >= 0 && amplitude <= 1)) throw new RangeError(`amplitude must be 0–1, got ${amplitude}`);
  if (signal.kind === 'tone') {
    for (const hz of [signal.leftHz, signal.rightHz]) {
      if (!(hz > 0 && hz < SAMPLE_RATE / 2)) throw new RangeError(`tone frequency must be 0–24000 Hz, got ${hz}`);
    }
  } else if (signal.kind !== 'noise' && signal.kind !== 'silence') {
    throw new TypeError(`unknown test signal ${(signal as { kind: unknown }).kind}`);
  }
  return { ...signal };
}
