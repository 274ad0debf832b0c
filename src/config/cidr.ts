/**
 * CIDR blocks for `trustedProxies`: "10.0.0.0/8", "fd00::/8", or a bare IP meaning one host
 * (/32 or /128). The parsed form feeds a node:net BlockList directly.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ValueError } from './errors.js';

export interface Cidr {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
  /** Canonical text, always with the prefix: "10.1.2.3/32". */
  text: string;
}

const EXPECTED = 'an IP address or CIDR block like "10.0.0.0/8" or "fd00::/8"';

export function parseCidr(text: string): Cidr {
  if (typeof text !== 'string') throw new ValueError(EXPECTED, text);
  const slash = text.indexOf('/');
  const address = (slash < 0 ? text : text.slice(0, slash)).toLowerCase();
  const family = isIPv4(address) ? 'ipv4' : isIPv6(address) ? 'ipv6' : undefined;
  if (!family) throw new ValueError(EXPECTED, text);
  const max = family === 'ipv4' ? 32 : 128;
  const prefixText = slash < 0 ? String(max) : text.slice(slash + 1);
  const prefix = /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : Number.NaN;
  if (!(prefix <= max)) throw new ValueError(`${EXPECTED}, with a prefix length from 0 to ${max}`, text);
  return { address, prefix, family, text: `${address}/${prefix}` };
}
