/**
 * Readiness: whether this balancer serves, the one verdict behind the admin API's `GET /ready`
 * and `fulcrum health` (keepalived's `track_script`, systemd, container probes). Ready means:
 * the runtime is running (every listener bound: not starting, not stopping), and every
 * listener's default pool has at least `minServers` usable servers (up, not ejected, not drained,
 * weight > 0 while others have weight; backups count when no primary is usable, as the proxy
 * uses them then). Routed pools are not counted: a listener whose default pool serves still
 * answers.
 */
import type { Runtime } from '../runtime/runtime.js';

/** What counts as ready. */
export interface ReadinessOptions {
  /** Usable servers each listener's default pool needs (default 1; 0 checks the listeners only). */
  minServers?: number;
  /**
   * Whether a listener is bound, when the runtime does not bind them itself: a supervisor's
   * (`workers` > 1) listeners are bound by its workers, so it asks them.
   */
  bound?: (listener: string) => boolean;
}

/** One listener's part of the verdict. */
export interface ListenerReadiness {
  listener: string;
  /** The default pool ('' for a dns listener without one, which is not counted). */
  pool: string;
  bound: boolean;
  /** Usable servers of the default pool right now. */
  usable: number;
  /** Servers of the default pool. */
  servers: number;
  ready: boolean;
}

/** The verdict: `reason` is one line, "ready: ..." or what is missing. */
export interface Readiness {
  ready: boolean;
  reason: string;
  minServers: number;
  listeners: ListenerReadiness[];
}

/** The default of `minServers`. */
export const DEFAULT_MIN_SERVERS = 1;

/** Whether `runtime` serves, and why not (see the module comment). */
export function readiness(runtime: Runtime, options: ReadinessOptions = {}): Readiness {
  const minServers = options.minServers ?? DEFAULT_MIN_SERVERS;
  const listeners: ListenerReadiness[] = [];
  const problems: string[] = [];
  const running = runtime.isRunning;
  for (const l of runtime.config.listeners) {
    const bound =
      running && (options.bound === undefined ? runtime.listeners.has(l.name) : options.bound(l.name));
    const pool = l.pool === '' ? undefined : runtime.pools.get(l.pool);
    const usable = pool?.eligibleServers().length ?? 0;
    const servers = pool?.servers.length ?? 0;
    const poolOk = l.pool === '' || usable >= minServers;
    if (running && !bound) problems.push(`listener ${l.name} is not bound`);
    if (!poolOk) {
      problems.push(
        `listener ${l.name}: pool ${l.pool} has ${usable} usable server(s) of ${servers}, needs ${minServers}`,
      );
    }
    listeners.push({ listener: l.name, pool: l.pool, bound, usable, servers, ready: bound && poolOk });
  }
  if (!running) problems.unshift('the balancer is not running (starting or stopping)');
  const ready = problems.length === 0;
  const reason = ready
    ? `ready: ${listeners.length} listener(s) bound, ${listeners
        .filter((l) => l.pool !== '')
        .map((l) => `${l.listener} → ${l.pool} ${l.usable}/${l.servers} usable`)
        .join(', ')}`
    : problems.join('; ');
  return { ready, reason, minServers, listeners };
}
