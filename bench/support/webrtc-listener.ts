// A room's listener over WebRTC for the latency benchmarks (control-latency,
// stage-to-audience): socket.io signaling with the embedded SFU, a werift peer on
// loopback, every RTP packet decoded (Opus, @evan/opus) and its level kept with
// its arrival time.
import { performance } from 'node:perf_hooks';
import { Decoder } from '@evan/opus';
import { io, type Socket } from 'socket.io-client';
import { MediaStreamTrack, RTCPeerConnection, RTCRtpCodecParameters, type RtpPacket } from 'werift';
import { cacheSrtpKeys } from '../../media/sfu/werift-tuning.ts';
import { OPUS_FMTP } from '../../media/sfu/sfu.ts';
import type { ClientToServerEvents, ServerToClientEvents } from '../../shared/socket-events.ts';
import { sleep } from './proc.ts';

type Client = Socket<ServerToClientEvents, ClientToServerEvents>;

export interface Received {
  /** performance.now() at arrival. */
  atMs: number;
  levelDb: number;
}

export interface WebRtcListener {
  adapter: string;
  /** The latest packets (a bounded window: the oldest are dropped past 10,000). */
  received: Received[];
  joinMs: number;
  close(): Promise<void>;
}

export async function listenOverWebRtc(url: string, roomId: string, token: string): Promise<WebRtcListener> {
  const socket: Client = io(url, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
  let pc: RTCPeerConnection | null = null;
  const close = async () => {
    await pc?.close().catch(() => undefined);
    socket.disconnect();
  };
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const signal = async (message: unknown) => {
      const r = (await (socket.timeout(10_000).emitWithAck as (ev: string, m: unknown) => Promise<unknown>)('stream:signal', message)) as
        | { ok: true; signal: Record<string, unknown> }
        | { ok: false; refusal: { code: string; message: string } };
      if (!r.ok) throw new Error(`signaling refused: ${r.refusal.code}: ${r.refusal.message}`);
      return r.signal;
    };
    const joinStarted = performance.now();
    const offer = (await signal({ type: 'join' })) as { adapter: string; transportId: string; sdp: string };
    if (offer.adapter !== 'embedded') throw new Error(`this benchmark speaks the embedded SFU's signaling; the server uses ${offer.adapter}`);
    const received: Received[] = [];
    const decoder = new Decoder({ channels: 2, sample_rate: 48_000 });
    pc = new RTCPeerConnection({
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: 111, parameters: OPUS_FMTP })], video: [] },
      iceUseIpv4: true,
      iceUseIpv6: false,
    });
    pc.onTrack.subscribe((t: MediaStreamTrack) =>
      t.onReceiveRtp.subscribe((rtp: RtpPacket) => {
        const atMs = performance.now();
        const pcm = decoder.decode(rtp.payload);
        const samplesI16 = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength >> 1);
        let sum = 0;
        for (let i = 0; i < samplesI16.length; i++) sum += samplesI16[i]! * samplesI16[i]!;
        const rms = Math.sqrt(sum / Math.max(1, samplesI16.length)) / 32768;
        received.push({ atMs, levelDb: 20 * Math.log10(rms + 1e-12) });
        if (received.length > 10_000) received.splice(0, 5000);
      }),
    );
    const peer = pc;
    peer.connectionStateChange.subscribe((s) => s === 'connected' && cacheSrtpKeys(peer));
    await peer.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await peer.setLocalDescription(await peer.createAnswer());
    await waitUntil('ICE gathering', 10_000, () => peer.iceGatheringState === 'complete');
    await signal({ type: 'answer', transportId: offer.transportId, sdp: peer.localDescription!.sdp });
    await waitUntil('the first packets', 15_000, () => received.length > 10);
    return { adapter: offer.adapter, received, joinMs: performance.now() - joinStarted, close };
  } catch (err) {
    await close();
    throw err;
  }
}

export async function waitUntil(what: string, timeoutMs: number, check: () => boolean): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!check()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Polls every millisecond or so (the answer is a packet's arrival time, taken when it arrived, not when polled). */
export async function waitFor<T>(timeoutMs: number, probe: () => T | null): Promise<T | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v !== null) return v;
    if (performance.now() > deadline) return null;
    await sleep(2);
  }
}
