import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { lookup } from 'node:dns';
import { isIPv4, isIPv6 } from 'node:net';
import { Outcome, type Pool } from '../../core/pool.js';
import type { Server } from '../../core/server.js';

/** Datagrams held while a flow's socket connects (DNS lookup of a server name, bind). */
const MAX_PENDING_DATAGRAMS = 64;
/** Bytes queued in a socket's send queue beyond which datagrams are dropped, not buffered. */
export const MAX_SEND_QUEUE = 1024 * 1024;

/** What a flow needs of its listener. */
export interface FlowOwner {
  readonly name: string;
  /** Sends a server's reply to the client, from the listener's socket. */
  reply(flow: Flow, msg: Buffer): void;
  /** The flow closed: forget it. */
  closed(flow: Flow): void;
  note(key: string, line: string, warn?: boolean): void;
}

/**
 * One client address (ip:port) of a udp listener, bound to one server: a datagram socket of its
 * own, connected to the server, so that the server's replies (and only those) come back on it and
 * map to this client. The lease on the server spans the flow (least-connections counts flows).
 * Datagrams that arrive before the flow has its server (a shared affinity store is asked) or its
 * socket (a server name is looked up) are held, a bounded number.
 */
export class Flow {
  readonly key: string;
  readonly clientAddress: string;
  readonly clientPort: number;
  readonly pool: Pool;
  /** Null until the flow is assigned a server. */
  server: Server | null = null;
  /** Traffic either way since the sweep last looked. */
  seen = true;
  idleDeadline: number;
  drainNoticed = 0;
  /** Datagrams dropped because a send queue was full. */
  dropped = 0;
  /** Bytes of the replies sent to the client. */
  bytesOut = 0;
  readonly createdAt: number;
  private socket: DgramSocket | null = null;
  private ready = false;
  private pending: Buffer[] = [];
  private closedFlag = false;
  private refused = false;
  private firstSentAt = 0;
  private responseMs = -1;

  constructor(
    private readonly owner: FlowOwner,
    key: string,
    clientAddress: string,
    clientPort: number,
    pool: Pool,
    idleTimeout: number,
  ) {
    this.key = key;
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
    this.pool = pool;
    this.createdAt = Date.now();
    this.idleDeadline = this.createdAt + idleTimeout;
  }

  /** The server (leased by the caller) this flow sends to from now on. */
  assign(server: Server): void {
    this.server = server;
    const host = server.host;
    if (isIPv4(host) || isIPv6(host)) {
      this.open(host, isIPv6(host) ? 6 : 4);
      return;
    }
    lookup(host, (err, address, family) => {
      if (this.closedFlag) return;
      if (err) {
        this.owner.note(
          `lookup-${server.id}`,
          `listener ${this.owner.name}: server ${server.id}: ${err.message}`,
        );
        this.refused = true;
        this.close();
        return;
      }
      this.open(address, family === 6 ? 6 : 4);
    });
  }

  get isClosed(): boolean {
    return this.closedFlag;
  }

  private open(address: string, family: 4 | 6): void {
    const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
    this.socket = socket;
    socket.on('message', (msg) => {
      this.seen = true;
      if (this.responseMs < 0) this.responseMs = Date.now() - (this.firstSentAt || this.createdAt);
      this.owner.reply(this, msg);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // On a connected socket, an ICMP "port unreachable" comes back as ECONNREFUSED: the
      // server is not there. The flow ends as a failure (passive health counts it); the
      // client's next datagram picks a server again.
      if (err.code === 'ECONNREFUSED') this.refused = true;
      else
        this.owner.note(
          `flow-error-${this.server?.id}`,
          `listener ${this.owner.name}: flow to ${this.server?.id}: ${err.message}`,
        );
      this.close();
    });
    socket.connect(this.server!.port, address, () => {
      if (this.closedFlag) return;
      this.ready = true;
      const held = this.pending;
      this.pending = [];
      for (const msg of held) this.write(msg);
    });
  }

  /** A datagram from the client. */
  send(msg: Buffer): void {
    this.seen = true;
    if (this.closedFlag) return;
    if (!this.ready) {
      if (this.pending.length < MAX_PENDING_DATAGRAMS) this.pending.push(msg);
      else this.dropped++;
      return;
    }
    this.write(msg);
  }

  private write(msg: Buffer): void {
    const socket = this.socket!;
    if (socket.getSendQueueSize() > MAX_SEND_QUEUE) {
      this.dropped++;
      return;
    }
    if (this.firstSentAt === 0) this.firstSentAt = Date.now();
    socket.send(msg);
  }

  /** Ends the flow: socket closed, lease released (failure when the server refused). */
  close(): void {
    if (this.closedFlag) return;
    this.closedFlag = true;
    this.pending = [];
    if (this.socket !== null) {
      try {
        this.socket.close();
      } catch {
        // already closed
      }
    }
    if (this.server !== null) {
      // No reply at all says nothing about the server (syslog never answers).
      const outcome = this.refused
        ? Outcome.Failure
        : this.responseMs >= 0
          ? Outcome.Success
          : Outcome.Cancelled;
      const sample = this.responseMs >= 0 ? this.responseMs : Date.now() - this.createdAt;
      this.pool.release(this.server, outcome, sample);
    }
    this.owner.closed(this);
  }
}
