// Browser side of the mediasoup adapter: mediasoup-client's usual steps
// (load the router's capabilities, a receive transport, consume, resume).
// mediasoup-client writes stereo into its answer when the producer's Opus
// parameters carry sprop-stereo=1, which the mediasoup adapter sets.
import { Device } from 'mediasoup-client';
import type { types as msc } from 'mediasoup-client';
import type { MediasoupServerSignal } from '../../../shared/sfu-signals.ts';
import type { ListenOptions, MixListener, SignalFn } from './embedded-listener.ts';

export async function listenMediasoup(signal: SignalFn, options: ListenOptions = {}): Promise<MixListener> {
  const params = (await signal(options.video ? { type: 'join', video: true } : { type: 'join' })) as MediasoupServerSignal;
  if (params.type !== 'transport') throw new Error(`expected transport parameters, got ${params.type}`);
  const device = new Device();
  await device.load({ routerRtpCapabilities: params.routerRtpCapabilities as msc.RtpCapabilities });
  const transport = device.createRecvTransport({
    id: params.transportId,
    iceParameters: params.iceParameters as msc.IceParameters,
    iceCandidates: params.iceCandidates as msc.IceCandidate[],
    dtlsParameters: params.dtlsParameters as msc.DtlsParameters,
  });
  try {
    transport.on('connect', ({ dtlsParameters }, callback, errback) => {
      signal({ type: 'connect', transportId: transport.id, dtlsParameters }).then(() => callback(), errback);
    });
    const consumerParams = (await signal({ type: 'consume', transportId: transport.id, rtpCapabilities: device.recvRtpCapabilities })) as MediasoupServerSignal;
    if (consumerParams.type !== 'consumer') throw new Error(`expected a consumer, got ${consumerParams.type}`);
    const consumer = await transport.consume({
      id: consumerParams.consumerId,
      producerId: consumerParams.producerId,
      kind: consumerParams.kind,
      rtpParameters: consumerParams.rtpParameters as msc.RtpParameters,
    });
    // The server creates consumers paused (mediasoup's advice) so that nothing is lost before the browser is ready.
    await signal({ type: 'resume', transportId: transport.id, consumerId: consumer.id });
    let videoTrack: MediaStreamTrack | null = null;
    if (params.video) {
      const v = (await signal({ type: 'consume', transportId: transport.id, kind: 'video', rtpCapabilities: device.recvRtpCapabilities })) as MediasoupServerSignal;
      if (v.type !== 'consumer') throw new Error(`expected a video consumer, got ${v.type}`);
      const videoConsumer = await transport.consume({ id: v.consumerId, producerId: v.producerId, kind: v.kind, rtpParameters: v.rtpParameters as msc.RtpParameters });
      await signal({ type: 'resume', transportId: transport.id, consumerId: videoConsumer.id });
      videoTrack = videoConsumer.track;
    }
    return {
      track: consumer.track,
      stream: new MediaStream([consumer.track]),
      videoTrack,
      videoRefused: params.videoRefused ?? null,
      // The transport's whole report: inbound-rtp, codec and candidate pairs, as for the embedded path.
      getStats: () => transport.getStats(),
      async close() {
        // `leave` first: closed first, the transport's DTLS close reaches mediasoup before the
        // leave does, and the member is dropped as disconnected instead of having left.
        await signal({ type: 'leave' }).catch(() => undefined);
        transport.close();
      },
    };
  } catch (err) {
    transport.close();
    throw err;
  }
}
