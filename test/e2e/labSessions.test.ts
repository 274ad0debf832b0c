/**
 * `fulcrum lab --quick` for real, the session scenarios: memory sessions without stickiness are
 * lost, sticky ones are lost exactly for the dead server's clients, Redis and Memcached stores lose
 * none; a Redis restart keeps them (append-only file), a Memcached restart loses them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LAB_STORES_MISSING, labFigures, runQuickLab } from '../helpers/lab.js';

test('fulcrum lab --quick: sessions and store restarts show the expected directions', {
  skip: LAB_STORES_MISSING,
  timeout: 115_000,
}, async (t) => {
  const { report } = await runQuickLab(t, ['sessions', 'store-restart']);
  const s = labFigures(report, 'sessions');
  assert.ok(s['memory.lostRequests']! > 0.3, 'memory sessions without stickiness are lost');
  assert.equal(s['sticky.lostRequests'], 0, 'sticky sessions are kept while servers live');
  assert.equal(
    s['sticky.lostOnKill'],
    s['sticky.pinnedToKilled'],
    "a dead server takes its sticky clients' sessions",
  );
  assert.equal(s['redis.lostOnKill'], 0, 'Redis loses none');
  assert.equal(s['redis.lostRequests'], 0, 'Redis loses none');
  assert.equal(s['memcached.lostOnKill'], 0, 'Memcached loses none while it runs');

  const st = labFigures(report, 'store-restart');
  assert.equal(st['redis.keptAfterRestart'], 1, 'Redis with its append-only file keeps the sessions');
  assert.equal(st['memcached.keptAfterRestart'], 0, 'a Memcached restart loses them');
});
