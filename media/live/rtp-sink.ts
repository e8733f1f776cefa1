// Where the live loop's RTP packets go: a MessagePort into the embedded SFU's
// worker, or UDP into a mediasoup PlainTransport. Both are written from the
// live-output worker itself, so that no packet waits on the main event loop.
import dgram from 'node:dgram';
import net from 'node:net';
import type { MessagePort } from 'node:worker_threads';

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

export interface RtpSinkWriter {
  send(packet: Uint8Array): void;
  close(): Promise<void>;
}

/** The MessagePorts in a sink, for a transfer list. */
export function rtpSinkTransferList(sink: RtpSink): MessagePort[] {
  return sink.kind === 'port' ? [sink.port] : [];
}

export function openRtpSink(sink: RtpSink, onError: (err: Error) => void): RtpSinkWriter {
  if (sink.kind === 'port') {
    const { port } = sink;
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
