/**
 * Traffic figures for `/metrics` (Prometheus, through prom-client), the admin API and the
 * dashboard.
 *
 * The per-request path is a few array increments: each (listener, pool, server) gets an entry,
 * found through three small maps and cached, holding plain numbers (requests by status class,
 * duration buckets, sum, retries) and the server's live statistics. prom-client's own label
 * children re-hash their labels on every call, so they are not used on that path: the numbers are
 * handed to prom-client when Prometheus scrapes (collect callbacks and a histogram collector that
 * prints the entries' buckets). Server state, connections, health checks and ejections are read
 * from the running pools at scrape time and once a second.
 */
import client, { type Metric, Registry } from 'prom-client';
import type { ExchangeRecord, TrafficObserver } from '../core/observer.js';
import type { Pool, TransitionListener } from '../core/pool.js';
import type { Server, ServerState } from '../core/server.js';
import { VERSION } from '../core/version.js';
import { healthOf } from '../health/index.js';
import { DnsListener } from '../proxy/dns/dnsListener.js';
import { TcpListener } from '../proxy/tcp/tcpListener.js';
import type { Runtime } from '../runtime/runtime.js';
import { LiveStats } from './live.js';
import { type ProtectionReport, protectionReports } from './protectionReport.js';

const { Counter, Gauge, collectDefaultMetrics } = client;

/** Upper bounds of the request duration histogram, in seconds (and ms for recording). */
export const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const BOUNDS_MS = DURATION_BUCKETS.map((s) => s * 1000);
/** Status class labels by `status / 100`; index 0 is "none" (L4, or no status sent). */
const CODES = ['none', '1xx', '2xx', '3xx', '4xx', '5xx'];
const STATES: readonly ServerState[] = ['up', 'down', 'draining', 'maintenance'];

interface Labels {
  listener: string;
  pool: string;
  server: string;
}

/** The cached figures of one (listener, pool, server). */
interface Entry {
  labels: Labels;
  codes: Float64Array;
  /** Non-cumulative counts per bucket, the last one for +Inf. */
  buckets: Float64Array;
  sum: number;
  count: number;
  retries: number;
  /** Bytes received from and sent to clients. */
  bytesIn: number;
  bytesOut: number;
  live: LiveStats | undefined;
}

/** A dns listener's counters as a worker hands them to its supervisor. */
export interface DnsFigures {
  listener: string;
  /** ["A NOERROR", count], ... */
  answered: [string, number][];
  /** [reason, count], ... */
  dropped: [string, number][];
  truncated: number;
}

/** The figures of one (listener, pool, server) as a worker hands them to its supervisor. */
export interface EntryFigures extends Labels {
  codes: number[];
  buckets: number[];
  sum: number;
  count: number;
  retries: number;
  bytesIn: number;
  bytesOut: number;
}

/** Most requests of one merge replayed into the live statistics (bounds the work per merge). */
const MAX_LIVE_REPLAY = 100_000;

/** Counts since the admin endpoint started, for the status view and the dashboard. */
export interface Totals {
  /** Requests (http) or connections and flows (tcp, udp) finished. */
  requests: number;
  /** Answers with a 4xx and 5xx status (http). */
  errors4xx: number;
  errors5xx: number;
  /** Tries beyond the first. */
  retries: number;
  bytesIn: number;
  bytesOut: number;
}

/** What is tracked per server between samples (health checks and ejections are polled). */
interface Tracked {
  ejectedUntil: number;
  ejections: number;
  healthAt: number;
  healthOk: boolean;
  healthConsecutive: number;
  passes: number;
  fails: number;
  transitions: Map<ServerState, number>;
}

export type TransitionHandler = (pool: Pool, server: Server, from: ServerState, reason: string) => void;

export class Telemetry implements TrafficObserver {
  readonly registry = new Registry();
  /** listener → pool → server ('' when none was reached) → entry. */
  private readonly entries = new Map<string, Map<string, Map<string, Entry>>>();
  /** pool → server → live statistics (shared by the listeners that use the pool). */
  private readonly live = new Map<string, Map<string, LiveStats>>();
  private readonly tracked = new Map<string, Map<string, Tracked>>();
  private readonly watched = new Map<Pool, TransitionListener>();
  private lastTick = Date.now();
  /** A supervisor's workers run the listeners: their open connections, summed (src/cluster/). */
  listenerConnections: ((listener: string) => number | undefined) | null = null;
  /** A supervisor's workers run the listeners: their protection, merged (src/cluster/). */
  protectionSource: (() => ProtectionReport[]) | null = null;
  /** A supervisor's workers run the dns listeners: their counters, summed (src/cluster/). */
  dnsSource: (() => DnsFigures[]) | null = null;
  /** A supervisor's workers hold the upstream connections: their idle ones, summed. */
  serverIdle: ((pool: string, server: string) => number) | null = null;
  private reloads = { success: 0, failure: 0 };

  constructor(
    private readonly runtime: Runtime,
    private readonly onTransition?: TransitionHandler,
  ) {
    this.register();
    collectDefaultMetrics({ register: this.registry });
    this.sync();
  }

  // ------------------------------------------------------------------------- the request path

  onExchange(r: ExchangeRecord): void {
    const e = this.entry(r.listener, r.pool, r.server ?? '');
    const status = r.status;
    e.codes[status >= 100 && status < 600 ? (status / 100) | 0 : 0]!++;
    const ms = r.durationMs;
    let b = 0;
    while (b < BOUNDS_MS.length && ms > BOUNDS_MS[b]!) b++;
    e.buckets[b]!++;
    e.sum += ms;
    e.count++;
    if (r.retries > 0) e.retries += r.retries;
    e.bytesIn += r.bytesIn ?? 0;
    e.bytesOut += r.bytesOut;
    e.live?.record(ms);
  }

  private entry(listener: string, pool: string, server: string): Entry {
    const byPool = child(this.entries, listener);
    const byServer = child(byPool, pool);
    let e = byServer.get(server);
    if (e === undefined) {
      e = {
        labels: { listener, pool, server },
        codes: new Float64Array(CODES.length),
        buckets: new Float64Array(BOUNDS_MS.length + 1),
        sum: 0,
        count: 0,
        retries: 0,
        bytesIn: 0,
        bytesOut: 0,
        live: server === '' ? undefined : this.liveOf(pool, server),
      };
      byServer.set(server, e);
    }
    return e;
  }

  // ----------------------------------------------------------- worker processes (src/cluster/)

  /** This process's request figures, for a supervisor to merge with other workers'. */
  exportEntries(): EntryFigures[] {
    const out: EntryFigures[] = [];
    for (const byPool of this.entries.values()) {
      for (const byServer of byPool.values()) {
        for (const e of byServer.values()) {
          out.push({
            ...e.labels,
            codes: [...e.codes],
            buckets: [...e.buckets],
            sum: e.sum,
            count: e.count,
            retries: e.retries,
            bytesIn: e.bytesIn,
            bytesOut: e.bytesOut,
          });
        }
      }
    }
    return out;
  }

  /**
   * Sets the request figures to the sum of `sources` (a supervisor: each worker's, and those of
   * workers gone). The requests counted since the last merge feed the live statistics at their
   * mean duration (the dashboard's rates; its percentiles are then approximate).
   */
  mergeEntries(sources: Iterable<readonly EntryFigures[]>): void {
    const before = new Map<Entry, { count: number; sum: number }>();
    for (const byPool of this.entries.values()) {
      for (const byServer of byPool.values()) {
        for (const e of byServer.values()) {
          before.set(e, { count: e.count, sum: e.sum });
          e.codes.fill(0);
          e.buckets.fill(0);
          e.sum = e.count = e.retries = e.bytesIn = e.bytesOut = 0;
        }
      }
    }
    for (const figures of sources) {
      for (const f of figures) {
        const e = this.entry(f.listener, f.pool, f.server);
        for (let i = 0; i < e.codes.length; i++) e.codes[i]! += f.codes[i] ?? 0;
        for (let i = 0; i < e.buckets.length; i++) e.buckets[i]! += f.buckets[i] ?? 0;
        e.sum += f.sum;
        e.count += f.count;
        e.retries += f.retries;
        e.bytesIn += f.bytesIn;
        e.bytesOut += f.bytesOut;
      }
    }
    for (const byPool of this.entries.values()) {
      for (const byServer of byPool.values()) {
        for (const e of byServer.values()) {
          const old = before.get(e) ?? { count: 0, sum: 0 };
          const added = Math.min(e.count - old.count, MAX_LIVE_REPLAY);
          if (e.live === undefined || added <= 0) continue;
          const mean = (e.sum - old.sum) / (e.count - old.count);
          for (let i = 0; i < added; i++) e.live.record(mean);
        }
      }
    }
  }

  // ------------------------------------------------------------------------------ once a second

  /** Live statistics of a server (created on first use). */
  liveOf(pool: string, server: string): LiveStats {
    const byServer = child(this.live, pool);
    let s = byServer.get(server);
    if (s === undefined) {
      s = new LiveStats();
      byServer.set(server, s);
    }
    return s;
  }

  /** Closes a second of live statistics and polls the pools. */
  tick(now = Date.now()): void {
    const elapsed = now - this.lastTick;
    this.lastTick = now;
    for (const byServer of this.live.values()) for (const s of byServer.values()) s.tick(elapsed);
    this.sync(now);
  }

  /** Requests counted for a listener since the admin started. */
  requestsOf(listener: string): number {
    let n = 0;
    for (const byServer of this.entries.get(listener)?.values() ?? []) {
      for (const e of byServer.values()) n += e.count;
    }
    return n;
  }

  /** Totals of a listener (over its pools and servers). */
  listenerTotals(listener: string): Totals {
    const t = emptyTotals();
    for (const byServer of this.entries.get(listener)?.values() ?? []) {
      for (const e of byServer.values()) addTo(t, e);
    }
    return t;
  }

  /** Totals of a server (over the listeners that sent it traffic). */
  serverTotals(pool: string, server: string): Totals {
    const t = emptyTotals();
    for (const byPool of this.entries.values()) {
      const e = byPool.get(pool)?.get(server);
      if (e !== undefined) addTo(t, e);
    }
    return t;
  }

  ejectionsOf(pool: string, server: string): number {
    return this.tracked.get(pool)?.get(server)?.ejections ?? 0;
  }

  countReload(ok: boolean): void {
    if (ok) this.reloads.success++;
    else this.reloads.failure++;
  }

  /**
   * Watches state transitions of every pool, polls health checks and ejections, and forgets
   * servers, pools and listeners that are gone.
   */
  sync(now = Date.now()): void {
    const pools = this.runtime.pools;
    for (const pool of pools.values()) {
      if (!this.watched.has(pool)) {
        const listener: TransitionListener = (server, from, reason) => {
          const counts = this.track(pool.name, server.id).transitions;
          counts.set(server.state, (counts.get(server.state) ?? 0) + 1);
          this.onTransition?.(pool, server, from, reason);
        };
        pool.transitionListeners.push(listener);
        this.watched.set(pool, listener);
      }
      for (const s of pool.servers) this.poll(pool.name, s, now);
    }
    for (const [pool, listener] of this.watched) {
      if (pools.get(pool.name) === pool) continue;
      unlisten(pool, listener);
      this.watched.delete(pool);
    }
    this.prune();
  }

  /** Stops watching the pools. */
  close(): void {
    for (const [pool, listener] of this.watched) unlisten(pool, listener);
    this.watched.clear();
  }

  private track(pool: string, server: string): Tracked {
    const byServer = child(this.tracked, pool);
    let t = byServer.get(server);
    if (t === undefined) {
      t = {
        ejectedUntil: 0,
        ejections: 0,
        healthAt: 0,
        healthOk: true,
        healthConsecutive: 0,
        passes: 0,
        fails: 0,
        transitions: new Map(),
      };
      byServer.set(server, t);
    }
    return t;
  }

  private poll(pool: string, s: Server, now: number): void {
    const t = this.track(pool, s.id);
    if (s.ejectedUntil > now && s.ejectedUntil !== t.ejectedUntil) t.ejections++;
    t.ejectedUntil = s.ejectedUntil;
    const h = healthOf(s);
    if (h !== undefined && h.lastCheckAt !== t.healthAt) {
      // Checks since the last look: the run of equal outcomes grew, or a new run began.
      const n =
        t.healthAt === 0
          ? 1
          : h.ok === t.healthOk && h.consecutive > t.healthConsecutive
            ? h.consecutive - t.healthConsecutive
            : h.consecutive;
      if (h.ok) t.passes += n;
      else t.fails += n;
      t.healthAt = h.lastCheckAt;
      t.healthOk = h.ok;
      t.healthConsecutive = h.consecutive;
    }
  }

  private prune(): void {
    const pools = this.runtime.pools;
    // The config's listeners: a supervisor of workers runs none itself but counts theirs.
    const listeners = new Set(this.runtime.config.listeners.map((l) => l.name));
    const exists = (pool: string, server: string) =>
      server === '' ? pools.has(pool) : pools.get(pool)?.find(server) !== undefined;
    for (const [listener, byPool] of this.entries) {
      if (!listeners.has(listener)) {
        this.entries.delete(listener);
        continue;
      }
      for (const [pool, byServer] of byPool) {
        for (const server of byServer.keys()) if (!exists(pool, server)) byServer.delete(server);
        if (byServer.size === 0) byPool.delete(pool);
      }
    }
    for (const map of [this.live, this.tracked] as Map<string, Map<string, unknown>>[]) {
      for (const [pool, byServer] of map) {
        for (const server of byServer.keys()) if (!exists(pool, server)) byServer.delete(server);
        if (byServer.size === 0) map.delete(pool);
      }
    }
  }

  // --------------------------------------------------------------------------------- exporting

  private allEntries(): Entry[] {
    const out: Entry[] = [];
    for (const byPool of this.entries.values()) {
      for (const byServer of byPool.values()) for (const e of byServer.values()) out.push(e);
    }
    return out;
  }

  /** Idle keep-alive connections to a server: this process's, or the workers' summed. */
  idleOf(pool: string, s: Server): number {
    return this.serverIdle === null ? this.runtime.upstreams.idleCount(s) : this.serverIdle(pool, s.id);
  }

  /** Queries a dns listener answered: this process's, or the workers' summed. */
  dnsQueriesOf(listener: string): number {
    let n = 0;
    for (const [name, f] of this.dnsStats()) if (name === listener) for (const [, c] of f.answered) n += c;
    return n;
  }

  /** Every listener's protection: this process's, or the workers' merged. */
  private protection(now: number): ProtectionReport[] {
    return this.protectionSource?.() ?? protectionReports(this.runtime.listeners.values(), now);
  }

  /** The counters of the dns listeners, by listener name. */
  private dnsStats(): Array<[string, DnsFigures]> {
    return (this.dnsSource?.() ?? this.exportDns()).map((f) => [f.listener, f]);
  }

  /** This process's dns listeners' counters (a worker sends them to its supervisor). */
  exportDns(): DnsFigures[] {
    const out: DnsFigures[] = [];
    for (const l of this.runtime.listeners.values()) {
      if (!(l instanceof DnsListener)) continue;
      const { answered, dropped, truncated } = l.stats;
      out.push({ listener: l.name, answered: [...answered], dropped: [...dropped], truncated });
    }
    return out;
  }

  private eachServer(fn: (pool: Pool, s: Server) => void): void {
    for (const pool of this.runtime.pools.values()) for (const s of pool.servers) fn(pool, s);
  }

  private register(): void {
    const registry = this.registry;
    const self = this;
    const serverLabels = ['pool', 'server'] as const;

    new Counter({
      name: 'fulcrum_requests_total',
      help: 'Requests (HTTP) and connections (tcp, udp flows) finished, by listener, pool, server and status class ("none" for L4 and for exchanges without a status).',
      labelNames: ['listener', 'pool', 'server', 'code'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const e of self.allEntries()) {
          e.codes.forEach((n, i) => {
            if (n > 0) this.inc({ ...e.labels, code: CODES[i]! }, n);
          });
        }
      },
    });
    registry.registerMetric(
      new HistogramCollector(
        'fulcrum_request_duration_seconds',
        'Time from the request head (or connection) to the end of the response (or connection).',
        () => this.allEntries(),
      ) as unknown as Metric,
    );
    new Counter({
      name: 'fulcrum_retries_total',
      help: 'Tries beyond the first, by listener and pool.',
      labelNames: ['listener', 'pool'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const sums = new Map<string, { listener: string; pool: string; n: number }>();
        for (const e of self.allEntries()) {
          const key = `${e.labels.listener}\0${e.labels.pool}`;
          const s = sums.get(key) ?? { listener: e.labels.listener, pool: e.labels.pool, n: 0 };
          s.n += e.retries;
          sums.set(key, s);
        }
        for (const s of sums.values()) this.inc({ listener: s.listener, pool: s.pool }, s.n);
      },
    });
    // DNS listeners answer without exchanges: their own counters, read when scraped.
    new Counter({
      name: 'fulcrum_dns_queries_total',
      help: 'DNS queries answered, by listener, question type and response code.',
      labelNames: ['listener', 'type', 'rcode'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [listener, stats] of self.dnsStats()) {
          for (const [key, n] of stats.answered) {
            const [type, rcode] = key.split(' ') as [string, string];
            this.inc({ listener, type, rcode }, n);
          }
        }
      },
    });
    new Counter({
      name: 'fulcrum_dns_dropped_total',
      help: 'DNS packets left unanswered, by listener and reason (malformed, rate-limited, too-large).',
      labelNames: ['listener', 'reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [listener, stats] of self.dnsStats()) {
          for (const [reason, n] of stats.dropped) this.inc({ listener, reason }, n);
        }
      },
    });
    new Counter({
      name: 'fulcrum_dns_truncated_total',
      help: 'DNS answers sent over UDP with TC set (too large for the client), by listener.',
      labelNames: ['listener'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [listener, stats] of self.dnsStats()) this.inc({ listener }, stats.truncated);
      },
    });
    new Gauge({
      name: 'fulcrum_listener_connections',
      help: 'Open client connections (udp: flows) per listener.',
      labelNames: ['listener', 'protocol'] as const,
      registers: [registry],
      collect() {
        this.reset();
        const ofWorkers = self.listenerConnections;
        if (ofWorkers !== null) {
          for (const l of self.runtime.config.listeners) {
            this.set({ listener: l.name, protocol: l.protocol }, ofWorkers(l.name) ?? 0);
          }
          return;
        }
        for (const l of self.runtime.listeners.values()) {
          this.set({ listener: l.name, protocol: l.protocol }, l.connectionCount);
        }
      },
    });
    new Counter({
      name: 'fulcrum_tls_client_hello_rejected_total',
      help: 'Connections a tcp listener with sni routes closed before reading a TLS ClientHello, by reason: timeout (none in timeouts.clientHello) or invalid (not TLS, malformed, over 16 KiB).',
      labelNames: ['listener', 'reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const l of self.runtime.listeners.values()) {
          if (!(l instanceof TcpListener) || l.sni === null) continue;
          for (const [reason, n] of Object.entries(l.helloRejections))
            this.inc({ listener: l.name, reason }, n);
        }
      },
    });
    new Gauge({
      name: 'fulcrum_server_in_flight',
      help: 'Requests in flight (http), open connections (tcp) or flows (udp) per server: what least-connections counts.',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => this.set({ pool: p.name, server: s.id }, s.active));
      },
    });
    new Gauge({
      name: 'fulcrum_server_idle_connections',
      help: 'Idle keep-alive connections to the server, kept for the next http request (open upstream connections: this plus the requests in flight).',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => this.set({ pool: p.name, server: s.id }, self.idleOf(p.name, s)));
      },
    });
    for (const [name, help, field] of [
      [
        'fulcrum_received_bytes_total',
        'Bytes received from clients (http: request heads and bodies; tcp: the stream; udp: not counted), by listener, pool and server.',
        'bytesIn',
      ],
      [
        'fulcrum_sent_bytes_total',
        'Bytes sent to clients (http: response heads and bodies), by listener, pool and server.',
        'bytesOut',
      ],
    ] as const) {
      new Counter({
        name,
        help,
        labelNames: ['listener', 'pool', 'server'] as const,
        registers: [registry],
        collect() {
          this.reset();
          for (const e of self.allEntries()) if (e[field] > 0) this.inc(e.labels, e[field]);
        },
      });
    }
    new Gauge({
      name: 'fulcrum_server_up',
      help: '1 when the server is up (health checks pass and no operator took it out), else 0.',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => this.set({ pool: p.name, server: s.id }, s.state === 'up' ? 1 : 0));
      },
    });
    new Gauge({
      name: 'fulcrum_server_state',
      help: 'The server state: 1 for the current one of up, down, draining, maintenance.',
      labelNames: ['pool', 'server', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => {
          for (const state of STATES)
            this.set({ pool: p.name, server: s.id, state }, s.state === state ? 1 : 0);
        });
      },
    });
    new Counter({
      name: 'fulcrum_server_transitions_total',
      help: 'State changes per server, by the state entered (since the admin endpoint started).',
      labelNames: ['pool', 'server', 'state'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, byServer] of self.tracked) {
          for (const [server, t] of byServer) {
            for (const [state, n] of t.transitions) this.inc({ pool, server, state }, n);
          }
        }
      },
    });
    new Gauge({
      name: 'fulcrum_server_weight',
      help: 'Configured weight per server.',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => this.set({ pool: p.name, server: s.id }, s.weight));
      },
    });
    new Gauge({
      name: 'fulcrum_server_ejected',
      help: '1 while passive outlier detection keeps the server out of rotation, else 0.',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        const now = Date.now();
        self.eachServer((p, s) => this.set({ pool: p.name, server: s.id }, s.ejectedUntil > now ? 1 : 0));
      },
    });
    new Counter({
      name: 'fulcrum_server_ejections_total',
      help: 'Ejections by passive outlier detection per server (since the admin endpoint started).',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => this.inc({ pool: p.name, server: s.id }, self.ejectionsOf(p.name, s.id)));
      },
    });
    new Counter({
      name: 'fulcrum_health_checks_total',
      help: 'Active health check results per server (since the admin endpoint started).',
      labelNames: ['pool', 'server', 'result'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const [pool, byServer] of self.tracked) {
          for (const [server, t] of byServer) {
            if (t.healthAt === 0) continue;
            this.inc({ pool, server, result: 'pass' }, t.passes);
            this.inc({ pool, server, result: 'fail' }, t.fails);
          }
        }
      },
    });
    new Gauge({
      name: 'fulcrum_health_check_passing',
      help: '1 when the last active health check of the server passed, 0 when it failed (absent without checks).',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => {
          const h = healthOf(s);
          if (h !== undefined) this.set({ pool: p.name, server: s.id }, h.ok ? 1 : 0);
        });
      },
    });
    new Gauge({
      name: 'fulcrum_health_check_duration_seconds',
      help: 'Duration of the last active health check of the server.',
      labelNames: serverLabels,
      registers: [registry],
      collect() {
        this.reset();
        self.eachServer((p, s) => {
          const h = healthOf(s);
          if (h !== undefined) this.set({ pool: p.name, server: s.id }, h.durationMs / 1000);
        });
      },
    });
    new Counter({
      name: 'fulcrum_sticky_reassignments_total',
      help: 'Requests whose sticky server could not take them and went to another server, per pool.',
      labelNames: ['pool'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const p of self.runtime.pools.values()) this.inc({ pool: p.name }, p.reassigned);
      },
    });
    new Gauge({
      name: 'fulcrum_build_info',
      help: 'Always 1; the labels say which Fulcrum and which Node.js run.',
      labelNames: ['version', 'node'] as const,
      registers: [registry],
    }).set({ version: VERSION, node: process.versions.node }, 1);
    new Counter({
      name: 'fulcrum_protection_rejected_total',
      help: "Connections, requests and datagrams refused by a listener's protection, by reason (deny, blocked, connections, connection-rate, rate, body-size, url-length, slow-body, surge, shared-down, packets).",
      labelNames: ['listener', 'reason'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.protection(Date.now())) {
          for (const [reason, n] of Object.entries(r.rejected)) this.inc({ listener: r.listener, reason }, n);
        }
      },
    });
    // Protection's state now: clients blocked by detection, and surge shedding on or off.
    new Gauge({
      name: 'fulcrum_protection_blocked_clients',
      help: "Clients blocked by a listener's abnormal-traffic detection now.",
      labelNames: ['listener'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.protection(Date.now())) this.set({ listener: r.listener }, r.blocked.length);
      },
    });
    new Gauge({
      name: 'fulcrum_protection_surge_active',
      help: 'Whether a listener sheds new clients because of a surge now (1) or not (0); only for listeners with surge shedding.',
      labelNames: ['listener'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const r of self.protection(Date.now())) {
          if (r.surge !== null) this.set({ listener: r.listener }, r.surge.active ? 1 : 0);
        }
      },
    });
    new Counter({
      name: 'fulcrum_config_reloads_total',
      help: 'Config reloads through the admin endpoint or SIGHUP, by result.',
      labelNames: ['result'] as const,
      registers: [registry],
      collect() {
        this.reset();
        this.inc({ result: 'success' }, self.reloads.success);
        this.inc({ result: 'failure' }, self.reloads.failure);
      },
    });
  }
}

function emptyTotals(): Totals {
  return { requests: 0, errors4xx: 0, errors5xx: 0, retries: 0, bytesIn: 0, bytesOut: 0 };
}

function addTo(t: Totals, e: Entry): void {
  t.requests += e.count;
  t.errors4xx += e.codes[4]!;
  t.errors5xx += e.codes[5]!;
  t.retries += e.retries;
  t.bytesIn += e.bytesIn;
  t.bytesOut += e.bytesOut;
}

/** The inner map of `outer` at `key`, created when missing. */
function child<K, V>(outer: Map<string, Map<K, V>>, key: string): Map<K, V> {
  let inner = outer.get(key);
  if (inner === undefined) {
    inner = new Map();
    outer.set(key, inner);
  }
  return inner;
}

function unlisten(pool: Pool, listener: TransitionListener): void {
  const i = pool.transitionListeners.indexOf(listener);
  if (i >= 0) pool.transitionListeners.splice(i, 1);
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName: string;
}

/**
 * A histogram printed from the entries' own bucket counts, in the shape prom-client's registry
 * prints (`get()` → name, help, type, values with `metricName`).
 */
class HistogramCollector {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly labelNames = ['listener', 'pool', 'server'];

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly source: () => Entry[],
  ) {}

  async get(): Promise<{
    name: string;
    help: string;
    type: string;
    values: MetricValue[];
    aggregator: string;
  }> {
    const values: MetricValue[] = [];
    for (const e of this.source()) {
      let acc = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        acc += e.buckets[i]!;
        values.push({ labels: { ...e.labels, le }, value: acc, metricName: `${this.name}_bucket` });
      });
      acc += e.buckets[DURATION_BUCKETS.length]!;
      values.push({ labels: { ...e.labels, le: '+Inf' }, value: acc, metricName: `${this.name}_bucket` });
      values.push({ labels: { ...e.labels }, value: e.sum / 1000, metricName: `${this.name}_sum` });
      values.push({ labels: { ...e.labels }, value: e.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  reset(): void {
    // The counts belong to the entries; nothing to reset here.
  }
}
