import type { BalancingPolicy, SelectContext } from '../core/selection.js';
import type { Server } from '../core/server.js';
import { weightsApply } from './weights.js';

const NONE: readonly Server[] = [];

/**
 * nginx's smooth weighted round robin. Every pick, each server's `current` grows by its
 * effective weight; the largest wins and gives back the sum of the weights. Weights 5,1,1 give
 * a a b a c a a: the same proportions as a plain weighted rotation, without sending a burst of
 * five requests in a row to one server. Ties go to the earlier server in the array, as in nginx.
 *
 * Weights are read on every pick, so slow start may change `effectiveWeight` without a rebuild.
 * Servers with weight 0 are skipped unless every candidate has weight 0; then they rotate.
 * A retry runs the same rule among the servers not tried yet (their `current` updated), as nginx
 * does for the peers it has tried.
 */
export class WeightedRoundRobin implements BalancingPolicy {
  readonly name = 'weighted-round-robin';
  private servers: readonly Server[] = [];
  /** Index of each server in `servers`. */
  private readonly slots = new Map<Server, number>();
  /** `current` of each server, by its index in `servers`. */
  private current = new Float64Array(0);

  rebuild(eligible: readonly Server[]): void {
    // Carry each remaining server's `current` over: resetting would restart the sequence at the
    // heaviest server on every change, skewing traffic towards it when changes are frequent.
    const next = new Float64Array(eligible.length);
    for (let i = 0; i < eligible.length; i++) {
      const old = this.slots.get(eligible[i]!);
      next[i] = old === undefined ? 0 : this.current[old]!;
    }
    this.slots.clear();
    for (let i = 0; i < eligible.length; i++) this.slots.set(eligible[i]!, i);
    this.current = next;
    this.servers = eligible;
  }

  pick(eligible: readonly Server[], _ctx: SelectContext): Server {
    return this.smooth(eligible, NONE)!;
  }

  fallback(eligible: readonly Server[], _ctx: SelectContext, tried: readonly Server[]): Server | undefined {
    return this.smooth(eligible, tried);
  }

  /** One round of the smooth algorithm among `eligible` minus `tried`. */
  private smooth(eligible: readonly Server[], tried: readonly Server[]): Server | undefined {
    if (eligible !== this.servers) this.rebuild(eligible);
    const cur = this.current;
    const n = eligible.length;
    const filtered = tried.length > 0;
    const weighted = weightsApply(eligible, tried);
    let total = 0;
    let best = -1;
    let bestCurrent = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < n; i++) {
      const s = eligible[i]!;
      if (filtered && tried.includes(s)) continue;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      const c = cur[i]! + w;
      cur[i] = c;
      total += w;
      if (c > bestCurrent) {
        bestCurrent = c;
        best = i;
      }
    }
    if (best < 0) return undefined;
    cur[best] = bestCurrent - total;
    return eligible[best]!;
  }
}
