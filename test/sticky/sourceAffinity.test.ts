import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStickTable } from '../../src/sticky/memoryStickTable.js';
import { SourceAffinity } from '../../src/sticky/sourceAffinity.js';
import { testPool } from './fixtures.js';

function source() {
  const pool = testPool(['a', 'b', 'c']);
  const table = new MemoryStickTable({ ttl: undefined, idle: 60_000, maxEntries: 100 });
  return { pool, table, aff: new SourceAffinity(pool, table) };
}

test('source: the first server a client IP gets is kept; two first requests do not flip it', () => {
  const { pool, aff } = source();
  const [a, b] = [pool.find('a')!, pool.find('b')!];
  assert.equal(aff.pinned('10.1.1.1', null), undefined);
  assert.equal(aff.onResponse('10.1.1.1', a, undefined, [], false), '');
  aff.onResponse('10.1.1.1', b, undefined, [], false); // a concurrent first request went to b
  assert.equal(aff.pinned('10.1.1.1', 'cookie=ignored'), a);
  assert.equal(aff.pinned('10.1.1.2', null), undefined);
});

test('source: moved away from a server that cannot take it, and stays moved', () => {
  const { pool, aff } = source();
  const [a, b] = [pool.find('a')!, pool.find('b')!];
  aff.onResponse('10.1.1.1', a, undefined, [], false);
  pool.setState(a, 'draining', 'test');
  assert.equal(aff.pinned('10.1.1.1', null), a);
  aff.onResponse('10.1.1.1', b, a, [], false);
  pool.setState(a, 'up', 'test');
  assert.equal(aff.pinned('10.1.1.1', null), b);
});

test('source at L4: onConnection records, moves only off an unusable server', () => {
  const { pool, aff } = source();
  const [a, b, c] = [pool.find('a')!, pool.find('b')!, pool.find('c')!];
  aff.onConnection('10.2.2.2', a);
  aff.onConnection('10.2.2.2', b); // a race of two first connections: the entry stays
  assert.equal(aff.pinned('10.2.2.2', null), a);
  pool.setState(a, 'down', 'test');
  aff.onConnection('10.2.2.2', c);
  assert.equal(aff.pinned('10.2.2.2', null), c);
  pool.setServers(pool.servers.filter((s) => s !== c));
  assert.equal(aff.pinned('10.2.2.2', null), undefined, 'its server removed: a stale entry');
});
