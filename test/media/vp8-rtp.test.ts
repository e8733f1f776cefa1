// VP8 from a real ffmpeg/libvpx (IVF) into RTP (RFC 7741) and back: the IVF
// reader splits the stream whatever the chunking, the packetizer's packets
// depacketize (werift's VP8 reader) into the same frames with the right flags,
// and keyframe requests are found in RTCP compounds.
import { execFileSync } from 'node:child_process';
import { expect } from 'chai';
import { Vp8RtpPayload } from 'werift';
import { parseRtpHeader } from '../../media/live/rtp-packetizer.ts';
import { IvfReader, Vp8Packetizer, VP8_MAX_PAYLOAD, rtcpRequestsKeyframe, type IvfFrame } from '../../media/live/vp8-rtp.ts';
import { requireComponent } from '../support/components.ts';

function ffmpegAvailable(): boolean {
  try {
    execFileSync('ffmpeg', ['-version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

describe('VP8 over RTP (IVF reader, RFC 7741 packetizer, RTCP keyframe requests)', () => {
  let ivf: Buffer;

  before(function () {
    requireComponent('ffmpeg', ffmpegAvailable(), this);
    // 12 frames of moving noise at 320x180, a keyframe every 5: real libvpx output.
    ivf = execFileSync(
      'ffmpeg',
      ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', 'testsrc2=size=320x180:rate=15,noise=alls=60:allf=t', '-frames:v', '12', '-c:v', 'libvpx', '-deadline', 'realtime', '-cpu-used', '8', '-g', '5', '-b:v', '2M', '-f', 'ivf', 'pipe:1'],
      { maxBuffer: 64 * 1024 * 1024 },
    );
  });

  function readAll(chunkSize: number): IvfFrame[] {
    const reader = new IvfReader();
    const frames: IvfFrame[] = [];
    for (let i = 0; i < ivf.length; i += chunkSize) frames.push(...reader.push(new Uint8Array(ivf.subarray(i, i + chunkSize))));
    return frames;
  }

  it('reads the same frames whatever the chunking; keyframes where the encoder put them', () => {
    const whole = readAll(ivf.length);
    expect(whole).to.have.length(12);
    expect(whole.map((f) => f.pts)).to.deep.equal([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expect(whole.filter((f) => f.keyframe).map((f) => f.pts)).to.deep.equal([0, 5, 10]);
    for (const size of [1, 7, 1000]) {
      const chunked = readAll(size);
      expect(chunked.map((f) => Buffer.from(f.data).toString('hex'))).to.deep.equal(whole.map((f) => Buffer.from(f.data).toString('hex')));
    }
  });

  it('refuses a stream that is not IVF', () => {
    expect(() => new IvfReader().push(new Uint8Array(64).fill(7))).to.throw(/not an IVF stream/);
  });

  it('packetizes frames into RTP that depacketizes to the same bytes: S on the first packet, the marker on the last, one timestamp per frame', () => {
    const frames = readAll(ivf.length);
    const p = new Vp8Packetizer({ ssrc: 0xabcdef, payloadType: 96 });
    let lastSeq: number | null = null;
    let lastTs: number | null = null;
    frames.forEach((frame, i) => {
      const packets = p.packetize(frame.data, i * (1000 / 15));
      expect(packets.length).to.equal(Math.max(1, Math.ceil(frame.data.length / (VP8_MAX_PAYLOAD - 1))));
      const parts: Buffer[] = [];
      packets.forEach((packet, k) => {
        expect(packet.length).to.be.at.most(12 + VP8_MAX_PAYLOAD);
        const h = parseRtpHeader(packet);
        expect(h).to.include({ ssrc: 0xabcdef, payloadType: 96, marker: k === packets.length - 1 });
        if (lastSeq !== null) expect(h.sequenceNumber).to.equal((lastSeq + 1) & 0xffff);
        lastSeq = h.sequenceNumber;
        if (k > 0) expect(h.timestamp).to.equal(lastTs);
        else if (lastTs !== null) expect((h.timestamp - lastTs) >>> 0).to.equal(6000); // 90 kHz / 15 fps
        lastTs = h.timestamp;
        const vp8 = Vp8RtpPayload.deSerialize(Buffer.from(packet.subarray(12)));
        expect(vp8.sBit).to.equal(k === 0 ? 1 : 0);
        if (k === 0) expect(vp8.isKeyframe).to.equal(frame.keyframe);
        parts.push(vp8.payload);
      });
      expect(Buffer.concat(parts).equals(Buffer.from(frame.data))).to.equal(true);
    });
  });

  it('finds PLI and FIR in RTCP compounds, and nothing in a bare receiver report', () => {
    const rr = Buffer.from([0x80, 201, 0x00, 0x01, 0, 0, 0, 1]);
    const pli = Buffer.from([0x81, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 2]);
    const fir = Buffer.from([0x84, 206, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2, 1, 0, 0, 0]);
    const remb = Buffer.from([0x8f, 206, 0x00, 0x02, 0, 0, 0, 1, 0, 0, 0, 0]);
    expect(rtcpRequestsKeyframe(rr)).to.equal(false);
    expect(rtcpRequestsKeyframe(remb)).to.equal(false);
    expect(rtcpRequestsKeyframe(pli)).to.equal(true);
    expect(rtcpRequestsKeyframe(fir)).to.equal(true);
    expect(rtcpRequestsKeyframe(Buffer.concat([rr, pli]))).to.equal(true);
    expect(rtcpRequestsKeyframe(Buffer.concat([rr, remb]))).to.equal(false);
    expect(rtcpRequestsKeyframe(Buffer.from([1, 2, 3]))).to.equal(false);
  });
});
