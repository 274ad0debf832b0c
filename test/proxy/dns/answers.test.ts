import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Answer, type DecodedPacket, decode, encode, type Packet } from 'dns-packet';
import { createPolicy } from '../../../src/balancing/index.js';
import { parseConfig } from '../../../src/config/index.js';
import { createLogger } from '../../../src/core/log.js';
import { Pool } from '../../../src/core/pool.js';
import { Server } from '../../../src/core/server.js';
import { Responder } from '../../../src/proxy/dns/answers.js';
import { HostCache } from '../../../src/proxy/dns/hostCache.js';
import { ZoneTable } from '../../../src/proxy/dns/zoneTable.js';

const YAML = `
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:0
    pool: web
    zones:
      - name: Example.Test.
        ttl: 30s
        records:
          - { name: www }
          - { name: one, answers: 1, ttl: 5s }
          - { name: _http._tcp.www, type: SRV }
          - { name: v6, pool: mixed }
          - { name: only4, pool: mixed, type: A }
          - { name: hashed, pool: hashed }
      - name: sub.example.test
        records: [ { name: "@", pool: web } ]
pools:
  - name: web
    servers:
      - { address: 10.0.0.1:80, name: a }
      - { address: 10.0.0.2:81, name: b, weight: 3 }
      - { address: 10.0.0.3:82, name: c, backup: true }
  - name: mixed
    servers:
      - { address: "[2001:db8::1]:80" }
      - { address: 10.0.1.1:80 }
  - name: hashed
    algorithm: ip-hash
    servers: [ { address: 10.0.2.1:80 }, { address: 10.0.2.2:80 }, { address: 10.0.2.3:80 }, { address: 10.0.2.4:80 } ]
`;

function setup() {
  const config = parseConfig(YAML, 'dns.yaml');
  const pools = new Map<string, Pool>();
  for (const p of config.pools) {
    const servers = p.servers.map(
      (s) =>
        new Server({
          id: s.name,
          host: s.address.host,
          port: s.address.port,
          address: s.address.text,
          weight: s.weight,
          backup: s.backup,
        }),
    );
    const pool = new Pool(p.name, createPolicy(p.algorithm), servers);
    pool.log = createLogger('error', () => {});
    pools.set(p.name, pool);
  }
  const table = new ZoneTable(config.listeners[0]!.zones!, (name) => pools.get(name)!, 42);
  return { responder: new Responder(table, 1232), pools };
}

/** A query through the wire format, as a client would send it. */
function query(name: string, type: string, extra: Partial<Packet> = {}): DecodedPacket {
  return decode(
    encode({
      type: 'query',
      id: 7,
      flags: 0x0100,
      questions: [{ name, type: type as 'A', class: 'IN' }],
      ...extra,
    }),
  );
}

function ask(
  responder: Responder,
  name: string,
  type: string,
  extra: Partial<Packet> = {},
  ip = '192.0.2.1',
) {
  const r = responder.respond(query(name, type, extra), ip);
  // Through the encoder too: every response must encode.
  const wire = decode(encode(r.packet)) as DecodedPacket & { rcode: string };
  return { r, wire, data: (wire.answers ?? []).map((a) => (a as { data: unknown }).data) };
}

test('A: the usable primaries, rotating, authoritative, RD copied back', () => {
  const { responder } = setup();
  const first = ask(responder, 'www.example.test', 'A');
  assert.equal(first.r.rcode, 0);
  assert.equal(first.wire.flag_aa, true);
  assert.equal(first.wire.flag_rd, true);
  assert.equal(first.wire.flag_ra, false);
  assert.equal(first.wire.id, 7);
  assert.deepEqual(first.data, ['10.0.0.1', '10.0.0.2'], 'no backup while a primary is usable');
  assert.equal((first.wire.answers![0] as Answer & { ttl: number }).ttl, 30);
  assert.deepEqual(ask(responder, 'www.example.test', 'A').data, ['10.0.0.2', '10.0.0.1']);
  assert.deepEqual(ask(responder, 'WWW.Example.TEST.', 'A').data, ['10.0.0.1', '10.0.0.2'], 'any case');
});

test('only usable servers: down, draining and maintenance leave; backups fill in when none is left', () => {
  const { responder, pools } = setup();
  const web = pools.get('web')!;
  web.setState(web.find('a')!, 'down', 'test');
  assert.deepEqual(ask(responder, 'www.example.test', 'A').data, ['10.0.0.2']);
  web.setState(web.find('b')!, 'draining', 'test');
  assert.deepEqual(ask(responder, 'www.example.test', 'A').data, ['10.0.0.3'], 'the backup');
  web.setState(web.find('c')!, 'maintenance', 'test');
  const none = ask(responder, 'www.example.test', 'A');
  assert.equal(none.r.rcode, 0, 'NODATA: the name exists');
  assert.deepEqual(none.data, []);
  assert.equal(none.wire.authorities?.[0]?.type, 'SOA');
  web.setState(web.find('a')!, 'up', 'test');
  assert.deepEqual(ask(responder, 'www.example.test', 'A').data, ['10.0.0.1']);
});

test('answers: N caps the answer, and the record ttl overrides the zone one', () => {
  const { responder } = setup();
  const seen = new Set<unknown>();
  for (let i = 0; i < 4; i++) {
    const { data, wire } = ask(responder, 'one.example.test', 'A');
    assert.equal(data.length, 1);
    assert.equal((wire.answers![0] as { ttl: number }).ttl, 5);
    seen.add(data[0]);
  }
  assert.equal(seen.size, 2, 'the single answer rotates');
});

test('AAAA for IPv6 servers, A for IPv4 ones; type A limits a record to one family', () => {
  const { responder } = setup();
  assert.deepEqual(ask(responder, 'v6.example.test', 'AAAA').data, ['2001:db8::1']);
  assert.deepEqual(ask(responder, 'v6.example.test', 'A').data, ['10.0.1.1']);
  const nodata = ask(responder, 'only4.example.test', 'AAAA');
  assert.equal(nodata.r.rcode, 0);
  assert.deepEqual(nodata.data, []);
});

test('SRV: port, weight and a generated target whose address is in the additional section', () => {
  const { responder } = setup();
  const { data, wire } = ask(responder, '_http._tcp.www.example.test', 'SRV');
  assert.deepEqual(data, [
    { priority: 0, weight: 1, port: 80, target: 'a.example.test' },
    { priority: 0, weight: 3, port: 81, target: 'b.example.test' },
  ]);
  assert.deepEqual(
    wire.additionals?.map((a) => [a.name, (a as { data: unknown }).data]),
    [
      ['a.example.test', '10.0.0.1'],
      ['b.example.test', '10.0.0.2'],
    ],
  );
  assert.deepEqual(ask(responder, 'b.example.test', 'A').data, ['10.0.0.2'], 'the target resolves');
});

test('NXDOMAIN, NODATA and REFUSED, with the SOA in the authority section of negative answers', () => {
  const { responder } = setup();
  const nx = ask(responder, 'nope.example.test', 'A');
  assert.equal(nx.wire.rcode, 'NXDOMAIN');
  assert.equal(nx.wire.flag_aa, true);
  assert.equal(nx.wire.authorities?.[0]?.type, 'SOA');
  assert.equal(nx.wire.authorities?.[0]?.name, 'example.test');
  const nodata = ask(responder, 'www.example.test', 'MX');
  assert.equal(nodata.wire.rcode, 'NOERROR');
  assert.deepEqual(nodata.data, []);
  assert.equal(nodata.wire.authorities?.[0]?.type, 'SOA');
  const ent = ask(responder, '_tcp.www.example.test', 'A');
  assert.equal(ent.wire.rcode, 'NOERROR', 'an empty non-terminal exists');
  const refused = ask(responder, 'www.other.test', 'A');
  assert.equal(refused.wire.rcode, 'REFUSED');
  assert.equal(refused.wire.flag_aa, false);
  assert.deepEqual(refused.wire.authorities, []);
  assert.equal(ask(responder, 'example.test', 'A').wire.rcode, 'NOERROR', 'the apex exists');
});

test('the most specific zone answers; SOA and NS at the apex', () => {
  const { responder } = setup();
  const sub = ask(responder, 'sub.example.test', 'A');
  assert.equal(sub.data.length, 2);
  const soa = ask(responder, 'example.test', 'SOA');
  assert.equal((soa.data[0] as { mname: string }).mname, 'ns.example.test');
  assert.equal((soa.data[0] as { serial: number }).serial, 42);
  assert.deepEqual(ask(responder, 'example.test', 'NS').data, ['ns.example.test']);
  assert.equal(ask(responder, 'ns.example.test', 'A').wire.rcode, 'NOERROR');
  const subSoa = ask(responder, 'x.sub.example.test', 'A');
  assert.equal(subSoa.wire.authorities?.[0]?.name, 'sub.example.test');
});

test('EDNS0: the OPT record carries our UDP size; version 1 gets BADVERS', () => {
  const { responder } = setup();
  const opt = {
    type: 'OPT',
    name: '.',
    udpPayloadSize: 4096,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    options: [],
  };
  const r = ask(responder, 'www.example.test', 'A', { additionals: [opt as unknown as Answer] });
  assert.equal(r.r.ednsSize, 4096);
  const back = r.wire.additionals?.find((a) => a.type === 'OPT') as { udpPayloadSize: number } | undefined;
  assert.equal(back?.udpPayloadSize, 1232);
  const v1 = ask(responder, 'www.example.test', 'A', {
    additionals: [{ ...opt, ednsVersion: 1 } as unknown as Answer],
  });
  assert.deepEqual(v1.data, []);
  assert.equal(v1.r.rcode, 16, 'counted as BADVERS');
  assert.equal((v1.wire.additionals![0] as { extendedRcode: number }).extendedRcode, 1, 'BADVERS');
});

test('ip-hash keys on the EDNS Client Subnet when present, else the resolver address', () => {
  const { responder } = setup();
  const ecs = (ip: string) => ({
    additionals: [
      {
        type: 'OPT',
        name: '.',
        udpPayloadSize: 1232,
        extendedRcode: 0,
        ednsVersion: 0,
        flags: 0,
        options: [{ code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip }],
      } as unknown as Answer,
    ],
  });
  // Many resolvers, one client subnet: one first answer.
  const firsts = new Set<unknown>();
  for (let i = 1; i <= 20; i++)
    firsts.add(ask(responder, 'hashed.example.test', 'A', ecs('198.51.100.0'), `10.9.0.${i}`).data[0]);
  assert.equal(firsts.size, 1);
  const withEcs = ask(responder, 'hashed.example.test', 'A', ecs('198.51.100.0'));
  const opt = withEcs.wire.additionals?.find((a) => a.type === 'OPT') as {
    options: Array<{ scopePrefixLength: number }>;
  };
  assert.equal(opt.options[0]?.scopePrefixLength, 24, 'the answer holds for the whole subnet');
  // No ECS: the resolver's address decides, differently for different resolvers.
  const byResolver = new Set<unknown>();
  for (let i = 1; i <= 50; i++)
    byResolver.add(ask(responder, 'hashed.example.test', 'A', {}, `10.9.${i}.1`).data[0]);
  assert.ok(byResolver.size > 1);
  // A round-robin answer does not depend on the subnet: scope 0.
  const rr = ask(responder, 'www.example.test', 'A', ecs('198.51.100.0'));
  const rrOpt = rr.wire.additionals?.find((a) => a.type === 'OPT') as {
    options: Array<{ scopePrefixLength: number }>;
  };
  assert.equal(rrOpt.options[0]?.scopePrefixLength, 0);
});

test('weighted round robin: first answers follow the weights', () => {
  const config = parseConfig(
    YAML.replace(
      '  - name: web\n    servers:',
      '  - name: web\n    algorithm: weighted-round-robin\n    servers:',
    ),
    'x.yaml',
  );
  assert.equal(config.pools[0]!.algorithm, 'weighted-round-robin');
  const { responder, pools } = setup();
  pools.get('web')!.setPolicy(createPolicy('weighted-round-robin'));
  const counts = new Map<unknown, number>();
  for (let i = 0; i < 4000; i++) {
    const first = ask(responder, 'www.example.test', 'A').data[0];
    counts.set(first, (counts.get(first) ?? 0) + 1);
  }
  assert.equal(counts.get('10.0.0.2'), 3000);
  assert.equal(counts.get('10.0.0.1'), 1000);
});

for (const algorithm of ['least-connections', 'least-response-time'] as const) {
  test(`${algorithm}: a pool only DNS uses answers by weight; once proxied, by its live figures`, () => {
    const { responder, pools } = setup();
    const pool = pools.get('web')!;
    pool.setPolicy(createPolicy(algorithm));
    const firsts = (n: number) => {
      const counts = new Map<unknown, number>();
      for (let i = 0; i < n; i++) {
        const first = ask(responder, 'www.example.test', 'A').data[0];
        counts.set(first, (counts.get(first) ?? 0) + 1);
      }
      return counts;
    };
    const byWeight = firsts(4000);
    assert.equal(byWeight.get('10.0.0.2'), 3000);
    assert.equal(byWeight.get('10.0.0.1'), 1000);
    // Proxied: b (weight 3) has 4 requests in flight, a none: a comes first.
    const b = pool.find('b')!;
    for (let i = 0; i < 4; i++) pool.lease(b);
    const byLoad = firsts(10);
    assert.equal(byLoad.get('10.0.0.1'), 10);
  });
}

test('a hostile query (odd class, opcode) gets an error code, never an exception', () => {
  const { responder } = setup();
  const chaos = responder.respond(
    decode(encode({ type: 'query', id: 1, questions: [{ name: 'version.bind', type: 'TXT', class: 'CH' }] })),
    '192.0.2.1',
  );
  assert.equal(chaos.rcode, 5);
  const notify = responder.respond(
    decode(
      encode({ type: 'query', id: 1, flags: 4 << 11, questions: [{ name: 'www.example.test', type: 'A' }] }),
    ),
    '192.0.2.1',
  );
  assert.equal(notify.rcode, 4, 'NOTIMP');
});

test('a server given by host name answers with the addresses its name resolves to', async () => {
  const byName = new Server({
    id: 'n',
    host: 'localhost',
    port: 80,
    address: 'localhost:80',
    weight: 1,
    backup: false,
  });
  const pool = new Pool('named', createPolicy('round-robin'), [byName]);
  const config = parseConfig(
    YAML.replace(
      '          - { name: www }',
      '          - { name: www }\n          - { name: named, pool: mixed }',
    ),
    'x.yaml',
  );
  const hosts = new HostCache(() => ['localhost']);
  const table = new ZoneTable(config.listeners[0]!.zones!, () => pool, 1);
  const responder = new Responder(table, 1232, hosts);
  assert.deepEqual(ask(responder, 'named.example.test', 'A').data, [], 'not resolved yet: left out');
  await hosts.refresh();
  assert.deepEqual(ask(responder, 'named.example.test', 'A').data, ['127.0.0.1']);
  const srv = ask(responder, '_http._tcp.www.example.test', 'SRV').data[0] as { target: string };
  assert.equal(srv.target, 'localhost', 'an SRV target is the server its own name');
});
