import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createClient } from 'redis';
import { REVALIDATE_MS, RedisStickTable } from '../../src/sticky/redisStickTable.js';
import { type RedisServer, startRedis } from '../helpers/redisServer.js';
import { quietLog } from './fixtures.js';

let redis: RedisServer;
let direct: ReturnType<typeof createClient>;
const open: RedisStickTable[] = [];

before(async () => {
  redis = await startRedis();
  direct = createClient({ url: redis.url });
  direct.on('error', () => {});
  await direct.connect();
});

after(async () => {
  await Promise.all(open.map((t) => t.close()));
  direct.destroy();
  await redis.stop();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function table(
  pool = 'web',
  limits = { ttl: undefined as number | undefined, idle: 60_000, maxEntries: 1000 },
) {
  const log = quietLog();
  const t = new RedisStickTable({ url: redis.url, pool, limits, log });
  open.push(t);
  await until('the table to connect', () => t.up);
  return { t, log };
}

test('two balancers share entries: prefixed keys, a PX TTL, the first decision wins', async () => {
  const { t: a } = await table('shared');
  const { t: b } = await table('shared');
  assert.equal(a.assign('10.0.0.1', 'srv-a', null), 'srv-a');
  await until('the write', async () => (await direct.get('fulcrum:stick:shared:10.0.0.1')) !== null);
  const value = await direct.get('fulcrum:stick:shared:10.0.0.1');
  assert.match(String(value), /^\d+\|srv-a$/);
  const pttl = await direct.pTTL('fulcrum:stick:shared:10.0.0.1');
  assert.ok(pttl > 50_000 && pttl <= 60_000, `PTTL ${pttl}`);

  const found = b.lookup('10.0.0.1');
  assert.ok(found instanceof Promise, 'not held by b: Redis is asked');
  assert.equal(await found, 'srv-a');
  assert.equal(b.lookup('10.0.0.1'), 'srv-a', 'held now: answered at once');

  // b decided for a new client before seeing a's decision: a's wins, and b adopts it.
  a.assign('10.0.0.2', 'srv-a', null);
  await until('a write', async () => (await direct.get('fulcrum:stick:shared:10.0.0.2')) !== null);
  assert.equal(b.assign('10.0.0.2', 'srv-b', null), 'srv-b');
  await until('b adopting a decision', () => b.peek('10.0.0.2') === 'srv-a');
});

test('a client moved by one balancer is found moved by the other', async () => {
  const { t: a } = await table('moved');
  const { t: b } = await table('moved');
  a.assign('k', 'srv-a', null);
  await until('a write', async () => (await direct.get('fulcrum:stick:moved:k')) !== null);
  assert.equal(await b.lookup('k'), 'srv-a');
  // srv-a goes down; b moves the client to srv-c.
  b.assign('k', 'srv-c', 'srv-a');
  await until('b write', async () => String(await direct.get('fulcrum:stick:moved:k')).endsWith('|srv-c'));
  // a still holds srv-a, which it cannot use: it asks Redis instead of choosing on its own.
  const found = a.lookup('k', (id) => id !== 'srv-a');
  assert.ok(found instanceof Promise);
  assert.equal(await found, 'srv-c');
  // a moving it too, from srv-a, does not override b's move.
  a.assign('k', 'srv-b', 'srv-a');
  assert.equal(a.peek('k'), 'srv-c');
});

test('held entries are confirmed in the background, which extends their idle TTL', async () => {
  const { t } = await table('touch', { ttl: undefined, idle: 3_000, maxEntries: 100 });
  t.assign('k', 's1', null);
  await until('the write', async () => (await direct.get('fulcrum:stick:touch:k')) !== null);
  await sleep(REVALIDATE_MS + 600);
  assert.ok((await direct.pTTL('fulcrum:stick:touch:k')) < 2_500);
  assert.equal(t.lookup('k'), 's1', 'answered at once, confirmed in the background');
  await until('the TTL extended', async () => (await direct.pTTL('fulcrum:stick:touch:k')) > 2_800);
  // Removed from Redis behind its back (a flush): the balancer writes what it holds back.
  await direct.del('fulcrum:stick:touch:k');
  await sleep(REVALIDATE_MS + 50);
  assert.equal(t.lookup('k'), 's1');
  await until('written back', async () => (await direct.get('fulcrum:stick:touch:k')) !== null);
});

test('Redis down: answers from memory at once, logs once; back: logs once, shares again', async () => {
  const { t: a, log } = await table('outage');
  const { t: b } = await table('outage');
  a.assign('held', 'srv-a', null);
  await until('the write', async () => (await direct.get('fulcrum:stick:outage:held')) !== null);
  await redis.stop();
  await until('the outage noticed', () => !a.up && !b.up);
  assert.equal(a.lookup('held'), 'srv-a', 'held here: still answered');
  assert.equal(b.lookup('never-seen'), undefined, 'unknown: the algorithm decides, at once');
  assert.equal(a.assign('during', 'srv-b', null), 'srv-b', 'decided during the outage, kept here');
  assert.equal(a.lookup('during'), 'srv-b');
  await sleep(1500);
  const downs = log.lines.filter((l) => l.includes('unreachable'));
  assert.equal(downs.length, 1, log.lines.join(''));
  assert.match(downs[0]!, /WARN .*pool outage: sticky store redis:\/\/127\.0\.0\.1:\d+ unreachable/);

  await redis.restart();
  direct.destroy();
  direct = createClient({ url: redis.url });
  direct.on('error', () => {});
  await direct.connect();
  await until('reconnection', () => a.up && b.up);
  assert.equal(log.lines.filter((l) => l.includes('reachable again')).length, 1);
  // Sharing resumes: a new decision of a is seen by b.
  a.assign('after', 'srv-c', null);
  await until('the write', async () => (await direct.get('fulcrum:stick:outage:after')) !== null);
  assert.equal(await b.lookup('after'), 'srv-c');
  // What a decided while Redis was away is written there on its next use.
  await sleep(REVALIDATE_MS + 50);
  a.lookup('during');
  await until('the outage decision written', async () =>
    String(await direct.get('fulcrum:stick:outage:during')).endsWith('|srv-b'),
  );
  assert.equal(await b.lookup('during'), 'srv-b');
});

test('a hung Redis costs a request at most a bounded wait, then is left alone for a while', async () => {
  const { t, log } = await table('hung');
  redis.pause();
  try {
    let started = Date.now();
    const found = t.lookup('x');
    assert.ok(found instanceof Promise);
    assert.equal(await found, undefined);
    assert.ok(Date.now() - started < 1000, `waited ${Date.now() - started}ms`);
    started = Date.now();
    assert.equal(t.lookup('y'), undefined, 'backing off: not asked');
    assert.equal(log.lines.filter((l) => l.includes('unreachable')).length, 1);
  } finally {
    redis.resume();
  }
  await sleep(1100);
  assert.equal(await t.lookup('z'), undefined);
  await until('back', () => t.up);
  assert.equal(log.lines.filter((l) => l.includes('reachable again')).length, 1);
});
