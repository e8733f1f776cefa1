// Browser side of the embedded adapter: take the server's offer, answer it
// (saying stereo Opus, which Chromium leaves out), and play the mix.
import { withOpusStereo } from '../../../shared/sdp.ts';
import type { EmbeddedServerSignal } from '../../../shared/sfu-signals.ts';

/** Sends one signaling message to the room (socket.io ack, or a test's bridge) and returns the reply. */
export type SignalFn = (message: unknown) => Promise<unknown>;

export interface MixListener {
  readonly track: MediaStreamTrack;
  readonly stream: MediaStream;
  /** The room's visuals, when the join asked for them and the server publishes them. */
  readonly videoTrack: MediaStreamTrack | null;
  /** Why a join that asked for video got audio only (the server's words). */
  readonly videoRefused: string | null;
  /** The receiving side's WebRTC statistics (inbound-rtp, codec, transport). */
  getStats(): Promise<RTCStatsReport>;
  close(): Promise<void>;
}

export interface ListenOptions {
  /** Ask for the room's visuals as a video track too. */
  video?: boolean;
}

export async function listenEmbedded(signal: SignalFn, rtcConfig: RTCConfiguration = {}, options: ListenOptions = {}): Promise<MixListener> {
  const offer = (await signal(options.video ? { type: 'join', video: true } : { type: 'join' })) as EmbeddedServerSignal;
  if (offer.type !== 'offer') throw new Error(`expected an offer, got ${offer.type}`);
  const pc = new RTCPeerConnection(rtcConfig);
  try {
    const gotTrack = new Promise<RTCTrackEvent>((resolve) => {
      const onTrack = (e: RTCTrackEvent) => {
        if (e.track.kind !== 'audio') return;
        pc.removeEventListener('track', onTrack);
        resolve(e);
      };
      pc.addEventListener('track', onTrack);
    });
    const gotVideo = offer.video
      ? new Promise<MediaStreamTrack>((resolve) => {
          const onTrack = (e: RTCTrackEvent) => {
            if (e.track.kind !== 'video') return;
            pc.removeEventListener('track', onTrack);
            resolve(e.track);
          };
          pc.addEventListener('track', onTrack);
        })
      : Promise.resolve(null);
    await pc.setRemoteDescription({ type: 'offer', sdp: offer.sdp });
    const answer = await pc.createAnswer();
    await pc.setLocalDescription({ type: 'answer', sdp: withOpusStereo(answer.sdp ?? '') });
    // Sent without waiting for gathering: the browser's own candidates are mDNS
    // names the server cannot use; its checks towards the server's candidate are
    // what connect (a peer-reflexive pair), so waiting would only slow the join.
    await signal({ type: 'answer', transportId: offer.transportId, sdp: pc.localDescription?.sdp ?? '' });
    const { track, streams } = await gotTrack;
    const stream = streams[0] ?? new MediaStream([track]);
    const videoTrack = await gotVideo;
    return {
      track,
      stream,
      videoTrack,
      videoRefused: offer.videoRefused ?? null,
      getStats: () => pc.getStats(),
      async close() {
        pc.close();
        await signal({ type: 'leave' }).catch(() => undefined);
      },
    };
  } catch (err) {
    pc.close();
    throw err;
  }
}
