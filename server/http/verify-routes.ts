// POST /api/verify: a media file as the body (any type, up to verify.upload.bytes) →
// whether it carries this server's watermark, the render it names, and whether its
// manifest is genuine. Mounted before the JSON parser, and with no body parser: the
// body is streamed to a file here.
//
// Nothing of the body is read before the address's rate, the declared size and the
// process-wide gate have let it through: an upload that waits or is refused holds
// only what the kernel and Node's parser buffer (tens of kB), never the file. The one
// being checked is written to a file under tmpDir with a hard cap (chunked bodies
// included), and that file is removed on every path out.
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Router, type Request, type Response } from 'express';
import { verifyMedia, VerifyError, type VerifyDeps, type VerifyResult } from '../clips/verify.ts';
import type { Limits } from '../limits/limits.ts';
import { HttpError } from './http-error.ts';

/** What a turn is guessed to take before one has been measured (upload, decode and search). */
const FIRST_TURN_ESTIMATE_MS = 5_000;
/** How often a waiting upload is asked whether its client is still there. */
const WAITING_PROBE_MS = 1_000;
/** After a refusal with the body unread: how long, and how much, is dropped before the connection is closed. */
const LINGER_MS = 2_000;
const LINGER_BYTES = 8 * 2 ** 20;

export function verifyRoute(deps: VerifyDeps, limits: Limits): Router {
  const router = Router();
  const gate = new TurnGate(limits.cap('verify.running.process'), limits.cap('verify.waiting.process'));
  const maxBytes = limits.cap('verify.upload.bytes');
  const onDisk = new UploadFiles();

  router.post('/', async (req, res) => {
    const verdict = await limits.take(['verify.address'], { address: limits.addressOf(req) });
    if (!verdict.ok) throw unread(req, res, HttpError.limited(verdict.limit, verdict.retryAfterMs));
    const declared = declaredLength(req);
    if (declared !== null && declared > maxBytes) throw unread(req, res, tooLarge(maxBytes));
    if (declared === 0 || (declared === null && req.headers['transfer-encoding'] === undefined)) {
      throw unread(req, res, new HttpError('bad_request', 'send the media file as the request body'));
    }

    // Aborts when the client goes away before its answer: a place in line is given up,
    // an upload or a decode stops.
    const gone = new AbortController();
    res.once('close', () => {
      if (!res.writableFinished) gone.abort(new ClientGoneError());
    });
    // Gone already, while the limit was taken.
    if (res.destroyed) return;

    // A waiting upload's socket is not read, so a client that leaves the line would go
    // unnoticed until its turn; an interim 102 written every so often meets the closed
    // socket and ends the wait. (HTTP/1.0 has no interim answers.)
    const probe = req.httpVersion === '1.0' ? null : setInterval(() => res.writeProcessing(), WAITING_PROBE_MS);
    let endTurn: () => void;
    try {
      endTurn = await gate.enter(gone.signal);
    } catch (err) {
      if (err instanceof GateFullError) throw unread(req, res, HttpError.limited('verify.waiting.process', err.retryAfterMs, 503));
      if (gone.signal.aborted) return;
      throw err;
    } finally {
      clearInterval(probe ?? undefined);
    }
    const file = path.join(deps.tmpDir, `verify-${process.pid}-${crypto.randomBytes(8).toString('hex')}`);
    // When the connection goes (the client left, or a shutdown closed every connection at
    // its deadline) the file goes at once, in the same tick: a shutdown does not wait for
    // the pipeline to unwind, and an async removal could outlive the process.
    const removeNow = () => fs.rmSync(file, { force: true });
    gone.signal.addEventListener('abort', removeNow, { once: true });
    onDisk.add(file);
    let result: VerifyResult;
    try {
      const received = await receive(req, file, maxBytes, gone.signal);
      if (received === 0) throw new HttpError('bad_request', 'send the media file as the request body');
      result = await verifyMedia(deps, file, { signal: gone.signal });
    } catch (err) {
      // Nobody to answer.
      if (gone.signal.aborted) return;
      // The rest of a body cut short (by the cap, or a failed write) is dropped, not kept waiting.
      if (!req.complete) res.once('finish', () => linger(req));
      if (err instanceof UploadTooLargeError) throw tooLarge(maxBytes);
      if (err instanceof VerifyError) throw new HttpError(err.code === 'not_media' ? 'bad_request' : 'not_ready', err.message);
      throw err;
    } finally {
      gone.signal.removeEventListener('abort', removeNow);
      try {
        await fsp.rm(file, { force: true });
      } finally {
        onDisk.delete(file);
        endTurn();
      }
    }
    // After the file is gone and the turn passed on.
    res.json(result);
  });
  return router;
}

/**
 * A refusal sent while (some of) the body is still unread. Closing at once would often
 * reset the connection under a client still sending, and many clients then report the
 * failed write and never read the answer (its status, its Retry-After). So what still
 * comes is read and dropped, nothing kept, for a short while after the answer, and the
 * connection is closed if the body has not ended by then (nginx's "lingering close").
 */
function unread(req: Request, res: Response, err: HttpError): HttpError {
  res.once('finish', () => linger(req));
  return err;
}

function linger(req: Request): void {
  if (req.complete || req.destroyed) return;
  let dropped = 0;
  const close = () => {
    clearTimeout(timer);
    req.socket.destroy();
  };
  const timer = setTimeout(close, LINGER_MS);
  req.on('data', (chunk: Buffer) => {
    dropped += chunk.length;
    if (dropped > LINGER_BYTES) close();
  });
  req.once('end', () => clearTimeout(timer));
  req.once('close', () => clearTimeout(timer));
  req.resume();
}

function tooLarge(maxBytes: number): HttpError {
  return new HttpError('payload_too_large', `a file to check is at most ${Math.floor(maxBytes / 2 ** 20)} MB (limit verify.upload.bytes)`, { limit: 'verify.upload.bytes' });
}

/** Content-Length as a number, or null when the body is chunked (Node's parser has checked the header's form). */
function declaredLength(req: Request): number | null {
  const raw = req.headers['content-length'];
  if (raw === undefined || req.headers['transfer-encoding'] !== undefined) return null;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}

/** Streams the body into a new file at `file`, refusing it as soon as it passes `maxBytes`; answers the bytes written. */
async function receive(req: Request, file: string, maxBytes: number, signal: AbortSignal): Promise<number> {
  // Created before the pipeline starts, so that the caller's rm() never races an open that comes later.
  const handle = await fsp.open(file, 'wx', 0o600);
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) done(new UploadTooLargeError());
      else done(null, chunk);
    },
  });
  // Not `pipeline(req, …)`: a failed pipeline destroys its source, and destroying the
  // request destroys the socket before the 413 can go out. On a failure the request is
  // unpiped and stays paused, and the connection closes after the answer.
  req.pipe(counter);
  try {
    await pipeline(counter, handle.createWriteStream(), { signal });
  } finally {
    req.unpipe(counter);
  }
  return bytes;
}

/**
 * The uploads on disk now, removed at the process's exit too: the entry point exits as
 * soon as the server has closed, and the server counts a connection closed before its
 * request has heard of it. The exit listener is there only while a file is.
 */
class UploadFiles {
  readonly #files = new Set<string>();
  readonly #removeAll = () => {
    for (const f of this.#files) fs.rmSync(f, { force: true });
  };

  add(file: string): void {
    if (this.#files.size === 0) process.on('exit', this.#removeAll);
    this.#files.add(file);
  }

  delete(file: string): void {
    if (this.#files.delete(file) && this.#files.size === 0) process.off('exit', this.#removeAll);
  }
}

class UploadTooLargeError extends Error {
  override readonly name = 'UploadTooLargeError';
}

class ClientGoneError extends Error {
  override readonly name = 'ClientGoneError';
  constructor() {
    super('the client went away');
  }
}

class GateFullError extends Error {
  override readonly name = 'GateFullError';
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super('the line is full');
    this.retryAfterMs = retryAfterMs;
  }
}

/**
 * At most `maxRunning` turns at once and `maxWaiting` in line for one, first come first
 * served; one that finds the line full is refused at once with an estimate of when the
 * work ahead will be done. A place in line is given up when its signal aborts.
 */
class TurnGate {
  readonly maxRunning: number;
  readonly maxWaiting: number;
  #running = 0;
  readonly #line: { start(): void }[] = [];
  #turnMs = FIRST_TURN_ESTIMATE_MS;

  constructor(maxRunning: number, maxWaiting: number) {
    this.maxRunning = maxRunning;
    this.maxWaiting = maxWaiting;
  }

  /** Resolves when it is the caller's turn, with the function that ends it (call it once the work is done, on every path). */
  async enter(signal: AbortSignal): Promise<() => void> {
    signal.throwIfAborted();
    if (this.#running < this.maxRunning) {
      this.#running++;
    } else {
      if (this.#line.length >= this.maxWaiting) throw new GateFullError(((this.#running + this.#line.length) * this.#turnMs) / this.maxRunning);
      await new Promise<void>((resolve, reject) => {
        const place = {
          start: () => {
            signal.removeEventListener('abort', leave);
            resolve();
          },
        };
        const leave = () => {
          const i = this.#line.indexOf(place);
          if (i >= 0) this.#line.splice(i, 1);
          reject(signal.reason as Error);
        };
        signal.addEventListener('abort', leave, { once: true });
        this.#line.push(place);
      });
    }
    const startedAt = performance.now();
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      this.#turnMs = 0.7 * this.#turnMs + 0.3 * (performance.now() - startedAt);
      // The turn passes straight to the next in line, so that no newcomer slips in between.
      const next = this.#line.shift();
      if (next) next.start();
      else this.#running--;
    };
  }
}
