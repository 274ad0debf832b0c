import type { Server } from '../core/server.js';
import type { BalancingPolicy, PickContext } from './policy.js';

/**
 * Strict rotation over the eligible servers, ignoring weights: a b c a b c.
 *
 * When the eligible set changes, the rotation continues after the server picked last (if it is
 * still eligible), so a server going down or coming back does not restart the cycle at the first
 * server. A filtered array (a retry with a server excluded) gets the next server of the same
 * rotation that is in that array, and the rotation moves past it.
 */
export class RoundRobin implements BalancingPolicy {
  readonly name = 'round-robin';
  private servers: readonly Server[] = [];
  private readonly known = new Set<Server>();
  /** Index in `servers` of the next server to hand out. */
  private next = 0;
  private last: Server | undefined;

  rebuild(eligible: readonly Server[]): void {
    this.servers = eligible;
    this.known.clear();
    for (const s of eligible) this.known.add(s);
    const at = this.last === undefined ? -1 : eligible.indexOf(this.last);
    this.next = at >= 0 ? at + 1 : this.next;
    if (this.next >= eligible.length) this.next = 0;
  }

  pick(eligible: readonly Server[], _ctx: PickContext): Server {
    if (eligible !== this.servers) {
      if (!covers(this.known, eligible)) this.rebuild(eligible);
      else return this.pickFiltered(eligible);
    }
    let i = this.next;
    if (i >= eligible.length) i = 0;
    this.next = i + 1;
    const s = eligible[i]!;
    this.last = s;
    return s;
  }

  /** Rare path (retries): walk the rotation to the first server that is in `subset`. */
  private pickFiltered(subset: readonly Server[]): Server {
    const all = this.servers;
    for (let k = 0; k < all.length; k++) {
      let i = this.next + k;
      if (i >= all.length) i -= all.length;
      const s = all[i]!;
      if (subset.includes(s)) {
        this.next = i + 1;
        this.last = s;
        return s;
      }
    }
    return subset[0]!; // unreachable: `subset` is non-empty and covered by `all`
  }
}

/** Every server of `list` was in the set of the last rebuild. */
function covers(known: ReadonlySet<Server>, list: readonly Server[]): boolean {
  if (known.size === 0) return false;
  for (const s of list) if (!known.has(s)) return false;
  return true;
}
