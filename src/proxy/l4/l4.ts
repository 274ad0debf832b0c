/**
 * What the tcp and udp listeners share: the L4 settings of pools and servers (with their
 * defaults), whether a server is at its connection limit, when a connection or flow to a
 * draining server must end.
 */
import type { Pool, PoolOptions } from '../../core/pool.js';
import type { Server } from '../../core/server.js';
import type { ProxyVersion } from '../proxyProtocol.js';

export { LogThrottle } from '../logThrottle.js';

/** Default of a pool's `drainTimeout` (ms): how long a draining server keeps its L4 connections. */
export const DEFAULT_DRAIN_TIMEOUT = 300_000;
/** Default of a tcp listener's `queue`. */
export const DEFAULT_QUEUE = { size: 1000, timeout: 5000 } as const;
/** Default of a udp listener's `maxFlows`. */
export const DEFAULT_MAX_FLOWS = 10_000;
/**
 * How long a trusted peer of an `acceptProxyProtocol` listener has to send its PROXY header. The
 * specification asks for at least 3 s, to cover a TCP retransmit.
 */
export const PROXY_HEADER_TIMEOUT = 5000;

/** The L4 keys of a pool, as the runtime copies them from PoolConfig into Pool.options. */
interface L4PoolOptions {
  /** ms; 0: no limit. */
  drainTimeout?: number;
  sendProxyProtocol?: ProxyVersion;
}

/** The L4 keys of a server, as the runtime copies them from ServerConfig onto Server. */
interface L4ServerFields {
  maxConnections?: number;
  /** Overrides the pool's; 'none' turns it off for this server. */
  sendProxyProtocol?: ProxyVersion | 'none';
}

function l4(pool: Pool): PoolOptions & L4PoolOptions {
  return pool.options as PoolOptions & L4PoolOptions;
}

export function drainTimeoutOf(pool: Pool): number {
  return l4(pool).drainTimeout ?? DEFAULT_DRAIN_TIMEOUT;
}

/** The PROXY protocol version to send to `server`, if any. */
export function proxyVersionFor(pool: Pool, server: Server): ProxyVersion | undefined {
  const own = (server as Server & L4ServerFields).sendProxyProtocol;
  if (own === 'none') return undefined;
  return own ?? l4(pool).sendProxyProtocol;
}

export function maxConnectionsOf(server: Server): number | undefined {
  return (server as Server & L4ServerFields).maxConnections;
}

/**
 * `server` is at its `maxConnections` (leases of every listener count): the `skip` predicate of
 * an L4 Selection, which passes it over without counting it as tried.
 */
export function atMaxConnections(server: Server): boolean {
  const max = maxConnectionsOf(server);
  return max !== undefined && server.active >= max;
}

/**
 * When a connection or flow to `server` (leased from `pool`) must end because the server is
 * draining or was removed from the pool: ms since epoch, Infinity when not draining or without a
 * drain timeout. `noticed` is when the caller first saw it draining (fallback for removals).
 */
export function drainDeadline(pool: Pool, server: Server, noticed: number): number {
  const timeout = drainTimeoutOf(pool);
  if (timeout === 0) return Number.POSITIVE_INFINITY;
  const t = server.lastTransition;
  const since =
    server.state === 'draining' && t !== null && t.to === 'draining' ? Math.min(t.at, noticed) : noticed;
  return since + timeout;
}

/** Draining (by state or because a reload removed it from its pool): takes no new work. */
export function isDraining(pool: Pool, server: Server): boolean {
  return server.state === 'draining' || !pool.servers.includes(server);
}

/** "1.2.3.4:5" / "[::1]:5" */
export function hostPort(host: string, port: number | undefined): string {
  return host.includes(':') ? `[${host}]:${port ?? '?'}` : `${host}:${port ?? '?'}`;
}

/** A bind failure in words that name the address (the runtime reports it on the listen key). */
