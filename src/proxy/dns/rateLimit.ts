import { isIPv4 } from 'node:net';
import type { DnsRateLimitConfig } from '../../config/types.js';
import { unmapIPv4 } from '../../core/cidr.js';

/** Subnets tracked in one window at most: beyond, new subnets are limited (a spoofed flood). */
const MAX_SUBNETS = 100_000;

export const DEFAULT_RATE_LIMIT: DnsRateLimitConfig = {
  responses: 100,
  per: 1000,
  ipv4Prefix: 24,
  ipv6Prefix: 56,
};

/** What to do with one more response to a client. */
export enum Verdict {
  Send = 0,
  /** Over the limit: send nothing. */
  Drop = 1,
  /** Over the limit: send an empty truncated reply instead (every second one, like BIND's slip 2). */
  Slip = 2,
}

/**
 * Response-rate limiting per client subnet (UDP only, where the source can be spoofed): at most
 * `responses` answers per `per` to one /24 (IPv4) or /56 (IPv6), counted in fixed windows, so
 * the listener cannot be used to reflect and amplify traffic at a victim. Every second response
 * over the limit "slips" out as an empty TC reply: a real client in a flooded subnet still gets
 * through by retrying over TCP. The table is cleared each window, so its memory is bounded by
 * MAX_SUBNETS whatever the sources.
 */
export class ResponseRateLimiter {
  private counts = new Map<string, number>();
  private windowEnds = 0;
  /** Responses dropped or slipped since start. */
  limited = 0;

  constructor(private config: DnsRateLimitConfig) {}

  configure(config: DnsRateLimitConfig): void {
    this.config = config;
  }

  check(address: string, now: number): Verdict {
    const { responses, per } = this.config;
    if (responses === 0) return Verdict.Send;
    if (now >= this.windowEnds) {
      this.counts.clear();
      this.windowEnds = now + per;
    }
    const key = subnetKey(unmapIPv4(address), this.config);
    const seen = this.counts.get(key);
    if (seen === undefined && this.counts.size >= MAX_SUBNETS) {
      this.limited++;
      return Verdict.Drop;
    }
    const n = (seen ?? 0) + 1;
    this.counts.set(key, n);
    if (n <= responses) return Verdict.Send;
    this.limited++;
    return (n - responses) % 2 === 0 ? Verdict.Slip : Verdict.Drop;
  }
}

/** The client's subnet as text: the address with its host bits cleared, and the prefix length. */
export function subnetKey(
  address: string,
  config: Pick<DnsRateLimitConfig, 'ipv4Prefix' | 'ipv6Prefix'>,
): string {
  if (isIPv4(address)) {
    const parts = address.split('.').map(Number);
    const n = ((parts[0]! << 24) | (parts[1]! << 16) | (parts[2]! << 8) | parts[3]!) >>> 0;
    const prefix = config.ipv4Prefix;
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return `${(n & mask) >>> 0}/${prefix}`;
  }
  const groups = expandIPv6(address);
  const prefix = config.ipv6Prefix;
  let key = '';
  for (let i = 0; i < 8; i++) {
    const bits = Math.max(0, Math.min(16, prefix - i * 16));
    const mask = bits === 0 ? 0 : (0xffff << (16 - bits)) & 0xffff;
    key += `${(groups[i]! & mask).toString(16)}:`;
  }
  return `${key}/${prefix}`;
}

/** The eight 16-bit groups of an IPv6 address (zone index dropped). */
function expandIPv6(address: string): number[] {
  const text = address.split('%')[0]!;
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const parse = (part: string | undefined) =>
    part ? part.split(':').map((g) => Number.parseInt(g, 16) || 0) : [];
  const left = parse(head);
  const right = tail === undefined ? [] : parse(tail);
  const zeros = tail === undefined ? 0 : Math.max(0, 8 - left.length - right.length);
  return [...left, ...new Array<number>(zeros).fill(0), ...right].slice(0, 8);
}
