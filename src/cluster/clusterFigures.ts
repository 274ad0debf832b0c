/**
 * The figures of all workers as one balancer's: what each live worker last reported plus what
 * the workers gone had counted (so a replaced worker takes no requests out of the totals), merged
 * into the supervisor's Telemetry (for /metrics, the status and the dashboard) and into its
 * servers' statistics (in flight, totals, response time) that the admin API shows. Protection's
 * refusals are retired the same way and added to the merged protection report by the supervisor
 * (blocked clients and top talkers of a worker gone are not kept).
 */
import type { DnsFigures, EntryFigures, Telemetry } from '../admin/metrics.js';
import type { Runtime } from '../runtime/runtime.js';
import type { Refusals, WorkerStats } from './messages.js';

interface ServerTotals {
  total: number;
  failures: number;
}

export class ClusterFigures {
  /** Last report of each live worker, by its cluster id. */
  private readonly live = new Map<number, WorkerStats>();
  /** The request figures of workers gone, summed. */
  private readonly retired = new Map<string, EntryFigures>();
  /** Server totals of workers gone, by pool\0server. */
  private readonly retiredServers = new Map<string, ServerTotals>();
  /** The dns counters of workers gone, summed. */
  private retiredDns: DnsFigures[] = [];
  /** Protection's refusals of workers gone, by listener\0reason. */
  private readonly retiredRefused = new Map<string, number>();
  private telemetry: Telemetry | null = null;

  constructor(private readonly runtime: Runtime) {}

  /** Merges into `telemetry` from now on (null: stop). */
  attach(telemetry: Telemetry | null): void {
    if (this.telemetry !== null) {
      this.telemetry.listenerConnections = null;
      this.telemetry.serverIdle = null;
      this.telemetry.dnsSource = null;
    }
    this.telemetry = telemetry;
    if (telemetry !== null) {
      telemetry.listenerConnections = (name) => this.listener(name)?.connections;
      telemetry.serverIdle = (pool, server) => this.idleOf(pool, server);
      telemetry.dnsSource = () => this.dns();
    }
    this.merge();
  }

  /** A worker's new report. */
  report(worker: number, stats: WorkerStats): void {
    this.live.set(worker, stats);
  }

  /**
   * A worker's refusals as it answered `protection?`: fresher than its last heartbeat, and already
   * shown, so they are what it retires with if it dies before its next heartbeat.
   */
  refusals(worker: number, refused: Refusals): void {
    const last = this.live.get(worker) ?? { entries: [], servers: [], listeners: [] };
    this.live.set(worker, { ...last, refused });
  }

  /** Protection's refusals of the workers gone, summed: [listener, reason, count]. */
  retiredRefusals(): Refusals {
    return [...this.retiredRefused].map(([key, n]) => {
      const [listener, reason] = key.split('\0') as [string, string];
      return [listener, reason, n];
    });
  }

  /** A worker is gone: what it had counted stays in the totals. */
  retire(worker: number): void {
    const last = this.live.get(worker);
    this.live.delete(worker);
    if (last === undefined) return;
    for (const f of last.entries) {
      const key = `${f.listener}\0${f.pool}\0${f.server}`;
      const sum = this.retired.get(key);
      if (sum === undefined) {
        this.retired.set(key, { ...f, codes: [...f.codes], buckets: [...f.buckets] });
        continue;
      }
      f.codes.forEach((n, i) => {
        sum.codes[i] = (sum.codes[i] ?? 0) + n;
      });
      f.buckets.forEach((n, i) => {
        sum.buckets[i] = (sum.buckets[i] ?? 0) + n;
      });
      sum.sum += f.sum;
      sum.count += f.count;
      sum.retries += f.retries;
      sum.bytesIn += f.bytesIn;
      sum.bytesOut += f.bytesOut;
    }
    this.retiredDns = sumDns([this.retiredDns, last.dns ?? []]);
    for (const [pool, server, , total, failures] of last.servers) {
      const key = `${pool}\0${server}`;
      const t = this.retiredServers.get(key) ?? { total: 0, failures: 0 };
      t.total += total;
      t.failures += failures;
      this.retiredServers.set(key, t);
    }
    for (const [listener, reason, n] of last.refused ?? []) {
      const key = `${listener}\0${reason}`;
      this.retiredRefused.set(key, (this.retiredRefused.get(key) ?? 0) + n);
    }
  }

  /** Requests (and L4 connections) finished by a worker, from its last report. */
  requestsOf(worker: number): number {
    let n = 0;
    for (const e of this.live.get(worker)?.entries ?? []) n += e.count;
    return n;
  }

  /** In-flight requests and open connections of a worker, over its servers. */
  activeOf(worker: number): number {
    let n = 0;
    for (const s of this.live.get(worker)?.servers ?? []) n += s[2];
    return n;
  }

  /** Idle keep-alive connections to a server, summed over the workers. */
  idleOf(pool: string, server: string): number {
    let n = 0;
    for (const stats of this.live.values()) {
      for (const [p, s, idle] of stats.idle ?? []) if (p === pool && s === server) n += idle;
    }
    return n;
  }

  /** The dns listeners' counters: the live workers' and those of workers gone, summed. */
  dns(): DnsFigures[] {
    return sumDns([this.retiredDns, ...[...this.live.values()].map((s) => s.dns ?? [])]);
  }

  /** A listener as the workers report it: the address they share, connections summed. */
  listener(name: string): { address: { host: string; port: number }; connections: number } | undefined {
    let found: { address: { host: string; port: number }; connections: number } | undefined;
    for (const stats of this.live.values()) {
      const l = stats.listeners.find((x) => x.name === name);
      if (l === undefined) continue;
      found ??= { address: { host: l.host, port: l.port }, connections: 0 };
      found.connections += l.connections;
    }
    return found;
  }

  /** Writes the sums into the telemetry and the supervisor's servers. */
  merge(): void {
    this.telemetry?.mergeEntries([
      [...this.retired.values()],
      ...[...this.live.values()].map((s) => s.entries),
    ]);
    const sums = new Map<
      string,
      { active: number; total: number; failures: number; weighted: number; samples: number }
    >();
    for (const [key, t] of this.retiredServers) {
      sums.set(key, { active: 0, total: t.total, failures: t.failures, weighted: 0, samples: 0 });
    }
    for (const stats of this.live.values()) {
      for (const [pool, server, active, total, failures, ewmaMs, samples] of stats.servers) {
        const key = `${pool}\0${server}`;
        const s = sums.get(key) ?? { active: 0, total: 0, failures: 0, weighted: 0, samples: 0 };
        s.active += active;
        s.total += total;
        s.failures += failures;
        s.weighted += ewmaMs * samples;
        s.samples += samples;
        sums.set(key, s);
      }
    }
    for (const pool of this.runtime.pools.values()) {
      for (const server of pool.servers) {
        const s = sums.get(`${pool.name}\0${server.id}`);
        if (s === undefined) continue;
        server.active = s.active;
        server.total = s.total;
        server.failures = s.failures;
        server.samples = s.samples;
        server.ewmaMs = s.samples > 0 ? s.weighted / s.samples : 0;
      }
    }
  }
}

/** Dns counters summed per listener (answers by type and code, drops by reason, truncations). */
function sumDns(sources: readonly (readonly DnsFigures[])[]): DnsFigures[] {
  const byListener = new Map<
    string,
    { answered: Map<string, number>; dropped: Map<string, number>; truncated: number }
  >();
  for (const figures of sources) {
    for (const f of figures) {
      let sum = byListener.get(f.listener);
      if (sum === undefined) {
        sum = { answered: new Map(), dropped: new Map(), truncated: 0 };
        byListener.set(f.listener, sum);
      }
      for (const [key, n] of f.answered) sum.answered.set(key, (sum.answered.get(key) ?? 0) + n);
      for (const [key, n] of f.dropped) sum.dropped.set(key, (sum.dropped.get(key) ?? 0) + n);
      sum.truncated += f.truncated;
    }
  }
  return [...byListener].map(([listener, s]) => ({
    listener,
    answered: [...s.answered],
    dropped: [...s.dropped],
    truncated: s.truncated,
  }));
}
