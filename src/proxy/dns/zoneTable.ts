import { isIP } from 'node:net';
import type { DnsRecordConfig, DnsZoneConfig } from '../../config/types.js';
import type { Pool } from '../../core/pool.js';
import type { Server } from '../../core/server.js';
import type { PoolLookup } from '../listener.js';

/** One configured record, its pool resolved: the answers are read from the pool at query time. */
export interface RecordSet {
  /** The owner name, absolute and lower-cased ("www.example.test"). */
  owner: string;
  type: DnsRecordConfig['type'];
  pool: Pool;
  /** Most servers in one answer (Infinity: all usable ones). */
  answers: number;
  /** Seconds. */
  ttl: number;
}

/** What a name in a zone holds: its address records and its SRV records, either may be absent. */
export interface NameEntry {
  address?: RecordSet;
  srv?: RecordSet;
}

/** One zone as the answering code reads it. */
export interface Zone {
  /** Lower-cased, no trailing dot. */
  name: string;
  /** Seconds: the default TTL, also the SOA's TTL and its negative-caching minimum. */
  ttl: number;
  /** The generated name server of the zone, "ns.<zone>" (also the SOA's mname). */
  nsName: string;
  /** Changes with every build (a reload), so secondaries and caches can tell versions apart. */
  serial: number;
  /** Every name that exists in the zone (apex, records, their empty non-terminals, ns). */
  names: Map<string, NameEntry>;
  /** Pools of the zone's SRV records: their servers' generated target names live in the zone. */
  srvPools: Pool[];
}

/** What a name is, as far as this listener knows. */
export type Lookup =
  | { kind: 'outside' }
  | { kind: 'nxdomain'; zone: Zone }
  | { kind: 'name'; zone: Zone; entry: NameEntry }
  /** A generated SRV target: one server's own address. */
  | { kind: 'target'; zone: Zone; server: Server };

const EMPTY: NameEntry = {};

/**
 * The zones of a dns listener, compiled from its config: names lower-cased and absolute, pools
 * resolved, empty non-terminals known (so "_tcp.www" is NODATA, not NXDOMAIN, when
 * "_http._tcp.www" exists). Rebuilt on every reload; the answers themselves come from the pools
 * at query time, so health and admin changes need no rebuild.
 */
export class ZoneTable {
  /** Longest names first, so the most specific zone wins. */
  readonly zones: Zone[];

  constructor(configs: readonly DnsZoneConfig[], pools: PoolLookup, serial = Math.floor(Date.now() / 1000)) {
    this.zones = configs
      .map((c) => buildZone(c, pools, serial))
      .sort((a, b) => b.name.length - a.name.length);
  }

  /** `qname` lower-cased, without the trailing dot. */
  lookup(qname: string): Lookup {
    const zone = this.zones.find((z) => qname === z.name || qname.endsWith(`.${z.name}`));
    if (zone === undefined) return { kind: 'outside' };
    const entry = zone.names.get(qname);
    if (entry !== undefined) return { kind: 'name', zone, entry };
    const label = qname.slice(0, qname.length - zone.name.length - 1);
    if (!label.includes('.')) {
      for (const pool of zone.srvPools) {
        for (const server of pool.servers)
          if (targetLabel(server) === label) return { kind: 'target', zone, server };
      }
    }
    return { kind: 'nxdomain', zone };
  }
}

function buildZone(config: DnsZoneConfig, pools: PoolLookup, serial: number): Zone {
  const ttl = seconds(config.ttl);
  const zone: Zone = {
    name: config.name,
    ttl,
    nsName: `ns.${config.name}`,
    serial,
    names: new Map([[config.name, EMPTY]]),
    srvPools: [],
  };
  const ensure = (name: string): NameEntry => {
    let entry = zone.names.get(name);
    if (entry === undefined || entry === EMPTY) {
      entry = {};
      zone.names.set(name, entry);
    }
    // The empty non-terminals between the name and the apex exist too.
    for (
      let at = name.indexOf('.');
      at >= 0 && name.length - at - 1 > config.name.length;
      at = name.indexOf('.', at + 1)
    ) {
      const parent = name.slice(at + 1);
      if (!zone.names.has(parent)) zone.names.set(parent, EMPTY);
    }
    return entry;
  };
  if (!zone.names.has(zone.nsName)) zone.names.set(zone.nsName, EMPTY);
  for (const record of config.records) {
    const owner = record.name === '@' ? config.name : `${record.name}.${config.name}`;
    const set: RecordSet = {
      owner,
      type: record.type,
      pool: pools(record.pool),
      answers: record.answers ?? Number.POSITIVE_INFINITY,
      ttl: record.ttl === undefined ? ttl : seconds(record.ttl),
    };
    const entry = ensure(owner);
    if (record.type === 'SRV') {
      entry.srv = set;
      if (!zone.srvPools.includes(set.pool)) zone.srvPools.push(set.pool);
    } else {
      entry.address = set;
    }
  }
  return zone;
}

/** Config durations are ms; DNS TTLs are whole seconds (a 31-bit number). */
function seconds(ms: number): number {
  return Math.min(Math.floor(ms / 1000), 0x7fffffff);
}

/**
 * The label of a server's generated SRV target ("<label>.<zone>"): its identity, lower-cased,
 * every character outside [a-z0-9-] made "-", at most 63 characters.
 */
export function targetLabel(server: Server): string {
  return server.id
    .toLowerCase()
    .replace(/[^a-z0-9-]/g, '-')
    .slice(0, 63);
}

/** 4 for an IPv4 server, 6 for an IPv6 one, 0 for one named by a host name. */
export function family(server: Server): 0 | 4 | 6 {
  return isIP(server.host) as 0 | 4 | 6;
}
