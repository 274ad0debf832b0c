import type { BalancingPolicy, SelectContext } from '../core/selection.js';
import type { Server } from '../core/server.js';
import { weightsApply } from './weights.js';

const NONE: readonly Server[] = [];

/**
 * The server with the fewest in-flight requests (L7) or open connections (L4) relative to its
 * effective weight: the smallest `active / effectiveWeight`, compared by cross-multiplication.
 *
 * Ties rotate, as in HAProxy's leastconn: the scan starts just after the server picked last, so
 * servers equally loaded (typically all idle) take turns instead of the first one taking all.
 * Weight-0 servers are skipped unless every candidate has weight 0; then all count as 1.
 * A retry applies the same rule among the servers not tried yet. Stateless apart from the
 * rotation, so it needs no rebuild.
 */
export class LeastConnections implements BalancingPolicy {
  readonly name = 'least-connections';
  /** Where the next scan starts: just after the index picked last. */
  private next = 0;

  pick(eligible: readonly Server[], _ctx: SelectContext): Server {
    return this.least(eligible, NONE)!;
  }

  fallback(eligible: readonly Server[], _ctx: SelectContext, tried: readonly Server[]): Server | undefined {
    return this.least(eligible, tried);
  }

  /** The least loaded of `eligible` minus `tried`. */
  private least(eligible: readonly Server[], tried: readonly Server[]): Server | undefined {
    const n = eligible.length;
    const filtered = tried.length > 0;
    const weighted = weightsApply(eligible, tried);
    let start = this.next;
    if (start >= n) start = 0;
    let best = -1;
    let bestActive = 0;
    let bestWeight = 1;
    for (let k = 0; k < n; k++) {
      let i = start + k;
      if (i >= n) i -= n;
      const s = eligible[i]!;
      if (filtered && tried.includes(s)) continue;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      // s.active / w < bestActive / bestWeight, without dividing.
      if (best < 0 || s.active * bestWeight < bestActive * w) {
        best = i;
        bestActive = s.active;
        bestWeight = w;
      }
    }
    if (best < 0) return undefined;
    this.next = best + 1;
    return eligible[best]!;
  }
}
