import { BlockList, isIPv4, isIPv6 } from 'node:net';
import { parseCidr } from '../config/cidr.js';

/**
 * A set of CIDR ranges (trusted proxies, later ACLs), matched by Node's native BlockList.
 * IPv4-mapped IPv6 addresses (::ffff:1.2.3.4) are matched as IPv4, as dual-stack sockets
 * report IPv4 clients that way.
 */
export class CidrSet {
  private readonly list = new BlockList();
  readonly size: number;

  constructor(cidrs: readonly string[]) {
    for (const text of cidrs) {
      const c = parseCidr(text);
      this.list.addSubnet(c.address, c.prefix, c.family);
    }
    this.size = cidrs.length;
  }

  has(address: string): boolean {
    const ip = unmapIPv4(address);
    if (isIPv4(ip)) return this.list.check(ip, 'ipv4');
    return isIPv6(ip) && this.list.check(ip, 'ipv6');
  }
}

/** "::ffff:127.0.0.1" → "127.0.0.1"; anything else unchanged. */
export function unmapIPv4(address: string): string {
  return address.startsWith('::ffff:') && address.indexOf('.') > 0 ? address.slice(7) : address;
}
