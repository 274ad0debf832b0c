import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemoryStore } from '../../src/session/index.js';
import { storeContract } from './storeContract.js';

storeContract('memory', () => new MemoryStore(), { largeBytes: 4 * 1024 * 1024 });

test('memory: bounded, dropping the least recently used session first', async () => {
  const store = new MemoryStore({ maxEntries: 3 });
  await store.set('a', { n: 'a' }, 60);
  await store.set('b', { n: 'b' }, 60);
  await store.set('c', { n: 'c' }, 60);
  await store.get('a'); // a is now more recent than b
  await store.set('d', { n: 'd' }, 60);
  assert.equal(store.size, 3);
  assert.equal(await store.get('b'), null, 'b was the least recently used');
  assert.deepEqual(await store.get('a'), { n: 'a' });
  assert.deepEqual(await store.get('d'), { n: 'd' });
  await store.close();
});

test('memory: the sweep removes expired sessions', async () => {
  const store = new MemoryStore();
  await store.set('old', { n: 1 }, 1);
  await store.set('new', { n: 2 }, 60);
  assert.equal(store.sweep(Date.now() + 2000), 1);
  assert.equal(store.size, 1);
  await store.close();
});

test('memory: reads are copies, so an unsaved change changes nothing', async () => {
  const store = new MemoryStore();
  await store.set('s', { list: [1] }, 60);
  const first = (await store.get('s')) as { list: number[] };
  first.list.push(2);
  assert.deepEqual(await store.get('s'), { list: [1] });
  await store.close();
});

test('memory: data a custom serializer cannot read is no session, and logged', async () => {
  const lines: string[] = [];
  let broken = false;
  const store = new MemoryStore({
    logger: { warn: (m: string) => lines.push(m) },
    serializer: {
      stringify: JSON.stringify,
      parse: (text: string) => {
        if (broken) throw new Error('bad bytes');
        return JSON.parse(text);
      },
    },
  });
  await store.set('s', { n: 1 }, 60);
  broken = true;
  assert.equal(await store.get('s'), null);
  assert.match(lines.join('\n'), /corrupt data for session s ignored \(bad bytes\)/);
  await store.close();
});

test('memory: emits connect and is always available', async () => {
  const store = new MemoryStore();
  await store.ready(1000);
  assert.equal(store.available, true);
  await store.close();
});
