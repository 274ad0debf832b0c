import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StickyConfig } from '../../src/config/types.js';
import { createAffinity, stickyStats, tableLimits } from '../../src/sticky/index.js';
import { quietLog, testPool } from './fixtures.js';

const base: StickyConfig = {
  type: 'cookie',
  mode: 'insert',
  cookie: 'fulcrum_srv',
  store: 'memory',
  maxEntries: 1000,
};

test('createAffinity builds the configured kind', async () => {
  const log = quietLog();
  const pool = testPool(['a', 'b']);
  const insert = createAffinity(pool, { ...base, secret: '0123456789abcdef' }, log);
  const learn = createAffinity(pool, { ...base, mode: 'learn', cookie: 'JSESSIONID' }, log);
  const source = createAffinity(pool, { ...base, type: 'source' }, log);
  assert.deepEqual([insert.kind, learn.kind, source.kind], ['insert', 'learn', 'source']);
  assert.equal(insert.table, null);
  assert.equal(typeof source.onConnection, 'function');
  assert.equal(log.lines.length, 0, 'a secret: no warning');
  await Promise.all([insert.stop(), learn.stop(), source.stop()]);
});

test('insert cookies without a secret work and say once why a secret is better', () => {
  const log = quietLog();
  const pool = testPool(['a']);
  createAffinity(pool, base, log);
  createAffinity(pool, base, log);
  assert.equal(log.lines.length, 1);
  assert.match(log.lines[0]!, /WARN .*pool web: sticky\.secret is not set/);
});

test('stickyStats reads the pool current affinity', async () => {
  const pool = testPool(['a', 'b']);
  assert.deepEqual(stickyStats(pool), { entries: 0, reassigned: 0, storeUp: true });
  const source = createAffinity(pool, { ...base, type: 'source' }, quietLog());
  pool.affinity = source;
  source.onResponse('10.0.0.1', pool.find('a')!, undefined, [], false);
  source.onResponse('10.0.0.2', pool.find('b')!, undefined, [], false);
  pool.reassigned = 3;
  assert.deepEqual(stickyStats(pool), { entries: 2, reassigned: 3, storeUp: true });
  await source.stop();
});

test('a new affinity for the same store takes over the stick table: a reload moves nobody', async () => {
  const pool = testPool(['a', 'b']);
  const log = quietLog();
  const first = createAffinity(pool, { ...base, type: 'source' }, log);
  first.onResponse('10.0.0.1', pool.find('b')!, undefined, [], false);
  // As the Runtime does on reload: create the next, then stop the previous.
  const second = createAffinity(pool, { ...base, type: 'source', idle: 120_000, maxEntries: 10 }, log);
  await first.stop();
  assert.equal(second.table, first.table);
  assert.equal(second.pinned('10.0.0.1', null), pool.find('b'));
  // Another store: a new table.
  const third = createAffinity(pool, { ...base, type: 'cookie', mode: 'learn', cookie: 'sid' }, log);
  await second.stop();
  assert.notEqual(third.table, second.table);
  assert.equal(second.table!.size, 0, 'the old one was closed');
  await third.stop();
  await third.stop();
});

test('tableLimits: a table without ttl nor idle forgets clients after 30 idle minutes', () => {
  assert.deepEqual(tableLimits(base), { ttl: undefined, idle: 1_800_000, maxEntries: 1000 });
  assert.deepEqual(tableLimits({ ...base, ttl: 5000 }), { ttl: 5000, idle: undefined, maxEntries: 1000 });
  assert.deepEqual(tableLimits({ ...base, idle: 7000 }), { ttl: undefined, idle: 7000, maxEntries: 1000 });
});

test('insert cookies open no store: a Redis store is unused, and said so once', async () => {
  const log = quietLog();
  const pool = testPool(['a']);
  const config = { ...base, secret: '0123456789abcdef', store: 'redis://127.0.0.1:1' };
  const one = createAffinity(pool, config, log);
  const two = createAffinity(pool, config, log);
  assert.equal(one.table, null);
  assert.equal(one.stats().storeUp, true);
  assert.equal(log.lines.length, 1);
  assert.match(log.lines[0]!, /INFO .*sticky\.store is not used by insert cookies/);
  await Promise.all([one.stop(), two.stop()]);
});
