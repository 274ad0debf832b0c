import { createPolicy } from '../balancing/index.js';
import { ConfigError, type ConfigProblem } from '../config/errors.js';
import type { Config, ListenerConfig, PoolConfig } from '../config/types.js';
import { HttpListener } from '../proxy/http/httpListener.js';
import { Router } from '../proxy/http/router.js';
import { closeIdle } from '../proxy/http/upstreamPool.js';
import type { Logger } from './log.js';
import { log as defaultLog } from './log.js';
import { Pool } from './pool.js';
import { Server } from './server.js';

export interface RuntimeOptions {
  /** The config file's name, for error messages. */
  file?: string;
  log?: Logger;
}

/**
 * The running balancer: pools and listeners by name, built from a Config. Owns their lifetime:
 * start binds every listener (or none: a failure closes those already bound), shutdown drains.
 */
export class Runtime {
  readonly pools = new Map<string, Pool>();
  readonly listeners = new Map<string, HttpListener>();
  config: Config;
  private readonly file: string;
  private readonly log: Logger;

  constructor(config: Config, options: RuntimeOptions = {}) {
    this.config = config;
    this.file = options.file ?? 'config';
    this.log = options.log ?? defaultLog;
  }

  async start(): Promise<void> {
    const { config } = this;
    const problems: ConfigProblem[] = [];
    config.listeners.forEach((l, i) => {
      if (l.protocol !== 'http') {
        problems.push({
          path: `listeners[${i}].protocol`,
          message: `protocol "${l.protocol}" is not available in this version (only http)`,
        });
      }
    });
    if (problems.length > 0) throw new ConfigError(this.file, problems);
    for (const p of config.pools) this.pools.set(p.name, buildPool(p));
    for (const [i, l] of config.listeners.entries()) {
      const listener = this.buildListener(l);
      try {
        await listener.start();
      } catch (err) {
        await this.shutdown(0);
        throw new ConfigError(this.file, [{ path: `listeners[${i}].listen`, message: (err as Error).message }]);
      }
      this.listeners.set(l.name, listener);
      const a = listener.address;
      this.log.info(`listener ${l.name}: http on ${formatHostPort(a.host, a.port)} → pool ${l.pool}`);
    }
  }

  /** Where a listener really listens (useful with port 0). */
  address(listener: string): { host: string; port: number } {
    const l = this.listeners.get(listener);
    if (l === undefined) throw new Error(`no listener named ${listener}`);
    return l.address;
  }

  /** Stop accepting, let requests in flight finish for up to `timeoutMs`, then close the rest. */
  async shutdown(timeoutMs = this.config.shutdownTimeout): Promise<void> {
    await Promise.all([...this.listeners.values()].map((l) => l.shutdown(timeoutMs)));
    this.listeners.clear();
    for (const pool of this.pools.values()) for (const s of pool.servers) closeIdle(s);
  }

  private buildListener(l: ListenerConfig): HttpListener {
    const pool = (name: string): Pool => {
      const p = this.pools.get(name);
      if (p === undefined) throw new Error(`unknown pool ${name}`); // the config loader already checked
      return p;
    };
    const router = new Router(
      l.routes.map((r) => ({ match: r.match, pool: pool(r.pool) })),
      pool(l.pool),
    );
    return new HttpListener({
      name: l.name,
      host: l.listen.host,
      port: l.listen.port,
      router,
      trustedProxies: l.trustedProxies,
      maxHeaderSize: l.maxHeaderSize,
      timeouts: l.timeouts,
      log: this.log,
    });
  }
}

export function buildPool(p: PoolConfig): Pool {
  const servers = p.servers.map(
    (s) =>
      new Server({
        id: s.name,
        host: s.address.host,
        port: s.address.port,
        address: s.address.text,
        weight: s.weight,
        backup: s.backup,
      }),
  );
  return new Pool(p.name, createPolicy(p.algorithm), servers, {
    retries: p.retries,
    timeouts: p.timeouts,
    maxIdlePerServer: p.maxIdlePerServer,
  });
}

function formatHostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}
