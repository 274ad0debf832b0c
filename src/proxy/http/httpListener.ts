import { createServer, type Server as NetServer } from 'node:net';
import type { ListenerConfig } from '../../config/types.js';
import { CidrSet, unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { ListenerProtection } from '../../protection/listenerProtection.js';
import { type Listener, type ListenerDeps, listenError, type PoolLookup, sweepPeriod } from '../listener.js';
import { LogThrottle } from '../logThrottle.js';
import { ClientConnection, type ListenerContext } from './clientConnection.js';
import { Router } from './router.js';
import type { UpstreamPool } from './upstreamPool.js';

/** The listener's timeouts, with the slow-client ones of `protection.timeouts` over them. */
function timeoutsOf(config: ListenerConfig): { requestHead: number; idle: number } {
  const t = config.protection?.timeouts;
  return {
    requestHead: t?.header ?? config.timeouts.requestHead,
    idle: t?.idle ?? config.timeouts.idle,
  };
}

function buildRouter(config: ListenerConfig, pools: PoolLookup): Router {
  return new Router(
    config.routes.map((r) => ({ match: r.match, pool: pools(r.pool) })),
    pools(config.pool),
  );
}

/**
 * How long an idle keep-alive connection is still read from once a shutdown begins: a request
 * already on its way gets an answer (with Connection: close) instead of a reset.
 */
const SHUTDOWN_IDLE_GRACE_MS = 1000;

/**
 * An HTTP/1.1 listener: accepts connections and runs a ClientConnection on each. One coarse
 * sweep timer enforces every per-connection deadline (request head, keep-alive idle, connect,
 * response), so the hot path arms no timer per request.
 */
export class HttpListener implements ListenerContext, Listener {
  readonly protocol = 'http';
  readonly name: string;
  router: Router;
  trusted: CidrSet | null;
  maxHeaderSize: number;
  timeouts: { requestHead: number; idle: number };
  closing = false;
  observer: TrafficObserver | null = null;
  protection: ListenerProtection | null;
  readonly log: Logger;
  private readonly throttle: LogThrottle;
  readonly upstreams: UpstreamPool;
  readonly connections = new Set<ClientConnection>();
  private readonly server: NetServer;
  private readonly host: string;
  private readonly requestedPort: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.name = config.name;
    this.router = buildRouter(config, deps.pools);
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxHeaderSize = config.maxHeaderSize;
    this.timeouts = timeoutsOf(config);
    this.protection = this.buildProtection(config);
    this.log = deps.log;
    this.throttle = new LogThrottle(deps.log);
    this.upstreams = deps.upstreams;
    this.host = config.listen.host;
    this.requestedPort = config.listen.port;
    // allowHalfOpen: a client may send its request and shut down its side, and still
    // expects the whole response.
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      if (this.closing) {
        socket.destroy();
        return;
      }
      // Denied addresses and clients at their connection limit are refused at accept.
      const protection = this.protection;
      if (protection !== null && !protection.admit(unmapIPv4(socket.remoteAddress ?? ''))) {
        socket.destroy();
        return;
      }
      new ClientConnection(socket, this, protection);
    });
  }

  /** The listener's protection, its detection's blocks logged (one line per block). */
  private buildProtection(config: ListenerConfig, previous?: ListenerProtection): ListenerProtection | null {
    if (config.protection === undefined) return null;
    const p = new ListenerProtection(config.protection, previous);
    if (p.detector !== null) {
      p.detector.onBlock = (b) =>
        this.log.warn(
          `listener ${this.name}: client ${b.ip} blocked for ${Math.round((b.until - Date.now()) / 1000)}s: ${b.reason}`,
        );
    }
    return p;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Reload: new routes, pools and limits apply to the next request; connections stay open. */
  update(config: ListenerConfig, pools: PoolLookup): void {
    this.router = buildRouter(config, pools);
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxHeaderSize = config.maxHeaderSize;
    this.timeouts = timeoutsOf(config);
    // Open-connection counts and refusal totals carry over; rate buckets start afresh.
    this.protection = this.buildProtection(config, this.protection ?? undefined);
    this.startSweeper();
  }

  /** The bound address (the real port when 0 was asked for). */
  get address(): { host: string; port: number } {
    const a = this.server.address();
    if (a === null || typeof a === 'string') return { host: this.host, port: this.requestedPort };
    return { host: a.address, port: a.port };
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(listenError(this.host, this.requestedPort, err));
      this.server.once('error', onError);
      this.server.listen({ host: this.host, port: this.requestedPort }, () => {
        this.server.off('error', onError);
        // Errors after binding (accept failures such as EMFILE) are logged; binding errors are
        // the caller's, reported once by start().
        this.server.on('error', (err) => this.log.error(`listener ${this.name}: ${err.message}`));
        this.startSweeper();
        resolve();
      });
    });
  }

  /** Re-arms the sweep at a period fine enough for the shortest timeout in use. */
  startSweeper(shortestTimeout = Math.min(this.timeouts.requestHead, this.timeouts.idle)): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(), sweepPeriod(shortestTimeout));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const c of this.connections) {
      if (c.deadline <= now) c.onTimeout();
      if (c.bodyCheckAt <= now) c.checkBodyRate(now);
    }
    this.throttle.flush(now);
  }

  note(key: string, line: string, warn = true): void {
    this.throttle.note(key, line, warn);
  }

  /** Stops accepting; open connections go on. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /**
   * Graceful stop: no new connections, idle keep-alive connections closed after a short grace
   * (a request arriving meanwhile is answered), requests in flight finish (their connections
   * close after the response), then after `timeoutMs` whatever is left is cut.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    const closed = this.stopAccepting();
    const grace = Math.min(SHUTDOWN_IDLE_GRACE_MS, timeoutMs);
    for (const c of this.connections) c.shutdown(grace);
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of this.connections) c.socket.destroy();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await closed;
  }
}
