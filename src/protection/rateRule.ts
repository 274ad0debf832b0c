/**
 * One rate limit as a listener applies it: the listener's `protection.rateLimit`, or a route's
 * own. It keys requests (address, header or cookie), counts them in a token bucket per key, or in
 * fixed windows shared through Redis when the listener's protection is `shared`.
 */

import type { RateKey, RateLimitConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { RateLimiter } from './rateLimiter.js';
import { SharedWindowCounter } from './sharedCounter.js';

/** What a rule reads of a request's header fields. */
export interface HeaderFields {
  readonly count: number;
  readonly names: readonly string[];
  readonly values: readonly string[];
}

/** Where a rule's shared counts live, when the listener's counters are shared. */
export interface SharedSettings {
  url: string;
  failClosed: boolean;
  /** Names the rule's counters in Redis: balancers sharing them use the same. */
  prefix: string;
  log: Logger;
}

export class RateRule {
  readonly config: RateLimitConfig;
  /** The policy name in the RateLimit fields ("default" for the listener's, "route-N" for a route's). */
  readonly name: string;
  readonly limiter: RateLimiter;
  /** Counts shared through Redis (fixed windows of `per`), when the listener's are. */
  readonly shared: SharedWindowCounter | null;
  private readonly key: RateKey;
  private readonly settings: SharedSettings | null;

  /** `previous`: the rule this one replaces on a reload (its shared counter is kept when it fits). */
  constructor(
    config: RateLimitConfig,
    name: string,
    shared: SharedSettings | null,
    previous?: RateRule | null,
  ) {
    this.config = config;
    this.name = name;
    this.key = config.key;
    this.settings = shared;
    this.limiter = new RateLimiter(config.requests, config.per, config.burst);
    const prev = previous?.shared ?? null;
    if (shared === null) this.shared = null;
    else if (prev !== null && sameShared(previous!.settings, shared) && prev.windowMs === config.per)
      this.shared = prev;
    else
      this.shared = new SharedWindowCounter(
        shared.url,
        shared.prefix,
        config.per,
        shared.log,
        shared.failClosed,
      );
  }

  /**
   * Counts a request: 0 when it may go, else the ms until it may (over the rate); -1 when the
   * counts are shared, Redis is unreachable and `failClosed` says to refuse.
   * `left` receives the requests left in the quota.
   */
  take(req: HeaderFields, clientIp: string, now: number, left: { value: number }): number {
    const shared = this.shared;
    const key = this.keyOf(req, clientIp);
    if (shared === null) return this.limiter.take(key, now, left);
    if (this.settings!.failClosed && !shared.reachable) return -1;
    const count = shared.hit(key, now);
    left.value = Math.max(0, this.config.requests - count);
    return count <= this.config.requests ? 0 : shared.untilNextWindow(now);
  }

  /** Closes the shared counter unless `next` kept it. */
  async retire(next: RateRule | null | undefined): Promise<void> {
    if (this.shared !== null && next?.shared !== this.shared) await this.shared.close();
  }

  /** The key a request is counted under: its client address, a header, or a cookie. */
  private keyOf(req: HeaderFields, clientIp: string): string {
    const k = this.key;
    if (k.from === 'ip') return clientIp;
    for (let i = 0; i < req.count; i++) {
      const name = req.names[i]!;
      if (k.from === 'header') {
        if (name === k.name) return `h:${req.values[i]}`;
      } else if (name === 'cookie') {
        const value = cookieValue(req.values[i]!, k.name);
        if (value !== undefined) return `c:${value}`;
      }
    }
    // Without the header or cookie, the client is counted by its address.
    return clientIp;
  }
}

function sameShared(a: SharedSettings | null, b: SharedSettings): boolean {
  return a !== null && a.url === b.url && a.failClosed === b.failClosed && a.prefix === b.prefix;
}

/** The value of cookie `name` in a Cookie header, if present. */
export function cookieValue(header: string, name: string): string | undefined {
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}
