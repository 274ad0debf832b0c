import assert from 'node:assert/strict';
import { test } from 'node:test';
import { parseConfig } from '../../src/config/index.js';
import { startBackend } from '../../src/demo/backend.js';
import { serverToken } from '../../src/sticky/index.js';
import { keyring } from '../../src/sticky/serverToken.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { Browser, installAffinity, reinstallAffinity, tally, until } from '../sticky/browser.js';

const SECRET = 'e2e-sticky-secret-0123';

function yaml(servers: string, extra = '') {
  return `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: round-robin
    servers:
${servers}
    sticky: { type: cookie, secret: ${SECRET}${extra} }
`;
}

test('100 browsers, 20 requests each, 3 servers: one server per browser, spread by round robin, one cookie each', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(yaml(serverList(backends)));
  installAffinity(lb, 'web');
  const browsers = Array.from({ length: 100 }, () => new Browser(lb.port));
  try {
    await Promise.all(
      browsers.map(async (b) => {
        for (let i = 0; i < 20; i++) assert.equal((await b.get()).status, 200);
      }),
    );
    for (const b of browsers) {
      assert.equal(b.servedBy.length, 20);
      assert.equal(b.servers.length, 1, `one browser saw ${b.servers.join(', ')}`);
      assert.equal(b.setCookies.get('fulcrum_srv'), 1, 'the cookie is sent once, not on every response');
      assert.equal(b.cookies.get('fulcrum_srv'), serverToken(keyring(SECRET), 'web', b.servers[0]!));
    }
    // Round robin placed the first requests: 34/33/33.
    const perServer = Object.values(tally(browsers.map((b) => b.servers[0]!))).sort();
    assert.deepEqual(perServer, [33, 33, 34]);
    assert.equal(lb.runtime.pools.get('web')!.reassigned, 0);
  } finally {
    for (const b of browsers) b.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('a pinned server killed: its browsers move once, and stay on their new server when it is back', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(
    yaml(serverList(backends)).replace(
      '    sticky:',
      '    healthCheck: { type: http, path: /health, interval: 100ms, timeout: 100ms, rise: 1, fall: 1 }\n    sticky:',
    ),
  );
  const { pool } = installAffinity(lb, 'web');
  const browsers = Array.from({ length: 30 }, () => new Browser(lb.port));
  try {
    for (const b of browsers) await b.get();
    const onB = browsers.filter((b) => b.servers[0] === 'b');
    assert.equal(onB.length, 10);
    const bPort = backends[1]!.port;
    await backends[1]!.close();
    await until('b marked down', () => pool.find('b')!.state === 'down');
    for (let i = 0; i < 5; i++) for (const b of browsers) assert.equal((await b.get()).status, 200);
    assert.equal(pool.reassigned, 10, 'each of b’s browsers reassigned once');
    for (const b of browsers) {
      if (onB.includes(b)) {
        assert.equal(b.servers.length, 2);
        assert.notEqual(b.servers[1], 'b');
        assert.equal(b.setCookies.get('fulcrum_srv'), 2, 'one new cookie');
      } else {
        assert.equal(b.servers.length, 1, 'the others do not move');
      }
    }
    assert.deepEqual(
      Object.values(tally(onB.map((b) => b.servers[1]!))).sort(),
      [5, 5],
      'moved by round robin',
    );
    // b comes back: nobody moves again.
    backends[1] = await startBackend({ port: bPort, id: 'b' });
    await until('b up', () => pool.find('b')!.state === 'up');
    for (const b of browsers) await b.get();
    for (const b of onB) assert.equal(b.servers.length, 2);
    assert.equal(pool.reassigned, 10);
  } finally {
    for (const b of browsers) b.close();
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
});

test('forged and stale cookies are ignored, and never reach a server outside the pool', async () => {
  const backends = await startBackends(3);
  const [a, b, outside] = backends;
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: web
    routes: [{ match: { pathPrefix: /internal }, pool: internal }]
pools:
  - name: web
    servers:
${serverList([a!, b!])}
    sticky: { type: cookie, secret: ${SECRET} }
  - name: internal
    servers:
      - { address: "127.0.0.1:${outside!.port}", name: c }
`);
  installAffinity(lb, 'web');
  const ring = keyring(SECRET);
  try {
    const forged = [
      'garbage',
      '',
      'c',
      `127.0.0.1:${outside!.port}`,
      serverToken(ring, 'web', 'c'),
      serverToken(ring, 'internal', 'c'),
      serverToken(keyring('not-the-secret-000'), 'web', 'a'),
      `${serverToken(ring, 'web', 'a')}x`,
      'x'.repeat(3000),
    ];
    for (const value of forged) {
      const r = await request(lb.port, { path: '/whoami', headers: { cookie: `fulcrum_srv=${value}` } });
      assert.equal(r.status, 200, value);
      assert.notEqual(r.headers['x-served-by'], 'c', value);
      assert.match(String(r.headers['set-cookie']), /^fulcrum_srv=/, 'a new, valid cookie');
    }
    const good = `fulcrum_srv=${serverToken(ring, 'web', 'b')}`;
    for (let i = 0; i < 4; i++) {
      const r = await request(lb.port, { path: '/whoami', headers: { cookie: good } });
      assert.equal(r.headers['x-served-by'], 'b');
      assert.equal(r.headers['set-cookie'], undefined);
    }
  } finally {
    await lb.stop();
    await Promise.all(backends.map((s) => s.close()));
  }
});

test('adding and removing other servers moves no pinned browser (insert cookies)', async () => {
  const backends = await startBackends(4);
  const [a, b, c, d] = backends;
  const lb = await startBalancer(yaml(serverList([a!, b!, c!])));
  installAffinity(lb, 'web');
  const browsers = Array.from({ length: 30 }, () => new Browser(lb.port));
  try {
    for (const br of browsers) await br.get();
    // Reload: d added, c removed.
    await lb.runtime.apply(parseConfig(yaml(serverList([a!, b!, d!])), 'test.yaml'));
    await reinstallAffinity(lb, 'web');
    for (let i = 0; i < 3; i++) for (const br of browsers) assert.equal((await br.get()).status, 200);
    for (const br of browsers) {
      if (br.servers[0] === 'c') assert.equal(br.servers.length, 2, 'c’s browsers had to move');
      else assert.deepEqual(br.servers.length, 1, `a browser of ${br.servers[0]} moved: ${br.servers}`);
    }
  } finally {
    for (const br of browsers) br.close();
    await lb.stop();
    await Promise.all(backends.map((s) => s.close()));
  }
});

test('idle and ttl: the cookie carries its times, is refreshed while used, and expires unused', async () => {
  const backends = await startBackends(3);
  const lb = await startBalancer(yaml(serverList(backends), ', idle: 1200ms, ttl: 1h'));
  installAffinity(lb, 'web');
  const browser = new Browser(lb.port);
  try {
    const first = await browser.get();
    assert.match(
      String(first.headers['set-cookie']),
      /^fulcrum_srv=[\w-]{16}\.[0-9a-z]+\.[0-9a-z]+; Path=\/; HttpOnly; SameSite=Lax; Max-Age=3600$/,
    );
    const pinned = browser.servers[0];
    // Used every 300ms for 3 s (longer than idle): refreshed along the way, never moved.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 300));
      await browser.get();
    }
    assert.deepEqual(browser.servers, [pinned]);
    const refreshes = browser.setCookies.get('fulcrum_srv')! - 1;
    assert.ok(refreshes >= 2 && refreshes <= 6, `${refreshes} refreshes in 3 s with idle 1.2 s`);
    // Unused for longer than idle: the cookie is stale, and the algorithm chooses again.
    await new Promise((r) => setTimeout(r, 1300));
    const after = await browser.get();
    assert.match(String(after.headers['set-cookie']), /^fulcrum_srv=/);
  } finally {
    browser.close();
    await lb.stop();
    await Promise.all(backends.map((s) => s.close()));
  }
});
