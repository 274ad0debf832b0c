/**
 * The dns listener end to end: dig (bind9-dnsutils, installed by scripts/test-deps.sh) and Node's
 * dns.Resolver against a balancer in this process, sample backends on 127.0.0.1–3 behind health
 * checks, the admin API for drains.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { test } from 'node:test';
import { decode, encode } from 'dns-packet';
import { formatStatus } from '../../src/admin/client.js';
import { startAdmin } from '../../src/admin/index.js';
import { parseConfig } from '../../src/config/index.js';
import { type RunningBackend, startBackend } from '../../src/demo/backend.js';
import type { DnsListener } from '../../src/proxy/dns/dnsListener.js';
import { startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { freePort, spawnCli, tempDir } from '../helpers/processes.js';

const DIG = ['/usr/bin/dig', '/bin/dig'].find((p) => existsSync(p));
const SKIP = DIG === undefined ? 'dig not installed (scripts/test-deps.sh installs bind9-dnsutils)' : false;
const TIMEOUT = { timeout: 60_000, skip: SKIP };

const INTERVAL = 200;
const FALL = 2;
const RISE = 1;

function dig(port: number, ...args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      DIG!,
      ['@127.0.0.1', '-p', String(port), '+time=2', '+tries=1', ...args],
      { timeout: 10_000 },
      (err, stdout) => (err && stdout === '' ? reject(err) : resolve(stdout)),
    );
  });
}

async function short(port: number, name: string, type = 'A', ...args: string[]): Promise<string[]> {
  const out = await dig(port, name, type, '+short', ...args);
  return out.split('\n').filter((l) => l !== '' && !l.startsWith(';'));
}

function status(out: string): string | undefined {
  return /status: (\w+)/.exec(out)?.[1];
}

/** Polls `check` every 50 ms until it holds; resolves with the ms it took, rejects after `ms`. */
async function within(ms: number, check: () => Promise<boolean>): Promise<number> {
  const start = Date.now();
  while (!(await check())) {
    if (Date.now() - start > ms) throw new Error(`not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - start;
}

function yaml(backends: RunningBackend[], extra = ''): string {
  const many = Array.from(
    { length: 60 },
    (_, i) => `      - { address: "10.1.${i >> 8}.${i & 255}:80" }`,
  ).join('\n');
  return `
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:0
    responseRateLimit: { responses: 0 }
    zones:
      - name: example.test
        ttl: 30s
        records:
          - { name: www, pool: web }
          - { name: _http._tcp.www, type: SRV, pool: web }
          - { name: weighted, pool: weighted }
          - { name: many, pool: many }
${extra}
pools:
  - name: web
    healthCheck: { type: tcp, interval: ${INTERVAL}ms, timeout: ${INTERVAL}ms, fall: ${FALL}, rise: ${RISE} }
    servers:
${backends.map((b) => `      - { address: "${b.host}:${b.port}", name: ${b.id} }`).join('\n')}
  - name: weighted
    algorithm: weighted-round-robin
    servers:
      - { address: 10.0.0.1:80, weight: 3 }
      - { address: 10.0.0.2:80, weight: 1 }
  - name: many
    servers:
${many}
`;
}

interface Setup {
  backends: RunningBackend[];
  balancer: TestBalancer;
  port: number;
  listener: DnsListener;
  stop(): Promise<void>;
}

async function setup(extra = ''): Promise<Setup> {
  const backends: RunningBackend[] = [];
  for (let i = 1; i <= 3; i++) {
    backends.push(await startBackend({ port: 0, host: `127.0.0.${i}`, id: String.fromCharCode(96 + i) }));
  }
  const balancer = await startBalancer(yaml(backends, extra));
  const listener = balancer.runtime.listeners.get('dns') as DnsListener;
  return {
    backends,
    balancer,
    port: balancer.port,
    listener,
    stop: async () => {
      await balancer.stop();
      await Promise.all(backends.map((b) => b.close().catch(() => {})));
    },
  };
}

const ALL = ['127.0.0.1', '127.0.0.2', '127.0.0.3'];

test(
  'dig lists only healthy servers: a killed one leaves within the fall time, a restarted one returns, a drained one leaves',
  TIMEOUT,
  async () => {
    const s = await setup();
    const admin = await startAdmin(
      s.balancer.runtime,
      { listen: { host: '127.0.0.1', port: 0, text: '127.0.0.1:0' } },
      s.balancer.log,
      {
        stateFile: null,
      },
    );
    try {
      assert.deepEqual((await short(s.port, 'www.example.test')).sort(), ALL);
      // Kill b: gone from the answers once `fall` checks failed.
      const b = s.backends[1]!;
      await b.close();
      const left = await within(
        FALL * INTERVAL + 2 * INTERVAL + 1000,
        async () => !(await short(s.port, 'www.example.test')).includes('127.0.0.2'),
      );
      assert.ok(left <= (FALL + 2) * INTERVAL + 1000, `left after ${left} ms`);
      assert.deepEqual((await short(s.port, 'www.example.test')).sort(), ['127.0.0.1', '127.0.0.3']);
      // Restart it on the same address: back after `rise` checks.
      s.backends[1] = await startBackend({ port: b.port, host: '127.0.0.2', id: 'b' });
      await within(
        (RISE + 2) * INTERVAL + 1000,
        async () => (await short(s.port, 'www.example.test')).length === 3,
      );
      // Drain c through the admin API: it leaves at once; ready brings it back.
      assert.equal(await patch(admin.address.port, '/api/pools/web/servers/c', { state: 'drain' }), 200);
      assert.deepEqual((await short(s.port, 'www.example.test')).sort(), ['127.0.0.1', '127.0.0.2']);
      assert.equal(await patch(admin.address.port, '/api/pools/web/servers/c', { state: 'ready' }), 200);
      assert.deepEqual((await short(s.port, 'www.example.test')).sort(), ALL);
      // The metrics count the queries by type and rcode.
      const metrics = await get(admin.address.port, '/metrics');
      assert.match(metrics, /fulcrum_dns_queries_total\{listener="dns",type="A",rcode="NOERROR"\} \d+/);
      const statusView = JSON.parse(await get(admin.address.port, '/api/status'));
      const view = statusView.listeners.find((l: { name: string }) => l.name === 'dns');
      assert.equal(view.protocol, 'dns');
      assert.ok(view.requests > 5);
      assert.deepEqual(view.zones, [{ name: 'example.test', pools: ['web', 'weighted', 'many'] }]);
      assert.match(
        formatStatus(statusView),
        /listener dns {2}dns {2}127\.0\.0\.1:0 {2}→ zones example\.test \(pools web, weighted, many\) {2}0 connection\(s\), \d+ queries/,
      );
    } finally {
      await admin.close();
      await s.stop();
    }
  },
);

test('rotation, SRV ports, TCP, case, NXDOMAIN / NODATA / REFUSED, truncation', TIMEOUT, async () => {
  const s = await setup();
  try {
    const firsts = [];
    for (let i = 0; i < 3; i++) firsts.push((await short(s.port, 'www.example.test'))[0]);
    assert.deepEqual([...firsts].sort(), ALL, 'each server comes first once in three queries');
    const srv = await short(s.port, '_http._tcp.www.example.test', 'SRV');
    assert.deepEqual(
      srv.map((l) => l.split(' ')[2]).sort(),
      s.backends.map((b) => String(b.port)).sort(),
      'SRV carries the servers ports',
    );
    assert.deepEqual(
      (await short(s.port, 'WWW.Example.Test', 'A', '+tcp')).sort(),
      ALL,
      'over TCP, any case',
    );
    const nx = await dig(s.port, 'nope.example.test', 'A');
    assert.equal(status(nx), 'NXDOMAIN');
    assert.match(nx, /AUTHORITY SECTION:\nexample\.test\.\s+30\s+IN\s+SOA/);
    assert.equal(status(await dig(s.port, 'www.example.test', 'MX')), 'NOERROR');
    assert.match(await dig(s.port, 'www.example.test', 'TXT'), /ANSWER: 0, AUTHORITY: 1/);
    assert.equal(status(await dig(s.port, 'www.elsewhere.test', 'A')), 'REFUSED');
    // 60 addresses do not fit in 512 bytes: TC over UDP, the full answer over TCP.
    const truncated = await dig(s.port, 'many.example.test', 'A', '+noedns', '+ignore');
    assert.match(truncated, /flags: qr aa tc/);
    assert.match(truncated, /ANSWER: 0/);
    const retried = await short(s.port, 'many.example.test', 'A', '+noedns');
    assert.equal(retried.length, 60, 'dig retries over TCP');
    assert.equal(
      (await short(s.port, 'many.example.test', 'A', '+bufsize=4096')).length,
      60,
      'fits 1232 with EDNS',
    );
    assert.ok(s.listener.stats.truncated >= 1);
  } finally {
    await s.stop();
  }
});

test("Node's dns.Resolver resolves the names", TIMEOUT, async () => {
  const s = await setup();
  try {
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${s.port}`]);
    assert.deepEqual((await resolver.resolve4('www.example.test')).sort(), ALL);
    const srv = await resolver.resolveSrv('_http._tcp.www.example.test');
    assert.deepEqual(srv.map((r) => r.port).sort(), s.backends.map((b) => b.port).sort());
    assert.ok(srv.every((r) => r.name.endsWith('.example.test')));
    assert.deepEqual(await resolver.resolve4(srv[0]!.name), [
      s.backends.find((b) => b.port === srv[0]!.port)!.host,
    ]);
    await assert.rejects(resolver.resolve4('nope.example.test'), { code: 'ENOTFOUND' });
    await assert.rejects(resolver.resolve4('www.elsewhere.test'), { code: 'EREFUSED' });
    const soa = await resolver.resolveSoa('example.test');
    assert.equal(soa.nsname, 'ns.example.test');
  } finally {
    await s.stop();
  }
});

/** A UDP client asking one query at a time. */
async function udpClient(
  port: number,
): Promise<{ ask(name: string, type?: string): Promise<Buffer | undefined>; socket: Socket }> {
  const socket = createSocket('udp4');
  socket.on('error', () => {});
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  let id = 0;
  return {
    socket,
    ask: (name, type = 'A') =>
      new Promise((resolve) => {
        id = (id + 1) & 0xffff;
        const want = id;
        const timer = setTimeout(() => {
          socket.off('message', onMessage);
          resolve(undefined);
        }, 1000);
        const onMessage = (msg: Buffer) => {
          if (msg.readUInt16BE(0) !== want) return;
          clearTimeout(timer);
          socket.off('message', onMessage);
          resolve(msg);
        };
        socket.on('message', onMessage);
        socket.send(
          encode({ type: 'query', id: want, questions: [{ name, type: type as 'A' }] }),
          port,
          '127.0.0.1',
        );
      }),
  };
}

test('weights 3:1 over 10,000 queries: first answers within 2%', TIMEOUT, async () => {
  const s = await setup();
  const client = await udpClient(s.port);
  try {
    const counts = new Map<string, number>();
    for (let i = 0; i < 10_000; i++) {
      const reply = await client.ask('weighted.example.test');
      const first = String((decode(reply!).answers![0] as { data: string }).data);
      counts.set(first, (counts.get(first) ?? 0) + 1);
    }
    const share = (counts.get('10.0.0.1') ?? 0) / 10_000;
    assert.ok(Math.abs(share - 0.75) <= 0.02, `share of the weight-3 server: ${share}`);
  } finally {
    client.socket.close();
    await s.stop();
  }
});

test(
  '10,000 random and mutated packets: the listener stays up, counts them and still answers',
  TIMEOUT,
  async () => {
    const s = await setup();
    const client = await udpClient(s.port);
    try {
      const valid = encode({
        type: 'query',
        id: 1,
        questions: [{ name: '_http._tcp.www.example.test', type: 'SRV' }],
        additionals: [
          {
            type: 'OPT',
            name: '.',
            udpPayloadSize: 4096,
            extendedRcode: 0,
            ednsVersion: 0,
            flags: 0,
            options: [{ code: 8, family: 1, sourcePrefixLength: 24, scopePrefixLength: 0, ip: '192.0.2.0' }],
          } as never,
        ],
      });
      let seed = 12345;
      const rand = (n: number) => {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        return seed % n;
      };
      for (let i = 0; i < 10_000; i++) {
        let packet: Buffer;
        if (i % 2 === 0) {
          packet = Buffer.alloc(rand(600));
          for (let j = 0; j < packet.length; j++) packet[j] = rand(256);
          if (i % 4 === 0 && packet.length >= 12) packet.writeUInt16BE(1, 4); // looks like one question
        } else {
          packet = Buffer.from(valid);
          for (let k = 1 + rand(4); k > 0; k--) packet[rand(packet.length)] = rand(256);
          if (rand(4) === 0) packet = packet.subarray(0, rand(packet.length));
        }
        client.socket.send(packet, s.port, '127.0.0.1');
        // Paced, so that the kernel's socket buffer does not drop them before the listener reads.
        if (i % 25 === 0) await new Promise((r) => setTimeout(r, 2));
      }
      await new Promise((r) => setTimeout(r, 300));
      const malformed = s.listener.stats.dropped.get('malformed') ?? 0;
      const seen = malformed + s.listener.stats.queries;
      assert.ok(seen >= 9_500, `packets seen: ${seen} (malformed ${malformed})`);
      assert.ok(malformed >= 5_000, `malformed packets counted: ${malformed}`);
      // Over TCP too: random framed and unframed bytes on 100 connections.
      for (let i = 0; i < 100; i++) {
        const socket = connect({ host: '127.0.0.1', port: s.port });
        socket.on('error', () => {});
        const junk = Buffer.alloc(2 + rand(300));
        for (let j = 0; j < junk.length; j++) junk[j] = rand(256);
        if (i % 2 === 0) junk.writeUInt16BE(junk.length - 2, 0);
        socket.end(junk);
        await once(socket, 'close');
      }
      assert.deepEqual((await short(s.port, 'www.example.test')).sort(), ALL, 'still answers over UDP');
      assert.deepEqual((await short(s.port, 'www.example.test', 'A', '+tcp')).sort(), ALL, 'and TCP');
    } finally {
      client.socket.close();
      await s.stop();
    }
  },
);

test('response-rate limiting per client subnet; zones reload in place', TIMEOUT, async () => {
  const s = await setup();
  const client = await udpClient(s.port);
  try {
    // Reload: a new record and a rate limit, on the same socket.
    const next = yaml(s.backends, '          - { name: api, pool: weighted, answers: 1 }')
      .replace('listen: 127.0.0.1:0', `listen: 127.0.0.1:${s.port}`)
      .replace('responseRateLimit: { responses: 0 }', 'responseRateLimit: { responses: 5, per: 10s }');
    await s.balancer.runtime.apply(parseConfig(next, 'next.yaml'));
    assert.equal(s.balancer.runtime.listeners.get('dns'), s.listener, 'updated in place');
    let answered = 0;
    let truncated = 0;
    for (let i = 0; i < 20; i++) {
      const reply = await client.ask('api.example.test');
      if (reply === undefined) continue;
      const packet = decode(reply);
      if (packet.flag_tc) truncated++;
      else {
        answered++;
        assert.equal(packet.answers?.length, 1);
      }
    }
    assert.equal(answered, 5);
    assert.ok(truncated >= 5 && truncated <= 10, `slipped: ${truncated}`);
    assert.ok((s.listener.stats.dropped.get('rate-limited') ?? 0) >= 15);
    // TCP is not limited (its source cannot be spoofed).
    assert.equal((await short(s.port, 'api.example.test', 'A', '+tcp')).length, 1);
  } finally {
    client.socket.close();
    await s.stop();
  }
});

function patch(port: number, path: string, body: unknown): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path, method: 'PATCH', headers: { 'content-type': 'application/json' } },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function get(port: number, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('end', () => resolve(text));
    })
      .on('error', reject)
      .end();
  });
}

/**
 * The caveat of DNS balancing, measured: a client that caches an answer for its TTL keeps
 * connecting to the first address it got, dead or not, until the TTL runs out; health checks
 * take the server out of the answers within their fall time, but not out of caches.
 */
async function staleWindow(ttlSeconds: number): Promise<{ staleMs: number; healthMs: number }> {
  const a = await startBackend({ port: 0, host: '127.0.0.1', id: 'a' });
  const b = await startBackend({ port: a.port, host: '127.0.0.2', id: 'b' });
  const balancer = await startBalancer(`
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:0
    zones: [ { name: example.test, ttl: ${ttlSeconds}s, records: [ { name: www, pool: web } ] } ]
pools:
  - name: web
    healthCheck: { type: tcp, interval: ${INTERVAL}ms, timeout: ${INTERVAL}ms, fall: ${FALL}, rise: ${RISE} }
    servers: [ { address: "127.0.0.1:${a.port}" }, { address: "127.0.0.2:${a.port}" } ]
`);
  const client = await udpClient(balancer.port);
  const connects = (host: string) =>
    new Promise<boolean>((resolve) => {
      const socket = connect({ host, port: a.port });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
  try {
    // The caching client: one answer kept for its TTL; b comes first in it.
    let cached: { first: string; expires: number } | undefined;
    const resolveCached = async (now: number) => {
      if (cached !== undefined && now < cached.expires) return cached.first;
      const answer = decode((await client.ask('www.example.test'))!).answers![0] as {
        data: string;
        ttl: number;
      };
      cached = { first: answer.data, expires: now + answer.ttl * 1000 };
      return cached.first;
    };
    while ((await resolveCached(Date.now())) !== '127.0.0.2') cached = undefined;
    const killedAt = Date.now();
    await b.close();
    let lastFailure = killedAt;
    let healthMs = -1;
    while (Date.now() - killedAt < ttlSeconds * 1000 + 1500) {
      const now = Date.now();
      if (!(await connects(await resolveCached(now)))) lastFailure = Date.now();
      if (healthMs < 0 && !(await short(balancer.port, 'www.example.test')).includes('127.0.0.2')) {
        healthMs = Date.now() - killedAt;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    return { staleMs: lastFailure - killedAt, healthMs };
  } finally {
    client.socket.close();
    await balancer.stop();
    await a.close();
  }
}

test(
  'the caching caveat: a client caching for the TTL keeps sending to a dead server for up to the TTL',
  TIMEOUT,
  async (t) => {
    for (const ttl of [1, 3]) {
      const { staleMs, healthMs } = await staleWindow(ttl);
      t.diagnostic(
        `ttl ${ttl}s: the caching client failed for ${staleMs} ms; the answers dropped the server after ${healthMs} ms`,
      );
      assert.ok(
        healthMs >= 0 && healthMs <= (FALL + 2) * INTERVAL + 500,
        `out of the answers after ${healthMs} ms`,
      );
      assert.ok(staleMs <= ttl * 1000 + 200, `stale for ${staleMs} ms, TTL ${ttl}s`);
      assert.ok(
        staleMs >= ttl * 1000 - 400,
        `stale for ${staleMs} ms: the TTL, not the health check, decides`,
      );
    }
  },
);

test(
  "workers: 2: the status shows a dns listener's queries answered, summed over the workers",
  TIMEOUT,
  async () => {
    const dir = tempDir();
    const [dnsPort, adminPort] = [await freePort(), await freePort()];
    const file = dir.write(
      'fulcrum.yaml',
      `
workers: 2
shutdownTimeout: 2s
admin: { listen: "127.0.0.1:${adminPort}" }
listeners:
  - name: dns
    protocol: dns
    listen: 127.0.0.1:${dnsPort}
    responseRateLimit: { responses: 0 }
    zones:
      - name: example.test
        records: [ { name: www, pool: web } ]
pools:
  - name: web
    servers: [ { address: "10.0.0.1:80" } ]
`,
    );
    const lb = spawnCli(['start', '-c', file]);
    try {
      await lb.waitFor('2 workers serving', { timeoutMs: 30_000 });
      for (let i = 0; i < 10; i++) assert.deepEqual(await short(dnsPort, 'www.example.test'), ['10.0.0.1']);
      const view = JSON.parse(await get(adminPort, '/api/status')).listeners.find(
        (l: { name: string }) => l.name === 'dns',
      );
      assert.equal(view.requests, 10);
    } finally {
      await lb.stop('SIGTERM', 8000).catch(() => {});
      dir.remove();
    }
  },
);
