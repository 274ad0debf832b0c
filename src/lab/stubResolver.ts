/**
 * The lab's DNS client: A queries over UDP to a DNS server on loopback (dns-packet, no system
 * resolver and no cache of its own), and a caching client that keeps an answer for its TTL and
 * connects to its first address, as a stub resolver with a cache and a simple HTTP client do.
 */
import { createSocket } from 'node:dgram';
import { performance } from 'node:perf_hooks';
import { type DecodedPacket, decode, encode } from 'dns-packet';
import type { Target } from './load.js';
import { HOST } from './processes.js';

/** An A answer: its addresses in the server's order and its TTL in seconds. */
export interface AAnswer {
  addresses: string[];
  ttl: number;
}

let nextId = 1;

/** Asks the DNS server on `HOST:port` for the A records of `name`; rejects on a timeout or an error. */
export function queryA(port: number, name: string, timeoutMs = 1000): Promise<AAnswer> {
  return new Promise<AAnswer>((resolve, reject) => {
    const id = nextId;
    nextId = (nextId % 0xffff) + 1;
    const socket = createSocket('udp4');
    let settled = false;
    const finish = (err: Error | undefined, answer?: AAnswer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (err !== undefined) reject(err);
      else resolve(answer!);
    };
    const timer = setTimeout(
      () => finish(new Error(`no DNS answer for ${name} within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.on('error', (err) => finish(err));
    socket.on('message', (msg: Buffer) => {
      let packet: DecodedPacket;
      try {
        packet = decode(msg);
      } catch {
        return;
      }
      if (packet.id !== id) return;
      const records = (packet.answers ?? []).filter((a) => a.type === 'A') as {
        data: string;
        ttl?: number;
      }[];
      finish(undefined, { addresses: records.map((r) => r.data), ttl: records[0]?.ttl ?? 0 });
    });
    socket.send(encode({ type: 'query', id, questions: [{ name, type: 'A' }] }), port, HOST, (err) => {
      if (err) finish(err);
    });
  });
}

/**
 * A client that resolves `name` once, keeps the answer for its TTL, and sends every request to the
 * first address (on `servicePort`) until the answer expires: it never tries another address.
 */
export class CachingClient {
  #cached: { address: string; expires: number } | undefined;

  constructor(
    readonly dnsPort: number,
    readonly name: string,
    readonly servicePort: number,
  ) {}

  /** The address in use (resolved when none is cached or the cached answer has expired). */
  async target(): Promise<Target> {
    const now = performance.now();
    if (this.#cached === undefined || now >= this.#cached.expires) {
      this.#cached = undefined;
      const answer = await queryA(this.dnsPort, this.name);
      const first = answer.addresses[0];
      if (first === undefined) throw new Error(`no address for ${this.name}`);
      this.#cached = { address: first, expires: now + answer.ttl * 1000 };
    }
    return { host: this.#cached.address, port: this.servicePort };
  }
}
