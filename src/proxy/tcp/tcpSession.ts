import { connect, type Socket } from 'node:net';
import { PIN_WAIT_LIMIT_MS, resolvePinned } from '../../core/affinity.js';
import { unmapIPv4 } from '../../core/cidr.js';
import type { TrafficObserver } from '../../core/observer.js';
import { Outcome, type Pool } from '../../core/pool.js';
import { type SelectContext, Selection } from '../../core/selection.js';
import type { Server } from '../../core/server.js';
import { adoptWithOnread } from '../l4/adoptSocket.js';
import {
  atMaxConnections,
  drainDeadline,
  hostPort,
  isDraining,
  PROXY_HEADER_TIMEOUT,
  proxyVersionFor,
} from '../l4/l4.js';
import { encodeProxyHeader, type ProxyEndpoints, parseProxyHeader, V2_MAX_LENGTH } from '../proxyProtocol.js';
import { ReadBuffer } from '../readBuffer.js';
import { ClientHelloReader } from './clientHello.js';
import type { SniRouter } from './sniRouter.js';

/** Client bytes held while the server connection opens; beyond this the client is paused. */
const MAX_PENDING = 64 * 1024;
/**
 * The selection context of one connection: the client address is read from the socket (a system
 * call) only when a policy or a log line asks for it, or set from an accepted PROXY header.
 */
class ClientContext implements SelectContext {
  hashKey: string | undefined = undefined;
  private ip: string | undefined;
  constructor(private readonly socket: Socket) {}

  get clientIp(): string {
    if (this.ip === undefined) this.ip = unmapIPv4(this.socket.remoteAddress ?? '');
    return this.ip;
  }

  set clientIp(ip: string) {
    this.ip = ip;
  }
}

export enum Phase {
  /** Waiting in the listener's queue for a connection slot (not reading). */
  QueuedSlot = 0,
  /** Reading the PROXY protocol header. */
  Header = 1,
  /** Waiting in the listener's queue for a server below its maxConnections. */
  QueuedServer = 2,
  Connecting = 3,
  Piping = 4,
  Closed = 5,
  /**
   * Asking the pool's affinity (a shared stick table) which server the client is pinned to; the
   * store bounds the wait, PIN_WAIT_LIMIT_MS is the safety net.
   */
  Pinning = 6,
  /** Reading the client's TLS ClientHello for its server name (listeners with sni routes). */
  Hello = 7,
}

/** What a session needs of its listener; fields read live, so a reload applies to new work. */
export interface TcpListenerContext {
  readonly name: string;
  pool: Pool;
  idleTimeout: number;
  acceptProxyProtocol: boolean;
  /** Routes by the ClientHello's server name; null: the payload is never read. */
  sni: SniRouter | null;
  /** ms a client has to send its ClientHello (with `sni`). */
  clientHelloTimeout: number;
  /** Counts a connection closed before its ClientHello was read (timeout or not TLS). */
  helloRejected(kind: 'timeout' | 'invalid'): void;
  /** Told of every finished connection (metrics, access log), when set. */
  observer: TrafficObserver | null;
  /** Enqueue for a server slot; false when the queue is full. */
  waitForServer(session: TcpSession): boolean;
  /** The session ended: give back its slot, wake the queue. */
  ended(session: TcpSession): void;
  note(key: string, line: string, warn?: boolean): void;
  debug(line: string): void;
}

/**
 * One proxied TCP connection: optional PROXY header from the client, a server leased from the
 * pool (with connect timeout and retries on other servers before any byte is forwarded), then
 * bytes piped both ways with backpressure and half-close passed through. The lease spans the
 * connection, so least-connections counts open connections; it is released with the connect time
 * (plus the time to the server's first byte, when there is one) for least-response-time.
 */
export class TcpSession {
  readonly client: Socket;
  private readonly ctx: TcpListenerContext;
  phase: Phase;
  /** The session holds one of the listener's maxConnections slots. */
  hasSlot = false;
  /** When the current phase (header, queue, connect) times out; Infinity when none. */
  deadline = Number.POSITIVE_INFINITY;

  private readonly pick: ClientContext;
  /** From the PROXY header when one was accepted; else read from the sockets when needed. */
  private clientPort = -1;
  private destAddress: string | undefined;
  private destPort = 0;

  private pool: Pool | null = null;
  server: Server | null = null;
  private up: Socket | null = null;
  /** The candidates: pinned server, policy, fallbacks; `tried` ends with the current server. */
  private readonly selection = new Selection();
  private retriesLeft = 0;
  /** The server the connection reached (for the observer). */
  private reached: Server | null = null;
  private readonly acceptedAt = Date.now();

  private pending: Buffer[] = [];
  /** What each direction reads into: both sockets read with `onread`, no allocation per read. */
  private readonly fromClient = new ReadBuffer();
  private readonly fromServer = new ReadBuffer();
  private pendingBytes = 0;
  private header: Buffer | null = null;
  /** While reading the ClientHello (Phase.Hello). */
  private hello: ClientHelloReader | null = null;
  /** The pool the ClientHello's server name routed to, if any. */
  private routed: Pool | undefined;

  private clientEnded = false;
  private clientClosed = false;
  private upEnded = false;
  private upClosed = true;
  private upError: Error | undefined;
  private upTimedOut = false;
  /** We destroyed the upstream ourselves (client gone, idle, drain, shutdown). */
  private upAborted = false;
  private outcome = Outcome.Success;

  private connectStart = 0;
  private connectMs = 0;
  private firstSentAt = 0;
  private responseMs = -1;

  /** Traffic was seen since the sweep last looked (idle timeout without a timer per chunk). */
  seen = false;
  private idleDeadline = Number.POSITIVE_INFINITY;
  private drainNoticed = 0;

  /** `accepted` comes paused (the listener accepts with pauseOnConnect); admit() resumes it. */
  constructor(accepted: Socket, ctx: TcpListenerContext, queued: boolean) {
    const adopted = adoptWithOnread(accepted, {
      buffer: this.fromClient.next,
      callback: (n, buf) => this.onClientRead(n, buf),
    });
    const client = adopted ?? accepted;
    this.client = client;
    this.ctx = ctx;
    this.phase = queued ? Phase.QueuedSlot : Phase.Header;
    this.pick = new ClientContext(client);
    // Read the address now when it will be reported: a closed socket no longer knows it.
    if (ctx.observer !== null) void this.pick.clientIp;
    if (adopted === undefined) client.on('data', (chunk: Buffer) => this.onClientData(chunk));
    client.on('end', () => this.onClientEnd());
    client.on('drain', () => {
      if (this.phase === Phase.Piping) this.up?.resume();
    });
    client.on('error', () => {}); // 'close' follows; client resets are routine
    client.on('close', () => this.onClientClose());
    if (queued) client.pause();
  }

  /** Bytes this session holds in user space (both sockets' buffers and held bytes): bounded. */
  get bufferedBytes(): number {
    const c = this.client;
    const u = this.up;
    return (
      this.pendingBytes +
      c.writableLength +
      c.readableLength +
      (u === null ? 0 : u.writableLength + u.readableLength)
    );
  }

  get clientLabel(): string {
    return hostPort(this.pick.clientIp, this.clientPort >= 0 ? this.clientPort : this.client.remotePort);
  }

  /** Got a connection slot: read the PROXY header if one is expected, else pick a server. */
  admit(now: number): void {
    this.hasSlot = true;
    if (this.phase === Phase.Closed) return;
    if (this.ctx.acceptProxyProtocol) {
      this.phase = Phase.Header;
      this.deadline = now + PROXY_HEADER_TIMEOUT;
      this.client.resume();
      return;
    }
    this.client.resume();
    this.afterHeader(now);
  }

  /** The PROXY header (if any) is read: read the ClientHello when routing by SNI, else start. */
  private afterHeader(now: number): void {
    if (this.ctx.sni === null) {
      this.start();
      return;
    }
    this.phase = Phase.Hello;
    this.hello = new ClientHelloReader();
    this.deadline = now + this.ctx.clientHelloTimeout;
    // Bytes after a PROXY header, already held.
    for (const chunk of this.pending) if (this.onHelloData(chunk)) return;
  }

  /** Client bytes while reading the ClientHello (held as well); true once it is settled. */
  private onHelloData(chunk: Buffer): boolean {
    const result = this.hello!.push(chunk);
    if (result.kind === 'incomplete') return false;
    this.hello = null;
    if (result.kind === 'invalid') {
      this.ctx.helloRejected('invalid');
      this.ctx.note(
        'not-tls',
        `listener ${this.ctx.name}: connection from ${this.clientLabel} closed: ${result.reason}`,
      );
      this.close();
      return true;
    }
    const sni = this.ctx.sni;
    this.routed = sni?.select(result.sni);
    this.deadline = Number.POSITIVE_INFINITY;
    this.start();
    return true;
  }

  /**
   * Starts the first attempt against the listener's pool (as it is now), after asking the pool's
   * affinity (sticky source) for the client's server; a shared store may answer later, and the
   * client's bytes are held meanwhile.
   */
  private start(): void {
    const pool = this.routed ?? this.ctx.pool;
    this.pool = pool;
    this.retriesLeft = pool.options.retries.on.includes('connect-failure')
      ? pool.options.retries.attempts
      : 0;
    if (pool.affinity === null) {
      this.select(undefined);
      return;
    }
    const found = resolvePinned(pool.affinity, this.pick.clientIp, null);
    if (!(found instanceof Promise)) {
      this.select(found);
      return;
    }
    this.phase = Phase.Pinning;
    this.deadline = Date.now() + PIN_WAIT_LIMIT_MS;
    found.then((server) => {
      if (this.phase === Phase.Pinning) this.select(server);
    });
  }

  /** The pin is known (or there is none): the connection's selection starts with it. */
  private select(pinned: Server | undefined): void {
    this.selection.start(this.pool!, this.pick, pinned);
    this.tryConnect();
  }

  /**
   * Leases the next candidate and connects to it, or waits in the queue when every candidate
   * left is at its maxConnections, or gives up when there is none. Also the queue's retry entry
   * point. Returns false when it had to wait (the queue calls it again later).
   */
  tryConnect(): boolean {
    const pool = this.pool!;
    const selection = this.selection;
    const server = selection.next(atMaxConnections);
    if (server !== undefined) {
      this.connectTo(server);
      return true;
    }
    if (selection.skipped > 0) {
      // Every candidate left is full: wait for one to free a slot.
      if (this.phase === Phase.QueuedServer) return false;
      this.phase = Phase.QueuedServer;
      if (this.ctx.waitForServer(this)) return false;
      this.fail(
        `refused: every server of pool ${pool.name} is at its maxConnections and the queue is full`,
        'queue-full',
      );
      return true;
    }
    const failed = selection.tried.length;
    this.fail(
      failed > 0
        ? `no other server of pool ${pool.name} to try after ${failed} failed`
        : `no server of pool ${pool.name} is available`,
      'no-server',
    );
    return true;
  }

  private connectTo(server: Server): void {
    const pool = this.pool!;
    this.server = server;
    this.phase = Phase.Connecting;
    this.connectStart = Date.now();
    this.deadline = this.connectStart + pool.options.timeouts.connect;
    this.upEnded = false;
    this.upClosed = false;
    this.upError = undefined;
    this.upTimedOut = false;
    this.upAborted = false;
    const up: Socket = connect({
      host: server.host,
      port: server.port,
      allowHalfOpen: true,
      noDelay: true,
      onread: {
        buffer: this.fromServer.next,
        callback: (n: number, buf: Uint8Array): boolean => this.onUpRead(up, n, buf),
      },
    });
    this.up = up;
    up.on('connect', () => this.onUpConnect(up));
    up.on('end', () => this.onUpEnd(up));
    up.on('drain', () => {
      if (this.phase === Phase.Piping && !this.clientEnded) this.client.resume();
    });
    up.on('error', (err: Error) => {
      if (this.up === up) this.upError = err;
    });
    up.on('close', () => this.onUpClose(up));
  }

  private onUpConnect(up: Socket): void {
    if (this.up !== up || this.phase !== Phase.Connecting) return;
    const now = Date.now();
    this.connectMs = now - this.connectStart;
    this.phase = Phase.Piping;
    this.reached = this.server;
    this.pool!.affinity?.onConnection?.(this.pick.clientIp, this.server!);
    this.deadline = Number.POSITIVE_INFINITY;
    this.idleDeadline = now + this.ctx.idleTimeout;
    this.seen = false;
    const version = proxyVersionFor(this.pool!, this.server!);
    // The header and the bytes held so far leave together, in one write (bounded: under 128 KiB).
    const out = this.pending;
    if (version !== undefined) out.unshift(encodeProxyHeader(version, this.endpoints()));
    if (this.pendingBytes > 0) this.firstSentAt = now;
    this.pending = [];
    this.pendingBytes = 0;
    let ok = true;
    if (out.length === 1) ok = up.write(out[0]!);
    else if (out.length > 1) ok = up.write(Buffer.concat(out));
    if (this.clientEnded) up.end();
    else if (ok) this.client.resume();
    else this.client.pause();
  }

  private endpoints(): ProxyEndpoints {
    const c = this.client;
    return {
      sourceAddress: this.pick.clientIp,
      sourcePort: this.clientPort >= 0 ? this.clientPort : (c.remotePort ?? 0),
      destAddress: this.destAddress ?? unmapIPv4(c.localAddress ?? ''),
      destPort: this.destAddress !== undefined ? this.destPort : (c.localPort ?? 0),
    };
  }

  private onClientData(chunk: Buffer): void {
    switch (this.phase) {
      case Phase.Piping:
        if (!this.toServer(chunk)) this.client.pause();
        return;
      case Phase.Header:
        this.onHeaderData(chunk);
        return;
      case Phase.Hello:
        this.hold(chunk);
        this.onHelloData(chunk);
        return;
      case Phase.Connecting:
      case Phase.QueuedServer:
      case Phase.Pinning:
        this.hold(chunk);
        return;
      default:
        // Queued for a slot: paused, but a chunk already read may still arrive.
        this.hold(chunk);
    }
  }

  /** Client bytes to the server while piping; false when the server socket is full. */
  private toServer(chunk: Buffer, written?: () => void): boolean {
    this.seen = true;
    if (this.firstSentAt === 0) this.firstSentAt = Date.now();
    return this.up!.write(chunk, written);
  }

  private hold(chunk: Buffer): void {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.pendingBytes >= MAX_PENDING) this.client.pause();
  }

  private onHeaderData(chunk: Buffer): void {
    const buf = this.header === null ? chunk : Buffer.concat([this.header, chunk]);
    const result = parseProxyHeader(buf);
    if (result.kind === 'incomplete') {
      if (buf.length >= V2_MAX_LENGTH) {
        this.reject('PROXY header too long');
        return;
      }
      this.header = buf;
      return;
    }
    this.header = null;
    if (result.kind === 'invalid') {
      this.reject(result.reason);
      return;
    }
    const e = result.endpoints;
    if (e !== undefined) {
      if (result.transport !== 'tcp') {
        this.reject('PROXY header announces UDP on a tcp listener');
        return;
      }
      this.pick.clientIp = e.sourceAddress;
      this.clientPort = e.sourcePort;
      this.destAddress = e.destAddress;
      this.destPort = e.destPort;
    }
    if (buf.length > result.length) this.hold(buf.subarray(result.length));
    this.deadline = Number.POSITIVE_INFINITY;
    this.afterHeader(Date.now());
  }

  private reject(reason: string): void {
    this.ctx.note(
      'bad-proxy-header',
      `listener ${this.ctx.name}: connection from ${this.clientLabel} closed: ${reason}`,
    );
    this.close();
  }

  /** A read from the server (onread): false pauses the server socket. */
  private onUpRead(up: Socket, n: number, buf: Uint8Array): boolean {
    if (this.up !== up || this.phase !== Phase.Piping) return true;
    this.seen = true;
    if (this.responseMs < 0)
      this.responseMs = Date.now() - (this.firstSentAt || this.connectStart + this.connectMs);
    const client = this.client;
    const ok = client.write(Buffer.from(buf.buffer, buf.byteOffset, n), this.fromServer.written);
    // Still queued in the client socket: that buffer is not ours to reuse.
    this.fromServer.afterRead(n, buf.length, { held: client.writableLength !== 0 });
    return ok;
  }

  /** A read from the client (onread): false pauses the client socket. */
  private onClientRead(n: number, buf: Uint8Array): boolean {
    if (this.phase === Phase.Piping) {
      const ok = this.toServer(Buffer.from(buf.buffer, buf.byteOffset, n), this.fromClient.written);
      this.fromClient.afterRead(n, buf.length, { held: this.up!.writableLength !== 0 });
      return ok;
    }
    // Held (header, connecting, queued): a copy, the read buffer is reused.
    const chunk = Buffer.from(buf.subarray(0, n));
    this.fromClient.afterRead(n, buf.length);
    this.onClientData(chunk);
    return true;
  }

  private onClientEnd(): void {
    this.clientEnded = true;
    if (this.phase === Phase.Piping) this.up!.end();
    else if (this.phase === Phase.Header || this.phase === Phase.QueuedSlot || this.phase === Phase.Hello)
      this.close();
    // Connecting or waiting for a server: the held bytes still go, then end() (onUpConnect).
  }

  private onUpEnd(up: Socket): void {
    if (this.up !== up) return;
    this.upEnded = true;
    this.client.end();
  }

  private onClientClose(): void {
    this.clientClosed = true;
    if (this.up !== null && !this.upClosed) {
      // A clean close means both directions ended on the client side, so the server has
      // already ended its side too; anything else (reset, destroy) aborts the server side.
      if (!(this.clientEnded && this.upEnded)) {
        if (this.phase !== Phase.Piping) this.outcome = Outcome.Cancelled;
        this.upAborted = true;
        this.up.destroy();
      }
      return;
    }
    this.finish();
  }

  private onUpClose(up: Socket): void {
    if (this.up !== up) return;
    this.upClosed = true;
    if (this.phase === Phase.Connecting) {
      this.connectFailed();
      return;
    }
    if (this.phase === Phase.Piping && !this.upAborted) {
      if (this.upError !== undefined) this.outcome = Outcome.Failure;
      // The server went away without ending its side cleanly: pass the abort on.
      if (!this.upEnded || this.upError !== undefined) this.client.destroy();
    }
    if (this.clientClosed) this.finish();
  }

  private connectFailed(): void {
    const server = this.server!;
    const pool = this.pool!;
    const elapsed = Date.now() - this.connectStart;
    this.up = null;
    this.server = null;
    if (this.upAborted) {
      // The client left (or we are shutting down) while connecting: not the server's fault.
      pool.release(server, Outcome.Cancelled, elapsed);
      if (this.clientClosed) this.finish();
      else this.close();
      return;
    }
    pool.release(server, Outcome.Failure, elapsed);
    const why = this.upTimedOut
      ? `connect timeout (${pool.options.timeouts.connect}ms)`
      : (this.upError?.message ?? 'closed');
    if (this.clientClosed) {
      this.finish();
      return;
    }
    if (this.retriesLeft > 0) {
      this.retriesLeft--;
      this.ctx.debug(`listener ${this.ctx.name}: ${server.id}: ${why}; retrying on another server`);
      this.tryConnect();
      return;
    }
    this.fail(`server ${server.id} of pool ${pool.name}: ${why}`, 'connect-failed');
  }

  /** Gives up on the client: logged (throttled), connection closed. */
  private fail(reason: string, key: string): void {
    this.ctx.note(key, `listener ${this.ctx.name}: connection from ${this.clientLabel} closed: ${reason}`);
    this.close();
  }

  /** The sweep: phase deadlines, idle timeout, drain timeout. */
  onSweep(now: number): void {
    if (now >= this.deadline) {
      this.onDeadline();
      return;
    }
    if (this.phase !== Phase.Piping) return;
    if (this.seen) {
      this.seen = false;
      this.idleDeadline = now + this.ctx.idleTimeout;
    } else if (now >= this.idleDeadline) {
      this.ctx.debug(
        `listener ${this.ctx.name}: ${this.clientLabel} idle for ${this.ctx.idleTimeout}ms, closed`,
      );
      this.close();
      return;
    }
    const server = this.server!;
    const pool = this.pool!;
    if (isDraining(pool, server)) {
      if (this.drainNoticed === 0) this.drainNoticed = now;
      if (now >= drainDeadline(pool, server, this.drainNoticed)) {
        this.ctx.note(
          `drain-${server.id}`,
          `listener ${this.ctx.name}: connection of ${this.clientLabel} to draining server ${server.id} closed after drainTimeout`,
          false,
        );
        this.close();
      }
    } else {
      this.drainNoticed = 0;
    }
  }

  private onDeadline(): void {
    this.deadline = Number.POSITIVE_INFINITY;
    switch (this.phase) {
      case Phase.Header:
        this.reject(`no PROXY header within ${PROXY_HEADER_TIMEOUT}ms`);
        return;
      case Phase.Hello:
        this.ctx.helloRejected('timeout');
        this.ctx.note(
          'client-hello-timeout',
          `listener ${this.ctx.name}: connection from ${this.clientLabel} closed: no TLS ClientHello within ${this.ctx.clientHelloTimeout}ms`,
        );
        this.close();
        return;
      case Phase.QueuedSlot:
      case Phase.QueuedServer:
        this.ctx.note(
          'queue-timeout',
          `listener ${this.ctx.name}: connection from ${this.clientLabel} refused: waited too long in the queue`,
        );
        this.close();
        return;
      case Phase.Connecting:
        this.upTimedOut = true;
        this.up?.destroy();
        return;
      case Phase.Pinning:
        // The affinity store did not settle: the policy chooses.
        this.select(undefined);
        return;
      default:
    }
  }

  /** Closes both sides at once (timeouts, refusals, shutdown). */
  close(): void {
    if (this.phase === Phase.Closed) return;
    if (this.up !== null && !this.upClosed) {
      this.upAborted = true;
      this.up.destroy();
    }
    this.client.destroy();
  }

  /** Shutdown: a connection still waiting for a slot goes now; the rest keep going. */
  shutdown(): void {
    if (this.phase === Phase.QueuedSlot) this.close();
  }

  private finish(): void {
    if (this.phase === Phase.Closed) return;
    this.phase = Phase.Closed;
    this.pending = [];
    // Both sockets are closed: no read or write can still use the current read buffers.
    this.fromClient.release();
    this.fromServer.release();
    if (this.server !== null) {
      const sample = this.connectMs + Math.max(this.responseMs, 0);
      this.pool!.release(this.server, this.outcome, sample);
      this.server = null;
    }
    const observer = this.ctx.observer;
    if (observer !== null) this.report(observer);
    this.ctx.ended(this);
  }

  /** One record per connection: the server reached (or null), bytes sent to the client, retries. */
  private report(observer: TrafficObserver): void {
    const now = Date.now();
    const tries = this.selection.tried.length;
    observer.onExchange({
      listener: this.ctx.name,
      protocol: 'tcp',
      pool: (this.pool ?? this.ctx.pool).name,
      server: this.reached?.id ?? null,
      clientIp: this.pick.clientIp,
      method: '',
      path: '',
      status: 0,
      bytesOut: this.client.bytesWritten,
      bytesIn: this.client.bytesRead,
      durationMs: now - this.acceptedAt,
      retries: Math.max(0, tries - 1),
      at: now,
    });
  }
}
