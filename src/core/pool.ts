import type { SecureContext } from 'node:tls';
import type { Affinity } from './affinity.js';
import { log as defaultLog, type Logger } from './log.js';
import type { BalancingPolicy } from './selection.js';
import type { Server, ServerState } from './server.js';

/** How a lease ended: fed to the server's statistics (or not, for a cancelled one). */
export enum Outcome {
  Success = 0,
  /** The server failed: refused, reset, timed out, or answered garbage. */
  Failure = 1,
  /** The client went away: says nothing about the server. */
  Cancelled = 2,
}

/** Per-pool settings the proxies read (durations in ms). Same meaning at L4 and L7. */
export interface PoolOptions {
  retries: { attempts: number; on: ReadonlyArray<'connect-failure' | 'reset' | 'timeout' | '5xx'> };
  timeouts: { connect: number; response: number; idle: number };
  maxIdlePerServer: number;
  /** L4: ms a draining or removed server keeps its tcp connections and udp flows; 0 = no limit. */
  drainTimeout?: number;
  /** L4 (tcp): PROXY protocol header sent first on every connection to a server. */
  sendProxyProtocol?: 'v1' | 'v2';
  /** L7 (http): connections to the servers (and health checks) use TLS. */
  tls?: ServerTls;
}

/** TLS to a pool's servers, ready to connect with. */
export interface ServerTls {
  /** CA certificates and the client certificate, made once per config. */
  context: SecureContext;
  /** SNI and the name checked; absent: the server's host when it is a name. */
  serverName?: string;
  /** Check the server's certificate chain and name. */
  verify: boolean;
  /** Equal for equal settings and file contents. */
  fingerprint: string;
}

/** Told of every released lease (passive health checks listen here). */
export type OutcomeListener = (server: Server, outcome: Outcome, status: number) => void;
/** Told of every server state change (health checks, admin actions, slow start). */
export type TransitionListener = (server: Server, from: ServerState, reason: string) => void;

export const DEFAULT_POOL_OPTIONS: PoolOptions = {
  retries: { attempts: 1, on: ['connect-failure', 'reset'] },
  timeouts: { connect: 5000, response: 60000, idle: 30000 },
  maxIdlePerServer: 64,
};

/**
 * A named group of servers and the policy that chooses among them. It hands out leases
 * (lease → release) so that in-flight counts, response times and failure counts are fed the
 * same way for every algorithm, at L4 and L7. A lease is the Server itself, to allocate nothing.
 */
export class Pool {
  readonly name: string;
  policy: BalancingPolicy;
  servers: Server[];
  options: PoolOptions;
  log: Logger = defaultLog;
  /** Sticky sessions, when the pool has them. */
  affinity: Affinity | null = null;
  /** Requests that had an affinity to a server that could not take them (sticky_reassigned). */
  reassigned = 0;
  readonly outcomeListeners: OutcomeListener[] = [];
  readonly transitionListeners: TransitionListener[] = [];

  /** Available primaries, or available backups when no primary is available. */
  private eligible: Server[] = [];
  private dirty = true;
  /** Earliest time an ejected server becomes available again (0: none pending). */
  private nextReturn = 0;

  constructor(name: string, policy: BalancingPolicy, servers: Server[], options = DEFAULT_POOL_OPTIONS) {
    this.name = name;
    this.policy = policy;
    this.servers = servers;
    this.options = options;
  }

  /** Server states, weights or membership changed: recompute the eligible set on next use. */
  invalidate(): void {
    this.dirty = true;
  }

  setPolicy(policy: BalancingPolicy): void {
    this.policy = policy;
    this.dirty = true;
  }

  setServers(servers: Server[]): void {
    this.servers = servers;
    this.dirty = true;
  }

  find(id: string): Server | undefined {
    for (const s of this.servers) if (s.id === id) return s;
    return undefined;
  }

  /**
   * The servers a request may go to right now (primaries, or backups when no primary is up).
   * The clock is read only when an ejection may have ended: Date.now() allocates its result.
   */
  eligibleServers(now?: number): readonly Server[] {
    if (this.dirty) this.recompute(now ?? Date.now());
    else if (this.nextReturn !== 0) {
      const t = now ?? Date.now();
      if (t >= this.nextReturn) this.recompute(t);
    }
    return this.eligible;
  }

  /**
   * Take a lease on `server` (its in-flight count goes up). Which server: a Selection decides
   * (sticky pin, policy, fallbacks); every lease is returned by release().
   */
  lease(server: Server): void {
    server.active++;
    server.total++;
  }

  /**
   * Return a lease with its outcome; `durationMs` is the response (or connect) time, `status`
   * the HTTP status when there is one (0 otherwise).
   */
  release(server: Server, outcome: Outcome, durationMs: number, status = 0): void {
    server.active--;
    if (outcome !== Outcome.Cancelled) server.record(outcome === Outcome.Success, durationMs);
    const listeners = this.outcomeListeners;
    for (let i = 0; i < listeners.length; i++) listeners[i]!(server, outcome, status);
  }

  /**
   * The one way a server changes state: logged once with its reason, the eligible set
   * recomputed, listeners (slow start, metrics) told.
   */
  setState(server: Server, state: ServerState, reason: string): void {
    const from = server.state;
    if (from === state) return;
    server.state = state;
    server.lastTransition = { at: Date.now(), from, to: state, reason };
    if (from === 'down' && state === 'up') server.resetEstimate();
    this.dirty = true;
    const line = `pool ${this.name}: server ${server.id} ${state}: ${reason}`;
    if (state === 'down') this.log.warn(line);
    else this.log.info(line);
    for (const l of this.transitionListeners) l(server, from, reason);
  }

  private recompute(now: number): void {
    const primaries: Server[] = [];
    const backups: Server[] = [];
    let nextReturn = 0;
    for (const s of this.servers) {
      if (s.isAvailable(now)) (s.backup ? backups : primaries).push(s);
      else if (
        s.state === 'up' &&
        s.ejectedUntil > now &&
        (nextReturn === 0 || s.ejectedUntil < nextReturn)
      ) {
        nextReturn = s.ejectedUntil;
      }
    }
    // Weight 0 means "no new traffic" while any other server can take it, in every algorithm.
    this.eligible = withoutZeroWeight(primaries.length > 0 ? primaries : backups);
    this.nextReturn = nextReturn;
    this.dirty = false;
    this.policy.rebuild?.(this.eligible);
  }
}

function withoutZeroWeight(servers: Server[]): Server[] {
  if (!servers.some((s) => s.weight === 0) || servers.every((s) => s.weight === 0)) return servers;
  return servers.filter((s) => s.weight > 0);
}
