// Decoded stems in memory, one copy per release, shared by every live room of it.
//
// Ingest stores each stem decoded (48 kHz stereo float WAV). A live room needs
// all of its release's stems in memory; they are read once into
// SharedArrayBuffers, which the mixers in the rooms' worker threads read
// without a copy. A release's PCM is dropped when the last room using it lets go.
// The files come from the release's folder (ReleaseFolders: DATA_DIR, or fetched
// from S3 into the node's cache), which is let go once the PCM is in memory.
import fsp from 'node:fs/promises';
import os from 'node:os';
import { fileSource, readWavFloat32, scanWav } from '../../media/audio/wav.ts';
import { localReleaseFolders, type ReleaseFolders } from '../catalog/release-files.ts';
import { DataLayout, resolveInside } from '../store/paths.ts';

export const STEM_SAMPLE_RATE = 48_000;

export interface SharedStem {
  id: string;
  /** Interleaved stereo float PCM over a SharedArrayBuffer. */
  pcm: Float32Array;
}

interface Entry {
  loading: Promise<SharedStem[]>;
  users: number;
}

export class StemCache {
  readonly #folders: ReleaseFolders;
  readonly #entries = new Map<string, Entry>();

  /** A DataLayout reads DATA_DIR/releases/<id> (processes without a blob store). */
  constructor(source: DataLayout | ReleaseFolders) {
    this.#folders = source instanceof DataLayout ? localReleaseFolders(source) : source;
  }

  /** The release's stems; call release() once for every acquire(). */
  acquire(releaseId: string, stemIds: readonly string[]): Promise<SharedStem[]> {
    let entry = this.#entries.get(releaseId);
    if (!entry) {
      const loading = this.#load(releaseId, stemIds);
      entry = { loading, users: 0 };
      this.#entries.set(releaseId, entry);
      // A failed load is not cached: the next acquire tries again.
      loading.catch(() => {
        if (this.#entries.get(releaseId)?.loading === loading) this.#entries.delete(releaseId);
      });
    }
    entry.users++;
    return entry.loading;
  }

  release(releaseId: string): void {
    const entry = this.#entries.get(releaseId);
    if (!entry) return;
    if (--entry.users <= 0) this.#entries.delete(releaseId);
  }

  /** Releases whose stems are held now (for tests and metrics). */
  get heldReleases(): string[] {
    return [...this.#entries.keys()];
  }

  async #load(releaseId: string, stemIds: readonly string[]): Promise<SharedStem[]> {
    const folder = await this.#folders.open(releaseId, 'stems');
    try {
      return await Promise.all(stemIds.map(async (id) => ({ id, pcm: await readShared(resolveInside(folder.dir, 'stems', `${id}.wav`), `${releaseId}/${id}`) })));
    } finally {
      folder.release();
    }
  }
}

/**
 * A stem's PCM in a SharedArrayBuffer. Ingest writes 32-bit float little-endian
 * WAV, which is read straight into the shared memory; anything else is decoded first.
 */
async function readShared(file: string, label: string): Promise<Float32Array> {
  const fh = await fsp.open(file, 'r');
  try {
    const { size } = await fh.stat();
    const layout = await scanWav(fileSource(fh, size));
    const { format } = layout;
    if (format.sampleRate !== STEM_SAMPLE_RATE || format.channels !== 2) {
      throw new Error(`stem ${label} is ${format.sampleRate} Hz × ${format.channels}; ingest stores 48 kHz stereo`);
    }
    const pcm = new Float32Array(new SharedArrayBuffer(layout.frames * 2 * 4));
    if (os.endianness() === 'LE' && format.sampleFormat === 'float' && format.containerBits === 32) {
      const bytes = new Uint8Array(pcm.buffer);
      let got = 0;
      while (got < bytes.length) {
        const { bytesRead } = await fh.read(bytes, got, bytes.length - got, layout.dataOffset + got);
        if (bytesRead === 0) throw new Error(`stem ${label} ended early`);
        got += bytesRead;
      }
    } else {
      pcm.set((await readWavFloat32(file)).interleaved);
    }
    return pcm;
  } finally {
    await fh.close();
  }
}
