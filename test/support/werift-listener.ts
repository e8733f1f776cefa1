// A listener of a room's live stream outside a browser: signaling over socket.io (as the web
// app does it), media with werift, every Opus packet decoded and its level kept, so that a
// test can tell what the listener hears. Speaks both adapters' signaling, choosing by the
// server's answer to the join (as the web app does): the embedded SFU's offer/answer, or
// mediasoup's transport/consume/connect/resume with the offer written here from mediasoup's
// parameters (what mediasoup-client does in a browser; it has no handler for Node).
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
    const joined = (await signal({ type: 'join' })) as { adapter: string; transportId: string; sdp?: string };
    if (joined.adapter !== 'embedded' && joined.adapter !== 'mediasoup') throw new Error(`this listener does not speak the ${joined.adapter} SFU's signaling`);
    const heard: HeardPacket[] = [];
    const kept: Int16Array[] = [];
    const decoder = new Decoder({ channels: 2, sample_rate: 48_000 });
    // mediasoup: the consumer first (its RTP parameters go into the offer), as mediasoup-client does.
    const consumer = joined.adapter === 'mediasoup' ? await consumeMediasoup(signal, joined as unknown as MediasoupTransport) : null;
    const opus = consumer ? consumer.opus : { payloadType: 111, fmtp: OPUS_FMTP };
    pc = new RTCPeerConnection({
      codecs: { audio: [new RTCRtpCodecParameters({ mimeType: 'audio/opus', clockRate: 48_000, channels: 2, payloadType: opus.payloadType, parameters: opus.fmtp })], video: [] },
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
    await pc.setRemoteDescription({ type: 'offer', sdp: consumer ? mediasoupOffer(joined as unknown as MediasoupTransport, consumer) : joined.sdp! });
    await pc.setLocalDescription(await pc.createAnswer());
    const gatherStart = Date.now();
    while (pc.iceGatheringState !== 'complete') {
      if (Date.now() - gatherStart > timeoutMs) throw new Error('ICE gathering did not complete');
      await new Promise((r) => setTimeout(r, 20));
    }
    if (consumer) {
      // mediasoup is ICE-lite: it needs only our DTLS fingerprint and role, then the consumer resumed.
      await signal({ type: 'connect', transportId: joined.transportId, dtlsParameters: localDtls(pc.localDescription!.sdp) });
      await signal({ type: 'resume', transportId: joined.transportId, consumerId: consumer.consumerId });
    } else {
      await signal({ type: 'answer', transportId: joined.transportId, sdp: pc.localDescription!.sdp });
    }
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

/** mediasoup's answer to a join (shared/sfu-signals.ts MediasoupServerSignal 'transport'), the parts used here. */
interface MediasoupTransport {
  adapter: 'mediasoup';
  transportId: string;
  routerRtpCapabilities: { codecs?: { kind: string; mimeType: string }[] };
  iceParameters: { usernameFragment: string; password: string };
  iceCandidates: { foundation: string; priority: number; address?: string; ip?: string; protocol: string; port: number; type: string }[];
  dtlsParameters: { fingerprints: { algorithm: string; value: string }[] };
}

interface MediasoupConsumer {
  consumerId: string;
  opus: { payloadType: number; fmtp: string };
  rtcpFeedback: { type: string; parameter?: string }[];
  ssrc: number;
  cname: string;
}

type Signal = (message: unknown) => Promise<Record<string, unknown>>;

/** Asks for the mix's consumer with the router's own Opus as our capabilities (what werift was given). */
async function consumeMediasoup(signal: Signal, transport: MediasoupTransport): Promise<MediasoupConsumer> {
  const codecs = (transport.routerRtpCapabilities.codecs ?? []).filter((c) => c.kind === 'audio' && c.mimeType.toLowerCase() === 'audio/opus');
  if (codecs.length === 0) throw new Error('the mediasoup router offers no Opus');
  const reply = (await signal({ type: 'consume', transportId: transport.transportId, rtpCapabilities: { codecs, headerExtensions: [] } })) as {
    type: string;
    consumerId: string;
    rtpParameters: {
      codecs: { payloadType: number; mimeType: string; parameters?: Record<string, unknown>; rtcpFeedback?: { type: string; parameter?: string }[] }[];
      encodings: { ssrc: number }[];
      rtcp?: { cname?: string };
    };
  };
  if (reply.type !== 'consumer') throw new Error(`expected a consumer, got ${reply.type}`);
  const codec = reply.rtpParameters.codecs.find((c) => c.mimeType.toLowerCase() === 'audio/opus');
  const ssrc = reply.rtpParameters.encodings[0]?.ssrc;
  if (!codec || ssrc === undefined) throw new Error(`the consumer carries no Opus encoding: ${JSON.stringify(reply.rtpParameters)}`);
  const fmtp = Object.entries(codec.parameters ?? {})
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(';');
  return { consumerId: reply.consumerId, opus: { payloadType: codec.payloadType, fmtp }, rtcpFeedback: codec.rtcpFeedback ?? [], ssrc, cname: reply.rtpParameters.rtcp?.cname ?? 'remixroom' };
}

/** The offer mediasoup-client would write for one receive-only Opus consumer on an ICE-lite transport. */
function mediasoupOffer(t: MediasoupTransport, c: MediasoupConsumer): string {
  const udp = t.iceCandidates.filter((x) => x.protocol === 'udp');
  if (udp.length === 0) throw new Error('the mediasoup transport has no UDP candidate');
  const address = (x: (typeof udp)[number]) => x.address ?? x.ip ?? '';
  const pt = c.opus.payloadType;
  return [
    'v=0',
    'o=- 1 1 IN IP4 0.0.0.0',
    's=-',
    't=0 0',
    'a=ice-lite',
    'a=group:BUNDLE 0',
    'a=msid-semantic: WMS *',
    ...t.dtlsParameters.fingerprints.map((f) => `a=fingerprint:${f.algorithm} ${f.value}`),
    `m=audio ${udp[0]!.port} UDP/TLS/RTP/SAVPF ${pt}`,
    `c=IN IP4 ${address(udp[0]!)}`,
    'a=mid:0',
    'a=sendonly',
    `a=ice-ufrag:${t.iceParameters.usernameFragment}`,
    `a=ice-pwd:${t.iceParameters.password}`,
    'a=setup:actpass',
    ...udp.map((x) => `a=candidate:${x.foundation} 1 udp ${x.priority} ${address(x)} ${x.port} typ ${x.type}`),
    'a=end-of-candidates',
    'a=rtcp-mux',
    'a=rtcp-rsize',
    `a=rtpmap:${pt} opus/48000/2`,
    ...(c.opus.fmtp ? [`a=fmtp:${pt} ${c.opus.fmtp}`] : []),
    ...c.rtcpFeedback.map((fb) => `a=rtcp-fb:${pt} ${fb.type}${fb.parameter ? ` ${fb.parameter}` : ''}`),
    `a=ssrc:${c.ssrc} cname:${c.cname}`,
    `a=msid:remixroom mix`,
    '',
  ].join('\r\n');
}

/** Our DTLS fingerprint and role from werift's answer (a=setup:active: we are the DTLS client). */
function localDtls(sdp: string): { role: 'client' | 'server'; fingerprints: { algorithm: string; value: string }[] } {
  const fingerprints = [...sdp.matchAll(/^a=fingerprint:(\S+) (\S+)\r?$/gm)].map((m) => ({ algorithm: m[1]!.toLowerCase(), value: m[2]! }));
  if (fingerprints.length === 0) throw new Error('the answer carries no DTLS fingerprint');
  const setup = /^a=setup:(\w+)/m.exec(sdp)?.[1];
  return { role: setup === 'passive' ? 'server' : 'client', fingerprints: fingerprints.slice(0, 1) };
}
