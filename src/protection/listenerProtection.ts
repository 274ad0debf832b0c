/**
 * A listener's protection, as its front asks for it: who may connect (deny list, connections per
 * client), and whether a request may go on (rate limit per client key, size limits). Every
 * refusal is counted by reason for the metrics. Allow-listed addresses are never limited.
 */

import { isDeepStrictEqual } from 'node:util';
import type { ProtectionConfig, RateLimitConfig } from '../config/types.js';
import { CidrSet } from '../core/cidr.js';
import type { Logger } from '../core/log.js';
import { DEFAULT_DETECTOR, Detector } from './detector.js';
import { RateLimiter } from './rateLimiter.js';
import { cookieValue, RateRule, type SharedSettings } from './rateRule.js';
import type { SharedWindowCounter } from './sharedCounter.js';
import { SurgeDetector } from './surge.js';
import { TopTalkers } from './topTalkers.js';

/** What protection reads of a request (an HTTP/1.1 head or an HTTP/2 stream's headers). */
export interface RequestFacts {
  readonly target: string;
  readonly contentLength: number;
  /** Header fields: lowercase names and their values, `count` of them. */
  readonly count: number;
  readonly names: readonly string[];
  readonly values: readonly string[];
}

/** Why a connection or a request was refused. */
export type RejectReason =
  | 'deny'
  | 'blocked'
  | 'connections'
  | 'rate'
  | 'body-size'
  | 'url-length'
  | 'slow-body'
  | 'surge'
  | 'shared-down'
  | 'connection-rate'
  | 'packets';

/** How often idle rate-limit entries are forgotten (ms). */
const SWEEP_MS = 10_000;

export class ListenerProtection {
  readonly config: ProtectionConfig;
  /** Refusals so far, by reason (carried over a reload). */
  readonly rejected: Record<RejectReason, number>;
  /** Most header fields a request may have (431 beyond), when limited. */
  readonly maxHeaders: number | undefined;
  readonly maxBodySize: number | undefined;
  /** Bytes per second a request body must keep up (408 below), when set. */
  readonly bodyMinRate: number | undefined;
  private readonly allow: CidrSet | null;
  private readonly deny: CidrSet | null;
  private readonly perClient: number | undefined;
  /** New connections per client address, when `connections.rate`. */
  private readonly connectionRate: RateLimiter | null;
  /** udp: datagrams per client address, when `packets`. */
  private readonly packetRate: RateLimiter | null;
  /** The listener's rate limit, when `rateLimit`. */
  readonly rule: RateRule | null;
  /** Per route (by index): its own rate limit, or the listener's. */
  private readonly routeRules: ReadonlyArray<RateRule | null>;
  /** The rule of the last request refused for its rate (for the 429's fields). */
  private lastRule: RateRule | null = null;
  private readonly maxUrlLength: number | undefined;
  /** Open connections per client address (carried over a reload). */
  private readonly open: Map<string, number>;
  private lastSweep = 0;
  /** Abnormal-traffic detection, when `detect.enabled` (kept across a reload that keeps it). */
  readonly detector: Detector | null;
  /** The tokens left after the last `checkRequest` (for the RateLimit header). */
  private readonly left = { value: 0 };
  /** ms until the client's next token, after a 429. */
  retryAfterMs = 0;
  /** Why the last request `checkRequest` refused was refused (for the access log). */
  lastReason: RejectReason | null = null;
  /** Who sends the most, when detection (which keeps its own tallies) is off. */
  private readonly talkers: TopTalkers | null;
  /** Listener-wide surge shedding, when `surge.enabled` (kept across a reload that keeps it). */
  readonly surge: SurgeDetector | null;
  /** Cookies that mark a client as known during a surge: `surge.sessionCookies` and the pools' sticky cookies. */
  private keep: string[] = [];

  /**
   * `listener` and `log` name the shared counters and report their state, when `shared` is set;
   * `previous`: the instance this one replaces on a reload (counts, blocks and shared counters
   * carry over where the settings allow); `routes`: each route's own rate limit, if any.
   */
  constructor(
    config: ProtectionConfig,
    listener: string,
    log: Logger,
    previous?: ListenerProtection,
    routes: ReadonlyArray<RateLimitConfig | undefined> = [],
  ) {
    this.config = config;
    this.allow = config.allow.length > 0 ? new CidrSet(config.allow) : null;
    this.deny = config.deny.length > 0 ? new CidrSet(config.deny) : null;
    const c = config.connections;
    this.perClient = c?.perClient;
    this.connectionRate = c?.rate === undefined ? null : new RateLimiter(c.rate, c.per, c.burst ?? c.rate);
    const pk = config.packets;
    this.packetRate = pk === undefined ? null : new RateLimiter(pk.rate, pk.per, pk.burst);
    const shared = (prefix: string): SharedSettings | null =>
      config.shared === undefined ? null : { url: config.shared, failClosed: config.failClosed, prefix, log };
    const r = config.rateLimit;
    this.rule =
      r === undefined ? null : new RateRule(r, 'default', shared(`fulcrum:rl:${listener}`), previous?.rule);
    this.routeRules = routes.map((rl, i) =>
      rl === undefined
        ? this.rule
        : new RateRule(
            rl,
            `route-${i}`,
            shared(`fulcrum:rl:${listener}:route-${i}`),
            previous?.routeRules[i],
          ),
    );
    if (previous !== undefined) {
      void previous.rule?.retire(this.rule);
      previous.routeRules.forEach((old, i) => {
        if (old !== previous.rule) void old?.retire(this.routeRules[i]);
      });
    }
    this.maxBodySize = config.limits?.maxBodySize;
    this.maxUrlLength = config.limits?.maxUrlLength;
    this.maxHeaders = config.limits?.maxHeaders;
    this.open = previous?.open ?? new Map();
    this.bodyMinRate = config.timeouts?.bodyMinRate;
    const d = config.detect;
    if (d === undefined || !d.enabled) this.detector = null;
    else if (previous?.detector != null && isDeepStrictEqual(previous.config.detect, d))
      this.detector = previous.detector;
    else
      this.detector = new Detector({
        ...DEFAULT_DETECTOR,
        blockFor: d.blockFor,
        window: d.window,
        sustain: d.sustain,
      });
    this.talkers = this.detector === null ? (previous?.talkers ?? new TopTalkers()) : null;
    const sg = config.surge;
    if (sg === undefined || !sg.enabled) this.surge = null;
    else if (previous?.surge != null && isDeepStrictEqual(previous.config.surge, sg))
      this.surge = previous.surge;
    else this.surge = new SurgeDetector(sg);
    this.keep = sg?.sessionCookies ?? [];
    this.rejected = previous?.rejected ?? {
      deny: 0,
      blocked: 0,
      connections: 0,
      rate: 0,
      'body-size': 0,
      'url-length': 0,
      'slow-body': 0,
      surge: 0,
      'shared-down': 0,
      'connection-rate': 0,
      packets: 0,
    };
  }

  /**
   * The sticky cookies of the pools this listener routes to: during a surge, a client holding one
   * is served like a client holding one of `surge.sessionCookies`.
   */
  keepCookies(names: readonly string[]): void {
    const configured = this.config.surge?.sessionCookies ?? [];
    this.keep = [...new Set([...configured, ...names])];
  }

  /** The address is on the allow list: never limited. */
  allowed(ip: string): boolean {
    return this.allow?.has(ip) === true;
  }

  /**
   * A new connection from `ip`: false when it must be refused (blocked, denied, at its
   * `connections.perClient`, over its `connections.rate`); when admitted it counts until
   * `release(ip)`. `countAsTalker`: L4, where connections are what a client sends.
   */
  admit(ip: string, countAsTalker = false): boolean {
    const ok = this.admission(ip);
    if (countAsTalker) this.talkers?.hit(ip, !ok, Date.now());
    return ok;
  }

  private admission(ip: string): boolean {
    if (this.detector?.blockOf(ip, Date.now()) !== undefined && !this.allowed(ip)) {
      this.rejected.blocked++;
      return false;
    }
    if (this.deny?.has(ip) === true && !this.allowed(ip)) {
      this.rejected.deny++;
      return false;
    }
    const n = this.open.get(ip) ?? 0;
    if (this.perClient !== undefined && n >= this.perClient && !this.allowed(ip)) {
      this.rejected.connections++;
      return false;
    }
    if (this.connectionRate !== null && !this.allowed(ip)) {
      const now = Date.now();
      this.sweep(now);
      if (this.connectionRate.take(ip, now) !== 0) {
        this.rejected['connection-rate']++;
        return false;
      }
    }
    this.open.set(ip, n + 1);
    return true;
  }

  /**
   * udp: whether a datagram from `ip` may go on (not denied, within `packets`); a refused one is
   * dropped by the listener.
   */
  packet(ip: string, now: number): boolean {
    let ok = true;
    if (this.deny?.has(ip) === true && !this.allowed(ip)) {
      this.rejected.deny++;
      ok = false;
    } else if (this.packetRate !== null && !this.allowed(ip)) {
      this.sweep(now);
      if (this.packetRate.take(ip, now) !== 0) {
        this.rejected.packets++;
        ok = false;
      }
    }
    this.talkers?.hit(ip, !ok, now);
    return ok;
  }

  /** A connection admitted by `admit(ip)` closed. */
  release(ip: string): void {
    const n = this.open.get(ip);
    if (n === undefined) return;
    if (n <= 1) this.open.delete(ip);
    else this.open.set(ip, n - 1);
  }

  /**
   * Whether a parsed request may go on: 0, or the status to answer (403 blocked, 414 target too
   * long, 413 body too large by its Content-Length, 503 a new client during a surge or shared
   * counters unreachable with `failClosed`, 429 over the rate, with `retryAfterMs` set).
   * `clientIp` is the client's address after trusted proxies.
   */
  checkRequest(req: RequestFacts, clientIp: string, now: number, route = -1): number {
    this.sweep(now);
    const detector = this.detector;
    if (detector !== null && detector.blockOf(clientIp, now) !== undefined && !this.allowed(clientIp)) {
      this.refusedFor('blocked');
      return 403;
    }
    if (this.maxUrlLength !== undefined && req.target.length > this.maxUrlLength) {
      this.refusedFor('url-length');
      return 414;
    }
    if (this.maxBodySize !== undefined && req.contentLength > this.maxBodySize) {
      this.refusedFor('body-size');
      return 413;
    }
    if (this.surge?.hit(now) === true && !this.known(req) && !this.allowed(clientIp)) {
      this.refusedFor('surge');
      return 503;
    }
    const rule = route < 0 ? this.rule : (this.routeRules[route] ?? this.rule);
    if (rule === null || this.allowed(clientIp)) return 0;
    const wait = rule.take(req, clientIp, now, this.left);
    if (wait < 0) {
      this.refusedFor('shared-down');
      return 503;
    }
    detector?.onRate(clientIp, wait !== 0, now);
    this.talkers?.hit(clientIp, wait !== 0, now);
    if (wait === 0) return 0;
    this.lastRule = rule;
    this.retryAfterMs = wait;
    this.refusedFor('rate');
    return 429;
  }

  private refusedFor(reason: RejectReason): void {
    this.rejected[reason]++;
    this.lastReason = reason;
  }

  /** The clients that sent the most lately, most first (detection's tallies when it is on). */
  topTalkers(
    n: number,
    now: number,
  ): Array<{ ip: string; requests: number; refused: number; errors: number }> {
    return this.detector?.top(n) ?? this.talkers?.top(n, now) ?? [];
  }

  /** Clients blocked by detection now. */
  blockedCount(now: number): number {
    return this.detector?.blocks(now).length ?? 0;
  }

  /** Rate counts shared through Redis, when `shared` (the listener's rate limit's). */
  get shared(): SharedWindowCounter | null {
    return this.rule?.shared ?? null;
  }

  /** Stops what runs in the background (shared counters). */
  async close(): Promise<void> {
    await Promise.all([this.rule, ...this.routeRules].map((r) => r?.retire(null)));
  }

  /** `clientIp` got an answer with `status` (detection judges error ratios). */
  onAnswer(clientIp: string, status: number, now: number): void {
    if (this.detector !== null && !this.allowed(clientIp)) this.detector.onAnswer(clientIp, status, now);
  }

  /** Forgets idle rate buckets and detection tallies now and then. */
  sweep(now: number): void {
    if (now - this.lastSweep < SWEEP_MS) return;
    this.lastSweep = now;
    this.rule?.limiter.sweep(now);
    this.connectionRate?.sweep(now);
    this.packetRate?.sweep(now);
    for (const r of this.routeRules) if (r !== this.rule) r?.limiter.sweep(now);
    this.detector?.sweep(now);
  }

  /** A request body grew past `limits.maxBodySize` while streaming (chunked). */
  bodyTooLarge(): void {
    this.rejected['body-size']++;
  }

  /**
   * Whether a body of `bytes` after `elapsedMs` is too slow: below `bodyMinRate`, with the first
   * second's worth allowed as slack (a client starts, a window fills).
   */
  bodyTooSlow(bytes: number, elapsedMs: number): boolean {
    const rate = this.bodyMinRate;
    if (rate === undefined || bytes >= (rate * (elapsedMs - 1000)) / 1000) return false;
    this.rejected['slow-body']++;
    return true;
  }

  /**
   * The header lines of a 429 (each ending in CRLF): Retry-After, and the quota in the form of
   * the IETF RateLimit fields draft (`RateLimit-Policy` and `RateLimit`).
   */
  rateHeaders(): string {
    const rule = this.lastRule!;
    const r = rule.limiter;
    const seconds = Math.max(1, Math.ceil(this.retryAfterMs / 1000));
    const window = Math.max(1, Math.round(r.perMs / 1000));
    return (
      `retry-after: ${seconds}\r\n` +
      `ratelimit-policy: "${rule.name}";q=${r.requests};w=${window}\r\n` +
      `ratelimit: "${rule.name}";r=${this.left.value};t=${seconds}\r\n`
    );
  }

  /** The request carries one of the cookies that mark a known client (its session, its server). */
  private known(req: RequestFacts): boolean {
    const keep = this.keep;
    if (keep.length === 0) return false;
    for (let i = 0; i < req.count; i++) {
      if (req.names[i] !== 'cookie') continue;
      const header = req.values[i]!;
      for (const name of keep) if ((cookieValue(header, name) ?? '') !== '') return true;
    }
    return false;
  }
}
