import { isIPv4, isIPv6 } from 'node:net';

/**
 * Matches client addresses against CIDR ranges (trusted proxies, later ACLs). IPv4-mapped IPv6
 * addresses (::ffff:1.2.3.4) are matched as IPv4, as Node reports them on dual-stack sockets.
 */
export class CidrSet {
  private v4: Array<[number, number]> = []; // [network, mask]
  private v6: Array<[bigint, bigint]> = [];

  constructor(cidrs: readonly string[]) {
    for (const c of cidrs) this.add(c);
  }

  get size(): number {
    return this.v4.length + this.v6.length;
  }

  add(cidr: string): void {
    const slash = cidr.indexOf('/');
    const ip = slash < 0 ? cidr : cidr.slice(0, slash);
    if (isIPv4(ip)) {
      const bits = slash < 0 ? 32 : Number(cidr.slice(slash + 1));
      if (!Number.isInteger(bits) || bits < 0 || bits > 32) throw new Error(`invalid CIDR "${cidr}"`);
      const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
      this.v4.push([(ipv4ToInt(ip) & mask) >>> 0, mask]);
    } else if (isIPv6(ip)) {
      const bits = slash < 0 ? 128 : Number(cidr.slice(slash + 1));
      if (!Number.isInteger(bits) || bits < 0 || bits > 128) throw new Error(`invalid CIDR "${cidr}"`);
      const mask = bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n);
      this.v6.push([ipv6ToBigInt(ip) & mask, mask]);
    } else {
      throw new Error(`invalid CIDR "${cidr}"`);
    }
  }

  has(address: string): boolean {
    const ip = unmapIPv4(address);
    if (isIPv4(ip)) {
      const n = ipv4ToInt(ip);
      for (const [net, mask] of this.v4) if (((n & mask) >>> 0) === net) return true;
      return false;
    }
    if (this.v6.length === 0 || !isIPv6(ip)) return false;
    const n = ipv6ToBigInt(ip);
    for (const [net, mask] of this.v6) if ((n & mask) === net) return true;
    return false;
  }
}

/** "::ffff:127.0.0.1" → "127.0.0.1"; anything else unchanged. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.indexOf('.') > 0 ? address.slice(7) : address;
}

function ipv4ToInt(ip: string): number {
  const p = ip.split('.');
  return ((Number(p[0]) << 24) | (Number(p[1]) << 16) | (Number(p[2]) << 8) | Number(p[3])) >>> 0;
}

function ipv6ToBigInt(ip: string): bigint {
  let text = ip;
  const zone = text.indexOf('%');
  if (zone >= 0) text = text.slice(0, zone);
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const lastColon = text.lastIndexOf(':');
  if (text.indexOf('.', lastColon) > 0) {
    const v4 = ipv4ToInt(text.slice(lastColon + 1));
    text = `${text.slice(0, lastColon + 1)}${(v4 >>> 16).toString(16)}:${(v4 & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array(8 - h.length - t.length).fill('0'), ...t];
  let n = 0n;
  for (const g of groups) n = (n << 16n) | BigInt(Number.parseInt(g, 16));
  return n;
}
