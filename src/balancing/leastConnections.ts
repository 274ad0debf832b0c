import type { Server } from '../core/server.js';
import type { BalancingPolicy, PickContext } from './policy.js';

/**
 * The server with the fewest in-flight requests (L7) or open connections (L4) relative to its
 * effective weight: the smallest `active / effectiveWeight`, compared by cross-multiplication.
 *
 * Ties rotate, as in HAProxy's leastconn: the scan starts just after the server picked last, so
 * servers equally loaded (typically all idle) take turns instead of the first one taking all.
 * Weight-0 servers are skipped unless every eligible server has weight 0; then all count as 1.
 * Stateless apart from the rotation, so any array works, filtered or not, without a rebuild.
 */
export class LeastConnections implements BalancingPolicy {
  readonly name = 'least-connections';
  /** Where the next scan starts: just after the index picked last. */
  private next = 0;

  pick(eligible: readonly Server[], _ctx: PickContext): Server {
    const n = eligible.length;
    let weighted = false;
    for (const s of eligible) {
      if (s.effectiveWeight > 0) {
        weighted = true;
        break;
      }
    }
    let start = this.next;
    if (start >= n) start = 0;
    let best = -1;
    let bestActive = 0;
    let bestWeight = 1;
    for (let k = 0; k < n; k++) {
      let i = start + k;
      if (i >= n) i -= n;
      const s = eligible[i]!;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      // s.active / w < bestActive / bestWeight, without dividing.
      if (best < 0 || s.active * bestWeight < bestActive * w) {
        best = i;
        bestActive = s.active;
        bestWeight = w;
      }
    }
    this.next = best + 1;
    return eligible[best]!;
  }
}
