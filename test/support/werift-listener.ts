// A listener of a room's live stream outside a browser: signaling over socket.io (as the web
// app does it), media with werift, every Opus packet decoded and its level kept, so that a
// test can tell what the listener hears. Speaks the embedded SFU's signaling only.
import { Decoder } from '@evan/opus';
import { io, type Socket } from 'socket.io-client';
import { RTCPeerConnection, RTCRtpCodecParameters, type MediaStreamTrack, type RtpPacket } from 'werift';
import { OPUS_FMTP } from '../../media/sfu/sfu.ts';

export interface HeardPacket {
  atMs: number;
  levelDb: number;
}

export interface WeriftListener {
  heard: HeardPacket[];
  /** With `keepPcm`: every decoded packet's 48 kHz stereo samples, in the order they arrived. */
  pcm: Int16Array[];
  /** The loudest packet heard over the last `ms`, in dBFS (−240 when nothing was heard). */
  peakDbOver(ms: number): number;
  close(): Promise<void>;
}

export async function listenToRoom(baseUrl: string, roomId: string, token: string, timeoutMs = 20_000, opts: { keepPcm?: boolean } = {}): Promise<WeriftListener> {
  const socket: Socket = io(baseUrl, { auth: { roomId, token }, transports: ['websocket'], reconnection: false });
  let pc: RTCPeerConnection | null = null;
  try {
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', () => resolve());
      socket.once('connect_error', reject);
    });
    const signal = async (message: unknown) => {
      const r = (await (socket.timeout(timeoutMs).emitWithAck as (ev: string, m: unknown) => Promise<unknown>)('stream:signal', message)) as
        | { ok: true; signal: Record<string, unknown> }
        | { ok: false; refusal: { code: string; message: string } };
      if (!r.ok) throw new Error(`signaling refused: ${r.refusal.code}: ${r.refusal.message}`);
      return r.signal;
    };
    const offer = (await signal({ type: 'join' })) as { adapter: string; transportId: string; sdp: string };
    if (offer.adapter !== 'embedded') throw new Error(`this listener speaks the embedded SFU's signaling; the server uses ${offer.adapter}`);
    const heard: HeardPacket[] = [];
    const kept: Int16Array[] = [];
    const decoder = new Decoder({ channels: 2, sample_rate: 48_000 });
    pc = new RTCPeerConnection({
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: 111, parameters: OPUS_FMTP })], video: [] },
      iceUseIpv4: true,
      iceUseIpv6: false,
    });
    pc.onTrack.subscribe((t: MediaStreamTrack) =>
      t.onReceiveRtp.subscribe((rtp: RtpPacket) => {
        const pcm = decoder.decode(rtp.payload);
        const s16 = new Int16Array(pcm.buffer, pcm.byteOffset, pcm.byteLength >> 1);
        if (opts.keepPcm) kept.push(s16.slice());
        let sum = 0;
        for (let i = 0; i < s16.length; i++) sum += s16[i]! * s16[i]!;
        const rms = Math.sqrt(sum / Math.max(1, s16.length)) / 32768;
        heard.push({ atMs: performance.now(), levelDb: 20 * Math.log10(rms + 1e-12) });
        if (heard.length > 10_000) heard.splice(0, 5000);
      }),
    );
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    await pc.setLocalDescription(await pc.createAnswer());
    const gatherStart = Date.now();
    while (pc.iceGatheringState !== 'complete') {
      if (Date.now() - gatherStart > timeoutMs) throw new Error('ICE gathering did not complete');
      await new Promise((r) => setTimeout(r, 20));
    }
    await signal({ type: 'answer', transportId: offer.transportId, sdp: pc.localDescription!.sdp });
    const peer = pc;
    return {
      heard,
      pcm: kept,
      peakDbOver(ms) {
        const since = performance.now() - ms;
        let peak = -240;
        for (const h of heard) if (h.atMs >= since && h.levelDb > peak) peak = h.levelDb;
        return peak;
      },
      async close() {
        socket.disconnect();
        await peer.close().catch(() => undefined);
      },
    };
  } catch (err) {
    socket.disconnect();
    await pc?.close().catch(() => undefined);
    throw err;
  }
}
