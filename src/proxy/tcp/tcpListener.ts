import { createServer, type Server as NetServer, type Socket } from 'node:net';
import type { ListenerConfig } from '../../config/types.js';
import { CidrSet, unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import type { Pool } from '../../core/pool.js';
import { ListenerProtection } from '../../protection/listenerProtection.js';
import { DEFAULT_QUEUE, hostPort, LogThrottle, PROXY_HEADER_TIMEOUT } from '../l4/l4.js';
import type { Listener, ListenerDeps, PoolLookup } from '../listener.js';
import { listenError, sweepPeriod } from '../listener.js';
import { SniRouter } from './sniRouter.js';
import { Phase, type TcpListenerContext, TcpSession } from './tcpSession.js';

/** Default of `timeouts.clientHello`: how long a client of a listener with sni routes has to send its ClientHello. */
export const DEFAULT_CLIENT_HELLO_TIMEOUT = 5000;

/** Connections an sni-routing listener closed before reading a ClientHello, by reason. */
export interface HelloRejections {
  /** No complete ClientHello within `timeouts.clientHello`. */
  timeout: number;
  /** Bytes that are not a TLS ClientHello (or one larger than 16 KiB). */
  invalid: number;
}

/** The tcp-only listener keys (optional in the normalized config; defaults here). */
interface TcpListenerKeys {
  acceptProxyProtocol?: boolean;
  queue?: { size: number; timeout: number };
}

/**
 * A `protocol: tcp` listener: L4 balancing by address and port, the payload never read (except a
 * PROXY protocol header when `acceptProxyProtocol` is on, and the TLS ClientHello's server name
 * when `routes` match by `sni`: TLS passthrough). Beyond `maxConnections`, connections
 * wait (not read) in a bounded FIFO queue for a bounded time, then are refused; connections whose
 * servers are all at their own `maxConnections` wait in the same queue. One coarse sweep timer
 * enforces every deadline (PROXY header, queue, connect, idle, drain).
 */
export class TcpListener implements Listener, TcpListenerContext {
  readonly protocol = 'tcp';
  readonly name: string;
  pool: Pool;
  idleTimeout: number;
  acceptProxyProtocol: boolean;
  sni: SniRouter | null;
  clientHelloTimeout: number;
  readonly helloRejections: HelloRejections = { timeout: 0, invalid: 0 };
  observer: TrafficObserver | null = null;
  private trusted: CidrSet | null;
  private maxConnections: number | undefined;
  private queue: { size: number; timeout: number };
  private closing = false;
  private readonly log: Logger;
  private readonly throttle: LogThrottle;
  readonly sessions = new Set<TcpSession>();
  /** Sessions holding a connection slot. */
  private active = 0;
  /** Waiting for a connection slot (FIFO). */
  private readonly slotQueue: TcpSession[] = [];
  /** Holding a slot, waiting for a server below its maxConnections (FIFO). */
  private readonly serverQueue: TcpSession[] = [];
  private processing = false;
  private processAgain = false;
  private readonly server: NetServer;
  private readonly host: string;
  private readonly requestedPort: number;
  private sweeper: NodeJS.Timeout | undefined;
  /** Per-source connection limits and allow/deny lists, when `protection`. */
  protection: ListenerProtection | null;
  /** The address each admitted session counts under, and the protection that admitted it. */
  private readonly admitted = new Map<TcpSession, { ip: string; by: ListenerProtection }>();

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.name = config.name;
    this.log = deps.log;
    this.throttle = new LogThrottle(deps.log);
    this.host = config.listen.host;
    this.requestedPort = config.listen.port;
    this.pool = deps.pools(config.pool);
    this.idleTimeout = config.timeouts.idle;
    const keys = config as ListenerConfig & TcpListenerKeys;
    this.acceptProxyProtocol = keys.acceptProxyProtocol ?? false;
    this.sni = sniRouter(config, deps.pools);
    this.clientHelloTimeout = config.timeouts.clientHello ?? DEFAULT_CLIENT_HELLO_TIMEOUT;
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxConnections = config.maxConnections;
    this.queue = keys.queue ?? DEFAULT_QUEUE;
    this.protection =
      config.protection === undefined ? null : new ListenerProtection(config.protection, this.name, this.log);
    // allowHalfOpen: a client that shuts down its sending side still gets the server's answer.
    // pauseOnConnect: nothing is read before the session takes the socket over (adoptSocket.ts).
    this.server = createServer({ allowHalfOpen: true, noDelay: true, pauseOnConnect: true }, (socket) =>
      this.accept(socket),
    );
  }

  get connectionCount(): number {
    return this.sessions.size;
  }

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
        // Bind errors are start()'s to report, once; later ones (EMFILE on accept) are logged.
        this.server.on('error', (err) => this.log.error(`listener ${this.name}: ${err.message}`));
        this.startSweeper();
        resolve();
      });
    });
  }

  /** Reload: new pool, limits and timeouts apply to new connections; open ones keep their server. */
  update(config: ListenerConfig, pools: PoolLookup): void {
    const keys = config as ListenerConfig & TcpListenerKeys;
    this.pool = pools(config.pool);
    this.idleTimeout = config.timeouts.idle;
    this.acceptProxyProtocol = keys.acceptProxyProtocol ?? false;
    this.sni = sniRouter(config, pools);
    this.clientHelloTimeout = config.timeouts.clientHello ?? DEFAULT_CLIENT_HELLO_TIMEOUT;
    this.trusted = config.trustedProxies.length > 0 ? new CidrSet(config.trustedProxies) : null;
    this.maxConnections = config.maxConnections;
    this.queue = keys.queue ?? DEFAULT_QUEUE;
    // Open-connection counts and refusal totals carry over; rate buckets start afresh.
    this.protection =
      config.protection === undefined
        ? null
        : new ListenerProtection(config.protection, this.name, this.log, this.protection ?? undefined);
    this.startSweeper();
    this.processQueue();
  }

  private accept(socket: Socket): void {
    socket.on('error', () => {});
    if (this.closing) {
      socket.destroy();
      return;
    }
    const peer = unmapIPv4(socket.remoteAddress ?? '');
    if (this.acceptProxyProtocol && !(this.trusted?.has(peer) ?? false)) {
      // A PROXY header is required, and believed only from trustedProxies: anyone else could
      // claim any address.
      this.throttle.note(
        'untrusted',
        `listener ${this.name}: connection from ${hostPort(peer, socket.remotePort)} refused: not in trustedProxies (acceptProxyProtocol)`,
      );
      socket.destroy();
      return;
    }
    // Denied addresses, and sources over their connection rate or count, are closed at once.
    const protection = this.protection;
    if (protection !== null && !protection.admit(peer, true)) {
      this.throttle.note(
        'protection',
        `listener ${this.name}: connection from ${hostPort(peer, socket.remotePort)} refused by protection`,
        false,
      );
      socket.destroy();
      return;
    }
    const full = this.maxConnections !== undefined && this.active >= this.maxConnections;
    if (!full && this.slotQueue.length === 0) {
      const session = new TcpSession(socket, this, false);
      if (protection !== null) this.admitted.set(session, { ip: peer, by: protection });
      this.sessions.add(session);
      this.active++;
      session.admit(Date.now());
      return;
    }
    if (this.queued() >= this.queue.size) {
      protection?.release(peer);
      this.throttle.note(
        'refused',
        `listener ${this.name}: connection from ${hostPort(peer, socket.remotePort)} refused: maxConnections (${this.maxConnections}) reached and the queue is full (${this.queue.size})`,
      );
      socket.destroy();
      return;
    }
    const session = new TcpSession(socket, this, true);
    if (protection !== null) this.admitted.set(session, { ip: peer, by: protection });
    this.sessions.add(session);
    session.deadline = Date.now() + this.queue.timeout;
    this.slotQueue.push(session);
    this.throttle.note(
      'queued',
      `listener ${this.name}: connection from ${session.clientLabel} queued: maxConnections (${this.maxConnections}) reached`,
      false,
    );
  }

  private queued(): number {
    return this.slotQueue.length + this.serverQueue.length;
  }

  waitForServer(session: TcpSession): boolean {
    if (this.queued() >= this.queue.size) return false;
    session.deadline = Date.now() + this.queue.timeout;
    this.serverQueue.push(session);
    this.throttle.note(
      'queued-server',
      `listener ${this.name}: connection from ${session.clientLabel} queued: every server is at its maxConnections`,
      false,
    );
    return true;
  }

  ended(session: TcpSession): void {
    this.sessions.delete(session);
    const admission = this.admitted.get(session);
    if (admission !== undefined) {
      this.admitted.delete(session);
      admission.by.release(admission.ip);
    }
    if (session.hasSlot) {
      session.hasSlot = false;
      this.active--;
    }
    removeFrom(this.slotQueue, session);
    removeFrom(this.serverQueue, session);
    this.processQueue();
  }

  helloRejected(kind: keyof HelloRejections): void {
    this.helloRejections[kind]++;
  }

  note(key: string, line: string, warn = true): void {
    this.throttle.note(key, line, warn);
  }

  debug(line: string): void {
    this.log.debug(line);
  }

  /** Lets waiting connections go, oldest first, as far as slots and servers allow. */
  private processQueue(): void {
    if (this.processing) {
      this.processAgain = true;
      return;
    }
    this.processing = true;
    try {
      do {
        this.processAgain = false;
        while (this.serverQueue.length > 0) {
          const s = this.serverQueue[0]!;
          if (s.phase !== Phase.QueuedServer) {
            this.serverQueue.shift();
            continue;
          }
          if (!s.tryConnect()) break;
          removeFrom(this.serverQueue, s);
        }
        while (
          this.slotQueue.length > 0 &&
          !this.closing &&
          (this.maxConnections === undefined || this.active < this.maxConnections)
        ) {
          const s = this.slotQueue.shift()!;
          if (s.phase !== Phase.QueuedSlot) continue;
          this.active++;
          s.admit(Date.now());
        }
      } while (this.processAgain);
    } finally {
      this.processing = false;
    }
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    const shortest = Math.min(
      this.idleTimeout,
      this.queue.timeout,
      this.pool.options.timeouts.connect,
      PROXY_HEADER_TIMEOUT,
      this.sni !== null ? this.clientHelloTimeout : Number.POSITIVE_INFINITY,
    );
    this.sweeper = setInterval(() => this.sweep(), sweepPeriod(shortest));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const s of this.sessions) s.onSweep(now);
    // Servers shared with other listeners may have freed slots.
    if (this.serverQueue.length > 0) this.processQueue();
    this.throttle.flush(now);
  }

  /**
   * Graceful stop: no new connections; those still queued or not yet connected are closed; the
   * others go on until they end or `timeoutMs` passes, then are closed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    const closed = new Promise<void>((resolve) => {
      if (!this.server.listening) resolve();
      else this.server.close(() => resolve());
    });
    for (const s of [...this.sessions]) s.shutdown();
    const deadline = Date.now() + timeoutMs;
    while (this.sessions.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const s of [...this.sessions]) s.close();
    await closed;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
  }
}

/** The listener's sni routes, or null without any (then no byte of the payload is read). */
function sniRouter(config: ListenerConfig, pools: PoolLookup): SniRouter | null {
  const routes = config.routes.filter((r) => r.match.sni !== undefined);
  if (routes.length === 0) return null;
  return new SniRouter(routes.map((r) => ({ sni: r.match.sni!, pool: pools(r.pool) })));
}

function removeFrom(list: TcpSession[], s: TcpSession): void {
  const i = list.indexOf(s);
  if (i >= 0) list.splice(i, 1);
}
