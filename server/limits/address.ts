// Where a request comes from, for the limits that belong to addresses. A proxy on
// this machine (loopback), and the ones TRUSTED_PROXIES names (a load balancer on
// another machine), are trusted to say who they forward (X-Forwarded-For, its
// rightmost address that is not itself a trusted proxy), as Express's `trust proxy`
// does for req.ip; nobody else is. IPv6 addresses count by their /64:
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

type Request = { headers: IncomingMessage['headers']; socket: { remoteAddress?: string | undefined } };

/** Which peers may name the client in X-Forwarded-For: loopback always, and the configured ranges. */
export class ProxyTrust {
  readonly #ranges: net.BlockList | null;

  /** `entries`: addresses or CIDR ranges ('10.0.0.0/8', 'fd00::/8'), checked by the config. */
  constructor(entries: readonly string[] = []) {
    if (entries.length === 0) {
      this.#ranges = null;
      return;
    }
    const ranges = new net.BlockList();
    for (const entry of entries) {
      const [address = '', bits] = entry.split('/');
      const family = net.isIPv4(address) ? 'ipv4' : 'ipv6';
      if (bits === undefined) ranges.addAddress(address, family);
      else ranges.addSubnet(address, Number(bits), family);
    }
    this.#ranges = ranges;
  }

  isTrusted(address: string): boolean {
    if (isLoopback(address)) return true;
    if (!this.#ranges) return false;
    let a = stripZone(address);
    if (a.startsWith('::ffff:') && net.isIPv4(a.slice(7))) a = a.slice(7);
    const family = net.isIPv4(a) ? 'ipv4' : net.isIPv6(a) ? 'ipv6' : null;
    return family !== null && this.#ranges.check(a, family);
  }

  /** The client's address as the limits see it: the peer, or what a trusted proxy forwarded. */
  addressOf(req: Request): string {
    return limitAddress(this.forwardedFor(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for']));
  }

  /** The hop a trusted proxy chain names as the client, else the peer itself. */
  forwardedFor(peer: string, header: string | string[] | undefined): string {
    if (!this.isTrusted(peer) || header === undefined) return peer;
    const hops = (Array.isArray(header) ? header.join(',') : header)
      .split(',')
      .map((h) => h.trim())
      .filter(Boolean);
    // Rightmost first: each trusted hop is a proxy of ours; the first other one is the client.
    for (let i = hops.length - 1; i >= 0; i--) {
      const hop = hops[i]!;
      if (net.isIP(stripZone(hop)) === 0) return peer;
      if (!this.isTrusted(hop)) return stripZone(hop);
    }
    return hops.length > 0 ? stripZone(hops[0]!) : peer;
  }
}

const LOOPBACK_ONLY = new ProxyTrust();

/** The client's address as the limits see it, trusting loopback proxies only. */
export function addressOf(req: Request): string {
  return LOOPBACK_ONLY.addressOf(req);
}

/** The hop a loopback proxy chain names as the client, else the peer itself. */
export function forwardedFor(peer: string, header: string | string[] | undefined): string {
  return LOOPBACK_ONLY.forwardedFor(peer, header);
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
