// Where a request comes from, for the limits that belong to addresses. A proxy on
// this machine (loopback) is trusted to say who it forwards (X-Forwarded-For, its
// rightmost address that is not itself loopback), as Express's `trust proxy:
// 'loopback'` does for req.ip; nothing else is. IPv6 addresses count by their /64:
// one subscriber usually holds a whole /64 and could take a new address per request.
import type { IncomingMessage } from 'node:http';
import net from 'node:net';

export function isLoopback(address: string): boolean {
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || (net.isIPv4(a) && a.startsWith('127.'));
}

/** The address a limit is keyed by (IPv4 as is, IPv6 by its /64), or 'unknown'. */
export function limitAddress(address: string | undefined | null): string {
  if (!address) return 'unknown';
  let a = address.trim();
  if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
  if (net.isIPv4(a)) return a;
  if (!net.isIPv6(a)) return 'unknown';
  return `${ipv6Groups(a).slice(0, 4).join(':')}::/64`;
}

/** The client's address as the limits see it: the peer, or what a loopback proxy forwarded. */
export function addressOf(req: { headers: IncomingMessage['headers']; socket: { remoteAddress?: string | undefined } }): string {
  const peer = req.socket.remoteAddress ?? '';
  return limitAddress(forwardedFor(peer, req.headers['x-forwarded-for']));
}

/** The hop a trusted (loopback) proxy chain names as the client, else the peer itself. */
export function forwardedFor(peer: string, header: string | string[] | undefined): string {
  if (!isLoopback(peer) || header === undefined) return peer;
  const hops = (Array.isArray(header) ? header.join(',') : header)
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  // Rightmost first: each loopback hop is a trusted proxy of ours; the first other one is the client.
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = hops[i]!;
    if (net.isIP(stripZone(hop)) === 0) return peer;
    if (!isLoopback(hop)) return stripZone(hop);
  }
  return hops.length > 0 ? stripZone(hops[0]!) : peer;
}

function stripZone(a: string): string {
  const i = a.indexOf('%');
  return i < 0 ? a : a.slice(0, i);
}

function ipv6Groups(a: string): string[] {
  const [head, tail] = stripZone(a).split('::') as [string, string | undefined];
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  // An embedded IPv4 tail takes two groups.
  const last = right.length ? right : left;
  if (last.length && net.isIPv4(last[last.length - 1]!)) {
    const [x, y, z, w] = last.pop()!.split('.').map(Number) as [number, number, number, number];
    last.push(((x << 8) | y).toString(16), ((z << 8) | w).toString(16));
  }
  const missing = tail === undefined ? 0 : 8 - left.length - right.length;
  return [...left, ...Array<string>(missing).fill('0'), ...right].map((g) => parseInt(g, 16).toString(16));
}
