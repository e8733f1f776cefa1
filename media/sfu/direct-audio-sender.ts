// The room's mix to one connected listener, without werift's per-packet path.
//
// werift sends a track's packet to each of its senders through an event, then
// per sender: a clone of the parsed packet, header extensions rebuilt and sorted,
// an NTP time made through a string split, bandwidth-estimation bookkeeping, a
// re-serialised header, and six awaited promises down through DTLS, ICE and the
// socket (the profile in bench/README.md, "listeners"). For the mix none of that
// varies between listeners but the SSRC: the SFU forwards the encoder's sequence
// numbers and timestamps as they are (werift's offsets stay 0: the track's
// source never changes), no header extensions are negotiated, and the audio has
// no NACK (no retransmission history to keep). So the room parses nothing: it
// hands the packet's bytes to each listener's DirectAudioSender, which writes its
// SSRC and payload type into a copy of the header, encrypts it with the peer's
// own SRTP context (werift's cipher, so the bytes are the ones werift would send),
// and gives the datagram to the socket of the nominated ICE pair. The sender's
// counters (packets, octets, last RTP and NTP time) are kept as werift keeps them,
// so its RTCP sender reports say the same.
//
// werift's internals are not its API: attach() checks every shape it relies on
// and returns null when one is missing, and the peer then stays on werift's own
// path. A packet it cannot send this way (padding, extensions, CSRCs, a pending
// sequence remap) goes through werift's own sendRtp.
import net from 'node:net';
import { RtpPacket, type RTCPeerConnection, type RTCRtpSender } from 'werift';

interface SsrcState {
  rolloverCounter: number;
}

interface SrtpContextShape {
  getSrtpSsrcState(ssrc: number): SsrcState;
  updateRolloverCount(seq: number, s: SsrcState): void;
  cipher: { encryptRtp(header: HeaderShape, payload: Buffer, roc: number): Buffer };
}

/** What werift's ciphers read of a header (CipherAesCtr and CipherAesGcm both). */
interface HeaderShape {
  ssrc: number;
  sequenceNumber: number;
  serializeSize: number;
  serialize(size: number): Buffer;
}

interface SocketShape {
  send(msg: Buffer, port: number, address: string): void;
}

interface PairShape {
  remoteAddr: [string, number];
  packetsSent: number;
  bytesSent: number;
  protocol: { type?: string; transport?: { socket?: SocketShape; closed?: boolean } };
}

interface ConnectionShape {
  nominated?: PairShape;
  canSendApplicationData(): boolean;
  send(data: Buffer): Promise<void>;
}

interface DtlsTransportShape {
  state: string;
  srtp?: { localContext?: SrtpContextShape };
  bytesSent: number;
  packetsSent: number;
  iceTransport: { connection: ConnectionShape };
}

interface SenderShape {
  stopped: boolean;
  ssrc: number;
  codec?: { payloadType: number };
  rtpContinuityPending: boolean;
  headerExtensions: unknown[];
  redRedundantPayloadType?: number;
  dtlsTransport: DtlsTransportShape;
  disposeTrack?: () => void;
  sendRtp(rtp: RtpPacket): Promise<void>;
  runRtcp(): Promise<void>;
  rtcpRunning: boolean;
  timestamp?: number;
  sequenceNumber?: number;
  ntpTimestamp: bigint;
  rtpTimestamp: number;
  octetCount: number;
  headerBytesSent: number;
  packetCount: number;
}

const RTP_HEADER = 12;

export class DirectAudioSender {
  readonly #sender: SenderShape;
  readonly #transport: DtlsTransportShape;
  readonly #context: SrtpContextShape;
  readonly #connection: ConnectionShape;
  readonly #header: HeaderShape & { bytes: Buffer };
  /** Packets sent here and through werift's fallback, for tests and stats. */
  sent = 0;
  fellBack = 0;

  private constructor(sender: SenderShape, transport: DtlsTransportShape, context: SrtpContextShape, connection: ConnectionShape) {
    this.#sender = sender;
    this.#transport = transport;
    this.#context = context;
    this.#connection = connection;
    // The cipher keeps nothing of the header between packets: one reused object.
    this.#header = {
      ssrc: 0,
      sequenceNumber: 0,
      serializeSize: RTP_HEADER,
      bytes: Buffer.alloc(RTP_HEADER),
      serialize() {
        return this.bytes;
      },
    };
  }

  /**
   * Takes over the sender's audio once its peer is connected (SRTP keys known)
   * and stops werift's own delivery of the track's packets to it. Null when
   * werift is not shaped as expected: nothing was changed then.
   */
  static attach(pc: RTCPeerConnection, rtcSender: RTCRtpSender): DirectAudioSender | null {
    const sender = rtcSender as unknown as SenderShape;
    const transport = sender.dtlsTransport;
    const context = transport?.srtp?.localContext;
    const connection = transport?.iceTransport?.connection;
    const ok =
      pc.dtlsTransports.includes(transport as never) &&
      typeof sender.disposeTrack === 'function' &&
      typeof sender.sendRtp === 'function' &&
      typeof sender.runRtcp === 'function' &&
      typeof sender.rtcpRunning === 'boolean' &&
      typeof sender.ssrc === 'number' &&
      typeof sender.octetCount === 'number' &&
      typeof sender.packetCount === 'number' &&
      typeof sender.headerBytesSent === 'number' &&
      Array.isArray(sender.headerExtensions) &&
      sender.headerExtensions.length === 0 &&
      !sender.redRedundantPayloadType &&
      typeof context?.getSrtpSsrcState === 'function' &&
      typeof context.updateRolloverCount === 'function' &&
      typeof context.cipher?.encryptRtp === 'function' &&
      typeof transport.packetsSent === 'number' &&
      typeof connection?.canSendApplicationData === 'function' &&
      typeof connection.send === 'function';
    if (!ok) return null;
    sender.disposeTrack!();
    return new DirectAudioSender(sender, transport, context!, connection!);
  }

  /**
   * Sends one packet of the mix (the encoder's bytes; not modified). `ntp` is
   * werift's ntpTime() taken once for the room's packet: the NTP time the
   * sender reports beside this packet's RTP timestamp.
   */
  send(packet: Buffer, ntp: bigint): void {
    const sender = this.#sender;
    if (sender.stopped || this.#transport.state !== 'connected' || !sender.codec) return;
    // Only the plain header the encoder writes is rewritten here.
    if ((packet[0]! & 0x3f) !== 0 || sender.rtpContinuityPending || packet.length <= RTP_HEADER) {
      this.fellBack++;
      sender.sendRtp(RtpPacket.deSerialize(packet)).catch(() => {});
      return;
    }
    const ssrc = sender.ssrc;
    const seq = packet.readUInt16BE(2);
    const timestamp = packet.readUInt32BE(4);
    const header = Buffer.allocUnsafe(RTP_HEADER);
    packet.copy(header, 0, 0, RTP_HEADER);
    header[1] = (packet[1]! & 0x80) | (sender.codec.payloadType & 0x7f);
    header.writeUInt32BE(ssrc, 8);
    const payload = packet.subarray(RTP_HEADER);

    // As werift's dispatchRtp keeps them (its offsets are 0 here).
    sender.timestamp = timestamp;
    sender.sequenceNumber = seq;
    sender.ntpTimestamp = ntp;
    sender.rtpTimestamp = timestamp;
    sender.octetCount += payload.length;
    sender.headerBytesSent += RTP_HEADER;
    sender.packetCount = (sender.packetCount + 1) >>> 0;

    const context = this.#context;
    const state = context.getSrtpSsrcState(ssrc);
    context.updateRolloverCount(seq, state);
    this.#header.ssrc = ssrc;
    this.#header.sequenceNumber = seq;
    this.#header.bytes = header;
    // werift's cipher (AES-GCM or AES-CM + HMAC-SHA1, whichever DTLS agreed),
    // with the session keys as KeyObjects (cacheSrtpKeys). A cipher of our own
    // without an OpenSSL context per packet (ECB keystream + GHASH in JS, byte-
    // identical) was measured and dropped: no faster with hundreds of peers, its
    // per-key GHASH tables falling out of the caches (bench/README.md, listeners).
    const srtp = context.cipher.encryptRtp(this.#header, payload, state.rolloverCounter);
    this.#transport.bytesSent += srtp.length;
    this.#transport.packetsSent++;
    this.#sendDatagram(srtp);
    this.sent++;
    if (!sender.rtcpRunning) sender.runRtcp().catch(() => {});
  }

  #lastAddress = '';
  #lastAddressIsIp = false;

  #isIp(address: string): boolean {
    if (address !== this.#lastAddress) {
      this.#lastAddress = address;
      this.#lastAddressIsIp = net.isIP(address) !== 0;
    }
    return this.#lastAddressIsIp;
  }

  #sendDatagram(data: Buffer): void {
    const connection = this.#connection;
    if (!connection.canSendApplicationData()) return;
    const pair = connection.nominated!;
    const transport = pair.protocol.transport;
    const [address, port] = pair.remoteAddr;
    // A host/STUN pair over UDP to an IP address: straight to its socket, as
    // werift's UdpTransport would after its promises. Anything else (TURN, TCP): werift.
    if (pair.protocol.type === 'stun' && transport?.socket && transport.closed === false && typeof transport.socket.send === 'function' && this.#isIp(address)) {
      transport.socket.send(data, port, address);
      pair.packetsSent++;
      pair.bytesSent += data.length;
    } else {
      connection.send(data).catch(() => {});
    }
  }
}
