/**
 * Fulcrum's balancer API (`import … from 'fulcrum'`): run a balancer from a config in your own
 * process, change it at runtime, or use its parts. The session library is `fulcrum/session`.
 */
export type { AlgorithmInfo, AlgorithmName, BalancingPolicy, SelectContext } from './balancing/index.js';
export {
  ALGORITHM_REGISTRY,
  ALGORITHMS,
  algorithmInfo,
  createPolicy,
  IpHash,
  LeastConnections,
  LeastResponseTime,
  RoundRobin,
  Selection,
  WeightedRoundRobin,
} from './balancing/index.js';
export type { Config, ListenerConfig, PoolConfig, ServerConfig } from './config/index.js';
export { ConfigError, loadConfig, parseConfig, parseDuration } from './config/index.js';
export { createLogger, type Logger, type LogLevel } from './core/log.js';
export { Outcome, Pool, type PoolOptions } from './core/pool.js';
export { Server, type ServerState } from './core/server.js';
export { healthOf } from './health/index.js';
export { type ReloadSummary, Runtime, type RuntimeOptions } from './runtime/runtime.js';
