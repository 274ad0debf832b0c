import type { BalancingPolicy, SelectContext } from '../core/selection.js';
import type { Server } from '../core/server.js';
import { weightsApply } from './weights.js';

/** A server left unpicked for this many times its fair share of picks is picked once. */
const PROBE_AFTER_SHARES = 16;
/** Estimates below this count as this, so that in-flight counts still matter at ~0 ms. */
const MIN_ESTIMATE_MS = 0.05;
/**
 * Estimates above this (and NaN) count as this: failure penalties compound in `Server.record`
 * and could reach Infinity, then NaN, which would break every comparison.
 */
const MAX_ESTIMATE_MS = 3_600_000;
const NONE: readonly Server[] = [];

/**
 * Latency-aware: the smallest `estimate × (active + 1) / effectiveWeight`, where the estimate is
 * the server's moving average response time (`ewmaMs`). The `active + 1` term is the expected
 * wait if the request queued behind the in-flight ones, so a fast server is preferred until it
 * is loaded enough that a slower idle one would answer sooner.
 *
 * - A server without samples (new, or its statistics reset) is estimated at the best average
 *   among the eligible servers whose last request succeeded: it gets the share of the best server
 *   (not all: its in-flight count still counts) until its first responses give it its own
 *   average. A mean would let one slow or failing server starve newcomers; without any healthy
 *   reference the estimate is 1 ms. With no samples at all, this is least-connections.
 * - Failures are recorded as slow by `Server.record` (at least FAILURE_PENALTY_MS), so a server
 *   that fails fast is avoided, not rewarded.
 * - Probing: an average only changes when the server is used, so one slow spike would sideline a
 *   server forever at low concurrency. A server with nothing in flight that has not been picked
 *   for PROBE_AFTER_SHARES times its fair interval (total weight / its weight, in picks) is
 *   picked once to refresh its estimate. A busy server is not probed: its in-flight requests
 *   will refresh the estimate anyway.
 * - Ties rotate (the scan starts after the server picked last); weight-0 servers are skipped
 *   unless every eligible server has weight 0, then all count as 1.
 * - A retry takes the lowest score among the servers not tried yet (no probing: a retry goes
 *   to the best candidate left), with the same weight-0 rule among them.
 *
 * A plain scan over the eligible servers, not "power of two choices": pools have tens of servers,
 * and one balancer sees all its own in-flight requests, so there is no herd effect to dampen.
 */
export class LeastResponseTime implements BalancingPolicy {
  readonly name = 'least-response-time';
  private servers: readonly Server[] = [];
  private readonly slots = new Map<Server, number>();
  /** Pick sequence number at which each slot was last picked. */
  private lastPicked = new Float64Array(0);
  private sequence = 0;
  private next = 0;

  rebuild(eligible: readonly Server[]): void {
    // Newcomers count as just picked: the mean estimate already gives them a share.
    const next = new Float64Array(eligible.length);
    for (let i = 0; i < eligible.length; i++) {
      const old = this.slots.get(eligible[i]!);
      next[i] = old === undefined ? this.sequence : this.lastPicked[old]!;
    }
    this.slots.clear();
    for (let i = 0; i < eligible.length; i++) this.slots.set(eligible[i]!, i);
    this.lastPicked = next;
    this.servers = eligible;
  }

  pick(eligible: readonly Server[], _ctx: SelectContext): Server {
    if (eligible !== this.servers) this.rebuild(eligible);
    const n = eligible.length;
    const seq = ++this.sequence;
    const last = this.lastPicked;
    const weighted = weightsApply(eligible);

    let reference = Number.POSITIVE_INFINITY;
    let totalWeight = 0;
    let stalest = -1;
    let stalestBy = 0;
    for (let i = 0; i < n; i++) {
      const s = eligible[i]!;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      totalWeight += w;
      // NaN never compares smaller: an exploded average is never the reference.
      if (s.samples > 0 && s.consecutiveFailures === 0 && s.ewmaMs < reference) reference = s.ewmaMs;
      if (s.active > 0) continue;
      // Picks since last chosen, in units of the server's fair interval (× totalWeight).
      const staleness = (seq - last[i]!) * w;
      if (staleness > stalestBy) {
        stalestBy = staleness;
        stalest = i;
      }
    }
    if (stalest >= 0 && stalestBy > PROBE_AFTER_SHARES * totalWeight) return this.take(eligible, stalest);
    return this.take(eligible, this.fastest(eligible, NONE, weighted, reference));
  }

  fallback(eligible: readonly Server[], _ctx: SelectContext, tried: readonly Server[]): Server | undefined {
    if (eligible !== this.servers) this.rebuild(eligible);
    const weighted = weightsApply(eligible, tried);
    // The reference is pick's: the best healthy average among the servers that may take work.
    let reference = Number.POSITIVE_INFINITY;
    for (const s of eligible) {
      if (!((weighted ? s.effectiveWeight : 1) > 0)) continue;
      if (s.samples > 0 && s.consecutiveFailures === 0 && s.ewmaMs < reference) reference = s.ewmaMs;
    }
    const best = this.fastest(eligible, tried, weighted, reference);
    return best < 0 ? undefined : this.take(eligible, best);
  }

  /**
   * Index of the lowest score among `eligible` minus `tried` (-1 when none is left); ties rotate.
   * `reference`: the best healthy average, the estimate of servers without samples.
   */
  private fastest(
    eligible: readonly Server[],
    tried: readonly Server[],
    weighted: boolean,
    reference: number,
  ): number {
    const n = eligible.length;
    const filtered = tried.length > 0;
    const neutral = reference === Number.POSITIVE_INFINITY ? 1 : Math.max(reference, MIN_ESTIMATE_MS);
    let start = this.next;
    if (start >= n) start = 0;
    let best = -1;
    let bestScore = Number.POSITIVE_INFINITY;
    for (let k = 0; k < n; k++) {
      let i = start + k;
      if (i >= n) i -= n;
      const s = eligible[i]!;
      if (filtered && tried.includes(s)) continue;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      // Inline, with module-private constants: via a helper or an exported binding, V8 boxes the
      // double on every iteration (measured: one allocation per server per pick).
      let estimate = neutral;
      if (s.samples > 0) {
        estimate = s.ewmaMs;
        if (!(estimate <= MAX_ESTIMATE_MS))
          estimate = MAX_ESTIMATE_MS; // NaN too
        else if (estimate < MIN_ESTIMATE_MS) estimate = MIN_ESTIMATE_MS;
      }
      const score = (estimate * (s.active + 1)) / w;
      if (best < 0 || score < bestScore) {
        best = i;
        bestScore = score;
      }
    }
    return best;
  }

  private take(eligible: readonly Server[], i: number): Server {
    this.lastPicked[i] = this.sequence;
    this.next = i + 1;
    return eligible[i]!;
  }
}
