// VP8 out of ffmpeg and into RTP: an IVF reader for the encoder's output
// stream (`-f ivf pipe:1`) and an RFC 7741 packetizer (a one-byte payload
// descriptor, S on a frame's first packet, the marker on its last, a 90 kHz
// timestamp). Sequence numbers and timestamps are this packetizer's own, so
// they stay continuous when the encoder is restarted for a keyframe.

export const VP8_RTP_CLOCK = 90_000;
const RTP_VERSION = 2;
const HEADER_BYTES = 12;
/** Payload bytes per packet: well under any path MTU once SRTP and the headers are added. */
export const VP8_MAX_PAYLOAD = 1100;
const IVF_HEADER_BYTES = 32;
const IVF_FRAME_HEADER_BYTES = 12;
/** No VP8 frame of a fallback stream comes near this: anything larger is a broken stream. */
const MAX_FRAME_BYTES = 8 * 1024 * 1024;

export interface IvfFrame {
  /** The frame's presentation index as the encoder counted it (its input frame number). */
  pts: number;
  data: Uint8Array;
  keyframe: boolean;
}

/** Whether a VP8 frame is a keyframe (RFC 6386 §9.1: bit 0 of the first byte is 0). */
export function isVp8Keyframe(frame: Uint8Array): boolean {
  return frame.length > 0 && (frame[0]! & 0x01) === 0;
}

/** Splits an IVF byte stream (in whatever chunks it arrives) into frames. */
export class IvfReader {
  /** Bytes not yet consumed, as they arrived: joined only once a whole frame is there. */
  #chunks: Uint8Array[] = [];
  #length = 0;
  #headerSeen = false;
  /** Bytes the next step needs before it can go on. */
  #needed = IVF_HEADER_BYTES;

  push(chunk: Uint8Array): IvfFrame[] {
    const frames: IvfFrame[] = [];
    if (chunk.length === 0) return frames;
    this.#chunks.push(chunk);
    this.#length += chunk.length;
    while (this.#length >= this.#needed) {
      const buf = this.#flatten();
      let pos = 0;
      if (!this.#headerSeen) {
        if (String.fromCharCode(...buf.subarray(0, 4)) !== 'DKIF') throw new Error('not an IVF stream');
        pos = Math.max(IVF_HEADER_BYTES, buf[6]! | (buf[7]! << 8));
        if (buf.length < pos) {
          this.#needed = pos;
          break;
        }
        this.#headerSeen = true;
      }
      const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
      this.#needed = IVF_FRAME_HEADER_BYTES;
      while (buf.length - pos >= IVF_FRAME_HEADER_BYTES) {
        const size = view.getUint32(pos, true);
        if (size > MAX_FRAME_BYTES) throw new Error(`IVF frame of ${size} bytes`);
        if (buf.length - pos - IVF_FRAME_HEADER_BYTES < size) {
          this.#needed = IVF_FRAME_HEADER_BYTES + size;
          break;
        }
        const pts = view.getUint32(pos + 4, true) + view.getUint32(pos + 8, true) * 2 ** 32;
        const data = buf.slice(pos + IVF_FRAME_HEADER_BYTES, pos + IVF_FRAME_HEADER_BYTES + size);
        frames.push({ pts, data, keyframe: isVp8Keyframe(data) });
        pos += IVF_FRAME_HEADER_BYTES + size;
      }
      const rest = buf.subarray(pos);
      this.#chunks = rest.length ? [rest] : [];
      this.#length = rest.length;
      if (this.#length < this.#needed) break;
    }
    return frames;
  }

  #flatten(): Uint8Array {
    if (this.#chunks.length === 1) return this.#chunks[0]!;
    const out = new Uint8Array(this.#length);
    let offset = 0;
    for (const c of this.#chunks) {
      out.set(c, offset);
      offset += c.length;
    }
    this.#chunks = [out];
    return out;
  }
}

export interface Vp8PacketizerOptions {
  ssrc: number;
  payloadType: number;
  maxPayload?: number;
}

export class Vp8Packetizer {
  readonly ssrc: number;
  readonly payloadType: number;
  readonly #maxPayload: number;
  #sequenceNumber = randomUint(0xffff);
  readonly #timestampBase = randomUint(0xffff_ffff);

  constructor(options: Vp8PacketizerOptions) {
    if (!Number.isInteger(options.payloadType) || options.payloadType < 96 || options.payloadType > 127) {
      throw new RangeError(`dynamic payload type must be 96–127, got ${options.payloadType}`);
    }
    this.ssrc = options.ssrc >>> 0;
    this.payloadType = options.payloadType;
    this.#maxPayload = Math.max(64, options.maxPayload ?? VP8_MAX_PAYLOAD);
  }

  get nextSequenceNumber(): number {
    return this.#sequenceNumber;
  }

  /** One encoded frame shown at `timeMs` (on the sender's monotonic clock) as RTP packets. */
  packetize(frame: Uint8Array, timeMs: number): Uint8Array[] {
    const timestamp = (this.#timestampBase + Math.round((timeMs * VP8_RTP_CLOCK) / 1000)) >>> 0;
    const chunk = this.#maxPayload - 1;
    const count = Math.max(1, Math.ceil(frame.length / chunk));
    const packets: Uint8Array[] = [];
    for (let i = 0; i < count; i++) {
      const part = frame.subarray(i * chunk, Math.min(frame.length, (i + 1) * chunk));
      const packet = new Uint8Array(HEADER_BYTES + 1 + part.length);
      const view = new DataView(packet.buffer);
      packet[0] = RTP_VERSION << 6;
      packet[1] = (i === count - 1 ? 0x80 : 0) | this.payloadType;
      view.setUint16(2, this.#sequenceNumber);
      view.setUint32(4, timestamp);
      view.setUint32(8, this.ssrc);
      // VP8 payload descriptor: X=0, N=0, S=1 on the partition's start, PID=0.
      packet[HEADER_BYTES] = i === 0 ? 0x10 : 0x00;
      packet.set(part, HEADER_BYTES + 1);
      this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
      packets.push(packet);
    }
    return packets;
  }
}

/** Whether an RTCP compound packet carries a keyframe request (PSFB PLI, FMT 1, or FIR, FMT 4). */
export function rtcpRequestsKeyframe(packet: Uint8Array): boolean {
  let pos = 0;
  while (pos + 4 <= packet.length) {
    if (packet[pos]! >> 6 !== RTP_VERSION) return false;
    const fmt = packet[pos]! & 0x1f;
    const type = packet[pos + 1]!;
    if (type === 206 && (fmt === 1 || fmt === 4)) return true;
    const words = (packet[pos + 2]! << 8) | packet[pos + 3]!;
    pos += 4 * (words + 1);
  }
  return false;
}

function randomUint(max: number): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! % (max + 1);
}
