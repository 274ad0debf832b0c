import { isIPv6 } from 'node:net';
import type { Answer, DecodedPacket, OptAnswer, Packet, Question, SrvAnswer } from 'dns-packet';
import { AUTHORITATIVE_ANSWER, RECURSION_DESIRED } from 'dns-packet';
import { createPolicy } from '../../balancing/registry.js';
import type { Pool } from '../../core/pool.js';
import { type BalancingPolicy, type SelectContext, Selection } from '../../core/selection.js';
import type { Server } from '../../core/server.js';
import { HostCache } from './hostCache.js';
import { family, type Lookup, type RecordSet, targetLabel, type Zone, type ZoneTable } from './zoneTable.js';

/** Response codes this listener sends (RFC 1035, 6891). */
export const Rcode = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;
/** EDNS0 extended rcode BADVERS (16): its upper 8 bits go into the OPT record. */
const BADVERS = 16;
const BADVERS_UPPER = BADVERS >> 4;
const RCODE_NAMES: Record<number, string> = {
  0: 'NOERROR',
  1: 'FORMERR',
  2: 'SERVFAIL',
  3: 'NXDOMAIN',
  4: 'NOTIMP',
  5: 'REFUSED',
  [BADVERS]: 'BADVERS',
};
/** Question types counted by name in the metrics; any other counts as OTHER (bounded labels). */
const COUNTED_TYPES = new Set([
  'A',
  'AAAA',
  'SRV',
  'SOA',
  'NS',
  'ANY',
  'TXT',
  'MX',
  'CNAME',
  'PTR',
  'CAA',
  'HTTPS',
  'SVCB',
  'DS',
  'DNSKEY',
]);

/** The name of a response code, for the metrics. */
export function rcodeName(rcode: number): string {
  return RCODE_NAMES[rcode] ?? String(rcode);
}
const CLIENT_SUBNET = 8;

/** A response to send and what it was, for the metrics. */
export interface Response {
  packet: Packet;
  rcode: number;
  /** The question's type ("A", "SRV", …, "OTHER" for the rare ones), for the metrics. */
  qtype: string;
  /** The client used EDNS0: the UDP size it can take (0 when it did not). */
  ednsSize: number;
}

/**
 * Builds the answer to one query: authoritative for the zones of `table`, from the pools' usable
 * servers in their algorithm's order. Pure but for the policies' state (round robin moves on
 * with each query, as with each connection); never throws on what a client may send.
 */
export class Responder {
  /** One per listener: answers are built synchronously, one query at a time. */
  private readonly selection = new Selection();
  /** Per pool, a weighted rotation for least-* pools that only DNS uses (they have no load to compare). */
  private readonly weighted = new WeakMap<Pool, BalancingPolicy>();
  private readonly ctx: SelectContext = { clientIp: '', hashKey: undefined };
  private readonly order: Server[] = [];

  constructor(
    public table: ZoneTable,
    /** Largest UDP answer this listener offers (the OPT record's size). */
    public maxUdpSize: number,
    /** Addresses of the servers given by host name. */
    private readonly hosts: HostCache = new HostCache(() => []),
  ) {}

  respond(query: DecodedPacket, clientIp: string): Response {
    const question = query.questions?.[0];
    const opt = query.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
    const ednsSize = opt === undefined ? 0 : Math.max(512, opt.udpPayloadSize);
    const type = question === undefined ? 'NONE' : String(question.type);
    const qtype = COUNTED_TYPES.has(type) ? type : 'OTHER';
    const packet: Packet = {
      type: 'response',
      id: query.id ?? 0,
      // RD is copied back (RFC 1035); RA stays clear: this is no resolver.
      flags: (query.flags ?? 0) & RECURSION_DESIRED,
      questions: question === undefined ? [] : [question],
      answers: [],
      authorities: [],
      additionals: [],
    };
    const response: Response = { packet, rcode: Rcode.NOERROR, qtype, ednsSize };
    let subnet: { ip: string; prefix: number } | undefined;
    if (opt !== undefined) {
      if (opt.ednsVersion !== 0) {
        // Only version 0 exists; BADVERS carries our version (0) back.
        packet.additionals!.push(this.opt(BADVERS_UPPER, undefined));
        response.rcode = BADVERS;
        return response;
      }
      subnet = clientSubnet(opt);
    }
    const finish = (rcode: number, zone?: Zone): Response => {
      response.rcode = rcode;
      packet.flags! |= rcode;
      if (zone !== undefined) {
        packet.flags! |= AUTHORITATIVE_ANSWER;
        if (packet.answers!.length === 0 && rcode !== Rcode.REFUSED) packet.authorities!.push(soa(zone));
      }
      if (opt !== undefined) packet.additionals!.push(this.opt(0, subnet));
      return response;
    };
    // One question of class IN (or ANY), as every resolver sends; anything else is not ours.
    if (question === undefined || (query.questions?.length ?? 0) !== 1) return finish(Rcode.FORMERR);
    if (opcodeOf(query) !== 0) return finish(Rcode.NOTIMP);
    if (question.class !== undefined && question.class !== 'IN' && question.class !== 'ANY') {
      return finish(Rcode.REFUSED);
    }
    const name = question.name.toLowerCase().replace(/\.$/, '');
    const found = this.table.lookup(name);
    if (found.kind === 'outside') return finish(Rcode.REFUSED);
    if (found.kind === 'nxdomain') return finish(Rcode.NXDOMAIN, found.zone);
    this.ctx.clientIp = subnet?.ip ?? clientIp;
    // Answers carry the name as asked (case preserved, RFC 4343).
    this.answer(found, question, packet);
    if (subnet !== undefined) subnet.prefix = this.scope(found, subnet.prefix);
    return finish(Rcode.NOERROR, found.zone);
  }

  private answer(
    found: Exclude<Lookup, { kind: 'outside' | 'nxdomain' }>,
    q: Question,
    packet: Packet,
  ): void {
    const answers = packet.answers!;
    const zone = found.zone;
    const type = String(q.type);
    if (found.kind === 'target') {
      if (type === 'A' || type === 'AAAA' || type === 'ANY') {
        const f = family(found.server);
        if ((type !== 'AAAA' && f === 4) || (type !== 'A' && f === 6)) {
          answers.push(addressRecord(q.name, found.server.host, zone.ttl));
        }
      }
      return;
    }
    const entry = found.entry;
    const apex = found.zone.name === q.name.toLowerCase().replace(/\.$/, '');
    if (apex && (type === 'SOA' || type === 'ANY')) answers.push(soa(zone, q.name));
    if (apex && (type === 'NS' || type === 'ANY')) answers.push(ns(zone, q.name));
    if ((type === 'A' || type === 'AAAA' || type === 'ANY') && entry.address !== undefined) {
      const set = entry.address;
      const hosts = this.hosts;
      for (const f of [4, 6] as const) {
        if ((type === 'A' && f === 6) || (type === 'AAAA' && f === 4)) continue;
        if ((set.type === 'A' && f === 6) || (set.type === 'AAAA' && f === 4)) continue;
        // Servers without an address of this family (or a host name not resolved yet) are skipped.
        for (const s of this.ordered(set, (server) => hosts.addresses(server, f).length === 0)) {
          for (const address of hosts.addresses(s, f)) answers.push(addressRecord(q.name, address, set.ttl));
        }
      }
    }
    if (type === 'SRV' && entry.srv !== undefined) {
      const set = entry.srv;
      const additionals = packet.additionals!;
      for (const s of this.ordered(set, undefined)) {
        const f = family(s);
        const target = f === 0 ? s.host : `${targetLabel(s)}.${zone.name}`;
        const record: SrvAnswer = {
          type: 'SRV',
          name: q.name,
          ttl: set.ttl,
          class: 'IN',
          // Backups appear only while no primary is usable, so one priority is enough.
          data: { priority: 0, weight: s.weight, port: s.port, target },
        };
        answers.push(record);
        if (f !== 0) additionals.push(addressRecord(target, s.host, zone.ttl));
      }
    }
    // ns.<zone>: it exists (NS names it) but has no address of its own here: NODATA.
  }

  /**
   * The usable servers of `set`'s pool for one answer, in its algorithm's order, at most
   * `set.answers`, skipping those `skip` rules out (the wrong address family). The first is the
   * policy's own choice, taken through a Selection without a lease (a DNS answer is not a
   * connection); the others follow it in the pool's order, cyclically. Not the policy's
   * fallbacks: a fallback moves a round robin past the server it returns, so asking for every
   * fallback on each query would bring the rotation back to the same first server every time,
   * and weighted round robin's share of first answers would drift from the weights.
   */
  private ordered(set: RecordSet, skip: ((s: Server) => boolean) | undefined): Server[] {
    const out = this.order;
    out.length = 0;
    const pool = set.pool;
    const first = this.leastWithoutLoad(pool) ? this.weightedFirst(pool, skip) : this.policyFirst(pool, skip);
    if (first === undefined) return out;
    out.push(first);
    const eligible = pool.eligibleServers();
    const at = eligible.indexOf(first);
    for (let k = 1; k < eligible.length && out.length < set.answers; k++) {
      const s = eligible[(at + k) % eligible.length]!;
      if (skip === undefined || !skip(s)) out.push(s);
    }
    return out;
  }

  /** The pool's policy's own first choice, without a lease. */
  private policyFirst(pool: Pool, skip: ((s: Server) => boolean) | undefined): Server | undefined {
    this.selection.start(pool, this.ctx);
    return this.selection.peek(skip);
  }

  /**
   * least-connections and least-response-time compare live load. When the pool is also proxied
   * (a server has had leases) those figures are used; a pool that only DNS answers from has none,
   * so its answers follow the weights instead (smooth weighted round robin).
   */
  private leastWithoutLoad(pool: Pool): boolean {
    const name = pool.policy.name;
    if (name !== 'least-connections' && name !== 'least-response-time') return false;
    for (const s of pool.servers) if (s.total > 0) return false;
    return true;
  }

  private weightedFirst(pool: Pool, skip: ((s: Server) => boolean) | undefined): Server | undefined {
    let policy = this.weighted.get(pool);
    if (policy === undefined) {
      policy = createPolicy('weighted-round-robin');
      this.weighted.set(pool, policy);
    }
    const eligible = pool.eligibleServers();
    if (eligible.length === 0) return undefined;
    const candidates = skip === undefined ? eligible : eligible.filter((s) => !skip(s));
    if (candidates.length === 0) return undefined;
    return policy.pick(candidates, this.ctx);
  }

  /** ECS scope: an ip-hash answer depends on the client's subnet, any other on nothing of it. */
  private scope(found: Lookup, prefix: number): number {
    if (found.kind !== 'name') return 0;
    const sets = [found.entry.address, found.entry.srv];
    return sets.some((s) => s !== undefined && s.pool.policy.name === 'ip-hash') ? prefix : 0;
  }

  private opt(
    extendedRcode: number,
    subnet: { ip: string; prefix: number; source?: number } | undefined,
  ): OptAnswer {
    const options: OptAnswer['options'] = [];
    if (subnet !== undefined) {
      options.push({
        code: CLIENT_SUBNET,
        family: subnet.ip.includes(':') ? 2 : 1,
        sourcePrefixLength: subnet.source ?? subnet.prefix,
        scopePrefixLength: subnet.prefix,
        ip: subnet.ip,
      });
    }
    return {
      type: 'OPT',
      name: '.',
      udpPayloadSize: this.maxUdpSize,
      extendedRcode,
      ednsVersion: 0,
      flags: 0,
      flag_do: false,
      options,
    };
  }
}

function opcodeOf(query: DecodedPacket): number {
  return ((query.flags ?? 0) >> 11) & 0xf;
}

/**
 * The EDNS Client Subnet a resolver sent (RFC 7871), as the address to hash ip-hash on: the
 * subnet's address, already masked by the resolver. Undefined when absent or unusable.
 */
function clientSubnet(opt: OptAnswer): { ip: string; prefix: number; source: number } | undefined {
  for (const o of opt.options ?? []) {
    if (o.code !== CLIENT_SUBNET || !('ip' in o) || typeof o.ip !== 'string') continue;
    const source = o.sourcePrefixLength ?? 0;
    if (source === 0) return undefined; // the client asked not to use its subnet
    return { ip: o.ip, prefix: source, source };
  }
  return undefined;
}

function addressRecord(name: string, address: string, ttl: number): Answer {
  return { type: isIPv6(address) ? 'AAAA' : 'A', name, ttl, class: 'IN', data: address };
}

/** The zone's generated SOA (its minimum is the negative-caching TTL, RFC 2308). */
export function soa(zone: Zone, name = zone.name): Answer {
  return {
    type: 'SOA',
    name,
    ttl: zone.ttl,
    class: 'IN',
    data: {
      mname: zone.nsName,
      rname: `hostmaster.${zone.name}`,
      serial: zone.serial,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: zone.ttl,
    },
  };
}

function ns(zone: Zone, name: string): Answer {
  return { type: 'NS', name, ttl: zone.ttl, class: 'IN', data: zone.nsName };
}
