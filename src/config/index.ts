/** Configuration: loading and validating fulcrum.yaml into a normalized, typed Config. */
export { type Address, type AddressOptions, formatAddress, isLoopback, parseAddress } from './address.js';
export { adminTokenProblem } from './checks.js';
export { type Cidr, parseCidr } from './cidr.js';
export {
  type AdminChanges,
  type ConfigDiff,
  diffConfig,
  type NamedChanges,
  type PoolChanges,
} from './diff.js';
export { formatDuration, parseDuration } from './duration.js';
export { ConfigError, type ConfigProblem, formatProblem, ValueError } from './errors.js';
export { loadConfig, parseConfig } from './load.js';
export { ALGORITHMS, PROTOCOLS, RETRY_ON } from './schema.js';
export { sameServerTls, type TlsMaterial, tlsFingerprint, tlsMaterial } from './serverTls.js';
export type {
  AdminConfig,
  Algorithm,
  Config,
  HealthCheckConfig,
  ListenerConfig,
  ListenerTimeouts,
  OutlierDetectionConfig,
  PoolConfig,
  PoolTimeouts,
  PoolTlsConfig,
  Protocol,
  RetriesConfig,
  RetryOn,
  RouteConfig,
  RouteMatch,
  ServerConfig,
  StickyConfig,
} from './types.js';
