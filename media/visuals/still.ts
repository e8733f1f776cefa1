// A still of the visuals as a PNG, with text metadata (the signed manifest)
// in a tEXt chunk, so that an image found anywhere names where it came from.
import zlib from 'node:zlib';
import { createCanvas } from '@napi-rs/canvas';
import type { FrameInput, VisualEngine } from '../../shared/visual-engine.ts';

/**
 * Draws one frame and encodes it as PNG, with `text` entries as tEXt chunks (keyword → Latin-1 text).
 * Seconds of CPU at 3840x2160: the server calls it in a worker thread (server/work/still-worker.ts).
 */
export async function renderStillPng(engine: VisualEngine, width: number, height: number, input: FrameInput, text: Record<string, string> = {}): Promise<Buffer> {
  const canvas = createCanvas(width, height);
  const ctx = canvas.getContext('2d');
  const image = ctx.createImageData(width, height);
  // Drawn straight into the image: no second 33 MB frame at 4K.
  engine.renderFrame(image.data, width, height, input);
  ctx.putImageData(image, 0, 0);
  // On the calling thread (a worker's, at a lower priority), not on the libuv pool that the whole process shares.
  const png = canvas.encodeSync('png');
  return withTextChunks(png, text);
}

/** Inserts tEXt chunks before IEND. Keywords are 1–79 Latin-1 characters; text must be Latin-1 (JSON escapes the rest). */
export function withTextChunks(png: Buffer, text: Record<string, string>): Buffer {
  const entries = Object.entries(text);
  if (entries.length === 0) return png;
  const iend = png.length - 12;
  if (png.subarray(iend + 4, iend + 8).toString('latin1') !== 'IEND') throw new Error('not a PNG ending in IEND');
  const chunks = entries.map(([keyword, value]) => {
    if (!/^[\x20-\x7e]{1,79}$/.test(keyword)) throw new RangeError(`bad PNG text keyword ${JSON.stringify(keyword)}`);
    if (/[^\x00-\xff]/.test(value)) throw new RangeError('PNG tEXt holds Latin-1 only; escape the rest');
    const data = Buffer.concat([Buffer.from(keyword, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]);
    const type = Buffer.from('tEXt', 'latin1');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(zlib.crc32(Buffer.concat([type, data])) >>> 0);
    return Buffer.concat([len, type, data, crc]);
  });
  return Buffer.concat([png.subarray(0, iend), ...chunks, png.subarray(iend)]);
}

/** The tEXt entries of a PNG (for tests and verification). */
export function readTextChunks(png: Buffer): Record<string, string> {
  const out: Record<string, string> = {};
  let pos = 8;
  while (pos + 12 <= png.length) {
    const len = png.readUInt32BE(pos);
    const type = png.subarray(pos + 4, pos + 8).toString('latin1');
    if (type === 'tEXt') {
      const data = png.subarray(pos + 8, pos + 8 + len);
      const nul = data.indexOf(0);
      if (nul > 0) out[data.subarray(0, nul).toString('latin1')] = data.subarray(nul + 1).toString('latin1');
    }
    if (type === 'IEND') break;
    pos += 12 + len;
  }
  return out;
}
