// The audience's side of a broadcast: the room's LL-HLS played with hls.js
// (Media Source Extensions; Chromium has no native HLS) into the page's own
// media element, or natively where the browser plays HLS itself (Safari).
//
// The delay behind the stage is measured, not guessed: the playlists stamp each
// segment with the wall clock of its first sample (EXT-X-PROGRAM-DATE-TIME), so
// the server's time now minus the time of what is playing is how far behind the
// stage this listener hears. Network and media errors are recovered as hls.js
// advises (reload, recoverMediaError); after a few in a row the listener gives up
// and says why (the page joins again).
import Hls, { type ErrorData } from 'hls.js';

export interface HlsListener {
  readonly media: HTMLMediaElement;
  /** How far behind the stage this listener hears (ms), once known. */
  delayMs(): number | null;
  /** A stream of what the element plays, for the level meter (null where the browser cannot capture it). */
  captured(): MediaStream | null;
  /** Called once if playback cannot be recovered. */
  onFailed(fn: (why: string) => void): void;
  close(): Promise<void>;
}

export interface HlsListenOptions {
  /** The server's clock (ms since the epoch), as the page keeps it. */
  serverNow: () => number;
}

/** Recoveries in a row before the listener gives up (a stalled encoder comes back within them). */
const MAX_RECOVERIES = 6;

export async function listenHls(url: string, media: HTMLMediaElement, opts: HlsListenOptions): Promise<HlsListener> {
  const failed: ((why: string) => void)[] = [];
  let hls: Hls | null = null;
  let closed = false;
  const fail = (why: string) => {
    if (closed) return;
    for (const fn of failed.splice(0)) fn(why);
  };

  if (Hls.isSupported()) {
    hls = new Hls({
      lowLatencyMode: true,
      // A little room over the playlist's PART-HOLD-BACK: fewer stalls on a busy phone.
      liveSyncDurationCount: 2,
      backBufferLength: 10,
      maxLiveSyncPlaybackRate: 1.1,
      // The playlists and parts are public, cacheable files: no credentials.
      xhrSetup: (xhr) => {
        xhr.withCredentials = false;
      },
    });
    let recoveries = 0;
    hls.on(Hls.Events.FRAG_BUFFERED, () => {
      recoveries = 0;
    });
    hls.on(Hls.Events.ERROR, (_event, data: ErrorData) => {
      if (!data.fatal || !hls) return;
      recoveries++;
      if (recoveries > MAX_RECOVERIES) return fail(`the broadcast stopped playing (${data.details})`);
      if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
      else if (data.type === Hls.ErrorTypes.NETWORK_ERROR) setTimeout(() => hls?.startLoad(-1), Math.min(4000, 500 * recoveries));
      else fail(`the broadcast could not be played (${data.details})`);
    });
    const parsed = new Promise<void>((resolve, reject) => {
      hls!.once(Hls.Events.MANIFEST_PARSED, () => resolve());
      hls!.once(Hls.Events.ERROR, (_e, data: ErrorData) => {
        if (data.fatal) reject(new Error(`the broadcast's playlist could not be read (${data.details})`));
      });
    });
    hls.attachMedia(media);
    hls.loadSource(url);
    try {
      await parsed;
      await media.play();
    } catch (err) {
      // A retry scheduled by the error handler finds no player (it reads `hls`).
      const dead = hls;
      hls = null;
      dead.destroy();
      throw err;
    }
  } else if (media.canPlayType('application/vnd.apple.mpegurl')) {
    media.src = url;
    await media.play();
  } else {
    throw new Error('this browser cannot play the broadcast (no Media Source Extensions, no native HLS)');
  }

  let capture: MediaStream | null = null;
  return {
    media,
    delayMs() {
      const playing = hls?.playingDate ?? (media as HTMLMediaElement & { getStartDate?: () => Date }).getStartDate?.() ?? null;
      if (!playing || Number.isNaN(playing.getTime())) return null;
      // Native players' start date plus the position; hls.js's playingDate is already the moment playing.
      const at = hls ? playing.getTime() : playing.getTime() + media.currentTime * 1000;
      return Math.max(0, opts.serverNow() - at);
    },
    captured() {
      if (capture) return capture;
      const el = media as HTMLMediaElement & { captureStream?: () => MediaStream };
      try {
        capture = el.captureStream?.() ?? null;
      } catch {
        capture = null;
      }
      return capture;
    },
    onFailed(fn) {
      failed.push(fn);
    },
    async close() {
      closed = true;
      hls?.destroy();
      hls = null;
      media.pause();
      media.removeAttribute('src');
      media.load();
    },
  };
}
