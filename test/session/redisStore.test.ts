import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, test } from 'node:test';
import { createClient } from 'redis';
import { isStoreUnavailable, RedisStore, StoreUnavailableError } from '../../src/session/index.js';
import { startRedis } from '../helpers/redisServer.js';
import { storeContract } from './storeContract.js';

const quiet = { warn: () => {} };
const redis = await startRedis();
after(() => redis.stop());

/** A raw client to look at what the store wrote. */
async function raw(url: string) {
  const client = createClient({ url });
  client.on('error', () => {});
  await client.connect();
  return client;
}

/** How long a promise takes to settle, and how. */
async function timed<T>(p: Promise<T>): Promise<{ ms: number; error?: unknown; value?: T }> {
  const start = performance.now();
  try {
    const value = await p;
    return { ms: performance.now() - start, value };
  } catch (error) {
    return { ms: performance.now() - start, error };
  }
}

storeContract('redis', () => new RedisStore({ url: redis.url, logger: quiet }), {
  largeBytes: 4 * 1024 * 1024,
});

test('redis: one key per session, SET with EX, EXPIRE on touch, data untouched', async () => {
  const store = new RedisStore({ url: redis.url, prefix: 'app:sess:', logger: quiet });
  const client = await raw(redis.url);
  try {
    await store.set('abc', { n: 1 }, 60);
    assert.equal(await client.get('app:sess:abc'), '{"n":1}');
    const ttl = await client.ttl('app:sess:abc');
    assert.ok(ttl > 55 && ttl <= 60, `ttl ${ttl}`);
    assert.equal(await store.touch('abc', 600), true);
    const touched = await client.ttl('app:sess:abc');
    assert.ok(touched > 595 && touched <= 600, `ttl after touch ${touched}`);
    assert.equal(await client.get('app:sess:abc'), '{"n":1}');
  } finally {
    await client.close();
    await store.close();
  }
});

test('redis: pluggable serializer', async () => {
  const serializer = {
    stringify: (data: object) => Buffer.from(JSON.stringify(data)).toString('base64'),
    parse: (text: string) => JSON.parse(Buffer.from(text, 'base64').toString()),
  };
  const store = new RedisStore({ url: redis.url, serializer, logger: quiet });
  const client = await raw(redis.url);
  try {
    await store.set('ser', { when: 'now' }, 60);
    assert.equal(await client.get('sess:ser'), Buffer.from('{"when":"now"}').toString('base64'));
    assert.deepEqual(await store.get('ser'), { when: 'now' });
  } finally {
    await client.close();
    await store.close();
  }
});

test('redis: corrupt data is no session, and logged', async () => {
  const lines: string[] = [];
  const store = new RedisStore({ url: redis.url, logger: { warn: (m: string) => lines.push(m) } });
  const client = await raw(redis.url);
  try {
    await client.set('sess:bad1', '{"n": 1');
    await client.set('sess:bad2', '[1,2,3]');
    assert.equal(await store.get('bad1'), null);
    assert.equal(await store.get('bad2'), null);
    assert.equal(lines.filter((l) => l.includes('corrupt data')).length, 2, lines.join('\n'));
  } finally {
    await client.close();
    await store.close();
  }
});

test('redis: with your own client, which close() leaves open', async () => {
  const client = await raw(redis.url);
  const store = new RedisStore({ client, logger: quiet });
  await store.set('own', { mine: true }, 60);
  assert.deepEqual(await store.get('own'), { mine: true });
  await store.close();
  assert.equal(await client.get('sess:own'), '{"mine":true}');
  await client.close();
});

test('redis: unreachable fails fast with StoreUnavailableError, then recovers by itself', async () => {
  const server = await startRedis();
  const events: string[] = [];
  const store = new RedisStore({ url: server.url, logger: quiet });
  store.on('connect', () => events.push('connect'));
  store.on('disconnect', () => events.push('disconnect'));
  try {
    await store.ready(3000);
    await store.set('k', { n: 1 }, 60);
    await server.stop('SIGKILL');
    // Each op while down: rejected promptly (no offline queue), as unavailable.
    for (let i = 0; i < 5; i++) {
      const { ms, error } = await timed(store.get('k'));
      assert.ok(isStoreUnavailable(error), `got ${String(error)}`);
      assert.ok(ms < 500, `failed in ${ms.toFixed(0)} ms`);
    }
    assert.equal(store.available, false);
    assert.deepEqual(events, ['connect', 'disconnect']);
    await server.restart();
    await once(store, 'connect');
    assert.equal(store.available, true);
    await store.set('k', { n: 2 }, 60); // the restarted server has no data (no persistence)
    assert.deepEqual(await store.get('k'), { n: 2 });
    assert.deepEqual(events, ['connect', 'disconnect', 'connect']);
  } finally {
    await store.close();
    await server.stop();
  }
});

test('redis: a store opened while Redis is down serves once it comes up', async () => {
  const server = await startRedis();
  await server.stop();
  const store = new RedisStore({ url: server.url, logger: quiet });
  try {
    const { error } = await timed(store.get('x'));
    assert.ok(error instanceof StoreUnavailableError);
    await server.restart();
    await store.ready(5000);
    await store.set('x', { up: true }, 60);
    assert.deepEqual(await store.get('x'), { up: true });
  } finally {
    await store.close();
    await server.stop();
  }
});

test('redis: sessions survive a restart of a persistent Redis', async () => {
  const server = await startRedis({ persistent: true });
  const store = new RedisStore({ url: server.url, logger: quiet });
  try {
    await store.set('durable', { cart: ['apple'] }, 600);
    await server.stop(); // SIGTERM: redis finishes its append-only file
    await server.restart();
    await store.ready(5000);
    assert.deepEqual(await store.get('durable'), { cart: ['apple'] });
  } finally {
    await store.close();
    await server.stop();
  }
});

test('redis: a hung server times out as unavailable within operationTimeoutMs', async () => {
  const server = await startRedis();
  const store = new RedisStore({ url: server.url, operationTimeoutMs: 300, logger: quiet });
  try {
    await store.ready(3000);
    await server.pause();
    const { ms, error } = await timed(store.get('h'));
    assert.ok(isStoreUnavailable(error), String(error));
    assert.ok(ms >= 250 && ms < 1500, `took ${ms.toFixed(0)} ms`);
    server.resume();
    await store.ready(3000);
    assert.equal(await store.get('h'), null);
  } finally {
    server.resume();
    await store.close();
    await server.stop();
  }
});
