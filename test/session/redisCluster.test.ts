import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { createClient, createCluster } from 'redis';
import { RedisStore } from '../../src/session/index.js';
import { startRedisCluster } from '../helpers/redisServer.js';

const cluster = await startRedisCluster(3);
after(() => cluster.stop());

test('redis cluster: the store works unchanged on a cluster client, sessions spread over the masters', async () => {
  const client = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: n.url })) });
  client.on('error', () => {});
  await client.connect();
  const store = new RedisStore({ client, logger: { warn: () => {} } });
  try {
    const ids = Array.from({ length: 60 }, (_, i) => `cluster-${i}`);
    await Promise.all(ids.map((id, i) => store.set(id, { i }, 60)));
    for (const [i, id] of ids.entries()) assert.deepEqual(await store.get(id), { i });
    assert.equal(await store.touch(ids[0]!, 120), true);
    await store.destroy(ids[1]!);
    assert.equal(await store.get(ids[1]!), null);
    // Each master holds some of them: the keys really are spread by slot.
    for (const node of cluster.nodes) {
      const direct = createClient({ url: node.url });
      await direct.connect();
      const size = await direct.dbSize();
      await direct.close();
      assert.ok(size > 5, `master ${node.port} holds ${size} sessions`);
    }
  } finally {
    await store.close();
    await client.close();
  }
});

test('redis cluster: all, ids, length and clear SCAN every master', async () => {
  const client = createCluster({ rootNodes: cluster.nodes.map((n) => ({ url: n.url })) });
  client.on('error', () => {});
  await client.connect();
  const store = new RedisStore({ client, prefix: 'list:', scanCount: 7, logger: { warn: () => {} } });
  try {
    await client.set('other:keep', 'not a session');
    const ids = Array.from({ length: 120 }, (_, i) => `s${i}`);
    await Promise.all(ids.map((id, i) => store.set(id, { i }, 60)));
    assert.equal(await store.length(), 120);
    assert.deepEqual((await store.ids()).sort(), [...ids].sort());
    const all = await store.all();
    assert.equal(all.length, 120);
    for (const session of all) assert.equal(`s${String(session.i)}`, session.id);
    // The keys live on every master, in many slots: no cross-slot command was needed.
    await store.clear();
    assert.equal(await store.length(), 0);
    assert.equal(await client.get('other:keep'), 'not a session', 'clear leaves other keys alone');
  } finally {
    await store.close();
    await client.close();
  }
});
