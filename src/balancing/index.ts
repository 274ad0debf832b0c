import { IpHash } from './ipHash.js';
import { LeastConnections } from './leastConnections.js';
import { LeastResponseTime } from './leastResponseTime.js';
import type { AlgorithmName, BalancingPolicy } from './policy.js';
import { RoundRobin } from './roundRobin.js';
import { WeightedRoundRobin } from './weightedRoundRobin.js';

export { Selection } from '../core/selection.js';
export { fmix32, fnv1a32, hash32 } from './hash.js';
export { IpHash, MAX_RING_POINTS, POINTS_PER_WEIGHT } from './ipHash.js';
export { LeastConnections } from './leastConnections.js';
export { LeastResponseTime } from './leastResponseTime.js';
export type { AlgorithmName, BalancingPolicy, SelectContext } from './policy.js';
export { ALGORITHMS } from './policy.js';
export { RoundRobin } from './roundRobin.js';
export { WeightedRoundRobin } from './weightedRoundRobin.js';

/** A fresh policy instance (policies keep per-pool state: one instance per pool). */
export function createPolicy(name: AlgorithmName): BalancingPolicy {
  switch (name) {
    case 'round-robin':
      return new RoundRobin();
    case 'weighted-round-robin':
      return new WeightedRoundRobin();
    case 'ip-hash':
      return new IpHash();
    case 'least-connections':
      return new LeastConnections();
    case 'least-response-time':
      return new LeastResponseTime();
    default: {
      const unknown: never = name;
      throw new Error(`unknown balancing algorithm: ${String(unknown)}`);
    }
  }
}
