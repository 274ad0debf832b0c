/**
 * A worker process under a supervisor (`workers` > 1): it runs the listeners of the config the
 * supervisor sends (never the file: a replacement gets the running config with the admin's
 * changes), takes server states from it instead of checking health itself, reports outlier
 * ejections, heartbeats with its figures, and stops when told. See docs/workers.md.
 */
import { Telemetry } from '../admin/metrics.js';
import { addObserver } from '../admin/observers.js';
import { protectionReports } from '../admin/protectionReport.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { Runtime } from '../runtime/runtime.js';
import {
  isSupervisorMessage,
  type PoolStatuses,
  type SupervisorMessage,
  type WorkerMessage,
  type WorkerStats,
} from './messages.js';
import { refusalsOf } from './protectionView.js';
import { answerStick, useSupervisorTables } from './supervisorStickTable.js';

/** Longest pause between two heartbeats (shorter when `workerTimeout` is short). */
const MAX_BEAT_MS = 1000;

export interface WorkerAgentOptions {
  /** The config file's name (for error messages; the worker never reads it). */
  file: string;
  log: Logger;
  /** Sends a message to the supervisor (process.send). */
  send: (message: WorkerMessage) => void;
  /** Called once the worker has stopped (exit code). */
  exit: (code: number) => void;
}

export class WorkerAgent {
  private runtime: Runtime | null = null;
  private telemetry: Telemetry | null = null;
  private access: { close(): Promise<void>; reopen(): void } | null = null;
  /** Messages are handled one after the other (a config's apply is async). */
  private queue: Promise<void> = Promise.resolve();
  private beat: NodeJS.Timeout | null = null;
  /** Ejections known to the supervisor (pool\0server → until), to report only new ones. */
  private readonly ejections = new Map<string, number>();
  private stopping = false;

  constructor(private readonly options: WorkerAgentOptions) {
    this.startBeating(MAX_BEAT_MS);
  }

  /** A message from the supervisor (others are ignored). */
  onMessage(m: unknown): void {
    if (!isSupervisorMessage(m)) return;
    // Answers of the stick table and requests for figures do not wait behind a reload.
    if (m.t === 'stats?') {
      this.options.send({ t: 'stats', id: m.id, stats: this.stats() });
      return;
    }
    if (m.t === 'protection?') {
      const listeners = protectionReports(this.runtime?.listeners.values() ?? [], Date.now());
      this.options.send({ t: 'protection', id: m.id, listeners });
      return;
    }
    if (m.t === 'unblock') {
      const p = this.runtime?.listeners.get(m.listener)?.protection;
      const found = p?.detector?.unblock(m.ip) === true;
      this.options.send({ t: 'unblocked', id: m.id, listener: p != null, found });
      return;
    }
    if (m.t === 'stick') {
      answerStick(m.id, m.server);
      return;
    }
    this.queue = this.queue
      .then(() => this.handle(m))
      .catch((err: Error) => this.options.log.error(err.message));
  }

  /** Reopens the access log (SIGUSR1, forwarded by the supervisor). */
  reopen(): void {
    this.access?.reopen();
  }

  /** Finishes what is in flight (up to `timeoutMs`), then exits 0. */
  async stop(timeoutMs: number): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.beat !== null) clearInterval(this.beat);
    await this.runtime?.shutdown(timeoutMs);
    this.telemetry?.close();
    await this.access?.close();
    this.options.exit(0);
  }

  private async handle(m: SupervisorMessage): Promise<void> {
    if (this.stopping) return;
    switch (m.t) {
      case 'config':
        if (this.runtime === null) await this.start(m.config, m.states);
        else await this.apply(m.config, m.states);
        return;
      case 'states':
        this.applyStates(m.states);
        return;
      case 'stop':
        await this.stop(m.timeoutMs);
        return;
    }
  }

  private async start(config: Config, states: PoolStatuses): Promise<void> {
    const { file, log } = this.options;
    try {
      await this.shareSticky(config);
      const runtime = new Runtime(config, { file, log, activeChecks: false });
      this.runtime = runtime;
      const telemetry = new Telemetry(runtime);
      this.telemetry = telemetry;
      addObserver(runtime, telemetry);
      const { startAccessLog } = await import('../admin/followers.js');
      this.access = await startAccessLog(runtime, log);
      await runtime.start();
      this.applyStates(states);
      this.startBeating(Math.min(MAX_BEAT_MS, Math.max(50, Math.floor(config.workerTimeout / 4))));
      this.options.send({ t: 'ready' });
    } catch (err) {
      const problems = err instanceof ConfigError ? err.problems : undefined;
      this.options.send({ t: 'failed', message: (err as Error).message, ...(problems ? { problems } : {}) });
      this.stopping = true;
      this.options.exit(2);
    }
  }

  private async apply(config: Config, states: PoolStatuses): Promise<void> {
    try {
      await this.shareSticky(config);
      await this.runtime!.apply(config);
      this.applyStates(states);
      this.options.send({ t: 'applied', ok: true });
    } catch (err) {
      this.options.send({ t: 'applied', ok: false, message: (err as Error).message });
    }
  }

  /** Stick tables in memory are the supervisor's, shared by all workers. */
  private async shareSticky(config: Config): Promise<void> {
    if (config.pools.some((p) => p.sticky !== undefined)) await useSupervisorTables(this.options.send);
  }

  /** Server states as the supervisor holds them: health results, admin changes, ejections. */
  private applyStates(states: PoolStatuses): void {
    for (const pool of this.runtime?.pools.values() ?? []) {
      const byServer = states[pool.name];
      if (byServer === undefined) continue;
      for (const s of pool.servers) {
        const want = byServer[s.id];
        if (want === undefined) continue;
        if (s.state !== want.state) pool.setState(s, want.state, want.reason);
        this.ejections.set(`${pool.name}\0${s.id}`, want.ejectedUntil);
        if (want.ejectedUntil > s.ejectedUntil) {
          s.ejectedUntil = want.ejectedUntil;
          pool.invalidate();
        }
      }
    }
  }

  private startBeating(everyMs: number): void {
    if (this.beat !== null) clearInterval(this.beat);
    this.beat = setInterval(() => {
      this.reportEjections();
      this.options.send({ t: 'beat', stats: this.stats() });
    }, everyMs);
  }

  /** Ejections made here by outlier detection that the supervisor does not know yet. */
  private reportEjections(): void {
    const now = Date.now();
    for (const pool of this.runtime?.pools.values() ?? []) {
      for (const s of pool.servers) {
        if (s.ejectedUntil <= now) continue;
        const key = `${pool.name}\0${s.id}`;
        if ((this.ejections.get(key) ?? 0) >= s.ejectedUntil) continue;
        this.ejections.set(key, s.ejectedUntil);
        this.options.send({ t: 'eject', pool: pool.name, server: s.id, until: s.ejectedUntil });
      }
    }
  }

  private stats(): WorkerStats {
    const runtime = this.runtime;
    if (runtime === null) return { entries: [], servers: [], listeners: [] };
    const servers: WorkerStats['servers'] = [];
    const idle: NonNullable<WorkerStats['idle']> = [];
    for (const pool of runtime.pools.values()) {
      for (const s of pool.servers) {
        servers.push([pool.name, s.id, s.active, s.total, s.failures, s.ewmaMs, s.samples]);
        const n = runtime.upstreams.idleCount(s);
        if (n > 0) idle.push([pool.name, s.id, n]);
      }
    }
    return {
      entries: this.telemetry?.exportEntries() ?? [],
      servers,
      listeners: [...runtime.listeners.values()].map((l) => ({
        name: l.name,
        host: l.address.host,
        port: l.address.port,
        connections: l.connectionCount,
      })),
      idle,
      dns: this.telemetry?.exportDns() ?? [],
      // Only the counts: the supervisor keeps them when this worker is gone (blocks and top talkers go with it).
      refused: refusalsOf(
        [...runtime.listeners.values()].flatMap((l) =>
          l.protection == null ? [] : [{ listener: l.name, rejected: l.protection.rejected }],
        ),
      ),
    };
  }
}
