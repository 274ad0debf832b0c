import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Telemetry } from '../../src/admin/metrics.js';
import { ClusterFigures } from '../../src/cluster/clusterFigures.js';
import type { WorkerStats } from '../../src/cluster/messages.js';
import { parseConfig } from '../../src/config/load.js';
import { Runtime } from '../../src/runtime/runtime.js';

const CONFIG = `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    servers: [{ address: "127.0.0.1:1", name: a }, { address: "127.0.0.1:2", name: b }]
`;

function stats(aCount: number, bCount: number, active = 0): WorkerStats {
  const entry = (server: string, count: number) => ({
    listener: 'web',
    pool: 'web',
    server,
    codes: [0, 0, count, 0, 0, 0],
    buckets: [count, ...new Array(13).fill(0)],
    sum: count,
    count,
    retries: 0,
    bytesIn: 10 * count,
    bytesOut: 20 * count,
  });
  return {
    entries: [entry('a', aCount), entry('b', bCount)],
    servers: [
      ['web', 'a', active, aCount, 0, 1, aCount],
      ['web', 'b', 0, bCount, 0, 3, bCount],
    ],
    listeners: [{ name: 'web', host: '127.0.0.1', port: 8080, connections: active }],
  };
}

test('the workers’ figures add up, and a worker gone takes nothing out of the totals', async () => {
  // A supervisor's runtime: the pools, no listeners bound.
  const runtime = new Runtime(parseConfig(CONFIG, 'test.yaml'), { serve: false });
  await runtime.start();
  const telemetry = new Telemetry(runtime);
  try {
    const figures = new ClusterFigures(runtime);
    figures.attach(telemetry);
    figures.report(1, stats(3, 4, 2));
    figures.report(2, stats(5, 6, 1));
    figures.merge();
    assert.equal(telemetry.requestsOf('web'), 18);
    const a = runtime.pools.get('web')!.find('a')!;
    const b = runtime.pools.get('web')!.find('b')!;
    assert.equal(a.total, 8);
    assert.equal(a.active, 3);
    assert.equal(b.ewmaMs, 3);
    assert.deepEqual(figures.listener('web'), { address: { host: '127.0.0.1', port: 8080 }, connections: 3 });
    assert.match(
      await telemetry.registry.metrics(),
      /^fulcrum_listener_connections\{listener="web",protocol="http"\} 3$/m,
    );

    // Worker 1 dies; its replacement (3) starts from zero.
    figures.retire(1);
    figures.report(3, stats(1, 0));
    figures.merge();
    assert.equal(telemetry.requestsOf('web'), 19);
    assert.equal(a.total, 9);
    assert.equal(a.active, 1, 'worker 1’s two requests in flight went with it; worker 2’s one is left');
    const text = await telemetry.registry.metrics();
    assert.match(text, /^fulcrum_requests_total\{listener="web",pool="web",server="a",code="2xx"\} 9$/m);
  } finally {
    telemetry.close();
    await runtime.shutdown(0);
  }
});

test('idle upstream connections and dns counters are the workers’ sums; a worker gone keeps its dns counts', async () => {
  const runtime = new Runtime(parseConfig(CONFIG, 'test.yaml'), { serve: false });
  await runtime.start();
  const telemetry = new Telemetry(runtime);
  try {
    const figures = new ClusterFigures(runtime);
    figures.attach(telemetry);
    const dns = (noerror: number, truncated: number) => [
      {
        listener: 'names',
        answered: [['A NOERROR', noerror] as [string, number]],
        dropped: [['rate-limited', 1] as [string, number]],
        truncated,
      },
    ];
    figures.report(1, { ...stats(0, 0), idle: [['web', 'a', 2]], dns: dns(5, 1) });
    figures.report(2, {
      ...stats(0, 0),
      idle: [
        ['web', 'a', 1],
        ['web', 'b', 4],
      ],
      dns: dns(7, 0),
    });
    figures.merge();
    const a = runtime.pools.get('web')!.find('a')!;
    assert.equal(telemetry.idleOf('web', a), 3);
    let text = await telemetry.registry.metrics();
    assert.match(text, /^fulcrum_server_idle_connections\{pool="web",server="b"\} 4$/m);
    assert.match(text, /^fulcrum_dns_queries_total\{listener="names",type="A",rcode="NOERROR"\} 12$/m);
    assert.match(text, /^fulcrum_dns_dropped_total\{listener="names",reason="rate-limited"\} 2$/m);
    assert.match(text, /^fulcrum_dns_truncated_total\{listener="names"\} 1$/m);

    figures.retire(1);
    figures.report(3, { ...stats(0, 0), dns: dns(1, 0) });
    figures.merge();
    assert.equal(telemetry.idleOf('web', a), 1, 'worker 1’s idle connections went with it');
    assert.equal(telemetry.dnsQueriesOf('names'), 13);
    text = await telemetry.registry.metrics();
    assert.match(text, /^fulcrum_dns_dropped_total\{listener="names",reason="rate-limited"\} 3$/m);
  } finally {
    telemetry.close();
    await runtime.shutdown(0);
  }
});

test('protection refusals of a worker gone are kept: its last report, or its fresher protection answer', async () => {
  const runtime = new Runtime(parseConfig(CONFIG, 'test.yaml'), { serve: false });
  await runtime.start();
  try {
    const figures = new ClusterFigures(runtime);
    figures.report(1, {
      ...stats(0, 0),
      refused: [
        ['web', 'rate', 5],
        ['web', 'blocked', 2],
      ],
    });
    figures.report(2, { ...stats(0, 0), refused: [['web', 'rate', 3]] });
    assert.deepEqual(figures.retiredRefusals(), [], 'live workers’ refusals are not retired');

    figures.retire(1);
    assert.deepEqual(figures.retiredRefusals(), [
      ['web', 'rate', 5],
      ['web', 'blocked', 2],
    ]);
    // Worker 2 answered `protection?` with more than its last heartbeat said, then died.
    figures.refusals(2, [
      ['web', 'rate', 7],
      ['web', 'deny', 1],
    ]);
    assert.equal(figures.requestsOf(2), 0, 'its request figures are left as they were');
    figures.retire(2);
    figures.retire(2);
    figures.retire(4);
    assert.deepEqual(figures.retiredRefusals(), [
      ['web', 'rate', 12],
      ['web', 'blocked', 2],
      ['web', 'deny', 1],
    ]);
  } finally {
    await runtime.shutdown(0);
  }
});
