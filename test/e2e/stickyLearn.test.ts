import assert from 'node:assert/strict';
import { test } from 'node:test';
import { serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { Browser, installAffinity, until } from '../sticky/browser.js';

function yaml(servers: string, sticky: string, health = '') {
  return `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: round-robin
    servers:
${servers}
${health}
${sticky}
`;
}

const count = (body: string) => (JSON.parse(body) as { count: number }).count;

test('learn mode follows the sample backend session cookie: every session counts on one server', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(
    yaml(serverList(backends), '    sticky: { type: cookie, mode: learn, cookie: fulcrum.sid }'),
  );
  const { affinity } = installAffinity(lb, 'web');
  const browsers = Array.from({ length: 30 }, () => new Browser(lb.port));
  try {
    await Promise.all(
      browsers.map(async (b) => {
        for (let i = 1; i <= 10; i++) {
          const r = await b.get('/session');
          assert.equal(r.status, 200);
          assert.equal(count(r.body), i, 'the session lives on: the count goes on');
        }
      }),
    );
    for (const b of browsers) {
      assert.equal(b.servers.length, 1);
      assert.equal(b.setCookies.get('fulcrum_srv'), undefined, 'learn mode sets no cookie of its own');
      assert.ok(b.cookies.has('fulcrum.sid'));
    }
    assert.equal(affinity.stats().entries, 30);
  } finally {
    for (const b of browsers) b.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('without stickiness the same sessions break (the problem learn mode solves)', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(yaml(serverList(backends), ''));
  const browser = new Browser(lb.port);
  try {
    const counts: number[] = [];
    for (let i = 0; i < 6; i++) counts.push(count((await browser.get('/session')).body));
    assert.ok(
      counts.some((c, i) => c !== i + 1),
      `counts ${counts}`,
    );
  } finally {
    browser.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('learn mode: a session whose server dies starts over on one new server, and stays there', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(
    yaml(
      serverList(backends),
      '    sticky: { type: cookie, mode: learn, cookie: fulcrum.sid }',
      '    healthCheck: { type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }',
    ),
  );
  const { pool } = installAffinity(lb, 'web');
  const browsers = Array.from({ length: 9 }, () => new Browser(lb.port));
  try {
    for (const b of browsers) for (let i = 0; i < 3; i++) await b.get('/session');
    const onA = browsers.filter((b) => b.servers[0] === 'a');
    assert.equal(onA.length, 3);
    await backends[0]!.close();
    await until('a marked down', () => pool.find('a')!.state === 'down');
    for (const b of browsers) {
      const counts: number[] = [];
      for (let i = 0; i < 4; i++) counts.push(count((await b.get('/session')).body));
      // Memory sessions die with their server: that is the trade-off of sticky sessions.
      assert.deepEqual(counts, onA.includes(b) ? [1, 2, 3, 4] : [4, 5, 6, 7]);
      assert.equal(b.servers.length, onA.includes(b) ? 2 : 1);
    }
    assert.equal(pool.reassigned, 3);
  } finally {
    for (const b of browsers) b.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});
