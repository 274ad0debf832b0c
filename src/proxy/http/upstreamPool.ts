import { connect, isIP, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { ServerTls } from '../../core/pool.js';
import type { Server } from '../../core/server.js';
import { ReadBuffer } from '../readBuffer.js';

/** What an upstream connection reports to the exchange currently using it. */
export interface UpstreamOwner {
  onUpstreamConnect(up: UpstreamConnection): void;
  /**
   * Bytes from the server. On a plain connection `chunk` is lent: it is the connection's read
   * buffer, read into again after the call. True: the chunk is still referenced after the call
   * (written to a socket that has not finished with it), and the next read goes elsewhere.
   */
  onUpstreamData(up: UpstreamConnection, chunk: Buffer): boolean;
  onUpstreamDrain(up: UpstreamConnection): void;
  /** The socket closed; `error` is set when it closed because of one. */
  onUpstreamClose(up: UpstreamConnection, error: Error | undefined): void;
}

/** The pool options an idle list reads (the pool's own object, so reloads apply at once). */
export interface IdleSettings {
  /** Idle connections kept per server; more are closed when returned. */
  maxIdlePerServer: number;
  /** `idle`: an idle connection is closed after this long unused (ms). */
  timeouts: { idle: number };
  /** Connect with TLS (the pool's `tls`). */
  tls?: ServerTls | undefined;
}

/**
 * How much sooner than a server's announced keep-alive timeout (`Keep-Alive: timeout=N`) we stop
 * reusing, and close, its idle connection: the server's timer starts when it has written the
 * response, ours when we have read it, and a request must reach it before its timer fires.
 */
export const KEEP_ALIVE_MARGIN_MS = 1000;

/** How often idle connections are checked for expiry: a fraction of the smallest margin. */
const SWEEP_MS = 250;

/**
 * How long an idle connection may be kept given the server's keep-alive hint (ms, -1 when it gave
 * none): the hint less the margin, or half of a hint shorter than twice the margin; 0: don't keep.
 */
export function keepAliveFor(hintMs: number): number {
  if (hintMs < 0) return Number.POSITIVE_INFINITY;
  return hintMs >= 2 * KEEP_ALIVE_MARGIN_MS ? hintMs - KEEP_ALIVE_MARGIN_MS : Math.floor(hintMs / 2);
}

/**
 * The last TLS session of each server, for resumption: kept apart from the idle lists, which come
 * and go, and valid only for the same TLS settings and address.
 */
const sessions = new WeakMap<Server, { tls: ServerTls; host: string; port: number; session: Buffer }>();

/**
 * What a server connection's read buffer grows to for large responses (Node's own read size):
 * one read takes a 16 KiB body with its head, and a client too slow for a large body holds at
 * most this much of it in a pending write (plus the buffer being read into).
 */
const LARGE_RESPONSE_READ = 64 * 1024;

/**
 * A raw keep-alive connection to one server. Its listeners are attached once and forward to
 * whichever exchange owns it now, so reusing a connection allocates nothing.
 */
export class UpstreamConnection {
  readonly socket: Socket;
  readonly server: Server;
  owner: UpstreamOwner | null;
  connected = false;
  /** Has carried a complete exchange before (a failure on it may be a keep-alive race). */
  reused = false;
  idleSince = 0;
  /** While idle: not reused from this time on (ms since epoch), and closed by the sweep. */
  idleUntil = 0;
  /** The idle list it was opened from, or last returned to. */
  idle: IdleList;
  /** Where it was opened to: a reload may readdress the Server. */
  readonly host: string;
  readonly port: number;
  /** Why the TLS handshake failed, for the log ("certificate has expired", ...). */
  handshakeError: string | undefined;
  private error: Error | undefined;
  /**
   * Where a plain socket reads (`onread`): each read is lent to the owner, not copied, so a
   * response body of any size costs no allocation of its own on its way to the client (a copy
   * per read was a quarter of the CPU per 16 KiB response: malloc, page faults, memmove).
   */
  private readonly reads: ReadBuffer | null;

  constructor(server: Server, owner: UpstreamOwner, idle: IdleList) {
    this.server = server;
    this.owner = owner;
    this.idle = idle;
    this.host = server.host;
    this.port = server.port;
    const tls = idle.settings.tls;
    let reads: ReadBuffer | null = null;
    let socket: Socket;
    if (tls === undefined) {
      const r = new ReadBuffer(LARGE_RESPONSE_READ);
      reads = r;
      socket = connect({
        host: server.host,
        port: server.port,
        noDelay: true,
        onread: { buffer: r.next, callback: (n: number, buf: Uint8Array) => this.onRead(n, buf) },
      });
    } else socket = this.tls(tls);
    this.reads = reads;
    this.socket = socket;
    // With TLS, usable once the handshake is done (and the server's certificate checked).
    socket.on(tls === undefined ? 'connect' : 'secureConnect', () => {
      this.connected = true;
      this.owner?.onUpstreamConnect(this);
    });
    if (tls !== undefined) socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.owner?.onUpstreamDrain(this));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      this.error = err;
      if (tls !== undefined && !this.connected && err.syscall === undefined) {
        // Not a socket error (refused, reset): the handshake or the certificate check failed.
        this.handshakeError = `TLS handshake: ${err.message}${err.code !== undefined ? ` (${err.code})` : ''}`;
        sessions.delete(this.server);
      }
    });
    socket.on('close', () => {
      reads?.release();
      const owner = this.owner;
      this.owner = null;
      if (owner !== null) owner.onUpstreamClose(this, this.error);
      else this.idle.remove(this);
    });
  }

  destroy(): void {
    this.owner = null;
    this.socket.destroy();
  }

  /** `n` bytes read into `buf` (plain sockets), lent to the owner. */
  private onRead(n: number, buf: Uint8Array): boolean {
    const reads = this.reads!;
    if (this.onData(Buffer.from(buf.buffer, buf.byteOffset, n))) reads.keep();
    reads.afterRead(n, buf.length);
    return true;
  }

  /** True: the owner still references the chunk. */
  private onData(chunk: Buffer): boolean {
    if (this.owner !== null) return this.owner.onUpstreamData(this, chunk);
    this.socket.destroy(); // bytes on an idle connection: the server is confused; never reuse it
    return false;
  }

  /** A TLS connection, resuming the last session with this server when there is one. */
  private tls(tls: ServerTls): Socket {
    const host = this.host;
    const port = this.port;
    const saved = sessions.get(this.server);
    const resume =
      saved?.tls === tls && saved.host === host && saved.port === port ? saved.session : undefined;
    const socket = tlsConnect({
      host,
      port: this.port,
      secureContext: tls.context,
      // SNI is a name, never an address.
      servername: tls.serverName ?? (isIP(host) === 0 ? host : ''),
      rejectUnauthorized: tls.verify,
      ALPNProtocols: ['http/1.1'],
      session: resume,
    });
    socket.setNoDelay(true);
    // The latest ticket: the next connection to this server resumes instead of a full handshake.
    socket.on('session', (session: Buffer) => sessions.set(this.server, { tls, host, port, session }));
    return socket;
  }
}

/** Idle keep-alive connections to one server, most recently used first. */
export class IdleList {
  readonly server: Server;
  settings: IdleSettings;
  /** Closed (server removed or readdressed, or pool closed): keeps nothing. */
  closed = false;
  /** When a connection was last put back (ms since epoch): an unused empty list is dropped. */
  lastPut: number;
  private conns: UpstreamConnection[] = [];

  constructor(server: Server, settings: IdleSettings) {
    this.server = server;
    this.settings = settings;
    this.lastPut = Date.now();
  }

  get size(): number {
    return this.conns.length;
  }

  /** A live idle connection, now owned by `owner`, or null. */
  take(owner: UpstreamOwner): UpstreamConnection | null {
    const conns = this.conns;
    if (conns.length === 0) return null;
    const now = Date.now();
    while (conns.length > 0) {
      const up = conns.pop()!;
      if (up.socket.destroyed) continue;
      if (up.idleUntil <= now) {
        // Past the server's keep-alive (less our margin): it may be closing it right now.
        up.socket.destroy();
        continue;
      }
      up.owner = owner;
      up.socket.resume();
      return up;
    }
    return null;
  }

  open(owner: UpstreamOwner): UpstreamConnection {
    return new UpstreamConnection(this.server, owner, this);
  }

  /**
   * Returns a connection whose exchange completed cleanly. `keepAliveHintMs` is the server's
   * `Keep-Alive: timeout` of the last response in ms (-1: none): the connection is kept for
   * less than that, and not at all when the hint is too short.
   */
  put(up: UpstreamConnection, keepAliveHintMs = -1): void {
    up.owner = null;
    up.reused = true;
    const keep = Math.min(this.settings.timeouts.idle, keepAliveFor(keepAliveHintMs));
    if (
      up.socket.destroyed ||
      this.closed ||
      // Opened before the server was removed or readdressed.
      up.idle.closed ||
      up.port !== this.server.port ||
      up.host !== this.server.host ||
      keep <= 0 ||
      this.conns.length >= this.settings.maxIdlePerServer
    ) {
      up.socket.destroy();
      return;
    }
    const now = Date.now();
    up.idle = this;
    up.idleSince = now;
    up.idleUntil = now + keep;
    this.lastPut = now;
    // Keep reading while idle, so a close by the server is noticed (it may have been paused
    // by backpressure from the last client).
    up.socket.resume();
    this.conns.push(up);
  }

  remove(up: UpstreamConnection): void {
    const i = this.conns.indexOf(up);
    if (i >= 0) this.conns.splice(i, 1);
  }

  /** Closes every idle connection and keeps none from now on. */
  close(): void {
    this.closed = true;
    for (const up of this.conns.splice(0)) up.socket.destroy();
  }

  /** Closes the connections whose keep time has passed. */
  sweep(now: number): void {
    const conns = this.conns;
    let kept = 0;
    for (let i = 0; i < conns.length; i++) {
      const up = conns[i]!;
      if (up.idleUntil <= now) up.socket.destroy();
      else conns[kept++] = up;
    }
    conns.length = kept;
  }
}

/**
 * The idle keep-alive connections to upstream servers, one IdleList per server, and the timer
 * that closes them when their keep time ends (the pool's idle timeout, or sooner when the server
 * announced a shorter keep-alive). Owned by the runtime and shared by its HTTP listeners, like
 * undici's Agent: close() ends every idle connection and the timer.
 */
export class UpstreamPool {
  private readonly lists = new Map<Server, IdleList>();
  private sweeper: NodeJS.Timeout | undefined;
  private closed = false;

  /** The idle list of a server, created on first use; settings follow the pool's current ones. */
  listFor(server: Server, settings: IdleSettings): IdleList {
    let list = this.lists.get(server);
    if (list === undefined) {
      list = new IdleList(server, settings);
      // A closed pool still serves exchanges that finish late, but keeps no connection.
      if (this.closed) list.closed = true;
      else {
        this.lists.set(server, list);
        this.startSweeper();
      }
    } else if (list.settings !== settings) {
      list.settings = settings;
    }
    return list;
  }

  /** Idle connections to `server`, for tests and metrics. */
  idleCount(server: Server): number {
    return this.lists.get(server)?.size ?? 0;
  }

  /**
   * Closes a server's idle connections (it left its pool, or its address changed); connections
   * in use then are closed when their exchange ends instead of being kept.
   */
  closeServer(server: Server): void {
    const list = this.lists.get(server);
    if (list === undefined) return;
    list.close();
    this.lists.delete(server);
  }

  /** Closes every idle connection and stops the sweep; later exchanges keep nothing. */
  close(): void {
    this.closed = true;
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    for (const list of this.lists.values()) list.close();
    this.lists.clear();
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) return;
    this.sweeper = setInterval(() => this.sweep(Date.now()), SWEEP_MS);
    this.sweeper.unref();
  }

  private sweep(now: number): void {
    for (const [server, list] of this.lists) {
      list.sweep(now);
      // No traffic for a whole idle timeout: drop the list (a removed server's too); it is made
      // again on the next request, and connections in use then go back to the new one.
      if (list.size === 0 && now - list.lastPut > list.settings.timeouts.idle) this.lists.delete(server);
    }
  }
}
