import { createSocket, type Socket as DgramSocket, type RemoteInfo } from 'node:dgram';
import { createServer, isIP, type Server as NetServer, type Socket } from 'node:net';
import type { ListenerConfig } from '../../config/types.js';
import { unmapIPv4 } from '../../core/cidr.js';
import type { Logger } from '../../core/log.js';
import type { TrafficObserver } from '../../core/observer.js';
import { LogThrottle } from '../l4/l4.js';
import type { Listener, ListenerDeps, PoolLookup } from '../listener.js';
import { listenError } from '../listener.js';
import { Responder, rcodeName } from './answers.js';
import { DnsStats } from './dnsStats.js';
import { HostCache } from './hostCache.js';
import { DEFAULT_RATE_LIMIT, ResponseRateLimiter, Verdict } from './rateLimit.js';
import { DEFAULT_MAX_UDP_SIZE, decodeQuery, encodeTcp, encodeUdp, truncatedReply, udpLimit } from './wire.js';
import { ZoneTable } from './zoneTable.js';

/** TCP clients served at once; more are closed at once (a DNS client needs one briefly). */
const MAX_TCP_CONNECTIONS = 1000;
/** Bytes of answers a TCP client may leave unread before it is disconnected. */
const MAX_TCP_BACKLOG = 256 * 1024;
/** Tries at finding a port free for both UDP and TCP when port 0 is asked for. */
const BIND_TRIES = 8;

/**
 * A `protocol: dns` listener: an authoritative DNS server for its zones, over UDP and TCP on the
 * same port, answering from the pools' usable servers (see answers.ts). Nothing is forwarded and
 * no lease is taken. Malformed packets are dropped and counted; over UDP, responses are rate
 * limited per client subnet and truncated to the client's size (TC), the full answer going over
 * TCP. A reload swaps the zones in place.
 */
export class DnsListener implements Listener {
  readonly protocol = 'dns';
  readonly name: string;
  observer: TrafficObserver | null = null;
  readonly stats = new DnsStats();
  private readonly responder: Responder;
  private readonly limiter: ResponseRateLimiter;
  private readonly hosts: HostCache;
  private readonly log: Logger;
  private readonly throttle: LogThrottle;
  private readonly host: string;
  private readonly requestedPort: number;
  private udp: DgramSocket | null = null;
  private tcp: NetServer | null = null;
  private readonly clients = new Set<Socket>();
  private idleTimeout: number;
  private closing = false;
  private flusher: NodeJS.Timeout | undefined;
  /** The address both sockets are bound to, once they are. */
  private bound: { host: string; port: number } | null = null;

  constructor(config: ListenerConfig, deps: ListenerDeps) {
    this.name = config.name;
    this.log = deps.log;
    this.throttle = new LogThrottle(deps.log);
    this.host = config.listen.host;
    this.requestedPort = config.listen.port;
    this.idleTimeout = config.timeouts.idle;
    this.hosts = new HostCache(() => this.hostNames());
    this.responder = new Responder(
      new ZoneTable(config.zones ?? [], deps.pools),
      config.maxUdpSize ?? DEFAULT_MAX_UDP_SIZE,
      this.hosts,
    );
    this.limiter = new ResponseRateLimiter(config.responseRateLimit ?? DEFAULT_RATE_LIMIT);
  }

  get connectionCount(): number {
    return this.clients.size;
  }

  get address(): { host: string; port: number } {
    return this.bound ?? { host: this.host, port: this.requestedPort };
  }

  async start(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const udp = createSocket(this.host.includes(':') ? 'udp6' : 'udp4');
      try {
        await new Promise<void>((resolve, reject) => {
          udp.once('error', reject);
          udp.bind({ address: this.host, port: this.requestedPort }, () => {
            udp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        throw listenError(this.host, this.requestedPort, err as NodeJS.ErrnoException);
      }
      const port = udp.address().port;
      const tcp = createServer((socket) => this.onConnection(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          tcp.once('error', reject);
          tcp.listen({ host: this.host, port }, () => {
            tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        udp.close();
        const e = err as NodeJS.ErrnoException;
        // Port 0: the port UDP got may be taken for TCP; another try gets another port.
        if (this.requestedPort === 0 && e.code === 'EADDRINUSE' && attempt < BIND_TRIES) continue;
        throw listenError(this.host, port, e);
      }
      udp.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
      udp.on('error', (err) => this.log.error(`listener ${this.name}: udp: ${err.message}`));
      tcp.on('error', (err) => this.log.error(`listener ${this.name}: tcp: ${err.message}`));
      this.udp = udp;
      this.tcp = tcp;
      this.bound = { host: udp.address().address, port };
      this.hosts.start();
      this.flusher = setInterval(() => this.throttle.flush(), 1000);
      this.flusher.unref();
      return;
    }
  }

  update(config: ListenerConfig, pools: PoolLookup): void {
    this.responder.table = new ZoneTable(config.zones ?? [], pools);
    this.responder.maxUdpSize = config.maxUdpSize ?? DEFAULT_MAX_UDP_SIZE;
    this.limiter.configure(config.responseRateLimit ?? DEFAULT_RATE_LIMIT);
    this.idleTimeout = config.timeouts.idle;
  }

  /** The host names of the servers the zones answer with (read by the HostCache each refresh). */
  private *hostNames(): Iterable<string> {
    for (const zone of this.responder.table.zones) {
      for (const entry of zone.names.values()) {
        for (const server of entry.address?.pool.servers ?? [])
          if (isIP(server.host) === 0) yield server.host;
      }
    }
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    if (this.closing) return;
    const query = decodeQuery(msg);
    if (query === undefined) {
      this.stats.drop('malformed');
      return;
    }
    const udp = this.udp!;
    const verdict = this.limiter.check(rinfo.address, Date.now());
    if (verdict !== Verdict.Send) {
      this.stats.drop('rate-limited');
      this.throttle.note(
        'rrl',
        `listener ${this.name}: responses to ${unmapIPv4(rinfo.address)}'s subnet over the rate limit`,
      );
      if (verdict === Verdict.Slip) this.send(udp, truncatedReply(msg, query), rinfo);
      return;
    }
    let bytes: Buffer;
    try {
      const response = this.responder.respond(query, unmapIPv4(rinfo.address));
      const encoded = encodeUdp(response, udpLimit(response, this.responder.maxUdpSize));
      bytes = encoded.bytes;
      if (encoded.truncated) this.stats.truncated++;
      this.stats.count(response.qtype, rcodeName(response.rcode));
    } catch {
      // A question the decoder took but the encoder cannot write back (odd labels): no answer.
      this.stats.drop('malformed');
      return;
    }
    this.send(udp, bytes, rinfo);
  }

  private send(udp: DgramSocket, bytes: Buffer, rinfo: RemoteInfo): void {
    udp.send(bytes, rinfo.port, rinfo.address, (err) => {
      if (err) this.throttle.note('send', `listener ${this.name}: udp send: ${err.message}`);
    });
  }

  /** One TCP client: length-prefixed queries, answered in order; idle ones are closed. */
  private onConnection(socket: Socket): void {
    socket.on('error', () => socket.destroy());
    if (this.closing || this.clients.size >= MAX_TCP_CONNECTIONS) {
      socket.destroy();
      return;
    }
    this.clients.add(socket);
    socket.once('close', () => this.clients.delete(socket));
    socket.setTimeout(this.idleTimeout, () => socket.destroy());
    const clientIp = unmapIPv4(socket.remoteAddress ?? '');
    let pending: Buffer = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 2) {
        const size = pending.readUInt16BE(0);
        if (pending.length < size + 2) break;
        const msg = pending.subarray(2, size + 2);
        pending = pending.subarray(size + 2);
        const query = decodeQuery(msg);
        if (query === undefined) {
          // A stream that carried garbage cannot be trusted to be framed: close it.
          this.stats.drop('malformed');
          socket.destroy();
          return;
        }
        let framed: Buffer | undefined;
        try {
          const response = this.responder.respond(query, clientIp);
          framed = encodeTcp(response);
          if (framed !== undefined) {
            this.stats.count(response.qtype, rcodeName(response.rcode));
          }
        } catch {
          this.stats.drop('malformed');
          socket.destroy();
          return;
        }
        if (framed === undefined) {
          this.stats.drop('too-large');
          continue;
        }
        // A client that asks without reading its answers is cut off rather than buffered for.
        if (socket.writableLength > MAX_TCP_BACKLOG) {
          socket.destroy();
          return;
        }
        socket.write(framed);
      }
    });
  }

  async shutdown(timeoutMs: number): Promise<void> {
    this.closing = true;
    this.hosts.stop();
    if (this.flusher !== undefined) clearInterval(this.flusher);
    this.flusher = undefined;
    const tcp = this.tcp;
    const udp = this.udp;
    this.tcp = null;
    const closed =
      tcp === null ? Promise.resolve() : new Promise<void>((resolve) => tcp.close(() => resolve()));
    // A DNS exchange is one round trip: clients get a moment to read their answers, no more.
    const deadline = Date.now() + Math.min(timeoutMs, 1000);
    while (this.clients.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const socket of this.clients) socket.destroy();
    await closed;
    if (udp !== null) await new Promise<void>((resolve) => udp.close(() => resolve()));
  }
}
