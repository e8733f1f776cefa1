// The room's mixer as a live PCM source, loaded by the live-output worker
// (LiveOutput source spec { kind: 'module', module: <this file> }).
//
// The stems arrive as Float32Arrays over SharedArrayBuffers, so every room of a
// release shares one copy of its PCM with the main thread. The room's state
// arrives as control messages carrying the checked room document's mix and
// arrangement; the source turns them into the mixer's state itself, against the
// wall clock that the room's transport is stamped with, so the position the
// mixer follows is the one every member computes. The state is re-applied at
// least every RESYNC_MS and after frames were skipped, so that the mixer's own
// read head never wanders from the room's transport.
import type { MixerState } from '../mixer/mixer-state.ts';
import { mixerStateFrom } from '../mixer/mixer-state.ts';
import { Mixer } from '../mixer/mixer.ts';
import type { RoomRelease, RoomState } from '../../shared/room-doc.ts';
import type { PcmSource } from './pcm-source.ts';

export interface MixerSourceInit {
  sampleRate: number;
  /** Interleaved stereo float PCM per stem; SharedArrayBuffer-backed, so nothing is copied. */
  stems: { id: string; pcm: Float32Array }[];
  release: Pick<RoomRelease, 'bpm' | 'excerpts'>;
  /** The room's state when the output starts. */
  room: Pick<RoomState, 'mix' | 'arrangement'>;
  /**
   * Where the mix's loudness goes for the server's visuals (Int32Array[0]: energy
   * × 1e6, 0..1 as the browser measures it: min(1, 3 × RMS) of what it hears).
   */
  energy?: SharedArrayBuffer;
}

/** Scale of the energy cell in MixerSourceInit.energy. */
export const ENERGY_SCALE = 1e6;

/** Control message: the room's checked state changed. */
export interface MixerSourceStateMessage {
  type: 'room-state';
  room: Pick<RoomState, 'mix' | 'arrangement'>;
}

/** Re-anchors the mixer on the room's transport this often even when nothing changed. */
export const RESYNC_MS = 1000;

export class MixerPcmSource implements PcmSource {
  readonly mixer: Mixer;
  readonly #release: MixerSourceInit['release'];
  readonly #now: () => number;
  #room: MixerSourceInit['room'];
  #dirty = true;
  #lastAppliedMs = Number.NEGATIVE_INFINITY;
  readonly #energy: Int32Array | null;

  constructor(init: MixerSourceInit, now: () => number = Date.now) {
    checkInit(init);
    this.mixer = new Mixer({ sampleRate: init.sampleRate, stems: init.stems, bpm: init.release.bpm });
    this.#release = init.release;
    this.#room = init.room;
    this.#now = now;
    this.#energy = init.energy instanceof SharedArrayBuffer && init.energy.byteLength >= 4 ? new Int32Array(init.energy, 0, 1) : null;
  }

  render(out: Float32Array, frames: number): void {
    const now = this.#now();
    if (this.#dirty || now - this.#lastAppliedMs >= RESYNC_MS) {
      this.mixer.setState(this.#state(now));
      this.#dirty = false;
      this.#lastAppliedMs = now;
    }
    this.mixer.process(out, frames);
    if (this.#energy) {
      let sum = 0;
      const n = frames * 2;
      for (let i = 0; i < n; i++) sum += out[i]! * out[i]!;
      Atomics.store(this.#energy, 0, Math.round(Math.min(1, 3 * Math.sqrt(sum / Math.max(1, n))) * ENERGY_SCALE));
    }
  }

  skip(_frames: number): void {
    // The frames are never heard; the next render jumps to where the room's transport is then.
    this.#dirty = true;
  }

  control(message: unknown): void {
    if (!isStateMessage(message)) throw new TypeError('the mixer source understands only { type: "room-state", room }');
    this.#room = message.room;
    this.#dirty = true;
  }

  #state(nowMs: number): MixerState {
    return mixerStateFrom(this.#room, this.#release, nowMs);
  }
}

/** The live-output worker's entry point for this module. */
export function createPcmSource(init: unknown): PcmSource {
  return new MixerPcmSource(init as MixerSourceInit);
}

function isStateMessage(m: unknown): m is MixerSourceStateMessage {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Partial<MixerSourceStateMessage>;
  return r.type === 'room-state' && typeof r.room === 'object' && r.room !== null;
}

function checkInit(init: MixerSourceInit): void {
  if (typeof init !== 'object' || init === null) throw new TypeError('the mixer source needs its init object');
  if (!(init.sampleRate > 0)) throw new RangeError(`sampleRate must be positive, got ${init.sampleRate}`);
  if (!Array.isArray(init.stems) || init.stems.length === 0) throw new RangeError('the mixer source needs at least one stem');
  for (const s of init.stems) {
    if (!(s.pcm instanceof Float32Array) || s.pcm.length % 2 !== 0) throw new TypeError(`stem ${s.id}: interleaved stereo Float32Array expected`);
  }
  if (!init.release || !Array.isArray(init.release.excerpts) || init.release.excerpts.length === 0) throw new RangeError('the release has no excerpts to play');
}
