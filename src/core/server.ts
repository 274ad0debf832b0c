/**
 * One upstream server: its endpoint, its configured weight, and the live state and statistics
 * that balancing policies read. Identity (`id`) is the configured name, else the address, and is
 * stable across reloads so that stick tables, cookies and statistics survive config changes.
 */
export type ServerState = 'up' | 'down' | 'draining' | 'maintenance';

export interface Transition {
  at: number;
  from: ServerState;
  to: ServerState;
  reason: string;
}

export interface ServerSpec {
  /** `name` if configured, else the address text. */
  id: string;
  host: string;
  port: number;
  /** Address as written in the config, `host:port` (IPv6 in brackets). */
  address: string;
  weight: number;
  backup: boolean;
  /** L4: most connections (udp flows) open to this server at once; absent = unlimited. */
  maxConnections?: number | undefined;
  /** L4 (tcp): overrides the pool's sendProxyProtocol; 'none' sends none. */
  sendProxyProtocol?: 'v1' | 'v2' | 'none' | undefined;
}

/** Weight of the exponentially weighted moving average of response times (per new sample). */
const EWMA_ALPHA = 0.2;
/** A failed request counts as at least this slow, so that failing fast is never rewarded. */
export const FAILURE_PENALTY_MS = 1000;
const MAX_PENALTY_MS = 30_000;

export class Server {
  readonly id: string;
  host: string;
  port: number;
  address: string;
  /** Configured weight (0 means: never chosen by weighted policies unless it is the only one). */
  weight: number;
  /**
   * Weight the policies use right now: equal to `weight`, except while slow start ramps a
   * recovered server up. Kept as a field so that pick() never computes it.
   */
  effectiveWeight: number;
  backup: boolean;
  /** L4: most connections (udp flows) open to this server at once; undefined = unlimited. */
  maxConnections: number | undefined;
  /** L4 (tcp): overrides the pool's sendProxyProtocol; 'none' sends none. */
  sendProxyProtocol: 'v1' | 'v2' | 'none' | undefined;
  state: ServerState = 'up';
  /** Passive ejection (outlier detection): not eligible before this time (ms since epoch). */
  ejectedUntil = 0;
  /** The last state change and why, for logs, the API and the dashboard. */
  lastTransition: Transition | null = null;

  /** In-flight requests (L7) or open connections (L4) currently leased to this server. */
  active = 0;
  /** Leases handed out in total. */
  total = 0;
  /** Leases released with ok=false in total. */
  failures = 0;
  /** Consecutive failures, reset by a success (read by passive health checks). */
  consecutiveFailures = 0;
  /** Moving average of response time in ms; meaningful only when `samples > 0`. */
  ewmaMs = 0;
  samples = 0;

  constructor(spec: ServerSpec) {
    this.id = spec.id;
    this.host = spec.host;
    this.port = spec.port;
    this.address = spec.address;
    this.weight = spec.weight;
    this.effectiveWeight = spec.weight;
    this.backup = spec.backup;
    this.maxConnections = spec.maxConnections;
    this.sendProxyProtocol = spec.sendProxyProtocol;
  }

  /** Up, and not ejected at `now`. Draining and maintenance servers take no new work. */
  isAvailable(now: number): boolean {
    return this.state === 'up' && this.ejectedUntil <= now;
  }

  /** Forget the response-time estimate: a server back from down is measured afresh. */
  resetEstimate(): void {
    this.ewmaMs = 0;
    this.samples = 0;
  }

  /** Feed one outcome into the statistics. Called by Pool.release only. */
  record(ok: boolean, durationMs: number): void {
    if (ok) {
      this.consecutiveFailures = 0;
    } else {
      this.failures++;
      this.consecutiveFailures++;
      // A failure is sampled as slow: a server that fails fast must not look fast. Capped, so
      // that a long run of failures cannot push the average towards Infinity.
      durationMs = Math.min(Math.max(durationMs, FAILURE_PENALTY_MS, this.ewmaMs * 2), MAX_PENALTY_MS);
    }
    this.ewmaMs = this.samples === 0 ? durationMs : this.ewmaMs + EWMA_ALPHA * (durationMs - this.ewmaMs);
    this.samples++;
  }
}
