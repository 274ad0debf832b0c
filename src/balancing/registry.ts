/**
 * The balancing algorithms by name: the one place that lists them. The config schema, the
 * `AlgorithmName` type, createPolicy, the slow-start decision and the docs tables (checked by a
 * test) all follow it. Adding an algorithm means one file and one entry here.
 */
import type { BalancingPolicy } from '../core/selection.js';
import { IpHash } from './ipHash.js';
import { LeastConnections } from './leastConnections.js';
import { LeastResponseTime } from './leastResponseTime.js';
import { RoundRobin } from './roundRobin.js';
import { WeightedRoundRobin } from './weightedRoundRobin.js';

/** What the rest of the code may know about an algorithm, besides its policy. */
export interface AlgorithmInfo {
  /** A fresh policy (policies keep per-pool state: one instance per pool). */
  create(): BalancingPolicy;
  /** What it chooses, in one line: the "chooses" column of docs/configuration.md. */
  readonly description: string;
  /** Weights change its choices (the "uses weights" column of docs/algorithms.md). */
  readonly usesWeights: boolean;
  /**
   * Slow start may ramp a server's effective weight. False for ip-hash: a changing weight moves
   * ring points, and so clients, back and forth (HAProxy ignores slowstart for hashing too).
   */
  readonly rampsWeight: boolean;
}

/** In the order the docs list them; the first is the default. */
export const ALGORITHM_REGISTRY = {
  'round-robin': {
    create: () => new RoundRobin(),
    description: 'each server in turn',
    usesWeights: false,
    rampsWeight: true,
  },
  'weighted-round-robin': {
    create: () => new WeightedRoundRobin(),
    description: 'each server in proportion to its `weight` (smooth: no bursts to one server)',
    usesWeights: true,
    rampsWeight: true,
  },
  'ip-hash': {
    create: () => new IpHash(),
    description:
      'by a consistent hash of the client IP, so a client keeps its server while membership is stable',
    usesWeights: true,
    rampsWeight: false,
  },
  'least-connections': {
    create: () => new LeastConnections(),
    description: 'the server with the fewest active requests (http) or connections (tcp, udp)',
    usesWeights: true,
    rampsWeight: true,
  },
  'least-response-time': {
    create: () => new LeastResponseTime(),
    description: 'the server with the best recent response time and load',
    usesWeights: true,
    rampsWeight: true,
  },
} as const satisfies Record<string, AlgorithmInfo>;

/** The name of a balancing algorithm, as written in `pools[].algorithm`. */
export type AlgorithmName = keyof typeof ALGORITHM_REGISTRY;

/** Every algorithm's name, in registry order (a non-empty tuple, as zod's enum wants). */
export const ALGORITHMS = Object.keys(ALGORITHM_REGISTRY) as [AlgorithmName, ...AlgorithmName[]];

/** The registry entry of `name`. */
export function algorithmInfo(name: AlgorithmName): AlgorithmInfo {
  return ALGORITHM_REGISTRY[name];
}

/** A fresh policy instance (policies keep per-pool state: one instance per pool). */
export function createPolicy(name: AlgorithmName): BalancingPolicy {
  if (!Object.hasOwn(ALGORITHM_REGISTRY, name))
    throw new Error(`unknown balancing algorithm: ${String(name)}`);
  return ALGORITHM_REGISTRY[name].create();
}
