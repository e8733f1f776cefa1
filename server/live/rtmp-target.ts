// Where a room's RTMP push may go. The host types a URL and a stream key; the server connects
// there itself, so an unchecked URL would let anyone with a host token make the server knock
// on its own loopback, the private network or a cloud metadata address (a scanner). Only
// rtmp:// and rtmps:// are accepted, and every address the host name resolves to must be a
// public unicast one, unless the operator allows private ingests (RTMP_ALLOW_PRIVATE=1, e.g.
// an nginx-rtmp next to the server, or the tests).
//
// DNS rebinding: a name that answered a public address to this check could answer a private
// one to ffmpeg a moment later. So the name is resolved once, here, and the push connects to
// the checked address literal (RtmpTarget.address); the original host name goes to the
// ingest only inside the RTMP connect command's tcUrl (what virtual-hosted ingests look at)
// and, for rtmps, as the TLS server name (see rtmp-push.ts: the TLS is Node's, not ffmpeg's).
import dns from 'node:dns/promises';
import net from 'node:net';

export interface RtmpTarget {
  /** The URL as given, with the stream key as its last path segment (never log it). */
  url: URL;
  /** What the host and the logs see: scheme, host, port and application, never the key. */
  display: string;
  tls: boolean;
  /** The host name (or address literal) as given, without brackets. */
  host: string;
  /** The checked address to connect to (IPv4 or IPv6 literal, no brackets). */
  address: string;
  port: number;
  /** The RTMP application: the URL's path without its leading '/', e.g. 'live2' or 'app/instance'. */
  app: string;
  /** The stream key (RTMP's publish name). */
  key: string;
  /** The connect command's tcUrl: scheme://host[:port]/app, with the host as given. */
  tcUrl: string;
}

export interface RtmpTargetOptions {
  /** Allow loopback and private addresses (RTMP_ALLOW_PRIVATE=1). */
  allowPrivate: boolean;
  /** Resolves a host name to all its addresses (dns.lookup with all: true when omitted; tests inject one). */
  lookup?: (host: string) => Promise<string[]>;
}

/** A URL or key the server will not push to; the message is for the host and never contains the key. */
export class RtmpTargetError extends Error {
  override readonly name = 'RtmpTargetError';
}

export const RTMP_KEY_MAX_CHARS = 512;
const RTMP_URL_MAX_CHARS = 2048;
const DEFAULT_PORTS: Record<string, number> = { 'rtmp:': 1935, 'rtmps:': 443 };

/**
 * Checks an ingest URL and stream key and resolves the host. Refuses (RtmpTargetError) a scheme
 * other than rtmp/rtmps, user info, a query or fragment in the URL, port 0, a key that is empty,
 * too long or holds whitespace, control characters, '/' or '#', and a host any of whose addresses
 * is not public (unless allowPrivate).
 */
export async function checkRtmpTarget(url: string, key: string, opts: RtmpTargetOptions): Promise<RtmpTarget> {
  if (typeof url !== 'string' || url.trim().length === 0) throw new RtmpTargetError('the RTMP URL is missing');
  url = url.trim();
  if (url.length > RTMP_URL_MAX_CHARS) throw new RtmpTargetError(`the RTMP URL is longer than ${RTMP_URL_MAX_CHARS} characters`);
  checkKey(key);
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]?.toLowerCase();
  if (scheme !== 'rtmp' && scheme !== 'rtmps') {
    throw new RtmpTargetError(`only rtmp:// and rtmps:// URLs can be pushed to${scheme ? ` (not ${scheme}://)` : ''}`);
  }
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RtmpTargetError('the RTMP URL cannot be read (expected rtmp://host[:port]/app)');
  }
  if (parsed.username || parsed.password) throw new RtmpTargetError('the RTMP URL must not carry a user name or password');
  if (parsed.search || parsed.hash) throw new RtmpTargetError('the RTMP URL must not have a query (?) or fragment (#); the stream key goes in its own field');
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  if (!host) throw new RtmpTargetError('the RTMP URL has no host');
  if (!net.isIP(host) && !/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$/i.test(host)) {
    throw new RtmpTargetError('the RTMP URL\'s host is not a valid host name or address');
  }
  // A non-special scheme's URL keeps the port as written; new URL already refused > 65535.
  const port = parsed.port === '' ? DEFAULT_PORTS[parsed.protocol]! : Number(parsed.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RtmpTargetError('the RTMP URL\'s port must be from 1 to 65535');
  const app = decodePath(parsed.pathname);

  const addresses = net.isIP(host) ? [host] : await resolve(host, opts.lookup);
  for (const address of addresses) {
    const why = nonPublicReason(address);
    // allowPrivate opens loopback and private networks; an unspecified, multicast or broadcast
    // address is never an ingest (0.0.0.0 would even reach this machine's own ports).
    if (why && (!opts.allowPrivate || /unspecified|multicast|broadcast/.test(why))) {
      const named = address === host ? host : `${host} (${address})`;
      throw new RtmpTargetError(`the RTMP URL points at ${named}, ${why}: the server does not push to non-public addresses`);
    }
  }
  const tls = parsed.protocol === 'rtmps:';
  const hostPart = net.isIPv6(host) ? `[${host}]` : host;
  const portPart = parsed.port === '' ? '' : `:${port}`;
  const base = `${parsed.protocol}//${hostPart}${portPart}/${app}`;
  const withKey = new URL(`${base}/${encodeURIComponent(key)}`);
  return { url: withKey, display: base, tls, host, address: addresses[0]!, port, app, key, tcUrl: base };
}

function checkKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0) throw new RtmpTargetError('the stream key is missing');
  if (key.length > RTMP_KEY_MAX_CHARS) throw new RtmpTargetError(`the stream key is longer than ${RTMP_KEY_MAX_CHARS} characters`);
  // Printable ASCII without space. '?', '&' and '=' stay allowed: Facebook's keys carry
  // parameters after a '?', and the key reaches ffmpeg as its own option, not inside a URL.
  if (!/^[\x21-\x7e]+$/.test(key)) throw new RtmpTargetError('the stream key may hold only printable characters, without spaces');
  if (/[/#\\]/.test(key)) throw new RtmpTargetError('the stream key must not contain /, \\ or #');
}

function decodePath(pathname: string): string {
  let app: string;
  try {
    app = decodeURIComponent(pathname).replace(/^\/+|\/+$/g, '');
  } catch {
    throw new RtmpTargetError('the RTMP URL\'s path cannot be read');
  }
  if (!app) throw new RtmpTargetError('the RTMP URL has no application (e.g. rtmp://a.rtmp.youtube.com/live2)');
  if (!/^[\x21-\x7e]+$/.test(app) || /[?#\\]|\/\/|(^|\/)\.\.?(\/|$)/.test(app)) throw new RtmpTargetError('the RTMP URL\'s application holds characters an ingest does not take');
  return app;
}

async function resolve(host: string, lookup: RtmpTargetOptions['lookup']): Promise<string[]> {
  let addresses: string[];
  try {
    addresses = lookup ? await lookup(host) : (await dns.lookup(host, { all: true, verbatim: true })).map((a) => a.address);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new RtmpTargetError(`the RTMP host ${host} could not be resolved${code ? ` (${code})` : ''}`);
  }
  addresses = addresses.filter((a) => net.isIP(a) !== 0);
  if (addresses.length === 0) throw new RtmpTargetError(`the RTMP host ${host} has no address`);
  return addresses;
}

// [first address, prefix length, why] — everything that is not public unicast.
const V4_REFUSED: [string, number, string][] = [
  ['0.0.0.0', 8, 'an unspecified ("this network") address'],
  ['10.0.0.0', 8, 'a private address'],
  ['100.64.0.0', 10, 'a carrier-grade NAT (shared) address'],
  ['127.0.0.0', 8, 'a loopback address'],
  ['169.254.0.0', 16, 'a link-local address'],
  ['172.16.0.0', 12, 'a private address'],
  ['192.0.0.0', 24, 'a reserved (IETF protocol) address'],
  ['192.0.2.0', 24, 'a documentation address'],
  ['192.88.99.0', 24, 'a reserved (6to4 relay) address'],
  ['192.168.0.0', 16, 'a private address'],
  ['198.18.0.0', 15, 'a reserved (benchmarking) address'],
  ['198.51.100.0', 24, 'a documentation address'],
  ['203.0.113.0', 24, 'a documentation address'],
  ['224.0.0.0', 4, 'a multicast address'],
  ['240.0.0.0', 4, 'a reserved or broadcast address'],
];

/** Why `address` (an IP literal) is not a public unicast address, or null when it is. */
export function nonPublicReason(address: string): string | null {
  if (net.isIPv4(address)) return v4Reason(v4ToInt(address));
  if (!net.isIPv6(address)) return 'not an IP address';
  const v6 = v6ToBigInt(address);
  const low32 = Number(v6 & 0xffffffffn);
  const inside = (prefix: string, bits: number) => v6 >> BigInt(128 - bits) === v6ToBigInt(prefix) >> BigInt(128 - bits);
  if (v6 === 0n) return 'an unspecified address';
  if (v6 === 1n) return 'a loopback address';
  // Forms that carry an IPv4 address are judged by the IPv4 address inside.
  if (inside('::ffff:0:0', 96)) return v4Reason(low32); // IPv4-mapped
  if (inside('::', 96)) return 'a reserved (IPv4-compatible) address'; // deprecated
  if (inside('::ffff:0:0:0', 96)) return v4Reason(low32); // IPv4-translated
  if (inside('64:ff9b::', 96)) return v4Reason(low32); // NAT64, well-known prefix
  if (inside('64:ff9b:1::', 48)) return 'a local-use NAT64 address';
  if (inside('2002::', 16)) return v4Reason(Number((v6 >> 80n) & 0xffffffffn)); // 6to4
  if (inside('ff00::', 8)) return 'a multicast address';
  if (inside('fc00::', 7)) return 'a private (unique local) address';
  if (inside('fe80::', 10)) return 'a link-local address';
  if (inside('fec0::', 10)) return 'a site-local address';
  if (!inside('2000::', 3)) return 'a reserved address'; // only 2000::/3 is global unicast
  if (inside('2001::', 23)) return 'a reserved (IETF protocol, Teredo) address';
  if (inside('2001:db8::', 32) || inside('3fff::', 20)) return 'a documentation address';
  return null;
}

function v4Reason(ip: number): string | null {
  for (const [first, bits, why] of V4_REFUSED) {
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    if (((ip & mask) >>> 0) === v4ToInt(first)) return why;
  }
  return null;
}

function v4ToInt(address: string): number {
  return address.split('.').reduce((acc, part) => ((acc << 8) | Number(part)) >>> 0, 0);
}

/** An IPv6 literal (validated by net.isIPv6; may end in a dotted IPv4 and carry a %zone) as a 128-bit number. */
function v6ToBigInt(address: string): bigint {
  let text = address.split('%')[0]!;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const n = v4ToInt(dotted[1]!);
    text = `${text.slice(0, -dotted[1]!.length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') as [string, string] : [text, null];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === null ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}
