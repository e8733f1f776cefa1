// Reading an LL-HLS media playlist as a player does, and a minimal HTTP/1.1
// keep-alive client over one socket: the benchmarks' simulated viewers hold
// thousands of these, so each costs as little as it can (no fetch/undici
// machinery per request), and times its request to the last byte itself.
import net from 'node:net';
import { performance } from 'node:perf_hooks';

export interface ListedPart {
  msn: number;
  index: number;
  /** As listed (relative, with the access query). */
  uri: string;
  durationSec: number;
  /** Wall clock of the part's first sample (ms since the epoch): its segment's PROGRAM-DATE-TIME plus the parts before it. */
  startWallMs: number;
  independent: boolean;
}

export interface MediaPlaylist {
  parts: ListedPart[];
  /** The PRELOAD-HINT part: the next one the server will make. */
  hint: { msn: number; index: number } | null;
  mapUri: string | null;
  ended: boolean;
}

const PART_URI = /URI="(part-(\d+)\.(\d+)\.m4s[^"]*)"/;
const DURATION = /DURATION=([\d.]+)/;

export function parseMediaPlaylist(text: string): MediaPlaylist {
  const parts: ListedPart[] = [];
  let hint: MediaPlaylist['hint'] = null;
  let mapUri: string | null = null;
  let segmentWallMs = Number.NaN;
  let offsetMs = 0;
  let ended = false;
  for (const line of text.split('\n')) {
    if (line.startsWith('#EXT-X-PART:')) {
      const m = PART_URI.exec(line);
      const d = DURATION.exec(line);
      if (!m || !d) continue;
      const durationSec = Number(d[1]);
      parts.push({ msn: Number(m[2]), index: Number(m[3]), uri: m[1]!, durationSec, startWallMs: segmentWallMs + offsetMs, independent: line.includes('INDEPENDENT=YES') });
      offsetMs += durationSec * 1000;
    } else if (line.startsWith('#EXT-X-PROGRAM-DATE-TIME:')) {
      segmentWallMs = Date.parse(line.slice('#EXT-X-PROGRAM-DATE-TIME:'.length));
      offsetMs = 0;
    } else if (line.startsWith('#EXT-X-PRELOAD-HINT:')) {
      const m = PART_URI.exec(line);
      if (m) hint = { msn: Number(m[2]), index: Number(m[3]) };
    } else if (line.startsWith('#EXT-X-MAP:')) {
      mapUri = /URI="([^"]+)"/.exec(line)?.[1] ?? null;
    } else if (line.startsWith('#EXT-X-ENDLIST')) {
      ended = true;
    }
  }
  return { parts, hint, mapUri, ended };
}

/** The part after `after` in the listing, else (it is the newest) the preload hint. */
export function nextPart(pl: MediaPlaylist, after: { msn: number; index: number }): { msn: number; index: number } | null {
  const i = pl.parts.findIndex((p) => p.msn === after.msn && p.index === after.index);
  if (i >= 0 && i + 1 < pl.parts.length) return { msn: pl.parts[i + 1]!.msn, index: pl.parts[i + 1]!.index };
  return pl.hint;
}

export interface HttpAnswer {
  status: number;
  body: Buffer;
  /** performance.now() when the first and the last byte arrived. */
  firstByteAt: number;
  doneAt: number;
}

/**
 * One keep-alive connection; one request at a time (a player's loop is sequential).
 * Answers must carry Content-Length (Express's res.send/res.json do).
 */
export class HttpConn {
  readonly #host: string;
  readonly #port: number;
  readonly #headers: string;
  #socket: net.Socket | null = null;
  #buf: Buffer = Buffer.alloc(0);
  #firstByteAt = 0;
  #pending: { resolve: (a: HttpAnswer) => void; reject: (e: Error) => void; timer: NodeJS.Timeout } | null = null;

  constructor(host: string, port: number, extraHeaders: Record<string, string>) {
    this.#host = host;
    this.#port = port;
    this.#headers = Object.entries({ Host: `${host}:${port}`, ...extraHeaders })
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join('');
  }

  get(path: string, timeoutMs = 10_000): Promise<HttpAnswer> {
    if (this.#pending) return Promise.reject(new Error('a request is already in flight on this connection'));
    const socket = this.#connect();
    return new Promise<HttpAnswer>((resolve, reject) => {
      const timer = setTimeout(() => this.#fail(new Error(socket.connecting ? `not connected within ${timeoutMs} ms` : `no answer within ${timeoutMs} ms`)), timeoutMs);
      this.#pending = { resolve, reject, timer };
      socket.write(`GET ${path} HTTP/1.1\r\n${this.#headers}\r\n`);
    });
  }

  close(): void {
    this.#socket?.destroy();
    this.#socket = null;
  }

  #connect(): net.Socket {
    if (this.#socket && !this.#socket.destroyed) return this.#socket;
    const socket = net.connect(this.#port, this.#host);
    socket.setNoDelay(true);
    this.#buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => this.#onData(d));
    socket.on('error', (e) => this.#fail(e));
    socket.on('close', () => {
      if (this.#socket === socket) this.#socket = null;
      this.#fail(new Error('the connection closed'));
    });
    this.#socket = socket;
    return socket;
  }

  #fail(err: Error): void {
    const p = this.#pending;
    if (!p) return;
    this.#pending = null;
    clearTimeout(p.timer);
    this.close();
    p.reject(err);
  }

  #onData(d: Buffer): void {
    if (this.#buf.length === 0) this.#firstByteAt = performance.now();
    this.#buf = this.#buf.length === 0 ? d : Buffer.concat([this.#buf, d]);
    const headEnd = this.#buf.indexOf('\r\n\r\n');
    if (headEnd < 0) return;
    const head = this.#buf.toString('latin1', 0, headEnd);
    const m = /content-length:\s*(\d+)/i.exec(head);
    if (!m) return this.#fail(new Error(`an answer without Content-Length: ${head.split('\r\n')[0]}`));
    const total = headEnd + 4 + Number(m[1]);
    if (this.#buf.length < total) return;
    const doneAt = performance.now();
    const status = Number(head.slice(9, 12));
    const body = this.#buf.subarray(headEnd + 4, total);
    this.#buf = this.#buf.subarray(total);
    const p = this.#pending;
    this.#pending = null;
    if (!p) return;
    clearTimeout(p.timer);
    if (/\r\nconnection:\s*close/i.test(head)) this.close();
    p.resolve({ status, body, firstByteAt: this.#firstByteAt, doneAt });
  }
}
