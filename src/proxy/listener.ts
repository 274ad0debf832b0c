import { formatAddress } from '../config/address.js';
import type { ListenerConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { TrafficObserver } from '../core/observer.js';
import type { Pool } from '../core/pool.js';
import type { ListenerProtection } from '../protection/listenerProtection.js';
import type { UpstreamPool } from './http/upstreamPool.js';

/** Looks up a pool by name (the config loader has already checked that it exists). */
export type PoolLookup = (name: string) => Pool;

/**
 * What the runtime needs of every listener, whatever its protocol: start, apply a new config of
 * the same name and address in place (reload), and stop gracefully.
 */
export interface Listener {
  readonly name: string;
  readonly protocol: ListenerConfig['protocol'];
  /** The bound address (the real port when 0 was asked for). */
  readonly address: { host: string; port: number };
  /** Binds; rejects with a message naming the address (e.g. "already in use"). */
  start(): Promise<void>;
  /** New settings and pools for this listener; connections in flight keep what they had. */
  update(config: ListenerConfig, pools: PoolLookup): void;
  /** Stop accepting, let work in flight finish for up to `timeoutMs`, then close what is left. */
  shutdown(timeoutMs: number): Promise<void>;
  /** Open client connections (or UDP flows). */
  readonly connectionCount: number;
  /** Refusals by protection so far, by reason, when the listener has `protection`. */
  readonly protection?: ListenerProtection | null;
  /** Told of every finished exchange or connection (metrics, access log); set by the runtime. */
  observer?: TrafficObserver | null;
}

/** What the runtime gives every listener it creates. */
export interface ListenerDeps {
  pools: PoolLookup;
  log: Logger;
  /** Idle keep-alive connections to servers (HTTP), shared by the runtime's listeners. */
  upstreams: UpstreamPool;
}

/** A bind failure in words a user can act on (same for every protocol). */
export function listenError(host: string, port: number, err: NodeJS.ErrnoException): Error {
  const where = formatAddress({ host, port });
  if (err.code === 'EADDRINUSE') return new Error(`address ${where} is already in use`);
  if (err.code === 'EACCES') return new Error(`no permission to listen on ${where}`);
  if (err.code === 'EADDRNOTAVAIL') return new Error(`address ${where} is not available on this host`);
  return new Error(`cannot listen on ${where}: ${err.message}`);
}

/** Sweep period fine enough for the shortest timeout in use (10–250 ms). */
export function sweepPeriod(shortestTimeout: number): number {
  return Math.max(10, Math.min(250, Math.floor(shortestTimeout / 10)));
}
