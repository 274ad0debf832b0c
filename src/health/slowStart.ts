/**
 * Slow start (HAProxy's `slowstart`, Envoy's slow start mode): a server that has just recovered
 * or joined gets its share of traffic back gradually, so that cold caches, JITs and connection
 * pools are not hit with a full share at once. Its `effectiveWeight`, which every weight-reading
 * policy uses (weighted round robin, least connections, least response time), ramps linearly
 * from MIN_FRACTION of its weight to its weight over `slowStart` ms.
 *
 * A ramp starts when a server goes up from down or maintenance, returns from an ejection, or is
 * added to a running pool by a reload. Not for algorithms whose registry entry says
 * `rampsWeight: false` (ip-hash: a changing weight moves ring points, and so clients, back and
 * forth; HAProxy ignores slowstart for hash-based algorithms too).
 */
import type { Pool, TransitionListener } from '../core/pool.js';
import type { Server } from '../core/server.js';

/** Where a ramp starts, as a fraction of the weight: small, but never 0 (0 means "weight 0"). */
export const MIN_FRACTION = 0.05;
/** Steps per ramp, within these bounds (ms): smooth enough, and at least one update a second. */
const STEPS = 20;
const MIN_STEP_MS = 20;
const MAX_STEP_MS = 1000;

/** Module-level: when each server's ramp started, so that a ramp survives a reload. */
const rampStarts = new WeakMap<Server, number>();

/** The effective weight `elapsed` ms into a ramp of `slowStart` ms. */
export function rampWeight(weight: number, elapsed: number, slowStart: number): number {
  if (elapsed >= slowStart) return weight;
  return weight * Math.max(MIN_FRACTION, elapsed / slowStart);
}

export class SlowStart {
  private readonly pool: Pool;
  private readonly slowStart: number;
  private readonly now: () => number;
  private timer: NodeJS.Timeout | undefined;

  constructor(pool: Pool, slowStart: number, now: () => number = Date.now) {
    this.pool = pool;
    this.slowStart = slowStart;
    this.now = now;
  }

  /** Resumes ramps begun under a previous config, and starts one for each `added` server. */
  start(added: readonly Server[]): void {
    this.pool.transitionListeners.push(this.onTransition);
    for (const s of added) if (s.state === 'up') rampStarts.set(s, this.now());
    this.tick();
  }

  stop(): void {
    const list = this.pool.transitionListeners;
    const i = list.indexOf(this.onTransition);
    if (i >= 0) list.splice(i, 1);
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Ramps `server` from `at` (which may be in the future: the end of an ejection). */
  begin(server: Server, at = this.now()): void {
    rampStarts.set(server, at);
    this.tick();
  }

  private readonly onTransition: TransitionListener = (server, from) => {
    if (server.state === 'up' && (from === 'down' || from === 'maintenance')) this.begin(server);
  };

  /** Applies every ramp of the pool; runs a timer while any is in progress. */
  private tick(): void {
    const now = this.now();
    let ramping = false;
    let changed = false;
    for (const s of this.pool.servers) {
      const start = rampStarts.get(s);
      if (start === undefined) continue;
      const weight = rampWeight(s.weight, now - start, this.slowStart);
      if (weight === s.weight) rampStarts.delete(s);
      else ramping = true;
      if (weight !== s.effectiveWeight) {
        s.effectiveWeight = weight;
        changed = true;
      }
    }
    if (changed) this.pool.invalidate();
    if (ramping && this.timer === undefined) {
      const step = Math.min(MAX_STEP_MS, Math.max(MIN_STEP_MS, this.slowStart / STEPS));
      this.timer = setInterval(() => this.tick(), step);
      this.timer.unref();
    } else if (!ramping && this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** Slow start is off (or the algorithm ignores it): ramps end, weights are whole again. */
export function endRamps(pool: Pool): void {
  let changed = false;
  for (const s of pool.servers) {
    rampStarts.delete(s);
    if (s.effectiveWeight !== s.weight) {
      s.effectiveWeight = s.weight;
      changed = true;
    }
  }
  if (changed) pool.invalidate();
}

/** Whether `server` is ramping up, and how far (0..1), for the admin API. */
export function rampOf(server: Server, slowStart: number, now = Date.now()): number | undefined {
  const start = rampStarts.get(server);
  if (start === undefined) return undefined;
  return Math.min(1, Math.max(0, (now - start) / slowStart));
}
