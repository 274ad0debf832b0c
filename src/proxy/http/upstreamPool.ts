import { connect, type Socket } from 'node:net';
import type { Server } from '../../core/server.js';

/** What an upstream connection reports to the exchange currently using it. */
export interface UpstreamOwner {
  onUpstreamConnect(up: UpstreamConnection): void;
  onUpstreamData(up: UpstreamConnection, chunk: Buffer): void;
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
}

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
  private error: Error | undefined;
  private readonly idle: IdleList;

  constructor(server: Server, owner: UpstreamOwner, idle: IdleList) {
    this.server = server;
    this.owner = owner;
    this.idle = idle;
    const socket = connect({ host: server.host, port: server.port, noDelay: true });
    this.socket = socket;
    socket.on('connect', () => {
      this.connected = true;
      this.owner?.onUpstreamConnect(this);
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.owner !== null) this.owner.onUpstreamData(this, chunk);
      else socket.destroy(); // bytes on an idle connection: the server is confused; never reuse it
    });
    socket.on('drain', () => this.owner?.onUpstreamDrain(this));
    socket.on('error', (err) => {
      this.error = err;
    });
    socket.on('close', () => {
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
}

/** Idle keep-alive connections to one server, most recently used first. */
export class IdleList {
  readonly server: Server;
  settings: IdleSettings;
  private conns: UpstreamConnection[] = [];

  constructor(server: Server, settings: IdleSettings) {
    this.server = server;
    this.settings = settings;
    allLists.add(this);
    ensureSweeper();
  }

  get size(): number {
    return this.conns.length;
  }

  /** A live idle connection, now owned by `owner`, or null. */
  take(owner: UpstreamOwner): UpstreamConnection | null {
    const conns = this.conns;
    while (conns.length > 0) {
      const up = conns.pop()!;
      if (up.socket.destroyed) continue;
      up.owner = owner;
      up.socket.resume();
      return up;
    }
    return null;
  }

  open(owner: UpstreamOwner): UpstreamConnection {
    return new UpstreamConnection(this.server, owner, this);
  }

  /** Returns a connection whose exchange completed cleanly. */
  put(up: UpstreamConnection): void {
    up.owner = null;
    up.reused = true;
    if (up.socket.destroyed || this.conns.length >= this.settings.maxIdlePerServer) {
      up.socket.destroy();
      return;
    }
    up.idleSince = Date.now();
    // Keep reading while idle, so a close by the server is noticed (it may have been paused
    // by backpressure from the last client).
    up.socket.resume();
    this.conns.push(up);
  }

  remove(up: UpstreamConnection): void {
    const i = this.conns.indexOf(up);
    if (i >= 0) this.conns.splice(i, 1);
  }

  /** Close every idle connection (server removed, or shutdown). */
  closeAll(): void {
    for (const up of this.conns.splice(0)) up.socket.destroy();
    allLists.delete(this);
  }

  sweep(now: number): void {
    const limit = now - this.settings.timeouts.idle;
    // Oldest first: the list is ordered by the time connections were put back.
    let n = 0;
    while (n < this.conns.length && this.conns[n]!.idleSince <= limit) n++;
    if (n > 0) for (const up of this.conns.splice(0, n)) up.socket.destroy();
  }
}

const allLists = new Set<IdleList>();
const byServer = new WeakMap<Server, IdleList>();

/** The idle list of a server, created on first use; settings follow the pool's current ones. */
export function idleListFor(server: Server, settings: IdleSettings): IdleList {
  let list = byServer.get(server);
  if (list === undefined) {
    list = new IdleList(server, settings);
    byServer.set(server, list);
  } else if (list.settings !== settings) {
    list.settings = settings;
  }
  return list;
}

/** Closes a server's idle connections (it left its pool, or the process is stopping). */
export function closeIdle(server: Server): void {
  const list = byServer.get(server);
  if (list !== undefined) {
    list.closeAll();
    byServer.delete(server);
  }
}
let sweeper: NodeJS.Timeout | undefined;

function ensureSweeper(): void {
  if (sweeper !== undefined) return;
  sweeper = setInterval(() => {
    const now = Date.now();
    for (const list of allLists) list.sweep(now);
  }, 1000);
  sweeper.unref();
}
