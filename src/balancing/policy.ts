import type { Server } from '../core/server.js';

/** What a policy may look at besides the servers. One object is reused per connection. */
export interface PickContext {
  /** Client address as the balancer sees it (after trusted X-Forwarded-For). */
  clientIp: string;
  /** Overrides the hashed key for hash-based policies (e.g. a session id). */
  hashKey?: string | undefined;
}

/**
 * A balancing algorithm. One mechanism for L4 and L7: the pool hands the policy the eligible
 * servers, the policy chooses one, and the pool's lease feeds outcomes back into the Server stats.
 */
export interface BalancingPolicy {
  readonly name: string;
  /** Choose among `eligible` (never empty). Pure selection: no I/O, no allocation on the fast path. */
  pick(eligible: readonly Server[], ctx: PickContext): Server;
  /**
   * The eligible set or weights changed: rebuild rings/schedules here, not in pick(). The pool
   * calls it with the array it will then pass to pick() (same instance) until the next change.
   */
  rebuild?(eligible: readonly Server[]): void;
}

export type AlgorithmName =
  | 'round-robin'
  | 'weighted-round-robin'
  | 'ip-hash'
  | 'least-connections'
  | 'least-response-time';

export const ALGORITHMS: readonly AlgorithmName[] = [
  'round-robin',
  'weighted-round-robin',
  'ip-hash',
  'least-connections',
  'least-response-time',
];
