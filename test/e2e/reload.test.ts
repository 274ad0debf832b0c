import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/index.js';
import type { RunningBackend } from '../../src/demo/backend.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { memoryLogger, request, startBackends } from '../helpers/balancer.js';

function yaml(
  port: number,
  backends: RunningBackend[],
  algorithm = 'round-robin',
  extraListener = '',
): string {
  return `
listeners:
  - { name: web, protocol: http, listen: "127.0.0.1:${port}", pool: web }
${extraListener}
pools:
  - name: web
    algorithm: ${algorithm}
    servers:
${backends.map((b) => `      - { address: "127.0.0.1:${b.port}", name: ${b.id} }`).join('\n')}
`;
}

async function startFromFile(text: string) {
  const file = join(tmpdir(), `fulcrum-reload-${process.pid}-${Date.now()}.yaml`);
  writeFileSync(file, text);
  const log = memoryLogger();
  const runtime = new Runtime(await loadConfig(file), { file, log });
  await runtime.start();
  return { runtime, file, log, port: runtime.address('web').port };
}

/** Sends GETs back to back on `clients` keep-alive connections until stopped; counts failures. */
function steadyLoad(port: number, clients = 4) {
  let running = true;
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const stats = { ok: 0, failed: 0, servedBy: new Map<string, number>(), errors: [] as string[] };
  const loops = Array.from({ length: clients }, async () => {
    while (running) {
      try {
        const r = await request(port, { path: '/whoami', agent });
        if (r.status === 200) {
          stats.ok++;
          const id = r.headers['x-served-by'] as string;
          stats.servedBy.set(id, (stats.servedBy.get(id) ?? 0) + 1);
        } else {
          stats.failed++;
          stats.errors.push(`status ${r.status}`);
        }
      } catch (err) {
        stats.failed++;
        stats.errors.push((err as Error).message);
      }
    }
  });
  return {
    stats,
    async stop() {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return stats;
    },
  };
}

test('reload under load: add a server, remove one, change the algorithm — zero failed requests', async (t) => {
  const backends = await startBackends(4);
  const [a, b, c, d] = backends as [RunningBackend, RunningBackend, RunningBackend, RunningBackend];
  const { runtime, file, log, port } = await startFromFile(yaml(0, [a, b, c]));
  const load = steadyLoad(port);
  try {
    const pool = runtime.pools.get('web')!;
    const serverA = pool.find('a')!;
    await new Promise((r) => setTimeout(r, 300));
    // 1. add d
    writeFileSync(file, yaml(port, [a, b, c, d]));
    const s1 = await runtime.reload();
    assert.deepEqual(s1.servers.added, ['web/d']);
    await new Promise((r) => setTimeout(r, 300));
    const totalA = serverA.total;
    // 2. remove c, change the algorithm
    writeFileSync(file, yaml(port, [a, b, d], 'least-connections'));
    const s2 = await runtime.reload();
    assert.deepEqual(s2.servers.removed, ['web/c']);
    assert.equal(pool.policy.name, 'least-connections');
    assert.equal(pool.find('a'), serverA, 'a kept server is the same object: state and statistics survive');
    assert.ok(serverA.total >= totalA);
    const cBefore = load.stats.servedBy.get('c') ?? 0;
    await new Promise((r) => setTimeout(r, 400));
    const stats = await load.stop();
    t.diagnostic(
      `two reloads under load: ${stats.ok} requests answered, ${stats.failed} failed; served by ${JSON.stringify(Object.fromEntries(stats.servedBy))}`,
    );
    assert.equal(stats.failed, 0, stats.errors.slice(0, 5).join('; '));
    assert.ok(stats.ok > 50, `only ${stats.ok} requests went through`);
    assert.ok((stats.servedBy.get('d') ?? 0) > 0, 'the added server takes traffic');
    assert.ok((stats.servedBy.get('c') ?? 0) - cBefore <= 4, 'the removed server gets no new requests');
    assert.ok(!log.lines.some((l) => /ERROR/.test(l)), log.lines.join(''));
  } finally {
    await load.stop();
    await runtime.shutdown(500);
    await Promise.all(backends.map((x) => x.close()));
  }
});

test('an invalid file is rejected with the precise error and the running config stays', async () => {
  const backends = await startBackends(2);
  const { runtime, file, port } = await startFromFile(yaml(0, backends));
  try {
    writeFileSync(file, yaml(port, backends).replace('round-robin', 'round-robbin'));
    await assert.rejects(runtime.reload(), (err: Error) => {
      assert.match(err.message, /:\d+: pools\[0\]\.algorithm: expected one of .*got "round-robbin"/);
      return true;
    });
    assert.equal(runtime.pools.get('web')!.policy.name, 'round-robin');
    const ids = [];
    for (let i = 0; i < 4; i++) ids.push((await request(port, { path: '/whoami' })).headers['x-served-by']);
    assert.deepEqual(ids, ['a', 'b', 'a', 'b']);
  } finally {
    await runtime.shutdown(500);
    await Promise.all(backends.map((x) => x.close()));
  }
});

test('a listener that cannot bind rejects the whole reload; nothing changes', async () => {
  const backends = await startBackends(2);
  const { runtime, file, port } = await startFromFile(yaml(0, backends));
  try {
    // A new listener on a port another process holds, and a pool change in the same file.
    const squatter = createNetServer();
    await new Promise<void>((r) => squatter.listen(0, '127.0.0.1', r));
    const taken = (squatter.address() as AddressInfo).port;
    writeFileSync(
      file,
      yaml(
        port,
        backends.slice(0, 1),
        'round-robin',
        `  - { name: other, protocol: http, listen: "127.0.0.1:${taken}", pool: web }`,
      ),
    );
    await assert.rejects(
      runtime.reload(),
      new RegExp(`listeners\\[1\\]\\.listen: address 127\\.0\\.0\\.1:${taken} is already in use`),
    );
    squatter.close();
    assert.equal(runtime.pools.get('web')!.servers.length, 2, 'pools unchanged');
    assert.equal((await request(port, { path: '/whoami' })).status, 200);
  } finally {
    await runtime.shutdown(500);
    await Promise.all(backends.map((x) => x.close()));
  }
});

test('the reload summary names what changed and nothing else (from the config diff)', async () => {
  const backends = await startBackends(2);
  const { runtime, file, port } = await startFromFile(yaml(0, backends));
  const none = { added: [], removed: [], updated: [] };
  try {
    const listener = runtime.listeners.get('web');
    // Port 0 → the port it got: the listener's config changed, its socket stays.
    writeFileSync(file, yaml(port, backends));
    assert.deepEqual(await runtime.reload(), {
      listeners: { ...none, updated: ['web'] },
      pools: none,
      servers: { added: [], removed: [] },
      settings: [],
    });
    assert.equal(runtime.listeners.get('web'), listener, 'the same listener, on the same socket');
    // The same file again: nothing changed, nothing is touched.
    assert.deepEqual(await runtime.reload(), {
      listeners: none,
      pools: none,
      servers: { added: [], removed: [] },
      settings: [],
    });
    writeFileSync(file, yaml(port, backends.slice(0, 1)));
    assert.deepEqual(await runtime.reload(), {
      listeners: none,
      pools: { ...none, updated: ['web'] },
      servers: { added: [], removed: ['web/b'] },
      settings: [],
    });
    assert.equal((await request(port, { path: '/whoami' })).headers['x-served-by'], 'a');
  } finally {
    await runtime.shutdown(500);
    await Promise.all(backends.map((x) => x.close()));
  }
});

test('a long streaming response started before a reload completes', async () => {
  const origin = createHttpServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    let n = 0;
    const timer = setInterval(() => {
      res.write(`part ${n}\n`);
      if (++n === 10) {
        clearInterval(timer);
        res.end();
      }
    }, 60);
  });
  await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r));
  const originPort = (origin.address() as AddressInfo).port;
  const [other] = await startBackends(1);
  const text = (servers: string) => `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:PORT", pool: web }]
pools:
  - name: web
    servers:
${servers}
`;
  const { runtime, file, port } = await startFromFile(
    text(`      - { address: "127.0.0.1:${originPort}", name: stream }`).replace('PORT', '0'),
  );
  try {
    const body = new Promise<string>((resolve, reject) => {
      httpRequest({ host: '127.0.0.1', port, path: '/stream', agent: false }, (res) => {
        let t = '';
        res.on('data', (c) => {
          t += c;
        });
        res.on('end', () => resolve(t));
        res.on('error', reject);
      })
        .on('error', reject)
        .end();
    });
    await new Promise((r) => setTimeout(r, 150));
    // The streaming server is removed from the pool mid-response.
    writeFileSync(
      file,
      text(`      - { address: "127.0.0.1:${other!.port}", name: other }`).replace('PORT', String(port)),
    );
    await runtime.reload();
    const streamed = await body;
    assert.equal(streamed.split('\n').filter(Boolean).length, 10);
    assert.equal((await request(port, { path: '/whoami' })).headers['x-served-by'], 'a');
  } finally {
    await runtime.shutdown(500);
    origin.close();
    await other!.close();
  }
});

test('shutdown: requests in flight get their full answer, then the listener is closed', async () => {
  const [slow] = await startBackends(1, 300);
  const { runtime, port } = await startFromFile(yaml(0, [slow!]));
  const inFlight = Promise.all([request(port, { path: '/whoami' }), request(port, { path: '/whoami' })]);
  await new Promise((r) => setTimeout(r, 100));
  const stopped = runtime.shutdown(5000);
  const replies = await inFlight;
  await stopped;
  assert.deepEqual(
    replies.map((r) => r.status),
    [200, 200],
  );
  await assert.rejects(request(port, { path: '/whoami', timeoutMs: 1000 }), /ECONNREFUSED/);
  await slow!.close();
});
