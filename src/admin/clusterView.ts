/**
 * What the admin endpoint of a supervisor (`workers` > 1, src/cluster/) shows besides its own
 * pools: the figures its workers report, merged, and one row per worker. The endpoint asks for
 * fresh figures before answering `/metrics` and `/api/status`, so a scrape right after some
 * requests counts them all.
 */
import type { Telemetry } from './metrics.js';
import type { ProtectionReport } from './protectionReport.js';

/** One worker process as `GET /api/status` and `fulcrum status` show it. */
export interface WorkerRow {
  /** The worker's slot, 1..N: a replacement takes the slot of the worker it replaces. */
  id: number;
  pid: number;
  uptimeSeconds: number;
  /** Times this slot's worker was replaced. */
  restarts: number;
  /** Requests in flight (http) and connections open (tcp, udp flows), over its servers. */
  connections: number;
  /** Requests (and L4 connections) finished by this process since it started. */
  requests: number;
  /** Requests (and L4 connections) finished per second, over the last report interval. */
  requestsPerSecond: number;
  /** Serving, or starting (not yet serving). */
  state: 'serving' | 'starting';
}

/** A listener as the workers run it: the address they share, their connections summed. */
export interface ClusterListener {
  address: { host: string; port: number };
  connections: number;
}

export interface ClusterView {
  /** Merges the workers' request figures into `telemetry` from now on and registers the
   * cluster's own metrics in its registry; returns the function that stops it. */
  attach(telemetry: Telemetry): () => void;
  /** Asks every worker for its figures now and merges them (bounded: a worker that does not
   * answer in time counts with its last report). */
  refresh(): Promise<void>;
  workers(): WorkerRow[];
  /** A listener as the workers report it (undefined before any worker has). */
  listener(name: string): ClusterListener | undefined;
  /** Asks every worker for its listeners' protection now and merges it (bounded wait: a worker
   * that does not answer in time is left out). */
  protection(): Promise<ProtectionReport[]>;
  /** Unblocks a client on a listener in every worker: `unblocked` if any had it blocked,
   * `not-blocked` if none had, `no-listener` if no worker has that listener with protection. */
  unblock(listener: string, ip: string): Promise<'unblocked' | 'not-blocked' | 'no-listener'>;
}
