import { createSecureContext } from 'node:tls';
import { createPolicy } from '../balancing/index.js';
// Not the config barrel: the loader (YAML, schema) is imported only when a file is read, so a
// worker process, which is handed validated configs, never loads it.
import { formatAddress } from '../config/address.js';
import { type ConfigDiff, diffConfig, type NamedChanges } from '../config/diff.js';
import { ConfigError } from '../config/errors.js';
import { tlsFingerprint, tlsMaterial } from '../config/serverTls.js';
import type { Config, ListenerConfig, PoolConfig, PoolTlsConfig } from '../config/types.js';
import type { Logger } from '../core/log.js';
import { log as defaultLog } from '../core/log.js';
import type { TrafficObserver } from '../core/observer.js';
import { Pool, type PoolOptions, type ServerTls } from '../core/pool.js';
import { Server } from '../core/server.js';
import { createPoolHealth, type PoolHealth } from '../health/index.js';
import { UpstreamPool } from '../proxy/http/upstreamPool.js';
import type { Listener, ListenerDeps, PoolLookup } from '../proxy/listener.js';
import { createListener } from '../proxy/listenerFactory.js';
import { abortAll, type ConfigFollower, type PreparedChange } from './follower.js';

type CreateAffinity = typeof import('../sticky/index.js').createAffinity;
/** Loaded only when a pool is sticky: it brings the Redis client along (about 20 MB). */
let createAffinity: CreateAffinity | undefined;

async function loadSticky(config: Config): Promise<void> {
  if (createAffinity === undefined && config.pools.some((p) => p.sticky !== undefined)) {
    ({ createAffinity } = await import('../sticky/index.js'));
  }
}

/** Longest start waits for a shared stick table's store. */
const STORE_WAIT_MS = 2000;

export interface RuntimeOptions {
  /** The config file's name, for error messages and reloads. */
  file?: string;
  log?: Logger;
  /**
   * Bind the listeners (default true). A supervisor of worker processes (src/cluster/) runs the
   * pools, health checks and admin API without serving: its workers do.
   */
  serve?: boolean;
  /**
   * Run the active health checks (default true). Workers under a supervisor do not: the
   * supervisor checks once and tells them the results.
   */
  activeChecks?: boolean;
  /** Told each config the runtime runs from now on (after start and every applied reload). */
  onApply?: (config: Config) => void;
}

/** What a reload changed, for the log and the admin API (`pool/server` for servers). */
export interface ReloadSummary {
  listeners: { added: string[]; removed: string[]; updated: string[] };
  pools: { added: string[]; removed: string[]; updated: string[] };
  servers: { added: string[]; removed: string[] };
  /** Top-level settings besides listeners and pools that changed (`admin`, `accessLog`, ...). */
  settings: string[];
}

/** The summary of a reload, from its diff. */
function reloadSummary(diff: ConfigDiff): ReloadSummary {
  const servers = (kind: 'added' | 'removed') =>
    Object.entries(diff.pools.servers).flatMap(([pool, s]) => s[kind].map((id) => `${pool}/${id}`));
  const named = (c: NamedChanges) => ({ added: c.added, removed: c.removed, updated: c.changed });
  return {
    listeners: named(diff.listeners),
    pools: named(diff.pools),
    servers: { added: servers('added'), removed: servers('removed') },
    settings: diff.settings,
  };
}

/**
 * The running balancer: pools and listeners by name, built from a Config. It starts them all or
 * none, applies a new config in place (listening sockets, connections in flight and server
 * state and statistics survive), and stops gracefully.
 */
export class Runtime {
  readonly pools = new Map<string, Pool>();
  readonly listeners = new Map<string, Listener>();
  private readonly health = new Map<string, PoolHealth>();
  config: Config;
  readonly file: string;
  private readonly log: Logger;
  /** Reloads run one at a time. */
  private applying: Promise<unknown> = Promise.resolve();
  /** Who watches traffic (metrics, access log); given to every listener, new ones included. */
  private observer: TrafficObserver | null = null;
  /** What follows the config next to the proxy (admin endpoint, access log): see follow(). */
  private readonly followers: ConfigFollower[] = [];
  /** Between a successful start() and shutdown(). */
  private running = false;
  /** Idle keep-alive connections to the servers, shared by every HTTP listener; closed on stop. */
  readonly upstreams = new UpstreamPool();
  private readonly serve: boolean;
  private readonly activeChecks: boolean;
  private readonly onApply: ((config: Config) => void) | undefined;

  constructor(config: Config, options: RuntimeOptions = {}) {
    this.config = config;
    this.file = options.file ?? 'config';
    this.log = options.log ?? defaultLog;
    this.serve = options.serve ?? true;
    this.activeChecks = options.activeChecks ?? true;
    this.onApply = options.onApply;
  }

  async start(): Promise<void> {
    await loadSticky(this.config);
    for (const p of this.config.pools) this.addPool(p);
    await this.affinitiesReady([...this.pools.values()]);
    const lookup = this.lookup(this.pools);
    let prepared: PreparedChange[] = [];
    try {
      // Followers first: an access log that cannot be opened or an admin address in use fails
      // the start before any listener has bound.
      prepared = await this.prepareFollowers(this.config, undefined);
      for (const [i, l] of this.serve ? this.config.listeners.entries() : []) {
        const listener = await this.bind(i, createListener(l, this.deps(lookup)));
        this.listeners.set(l.name, listener);
      }
    } catch (err) {
      await abortAll(prepared);
      await this.shutdown(0);
      throw err;
    }
    for (const p of prepared) p.commit();
    this.running = true;
    this.onApply?.(this.config);
  }

  /**
   * Adds a follower of the config (the admin endpoint, the access log: see ConfigFollower). Call
   * it before start(), which then brings the follower up first, or once the runtime runs: it is
   * then brought to the running config at once, in turn with reloads, and rejects (the follower
   * not added) if it cannot. Resolves to the function that removes it.
   */
  async follow(follower: ConfigFollower): Promise<() => void> {
    const remove = () => {
      const i = this.followers.indexOf(follower);
      if (i >= 0) this.followers.splice(i, 1);
    };
    if (!this.running) {
      this.followers.push(follower);
      return remove;
    }
    await this.serialize(async () => {
      const prepared = await follower.prepare(this.config, undefined);
      this.followers.push(follower);
      prepared?.commit();
    });
    return remove;
  }

  /** Whether every listener is bound: between a successful start() and the start of shutdown(). */
  get isRunning(): boolean {
    return this.running;
  }

  /** Sets (or clears) the traffic observer of every listener, now and after reloads. */
  setObserver(observer: TrafficObserver | null): void {
    this.observer = observer;
    for (const l of this.listeners.values()) l.observer = observer;
  }

  /** Where a listener really listens (useful with port 0). */
  address(listener: string): { host: string; port: number } {
    const l = this.listeners.get(listener);
    if (l === undefined) throw new Error(`no listener named ${listener}`);
    return l.address;
  }

  /** Re-reads the config file and applies it; on any error the running config stays. */
  reload(): Promise<ReloadSummary> {
    return this.serialize(async () => {
      const { loadConfig } = await import('../config/load.js');
      return this.applyNow(await loadConfig(this.file));
    });
  }

  /** Applies a new, already validated config in place. On error the running config stays. */
  apply(next: Config): Promise<ReloadSummary> {
    return this.serialize(() => this.applyNow(next));
  }

  /** Stop accepting, let requests in flight finish for up to `timeoutMs`, then close the rest. */
  async shutdown(timeoutMs = this.config.shutdownTimeout): Promise<void> {
    this.running = false;
    for (const h of this.health.values()) h.stop();
    this.health.clear();
    await Promise.all([...this.listeners.values()].map((l) => l.shutdown(timeoutMs)));
    this.listeners.clear();
    this.upstreams.close();
    await Promise.all([...this.pools.values()].map((p) => stopAffinity(p, this.log)));
  }

  private serialize<T>(work: () => Promise<T>): Promise<T> {
    const run = this.applying.then(work, work);
    this.applying = run.catch(() => {});
    return run;
  }

  private async applyNow(next: Config): Promise<ReloadSummary> {
    await loadSticky(next);
    // What changed is decided once, here; everything below acts on it.
    const diff = diffConfig(this.config, next);
    // Pools as they will be: kept ones are the same objects (updated below), new ones fresh.
    const nextPools = new Map<string, Pool>();
    for (const p of next.pools) {
      const existing = this.pools.get(p.name);
      nextPools.set(p.name, existing ?? buildPool(p, this.log));
    }
    const lookup = this.lookup(nextPools);

    // 1. Get ready what needs a new socket or file first (followers, then listeners): if that
    // fails, nothing has changed yet.
    const prepared = await this.prepareFollowers(next, diff);
    const bound = new Map<string, Listener>();
    try {
      for (const [i, l] of next.listeners.entries()) {
        if (!this.serve || !this.needsSocket(l, diff)) continue;
        const running = this.listeners.get(l.name);
        const before = this.config.listeners.find((c) => c.name === l.name);
        const hint =
          running !== undefined &&
          before !== undefined &&
          before.protocol !== l.protocol &&
          sameSocket({ ...before, protocol: l.protocol } as ListenerConfig, running, l)
            ? ` (the running listener ${l.name} holds it: a protocol change on the same address needs another address or a restart)`
            : '';
        bound.set(l.name, await this.bind(i, createListener(l, this.deps(lookup)), hint));
      }
    } catch (err) {
      await Promise.all([...bound.values()].map((l) => l.shutdown(0)));
      await abortAll(prepared);
      throw err;
    }

    // 2. Pools: add new ones, update changed ones in place, retire removed ones.
    const configOf = (name: string) => next.pools.find((p) => p.name === name)!;
    for (const name of diff.pools.added) {
      const pool = nextPools.get(name)!;
      this.pools.set(name, pool);
      this.health.set(name, createPoolHealth(pool, configOf(name), this.log, this.activeChecks));
      applyAffinity(pool, configOf(name), this.log);
    }
    for (const name of diff.pools.changed) {
      const pool = nextPools.get(name)!;
      updatePool(pool, configOf(name), this.upstreams);
      applyAffinity(pool, configOf(name), this.log);
      this.health.get(name)?.stop();
      this.health.set(name, createPoolHealth(pool, configOf(name), this.log, this.activeChecks));
    }
    for (const name of diff.pools.removed) {
      const pool = this.pools.get(name)!;
      this.health.get(name)?.stop();
      this.health.delete(name);
      this.pools.delete(name);
      stopAffinity(pool, this.log);
      // Requests in flight hold the Pool object and finish; idle connections go now.
      for (const s of pool.servers) this.upstreams.closeServer(s);
    }

    // 3. Listeners: start using new sockets, update changed ones, drain replaced and removed ones.
    // An unchanged listener keeps its pools: a pool it names cannot have been removed.
    const retiring: Listener[] = [];
    for (const l of this.serve ? next.listeners : []) {
      const fresh = bound.get(l.name);
      const old = this.listeners.get(l.name);
      if (fresh !== undefined) {
        if (old !== undefined) retiring.push(old);
        this.listeners.set(l.name, fresh);
      } else if (diff.listeners.changed.includes(l.name)) {
        old!.update(l, lookup);
      } else {
        // Same settings, but the files they name may have new contents (certificates).
        old?.refresh?.();
      }
    }
    for (const name of this.serve ? diff.listeners.removed : []) {
      retiring.push(this.listeners.get(name)!);
      this.listeners.delete(name);
    }
    this.config = next;
    for (const p of prepared) p.commit();
    for (const old of retiring) {
      old
        .shutdown(next.shutdownTimeout)
        .catch((err: Error) => this.log.error(`listener ${old.name}: ${err.message}`));
    }
    this.onApply?.(next);
    return reloadSummary(diff);
  }

  /** Every follower gets ready for `next`; if one cannot, those ready already give back. */
  private async prepareFollowers(next: Config, changes: ConfigDiff | undefined): Promise<PreparedChange[]> {
    const prepared: PreparedChange[] = [];
    try {
      for (const follower of this.followers) {
        const change = await follower.prepare(next, changes);
        if (change !== undefined) prepared.push(change);
      }
    } catch (err) {
      await abortAll(prepared);
      throw err;
    }
    return prepared;
  }

  /** Whether a listener of the next config needs a socket of its own: a new one, or one whose
   * protocol or address changed. */
  private needsSocket(l: ListenerConfig, diff: ConfigDiff): boolean {
    if (diff.listeners.added.includes(l.name)) return true;
    if (!diff.listeners.changed.includes(l.name)) return false;
    const before = this.config.listeners.find((c) => c.name === l.name)!;
    return !sameSocket(before, this.listeners.get(l.name)!, l);
  }

  /**
   * Waits (bounded) for shared stick tables to reach their store, so that balancers sharing one
   * agree from the first client on. Past the bound they serve anyway and share once it is up.
   */
  private async affinitiesReady(pools: Pool[]): Promise<void> {
    await Promise.all(
      pools.map(async (pool) => {
        const ready = await pool.affinity?.ready?.(STORE_WAIT_MS);
        if (ready === false) {
          this.log.warn(
            `pool ${pool.name}: sticky store not reachable yet; balancing by the algorithm until it is`,
          );
        }
      }),
    );
  }

  private addPool(p: PoolConfig): void {
    const pool = buildPool(p, this.log);
    this.pools.set(p.name, pool);
    this.health.set(p.name, createPoolHealth(pool, p, this.log, this.activeChecks));
    applyAffinity(pool, p, this.log);
  }

  private deps(pools: PoolLookup): ListenerDeps {
    return { pools, log: this.log, upstreams: this.upstreams, httpsPort: () => this.httpsPort() };
  }

  /** The bound port of the first http listener with tls (redirectHttps sends clients there). */
  private httpsPort(): number {
    const tls = this.config.listeners.find((l) => l.protocol === 'http' && l.tls !== undefined);
    const running = tls === undefined ? undefined : this.listeners.get(tls.name);
    return running?.address.port ?? tls?.listen.port ?? 443;
  }

  private lookup(pools: Map<string, Pool>): PoolLookup {
    return (name) => {
      const p = pools.get(name);
      if (p === undefined) throw new Error(`unknown pool ${name}`); // the loader already checked
      return p;
    };
  }

  /** Starts a listener; a bind failure becomes a ConfigError naming the listen key. */
  private async bind(index: number, listener: Listener, hint = ''): Promise<Listener> {
    listener.observer = this.observer;
    try {
      await listener.start();
    } catch (err) {
      const message = (err as Error).message;
      throw new ConfigError(this.file, [
        {
          path: `listeners[${index}].listen`,
          message: /already in use/.test(message) ? message + hint : message,
        },
      ]);
    }
    this.log.info(`listener ${listener.name}: ${listener.protocol} on ${formatAddress(listener.address)}`);
    return listener;
  }
}

/** Whether a listener's new config can keep its socket: same protocol, host and port (port 0 in
 * the old config matches the port it was given). */
function sameSocket(
  before: Config['listeners'][number],
  running: Listener,
  next: Config['listeners'][number],
): boolean {
  if (before.protocol !== next.protocol || before.listen.host !== next.listen.host) return false;
  // TLS turned on or off keeps the socket: the http listener hands connections to its terminator.
  return before.listen.port === next.listen.port || running.address.port === next.listen.port;
}

function poolOptions(p: PoolConfig): PoolOptions {
  return {
    retries: p.retries,
    timeouts: p.timeouts,
    maxIdlePerServer: p.maxIdlePerServer,
    drainTimeout: p.drainTimeout,
    sendProxyProtocol: p.sendProxyProtocol,
    tls: p.tls === undefined ? undefined : serverTls(p.tls),
  };
}

/** A pool's TLS to its servers: one secure context for every connection and health check. */
function serverTls(tls: PoolTlsConfig): ServerTls {
  const m = tlsMaterial(tls);
  const context = createSecureContext({
    ...(m.ca !== undefined ? { ca: m.ca } : {}),
    ...(m.cert !== undefined ? { cert: m.cert, key: m.key } : {}),
  });
  return { context, serverName: tls.serverName, verify: tls.verify, fingerprint: tlsFingerprint(tls) };
}

function newServer(s: PoolConfig['servers'][number]): Server {
  return new Server({
    id: s.name,
    host: s.address.host,
    port: s.address.port,
    address: s.address.text,
    weight: s.weight,
    backup: s.backup,
    maxConnections: s.maxConnections,
    sendProxyProtocol: s.sendProxyProtocol,
  });
}

/**
 * The pool's sticky affinity from its config. The new one is created before the old one stops,
 * so that its stick table is handed over: a reload moves no client.
 */
function applyAffinity(pool: Pool, p: PoolConfig, log: Logger): void {
  const old = pool.affinity;
  // loadSticky() has run for every config that has a sticky pool.
  pool.affinity = p.sticky === undefined ? null : createAffinity!(pool, p.sticky, log);
  old?.stop?.().catch((err: Error) => log.error(`pool ${pool.name}: sticky: ${err.message}`));
}

async function stopAffinity(pool: Pool, log: Logger): Promise<void> {
  const affinity = pool.affinity;
  pool.affinity = null;
  await affinity?.stop?.().catch((err: Error) => log.error(`pool ${pool.name}: sticky: ${err.message}`));
}

export function buildPool(p: PoolConfig, log: Logger = defaultLog): Pool {
  const pool = new Pool(p.name, createPolicy(p.algorithm), p.servers.map(newServer), poolOptions(p));
  pool.log = log;
  return pool;
}

/**
 * Applies a pool's new config to the running Pool. Servers are matched by identity (name, else
 * address): a kept server keeps its state, counters and response-time estimate. Idle connections
 * to removed or readdressed servers are closed in `upstreams`.
 */
export function updatePool(
  pool: Pool,
  p: PoolConfig,
  upstreams: UpstreamPool,
): { added: string[]; removed: string[] } {
  if (pool.policy.name !== p.algorithm) pool.setPolicy(createPolicy(p.algorithm));
  const tlsBefore = pool.options.tls?.fingerprint;
  pool.options = poolOptions(p);
  // Idle connections made with other TLS settings (or none) are not reused.
  if (pool.options.tls?.fingerprint !== tlsBefore) for (const s of pool.servers) upstreams.closeServer(s);
  const current = new Map(pool.servers.map((s) => [s.id, s]));
  const added: string[] = [];
  const servers = p.servers.map((sc) => {
    const s = current.get(sc.name);
    if (s === undefined) {
      added.push(sc.name);
      return newServer(sc);
    }
    current.delete(sc.name);
    if (s.host !== sc.address.host || s.port !== sc.address.port) {
      upstreams.closeServer(s);
      s.host = sc.address.host;
      s.port = sc.address.port;
      s.address = sc.address.text;
    }
    // A server ramping up under slow start keeps its ramp; the health module rescales it.
    if (s.effectiveWeight === s.weight) s.effectiveWeight = sc.weight;
    s.weight = sc.weight;
    s.backup = sc.backup;
    s.maxConnections = sc.maxConnections;
    s.sendProxyProtocol = sc.sendProxyProtocol;
    return s;
  });
  for (const s of current.values()) upstreams.closeServer(s);
  pool.setServers(servers);
  return { added, removed: [...current.keys()] };
}
