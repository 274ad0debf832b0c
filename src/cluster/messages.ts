/**
 * The messages between a supervisor and its workers (node:cluster IPC, JSON). One union per
 * direction, discriminated by `t`; `isWorkerMessage` / `isSupervisorMessage` let each side drop
 * anything else (cluster's own messages share the channel).
 */
import type { DnsFigures, EntryFigures } from '../admin/metrics.js';
import type { ProtectionReport } from '../admin/protectionReport.js';
import type { Config } from '../config/types.js';
import type { ServerState } from '../core/server.js';
import type { Expect } from '../sticky/stickTable.js';

/** One server's state as the supervisor holds it (health checks, admin, ejections). */
export interface ServerStatus {
  state: ServerState;
  reason: string;
  /** Ejected by outlier detection until then (ms since epoch; 0: not ejected). */
  ejectedUntil: number;
}

/** pool → server id → status. */
export type PoolStatuses = Record<string, Record<string, ServerStatus>>;

/** What a worker reports about itself, with every heartbeat and on request. */
export interface WorkerStats {
  /** Request figures per (listener, pool, server), since the worker started. */
  entries: EntryFigures[];
  /** [pool, server id, active, total, failures, ewmaMs, samples] of every server. */
  servers: [string, string, number, number, number, number, number][];
  /** Listeners: name, bound address, connections open. */
  listeners: { name: string; host: string; port: number; connections: number }[];
  /** [pool, server id, idle keep-alive connections] of the servers that have some. */
  idle?: [string, string, number][];
  /** The dns listeners' counters, since the worker started. */
  dns?: DnsFigures[];
  /** Protection's refusals since the worker started (listeners with protection, non-zero only). */
  refused?: Refusals;
}

/** Refusals by listener and reason: [listener, reason, count]. */
export type Refusals = [listener: string, reason: string, count: number][];

// ------------------------------------------------------------------------- supervisor → worker

export type SupervisorMessage =
  /**
   * Run this config (the first one starts the worker), then these server states. The config is
   * the supervisor's validated one, as plain data: workers never load the YAML parser or the
   * schema (about 15 MB of each worker's memory).
   */
  | { t: 'config'; config: Config; states: PoolStatuses }
  /** The servers' states changed. */
  | { t: 'states'; states: PoolStatuses }
  /** Report your figures now (answered with `stats` and the same id). */
  | { t: 'stats?'; id: number }
  /** Report your listeners' protection now (answered with `protection` and the same id). */
  | { t: 'protection?'; id: number }
  /** Unblock this client on this listener (answered with `unblocked` and the same id). */
  | { t: 'unblock'; id: number; listener: string; ip: string }
  /** Finish what is in flight (up to `timeoutMs`), then exit 0. */
  | { t: 'stop'; timeoutMs: number }
  /** Answer to `stick?`: the server held for the key, if any. */
  | { t: 'stick'; id: number; server: string | null };

// ------------------------------------------------------------------------- worker → supervisor

export type WorkerMessage =
  /** The worker listens for messages (sent first: an ES module worker drops what came before). */
  | { t: 'hello' }
  /** The worker serves every listener. */
  | { t: 'ready' }
  /** The worker could not start (a listener could not bind, ...): it exits. */
  | { t: 'failed'; message: string; problems?: { path: string; message: string }[] }
  /** A `config` after the first was applied, or not. */
  | { t: 'applied'; ok: boolean; message?: string }
  /** I am alive (sent on a timer: a blocked event loop stops them), with my figures. */
  | { t: 'beat'; stats: WorkerStats }
  /** Answer to `stats?`. */
  | { t: 'stats'; id: number; stats: WorkerStats }
  /** Answer to `protection?`: every listener with protection. */
  | { t: 'protection'; id: number; listeners: ProtectionReport[] }
  /** Answer to `unblock`: whether the listener has protection here, and whether the client was blocked. */
  | { t: 'unblocked'; id: number; listener: boolean; found: boolean }
  /** Outlier detection ejected a server here: every worker should leave it alone until then. */
  | { t: 'eject'; pool: string; server: string; until: number }
  /** Which server is this key of this pool's stick table pinned to? (answered by `stick`) */
  | { t: 'stick?'; id: number; pool: string; key: string }
  /** Pin a key of this pool's stick table (see StickTable.assign); answered by `stick`. */
  | { t: 'stick!'; id: number; pool: string; key: string; server: string; expect: Expect };

const SUPERVISOR_TYPES = new Set(['config', 'states', 'stats?', 'protection?', 'unblock', 'stop', 'stick']);
const WORKER_TYPES = new Set([
  'hello',
  'ready',
  'failed',
  'applied',
  'beat',
  'stats',
  'protection',
  'unblocked',
  'eject',
  'stick?',
  'stick!',
]);

/** A message of the supervisor (anything else on the channel is not ours). */
export function isSupervisorMessage(m: unknown): m is SupervisorMessage {
  return typeof m === 'object' && m !== null && SUPERVISOR_TYPES.has((m as { t?: unknown }).t as string);
}

/** A message of a worker (anything else on the channel is not ours). */
export function isWorkerMessage(m: unknown): m is WorkerMessage {
  return typeof m === 'object' && m !== null && WORKER_TYPES.has((m as { t?: unknown }).t as string);
}
