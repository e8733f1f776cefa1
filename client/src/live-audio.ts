// The room's live mix in this browser: joins the stream over the member's socket
// (the embedded SFU or mediasoup, as the server says), plays it through an
// <audio> element (browsers need the user's click for that) and measures its
// level for the visuals. It joins again by itself when the stream ends under it
// or the socket comes back after a drop.
//
// Its state follows the member's connection: while the socket is down (a drop, a
// server restarting) the stream is gone with the session, so it says 'rejoining'
// and waits; it joins again once the socket is back, and says 'playing' only when
// the stream is joined and playing. The page remembers, per room, that the sound
// was on (this tab's sessionStorage), so that a reload brings it back; when the
// browser refuses to play without a gesture, it is 'blocked' until the next tap
// or key press anywhere on the page.
import { listenEmbedded, type MixListener } from './live/embedded-listener.ts';
import type { HlsListener } from './live/hls-listener.ts';
import type { ConnectionState, RoomConnection } from './room-connection.ts';

export type AudioState = 'off' | 'joining' | 'playing' | 'rejoining' | 'blocked' | 'failed';

/**
 * Broadcast mode: while `audience()` says so (the room broadcasts and this member is a listener),
 * the sound comes from the room's HLS instead of WebRTC; with the server's video asked for, the
 * video rendition plays in `video` (with the sound).
 */
export interface AudienceOptions {
  audience: () => boolean;
  playlists: () => Promise<{ audio: string; video?: string } | null>;
  video: HTMLVideoElement;
  serverNow: () => number;
}

/** Where this tab remembers that a room's sound was on. */
const rememberKey = (roomId: string) => `remixroom.audio.${roomId}`;

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
  #hls: HlsListener | null = null;
  readonly #audience: AudienceOptions | null;
  /** How the sound comes now: the stage's WebRTC or the broadcast's HLS (null while off). */
  via: 'webrtc' | 'hls' | null = null;
  #context: AudioContext | null = null;
  #analyser: AnalyserNode | null = null;
  #samples: Float32Array<ArrayBuffer> | null = null;
  #wanted = false;
  #video = false;
  #attempt = 0;
  #retryTimer: ReturnType<typeof setTimeout> | null = null;
  /** Bumped whenever a join in flight must not finish (the socket went down, stopped, joined anew). */
  #generation = 0;
  /** Waiting for the socket to come back before joining. */
  #waitingForSocket = false;
  #offTap: (() => void) | null = null;
  state: AudioState = 'off';
  error: string | null = null;
  /** The server's video of the visuals, when asked for (setVideo) and published. */
  videoTrack: MediaStreamTrack | null = null;
  /** Why the server sent no video when it was asked for (its words). */
  videoRefused: string | null = null;
  readonly #listeners = new Set<() => void>();
  readonly #offs: (() => void)[] = [];

  constructor(conn: RoomConnection, audio: HTMLAudioElement, adapter: () => Promise<string | null>, audience: AudienceOptions | null = null) {
    this.#conn = conn;
    this.#audio = audio;
    this.#adapter = adapter;
    this.#audience = audience;
    const onEnded = (info: { reason: string; rejoin: boolean }) => {
      if (!this.#wanted || this.state === 'blocked') return;
      // The room went into broadcast mode: this listener moves to its HLS.
      if (info.reason === 'broadcast') return this.audienceChanged();
      this.#generation++;
      void this.#drop();
      // 'shutdown': the room or the server stops here and comes back; the socket drops next, and the join waits for it.
      if (info.rejoin || info.reason === 'shutdown') this.#scheduleRejoin(info.reason === 'shutdown' ? 'the server is restarting; the sound comes back by itself' : `the stream stopped (${info.reason}); joining again…`);
      else {
        this.#forget();
        this.#setState('failed', info.reason === 'room-closed' ? 'the room closed' : 'the server stopped the stream');
      }
    };
    const onConnection = (s: ConnectionState) => {
      if (!this.#wanted || this.state === 'blocked' || this.state === 'failed') return;
      // The broadcast's HLS does not go through the room's socket: it plays on while that reconnects.
      if (this.via === 'hls' && s.socket !== 'closed') return;
      if (s.socket === 'connected') {
        if (this.#waitingForSocket) this.#socketBack();
        return;
      }
      if (this.#waitingForSocket) return;
      if (s.socket === 'closed' && s.closedReason) {
        // Closed for good (the page says why); nothing to join again.
        this.#generation++;
        void this.#drop();
        return this.#setState('failed', s.closedReason);
      }
      this.#waitForSocket();
    };
    const onReconnect = () => {
      // A new socket means a new session on the server: the old stream is gone (unless a join is on its way already).
      if (!this.#wanted || this.state === 'blocked' || this.state === 'failed') return;
      if (this.via === 'hls') return;
      if (this.state === 'rejoining' && this.#retryTimer) return;
      this.#socketBack();
    };
    conn.socket.on('stream:ended', onEnded);
    this.#offs.push(() => conn.socket.off('stream:ended', onEnded), conn.onReconnected(onReconnect), conn.onState(onConnection));
  }

  /** Whether this tab had the room's sound on (before a reload). */
  get remembered(): boolean {
    try {
      return sessionStorage.getItem(rememberKey(this.#conn.roomId)) === 'on';
    } catch {
      return false;
    }
  }

  /**
   * After a reload: starts the sound again if it was on. Where the browser wants a gesture
   * first, the state is 'blocked' and the next tap or key press anywhere starts it.
   */
  resumeIfRemembered(): void {
    if (!this.remembered || this.state !== 'off') return;
    if (this.#conn.socket.connected) return void this.start();
    let off: (() => void) | null = null;
    off = this.#conn.onState((s) => {
      if (s.socket !== 'connected') return;
      queueMicrotask(() => off?.());
      if (this.state === 'off') void this.start();
    });
    this.#offs.push(() => off?.());
  }

  onChange(fn: () => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Call from the user's click: starting the AudioContext and play() need it (or see resumeIfRemembered). */
  async start(): Promise<void> {
    this.#wanted = true;
    this.#offTap?.();
    this.#remember();
    this.#context ??= new AudioContext();
    // Not awaited: without a gesture it stays pending until one comes (the analyser is silent till then).
    this.#context.resume().catch(() => undefined);
    if (this.state === 'blocked') this.state = 'off';
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

  /** Broadcast mode or this member's role changed: the sound moves between WebRTC and HLS if it must. */
  audienceChanged(): void {
    const want = this.#audience?.audience() ? 'hls' : 'webrtc';
    if (!this.#wanted || this.state === 'blocked' || this.via === want) return;
    this.#generation++;
    void this.#drop();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#attempt = 0;
    this.#scheduleRejoin(want === 'hls' ? 'the room is broadcasting: moving you to its stream…' : 'you are on the stage: joining the live mix…', 100);
  }

  /** How far behind the stage this member hears (ms): the broadcast's delay, 0 on the stage's WebRTC. */
  delayMs(): number {
    return this.#hls?.delayMs() ?? 0;
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    this.#generation++;
    this.#waitingForSocket = false;
    this.#offTap?.();
    this.#forget();
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
    this.#generation++;
    this.#offTap?.();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    for (const off of this.#offs.splice(0)) off();
    void this.#drop();
    void this.#context?.close().catch(() => undefined);
    this.#context = null;
    this.#listeners.clear();
  }

  async #join(): Promise<void> {
    if (this.state === 'joining') return;
    if (!this.#conn.socket.connected) return this.#waitForSocket();
    const generation = ++this.#generation;
    this.#setState('joining', null);
    if (this.#audience?.audience()) return this.#joinHls(generation);
    try {
      const adapter = await this.#adapter();
      const signal = (m: unknown) => this.#conn.signal(m);
      const listener =
        adapter === 'mediasoup'
          ? await (await import('./live/mediasoup-listener.ts')).listenMediasoup(signal, { video: this.#video })
          : await listenEmbedded(signal, {}, { video: this.#video });
      if (!this.#wanted || generation !== this.#generation) {
        await listener.close();
        return;
      }
      this.#listener = listener;
      this.videoTrack = listener.videoTrack;
      this.videoRefused = listener.videoRefused;
      this.#audio.srcObject = listener.stream;
      await this.#audio.play();
      // Superseded while play() waited (the socket went down…): #drop has closed this listener.
      if (generation !== this.#generation) return;
      if (this.#context) {
        const source = this.#context.createMediaStreamSource(listener.stream);
        this.#analyser = this.#context.createAnalyser();
        this.#analyser.fftSize = 1024;
        this.#samples = new Float32Array(this.#analyser.fftSize);
        source.connect(this.#analyser);
      }
      this.#attempt = 0;
      this.via = 'webrtc';
      this.#setState('playing', null);
    } catch (err) {
      if (generation !== this.#generation) return;
      await this.#drop();
      if (!this.#wanted) return;
      // The server says the room broadcasts (the rules may not have reached this page yet): its HLS then.
      if ((err as { code?: string }).code === 'broadcast' && this.#audience && this.#attempt < 8) return this.#scheduleRejoin('the room is broadcasting: moving you to its stream…', 300);
      if ((err as Error).name === 'NotAllowedError') return this.#blocked();
      // The socket went down under the join: wait for it, without counting a try.
      if (!this.#conn.socket.connected) return this.#waitForSocket();
      const message = (err as Error).message || String(err);
      if (this.#attempt < 5) this.#scheduleRejoin(`could not join the stream (${message}); trying again…`);
      else this.#setState('failed', message);
    }
  }

  /** The audience's way in: the room's HLS (the video rendition when the server's video is asked for). */
  async #joinHls(generation: number): Promise<void> {
    const audience = this.#audience!;
    try {
      const playlists = await audience.playlists();
      if (!playlists) throw new Error('the room is not broadcasting yet');
      const withVideo = this.#video && playlists.video !== undefined;
      const media: HTMLMediaElement = withVideo ? audience.video : this.#audio;
      media.muted = false;
      // hls.js (~400 kB) is fetched only by the audience of a broadcast.
      const { listenHls } = await import('./live/hls-listener.ts');
      const listener = await listenHls(withVideo ? playlists.video! : playlists.audio, media, { serverNow: audience.serverNow });
      if (!this.#wanted || generation !== this.#generation) {
        await listener.close();
        return;
      }
      this.#hls = listener;
      listener.onFailed((why) => {
        if (this.#hls !== listener) return;
        this.#generation++;
        void this.#drop();
        this.#scheduleRejoin(`${why}; joining again…`);
      });
      this.videoRefused = this.#video && !withVideo ? 'the broadcast has no video' : null;
      const captured = listener.captured();
      if (this.#context && captured && captured.getAudioTracks().length > 0) {
        const source = this.#context.createMediaStreamSource(captured);
        this.#analyser = this.#context.createAnalyser();
        this.#analyser.fftSize = 1024;
        this.#samples = new Float32Array(this.#analyser.fftSize);
        source.connect(this.#analyser);
      }
      this.#attempt = 0;
      this.via = 'hls';
      this.#setState('playing', null);
    } catch (err) {
      if (generation !== this.#generation) return;
      await this.#drop();
      if (!this.#wanted) return;
      if ((err as Error).name === 'NotAllowedError') return this.#blocked();
      const message = (err as Error).message || String(err);
      if (this.#attempt < 8) this.#scheduleRejoin(`could not play the broadcast (${message}); trying again…`);
      else this.#setState('failed', message);
    }
  }

  /** Whether the sound comes with the server's video (the broadcast's video rendition plays in the video element). */
  get hlsVideo(): boolean {
    return this.#hls !== null && this.#hls.media === this.#audience?.video;
  }

  /** The socket is down: the stream went with the session. Join again when it is back (onReconnected). */
  #waitForSocket(): void {
    this.#waitingForSocket = true;
    this.#generation++;
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    void this.#drop();
    this.#setState('rejoining', 'the connection to the room is down; the sound comes back when it reconnects');
  }

  /** The socket is back (a new session): join the stream again, afresh. */
  #socketBack(): void {
    this.#waitingForSocket = false;
    this.#attempt = 0;
    this.#generation++;
    void this.#drop();
    if (this.#retryTimer) clearTimeout(this.#retryTimer);
    this.#retryTimer = null;
    this.#scheduleRejoin('reconnected; joining the stream again…', 200);
  }

  /** The browser wants a gesture before it plays: the next tap or key press anywhere starts the sound. */
  #blocked(): void {
    this.#setState('blocked', 'the browser needs a tap before it plays sound');
    this.#offTap?.();
    const onTap = () => {
      this.#offTap?.();
      if (this.#wanted && this.state === 'blocked') void this.start();
    };
    // Bubbling: a tap on the page's own "Start audio" button has started it already.
    document.addEventListener('click', onTap);
    document.addEventListener('keydown', onTap);
    this.#offTap = () => {
      document.removeEventListener('click', onTap);
      document.removeEventListener('keydown', onTap);
      this.#offTap = null;
    };
  }

  #remember(): void {
    try {
      sessionStorage.setItem(rememberKey(this.#conn.roomId), 'on');
    } catch {
      // Storage refused (private mode, quota): the sound is just not resumed after a reload.
    }
  }

  #forget(): void {
    try {
      sessionStorage.removeItem(rememberKey(this.#conn.roomId));
    } catch {
      // As above.
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
    const hls = this.#hls;
    this.#hls = null;
    this.via = null;
    if (hls) await hls.close().catch(() => undefined);
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
