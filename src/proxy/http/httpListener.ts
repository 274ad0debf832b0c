import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig, TlsConfig } from '../../config/types.js';
import { CidrSet, unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { ListenerProtection } from '../../protection/listenerProtection.js';
import type { FrontConnection } from '../frontConnection.js';
import { createH2Factory, H2Connection } from '../http2/h2Connection.js';
import { type Listener, type ListenerDeps, listenError, type PoolLookup, sweepPeriod } from '../listener.js';
import { LogThrottle } from '../logThrottle.js';
import { TlsTerminator } from '../tls/tlsTerminator.js';
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

/** Concurrent HTTP/2 streams per connection when the config says nothing. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 100;

/**
 * An HTTP listener: accepts connections (plaintext, or TLS terminated here) and runs a front on
 * each: a ClientConnection for HTTP/1.1, an H2Connection for HTTP/2 (ALPN h2, or h2c with prior
 * knowledge when `http2` is on). One coarse sweep timer enforces every per-connection deadline
 * (request head, keep-alive idle, connect, response), so the hot path arms no timer per request.
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
  readonly connections = new Set<FrontConnection>();
  readonly secure: boolean;
  hsts: string;
  redirectPort: (() => number) | null;
  h2c: ((socket: Socket, first: Buffer, admittedBy: ListenerProtection | null) => void) | null;
  private readonly server: NetServer;
  private readonly tls: TlsTerminator | null;
  private h2: Http2Server | null = null;
  private tlsConfig: TlsConfig | undefined;
  private readonly httpsPort: (() => number) | null;
  /** The socket being handed to the HTTP/2 factory, while it makes the session. */
  private handingOver: Socket | null = null;
  private handingAdmission: ListenerProtection | null = null;
  private readonly host: string;
  private readonly requestedPort: number;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.name = config.name;
    this.router = buildRouter(config, deps.pools);
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxHeaderSize = config.maxHeaderSize;
    this.timeouts = timeoutsOf(config);
    this.log = deps.log;
    this.throttle = new LogThrottle(deps.log);
    this.protection = this.buildProtection(config, this.router);
    this.upstreams = deps.upstreams;
    this.host = config.listen.host;
    this.requestedPort = config.listen.port;
    this.secure = config.tls !== undefined;
    this.tlsConfig = config.tls;
    this.hsts = config.hsts === undefined ? '' : `max-age=${config.hsts}`;
    this.httpsPort = deps.httpsPort ?? null;
    this.redirectPort = config.redirectHttps === true ? this.httpsPort : null;
    const h2 = config.tls === undefined ? config.http2 === true : config.tls.alpn.includes('h2');
    if (h2) {
      const settings = {
        maxConcurrentStreams: config.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
        maxHeaderSize: config.maxHeaderSize,
      };
      this.h2 = createH2Factory(settings, (session) => this.onSession(session));
    }
    this.h2c =
      config.tls === undefined && this.h2 !== null
        ? (socket, first, admittedBy) => {
            socket.pause();
            socket.unshift(first);
            this.handOver(socket, admittedBy);
          }
        : null;
    if (config.tls !== undefined) {
      this.tls = new TlsTerminator(config.tls, this.timeouts.requestHead, (socket) => this.accept(socket));
      this.server = this.tls.server;
    } else {
      this.tls = null;
      // allowHalfOpen: a client may send its request and shut down its side, and still
      // expects the whole response.
      this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.accept(socket));
    }
  }

  private accept(socket: Socket): void {
    if (this.closing) {
      socket.destroy();
      return;
    }
    // Denied addresses and clients at their connection limit are refused at accept (over TLS,
    // once the handshake is done).
    const protection = this.protection;
    if (protection !== null && !protection.admit(unmapIPv4(socket.remoteAddress ?? ''))) {
      socket.destroy();
      return;
    }
    if (this.h2 !== null && (socket as TLSSocket).alpnProtocol === 'h2')
      return this.handOver(socket, protection);
    new ClientConnection(socket, this, protection);
  }

  /** An HTTP/2 connection: the factory makes its session (synchronously, see onSession). */
  private handOver(socket: Socket, admittedBy: ListenerProtection | null): void {
    this.handingOver = socket;
    this.handingAdmission = admittedBy;
    try {
      this.h2!.emit('connection', socket);
    } finally {
      this.handingOver = null;
      this.handingAdmission = null;
    }
  }

  private onSession(session: ServerHttp2Session): void {
    // session.socket is a guard that forbids ending the socket: the connection keeps the real one.
    const socket = this.handingOver;
    if (socket === null || this.closing) {
      session.destroy();
      return;
    }
    new H2Connection(session, socket, this, this.handingAdmission);
  }

  /**
   * The listener's protection, its detection's blocks and its surges logged (one line each),
   * the sticky cookies of `router`'s pools kept through a surge.
   */
  private buildProtection(
    config: ListenerConfig,
    router: Router,
    previous?: ListenerProtection,
  ): ListenerProtection | null {
    const routeLimits = config.routes.map((r) => r.rateLimit);
    if (config.protection === undefined && routeLimits.every((r) => r === undefined)) return null;
    // Routes may have rate limits without the listener having protection of its own.
    const settings = config.protection ?? { allow: [], deny: [], failClosed: false };
    const p = new ListenerProtection(settings, this.name, this.log, previous, routeLimits);
    const cookies: string[] = [];
    for (const pool of router.pools())
      if (pool.affinity?.cookie !== undefined) cookies.push(pool.affinity.cookie);
    p.keepCookies(cookies);
    if (p.surge !== null) {
      p.surge.onChange = (s) =>
        this.log.warn(
          s.active
            ? `listener ${this.name}: surge: ${s.rate} req/s over the last seconds, above ${s.threshold} (baseline ${s.baseline} req/s): new clients get 503, clients with a session keep being served`
            : `listener ${this.name}: surge over: ${s.rate} req/s, under ${s.threshold} (baseline ${s.baseline} req/s); shed ${p.rejected.surge} requests so far`,
        );
    }
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
    const before = this.protection;
    this.protection = this.buildProtection(config, this.router, before ?? undefined);
    if (before !== null && this.protection === null) void before.close();
    this.hsts = config.hsts === undefined ? '' : `max-age=${config.hsts}`;
    this.redirectPort = config.redirectHttps === true ? this.httpsPort : null;
    this.tlsConfig = config.tls;
    if (this.tls !== null && config.tls !== undefined) this.tls.update(config.tls, this.name, this.log);
    this.startSweeper();
  }

  /** A reload that left this listener's settings as they were: certificate files may have changed. */
  refresh(): void {
    if (this.tls !== null && this.tlsConfig !== undefined)
      this.tls.update(this.tlsConfig, this.name, this.log);
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
    for (const c of this.connections) c.destroy();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await this.protection?.close();
    await closed;
  }
}
