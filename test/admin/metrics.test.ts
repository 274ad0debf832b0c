/** GET /metrics after known traffic: every family, exact counts, Prometheus naming. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { Telemetry } from '../../src/admin/metrics.js';
import type { Affinity } from '../../src/core/affinity.js';
import type { ExchangeRecord } from '../../src/core/observer.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { freePort } from '../helpers/processes.js';
import { api, LOOPBACK, sleep, traffic, until } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };

/** The value of one sample line, by its exact series text; undefined when absent. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

test(
  'metrics after known traffic: requests by class, durations, retries, ejections, health, state, stickiness',
  TIMEOUT,
  async () => {
    const [a, b, c, e] = await startBackends(4);
    const dead = await freePort();
    // f's port is held by this test (a listener that drops every connection), so no other
    // process on the machine can take it and answer its health checks.
    const refuser = createNetServer((socket) => socket.destroy());
    await new Promise<void>((r) => refuser.listen(0, '127.0.0.1', r));
    const f = (refuser.address() as AddressInfo).port;
    const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    routes:
      - { match: { pathPrefix: /q }, pool: q }
      - { match: { pathPrefix: /h }, pool: h }
pools:
  - name: p
    servers:
${serverList([a!, b!])}
  - name: q
    servers:
      - { address: "127.0.0.1:${c!.port}", name: c }
      - { address: "127.0.0.1:${dead}", name: dead }
    retries: { attempts: 1 }
    outlierDetection: { consecutiveFailures: 1, ejectFor: 30s, maxEjectedPercent: 50 }
  - name: h
    servers:
      - { address: "127.0.0.1:${e!.port}", name: e }
      - { address: "127.0.0.1:${f}", name: f }
    healthCheck: { type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }
`);
    const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log, { intervalMs: 100 });
    const scrape = async () => {
      const r = await api(admin.address.port, 'GET', '/metrics');
      assert.equal(r.status, 200);
      assert.equal(r.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
      return r.body;
    };
    try {
      await traffic(lb.port, 10, '/whoami');
      const q = await traffic(lb.port, 4, '/q/x');
      assert.deepEqual(q, ['c', 'c', 'c', 'c'], 'the dead server is retried away from, then ejected');
      const pool = lb.runtime.pools.get('h')!;
      await until(() => pool.find('f')!.state === 'down', 3000, 'f down by health checks');
      await sleep(350); // a few more checks

      let m = await scrape();
      const req = (l: string) => sample(m, `fulcrum_requests_total{${l}}`);
      assert.equal(req('listener="web",pool="p",server="a",code="2xx"'), 5);
      assert.equal(req('listener="web",pool="p",server="b",code="2xx"'), 5);
      assert.equal(req('listener="web",pool="q",server="c",code="2xx"'), 4);
      assert.equal(req('listener="web",pool="p",server="a",code="5xx"'), undefined, 'no empty series');
      const dur = 'listener="web",pool="p",server="a"';
      assert.equal(sample(m, `fulcrum_request_duration_seconds_count{${dur}}`), 5);
      assert.equal(sample(m, `fulcrum_request_duration_seconds_bucket{${dur},le="+Inf"}`), 5);
      assert.ok(sample(m, `fulcrum_request_duration_seconds_bucket{${dur},le="10"}`) === 5);
      assert.ok(sample(m, `fulcrum_request_duration_seconds_sum{${dur}}`)! >= 0);
      assert.equal(sample(m, 'fulcrum_retries_total{listener="web",pool="q"}'), 1);
      assert.equal(sample(m, 'fulcrum_retries_total{listener="web",pool="p"}'), 0);
      assert.equal(sample(m, 'fulcrum_server_ejections_total{pool="q",server="dead"}'), 1);
      assert.equal(sample(m, 'fulcrum_server_ejected{pool="q",server="dead"}'), 1);
      assert.equal(sample(m, 'fulcrum_server_ejected{pool="q",server="c"}'), 0);
      assert.equal(sample(m, 'fulcrum_server_up{pool="h",server="f"}'), 0);
      assert.equal(sample(m, 'fulcrum_server_up{pool="h",server="e"}'), 1);
      assert.equal(sample(m, 'fulcrum_server_state{pool="h",server="f",state="down"}'), 1);
      assert.equal(sample(m, 'fulcrum_server_state{pool="h",server="f",state="up"}'), 0);
      assert.equal(sample(m, 'fulcrum_server_transitions_total{pool="h",server="f",state="down"}'), 1);
      assert.equal(sample(m, 'fulcrum_health_check_passing{pool="h",server="f"}'), 0);
      assert.equal(sample(m, 'fulcrum_health_check_passing{pool="h",server="e"}'), 1);
      assert.ok(sample(m, 'fulcrum_health_checks_total{pool="h",server="e",result="pass"}')! >= 2);
      assert.ok(sample(m, 'fulcrum_health_checks_total{pool="h",server="f",result="fail"}')! >= 2);
      assert.equal(
        sample(m, 'fulcrum_health_check_passing{pool="p",server="a"}'),
        undefined,
        'no checks, no series',
      );
      assert.equal(sample(m, 'fulcrum_server_in_flight{pool="p",server="a"}'), 0);
      assert.equal(sample(m, 'fulcrum_server_weight{pool="p",server="a"}'), 1);
      assert.equal(sample(m, 'fulcrum_listener_connections{listener="web",protocol="http"}'), 0);
      assert.equal(sample(m, 'fulcrum_sticky_reassignments_total{pool="p"}'), 0);
      assert.ok(sample(m, 'process_cpu_user_seconds_total') !== undefined, 'default process metrics');

      // Stickiness: a client pinned to a while a is out goes elsewhere (one reassignment). Then
      // nothing in p can take requests: 503, counted without a server.
      const p = lb.runtime.pools.get('p')!;
      const affinity: Affinity = { pinned: () => p.find('a'), onResponse: () => '' };
      p.affinity = affinity;
      p.setState(p.find('a')!, 'maintenance', 'test');
      assert.equal((await request(lb.port, { path: '/whoami' })).headers['x-served-by'], 'b');
      p.setState(p.find('b')!, 'maintenance', 'test');
      assert.equal((await request(lb.port, { path: '/whoami' })).status, 503);
      m = await scrape();
      assert.equal(sample(m, 'fulcrum_sticky_reassignments_total{pool="p"}'), 2);
      assert.equal(sample(m, 'fulcrum_requests_total{listener="web",pool="p",server="",code="5xx"}'), 1);
      assert.equal(sample(m, 'fulcrum_requests_total{listener="web",pool="p",server="b",code="2xx"}'), 6);
      assert.equal(sample(m, 'fulcrum_server_state{pool="p",server="a",state="maintenance"}'), 1);
      // Bytes both ways per listener and server; the keep-alive connection b answered on stays open.
      assert.ok(sample(m, 'fulcrum_sent_bytes_total{listener="web",pool="p",server="b"}')! > 6 * 100);
      assert.ok(sample(m, 'fulcrum_received_bytes_total{listener="web",pool="p",server="b"}')! > 6 * 30);
      assert.ok(sample(m, 'fulcrum_server_idle_connections{pool="p",server="b"}')! >= 1, m);
      assert.equal(sample(m, 'fulcrum_server_idle_connections{pool="q",server="dead"}'), 0);

      // Every family has HELP and TYPE, and names follow the conventions.
      for (const line of m.split('\n')) {
        if (line === '' || line.startsWith('#')) continue;
        assert.match(
          line,
          /^[a-z_:][a-z0-9_:]*(\{.*\})? -?[0-9.e+-]+$|^[a-z_:][a-z0-9_:]*(\{.*\})? (NaN|Nan|\+Inf)$/, // prom-client prints NaN as "Nan" (e.g. event-loop lag before its first sample); Prometheus parses either
          line,
        );
      }
      for (const family of [
        'fulcrum_requests_total counter',
        'fulcrum_request_duration_seconds histogram',
        'fulcrum_retries_total counter',
        'fulcrum_server_in_flight gauge',
        'fulcrum_server_idle_connections gauge',
        'fulcrum_received_bytes_total counter',
        'fulcrum_sent_bytes_total counter',
        'fulcrum_server_up gauge',
        'fulcrum_server_ejections_total counter',
        'fulcrum_health_checks_total counter',
        'fulcrum_sticky_reassignments_total counter',
      ]) {
        assert.ok(m.includes(`# TYPE ${family}`), family);
      }
    } finally {
      await admin.close();
      await lb.stop();
      await Promise.all([a, b, c, e].map((x) => x!.close()));
      refuser.close();
    }
  },
);

test('removed servers and pools leave the metrics', TIMEOUT, async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
  const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log);
  try {
    await traffic(lb.port, 4);
    assert.match((await api(admin.address.port, 'GET', '/metrics')).body, /server="b",code="2xx"\} 2/);
    await api(admin.address.port, 'DELETE', '/api/pools/web/servers/b?wait=true');
    const m = (await api(admin.address.port, 'GET', '/metrics')).body;
    assert.doesNotMatch(m, /server="b"/);
    assert.match(m, /server="a",code="2xx"\} 2/);
  } finally {
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('fulcrum_build_info names the version and the Node.js release', TIMEOUT, async () => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers:
${serverList(backends)}
`);
  const admin = await startAdmin(lb.runtime, LOOPBACK, lb.log);
  try {
    const m = (await api(admin.address.port, 'GET', '/metrics')).body;
    const { version } = JSON.parse(
      readFileSync(new URL('../../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    assert.equal(sample(m, `fulcrum_build_info{version="${version}",node="${process.versions.node}"}`), 1, m);
  } finally {
    await admin.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('recording an exchange costs well under a microsecond', TIMEOUT, async (t) => {
  const backends = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools: [{ name: web, servers: [{ address: "127.0.0.1:${backends[0]!.port}", name: a }] }]
`);
  const telemetry = new Telemetry(lb.runtime);
  try {
    const record: ExchangeRecord = {
      listener: 'web',
      protocol: 'http',
      pool: 'web',
      server: 'a',
      clientIp: '127.0.0.1',
      method: 'GET',
      path: '/',
      status: 200,
      bytesOut: 100,
      durationMs: 1.7,
      retries: 0,
      at: Date.now(),
    };
    const n = 2_000_000;
    for (let i = 0; i < 100_000; i++) telemetry.onExchange(record); // warm up
    const start = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      record.durationMs = (i % 97) * 0.37;
      record.status = i % 10 === 0 ? 503 : 200;
      telemetry.onExchange(record);
    }
    const ns = Number(process.hrtime.bigint() - start) / n;
    t.diagnostic(`Telemetry.onExchange: ${ns.toFixed(0)} ns per exchange`);
    assert.ok(ns < 1000, `${ns} ns`);
    const m = await telemetry.registry.metrics();
    assert.match(m, /fulcrum_requests_total\{listener="web",pool="web",server="a",code="2xx"\} 1900000/);
  } finally {
    telemetry.close();
    await lb.stop();
    await backends[0]!.close();
  }
});
