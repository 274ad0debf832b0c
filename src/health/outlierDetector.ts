/**
 * Passive health checking (Envoy's outlier detection, consecutive-failures flavour): real traffic
 * is watched through the pool's released leases, and a server that fails `consecutiveFailures`
 * requests in a row is ejected (taken out of the eligible set) for a while.
 *
 * - Counted as failures: every Outcome.Failure (connect failure, reset, timeout, garbage), and
 *   with `on5xx` every answer with a status >= 500. Any other answer resets the count; a
 *   cancelled lease (the client left) says nothing about the server and is ignored.
 * - Ejection time: `ejectFor × 2^level`, capped at `maxEjectFor`, where `level` is the number of
 *   recent ejections of this server. Each full `ejectFor` the server spends available after its
 *   last ejection ended lowers the level by one, so a server that misbehaves once in a while is
 *   not punished for its history.
 * - `maxEjectedPercent`: a server is not ejected when the ejected servers (it included) would
 *   exceed that share of the pool, except that one server may always be ejected when none is
 *   (Envoy's rule). The refusal is logged, and the count starts over.
 * - Return: when the ejection time is up, with or without an active check. An active check that
 *   marks an ejected server down ends its ejection: it then returns through `rise` passed checks.
 */

import { formatDuration } from '../config/duration.js';
import type { OutlierDetectionConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { Outcome, type OutcomeListener, type Pool, type TransitionListener } from '../core/pool.js';
import type { Server } from '../core/server.js';

interface EjectionRecord {
  /** Ejections in a row, decayed by healthy time; the next ejection lasts ejectFor × 2^level. */
  level: number;
  /** When the last ejection ended (or is due to end). */
  endedAt: number;
}

/** setTimeout's longest delay; longer waits are re-armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;
/** Beyond this, 2^level only overflows: the cap applies long before. */
const MAX_LEVEL = 40;

/** Module-level: counts and histories survive the detector being re-created on a reload. */
const failureCounts = new WeakMap<Server, number>();
const records = new WeakMap<Server, EjectionRecord>();

/** The level an ejection at `now` starts from, after the healthy time since the last one. */
export function decayedLevel(record: EjectionRecord | undefined, now: number, ejectFor: number): number {
  if (record === undefined) return 0;
  const healthy = Math.max(0, now - record.endedAt);
  return Math.max(0, record.level - Math.floor(healthy / ejectFor));
}

export function ejectionDuration(level: number, config: OutlierDetectionConfig): number {
  return Math.min(config.ejectFor * 2 ** Math.min(level, MAX_LEVEL), config.maxEjectFor);
}

/** Whether one more server may be ejected from a pool of `total` with `ejected` already out. */
export function mayEject(ejected: number, total: number, maxEjectedPercent: number): boolean {
  return ejected === 0 || (ejected + 1) * 100 <= maxEjectedPercent * total;
}

export interface OutlierDetectorOptions {
  /** Told of every ejection, with its end (slow start ramps the server back in from there). */
  onEject?: (server: Server, until: number) => void;
  /** The clock for ejection decisions (tests). */
  now?: () => number;
}

export class OutlierDetector {
  private readonly pool: Pool;
  private readonly config: OutlierDetectionConfig;
  private readonly log: Logger;
  private readonly options: OutlierDetectorOptions;
  private readonly now: () => number;
  /** One timer per ejected server, to log its return once. */
  private readonly returns = new Map<Server, NodeJS.Timeout>();

  constructor(pool: Pool, config: OutlierDetectionConfig, log: Logger, options: OutlierDetectorOptions = {}) {
    this.pool = pool;
    this.config = config;
    this.log = log;
    this.options = options;
    this.now = options.now ?? Date.now;
  }

  start(): void {
    this.pool.outcomeListeners.push(this.onOutcome);
    this.pool.transitionListeners.push(this.onTransition);
    // Ejections begun under the previous config still end (and are logged) on time.
    const now = this.now();
    for (const s of this.pool.servers) if (s.ejectedUntil > now) this.armReturn(s);
  }

  stop(): void {
    remove(this.pool.outcomeListeners, this.onOutcome);
    remove(this.pool.transitionListeners, this.onTransition);
    for (const t of this.returns.values()) clearTimeout(t);
    this.returns.clear();
  }

  private readonly onOutcome: OutcomeListener = (server, outcome, status) => {
    if (outcome === Outcome.Cancelled) return;
    const failed = outcome === Outcome.Failure || (this.config.on5xx && status >= 500);
    if (!failed) {
      failureCounts.delete(server);
      return;
    }
    const now = this.now();
    // Late answers from a server already out of rotation prove nothing new.
    if (server.state !== 'up' || server.ejectedUntil > now) return;
    const count = (failureCounts.get(server) ?? 0) + 1;
    if (count < this.config.consecutiveFailures) {
      failureCounts.set(server, count);
      return;
    }
    failureCounts.delete(server);
    this.eject(server, count, now);
  };

  private readonly onTransition: TransitionListener = (server) => {
    failureCounts.delete(server);
    if (server.state !== 'down') return;
    const now = this.now();
    if (server.ejectedUntil <= now) return;
    // Down now: the active check, not the clock, decides when it comes back.
    server.ejectedUntil = 0;
    const record = records.get(server);
    if (record !== undefined) record.endedAt = now;
    this.disarm(server);
    this.pool.invalidate();
  };

  private eject(server: Server, count: number, now: number): void {
    const { pool, config } = this;
    let ejected = 0;
    for (const s of pool.servers) if (s.ejectedUntil > now) ejected++;
    if (!mayEject(ejected, pool.servers.length, config.maxEjectedPercent)) {
      this.log.info(
        `pool ${pool.name}: server ${server.id} not ejected after ${count} consecutive failures: ` +
          `${ejected} of ${pool.servers.length} servers already ejected (maxEjectedPercent ${config.maxEjectedPercent})`,
      );
      return;
    }
    const level = decayedLevel(records.get(server), now, config.ejectFor);
    const duration = ejectionDuration(level, config);
    server.ejectedUntil = now + duration;
    records.set(server, { level: Math.min(level + 1, MAX_LEVEL), endedAt: server.ejectedUntil });
    this.log.warn(
      `pool ${pool.name}: server ${server.id} ejected for ${formatDuration(duration)}: ${count} consecutive failures`,
    );
    pool.invalidate();
    this.armReturn(server);
    this.options.onEject?.(server, server.ejectedUntil);
  }

  private armReturn(server: Server): void {
    this.disarm(server);
    const wait = server.ejectedUntil - this.now();
    const timer = setTimeout(
      () => {
        this.returns.delete(server);
        if (server.ejectedUntil === 0) return;
        if (server.ejectedUntil > this.now()) return this.armReturn(server);
        this.log.info(`pool ${this.pool.name}: server ${server.id} returned after ejection`);
        this.pool.invalidate();
      },
      Math.min(Math.max(wait, 0), MAX_TIMER_MS),
    );
    timer.unref();
    this.returns.set(server, timer);
  }

  private disarm(server: Server): void {
    const t = this.returns.get(server);
    if (t === undefined) return;
    clearTimeout(t);
    this.returns.delete(server);
  }
}

/** The pool no longer detects outliers: ejected servers return now. */
export function liftEjections(pool: Pool, log: Logger, now = Date.now()): void {
  let changed = false;
  for (const s of pool.servers) {
    failureCounts.delete(s);
    if (s.ejectedUntil <= now) continue;
    s.ejectedUntil = 0;
    const record = records.get(s);
    if (record !== undefined) record.endedAt = now;
    log.info(`pool ${pool.name}: server ${s.id} returned after ejection: outlier detection removed`);
    changed = true;
  }
  if (changed) pool.invalidate();
}

function remove<T>(list: T[], item: T): void {
  const i = list.indexOf(item);
  if (i >= 0) list.splice(i, 1);
}
