import assert from 'node:assert/strict';
import { test } from 'node:test';
import { MemcachedStore, MemoryStore, openStore, RedisStore } from '../../src/session/index.js';

const quiet = { warn: () => {} };

test('openStore: memory, redis://, memcached:// with one or several servers', async () => {
  const memory = openStore('memory');
  assert.ok(memory instanceof MemoryStore);
  // Nothing listens on port 1: the stores are created, and fail (later) as unavailable.
  const redis = openStore('redis://127.0.0.1:1/2', { logger: quiet });
  assert.ok(redis instanceof RedisStore);
  const one = openStore('memcached://127.0.0.1:1', { logger: quiet });
  assert.ok(one instanceof MemcachedStore);
  const two = openStore('memcached://127.0.0.1:1,127.0.0.1:2', { logger: quiet });
  assert.ok(two instanceof MemcachedStore);
  await Promise.all([memory.close(), redis.close(), one.close(), two.close()]);
});

test('openStore: anything else is refused with a message that says what is accepted', () => {
  for (const bad of ['', 'redis', 'mysql://h:1', 'memcached://', 'memcached://h:p', 'redis://[bad']) {
    assert.throws(() => openStore(bad), /session store|Invalid URL|memcached/, bad);
  }
  assert.throws(
    () => openStore('postgres://x'),
    /use memory, redis:\/\/HOST:PORT\[\/DB\] or memcached:\/\/HOST:PORT/,
  );
});
