import type { BalancingPolicy, SelectContext } from '../core/selection.js';
import type { Server } from '../core/server.js';

/**
 * Strict rotation over the eligible servers, ignoring weights: a b c a b c.
 *
 * When the eligible set changes, the rotation continues after the server picked last (if it is
 * still eligible), so a server going down or coming back does not restart the cycle at the first
 * server. A retry continues the same rotation: the next server in it that was not tried, and the
 * rotation moves past it (with no other request in between, that is the server after the one
 * that failed).
 */
export class RoundRobin implements BalancingPolicy {
  readonly name = 'round-robin';
  private servers: readonly Server[] = [];
  /** Index in `servers` of the next server to hand out. */
  private next = 0;
  private last: Server | undefined;

  rebuild(eligible: readonly Server[]): void {
    this.servers = eligible;
    const at = this.last === undefined ? -1 : eligible.indexOf(this.last);
    this.next = at >= 0 ? at + 1 : this.next;
    if (this.next >= eligible.length) this.next = 0;
  }

  pick(eligible: readonly Server[], _ctx: SelectContext): Server {
    if (eligible !== this.servers) this.rebuild(eligible);
    let i = this.next;
    if (i >= eligible.length) i = 0;
    this.next = i + 1;
    const s = eligible[i]!;
    this.last = s;
    return s;
  }

  fallback(eligible: readonly Server[], _ctx: SelectContext, tried: readonly Server[]): Server | undefined {
    if (eligible !== this.servers) this.rebuild(eligible);
    const n = eligible.length;
    for (let k = 0; k < n; k++) {
      let i = this.next + k;
      if (i >= n) i -= n;
      const s = eligible[i]!;
      if (tried.includes(s)) continue;
      this.next = i + 1;
      this.last = s;
      return s;
    }
    return undefined;
  }
}
