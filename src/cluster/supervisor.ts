/**
 * The supervisor of `workers: N` (N > 1): `fulcrum start` as a node:cluster primary. It owns what
 * must be one for the whole balancer: the config and its reloads, the active health checks, the
 * admin API (and its state file), the stick tables of `store: memory`, and the merged figures.
 * Its N workers own the connections: each serves every listener (node:cluster shares the
 * sockets; each worker accepts on them, SCHED_NONE) with the config and server states the
 * supervisor sends them.
 *
 * It heals them: a worker that dies (crash, signal, out of memory) is logged once with its cause,
 * counted (`fulcrum_worker_restarts_total`) and replaced at once (later, backing off, when it
 * keeps dying); one whose heartbeats stop for `workerTimeout` (its event loop blocked) is killed
 * and replaced. The supervisor never exits because of a worker. See docs/workers.md.
 */
import cluster, { type Worker } from 'node:cluster';
import { fileURLToPath } from 'node:url';
import client from 'prom-client';
import type { ClusterListener, ClusterView, WorkerRow } from '../admin/clusterView.js';
import { Control } from '../admin/control.js';
import { type AdminHandle, followAdmin } from '../admin/followers.js';
import type { Telemetry } from '../admin/metrics.js';
import type { ProtectionReport } from '../admin/protectionReport.js';
import { type AppliedState, restoreStates, stateFileOf } from '../admin/state.js';
import { ConfigError } from '../config/errors.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/log.js';
import type { Pool } from '../core/pool.js';
import type { ReloadSummary } from '../runtime/runtime.js';
import { Runtime } from '../runtime/runtime.js';
import type { StickTable } from '../sticky/stickTable.js';
import { bindCheck } from './bindCheck.js';
import { ClusterFigures } from './clusterFigures.js';
import {
  isWorkerMessage,
  type PoolStatuses,
  type SupervisorMessage,
  type WorkerMessage,
  type WorkerStats,
} from './messages.js';
import { mergeProtection, refusalsOf } from './protectionView.js';
import { nextStreak, restartDelay } from './restartDelay.js';
import { workerCount } from './workerCount.js';

/** How long a new worker may take to start serving before it counts as blocked. */
const START_GRACE_MS = 15_000;
/** Longest wait for the workers' figures before /metrics or /api/status answers. */
const REFRESH_WAIT_MS = 1000;
/** After the shutdown grace period, how long workers get to exit before they are killed. */
const EXIT_GRACE_MS = 5000;

/** One place for a worker: its process now, and its history across replacements. */
interface Slot {
  readonly id: number;
  worker: Worker | null;
  pid: number;
  startedAt: number;
  lastBeat: number;
  ready: boolean;
  restarts: number;
  /** Quick deaths in a row, for the backoff. */
  streak: number;
  /** Why the supervisor killed it (a blocked event loop), the cause logged at its exit. */
  killedFor: string | null;
  /** Requests per second between its last two reports. */
  rate: number;
  lastCount: number;
  lastAt: number;
  restartTimer: NodeJS.Timeout | null;
}

/** A question asked of every serving worker: who has not answered, the answers so far. */
interface Question {
  waiting: Set<number>;
  /** The answers so far, with the worker (cluster id) of each. */
  answers: { worker: number; message: WorkerMessage }[];
  done: () => void;
}

/** What `fulcrum start` holds while it runs (the same shape for one process and a supervisor). */
export interface Supervised {
  runtime: Runtime;
  reload(): Promise<ReloadSummary>;
  stop(): Promise<void>;
  /** Forwards SIGUSR1 (reopen the access log) to the workers. */
  reopenLogs(): void;
}

export class Supervisor implements ClusterView {
  readonly runtime: Runtime;
  private readonly control: Control;
  private admin: AdminHandle | null = null;
  private readonly figures: ClusterFigures;
  private readonly slots: Slot[] = [];
  private restartsTotal = 0;
  private stopping = false;
  private watchdog: NodeJS.Timeout | null = null;
  /** When the watchdog last ran: a late run means the supervisor itself was blocked. */
  private lastCheck = 0;
  private readonly watched = new WeakSet<Pool>();
  private statesPending = false;
  private nextRequest = 1;
  /** Questions other than figures (protection, unblock): request id → answers so far. */
  private readonly questions = new Map<number, Question>();
  /** The workers' protection, merged, as the last `refresh` found it (for /metrics). */
  private lastProtection: ProtectionReport[] = [];
  /** While starting: told when every worker serves, or the first could not start. */
  private starting: { ready: () => void; failed: (err: Error) => void } | null = null;
  /** Told when a worker exits while stopping. */
  private onWorkerGone: (() => void) | null = null;

  private constructor(
    private readonly file: string,
    private readonly log: Logger,
    applied: AppliedState,
  ) {
    this.runtime = new Runtime(applied.config, {
      file,
      log,
      serve: false,
      onApply: (config) => this.onApply(config),
    });
    this.control = new Control(this.runtime, { stateFile: stateFileOf(file), log, loaded: applied });
    this.figures = new ClusterFigures(this.runtime);
  }

  /**
   * Starts the supervisor on the loaded config (`workerCount` > 1): admin API and health checks
   * here, then the workers; resolves once every worker serves. A worker that cannot start (a
   * listener address in use) fails the start with its error, and nothing is left running.
   */
  static async start(file: string, applied: AppliedState, log: Logger): Promise<Supervised> {
    const s = new Supervisor(file, log, applied);
    try {
      s.admin = await followAdmin(s.runtime, s.control, log, { cluster: s });
      await s.runtime.follow(bindCheck(file, () => s.runtime.config));
      await s.runtime.start();
      restoreStates(s.runtime, applied.states);
      await s.startWorkers(workerCount(applied.config));
    } catch (err) {
      await s.stop(0);
      throw err;
    }
    return {
      runtime: s.runtime,
      reload: () => s.control.reload(),
      stop: () => s.stop(s.runtime.config.shutdownTimeout),
      reopenLogs: () => {
        for (const slot of s.slots) slot.worker?.process.kill('SIGUSR1');
      },
    };
  }

  // --------------------------------------------------------------------------- ClusterView

  attach(telemetry: Telemetry): () => void {
    this.figures.attach(telemetry);
    telemetry.protectionSource = () => this.lastProtection;
    const self = this;
    const registry = telemetry.registry;
    new client.Counter({
      name: 'fulcrum_worker_restarts_total',
      help: 'Worker processes replaced by the supervisor (crashed, killed, or blocked).',
      registers: [registry],
      collect() {
        this.reset();
        this.inc(self.restartsTotal);
      },
    });
    new client.Gauge({
      name: 'fulcrum_workers',
      help: 'Worker processes, by state (serving, starting).',
      labelNames: ['state'] as const,
      registers: [registry],
      collect() {
        const serving = self.slots.filter((s) => s.ready).length;
        this.set({ state: 'serving' }, serving);
        this.set({ state: 'starting' }, self.slots.length - serving);
      },
    });
    return () => {
      registry.removeSingleMetric('fulcrum_worker_restarts_total');
      registry.removeSingleMetric('fulcrum_workers');
      this.figures.attach(null);
      telemetry.protectionSource = null;
    };
  }

  async refresh(): Promise<void> {
    await Promise.all([
      this.refreshFigures(),
      this.protection().then((reports) => {
        this.lastProtection = reports;
      }),
    ]);
  }

  /** Asks every serving worker for its figures, then merges them once. */
  private async refreshFigures(): Promise<void> {
    await this.ask((id) => ({ t: 'stats?', id }));
    this.figures.merge();
  }

  workers(): WorkerRow[] {
    const now = Date.now();
    return this.slots.map((s) => ({
      id: s.id,
      pid: s.pid,
      uptimeSeconds: s.worker === null ? 0 : Math.round((now - s.startedAt) / 1000),
      restarts: s.restarts,
      connections: s.worker === null ? 0 : this.figures.activeOf(s.worker.id),
      requests: s.worker === null ? 0 : this.figures.requestsOf(s.worker.id),
      requestsPerSecond: Math.round(s.rate * 10) / 10,
      state: s.ready ? 'serving' : 'starting',
    }));
  }

  listener(name: string): ClusterListener | undefined {
    return this.figures.listener(name);
  }

  async protection(): Promise<ProtectionReport[]> {
    const answers = await this.ask((id) => ({ t: 'protection?', id }));
    return mergeProtection(
      answers.map((m) => (m.t === 'protection' ? m.listeners : [])),
      this.figures.retiredRefusals(),
    );
  }

  async unblock(listener: string, ip: string): Promise<'unblocked' | 'not-blocked' | 'no-listener'> {
    const answers = await this.ask((id) => ({ t: 'unblock', id, listener, ip }));
    const replies = answers.flatMap((m) => (m.t === 'unblocked' ? [m] : []));
    if (replies.some((m) => m.found)) return 'unblocked';
    return replies.some((m) => m.listener) ? 'not-blocked' : 'no-listener';
  }

  /** Sends a question to every serving worker; resolves with the answers that came in time. */
  private ask(make: (id: number) => SupervisorMessage): Promise<WorkerMessage[]> {
    const live = this.slots.filter((s) => s.ready && s.worker !== null);
    if (live.length === 0) return Promise.resolve([]);
    const id = this.nextRequest++;
    return new Promise<WorkerMessage[]>((resolve) => {
      const q: Question = {
        waiting: new Set(live.map((s) => s.worker!.id)),
        answers: [],
        done: () => {
          clearTimeout(timer);
          this.questions.delete(id);
          resolve(q.answers.map((a) => a.message));
        },
      };
      const timer = setTimeout(q.done, REFRESH_WAIT_MS);
      this.questions.set(id, q);
      for (const s of live) this.send(s.worker!, make(id));
    });
  }

  /** An answer to `ask`. */
  private answer(worker: Worker, m: WorkerMessage & { id: number }): void {
    const q = this.questions.get(m.id);
    if (q === undefined || !q.waiting.delete(worker.id)) return;
    q.answers.push({ worker: worker.id, message: m });
    if (m.t === 'protection') this.figures.refusals(worker.id, refusalsOf(m.listeners));
    if (q.waiting.size === 0) q.done();
  }

  // ------------------------------------------------------------------------------ workers

  private async startWorkers(count: number): Promise<void> {
    // Each worker accepts on the shared sockets (the kernel spreads the connections): the
    // supervisor stays out of the connection path, and a connection costs about half the CPU of
    // round robin in the primary (docs/workers.md has the figures). The environment may say
    // otherwise (NODE_CLUSTER_SCHED_POLICY=rr).
    if (process.env.NODE_CLUSTER_SCHED_POLICY === undefined) cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({
      exec: fileURLToPath(new URL('./workerMain.js', import.meta.url)),
      args: [],
    });
    const started = new Promise<void>((ready, failed) => {
      this.starting = { ready, failed };
    });
    for (let id = 1; id <= count; id++) {
      const slot: Slot = {
        id,
        worker: null,
        pid: 0,
        startedAt: 0,
        lastBeat: 0,
        ready: false,
        restarts: 0,
        streak: 0,
        killedFor: null,
        rate: 0,
        lastCount: 0,
        lastAt: 0,
        restartTimer: null,
      };
      this.slots.push(slot);
      this.fork(slot);
    }
    try {
      await started;
    } finally {
      this.starting = null;
    }
    const every = Math.min(1000, Math.max(50, Math.floor(this.runtime.config.workerTimeout / 4)));
    this.lastCheck = Date.now();
    this.watchdog = setInterval(() => this.checkHeartbeats(every), every);
    this.log.info(`supervisor: ${count} workers serving (pids ${this.slots.map((s) => s.pid).join(', ')})`);
  }

  private fork(slot: Slot): void {
    slot.restartTimer = null;
    if (this.stopping) return;
    const worker = cluster.fork({
      FULCRUM_WORKER_SLOT: String(slot.id),
      FULCRUM_CONFIG_FILE: this.file,
      FULCRUM_LOG_LEVEL: this.log.level,
      FULCRUM_LOG_FORMAT: this.log.format,
    });
    slot.worker = worker;
    slot.pid = worker.process.pid ?? 0;
    slot.startedAt = slot.lastBeat = Date.now();
    slot.ready = false;
    slot.killedFor = null;
    slot.rate = slot.lastCount = slot.lastAt = 0;
    worker.on('message', (m: unknown) => {
      if (isWorkerMessage(m)) this.onMessage(slot, worker, m);
    });
    worker.on('exit', (code, signal) => this.onExit(slot, worker, code, signal));
    // The IPC channel can fail (EPIPE while the worker dies): its exit follows.
    worker.on('error', (err) => this.log.debug(`worker ${slot.id}: ${err.message}`));
  }

  private onMessage(slot: Slot, worker: Worker, m: WorkerMessage): void {
    if (slot.worker !== worker) return;
    switch (m.t) {
      case 'hello':
        // The running config (with the admin's changes), not the file's.
        this.send(worker, { t: 'config', config: this.runtime.config, states: this.statuses() });
        return;
      case 'ready':
        slot.ready = true;
        slot.lastBeat = Date.now();
        if (slot.restarts > 0) this.log.info(`worker ${slot.id} (pid ${slot.pid}) serving again`);
        if (this.starting !== null && this.slots.every((s) => s.ready)) this.starting.ready();
        return;
      case 'failed':
        if (this.starting !== null) {
          this.starting.failed(
            m.problems !== undefined ? new ConfigError(this.file, m.problems) : new Error(m.message),
          );
        } else {
          this.log.error(`worker ${slot.id} could not start: ${m.message}`);
        }
        return;
      case 'applied':
        if (!m.ok) this.log.error(`worker ${slot.id} (pid ${slot.pid}): reload not applied: ${m.message}`);
        return;
      case 'beat':
        slot.lastBeat = Date.now();
        this.report(slot, worker, m.stats);
        return;
      case 'stats':
        // Merged once all have answered (refreshFigures), not at each answer.
        this.report(slot, worker, m.stats, false);
        this.answer(worker, m);
        return;
      case 'protection':
      case 'unblocked':
        this.answer(worker, m);
        return;
      case 'eject': {
        const pool = this.runtime.pools.get(m.pool);
        const server = pool?.find(m.server);
        if (pool === undefined || server === undefined || m.until <= server.ejectedUntil) return;
        server.ejectedUntil = m.until;
        pool.invalidate();
        this.scheduleStates();
        return;
      }
      case 'stick?': {
        const table = this.tableOf(m.pool);
        const found = table?.lookup(m.key);
        this.send(worker, { t: 'stick', id: m.id, server: typeof found === 'string' ? found : null });
        return;
      }
      case 'stick!': {
        const table = this.tableOf(m.pool);
        const held = table?.assign(m.key, m.server, m.expect) ?? null;
        this.send(worker, { t: 'stick', id: m.id, server: held });
        return;
      }
    }
  }

  private report(slot: Slot, worker: Worker, stats: WorkerStats, merge = true): void {
    this.figures.report(worker.id, stats);
    const now = Date.now();
    const count = this.figures.requestsOf(worker.id);
    if (slot.lastAt > 0 && now > slot.lastAt)
      slot.rate = ((count - slot.lastCount) * 1000) / (now - slot.lastAt);
    slot.lastCount = count;
    slot.lastAt = now;
    if (merge) this.figures.merge();
  }

  private onExit(slot: Slot, worker: Worker, code: number | null, signal: string | null): void {
    if (slot.worker !== worker) return;
    this.figures.retire(worker.id);
    this.figures.merge();
    for (const q of this.questions.values()) {
      // Its refusals are retired now: an answer it gave to a question still open would count them twice.
      q.answers = q.answers.filter((a) => a.worker !== worker.id || a.message.t !== 'protection');
      q.waiting.delete(worker.id);
      if (q.waiting.size === 0) q.done();
    }
    slot.worker = null;
    const wasReady = slot.ready;
    slot.ready = false;
    if (this.stopping) {
      this.onWorkerGone?.();
      return;
    }
    const cause = slot.killedFor ?? (signal !== null ? `killed by ${signal}` : `exited with code ${code}`);
    if (this.starting !== null && !wasReady) {
      this.starting.failed(new Error(`worker ${slot.id} (pid ${slot.pid}) died while starting: ${cause}`));
      return;
    }
    this.restartsTotal++;
    slot.restarts++;
    slot.streak = nextStreak(slot.streak, Date.now() - slot.startedAt);
    const delay = restartDelay(slot.streak);
    this.log.error(
      `worker ${slot.id} (pid ${slot.pid}) died: ${cause}; replacing it${delay === 0 ? '' : ` in ${delay} ms (it keeps dying)`}`,
    );
    slot.restartTimer = setTimeout(() => this.fork(slot), delay);
  }

  /** Kills (to replace) a worker whose heartbeats stopped: its event loop is blocked. */
  private checkHeartbeats(every: number): void {
    const now = Date.now();
    const late = now - this.lastCheck > 2 * every + 100;
    this.lastCheck = now;
    if (late) {
      // The supervisor's own event loop was blocked: the beats are waiting to be read, not
      // missing. Count the silence from now.
      for (const slot of this.slots) slot.lastBeat = Math.max(slot.lastBeat, now);
      return;
    }
    const bound = this.runtime.config.workerTimeout;
    for (const slot of this.slots) {
      if (slot.worker === null || slot.killedFor !== null) continue;
      const silent = now - slot.lastBeat;
      if (silent <= (slot.ready ? bound : Math.max(bound, START_GRACE_MS))) continue;
      slot.killedFor = `no heartbeat for ${silent} ms (event loop blocked${slot.ready ? '' : ' while starting'}), killed`;
      slot.worker.process.kill('SIGKILL');
    }
  }

  private send(worker: Worker, message: SupervisorMessage): void {
    if (!worker.isConnected()) return;
    worker.send(message, (err: Error | null) => {
      if (err !== null) this.log.debug(`worker ${worker.id}: ${err.message}`);
    });
  }

  private broadcast(message: SupervisorMessage): void {
    for (const slot of this.slots) if (slot.worker !== null) this.send(slot.worker, message);
  }

  // ---------------------------------------------------------------------- config and state

  /** The runtime runs `config` now (start, reload, admin change): every worker follows. */
  private onApply(config: Config): void {
    for (const pool of this.runtime.pools.values()) {
      if (this.watched.has(pool)) continue;
      this.watched.add(pool);
      pool.transitionListeners.push(() => this.scheduleStates());
    }
    if (this.slots.length > 0 && workerCount(config) !== this.slots.length) {
      this.log.warn(
        `workers: ${config.workers} takes effect at the next start (${this.slots.length} run now)`,
      );
    }
    this.broadcast({ t: 'config', config, states: this.statuses() });
  }

  /** Sends the servers' states once the current changes are done (one message for many). */
  private scheduleStates(): void {
    if (this.statesPending) return;
    this.statesPending = true;
    setImmediate(() => {
      this.statesPending = false;
      this.broadcast({ t: 'states', states: this.statuses() });
    });
  }

  private statuses(): PoolStatuses {
    const out: PoolStatuses = {};
    for (const pool of this.runtime.pools.values()) {
      const byServer: PoolStatuses[string] = {};
      for (const s of pool.servers) {
        byServer[s.id] = {
          state: s.state,
          reason: s.lastTransition?.reason ?? '',
          ejectedUntil: s.ejectedUntil,
        };
      }
      out[pool.name] = byServer;
    }
    return out;
  }

  /** The supervisor's own stick table of a pool (store: memory): the one the workers share. */
  private tableOf(poolName: string): StickTable | undefined {
    const affinity = this.runtime.pools.get(poolName)?.affinity as { table?: StickTable | null } | null;
    return affinity?.table ?? undefined;
  }

  // ---------------------------------------------------------------------------------- stop

  /** Tells every worker to finish (up to `timeoutMs`) and waits for them, then stops itself. */
  private async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    if (this.watchdog !== null) clearInterval(this.watchdog);
    for (const slot of this.slots) if (slot.restartTimer !== null) clearTimeout(slot.restartTimer);
    const alive = () => this.slots.filter((s) => s.worker !== null);
    if (alive().length > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          for (const s of alive()) s.worker!.process.kill('SIGKILL');
        }, timeoutMs + EXIT_GRACE_MS);
        this.onWorkerGone = () => {
          if (alive().length > 0) return;
          clearTimeout(timer);
          resolve();
        };
        this.broadcast({ t: 'stop', timeoutMs });
      });
    }
    this.control.close();
    await this.admin?.close();
    await this.runtime.shutdown(0);
  }
}
