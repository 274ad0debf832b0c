import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';

test('a route with its own rateLimit: its requests are limited by it, the others by the listener', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
      rateLimit: { requests: 100, per: 10s }
    routes:
      - match: { pathPrefix: /login }
        pool: p
        rateLimit: { requests: 2, per: 10s }
      - match: { pathPrefix: /free }
        pool: p
pools:
  - name: p
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`);
  try {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await request(lb.port, { path: '/login' })).status);
    assert.deepEqual(statuses, [200, 200, 429]);
    const r = await request(lb.port, { path: '/login' });
    assert.equal(r.headers['ratelimit-policy'], '"route-0";q=2;w=10');
    // The other paths count against the listener's limit, the login attempts did not use it up.
    for (let i = 0; i < 10; i++) {
      assert.equal((await request(lb.port, { path: '/' })).status, 200);
      assert.equal((await request(lb.port, { path: '/free' })).status, 200);
    }
  } finally {
    await lb.stop();
    await backend!.close();
  }
});

test('a route rateLimit without listener protection still limits; tcp routes refuse it', async () => {
  const [backend] = await startBackends(1);
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    routes:
      - match: { method: POST }
        pool: p
        rateLimit: { requests: 1, per: 10s }
pools:
  - name: p
    servers:
${serverList([{ id: 'a', port: backend!.port }])}
`);
  try {
    assert.equal((await request(lb.port, { method: 'POST', body: 'x' })).status, 200);
    assert.equal((await request(lb.port, { method: 'POST', body: 'x' })).status, 429);
    assert.equal((await request(lb.port)).status, 200);
  } finally {
    await lb.stop();
    await backend!.close();
  }
  assert.throws(
    () =>
      parseConfig(
        `
listeners:
  - name: t
    protocol: tcp
    listen: "127.0.0.1:0"
    pool: p
    routes:
      - match: { sni: a.example }
        pool: p
        rateLimit: { requests: 1, per: 1s }
pools:
  - name: p
    servers: [ { address: "127.0.0.1:1" } ]
`,
        'c.yaml',
      ),
    /listeners\[0\]\.routes\[0\]\.rateLimit.*only allowed when protocol is http/s,
  );
});
