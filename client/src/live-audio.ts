// The room's live mix in this browser: joins the stream over the member's socket
// (the embedded SFU or mediasoup, as the server says), plays it through an
// <audio> element (browsers need the user's click for that) and measures its
// level for the visuals. It joins again by itself when the stream ends under it
// or the socket comes back after a drop.
import { listenEmbedded, type MixListener } from '../../media/sfu/browser/embedded-listener.ts';
import type { RoomConnection } from './room-connection.ts';

export type AudioState = 'off' | 'joining' | 'playing' | 'rejoining' | 'failed';

export interface AudioStats {
  packetsReceived: number;
  packetsLost: number;
  totalAudioEnergy: number;
  jitterMs: number;
}

export class LiveAudio {
  readonly #conn: RoomConnection;
  readonly #audio: HTMLAudioElement;
  readonly #adapter: () => Promise<string | null>;
  #listener: MixListener | null = null;
  #context: AudioContext | null = null;
  #analyser: AnalyserNode | null = null;
  #samples: Float32Array<ArrayBuffer> | null = null;
  #wanted = false;
  #video = false;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  state: AudioState = 'off';
  error: string | null = null;
  /** The server's video of the visuals, when asked for (setVideo) and published. */
  videoTrack: MediaStreamTrack | null = null;
  /** Why the server sent no video when it was asked for (its words). */
  videoRefused: string | null = null;
  readonly #listeners = new Set<() => void>();
  readonly #offs: (() => void)[] = [];

  constructor(conn: RoomConnection, audio: HTMLAudioElement, adapter: () => Promise<string | null>) {
    this.#conn = conn;
    this.#audio = audio;
    this.#adapter = adapter;
    const onEnded = (info: { reason: string; rejoin: boolean }) => {
      if (!this.#wanted) return;
      void this.#drop();
      if (info.rejoin) this.#scheduleRejoin(`the stream stopped (${info.reason}); joining again…`);
      else this.#setState('failed', info.reason === 'room-closed' ? 'the room closed' : 'the server stopped the stream');
    };
    const onReconnect = () => {
      // A new socket means a new session on the server: the old stream is gone.
      if (this.#wanted && this.state !== 'joining') {
        void this.#drop();
        this.#scheduleRejoin('reconnected; joining the stream again…', 200);
      }
    };
    conn.socket.on('stream:ended', onEnded);
    this.#offs.push(() => conn.socket.off('stream:ended', onEnded), conn.onReconnected(onReconnect));
  }

  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Call from the user's click: starting the AudioContext and play() need it. */
  async start(): Promise<void> {
    this.#wanted = true;
    this.#context ??= new AudioContext();
    await this.#context.resume().catch(() => undefined);
    await this.#join();
  }

  /**
   * Whether to ask the server for its video of the visuals too (for a weak device
   * that should not draw). Joins again when the stream is on; call from the user's click.
   */
  async setVideo(on: boolean): Promise<void> {
    if (this.#video === on) return;
    this.#video = on;
    if (!this.#wanted) return;
    await this.#drop();
    this.state = 'off';
    await this.start();
  }

  /**
   * The server said its video stopped (room notice `video_stopped`): show the drawing again,
   * with its words; the audio plays on. Asking for video again (setVideo) tries anew.
   */
  serverVideoStopped(reason: string): void {
    if (!this.videoTrack) return;
    this.videoTrack = null;
    this.videoRefused = reason;
    for (const fn of this.#listeners) fn();
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    await this.#drop();
    this.#setState('off', null);
  }

  async stats(): Promise<AudioStats> {
    const empty = { packetsReceived: 0, packetsLost: 0, totalAudioEnergy: 0, jitterMs: 0 };
    if (!this.#listener) return empty;
    const report = await this.#listener.getStats();
    let found: AudioStats = empty;
    report.forEach((s: { type: string; kind?: string } & Record<string, unknown>) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        found = {
          packetsReceived: Number(s['packetsReceived'] ?? 0),
          packetsLost: Number(s['packetsLost'] ?? 0),
          totalAudioEnergy: Number(s['totalAudioEnergy'] ?? 0),
          jitterMs: Number(s['jitter'] ?? 0) * 1000,
        };
      }
    });
    return found;
  }

  /** The mix's loudness now, 0..1 (0 while not listening): drives the visuals' energy. */
  energy(): number {
    if (!this.#analyser || !this.#samples) return 0;
    this.#analyser.getFloatTimeDomainData(this.#samples);
    let sum = 0;
    for (const v of this.#samples) sum += v * v;
    const rms = Math.sqrt(sum / this.#samples.length);
    return Math.min(1, rms * 3);
  }

  setVolume(v: number): void {
    this.#audio.volume = Math.min(1, Math.max(0, v));
  }

  close(): void {
    this.#wanted = false;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const off of this.#offs.splice(0)) off();
    void this.#drop();
    void this.#context?.close().catch(() => undefined);
    this.#context = null;
    this.#listeners.clear();
  }

  async #join(): Promise<void> {
    if (this.state === 'joining') return;
    this.#setState('joining', null);
    try {
      const adapter = await this.#adapter();
      const signal = (m: unknown) => this.#conn.signal(m);
      const listener =
        adapter === 'mediasoup'
          ? await (await import('../../media/sfu/browser/mediasoup-listener.ts')).listenMediasoup(signal, { video: this.#video })
          : await listenEmbedded(signal, {}, { video: this.#video });
      if (!this.#wanted) {
        await listener.close();
        return;
      }
      this.#listener = listener;
      this.videoTrack = listener.videoTrack;
      this.videoRefused = listener.videoRefused;
      this.#audio.srcObject = listener.stream;
      await this.#audio.play();
      if (this.#context) {
        const source = this.#context.createMediaStreamSource(listener.stream);
        this.#analyser = this.#context.createAnalyser();
        this.#analyser.fftSize = 1024;
        this.#samples = new Float32Array(this.#analyser.fftSize);
        source.connect(this.#analyser);
      }
      this.#attempt = 0;
      this.#setState('playing', null);
    } catch (err) {
      await this.#drop();
      const message = (err as Error).message || String(err);
      if (this.#wanted && this.#attempt < 5) this.#scheduleRejoin(`could not join the stream (${message}); trying again…`);
      else this.#setState('failed', message);
    }
  }

  #scheduleRejoin(message: string, delayMs?: number): void {
    if (this.#retryTimer) return;
    this.#attempt += 1;
    this.#setState('rejoining', message);
    const wait = delayMs ?? Math.min(8000, 500 * 2 ** this.#attempt);
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = null;
      if (!this.#wanted) return;
      this.state = 'off';
      void this.#join();
    }, wait);
  }

  async #drop(): Promise<void> {
    const l = this.#listener;
    this.#listener = null;
    this.videoTrack = null;
    this.#analyser = null;
    this.#samples = null;
    this.#audio.srcObject = null;
    if (l) await l.close().catch(() => undefined);
  }

  #setState(state: AudioState, error: string | null): void {
    this.state = state;
    this.error = error;
    for (const fn of this.#listeners) fn();
  }
}
