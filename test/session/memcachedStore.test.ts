import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import memjs from 'memjs';
import { isStoreUnavailable, MemcachedStore } from '../../src/session/index.js';
import { startMemcached } from '../helpers/memcachedServer.js';
import { storeContract } from './storeContract.js';

const quiet = { warn: () => {} };
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const memcached = await startMemcached();
after(() => memcached.stop());

function raw(address: string) {
  return memjs.Client.create(address, { retries: 1, timeout: 1, logger: { log: () => {} } });
}

async function timed<T>(p: Promise<T>): Promise<{ ms: number; error?: unknown }> {
  const start = performance.now();
  try {
    await p;
    return { ms: performance.now() - start };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

storeContract('memcached', () => new MemcachedStore({ servers: memcached.address, logger: quiet }), {
  largeBytes: 512 * 1024,
});

test('memcached: touch is memcached touch, extending the item without rewriting it', async () => {
  const store = new MemcachedStore({ servers: memcached.address, logger: quiet });
  const client = raw(memcached.address);
  try {
    await store.set('t1', { written: 'by the store' }, 2);
    // Replace the bytes behind the store's back: a touch that rewrote would put them back.
    await client.set('sess:t1', '{"written":"out of band"}', { expires: 2 });
    assert.equal(await store.touch('t1', 60), true);
    await sleep(2600);
    assert.deepEqual(
      await store.get('t1'),
      { written: 'out of band' },
      'still there after the first TTL, untouched',
    );
  } finally {
    client.close();
    await store.close();
  }
});

test('memcached: a session over the item size limit fails to save, and the store stays up', async () => {
  const store = new MemcachedStore({ servers: memcached.address, logger: quiet });
  try {
    await assert.rejects(store.set('huge', { blob: 'x'.repeat(2 * 1024 * 1024) }, 60), (err: unknown) => {
      assert.ok(!isStoreUnavailable(err), 'too large is not unreachable');
      assert.match(String(err), /too large/i);
      return true;
    });
    assert.equal(store.available, true);
    await store.set('small', { ok: 1 }, 60);
    assert.deepEqual(await store.get('small'), { ok: 1 });
  } finally {
    await store.close();
  }
});

test('memcached: corrupt data is no session, and logged', async () => {
  const lines: string[] = [];
  const store = new MemcachedStore({
    servers: memcached.address,
    logger: { warn: (m: string) => lines.push(m) },
  });
  const client = raw(memcached.address);
  try {
    await client.set('sess:bad', '\u0000\u0001 not json', { expires: 60 });
    assert.equal(await store.get('bad'), null);
    assert.match(lines.join('\n'), /corrupt data for session bad ignored/);
  } finally {
    client.close();
    await store.close();
  }
});

test('memcached: unreachable fails fast, a probe notices the restart, the store serves again', async () => {
  const server = await startMemcached();
  const events: string[] = [];
  const store = new MemcachedStore({ servers: server.address, probeIntervalMs: 200, logger: quiet });
  store.on('connect', () => events.push('connect'));
  store.on('disconnect', () => events.push('disconnect'));
  try {
    await store.ready(3000);
    await store.set('m', { n: 1 }, 60);
    await server.stop('SIGKILL');
    const first = await timed(store.get('m'));
    assert.ok(isStoreUnavailable(first.error), String(first.error));
    for (let i = 0; i < 5; i++) {
      const { ms, error } = await timed(store.get('m'));
      assert.ok(isStoreUnavailable(error));
      assert.ok(ms < 50, `fails fast while down, took ${ms.toFixed(1)} ms`);
    }
    assert.equal(store.available, false);
    await server.restart();
    await once(store, 'connect');
    assert.equal(await store.get('m'), null, 'a restarted memcached is empty');
    await store.set('m', { n: 2 }, 60);
    assert.deepEqual(await store.get('m'), { n: 2 });
    assert.deepEqual(events, ['connect', 'disconnect', 'connect']);
  } finally {
    await store.close();
    await server.stop();
  }
});

test('memcached: several servers share the keys; one down leaves the others serving', async () => {
  const a = await startMemcached();
  const b = await startMemcached();
  const events: string[] = [];
  const store = new MemcachedStore({
    servers: `${a.address},${b.address}`,
    probeIntervalMs: 200,
    logger: quiet,
  });
  store.on('disconnect', () => events.push('disconnect'));
  const onA = raw(a.address);
  const onB = raw(b.address);
  try {
    await store.ready(3000);
    const ids = Array.from({ length: 60 }, (_, i) => `multi-${i}`);
    await Promise.all(ids.map((id, i) => store.set(id, { i }, 60)));
    const where = await Promise.all(
      ids.map(async (id) =>
        (await onA.get(`sess:${id}`)).value ? 'a' : (await onB.get(`sess:${id}`)).value ? 'b' : '?',
      ),
    );
    const inA = ids.filter((_, i) => where[i] === 'a');
    const inB = ids.filter((_, i) => where[i] === 'b');
    assert.equal(inA.length + inB.length, ids.length, 'every session is on exactly one server');
    assert.ok(inA.length > 10 && inB.length > 10, `spread ${inA.length}/${inB.length}`);

    await b.stop('SIGKILL');
    for (const id of inA) assert.deepEqual(await store.get(id), { i: ids.indexOf(id) });
    const results = await Promise.all(inB.map((id) => timed(store.get(id))));
    assert.ok(results.every((r) => isStoreUnavailable(r.error)));
    assert.equal(store.available, true, 'one server of two is still there');
    assert.deepEqual(events, [], 'no disconnect while a server answers');

    await b.restart();
    // The probe finds b again within a few intervals; until then its keys keep failing fast.
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && (await timed(store.get(inB[0]!))).error) await sleep(100);
    await store.set(inB[0]!, { back: true }, 60);
    assert.deepEqual(await store.get(inB[0]!), { back: true });
  } finally {
    onA.close();
    onB.close();
    await store.close();
    await a.stop();
    await b.stop();
  }
});

test('memcached: a hung server times out as unavailable', async () => {
  const server = await startMemcached();
  const store = new MemcachedStore({
    servers: server.address,
    operationTimeoutMs: 300,
    probeIntervalMs: 200,
    logger: quiet,
  });
  try {
    await store.ready(3000);
    await server.pause();
    const { ms, error } = await timed(store.get('h'));
    assert.ok(isStoreUnavailable(error), String(error));
    assert.ok(ms >= 250 && ms < 1500, `took ${ms.toFixed(0)} ms`);
    server.resume();
    await store.ready(5000);
    assert.equal(await store.get('h'), null);
  } finally {
    server.resume();
    await store.close();
    await server.stop();
  }
});
