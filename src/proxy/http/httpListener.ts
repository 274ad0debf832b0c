import type { Http2Server, ServerHttp2Session } from 'node:http2';
import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ListenerConfig, TlsConfig } from '../../config/types.js';
import { CidrSet, unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { ListenerProtection } from '../../protection/listenerProtection.js';
import type { FrontConnection } from '../frontConnection.js';
import { createH2Factory, H2Connection, type H2Settings } from '../http2/h2Connection.js';
import { adoptWithOnread } from '../l4/adoptSocket.js';
import { type Listener, type ListenerDeps, listenError, type PoolLookup, sweepPeriod } from '../listener.js';
import { LogThrottle } from '../logThrottle.js';
import { DYNAMIC_ALPN, TlsTerminator } from '../tls/tlsTerminator.js';
import { ClientConnection, type ListenerContext } from './clientConnection.js';
import { Router } from './router.js';
import { copyOfRead, SHARED_READ_BUFFER } from './sharedRead.js';
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

function sameH2Settings(a: H2Settings | null, b: H2Settings): boolean {
  return (
    a !== null && a.maxConcurrentStreams === b.maxConcurrentStreams && a.maxHeaderSize === b.maxHeaderSize
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
  /** TLS is terminated here (a reload may turn it on or off: the bound socket stays). */
  secure: boolean;
  hsts: string;
  redirectPort: (() => number) | null;
  h2c: ((socket: Socket, first: Buffer, admittedBy: ListenerProtection | null) => void) | null;
  private readonly server: NetServer;
  private tls: TlsTerminator | null;
  private h2: Http2Server | null = null;
  private h2Settings: H2Settings | null = null;
  /** The plain sockets of TLS connections (in their handshake, or under a front), until closed. */
  private readonly tlsSockets = new Set<Socket>();
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
    this.tls = config.tls === undefined ? null : this.terminator(config.tls);
    this.h2c = null;
    this.applyH2(config);
    // One plain socket listens whether TLS is on or not: a TLS connection is handed to the
    // terminator, so a reload can turn TLS on or off without closing the socket.
    // allowHalfOpen: a client may send its request and shut down its side, and still expects
    // the whole response (TLS sockets: once their handshake is done, see TlsTerminator.take).
    // pauseOnConnect: nothing is read before accept() has moved a plain socket to the shared
    // read buffer (sharedRead.ts, adoptSocket.ts); a TLS socket reads through its TLS wrap.
    this.server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) => {
      const tls = this.tls;
      if (tls === null) return this.accept(socket);
      // Known until it closes: a shutdown cuts those still in their handshake after the grace.
      this.tlsSockets.add(socket);
      socket.once('close', () => this.tlsSockets.delete(socket));
      tls.take(socket);
    });
  }

  /** TLS termination for `config`; throws a CertificateError when a file cannot be used. */
  private terminator(config: TlsConfig): TlsTerminator {
    return new TlsTerminator(config, this.timeouts.requestHead, (socket) => this.accept(socket));
  }

  /**
   * TLS as `config` says, for the next connections: the certificates re-read; or TLS turned on
   * (certificates that cannot be used keep the listener as it was, logged) or off. Connections
   * open, and handshakes in flight, keep what they had.
   */
  private applyTls(config: TlsConfig | undefined): void {
    if (config === undefined) {
      this.tls = null;
    } else if (this.tls !== null) {
      this.tls.update(config, this.name, this.log);
    } else {
      try {
        this.tls = this.terminator(config);
      } catch (error) {
        this.log.error(
          `listener ${this.name}: TLS not turned on, certificates unusable: ${(error as Error).message}`,
        );
        return;
      }
    }
    this.secure = this.tls !== null;
    this.tlsConfig = config;
  }

  /**
   * HTTP/2 as `config` says (`tls.alpn` or `http2`, `maxConcurrentStreams`, `maxHeaderSize`), for
   * the next connections: a new session factory when a setting changed; sessions open keep the
   * settings they were made with.
   */
  private applyH2(config: ListenerConfig): void {
    // As TLS is (on, or still off if it could not be turned on).
    const tls = this.tls === null ? undefined : this.tlsConfig;
    const on = tls === undefined ? config.http2 === true : tls.alpn.includes('h2');
    const settings: H2Settings = {
      maxConcurrentStreams: config.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS,
      maxHeaderSize: config.maxHeaderSize,
    };
    // Before Node 20.4 ALPN is fixed when the listener starts: h2 stays served if it was offered.
    if (!on && (tls === undefined || DYNAMIC_ALPN)) this.h2 = null;
    else if (this.h2 === null || !sameH2Settings(this.h2Settings, settings)) {
      this.h2 = createH2Factory(settings, (session) => this.onSession(session));
    }
    this.h2Settings = settings;
    this.h2c =
      tls === undefined && this.h2 !== null
        ? (socket, first, admittedBy) => {
            socket.pause();
            socket.unshift(first);
            this.handOver(socket, admittedBy);
          }
        : null;
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
    if (this.tls !== null) {
      new ClientConnection(socket, this, protection);
      return;
    }
    // Plain HTTP: accepted paused. Without h2c (which hands the socket to node:http2 as it is),
    // it reads into the shared buffer; otherwise, and if adopting fails, the ordinary way.
    let conn: ClientConnection | undefined;
    const adopted =
      this.h2c === null
        ? adoptWithOnread(socket, {
            buffer: SHARED_READ_BUFFER,
            callback: (n: number) => {
              conn?.onData(copyOfRead(n));
              return true;
            },
          })
        : undefined;
    conn = new ClientConnection(adopted ?? socket, this, protection, adopted === undefined);
    (adopted ?? socket).resume();
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
    this.applyTls(config.tls);
    this.applyH2(config);
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
    // TLS handshakes in flight get the grace too (one that finishes is then refused by accept).
    const graceEnd = Date.now() + grace;
    const busy = () => this.connections.size > 0 || (this.tlsSockets.size > 0 && Date.now() < graceEnd);
    while (busy() && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const c of this.connections) c.destroy();
    // Left now: handshakes that did not finish (the server's close would wait for their timeout).
    for (const s of this.tlsSockets) s.destroy();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    await this.protection?.close();
    await closed;
  }
}
