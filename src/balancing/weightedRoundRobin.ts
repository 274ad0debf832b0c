import type { Server } from '../core/server.js';
import type { BalancingPolicy, PickContext } from './policy.js';

/**
 * nginx's smooth weighted round robin. Every pick, each server's `current` grows by its
 * effective weight; the largest wins and gives back the sum of the weights. Weights 5,1,1 give
 * a a b a c a a: the same proportions as a plain weighted rotation, without sending a burst of
 * five requests in a row to one server. Ties go to the earlier server in the array, as in nginx.
 *
 * Weights are read on every pick, so slow start may change `effectiveWeight` without a rebuild.
 * Servers with weight 0 are skipped unless every eligible server has weight 0; then they rotate.
 */
export class WeightedRoundRobin implements BalancingPolicy {
  readonly name = 'weighted-round-robin';
  private servers: readonly Server[] = [];
  /** Slot of each server of the last rebuild in `current`. */
  private readonly slots = new Map<Server, number>();
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

  pick(eligible: readonly Server[], _ctx: PickContext): Server {
    let same = eligible === this.servers;
    if (!same && !this.covers(eligible)) {
      this.rebuild(eligible);
      same = true;
    }
    // On a filtered array (a retry), only its servers take part, as nginx does for peers it has
    // already tried; their state lives in the slots of the last rebuild.
    const cur = this.current;
    let weighted = false;
    for (const s of eligible) {
      if (s.effectiveWeight > 0) {
        weighted = true;
        break;
      }
    }
    let total = 0;
    let best = -1;
    let bestSlot = -1;
    let bestCurrent = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < eligible.length; i++) {
      const s = eligible[i]!;
      const w = weighted ? s.effectiveWeight : 1;
      if (!(w > 0)) continue;
      const slot = same ? i : this.slots.get(s)!;
      const c = cur[slot]! + w;
      cur[slot] = c;
      total += w;
      if (c > bestCurrent) {
        bestCurrent = c;
        best = i;
        bestSlot = slot;
      }
    }
    cur[bestSlot] = bestCurrent - total;
    return eligible[best]!;
  }

  private covers(list: readonly Server[]): boolean {
    if (this.slots.size === 0) return false;
    for (const s of list) if (!this.slots.has(s)) return false;
    return true;
  }
}
