// Where the live loop's RTP packets go: a MessagePort into the embedded SFU's
// worker, or UDP into a mediasoup PlainTransport. Both are written from the
// live-output worker itself, so that no packet waits on the main event loop.
import dgram from 'node:dgram';
import net from 'node:net';
import type { MessagePort } from 'node:worker_threads';
import { rtcpRequestsKeyframe } from './vp8-rtp.ts';

export type RtpSink =
  /** Each packet is posted as an RtpPortMessage. */
  | { kind: 'port'; port: MessagePort }
  /** Plain RTP over UDP (RTCP muxed on the same port is not read: this sender needs no feedback). */
  | { kind: 'udp'; address: string; port: number };

export interface RtpPortMessage {
  packet: Uint8Array;
  /** performance.timeOrigin + performance.now() when the packet was sent: lets a forwarder drop what arrives too late. */
  sentAtMs: number;
}

/** What comes back from the SFU through a sink: a member needs a keyframe (video). */
export type RtpSinkFeedback = { type: 'keyframe' };

export interface RtpSinkWriter {
  send(packet: Uint8Array): void;
  close(): Promise<void>;
}

/** The MessagePorts in a sink, for a transfer list. */
export function rtpSinkTransferList(sink: RtpSink): MessagePort[] {
  return sink.kind === 'port' ? [sink.port] : [];
}

/**
 * `onFeedback` (video senders only): keyframe requests, posted back on a port
 * sink by the embedded SFU, or RTCP PLI/FIR arriving on the UDP socket from mediasoup.
 */
export function openRtpSink(sink: RtpSink, onError: (err: Error) => void, onFeedback?: (feedback: RtpSinkFeedback) => void): RtpSinkWriter {
  if (sink.kind === 'port') {
    const { port } = sink;
    if (onFeedback) {
      port.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'keyframe') onFeedback({ type: 'keyframe' });
      });
    }
    return {
      send(packet) {
        const message: RtpPortMessage = { packet, sentAtMs: performance.timeOrigin + performance.now() };
        port.postMessage(message, [packet.buffer as ArrayBuffer]);
      },
      async close() {
        port.close();
      },
    };
  }
  const family = net.isIPv6(sink.address) ? 'udp6' : 'udp4';
  const socket = dgram.createSocket(family);
  socket.on('error', onError);
  if (onFeedback) socket.on('message', (packet) => rtcpRequestsKeyframe(packet) && onFeedback({ type: 'keyframe' }));
  // Connected: the kernel filters what comes back and each send skips the address lookup.
  let connected = false;
  socket.connect(sink.port, sink.address, () => (connected = true));
  return {
    send(packet) {
      if (connected) socket.send(packet);
    },
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
