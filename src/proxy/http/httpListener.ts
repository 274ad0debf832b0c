import { createServer, type Server as NetServer } from 'node:net';
import type { ListenerConfig } from '../../config/types.js';
import { CidrSet } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { type Listener, type ListenerDeps, listenError, type PoolLookup, sweepPeriod } from '../listener.js';
import { ClientConnection, type ListenerContext } from './clientConnection.js';
import { Router } from './router.js';
import type { UpstreamPool } from './upstreamPool.js';

function buildRouter(config: ListenerConfig, pools: PoolLookup): Router {
  return new Router(
    config.routes.map((r) => ({ match: r.match, pool: pools(r.pool) })),
    pools(config.pool),
  );
}

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
  readonly log: Logger;
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
    this.timeouts = config.timeouts;
    this.log = deps.log;
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
      new ClientConnection(socket, this);
    });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Reload: new routes, pools and limits apply to the next request; connections stay open. */
  update(config: ListenerConfig, pools: PoolLookup): void {
    this.router = buildRouter(config, pools);
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxHeaderSize = config.maxHeaderSize;
    this.timeouts = config.timeouts;
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
    for (const c of this.connections) if (c.deadline <= now) c.onTimeout();
  }

  /** Stops accepting; open connections go on. */
  stopAccepting(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
  }

  /**
   * Graceful stop: no new connections, idle keep-alive connections closed now, requests in
   * flight finish (their connections close after the response), then after `timeoutMs`
   * whatever is left is cut.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    const closed = this.stopAccepting();
    for (const c of this.connections) c.shutdown();
    const deadline = Date.now() + timeoutMs;
    while (this.connections.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of this.connections) c.socket.destroy();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await closed;
  }
}
