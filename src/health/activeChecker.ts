/**
 * Active health checks for one pool: every server is probed every `interval` (±10% jitter, so
 * that checks of many servers and many balancers do not align), and `fall` failures in a row take
 * an up server down, `rise` passes in a row bring a down server up, as in HAProxy. Servers an
 * administrator put in `draining` or `maintenance` are still probed, but their state is left alone.
 */
import type { HealthCheckConfig } from '../config/types.js';
import type { Pool } from '../core/pool.js';
import type { Server } from '../core/server.js';
import { probe } from './probe.js';

/** The last check of a server, for the admin API and the dashboard. */
export interface HealthStatus {
  /** When the last probe started (ms since epoch). */
  lastCheckAt: number;
  ok: boolean;
  /** Its reason: `status 200`, `connect ECONNREFUSED`, `timeout after 1000ms`, ... */
  lastResult: string;
  /** Probes in a row with this same outcome (passes when ok, failures otherwise). */
  consecutive: number;
  durationMs: number;
}

/** Largest deviation from `interval`, as a fraction of it. */
export const JITTER = 0.1;

/** Module-level: a server's record survives the checker being re-created on a reload. */
const statuses = new WeakMap<Server, HealthStatus>();
/** Servers the checks (or startDown) took down: the only ones released if checks are removed. */
const heldDown = new WeakSet<Server>();

export function healthOf(server: Server): Readonly<HealthStatus> | undefined {
  return statuses.get(server);
}

/** `interval` moved by up to ±JITTER of itself; `random` returns [0, 1). */
export function jittered(interval: number, random: () => number = Math.random): number {
  return interval * (1 + JITTER * (2 * random() - 1));
}

export interface ActiveCheckerOptions {
  /** Told after every probe (tests, future event stream). */
  onResult?: (server: Server, status: Readonly<HealthStatus>) => void;
  random?: () => number;
}

export class ActiveChecker {
  private readonly timers = new Map<Server, NodeJS.Timeout>();
  private readonly inflight = new Set<AbortController>();
  private stopped = false;
  private readonly pool: Pool;
  private readonly config: HealthCheckConfig;
  private readonly options: ActiveCheckerOptions;
  private readonly random: () => number;

  constructor(pool: Pool, config: HealthCheckConfig, options: ActiveCheckerOptions = {}) {
    this.pool = pool;
    this.config = config;
    this.options = options;
    this.random = options.random ?? Math.random;
  }

  /**
   * Takes `fresh` servers (never seen before) down when the pool asks to start them down, then
   * starts probing every server, each at a random point of the first interval.
   */
  start(fresh: readonly Server[]): void {
    if (this.config.startDown) {
      for (const s of fresh) {
        if (s.state !== 'up') continue;
        heldDown.add(s);
        this.pool.setState(s, 'down', `waiting for ${this.config.rise} passed checks`);
      }
    }
    for (const s of this.pool.servers) this.schedule(s, this.random() * this.config.interval);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    for (const c of this.inflight) c.abort();
    this.inflight.clear();
  }

  private schedule(server: Server, delay: number): void {
    const timer = setTimeout(() => void this.check(server), Math.max(0, delay));
    timer.unref();
    this.timers.set(server, timer);
  }

  private async check(server: Server): Promise<void> {
    this.timers.delete(server);
    // Removed from the pool by a reload whose PoolHealth has not replaced this one yet.
    if (!this.pool.servers.includes(server)) return;
    const startedAt = Date.now();
    const abort = new AbortController();
    this.inflight.add(abort);
    // The pool's TLS as it is now (a reload may have changed it).
    const result = await probe(server, this.config, abort.signal, this.pool.options.tls);
    this.inflight.delete(abort);
    if (this.stopped) return;
    this.record(server, startedAt, result.ok, result.reason, result.durationMs);
    // Measured from the start of this probe, so that slow answers do not stretch the interval.
    this.schedule(server, startedAt + jittered(this.config.interval, this.random) - Date.now());
  }

  private record(server: Server, at: number, ok: boolean, reason: string, durationMs: number): void {
    const prev = statuses.get(server);
    const consecutive = prev !== undefined && prev.ok === ok ? prev.consecutive + 1 : 1;
    const status: HealthStatus = { lastCheckAt: at, ok, lastResult: reason, consecutive, durationMs };
    statuses.set(server, status);
    const { rise, fall } = this.config;
    // Only up <-> down: draining and maintenance belong to the administrator.
    if (ok && server.state === 'down' && consecutive >= rise) {
      heldDown.delete(server);
      this.pool.setState(server, 'up', `${rise} passed checks`);
    } else if (!ok && server.state === 'up' && consecutive >= fall) {
      heldDown.add(server);
      this.pool.setState(server, 'down', `${fall} failed checks: ${reason}`);
    }
    this.options.onResult?.(server, status);
  }
}

/**
 * The pool no longer has an active check: servers the checks held down would stay down forever,
 * so they come up (and their check records go).
 */
export function releaseHeldDown(pool: Pool): void {
  for (const s of pool.servers) {
    statuses.delete(s);
    if (!heldDown.has(s)) continue;
    heldDown.delete(s);
    if (s.state === 'down') pool.setState(s, 'up', 'health check removed');
  }
}
