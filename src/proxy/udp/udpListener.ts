import { createSocket, type Socket as DgramSocket, type RemoteInfo } from 'node:dgram';
import type { ListenerConfig } from '../../config/types.js';
import { PIN_WAIT_LIMIT_MS, resolvePinned } from '../../core/affinity.js';
import { unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import type { Pool } from '../../core/pool.js';
import { type SelectContext, Selection } from '../../core/selection.js';
import type { Server } from '../../core/server.js';
import { ListenerProtection } from '../../protection/listenerProtection.js';
import {
  atMaxConnections,
  DEFAULT_MAX_FLOWS,
  drainDeadline,
  hostPort,
  isDraining,
  LogThrottle,
} from '../l4/l4.js';
import type { Listener, ListenerDeps, PoolLookup } from '../listener.js';
import { listenError, sweepPeriod } from '../listener.js';
import { Flow, type FlowOwner, MAX_SEND_QUEUE } from './flow.js';

interface UdpListenerKeys {
  maxFlows?: number;
}

/**
 * A `protocol: udp` listener. Each client address (ip:port) gets a flow bound to one server,
 * chosen by the pool's algorithm (ip-hash keeps a client on one server across flows); the
 * server's replies go back to the client from the listener's socket. Flows end after
 * `timeouts.idle` without traffic either way. At most `maxFlows` flows exist: while the table is
 * full, datagrams from new clients are dropped (existing flows keep working, as with Linux
 * conntrack) and the drops are logged. A flow whose server is down, in maintenance or ejected is
 * closed and its client's next datagram picks a server again; a draining server keeps its flows
 * until they go idle or the pool's drainTimeout passes.
 */
export class UdpListener implements Listener, FlowOwner {
  readonly protocol = 'udp';
  readonly name: string;
  observer: TrafficObserver | null = null;
  private pool: Pool;
  private idleTimeout: number;
  private maxFlows: number;
  private closing = false;
  readonly flows = new Map<string, Flow>();
  private readonly socket: DgramSocket;
  private readonly log: Logger;
  private readonly throttle: LogThrottle;
  private readonly host: string;
  private readonly requestedPort: number;
  private readonly pick: SelectContext = { clientIp: '', hashKey: undefined };
  /** Reused by every assignment: one try each, done synchronously (a flow does not retry). */
  private readonly selection = new Selection();
  private sweeper: NodeJS.Timeout | undefined;
  private bound = false;
  /** Replies dropped because the listener's send queue was full. */
  dropped = 0;
  /** Per-source packet rate and allow/deny lists, when `protection`. */
  protection: ListenerProtection | null;

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.name = config.name;
    this.log = deps.log;
    this.throttle = new LogThrottle(deps.log);
    this.host = config.listen.host;
    this.requestedPort = config.listen.port;
    this.pool = deps.pools(config.pool);
    this.idleTimeout = config.timeouts.idle;
    this.maxFlows = (config as ListenerConfig & UdpListenerKeys).maxFlows ?? DEFAULT_MAX_FLOWS;
    this.protection =
      config.protection === undefined ? null : new ListenerProtection(config.protection, this.name, this.log);
    this.socket = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
    this.socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket.on('error', (err) => {
      if (this.bound) this.log.error(`listener ${this.name}: ${err.message}`);
    });
  }

  get connectionCount(): number {
    return this.flows.size;
  }

  get address(): { host: string; port: number } {
    if (!this.bound) return { host: this.host, port: this.requestedPort };
    const a = this.socket.address();
    return { host: a.address, port: a.port };
  }

  start(): Promise<void> {
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(listenError(this.host, this.requestedPort, err));
      this.socket.once('error', onError);
      this.socket.bind({ address: this.host, port: this.requestedPort }, () => {
        this.socket.off('error', onError);
        this.bound = true;
        this.startSweeper();
        resolve();
      });
    });
  }

  update(config: ListenerConfig, pools: PoolLookup): void {
    this.pool = pools(config.pool);
    this.idleTimeout = config.timeouts.idle;
    this.maxFlows = (config as ListenerConfig & UdpListenerKeys).maxFlows ?? DEFAULT_MAX_FLOWS;
    this.protection =
      config.protection === undefined
        ? null
        : new ListenerProtection(config.protection, this.name, this.log, this.protection ?? undefined);
    this.startSweeper();
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    // Denied sources and datagrams over the source's packet rate are dropped (counted, not logged each).
    const protection = this.protection;
    if (protection !== null && !protection.packet(unmapIPv4(rinfo.address), Date.now())) {
      this.throttle.note(
        'protection',
        `listener ${this.name}: datagram from ${hostPort(rinfo.address, rinfo.port)} dropped by protection`,
        false,
      );
      return;
    }
    const key = `${rinfo.address}|${rinfo.port}`;
    let flow = this.flows.get(key);
    if (flow !== undefined && this.mustMove(flow, Date.now())) {
      flow.close();
      flow = undefined;
    }
    if (flow === undefined) {
      if (this.closing) return;
      if (this.flows.size >= this.maxFlows) {
        this.throttle.note(
          'flows-full',
          `listener ${this.name}: datagram from ${hostPort(rinfo.address, rinfo.port)} dropped: maxFlows (${this.maxFlows}) reached`,
        );
        return;
      }
      const pool = this.pool;
      flow = new Flow(this, key, rinfo.address, rinfo.port, pool, this.idleTimeout);
      this.flows.set(key, flow);
      const affinity = pool.affinity;
      const found = affinity === null ? undefined : resolvePinned(affinity, unmapIPv4(rinfo.address), null);
      if (found instanceof Promise) {
        // A shared stick table is asked: the flow holds the client's datagrams meanwhile.
        const waiting = flow;
        found.then((server) => this.assign(waiting, server));
      } else {
        this.assign(flow, found);
      }
      if (flow.isClosed) return;
    }
    flow.send(msg);
  }

  /**
   * Gives a new flow its server: the one its affinity pins it to when that one can take it, else
   * the pool's policy. No server: the flow ends (its datagrams are dropped).
   */
  private assign(flow: Flow, pinned: Server | undefined): void {
    if (flow.isClosed || flow.server !== null) return;
    const pool = flow.pool;
    const clientIp = unmapIPv4(flow.clientAddress);
    this.pick.clientIp = clientIp;
    const selection = this.selection;
    selection.start(pool, this.pick, pinned);
    const server = selection.next(atMaxConnections);
    if (server === undefined) {
      const why =
        selection.skipped > 0
          ? `every server of pool ${pool.name} is at its maxConnections`
          : `no server of pool ${pool.name} is available`;
      this.throttle.note(
        'no-server',
        `listener ${this.name}: datagram from ${hostPort(flow.clientAddress, flow.clientPort)} dropped: ${why}`,
      );
      flow.close();
      return;
    }
    flow.assign(server);
    pool.affinity?.onConnection?.(clientIp, server);
  }

  /** The flow's server no longer takes its traffic: down, maintenance or ejected (not draining). */
  private mustMove(flow: Flow, now: number): boolean {
    const s = flow.server;
    if (s === null || s.state === 'draining') return false;
    return !s.isAvailable(now) && flow.pool.servers.includes(s);
  }

  reply(flow: Flow, msg: Buffer): void {
    if (this.socket.getSendQueueSize() > MAX_SEND_QUEUE) {
      this.dropped++;
      return;
    }
    flow.bytesOut += msg.length;
    this.socket.send(msg, flow.clientPort, flow.clientAddress);
  }

  closed(flow: Flow): void {
    if (this.flows.get(flow.key) === flow) this.flows.delete(flow.key);
    const observer = this.observer;
    if (observer === null) return;
    const now = Date.now();
    observer.onExchange({
      listener: this.name,
      protocol: 'udp',
      pool: flow.pool.name,
      server: flow.server?.id ?? null,
      clientIp: unmapIPv4(flow.clientAddress),
      method: '',
      path: '',
      status: 0,
      bytesOut: flow.bytesOut,
      durationMs: now - flow.createdAt,
      retries: 0,
      at: now,
    });
  }

  note(key: string, line: string, warn = true): void {
    this.throttle.note(key, line, warn);
  }

  private startSweeper(): void {
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = setInterval(() => this.sweep(), sweepPeriod(this.idleTimeout));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    for (const flow of this.flows.values()) {
      if (flow.server === null) {
        // Its affinity lookup did not settle: the policy chooses.
        if (now - flow.createdAt >= PIN_WAIT_LIMIT_MS) this.assign(flow, undefined);
        continue;
      }
      if (flow.seen) {
        flow.seen = false;
        flow.idleDeadline = now + this.idleTimeout;
      } else if (now >= flow.idleDeadline) {
        flow.close();
        continue;
      }
      if (this.mustMove(flow, now)) {
        flow.close();
        continue;
      }
      if (isDraining(flow.pool, flow.server)) {
        if (flow.drainNoticed === 0) flow.drainNoticed = now;
        if (now >= drainDeadline(flow.pool, flow.server, flow.drainNoticed)) {
          this.throttle.note(
            `drain-${flow.server.id}`,
            `listener ${this.name}: flow of ${hostPort(flow.clientAddress, flow.clientPort)} to draining server ${flow.server.id} closed after drainTimeout`,
            false,
          );
          flow.close();
        }
      }
    }
    this.throttle.flush(now);
  }

  /**
   * Graceful stop: no new flows; existing flows go on until they go idle or `timeoutMs` passes,
   * then every flow and the socket are closed.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    const deadline = Date.now() + timeoutMs;
    while (this.flows.size > 0 && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    for (const flow of [...this.flows.values()]) flow.close();
    if (this.sweeper !== undefined) clearInterval(this.sweeper);
    this.sweeper = undefined;
    if (this.bound) {
      this.bound = false;
      await new Promise<void>((resolve) => this.socket.close(() => resolve()));
    }
  }
}
