/**
 * Several balancers, one set of affinities: two Runtimes in this process (two balancer instances
 * in all but the process) sharing one redis-server, or for insert cookies, one secret.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RunningBackend } from '../../src/demo/backend.js';
import { serverList, startBackends, startBalancer, type TestBalancer } from '../helpers/balancer.js';
import { type RedisServer, startRedis } from '../helpers/redisServer.js';
import { Browser, installAffinity, sleep, tally, until } from '../sticky/browser.js';

let redis: RedisServer;
let backends: RunningBackend[];

before(async () => {
  redis = await startRedis();
  backends = await startBackends(3);
});

after(async () => {
  await Promise.all(backends.map((b) => b.close()));
  await redis.stop();
});

function yaml(sticky: string, algorithm = 'round-robin') {
  return `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: ${algorithm}
    servers:
${serverList(backends)}
    sticky: ${sticky}
`;
}

/** Two balancers from the same YAML, their affinities installed and their store reachable. */
async function pair(sticky: string, algorithm?: string): Promise<[TestBalancer, TestBalancer]> {
  const one = await startBalancer(yaml(sticky, algorithm));
  const two = await startBalancer(yaml(sticky, algorithm));
  for (const lb of [one, two]) {
    const { affinity } = installAffinity(lb, 'web');
    await until('the sticky store', () => affinity.stats().storeUp);
  }
  return [one, two];
}

async function via(lb: TestBalancer, address: string): Promise<string> {
  const b = new Browser(lb.port, address);
  try {
    const r = await b.get();
    assert.equal(r.status, 200);
    return b.servedBy[0]!;
  } finally {
    b.close();
  }
}

const addresses = (third: number, n = 30) => Array.from({ length: n }, (_, i) => `127.0.${third}.${i + 1}`);

test('source affinity in Redis: a client pinned by one balancer goes to the same server through the other', async () => {
  const [one, two] = await pair(`{ type: source, store: "${redis.url}", idle: 5m }`);
  try {
    const clients = addresses(10);
    const pinned = new Map<string, string>();
    for (const a of clients) pinned.set(a, await via(one, a));
    assert.deepEqual(Object.values(tally([...pinned.values()])), [10, 10, 10]);
    // Through the other balancer, in reverse order: its own round robin would place them elsewhere.
    for (const a of [...clients].reverse()) assert.equal(await via(two, a), pinned.get(a), a);
    for (const a of clients) assert.equal(await via(one, a), pinned.get(a), a);
  } finally {
    await Promise.all([one.stop(), two.stop()]);
  }
});

test('learn mode in Redis: a session started through one balancer goes on through the other', async () => {
  const [one, two] = await pair(`{ type: cookie, mode: learn, cookie: fulcrum.sid, store: "${redis.url}" }`);
  const browsers = Array.from({ length: 12 }, () => new Browser(one.port));
  try {
    for (const b of browsers) {
      for (let i = 1; i <= 3; i++) assert.equal(JSON.parse((await b.get('/session')).body).count, i);
    }
    for (const b of browsers) b.port = two.port;
    for (const b of browsers) {
      for (let i = 4; i <= 6; i++) assert.equal(JSON.parse((await b.get('/session')).body).count, i);
      assert.equal(b.servers.length, 1);
    }
  } finally {
    for (const b of browsers) b.close();
    await Promise.all([one.stop(), two.stop()]);
  }
});

test('insert cookies need no shared store: the same secret, the same server, on any balancer', async () => {
  const [one, two] = await pair('{ type: cookie, secret: shared-secret-0123456789 }');
  const browsers = Array.from({ length: 12 }, () => new Browser(one.port));
  try {
    for (const b of browsers) await b.get();
    for (const b of browsers) b.port = two.port;
    for (const b of browsers) for (let i = 0; i < 3; i++) await b.get();
    for (const b of browsers) {
      assert.equal(b.servers.length, 1);
      assert.equal(b.setCookies.get('fulcrum_srv'), 1);
    }
  } finally {
    for (const b of browsers) b.close();
    await Promise.all([one.stop(), two.stop()]);
  }
});

test('Redis killed mid-test: no request fails, clients stay put; sharing resumes after the restart', async () => {
  const [one, two] = await pair(`{ type: source, store: "${redis.url}", idle: 5m }`);
  const known = addresses(20, 12);
  const pinned = new Map<string, string>();
  for (const a of known) pinned.set(a, await via(one, a));
  await sleep(100);
  let failed = 0;
  let moved = 0;
  let requests = 0;
  let running = true;
  // Steady traffic through both balancers from the known clients, all along.
  const traffic = (async () => {
    let i = 0;
    while (running) {
      const a = known[i % known.length]!;
      const lb = i % 2 === 0 ? one : two;
      i++;
      requests++;
      try {
        if ((await via(lb, a)) !== pinned.get(a)) moved++;
      } catch {
        failed++;
      }
    }
  })();
  try {
    await sleep(300);
    await redis.stop('SIGKILL');
    await until('the outage noticed', () => !installAffinity(one, 'web').affinity.stats().storeUp);
    // During the outage: known clients keep their server, new clients are served.
    const during = addresses(21, 9);
    for (const a of during) await via(one, a);
    for (const a of during) await via(two, a);
    await sleep(500);
    await redis.restart();
    for (const lb of [one, two])
      await until('reconnection', () => installAffinity(lb, 'web').affinity.stats().storeUp);
    await sleep(300);
    // Sharing resumes: new clients pinned through one are routed the same through the other.
    const fresh = addresses(22);
    const placed = new Map<string, string>();
    for (const a of fresh) placed.set(a, await via(one, a));
    for (const a of [...fresh].reverse()) assert.equal(await via(two, a), placed.get(a), a);
  } finally {
    running = false;
    await traffic;
    await Promise.all([one.stop(), two.stop()]);
  }
  assert.equal(failed, 0, `${failed} of ${requests} requests failed`);
  assert.equal(moved, 0, `${moved} of ${requests} requests went to another server`);
  assert.ok(requests > 50, `${requests} requests`);
  for (const lb of [one, two]) {
    const lines = lb.log.lines.join('');
    assert.equal(lines.match(/sticky store .* unreachable/g)?.length, 1, lines);
    assert.equal(lines.match(/sticky store .* reachable again/g)?.length, 1, lines);
  }
});
