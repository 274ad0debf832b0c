import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStickTable } from '../../src/sticky/memoryStickTable.js';

const limits = (o: Partial<{ ttl: number; idle: number; maxEntries: number }> = {}) => ({
  ttl: o.ttl,
  idle: o.idle,
  maxEntries: o.maxEntries ?? 1000,
});

test('assign follows its expectation: overwrite, only if absent, only if still from a server', () => {
  const t = new MemoryStickTable(limits({ idle: 60_000 }));
  assert.equal(t.assign('k', 'a', null), 'a');
  assert.equal(t.assign('k', 'b', null), 'a', 'a new client is kept by the first decision');
  assert.equal(t.assign('k', 'b', 'c'), 'a', 'not moved: it is no longer on c');
  assert.equal(t.assign('k', 'b', 'a'), 'b', 'moved away from a');
  assert.equal(t.assign('k', 'c'), 'c', 'overwritten');
  assert.equal(t.lookup('k'), 'c');
  assert.equal(t.peek('k'), 'c');
  t.remove('k');
  assert.equal(t.lookup('k'), undefined);
  assert.equal(t.size, 0);
});

test('entries expire by idle time from last use, and by ttl from creation', (tc) => {
  tc.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const idle = new MemoryStickTable(limits({ idle: 10_000 }));
  idle.assign('k', 'a');
  for (let i = 0; i < 5; i++) {
    tc.mock.timers.tick(9_000);
    assert.equal(idle.lookup('k'), 'a', 'used within idle: kept');
  }
  tc.mock.timers.tick(9_000);
  assert.equal(idle.peek('k'), 'a', 'peek does not use');
  tc.mock.timers.tick(1_000);
  assert.equal(idle.lookup('k'), undefined, 'idle 10 s');

  const ttl = new MemoryStickTable(limits({ ttl: 20_000, idle: 10_000 }));
  ttl.assign('k', 'a');
  for (let i = 0; i < 2; i++) {
    tc.mock.timers.tick(9_000);
    assert.equal(ttl.lookup('k'), 'a');
  }
  tc.mock.timers.tick(2_000);
  assert.equal(ttl.lookup('k'), undefined, 'ttl 20 s, however active');
  assert.equal(ttl.assign('k', 'b', null), 'b', 'an expired entry is no entry');
});

test('bounded by maxEntries: the least recently used goes first', (tc) => {
  tc.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const t = new MemoryStickTable(limits({ idle: 3_600_000, maxEntries: 3 }));
  t.assign('a', 's1');
  t.assign('b', 's1');
  t.assign('c', 's1');
  tc.mock.timers.tick(2_000);
  assert.equal(t.lookup('a'), 's1', 'a used: now the most recent');
  t.assign('d', 's1');
  assert.equal(t.size, 3);
  assert.equal(t.peek('b'), undefined, 'b was the least recently used');
  assert.equal(t.peek('a'), 's1');
  t.configure(limits({ idle: 3_600_000, maxEntries: 1 }));
  assert.equal(t.size, 1);
  assert.equal(t.peek('d'), 's1');
});

test('expired entries at the front are swept as new ones come', (tc) => {
  tc.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const t = new MemoryStickTable(limits({ idle: 1_000 }));
  for (let i = 0; i < 8; i++) t.assign(`old${i}`, 's');
  tc.mock.timers.tick(5_000);
  t.assign('new1', 's');
  t.assign('new2', 's');
  assert.equal(t.size, 2);
});
