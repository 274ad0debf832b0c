import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { startBackend } from '../../src/demo/backend.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';

async function withPool(
  algorithm: string,
  backends: Array<{ id: string; port: number; close(): Promise<void> }>,
  run: (port: number) => Promise<void>,
  weights?: number[],
) {
  const servers = weights
    ? backends
        .map((b, i) => `      - { address: "127.0.0.1:${b.port}", name: ${b.id}, weight: ${weights[i]} }`)
        .join('\n')
    : serverList(backends);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    algorithm: ${algorithm}
    servers:
${servers}
`);
  try {
    await run(lb.port);
  } finally {
    await lb.stop();
    await Promise.all(backends.map((b) => b.close()));
  }
}

function tally(ids: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const id of ids) out[id] = (out[id] ?? 0) + 1;
  return out;
}

test('weighted-round-robin: weights 5,1,1 give a a b a c a a, through real sockets', async () => {
  await withPool(
    'weighted-round-robin',
    await startBackends(3),
    async (port) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 1 });
      const seen: string[] = [];
      for (let i = 0; i < 14; i++)
        seen.push((await request(port, { agent })).headers['x-served-by'] as string);
      agent.destroy();
      assert.deepEqual(seen.join(''), 'aabacaaaabacaa');
    },
    [5, 1, 1],
  );
});

test('ip-hash: each client address (127.0.0.x) stays on one server; clients spread', async () => {
  await withPool('ip-hash', await startBackends(3), async (port) => {
    const placement = new Map<string, string>();
    for (let round = 0; round < 3; round++) {
      for (let i = 2; i < 32; i++) {
        const localAddress = `127.0.0.${i}`;
        const id = (await request(port, { localAddress, path: '/whoami' })).headers['x-served-by'] as string;
        if (round === 0) placement.set(localAddress, id);
        else assert.equal(id, placement.get(localAddress), `${localAddress} moved`);
      }
    }
    const spread = tally([...placement.values()]);
    assert.equal(Object.keys(spread).length, 3, JSON.stringify(spread));
    for (const n of Object.values(spread)) assert.ok(n >= 3, JSON.stringify(spread));
  });
});

test('least-connections: a slow server holding requests gets fewer of them', async () => {
  const slow = await startBackend({ port: 0, id: 'slow', delayMs: 200 });
  const fast = await startBackends(2);
  await withPool('least-connections', [slow, ...fast], async (port) => {
    const ids: string[] = [];
    // 6 clients in parallel, 10 requests each.
    await Promise.all(
      Array.from({ length: 6 }, async () => {
        for (let i = 0; i < 10; i++) ids.push((await request(port)).headers['x-served-by'] as string);
      }),
    );
    const t = tally(ids);
    assert.equal(ids.length, 60);
    assert.ok((t.slow ?? 0) < (t.a ?? 0) && (t.slow ?? 0) < (t.b ?? 0), JSON.stringify(t));
    assert.ok((t.slow ?? 0) <= 12, `slow server got ${t.slow} of 60: ${JSON.stringify(t)}`);
  });
});

test('least-response-time: traffic steers away from a slow server', async () => {
  const slow = await startBackend({ port: 0, id: 'slow', delayMs: 80 });
  const fast = await startBackends(2);
  await withPool('least-response-time', [slow, ...fast], async (port) => {
    const ids: string[] = [];
    const agent = new Agent({ keepAlive: true, maxSockets: 2 });
    await Promise.all(
      Array.from({ length: 2 }, async () => {
        for (let i = 0; i < 40; i++)
          ids.push((await request(port, { agent })).headers['x-served-by'] as string);
      }),
    );
    agent.destroy();
    const t = tally(ids);
    assert.ok((t.slow ?? 0) > 0, `the slow server is still probed: ${JSON.stringify(t)}`);
    assert.ok((t.slow ?? 0) <= 10, `slow server got ${t.slow} of 80: ${JSON.stringify(t)}`);
  });
});

test('round-robin ignores weights', async () => {
  await withPool(
    'round-robin',
    await startBackends(2),
    async (port) => {
      const ids: string[] = [];
      for (let i = 0; i < 6; i++) ids.push((await request(port)).headers['x-served-by'] as string);
      assert.deepEqual(ids, ['a', 'b', 'a', 'b', 'a', 'b']);
    },
    [5, 1],
  );
});
