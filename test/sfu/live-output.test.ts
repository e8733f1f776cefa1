// The live path before the SFU: Opus frames, RTP headers, and the loop in its
// worker thread (steady, skipping instead of bursting, stopping cleanly).
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { expect } from 'chai';
import { Decoder } from '@evan/opus';
import { FRAME_SAMPLES, OpusEncoder } from '../../media/live/opus-encoder.ts';
import { RtpPacketizer, parseRtpHeader, rtpPayloadOffset } from '../../media/live/rtp-packetizer.ts';
import { TestSignalSource } from '../../media/live/pcm-source.ts';
import { LiveOutput } from '../../media/live/live-output.ts';
import type { RtpPortMessage } from '../../media/live/rtp-sink.ts';

const FIXTURE = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'stalling-source.ts');

/** Frequency of a sine from its zero crossings (rising). */
function frequencyOf(samples: Float64Array, sampleRate: number): number {
  const crossings: number[] = [];
  for (let i = 1; i < samples.length; i++) if (samples[i - 1]! < 0 && samples[i]! >= 0) crossings.push(i);
  if (crossings.length < 2) return 0;
  return ((crossings.length - 1) * sampleRate) / (crossings[crossings.length - 1]! - crossings[0]!);
}

describe('RtpPacketizer', () => {
  it('writes version 2, the payload type, SSRC, and a marker on the first packet only', () => {
    const p = new RtpPacketizer({ ssrc: 0xdeadbeef, payloadType: 111, initialSequenceNumber: 10, initialTimestamp: 1000 });
    const a = parseRtpHeader(p.packetize(new Uint8Array([1, 2, 3]), 960));
    const b = parseRtpHeader(p.packetize(new Uint8Array([4]), 960));
    expect(a).to.deep.equal({ marker: true, payloadType: 111, sequenceNumber: 10, timestamp: 1000, ssrc: 0xdeadbeef });
    expect(b).to.deep.equal({ marker: false, payloadType: 111, sequenceNumber: 11, timestamp: 1960, ssrc: 0xdeadbeef });
  });

  it('wraps sequence numbers at 16 bits and timestamps at 32 bits', () => {
    const p = new RtpPacketizer({ ssrc: 1, initialSequenceNumber: 0xffff, initialTimestamp: 0xffff_ffff - 100 });
    p.packetize(new Uint8Array(1), 960);
    const h = parseRtpHeader(p.packetize(new Uint8Array(1), 960));
    expect(h.sequenceNumber).to.equal(0);
    expect(h.timestamp).to.equal(859);
  });

  it('a skip moves the timestamp on, not the sequence number, and marks the next packet', () => {
    const p = new RtpPacketizer({ ssrc: 1, initialSequenceNumber: 5, initialTimestamp: 0 });
    p.packetize(new Uint8Array(1), 960);
    p.skip(3 * 960);
    const h = parseRtpHeader(p.packetize(new Uint8Array(1), 960));
    expect(h).to.include({ sequenceNumber: 6, timestamp: 4 * 960, marker: true });
  });

  it('puts the payload right after the 12-byte header', () => {
    const packet = new RtpPacketizer({ ssrc: 1 }).packetize(new Uint8Array([9, 8, 7]), 960);
    expect(rtpPayloadOffset(packet)).to.equal(12);
    expect([...packet.subarray(12)]).to.deep.equal([9, 8, 7]);
  });

  it('refuses a payload type outside the dynamic range and a bad SSRC', () => {
    expect(() => new RtpPacketizer({ ssrc: 1, payloadType: 72 })).to.throw(RangeError);
    expect(() => new RtpPacketizer({ ssrc: -1 })).to.throw(RangeError);
  });
});

describe('OpusEncoder', () => {
  it('encodes 20 ms of stereo that decodes back to the same two tones', () => {
    const encoder = new OpusEncoder();
    const decoder = new Decoder({ channels: 2, sample_rate: 48_000 });
    const source = new TestSignalSource({ kind: 'tone', leftHz: 440, rightHz: 1000 });
    const pcm = new Float32Array(FRAME_SAMPLES * 2);
    const frames = 25;
    const left = new Float64Array(frames * FRAME_SAMPLES);
    const right = new Float64Array(frames * FRAME_SAMPLES);
    for (let f = 0; f < frames; f++) {
      source.render(pcm, FRAME_SAMPLES);
      const packet = encoder.encode(pcm);
      expect(packet.length).to.be.within(10, 1275);
      const decoded = new Int16Array(decoder.decode(packet).slice().buffer);
      expect(decoded.length).to.equal(FRAME_SAMPLES * 2);
      for (let i = 0; i < FRAME_SAMPLES; i++) {
        left[f * FRAME_SAMPLES + i] = decoded[2 * i]!;
        right[f * FRAME_SAMPLES + i] = decoded[2 * i + 1]!;
      }
    }
    // Skip the codec's start-up (lookahead) before measuring.
    expect(frequencyOf(left.subarray(4800), 48_000)).to.be.closeTo(440, 3);
    expect(frequencyOf(right.subarray(4800), 48_000)).to.be.closeTo(1000, 5);
  });

  it('turns NaN and out-of-range samples into silence and full scale instead of failing', () => {
    const encoder = new OpusEncoder();
    const pcm = new Float32Array(FRAME_SAMPLES * 2).fill(Number.NaN);
    pcm[0] = 5;
    pcm[1] = -Infinity;
    expect(() => encoder.encode(pcm)).not.to.throw();
    expect(() => encoder.encode(new Float32Array(10))).to.throw(RangeError);
  });
});

describe('LiveOutput', function () {
  this.timeout(20_000);
  const opened: LiveOutput[] = [];
  const ports: MessagePort[] = [];

  afterEach(async () => {
    for (const o of opened.splice(0)) await o.close();
    for (const p of ports.splice(0)) p.close();
  });

  function collect(): { port: MessagePort; sink: { kind: 'port'; port: MessagePort }; packets: { header: ReturnType<typeof parseRtpHeader>; sentAtMs: number; receivedAtMs: number }[] } {
    const { port1, port2 } = new MessageChannel();
    ports.push(port1);
    const packets: { header: ReturnType<typeof parseRtpHeader>; sentAtMs: number; receivedAtMs: number }[] = [];
    port1.on('message', (m: RtpPortMessage) => packets.push({ header: parseRtpHeader(m.packet), sentAtMs: m.sentAtMs, receivedAtMs: performance.timeOrigin + performance.now() }));
    return { port: port1, sink: { kind: 'port', port: port2 }, packets };
  }

  it('sends one packet every 20 ms from its own thread, whatever the main thread is doing', async () => {
    const { sink, packets } = collect();
    const output = await LiveOutput.create({ source: { kind: 'test', signal: { kind: 'noise' } }, sink, ssrc: 1234 });
    opened.push(output);
    await new Promise((r) => setTimeout(r, 300));
    // Block this (main) thread: the loop in the worker must not notice.
    const blockedFrom = performance.timeOrigin + performance.now();
    const until = performance.now() + 400;
    while (performance.now() < until);
    const blockedTo = performance.timeOrigin + performance.now();
    await new Promise((r) => setTimeout(r, 300));
    const sentDuringBlock = packets.filter((p) => p.sentAtMs >= blockedFrom && p.sentAtMs <= blockedTo);
    // ~20 would be sent in 400 ms; a loaded machine may skip a few, never most.
    expect(sentDuringBlock.length).to.be.greaterThan(10);
    for (let i = 1; i < packets.length; i++) {
      expect(packets[i]!.header.sequenceNumber).to.equal((packets[i - 1]!.header.sequenceNumber + 1) & 0xffff);
      expect((packets[i]!.header.timestamp - packets[i - 1]!.header.timestamp) >>> 0 >= 960).to.equal(true);
      expect(packets[i]!.header.ssrc).to.equal(1234);
    }
    const stats = await output.stats();
    expect(stats.framesSent).to.be.at.least(packets.length);
  });

  it('loads a source module with init data, and when it falls behind skips frames instead of sending a burst', async () => {
    const { sink, packets } = collect();
    const output = await LiveOutput.create({
      source: { kind: 'module', module: FIXTURE, init: { stallAtFrame: 10, stallMs: 130 } },
      sink,
      ssrc: 99,
    });
    opened.push(output);
    await new Promise((r) => setTimeout(r, 800));
    const stats = await output.stats();
    expect(stats.framesSkipped).to.be.at.least(5);
    // After the stall: one packet per slot, the RTP clock jumped by the skipped frames.
    const jump = packets.findIndex((p, i) => i > 0 && ((p.header.timestamp - packets[i - 1]!.header.timestamp) >>> 0) > 960);
    expect(jump, 'a timestamp jump after the stall').to.be.greaterThan(0);
    const skipped = ((packets[jump]!.header.timestamp - packets[jump - 1]!.header.timestamp) >>> 0) / 960 - 1;
    expect(skipped).to.be.at.least(5);
    expect(packets[jump]!.header.sequenceNumber).to.equal((packets[jump - 1]!.header.sequenceNumber + 1) & 0xffff);
    expect(packets[jump]!.header.marker).to.equal(true);
    // No burst: the ten packets after the jump take about ten slots (a backlog would leave back to back).
    const after = packets.slice(jump, jump + 10);
    expect(after).to.have.length(10);
    expect(after[9]!.sentAtMs - after[0]!.sentAtMs).to.be.greaterThan(8 * 20);
  });

  it('fails to start, leaving no worker, when its source cannot be made', async () => {
    const { sink } = collect();
    let error: unknown;
    try {
      opened.push(await LiveOutput.create({ source: { kind: 'module', module: FIXTURE, exportName: 'createBrokenSource' }, sink, ssrc: 1 }));
    } catch (err) {
      error = err;
    }
    expect(String(error)).to.match(/cannot start/);
  });

  it('close() stops the loop and ends the worker, leaving no timers or handles', async () => {
    const before = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    const { sink, packets, port } = collect();
    const output = await LiveOutput.create({ source: { kind: 'test', signal: { kind: 'silence' } }, sink, ssrc: 5 });
    await new Promise((r) => setTimeout(r, 100));
    await output.close();
    await output.close();
    expect(output.closed).to.equal(true);
    expect(() => output.control({})).to.throw(/closed/);
    const count = packets.length;
    await new Promise((r) => setTimeout(r, 100));
    expect(packets.length).to.equal(count);
    port.close();
    ports.splice(ports.indexOf(port), 1);
    // Handles of the ended worker go away within a few event-loop turns.
    let left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap');
    for (let i = 0; i < 20 && left.length > before.length; i++) {
      await new Promise((r) => setTimeout(r, 50));
      left = process.getActiveResourcesInfo().filter((r) => r !== 'TTYWrap' && r !== 'Timeout');
    }
    expect(left.length, `${left.join(',')} vs ${before.join(',')}`).to.be.at.most(before.length);
  });
});
