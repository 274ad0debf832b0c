/**
 * The demo lab's controls, behind the dashboard's Lab panel (the lab's scenarios 4, 5 and 7,
 * live): kill a backend and restart it on the same port, switch the session strategy (the
 * backends' store, and the pool's stickiness through a config applied to the running balancer),
 * and the simulated users whose lost sessions the panel counts. Only the demo builds one: a
 * production `fulcrum start` has none of this.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { AdminError } from '../admin/control.js';
import { formatAddress, parseConfig } from '../config/index.js';
import type { Logger } from '../core/log.js';
import { findBinary, freePort, HOST, type LabProcess, ProcessGroup, waitForPort } from '../lab/processes.js';
import type { Runtime } from '../runtime/runtime.js';
import { type RunningBackend, startBackend } from './backend.js';
import { demoConfigYaml, type SessionStrategy, STRATEGIES, strategyNamed } from './sessionStrategy.js';
import { SimulatedUsers, type UsersView } from './simulatedUsers.js';

/** One backend of the demo: its name and port stay; the process part comes and goes. */
interface Slot {
  readonly id: string;
  readonly host: string;
  readonly port: number;
  running: RunningBackend | undefined;
  /** Its session cluster address while the strategy is `cluster` (kept across a restart). */
  clusterNode: string | undefined;
}

/** What `GET /api/demo` answers. */
export interface DemoView {
  strategy: string;
  strategies: Array<{ name: string; label: string; expect: string; available: boolean; reason?: string }>;
  backends: Array<{ id: string; address: string; running: boolean; state: string }>;
  users: UsersView;
  report: { available: boolean; url: string; command: string };
  /** The redis-server the demo started (for the Redis strategy), while it runs. */
  redis: { pid: number; url: string } | null;
  busy: boolean;
}

export interface DemoControlOptions {
  /** The demo's balancer: listener `web`, pool `web`. */
  balancer: Runtime;
  log: Logger;
  /** Where `fulcrum lab` wrote its report (default ./lab-report). */
  reportDir?: string;
  /** Simulated users (default 6) and their pause between requests (default 200 ms). */
  users?: number;
  pauseMs?: number;
}

/** The strategy the demo starts with: the backends replicate sessions among themselves. */
const FIRST: SessionStrategy = strategyNamed('cluster')!;

export class DemoControl {
  readonly users: SimulatedUsers;
  readonly reportDir: string;
  readonly #slots: Slot[];
  readonly #balancer: Runtime;
  readonly #log: Logger;
  #strategy: SessionStrategy = FIRST;
  #queue: Promise<unknown> = Promise.resolve();
  #busy = 0;
  #redis: { procs: ProcessGroup; proc: LabProcess; url: string; dir: string } | undefined;
  #closed = false;

  readonly #starter: BackendStarter;

  private constructor(options: DemoControlOptions, slots: Slot[], starter: BackendStarter) {
    this.#starter = starter;
    this.#balancer = options.balancer;
    this.#log = options.log;
    this.#slots = slots;
    this.reportDir = resolve(options.reportDir ?? 'lab-report');
    const a = options.balancer.address('web');
    this.users = new SimulatedUsers(
      {
        host: a.host,
        port: a.port,
        ...(options.users === undefined ? {} : { users: options.users }),
        ...(options.pauseMs === undefined ? {} : { pauseMs: options.pauseMs }),
      },
      FIRST.name,
    );
  }

  /**
   * Starts the demo's backends with the first strategy (clustered sessions), before the balancer
   * exists: the balancer's config needs their ports. `attach` then binds them to the balancer.
   */
  static async startBackends(
    host: string,
    ids: readonly string[],
    log: Logger,
  ): Promise<{ backends: RunningBackend[]; attach: (o: DemoControlOptions) => DemoControl }> {
    const slots: Slot[] = ids.map((id) => ({
      id,
      host,
      port: 0,
      running: undefined,
      clusterNode: undefined,
    }));
    const starter = new BackendStarter(host, randomBytes(16).toString('hex'), log);
    const started: RunningBackend[] = [];
    try {
      for (const slot of slots) {
        const b = await starter.start(slot, FIRST, undefined, started);
        started.push(b);
      }
    } catch (err) {
      await Promise.all(started.map((b) => b.close()));
      throw err;
    }
    const fixed = slots.map((s, i) => ({
      ...s,
      port: started[i]!.port,
      running: started[i],
      clusterNode: started[i]!.clusterNode,
    }));
    return {
      backends: started,
      attach: (o) => new DemoControl(o, fixed, starter),
    };
  }

  /** The backends running now (a killed one is missing). */
  get backends(): RunningBackend[] {
    return this.#slots.flatMap((s) => (s.running === undefined ? [] : [s.running]));
  }

  get strategy(): SessionStrategy {
    return this.#strategy;
  }

  /** Why the Redis strategy cannot run here, or undefined when it can. */
  redisUnavailable(): string | undefined {
    this.#redisMissing ??=
      findBinary('redis-server') === undefined
        ? 'redis-server is not installed (Debian: apt-get install redis-server)'
        : '';
    return this.#redisMissing === '' ? undefined : this.#redisMissing;
  }

  /** Looked up once: '' when redis-server is there. */
  #redisMissing: string | undefined;

  view(): DemoView {
    const pool = this.#balancer.pools.get('web');
    return {
      strategy: this.#strategy.name,
      strategies: STRATEGIES.map((s) => {
        const reason = s.store === 'redis' ? this.redisUnavailable() : undefined;
        return {
          name: s.name,
          label: s.label,
          expect: s.expect,
          available: reason === undefined,
          ...(reason === undefined ? {} : { reason }),
        };
      }),
      backends: this.#slots.map((s) => ({
        id: s.id,
        address: formatAddress({ host: s.host, port: s.port }),
        running: s.running !== undefined,
        state: pool?.find(s.id)?.state ?? 'unknown',
      })),
      users: this.users.view(),
      report: {
        available: existsSync(join(this.reportDir, 'index.html')),
        url: '/lab/',
        command: 'fulcrum lab --quick',
      },
      redis:
        this.#redis === undefined || this.#redis.proc.exitCode !== undefined
          ? null
          : { pid: this.#redis.proc.pid, url: this.#redis.url },
      busy: this.#busy > 0,
    };
  }

  /** Closes backend `id`'s listener, connections and session store at once, as a crash would. */
  kill(id: string): Promise<DemoView> {
    return this.#serial(async () => {
      const slot = this.#slot(id);
      const b = slot.running;
      if (b === undefined) throw new AdminError(409, `${id} is not running (restart it)`);
      slot.running = undefined;
      await b.close();
      this.#log.info(`demo: killed ${id}`);
      return this.view();
    });
  }

  /** Starts backend `id` again on its port, with the running strategy's store. */
  restart(id: string): Promise<DemoView> {
    return this.#serial(async () => {
      const slot = this.#slot(id);
      if (slot.running !== undefined) throw new AdminError(409, `${id} is running (kill it first)`);
      slot.running = await this.#start(slot, this.#strategy, slot.clusterNode);
      this.#log.info(`demo: restarted ${id} on port ${slot.port}`);
      return this.view();
    });
  }

  /**
   * Switches the session strategy: every backend restarts on its port with the new store (the
   * old sessions go with them), the balancer's pool becomes sticky or not through a config
   * applied to the running runtime, and the users start over with empty cookie jars.
   */
  switchStrategy(name: unknown): Promise<DemoView> {
    const next = strategyNamed(name);
    if (next === undefined) {
      const names = STRATEGIES.map((s) => s.name).join(', ');
      return Promise.reject(
        new AdminError(400, `strategy: expected one of ${names}, got ${JSON.stringify(name)}`, [
          { path: 'strategy', message: `expected one of ${names}, got ${JSON.stringify(name)}` },
        ]),
      );
    }
    if (next.store === 'redis') {
      const reason = this.redisUnavailable();
      if (reason !== undefined) return Promise.reject(new AdminError(409, reason));
    }
    return this.#serial(async () => {
      await this.users.pause();
      try {
        await Promise.all(
          this.#slots.map(async (s) => {
            const b = s.running;
            s.running = undefined;
            s.clusterNode = undefined;
            await b?.close();
          }),
        );
        if (next.store === 'redis') await this.#startRedis();
        for (const s of this.#slots) s.running = await this.#start(s, next, undefined);
        await this.#applyConfig(next.sticky);
        this.#strategy = next;
        this.users.switchTo(next.name);
        this.#log.info(`demo: session strategy now ${next.label}`);
      } finally {
        this.users.resume();
      }
      return this.view();
    });
  }

  /** Stops the users, the backends and redis-server (by its PID). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.users.close();
    await this.#queue.catch(() => {});
    await Promise.all(this.#slots.map((s) => s.running?.close()));
    for (const s of this.#slots) s.running = undefined;
    const redis = this.#redis;
    this.#redis = undefined;
    if (redis !== undefined) {
      await redis.procs.stop(redis.proc, 3000);
      rmSync(redis.dir, { recursive: true, force: true });
    }
  }

  /** Synchronous last resort for exit handlers: SIGKILL to redis-server by its PID. */
  killNow(): void {
    this.#redis?.procs.killAllNow();
  }

  #slot(id: string): Slot {
    const slot = this.#slots.find((s) => s.id === id);
    if (slot === undefined) {
      throw new AdminError(404, `no demo backend "${id}" (${this.#slots.map((s) => s.id).join(', ')})`);
    }
    return slot;
  }

  /** One change at a time: a kill, a restart or a switch waits for the one before. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    if (this.#closed) return Promise.reject(new AdminError(409, 'the demo is stopping'));
    this.#busy++;
    const run = this.#queue.then(work, work).finally(() => this.#busy--);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #start(
    slot: Slot,
    strategy: SessionStrategy,
    clusterNode: string | undefined,
  ): Promise<RunningBackend> {
    const peers = this.#slots.flatMap((s) => (s.running === undefined ? [] : [s.running]));
    const b = await this.#starter.start(slot, strategy, clusterNode, peers, this.#redis?.url);
    slot.clusterNode = b.clusterNode;
    return b;
  }

  async #applyConfig(sticky: boolean): Promise<void> {
    const listen = formatAddress(this.#balancer.address('web'));
    const servers = this.#slots.map((s) => ({ address: formatAddress(s), name: s.id }));
    await this.#balancer.apply(parseConfig(demoConfigYaml(listen, servers, sticky), 'demo'));
  }

  async #startRedis(): Promise<void> {
    if (this.#redis !== undefined && this.#redis.proc.exitCode === undefined) return;
    const bin = findBinary('redis-server');
    if (bin === undefined) throw new AdminError(409, this.redisUnavailable() ?? 'redis-server not found');
    const dir = mkdtempSync(join(tmpdir(), 'fulcrum-demo-redis-'));
    const procs = new ProcessGroup(dir);
    const port = await freePort();
    const proc = procs.start('redis', bin, [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--dir',
      dir,
      '--save',
      '',
      '--appendonly',
      'no',
      '--daemonize',
      'no',
    ]);
    try {
      await waitForPort(port, proc, 15_000);
    } catch (err) {
      await procs.stop(proc, 1000);
      rmSync(dir, { recursive: true, force: true });
      throw err;
    }
    this.#redis = { procs, proc, url: `redis://${HOST}:${port}`, dir };
    this.#log.info(`demo: redis-server (pid ${proc.pid}) on ${HOST}:${port}`);
  }
}

/** Starts one demo backend for a strategy: its store, its cluster peers. */
class BackendStarter {
  constructor(
    private readonly host: string,
    private readonly secret: string,
    private readonly log: Logger,
  ) {}

  start(
    slot: Slot,
    strategy: SessionStrategy,
    clusterNode: string | undefined,
    running: readonly RunningBackend[],
    redisUrl?: string,
  ): Promise<RunningBackend> {
    const common = { port: slot.port, host: this.host, id: slot.id };
    if (strategy.store === 'cluster') {
      // The node joins whichever backends run (all of them replicate every session), and keeps
      // its cluster address across a restart, the one its peers redial.
      const peers = running.flatMap((b) => (b.clusterNode === undefined ? [] : [b.clusterNode]));
      return startBackend({
        ...common,
        cluster: {
          mode: 'all-to-all',
          listen: clusterNode ?? formatAddress({ host: this.host, port: 0 }),
          peers,
          secret: this.secret,
          sync: true,
          logger: this.log,
        },
      });
    }
    if (strategy.store === 'redis') {
      if (redisUrl === undefined) throw new AdminError(409, 'redis-server is not running');
      return startBackend({ ...common, sessionStore: redisUrl });
    }
    return startBackend({ ...common, sessionStore: 'memory' });
  }
}
