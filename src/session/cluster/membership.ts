/**
 * Who is in the cluster and who is alive. Members come from the static peer list and from nodes
 * that connect and authenticate (a joining node needs to list only one member: members tell each
 * other whom they know). Each node dials every member it knows and keeps the connection up; any
 * frame from a member counts as a sign of life, and a ping goes out every `heartbeatMs`.
 *
 * Failure detection: a member silent for `missedHeartbeats` heartbeats is suspected, then
 * re-checked with a ping on a live connection (or a fresh dial) before it is declared gone, so a
 * slow event loop is not mistaken for a dead node. A member that comes back with a new boot id is
 * a new incarnation: the old one is declared gone first.
 *
 * Forgetting: a member learned at run time (from gossip, or because it connected) that stays
 * gone, or never answers, for `forgetAfterMs` is dropped from the table and no longer dialed, so a
 * cluster whose nodes come and go on new addresses does not redial every address it ever saw.
 * Static peers are kept and redialed for as long as the node runs. Members pass on only the
 * members they see up (on each connection, and every `GOSSIP_EVERY` heartbeats), so a member
 * that others too consider gone is not taught back to a node that forgot it; one that comes back
 * and connects is a new member like any other.
 */
import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { Logger } from '../store.js';
import { type Frame, type FrameHeader, FrameType, type FrameTypeCode } from './frames.js';
import { type ConnectionCounters, type Identity, PeerConnection } from './peerConnection.js';

export type MemberState = 'connecting' | 'up' | 'gone';

export interface MembershipOptions {
  /** This node's id, the address peers dial: `host:port`. */
  node: string;
  host: string;
  port: number;
  peers: readonly string[];
  secret: string;
  mode: string;
  heartbeatMs: number;
  missedHeartbeats: number;
  requestTimeoutMs: number;
  /** A member learned at run time, not up for this long, is forgotten (Infinity: never). */
  forgetAfterMs: number;
  logger: Logger;
  maxFrameBytes?: number;
}

/**
 * Every this many heartbeats each member is told whom this node sees up. Joins do not need it
 * (the list also goes out on every new connection); it heals what forgetting would otherwise
 * split for good: two nodes cut off from each other for longer than `forgetAfterMs` while both
 * stay connected to a third forget each other, and would never dial each other again.
 */
export const GOSSIP_EVERY = 20;

export interface Member {
  readonly id: string;
  /** Listed in the configured peers: redialed forever, never forgotten. */
  readonly static: boolean;
  state: MemberState;
  boot: string | undefined;
  out: PeerConnection | undefined;
  readonly ins: Set<PeerConnection>;
  lastSeen: number;
  /** When it was learned, declared gone, or given a fresh chance; counts while it is not up. */
  downSince: number;
  /** Dials that failed since the last success (drives backoff and start-up readiness). */
  dialFailures: number;
  dialing: boolean;
  redial: NodeJS.Timeout | undefined;
  rechecking: boolean;
}

export function splitAddress(address: string): { host: string; port: number } {
  const match = /^\[?([^\]]+?)\]?:(\d+)$/.exec(address.trim());
  if (!match) throw new TypeError(`invalid cluster address "${address}": expected HOST:PORT`);
  const port = Number(match[2]);
  if (port > 65_535) throw new TypeError(`invalid cluster address "${address}": port out of range`);
  return { host: match[1]!, port };
}

export class Membership extends EventEmitter {
  readonly boot = randomBytes(8).toString('hex');
  readonly counters: ConnectionCounters = {
    bytesSent: 0,
    bytesReceived: 0,
    framesSent: 0,
    framesReceived: 0,
  };
  readonly members = new Map<string, Member>();
  /** Peers refused at the handshake (wrong secret, mode mismatch, garbage). */
  refused = 0;
  /** Connections closed because a frame did not parse. */
  malformed = 0;
  /** Members learned at run time that stayed gone for `forgetAfterMs` and were dropped. */
  forgotten = 0;
  node: string;
  readonly #server: Server;
  readonly #identity: Identity;
  readonly #anonymous = new Set<PeerConnection>();
  readonly #lastRefusal = new Map<string, number>();
  readonly #static: ReadonlySet<string>;
  #heartbeat: NodeJS.Timeout | undefined;
  #lastTick = Date.now();
  #ticks = 0;
  #closed = false;

  constructor(readonly options: MembershipOptions) {
    super();
    this.node = options.node;
    this.#static = new Set(options.peers);
    this.#identity = { node: options.node, boot: this.boot, mode: options.mode };
    this.#server = createServer((socket) => {
      socket.on('error', () => {});
      if (this.#closed) {
        socket.destroy();
        return;
      }
      this.#adopt(this.#peerConnection(socket, 'in'));
    });
  }

  #peerConnection(socket: Socket, direction: 'in' | 'out'): PeerConnection {
    const o = this.options;
    const handshakeMs = Math.max(1000, o.requestTimeoutMs * 2);
    return new PeerConnection(
      socket,
      direction,
      this.#identity,
      o.secret,
      this.counters,
      handshakeMs,
      o.maxFrameBytes,
    );
  }

  /** Listens, then dials every static peer. Resolves once listening. */
  async start(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.#server.once('error', reject);
      this.#server.listen({ host: this.options.host, port: this.options.port }, () => {
        this.#server.off('error', reject);
        resolve();
      });
    });
    if (this.options.port === 0) {
      // Asked for any free port: the id peers dial is the port actually bound.
      this.node = `${this.options.host.includes(':') ? `[${this.options.host}]` : this.options.host}:${this.boundPort}`;
      this.#identity.node = this.node;
    }
    for (const peer of this.options.peers) if (peer !== this.node) this.#member(peer);
    this.#lastTick = Date.now();
    this.#heartbeat = setInterval(() => this.#tick(), this.options.heartbeatMs);
    this.#heartbeat.unref();
  }

  /** The address actually bound (port 0 resolves here). */
  get boundPort(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address ? address.port : this.options.port;
  }

  /** Static peers this node has neither connected to (and so pulled from) nor failed to dial yet. */
  get undecided(): string[] {
    return this.options.peers.filter((peer) => {
      const m = this.members.get(peer);
      return m !== undefined && m.dialFailures === 0 && m.out?.authenticated !== true;
    });
  }

  isUp(id: string): boolean {
    return this.members.get(id)?.state === 'up';
  }

  /** Up, and a connection to it is open now (a member not yet declared gone may have none). */
  reachable(id: string): boolean {
    return this.connection(id) !== undefined;
  }

  /** Ids of the members alive now, in a stable order. */
  alive(): string[] {
    const ids: string[] = [];
    for (const m of this.members.values()) if (m.state === 'up') ids.push(m.id);
    return ids.sort();
  }

  /** The connection frames to `id` go on: always the same one while it lasts, so order holds. */
  connection(id: string): PeerConnection | undefined {
    const m = this.members.get(id);
    if (m?.state !== 'up') return undefined;
    if (m.out?.authenticated && !m.out.closed) return m.out;
    for (const c of m.ins) if (c.authenticated && !c.closed) return c;
    return undefined;
  }

  send(id: string, type: FrameTypeCode, header: FrameHeader, body?: string | Buffer): boolean {
    return this.connection(id)?.send(type, header, body) ?? false;
  }

  request(
    id: string,
    type: FrameTypeCode,
    header: FrameHeader,
    body?: string | Buffer,
    timeoutMs = this.options.requestTimeoutMs,
  ): Promise<Frame> {
    const conn = this.connection(id);
    if (!conn) return Promise.reject(new Error(`cluster member ${id} is not reachable`));
    return conn.request(type, header, timeoutMs, body);
  }

  /**
   * Leaves the cluster: every member still up is told (so it acts at once instead of waiting for
   * heartbeats to stop), within 200 ms; then every connection and the listener close.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#heartbeat);
    const goodbyes: Promise<void>[] = [];
    for (const m of this.members.values()) {
      const conn = m.state === 'up' ? this.connection(m.id) : undefined;
      if (conn) goodbyes.push(conn.leave());
    }
    if (goodbyes.length > 0) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.all(goodbyes),
        new Promise((r) => {
          timer = setTimeout(r, 200);
        }),
      ]);
      clearTimeout(timer);
    }
    for (const m of this.members.values()) {
      clearTimeout(m.redial);
      m.out?.close();
      for (const c of m.ins) c.close();
    }
    for (const c of this.#anonymous) c.close();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #member(id: string): Member {
    let m = this.members.get(id);
    if (!m) {
      m = {
        id,
        static: this.#static.has(id),
        state: 'connecting',
        boot: undefined,
        out: undefined,
        ins: new Set(),
        lastSeen: 0,
        downSince: Date.now(),
        dialFailures: 0,
        dialing: false,
        redial: undefined,
        rechecking: false,
      };
      this.members.set(id, m);
      this.#dial(m);
    }
    return m;
  }

  /** Still in the table: a forgotten member's last connection closing must not redial it. */
  #current(m: Member): boolean {
    return this.members.get(m.id) === m;
  }

  #dial(m: Member): void {
    if (this.#closed || !this.#current(m) || m.dialing || (m.out && !m.out.closed)) return;
    clearTimeout(m.redial);
    m.redial = undefined;
    let target: { host: string; port: number };
    try {
      target = splitAddress(m.id);
    } catch (err) {
      this.options.logger.warn(`cluster: ${(err as Error).message}`);
      return;
    }
    m.dialing = true;
    const conn = this.#peerConnection(connect(target), 'out');
    m.out = conn;
    conn.once('authenticated', () => {
      m.dialing = false;
      m.dialFailures = 0;
    });
    conn.once('close', () => {
      if (m.dialing) {
        m.dialing = false;
        m.dialFailures++;
      }
      if (m.out === conn) m.out = undefined;
      this.#scheduleDial(m);
    });
    this.#adopt(conn, m.id);
  }

  #scheduleDial(m: Member): void {
    if (this.#closed || m.redial || !this.#current(m)) return;
    const gone = m.state === 'gone';
    const delay = Math.min(100 * 2 ** Math.min(m.dialFailures, 6), gone ? 5000 : 2000);
    m.redial = setTimeout(() => {
      m.redial = undefined;
      this.#dial(m);
    }, delay);
    m.redial.unref();
  }

  /** Wires a connection (either direction) into the member table once it authenticates. */
  #adopt(conn: PeerConnection, expected?: string): void {
    this.#anonymous.add(conn);
    conn.on('refused', (err: Error) => {
      this.refused++;
      this.#warnOnce(`refused ${err.message}`, conn.peer?.node ?? conn.remoteAddress);
    });
    conn.on('malformed', (err: Error) => {
      this.malformed++;
      this.options.logger.warn(
        `cluster: closed the connection to ${conn.peer?.node ?? conn.remoteAddress}: ${err.message}`,
      );
    });
    conn.once('close', () => {
      this.#anonymous.delete(conn);
      if (conn.peer) this.members.get(conn.peer.node)?.ins.delete(conn);
    });
    conn.once('authenticated', () => {
      this.#anonymous.delete(conn);
      const peer = conn.peer!;
      if (expected !== undefined && peer.node !== expected) {
        this.options.logger.warn(`cluster: ${expected} answered as ${peer.node}; check its --cluster-listen`);
        conn.close();
        return;
      }
      const m = this.#member(peer.node);
      if (conn.direction === 'in') m.ins.add(conn);
      conn.on('frame', (frame: Frame) => this.#onFrame(m, conn, frame));
      this.#seen(m, peer.boot, conn);
      // Only those seen up: passing on members gone here would teach them back to a node that
      // forgot them, and it would dial them for another `forgetAfterMs`.
      conn.send(FrameType.members, { ids: this.alive() });
      // Every (re)connection, not only a member's first: a node that was paused or cut off may
      // have been declared gone and its sessions moved on while it still thought all was well.
      if (conn.direction === 'out') this.emit('connected', m.id);
    });
  }

  /** A peer refused on every redial would log every few seconds: once a minute per peer is enough. */
  #warnOnce(message: string, source: string): void {
    const now = Date.now();
    const last = this.#lastRefusal.get(source);
    if (last !== undefined && now - last < 60_000) return;
    if (this.#lastRefusal.size > 1000) this.#lastRefusal.clear();
    this.#lastRefusal.set(source, now);
    this.options.logger.warn(`cluster: ${message}`);
  }

  #seen(m: Member, boot?: string, conn?: PeerConnection): void {
    m.lastSeen = Date.now();
    if (boot !== undefined && m.boot !== undefined && boot !== m.boot && m.state === 'up') {
      // Restarted faster than it could be declared gone: its old self is gone all the same.
      this.#declareGone(m, 'restarted', conn);
    }
    if (boot !== undefined) m.boot = boot;
    if (m.state !== 'up') {
      m.state = 'up';
      (this.options.logger.info ?? this.options.logger.warn).call(
        this.options.logger,
        `cluster: member ${m.id} is up`,
      );
      this.emit('member-up', m.id);
    }
  }

  #onFrame(m: Member, conn: PeerConnection, frame: Frame): void {
    m.lastSeen = Date.now();
    if (m.state !== 'up') this.#seen(m, conn.peer?.boot, conn);
    switch (frame.type) {
      case FrameType.ping:
        if (typeof frame.header.seq === 'number') conn.reply(frame, FrameType.pong, {});
        return;
      case FrameType.leave:
        this.#declareGone(m, 'it left the cluster');
        return;
      case FrameType.members: {
        const ids = Array.isArray(frame.header.ids) ? frame.header.ids : [];
        for (const id of ids) if (typeof id === 'string' && id !== this.node) this.#member(id);
        return;
      }
      default:
        this.emit('frame', frame, m.id, conn);
    }
  }

  #tick(): void {
    const now = Date.now();
    const silentAfter = this.options.heartbeatMs * this.options.missedHeartbeats;
    const sinceLastTick = now - this.#lastTick;
    this.#lastTick = now;
    if (sinceLastTick > silentAfter) {
      // This node was paused (SIGSTOP, a VM freeze, a blocked event loop): the silence was its
      // own, not its peers'. Give them a fresh chance instead of declaring them all gone.
      this.options.logger.warn(
        `cluster: this node did not run for ${sinceLastTick} ms; members are given a fresh chance`,
      );
      for (const m of this.members.values()) {
        m.lastSeen = now;
        m.downSince = now;
      }
      return;
    }
    const gossip = ++this.#ticks % GOSSIP_EVERY === 0 ? this.alive() : undefined;
    for (const m of this.members.values()) {
      if (m.state !== 'up') {
        if (!m.static && now - m.downSince >= this.options.forgetAfterMs) this.#forget(m, now);
        continue;
      }
      this.send(m.id, FrameType.ping, {});
      if (gossip) this.send(m.id, FrameType.members, { ids: gossip });
      if (now - m.lastSeen > silentAfter && !m.rechecking) void this.#recheck(m);
    }
  }

  /** Drops a member learned at run time that stayed down: no more dials. It may connect again. */
  #forget(m: Member, now: number): void {
    this.members.delete(m.id);
    this.forgotten++;
    clearTimeout(m.redial);
    m.redial = undefined;
    m.out?.close();
    for (const c of m.ins) c.close();
    (this.options.logger.info ?? this.options.logger.warn).call(
      this.options.logger,
      `cluster: forgot member ${m.id} (not up for ${Math.round((now - m.downSince) / 1000)} s; not a static peer)`,
    );
    this.emit('member-forgotten', m.id);
  }

  /** A silent member gets one more chance: a ping answered within the request timeout. */
  async #recheck(m: Member): Promise<void> {
    m.rechecking = true;
    try {
      if (!this.connection(m.id)) this.#dial(m);
      const deadline = Date.now() + this.options.requestTimeoutMs;
      // A refused dial ends the wait at once; a hanging one runs into the deadline.
      while (
        !this.connection(m.id) &&
        (m.dialing || m.redial === undefined) &&
        Date.now() < deadline &&
        !this.#closed
      ) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await this.request(m.id, FrameType.ping, {});
      m.lastSeen = Date.now();
    } catch {
      if (Date.now() - m.lastSeen > this.options.heartbeatMs * this.options.missedHeartbeats) {
        this.#declareGone(m, `no heartbeat for ${Date.now() - m.lastSeen} ms and no answer to a re-check`);
      }
    } finally {
      m.rechecking = false;
    }
  }

  /** Closes every connection of the member's old incarnation except `keep` (its new one). */
  #declareGone(m: Member, why: string, keep?: PeerConnection): void {
    if (m.state === 'gone' || this.#closed) return;
    m.state = 'gone';
    m.downSince = Date.now();
    this.options.logger.warn(`cluster: member ${m.id} is gone (${why})`);
    if (m.out !== keep) m.out?.close();
    for (const c of m.ins) if (c !== keep) c.close();
    this.emit('member-gone', m.id);
    if (!keep) this.#scheduleDial(m);
  }
}
