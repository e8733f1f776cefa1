// Serving an object over HTTP through the node (the proxied download): one code path
// for local files and S3, with single byte ranges (players and download managers
// resume with them) and HEAD. The length is always sent, and a body that breaks off
// (the store goes away halfway) aborts the response instead of ending it, so a client
// never takes a cut-off file for a whole one.
import type { IncomingMessage, ServerResponse } from 'node:http';
import { pipeline } from 'node:stream/promises';
import { BlobNotFoundError, type BlobStore, type ByteRange } from './blob-store.ts';

export interface SendBlobOptions {
  contentType: string;
  /** The whole Content-Disposition value (e.g. contentDisposition() of server/clips/download-name.ts). */
  contentDisposition?: string;
  cacheControl?: string;
}

/** Outcome of parsing a Range header against an object's size. */
export type RangeRequest = { kind: 'whole' } | { kind: 'range'; range: Required<ByteRange> } | { kind: 'unsatisfiable' };

/**
 * One `bytes=` range (first-last, first-, or -suffix). Several ranges, other units
 * or a malformed header are answered with the whole object, as RFC 9110 allows.
 */
export function parseRange(header: string | undefined, size: number): RangeRequest {
  if (!header) return { kind: 'whole' };
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return { kind: 'whole' };
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) return { kind: 'unsatisfiable' };
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return { kind: 'whole' };
  }
  if (!Number.isSafeInteger(start) || start >= size) return { kind: 'unsatisfiable' };
  return { kind: 'range', range: { start, end } };
}

/**
 * Answers `req` with the object `key`: 200 with the whole object, 206 with one
 * range, 416 for a range past the end. Throws BlobNotFoundError (the caller's 404)
 * and the store's errors before anything is sent. Once the headers are out, a
 * failing body destroys the response, and the answer is false (for the caller's
 * log); true when the whole body went out.
 */
export async function sendBlob(req: IncomingMessage, res: ServerResponse, blobs: BlobStore, key: string, options: SendBlobOptions): Promise<boolean> {
  const head = await blobs.head(key);
  if (!head) throw new BlobNotFoundError(key);
  const wanted = parseRange(typeof req.headers.range === 'string' ? req.headers.range : undefined, head.size);
  res.setHeader('accept-ranges', 'bytes');
  res.setHeader('content-type', options.contentType);
  if (options.contentDisposition) res.setHeader('content-disposition', options.contentDisposition);
  if (options.cacheControl) res.setHeader('cache-control', options.cacheControl);
  if (wanted.kind === 'unsatisfiable') {
    res.statusCode = 416;
    res.setHeader('content-range', `bytes */${head.size}`);
    res.end();
    return true;
  }
  if (req.method === 'HEAD' || head.size === 0) {
    res.statusCode = 200;
    res.setHeader('content-length', String(head.size));
    res.end();
    return true;
  }
  const body = await blobs.read(key, wanted.kind === 'range' ? wanted.range : undefined);
  if (wanted.kind === 'range') {
    res.statusCode = 206;
    res.setHeader('content-range', `bytes ${wanted.range.start}-${wanted.range.start + body.length - 1}/${body.size}`);
  } else {
    res.statusCode = 200;
  }
  res.setHeader('content-length', String(body.length));
  try {
    await pipeline(body.stream, res);
    return true;
  } catch (err) {
    // The client left, or the store's body broke off: either way the response ends unfinished.
    body.stream.destroy();
    res.destroy(err as Error);
    return false;
  }
}
