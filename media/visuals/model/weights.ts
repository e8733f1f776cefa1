// The weights file: "RRVM", a u32le header length, a JSON header (format, method, artwork ids in
// style-code order, hyperparameters, tensor names and shapes) padded with spaces to 4 bytes, then
// every tensor as little-endian float32 in the header's order. Its SHA-256 is the model's id.
import { createHash } from 'node:crypto';
import { VisualModelError } from './errors.ts';
import { VISUAL_MODEL_METHOD, VISUAL_MODEL_METHOD_VERSION, type Hyperparameters } from './types.ts';

export const WEIGHTS_FORMAT = 'f32le+json-header/1';
const MAGIC = 0x4d565252; // "RRVM" read as u32le

export interface WeightsContent {
  artworkIds: string[];
  hyperparameters: Hyperparameters;
  tensors: { name: string; shape: number[]; data: Float32Array }[];
}

interface Header {
  format: string;
  method: string;
  methodVersion: number;
  artworkIds: string[];
  hyperparameters: Hyperparameters;
  tensors: { name: string; shape: number[] }[];
}

export function encodeWeights(content: WeightsContent): Uint8Array {
  const header: Header = {
    format: WEIGHTS_FORMAT,
    method: VISUAL_MODEL_METHOD,
    methodVersion: VISUAL_MODEL_METHOD_VERSION,
    artworkIds: content.artworkIds,
    hyperparameters: content.hyperparameters,
    tensors: content.tensors.map((t) => ({ name: t.name, shape: t.shape })),
  };
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  if (json.length % 4) json = Buffer.concat([json, Buffer.alloc(4 - (json.length % 4), 0x20)]);
  const floats = content.tensors.reduce((s, t) => s + t.data.length, 0);
  const out = new Uint8Array(8 + json.length + floats * 4);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, json.length, true);
  out.set(json, 8);
  let at = 8 + json.length;
  for (const t of content.tensors) {
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1)) throw new Error(`tensor ${t.name} has ${t.data.length} values for shape ${t.shape.join('x')}`);
    for (let i = 0; i < t.data.length; i++, at += 4) view.setFloat32(at, t.data[i]!, true);
  }
  return out;
}

function readHeader(bytes: Uint8Array): { header: Header; dataAt: number } {
  if (bytes.length < 8) throw new VisualModelError('not a visual model weights file (too short)');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new VisualModelError('not a visual model weights file (bad magic)');
  const len = view.getUint32(4, true);
  if (8 + len > bytes.length) throw new VisualModelError('visual model weights file is truncated (header)');
  let header: Header;
  try {
    header = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset + 8, len).toString('utf8')) as Header;
  } catch {
    throw new VisualModelError('visual model weights file has an unreadable header');
  }
  if (header.format !== WEIGHTS_FORMAT) throw new VisualModelError(`visual model weights format ${String(header.format)} is not ${WEIGHTS_FORMAT}`);
  return { header, dataAt: 8 + len };
}

export function decodeWeights(bytes: Uint8Array): WeightsContent {
  const { header, dataAt } = readHeader(bytes);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = dataAt;
  const tensors = header.tensors.map(({ name, shape }) => {
    const n = shape.reduce((a, b) => a * b, 1);
    if (at + n * 4 > bytes.length) throw new VisualModelError('visual model weights file is truncated (data)');
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++, at += 4) data[i] = view.getFloat32(at, true);
    return { name, shape, data };
  });
  if (at !== bytes.length) throw new VisualModelError('visual model weights file has trailing bytes');
  return { artworkIds: header.artworkIds, hyperparameters: header.hyperparameters, tensors };
}

/**
 * What the training record says about a weights file. `params` counts learned values only; a warp
 * model also carries its artwork (tensors art0, art1, … at tableScale), counted in `artworkValues`.
 */
export function describeWeights(bytes: Uint8Array): { format: string; params: number; artworkValues: number; artworkIds: string[]; hyperparameters: Hyperparameters } {
  const { header } = readHeader(bytes);
  const size = (t: { shape: number[] }) => t.shape.reduce((a, b) => a * b, 1);
  const isArt = (t: { name: string }) => /^art\d+$/.test(t.name);
  const params = header.tensors.filter((t) => !isArt(t)).reduce((s, t) => s + size(t), 0);
  const artworkValues = header.tensors.filter(isArt).reduce((s, t) => s + size(t), 0);
  return { format: header.format, params, artworkValues, artworkIds: header.artworkIds, hyperparameters: header.hyperparameters };
}

export function weightsSha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
