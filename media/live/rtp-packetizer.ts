// RTP for Opus (RFC 7587): one Opus packet per RTP packet, a 48 kHz timestamp
// whatever the audio's real rate, sequence numbers that count packets sent
// (not frames: a skipped frame advances the timestamp only).

export const OPUS_PAYLOAD_TYPE = 111;
export const OPUS_CLOCK_RATE = 48_000;
const RTP_VERSION = 2;
const HEADER_BYTES = 12;

export interface RtpPacketizerOptions {
  ssrc: number;
  payloadType?: number;
  /** Random by default (RFC 3550 §5.1: makes known-plaintext attacks harder). */
  initialSequenceNumber?: number;
  initialTimestamp?: number;
}

export interface RtpHeaderFields {
  payloadType: number;
  marker: boolean;
  sequenceNumber: number;
  timestamp: number;
  ssrc: number;
}

export class RtpPacketizer {
  readonly ssrc: number;
  readonly payloadType: number;
  #sequenceNumber: number;
  #timestamp: number;
  /** The next packet opens a talkspurt (first packet, or first after a gap). */
  #marker = true;

  constructor(options: RtpPacketizerOptions) {
    if (!Number.isInteger(options.ssrc) || options.ssrc < 0 || options.ssrc > 0xffff_ffff) {
      throw new RangeError(`SSRC must be a 32-bit unsigned integer, got ${options.ssrc}`);
    }
    const payloadType = options.payloadType ?? OPUS_PAYLOAD_TYPE;
    // 96–127 is the dynamic range; 72–76 would collide with RTCP packet types.
    if (!Number.isInteger(payloadType) || payloadType < 96 || payloadType > 127) {
      throw new RangeError(`dynamic payload type must be 96–127, got ${payloadType}`);
    }
    this.ssrc = options.ssrc >>> 0;
    this.payloadType = payloadType;
    this.#sequenceNumber = (options.initialSequenceNumber ?? randomUint(0xffff)) & 0xffff;
    this.#timestamp = (options.initialTimestamp ?? randomUint(0xffff_ffff)) >>> 0;
  }

  get nextSequenceNumber(): number {
    return this.#sequenceNumber;
  }

  get nextTimestamp(): number {
    return this.#timestamp;
  }

  /** Wraps one encoded frame of `samples` samples per channel (at 48 kHz) into an RTP packet. */
  packetize(payload: Uint8Array, samples: number): Uint8Array {
    const packet = new Uint8Array(HEADER_BYTES + payload.length);
    const view = new DataView(packet.buffer);
    packet[0] = RTP_VERSION << 6; // no padding, no extension, no CSRCs
    packet[1] = (this.#marker ? 0x80 : 0) | this.payloadType;
    view.setUint16(2, this.#sequenceNumber);
    view.setUint32(4, this.#timestamp);
    view.setUint32(8, this.ssrc);
    packet.set(payload, HEADER_BYTES);
    this.#marker = false;
    this.#sequenceNumber = (this.#sequenceNumber + 1) & 0xffff;
    this.#timestamp = (this.#timestamp + samples) >>> 0;
    return packet;
  }

  /**
   * Frames that were never sent (the loop fell behind): the timestamp moves on by
   * their duration so the receiver's clock stays on the sender's; the sequence
   * number does not (no packet is missing, so nothing should count as lost).
   */
  skip(samples: number): void {
    if (samples <= 0) return;
    this.#timestamp = (this.#timestamp + samples) >>> 0;
    this.#marker = true;
  }
}

/** Reads the fixed header of an RTP packet (tests, the SFU's forwarder). */
export function parseRtpHeader(packet: Uint8Array): RtpHeaderFields {
  if (packet.length < HEADER_BYTES || packet[0]! >> 6 !== RTP_VERSION) throw new RangeError('not an RTP packet');
  const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
  return {
    marker: (packet[1]! & 0x80) !== 0,
    payloadType: packet[1]! & 0x7f,
    sequenceNumber: view.getUint16(2),
    timestamp: view.getUint32(4),
    ssrc: view.getUint32(8),
  };
}

/** Offset of the payload: after CSRCs and the header extension, if any. */
export function rtpPayloadOffset(packet: Uint8Array): number {
  const csrcCount = packet[0]! & 0x0f;
  let offset = HEADER_BYTES + 4 * csrcCount;
  if (packet[0]! & 0x10) {
    const view = new DataView(packet.buffer, packet.byteOffset, packet.byteLength);
    offset += 4 + 4 * view.getUint16(offset + 2);
  }
  return offset;
}

function randomUint(max: number): number {
  return crypto.getRandomValues(new Uint32Array(1))[0]! % (max + 1);
}
