// The browser side of the SFU contract suite, bundled with esbuild and served
// by the test. It joins through the same listener modules the web app uses and
// measures what arrives: WebRTC stats and the decoded audio, per channel.
import { listenEmbedded, type MixListener } from '../../../client/src/live/embedded-listener.ts';
import { listenMediasoup } from '../../../client/src/live/mediasoup-listener.ts';

export interface ReceivedStats {
  packetsReceived: number;
  packetsLost: number;
  jitterMs: number;
  totalAudioEnergy: number;
  audioLevel: number;
  concealedSamples: number;
  totalSamplesReceived: number;
  /** Mean jitter-buffer delay so far (ms). */
  jitterBufferMs: number;
  /** The raw counters, for a mean over a window (s and samples). */
  jitterBufferDelay: number;
  jitterBufferEmittedCount: number;
  jitterBufferTargetDelay: number;
  removedSamplesForAcceleration: number;
  insertedSamplesForDeceleration: number;
  codecChannels: number | null;
  codecFmtp: string | null;
}

export interface ChannelAnalysis {
  /** Strongest frequency in the channel (Hz) and its level (dBFS). */
  peakHz: number;
  peakDb: number;
  rms: number;
}

/** What a member receives of the room's visuals as video. */
export interface ReceivedVideo {
  hasTrack: boolean;
  refused: string | null;
  videoWidth: number;
  videoHeight: number;
  /** Frames decoded and shown so far (getVideoPlaybackQuality). */
  totalVideoFrames: number;
  /** Frames the page saw presented (requestVideoFrameCallback). */
  framesPresented: number;
}

interface Entry {
  listener: MixListener;
  video?: HTMLVideoElement;
  framesPresented?: number;
  audio?: HTMLAudioElement;
  context?: AudioContext;
  analysers?: AnalyserNode[];
}

declare global {
  interface Window {
    /** Exposed by the test (playwright exposeFunction): one signaling round trip for `label`. */
    sfuSignal(label: string, message: unknown): Promise<unknown>;
    harness: typeof harness;
  }
}

const entries = new Map<string, Entry>();

const harness = {
  /** Joins as `label`; resolves with the join time (ms) once the track is there. */
  async join(adapter: 'embedded' | 'mediasoup', label: string, analyse: boolean, video = false): Promise<number> {
    const started = performance.now();
    const signal = (message: unknown) => window.sfuSignal(label, message);
    const listener = adapter === 'embedded' ? await listenEmbedded(signal, {}, { video }) : await listenMediasoup(signal, { video });
    const entry: Entry = { listener };
    entries.set(label, entry);
    if (analyse) {
      // Played out (Chromium counts audio energy only for audio it renders) and analysed per channel.
      entry.audio = new Audio();
      entry.audio.srcObject = listener.stream;
      await entry.audio.play();
      const context = new AudioContext({ sampleRate: 48_000 });
      const source = context.createMediaStreamSource(listener.stream);
      const splitter = context.createChannelSplitter(2);
      source.connect(splitter);
      entry.analysers = [0, 1].map((channel) => {
        const analyser = context.createAnalyser();
        analyser.fftSize = 8192;
        analyser.smoothingTimeConstant = 0;
        splitter.connect(analyser, channel);
        return analyser;
      });
      entry.context = context;
      await context.resume();
    }
    return performance.now() - started;
  },

  async stats(label: string): Promise<ReceivedStats> {
    const report = await entry(label).listener.getStats();
    let inbound: Record<string, number> | null = null;
    const codecs = new Map<string, { channels?: number; sdpFmtpLine?: string }>();
    report.forEach((s: Record<string, unknown> & { type: string; id: string }) => {
      if (s.type === 'inbound-rtp' && s['kind'] === 'audio') inbound = s as unknown as Record<string, number>;
      if (s.type === 'codec') codecs.set(s.id, s as { channels?: number; sdpFmtpLine?: string });
    });
    const r = (inbound ?? {}) as Record<string, number> & { codecId?: string };
    const codec = r.codecId ? codecs.get(r.codecId) : undefined;
    return {
      packetsReceived: r['packetsReceived'] ?? 0,
      packetsLost: r['packetsLost'] ?? 0,
      jitterMs: (r['jitter'] ?? 0) * 1000,
      totalAudioEnergy: r['totalAudioEnergy'] ?? 0,
      audioLevel: r['audioLevel'] ?? 0,
      concealedSamples: r['concealedSamples'] ?? 0,
      totalSamplesReceived: r['totalSamplesReceived'] ?? 0,
      jitterBufferMs: r['jitterBufferEmittedCount'] ? ((r['jitterBufferDelay'] ?? 0) / r['jitterBufferEmittedCount']) * 1000 : 0,
      jitterBufferDelay: r['jitterBufferDelay'] ?? 0,
      jitterBufferEmittedCount: r['jitterBufferEmittedCount'] ?? 0,
      jitterBufferTargetDelay: r['jitterBufferTargetDelay'] ?? 0,
      removedSamplesForAcceleration: r['removedSamplesForAcceleration'] ?? 0,
      insertedSamplesForDeceleration: r['insertedSamplesForDeceleration'] ?? 0,
      codecChannels: codec?.channels ?? null,
      codecFmtp: codec?.sdpFmtpLine ?? null,
    };
  },

  /** The decoded audio's spectrum peak and level, per channel (averaged over a few snapshots). */
  async analyse(label: string, snapshots = 5): Promise<ChannelAnalysis[]> {
    const { analysers, context } = entry(label);
    if (!analysers || !context) throw new Error(`${label} joined without analysis`);
    const sums = analysers.map((a) => ({ spectrum: new Float32Array(a.frequencyBinCount), rms: 0 }));
    for (let k = 0; k < snapshots; k++) {
      analysers.forEach((analyser, i) => {
        const spectrum = new Float32Array(analyser.frequencyBinCount);
        analyser.getFloatFrequencyData(spectrum);
        const time = new Float32Array(analyser.fftSize);
        analyser.getFloatTimeDomainData(time);
        const sum = sums[i]!;
        for (let b = 0; b < spectrum.length; b++) sum.spectrum[b]! += Math.max(spectrum[b]!, -200) / snapshots;
        let energy = 0;
        for (const v of time) energy += v * v;
        sum.rms += Math.sqrt(energy / time.length) / snapshots;
      });
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    return sums.map(({ spectrum, rms }, i) => {
      let best = 1;
      for (let b = 2; b < spectrum.length; b++) if (spectrum[b]! > spectrum[best]!) best = b;
      return { peakHz: (best * context.sampleRate) / analysers[i]!.fftSize, peakDb: spectrum[best]!, rms };
    });
  },

  /**
   * Mean power in each band [edges[i], edges[i+1]) Hz, both channels summed, in dB
   * (averaged over `snapshots` spectra taken 100 ms apart): what part of the mix is heard.
   */
  async bands(label: string, edges: number[], snapshots = 10): Promise<number[]> {
    const { analysers, context } = entry(label);
    if (!analysers || !context) throw new Error(`${label} joined without analysis`);
    const power = new Array<number>(Math.max(0, edges.length - 1)).fill(0);
    for (let k = 0; k < snapshots; k++) {
      for (const analyser of analysers) {
        const spectrum = new Float32Array(analyser.frequencyBinCount);
        analyser.getFloatFrequencyData(spectrum);
        const binHz = context.sampleRate / analyser.fftSize;
        for (let b = 0; b < spectrum.length; b++) {
          const hz = b * binHz;
          for (let i = 0; i < power.length; i++) {
            if (hz >= edges[i]! && hz < edges[i + 1]!) power[i]! += Math.pow(10, Math.max(spectrum[b]!, -200) / 10) / snapshots;
          }
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    return power.map((p) => 10 * Math.log10(p + 1e-20));
  },

  /** Plays the received video track (once) in a <video> element and says what has arrived. */
  async video(label: string): Promise<ReceivedVideo> {
    const e = entry(label);
    const track = e.listener.videoTrack;
    if (track && !e.video) {
      const v = document.createElement('video');
      v.muted = true;
      v.playsInline = true;
      v.srcObject = new MediaStream([track]);
      document.body.append(v);
      e.video = v;
      e.framesPresented = 0;
      const count = () => {
        e.framesPresented = (e.framesPresented ?? 0) + 1;
        v.requestVideoFrameCallback(count);
      };
      v.requestVideoFrameCallback(count);
      await v.play();
    }
    const v = e.video;
    return {
      hasTrack: track !== null,
      refused: e.listener.videoRefused,
      videoWidth: v?.videoWidth ?? 0,
      videoHeight: v?.videoHeight ?? 0,
      totalVideoFrames: v?.getVideoPlaybackQuality().totalVideoFrames ?? 0,
      framesPresented: e.framesPresented ?? 0,
    };
  },

  /** The mean colour (0..255 each) of the video frame shown now, drawn to a canvas. */
  videoMeanColour(label: string): { r: number; g: number; b: number } {
    const v = entry(label).video;
    if (!v || !v.videoWidth) throw new Error(`${label} shows no video`);
    const canvas = document.createElement('canvas');
    canvas.width = v.videoWidth;
    canvas.height = v.videoHeight;
    const ctx = canvas.getContext('2d', { willReadFrequently: true })!;
    ctx.drawImage(v, 0, 0);
    const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
    let r = 0;
    let g = 0;
    let b = 0;
    for (let i = 0; i < px.length; i += 4) {
      r += px[i]!;
      g += px[i + 1]!;
      b += px[i + 2]!;
    }
    const n = px.length / 4;
    return { r: r / n, g: g / n, b: b / n };
  },

  /** Leaves properly (signals 'leave'). */
  async leave(label: string): Promise<void> {
    const e = entries.get(label);
    if (!e) return;
    entries.delete(label);
    e.audio?.pause();
    e.video?.pause();
    e.video?.remove();
    await e.context?.close();
    await e.listener.close();
  },

  labels(): string[] {
    return [...entries.keys()];
  },
};

function entry(label: string): Entry {
  const e = entries.get(label);
  if (!e) throw new Error(`no listener ${label}`);
  return e;
}

window.harness = harness;
