// A FragmentSource for the RTMP push tests: a live ffmpeg (lavfi test picture + a sine tone that
// goes silent midway, real time) encoding H.264 + AAC to fragmented MP4 as the room's broadcast
// encoder does, split into the init segment and moof+mdat chunks by a minimal box splitter.
// (Test-only: media/live/cmaf.ts, the product's splitter, is another helper's and not on main
// yet; this one reads just enough to tell an independent chunk.)
import { spawn, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { FragmentChunk, FragmentInit, FragmentSource } from '../../server/live/rtmp-push.ts';
import { stopChild } from './redis.ts';

export interface TestFragmentSourceOptions {
  /** Seconds of stream. */
  durationSec: number;
  /** The tone stops at this second of the stream (silence after). */
  toneOffAtSec: number;
  ffmpeg?: string;
}

export class TestFragmentSource extends EventEmitter<{ init: [FragmentInit]; chunk: [FragmentChunk] }> implements FragmentSource {
  init: FragmentInit | null = null;
  readonly chunks: FragmentChunk[] = [];
  readonly #child: ChildProcess;
  readonly ended: Promise<void>;
  #pending = Buffer.alloc(0);
  #moof: Buffer | null = null;
  #ftyp: Buffer | null = null;
  #stderr = '';

  constructor(opts: TestFragmentSourceOptions) {
    super();
    const fps = 15;
    const args = [
      '-hide_banner', '-loglevel', 'error', '-re',
      '-f', 'lavfi', '-i', `testsrc=size=320x180:rate=${fps}`,
      '-f', 'lavfi', '-i', `sine=frequency=440:sample_rate=48000,volume=volume=0:enable='gte(t,${opts.toneOffAtSec})'`,
      '-t', String(opts.durationSec),
      '-map', '0:v', '-map', '1:a',
      '-c:v', 'libx264', '-preset', 'veryfast', '-tune', 'zerolatency', '-g', String(fps), '-pix_fmt', 'yuv420p',
      '-c:a', 'aac', '-b:a', '128k',
      '-movflags', '+frag_keyframe+empty_moov+default_base_moof', '-frag_duration', '500000', '-flush_packets', '1',
      '-f', 'mp4', 'pipe:1',
    ];
    this.#child = spawn(opts.ffmpeg ?? 'ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child.stdout!.on('data', (bytes: Buffer) => this.#push(bytes));
    this.#child.stderr!.on('data', (b: Buffer) => (this.#stderr += b.toString()));
    this.ended = new Promise((resolve, reject) => {
      this.#child.once('close', (code) => (code === 0 || this.#child.signalCode ? resolve() : reject(new Error(`source ffmpeg exited with ${code}: ${this.#stderr}`))));
    });
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  stop(): Promise<void> {
    return stopChild(this.#child);
  }

  #push(bytes: Buffer): void {
    this.#pending = Buffer.concat([this.#pending, bytes]);
    for (;;) {
      if (this.#pending.length < 8) return;
      let size = this.#pending.readUInt32BE(0);
      if (size === 1) {
        if (this.#pending.length < 16) return;
        size = Number(this.#pending.readBigUInt64BE(8));
      }
      if (size < 8) throw new Error(`bad box size ${size}`);
      if (this.#pending.length < size) return;
      const box = this.#pending.subarray(0, size);
      this.#pending = this.#pending.subarray(size);
      this.#box(box.toString('latin1', 4, 8), Buffer.from(box));
    }
  }

  #box(type: string, box: Buffer): void {
    if (type === 'ftyp') this.#ftyp = box;
    else if (type === 'moov') {
      this.init = { data: Buffer.concat([this.#ftyp ?? Buffer.alloc(0), box]) };
      this.emit('init', this.init);
    } else if (type === 'moof') this.#moof = box;
    else if (type === 'mdat' && this.#moof) {
      const chunk = { data: Buffer.concat([this.#moof, box]), independent: firstVideoSampleIsSync(this.#moof) };
      this.#moof = null;
      this.chunks.push(chunk);
      this.emit('chunk', chunk);
    }
  }
}

/** Whether the first sample of track 1 (the video: mapped first) in a moof is a sync sample. */
function firstVideoSampleIsSync(moof: Buffer): boolean {
  for (const traf of children(moof, 8)) {
    if (traf.type !== 'traf') continue;
    let trackId = 0;
    let defaultFlags: number | null = null;
    for (const box of children(moof.subarray(traf.start, traf.end), 8)) {
      const b = moof.subarray(traf.start + box.start, traf.start + box.end);
      const flags = b.readUInt32BE(8) & 0xffffff;
      if (box.type === 'tfhd') {
        trackId = b.readUInt32BE(12);
        let at = 16;
        if (flags & 0x1) at += 8;
        if (flags & 0x2) at += 4;
        if (flags & 0x8) at += 4;
        if (flags & 0x10) at += 4;
        if (flags & 0x20) defaultFlags = b.readUInt32BE(at);
      } else if (box.type === 'trun' && trackId === 1) {
        let at = 16;
        if (flags & 0x1) at += 4;
        let sampleFlags: number | null = null;
        if (flags & 0x4) sampleFlags = b.readUInt32BE(at);
        else if (flags & 0x400) sampleFlags = b.readUInt32BE(at + (flags & 0x100 ? 4 : 0) + (flags & 0x200 ? 4 : 0));
        sampleFlags ??= defaultFlags;
        return sampleFlags !== null && ((sampleFlags >>> 16) & 1) === 0;
      }
    }
  }
  return false;
}

function children(buf: Buffer, from: number): { type: string; start: number; end: number }[] {
  const out: { type: string; start: number; end: number }[] = [];
  for (let at = from; at + 8 <= buf.length; ) {
    const size = buf.readUInt32BE(at);
    if (size < 8 || at + size > buf.length) break;
    out.push({ type: buf.toString('latin1', at + 4, at + 8), start: at, end: at + size });
    at += size;
  }
  return out;
}
