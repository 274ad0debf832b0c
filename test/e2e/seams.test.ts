import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Affinity } from '../../src/core/affinity.js';
import type { ExchangeRecord } from '../../src/core/observer.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';

test('the traffic observer gets one record per exchange, with status, server, bytes and retries', async () => {
  const backends = await startBackends(2);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers:
${serverList(backends)}
`);
  const records: ExchangeRecord[] = [];
  lb.runtime.setObserver({ onExchange: (r) => records.push(r) });
  try {
    const ok = await request(lb.port, { path: '/whoami?x=1' });
    lb.runtime.pools.get('p')!.servers.forEach((s) => {
      s.state = 'maintenance';
    });
    lb.runtime.pools.get('p')!.invalidate();
    await request(lb.port, { path: '/none' });
    assert.equal(records.length, 2);
    const [first, second] = records as [ExchangeRecord, ExchangeRecord];
    assert.equal(first.status, 200);
    assert.equal(first.listener, 'web');
    assert.equal(first.pool, 'p');
    assert.equal(first.server, 'a');
    assert.equal(first.method, 'GET');
    assert.equal(first.path, '/whoami');
    assert.equal(first.retries, 0);
    assert.ok(first.bytesOut > ok.body.length, `bytesOut ${first.bytesOut} counts the head too`);
    assert.equal(second.status, 503);
    assert.equal(second.server, null);
  } finally {
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('an affinity pins requests to its server, adds its header lines, and counts reassignments', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers:
${serverList(backends)}
`);
  const pool = lb.runtime.pools.get('p')!;
  const seen: Array<[string, string | undefined]> = [];
  const affinity: Affinity = {
    pinned: (_ip, cookies) => (cookies?.includes('pin=c') ? pool.find('c') : undefined),
    onResponse: (_ip, server, pinned) => {
      seen.push([server.id, pinned?.id]);
      return `x-pinned: ${server.id}\r\n`;
    },
  };
  pool.affinity = affinity;
  try {
    for (let i = 0; i < 3; i++) {
      const r = await request(lb.port, { headers: { cookie: 'a=1; pin=c' } });
      assert.equal(r.headers['x-served-by'], 'c');
      assert.equal(r.headers['x-pinned'], 'c');
    }
    pool.setState(pool.find('c')!, 'down', 'test');
    const moved = await request(lb.port, { headers: { cookie: 'pin=c' } });
    assert.notEqual(moved.headers['x-served-by'], 'c');
    assert.equal(pool.reassigned, 1);
    assert.deepEqual(seen.at(-1), [moved.headers['x-served-by'], 'c']);
    // Async lookups (a shared store) work the same way.
    pool.setState(pool.find('c')!, 'up', 'test');
    affinity.pinned = async () => pool.find('b');
    assert.equal((await request(lb.port)).headers['x-served-by'], 'b');
  } finally {
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});
