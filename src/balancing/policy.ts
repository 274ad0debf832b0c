export type { BalancingPolicy, SelectContext } from '../core/selection.js';

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
