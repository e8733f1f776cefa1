// The embedded SFU's DirectAudioSender against a real werift receiver over
// loopback (ICE, DTLS, SRTP): what it sends decrypts and authenticates, carries
// the encoder's sequence numbers, timestamps, marker and payload with the
// sender's own SSRC and payload type, and leaves the sender's counters (the
// RTCP sender report's) as werift's own path would. A packet it does not
// rewrite itself (here: one with a header extension) still arrives, through
// werift's path; and after the peer closes, nothing is sent.
import { expect } from 'chai';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, ntpTime, type RtpPacket } from 'werift';
import { DirectAudioSender } from '../../media/sfu/direct-audio-sender.ts';
import { cacheSrtpKeys } from '../../media/sfu/werift-tuning.ts';

const PT = 111;

function config(): ConstructorParameters<typeof RTCPeerConnection>[0] {
  return {
    codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: PT })] },
    headerExtensions: { audio: [] },
    iceUseIpv4: false,
    iceUseIpv6: false,
    iceAdditionalHostAddresses: ['127.0.0.1'],
    iceInterfaceAddresses: { udp4: '127.0.0.1' },
  };
}

function gathered(pc: RTCPeerConnection): Promise<void> {
  return new Promise((resolve) => {
    if (pc.iceGatheringState === 'complete') return resolve();
    pc.iceGatheringStateChange.subscribe((s) => s === 'complete' && resolve());
  });
}

/** An encoder's packet: plain 12-byte header (optionally with a one-byte-header extension), the given payload. */
function rtp(seq: number, timestamp: number, payload: Buffer, opts: { marker?: boolean; extension?: boolean } = {}): Buffer {
  const ext = opts.extension ? Buffer.from([0xbe, 0xde, 0x00, 0x01, 0x10, 0xaa, 0x00, 0x00]) : Buffer.alloc(0);
  const header = Buffer.alloc(12);
  header[0] = 0x80 | (opts.extension ? 0x10 : 0);
  header[1] = (opts.marker ? 0x80 : 0) | 100; // the encoder's own payload type: the sender's replaces it
  header.writeUInt16BE(seq, 2);
  header.writeUInt32BE(timestamp, 4);
  header.writeUInt32BE(0x11223344, 8);
  return Buffer.concat([header, ext, payload]);
}

describe('DirectAudioSender (the embedded SFU mix path, werift receiver on loopback)', function () {
  this.timeout(20_000);
  let sender: RTCPeerConnection;
  let receiver: RTCPeerConnection;
  let direct: DirectAudioSender;
  const received: RtpPacket[] = [];

  before(async () => {
    sender = new RTCPeerConnection(config());
    receiver = new RTCPeerConnection(config());
    const track = new MediaStreamTrack({ kind: 'audio' });
    const transceiver = sender.addTransceiver(track, { direction: 'sendonly' });
    receiver.onTrack.subscribe((t) => t.onReceiveRtp.subscribe((p) => received.push(p)));
    const connected = new Promise<void>((resolve) => sender.connectionStateChange.subscribe((s) => s === 'connected' && resolve()));
    await sender.setLocalDescription(await sender.createOffer());
    await gathered(sender);
    await receiver.setRemoteDescription(sender.localDescription!);
    await receiver.setLocalDescription(await receiver.createAnswer());
    await gathered(receiver);
    await sender.setRemoteDescription(receiver.localDescription!);
    await connected;
    cacheSrtpKeys(sender);
    const attached = DirectAudioSender.attach(sender, transceiver.sender);
    expect(attached, 'werift is shaped as DirectAudioSender expects').to.not.equal(null);
    direct = attached!;
  });

  after(async () => {
    await Promise.allSettled([sender.close(), receiver.close()]);
  });

  async function until(n: number): Promise<void> {
    for (let i = 0; i < 200 && received.length < n; i++) await new Promise((r) => setTimeout(r, 10));
  }

  it('sends what werift decrypts, with the encoder fields and the sender SSRC, payload type and counters', async () => {
    const s = sender.getTransceivers()[0]!.sender as unknown as { ssrc: number; packetCount: number; octetCount: number; rtpTimestamp: number; ntpTimestamp: bigint };
    const before = { packets: s.packetCount, octets: s.octetCount };
    const payloads = Array.from({ length: 20 }, (_, i) => Buffer.alloc(40 + i * 7, i + 1));
    // Across a sequence-number wrap: the SRTP rollover counter must follow.
    const first = 0xfff6;
    payloads.forEach((p, i) => direct.send(rtp((first + i) & 0xffff, 1_000_000 + i * 960, p, { marker: i === 0 }), ntpTime()));
    await until(payloads.length);
    expect(received).to.have.length(payloads.length);
    received.forEach((p, i) => {
      expect(p.header.sequenceNumber).to.equal((first + i) & 0xffff);
      expect(p.header.timestamp).to.equal(1_000_000 + i * 960);
      expect(p.header.ssrc).to.equal(s.ssrc);
      expect(p.header.payloadType).to.equal(PT);
      expect(p.header.marker).to.equal(i === 0);
      expect(Buffer.compare(p.payload, payloads[i]!)).to.equal(0);
    });
    expect(s.packetCount - before.packets).to.equal(payloads.length);
    expect(s.octetCount - before.octets).to.equal(payloads.reduce((n, p) => n + p.length, 0));
    expect(s.rtpTimestamp).to.equal(1_000_000 + 19 * 960);
    expect(direct.sent).to.equal(payloads.length);
  });

  it('hands a packet it does not rewrite (a header extension) to werift, which sends it', async () => {
    const start = received.length;
    direct.send(rtp(10, 5000, Buffer.from('with an extension'), { extension: true }), ntpTime());
    await until(start + 1);
    expect(direct.fellBack).to.equal(1);
    expect(received).to.have.length(start + 1);
    expect(received[start]!.payload.toString()).to.equal('with an extension');
    expect(received[start]!.header.sequenceNumber).to.equal(10);
  });

  it('sends nothing once the peer is closed', async () => {
    const sent = direct.sent;
    await sender.close();
    direct.send(rtp(11, 6000, Buffer.from('late')), ntpTime());
    expect(direct.sent).to.equal(sent);
  });
});
