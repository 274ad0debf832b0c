import assert from 'node:assert/strict';
import { createServer as createNetServer, Socket } from 'node:net';
import { mock, test } from 'node:test';
import { startBackend } from '../../src/demo/backend.js';
import { request, startBackends, startBalancer } from '../helpers/balancer.js';

test('backups serve only while every primary is down; all down gives an immediate 503 with Retry-After', async () => {
  const [p1, p2, bk] = await startBackends(3);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers:
      - { address: "127.0.0.1:${p1!.port}", name: p1 }
      - { address: "127.0.0.1:${p2!.port}", name: p2 }
      - { address: "127.0.0.1:${bk!.port}", name: backup, backup: true }
`);
  const pool = lb.runtime.pools.get('p')!;
  const who = async () => (await request(lb.port, { path: '/whoami' })).headers['x-served-by'];
  try {
    const seen = new Set<unknown>();
    for (let i = 0; i < 6; i++) seen.add(await who());
    assert.deepEqual([...seen].sort(), ['a', 'b']);
    pool.setState(pool.find('p1')!, 'down', 'test');
    assert.equal(await who(), 'b');
    pool.setState(pool.find('p2')!, 'down', 'test');
    for (let i = 0; i < 3; i++) assert.equal(await who(), 'c', 'the backup serves');
    pool.setState(pool.find('backup')!, 'down', 'test');
    const started = Date.now();
    const r = await request(lb.port, { path: '/whoami' });
    const tookMs = Date.now() - started;
    assert.equal(r.status, 503);
    assert.equal(r.headers['retry-after'], '1');
    assert.ok(tookMs < 2000, `503 took ${tookMs}ms`);
    pool.setState(pool.find('p2')!, 'up', 'test');
    assert.equal(await who(), 'b', 'a primary back: the backup stops');
  } finally {
    await lb.stop();
    await Promise.all([p1!.close(), p2!.close(), bk!.close()]);
  }
});

test('drain: a draining server gets no new requests while its requests in flight finish', async () => {
  const slow = await startBackend({ port: 0, id: 'slow', delayMs: 400 });
  const [fast] = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    servers:
      - { address: "127.0.0.1:${slow.port}", name: slow }
      - { address: "127.0.0.1:${fast!.port}", name: fast }
`);
  const pool = lb.runtime.pools.get('p')!;
  try {
    const inFlight = request(lb.port, { path: '/whoami' }); // round robin: the first goes to slow
    await new Promise((r) => setTimeout(r, 100));
    const server = pool.find('slow')!;
    assert.equal(server.active, 1);
    pool.setState(server, 'draining', 'maintenance window');
    const during: unknown[] = [];
    for (let i = 0; i < 4; i++)
      during.push((await request(lb.port, { path: '/whoami' })).headers['x-served-by']);
    assert.deepEqual(during, ['a', 'a', 'a', 'a']);
    const finished = await inFlight;
    assert.equal(finished.status, 200);
    assert.equal(finished.headers['x-served-by'], 'slow');
    assert.equal(server.active, 0);
  } finally {
    await lb.stop();
    await Promise.all([slow.close(), fast!.close()]);
  }
});

test('a refused connect is tried once more on the same server, on a fresh connection, before the next server', async () => {
  const closed = createNetServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const refusing = (closed.address() as { port: number }).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const [ok] = await startBackends(1);
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    algorithm: round-robin
    retries: { attempts: 1 }
    servers:
      - { address: "127.0.0.1:${refusing}", name: gone }
      - { address: "127.0.0.1:${ok!.port}", name: ok }
`);
  // Spies on every socket connect (the original still runs; net.connect passes [options, cb]).
  const spy = mock.method(Socket.prototype, 'connect');
  const portOf = (arg: unknown) => (Array.isArray(arg) ? arg[0] : (arg as { port?: number }))?.port;
  const connectsTo = (port: number) => spy.mock.calls.filter((c) => portOf(c.arguments[0]) === port).length;
  try {
    const r = await request(lb.port, { path: '/whoami' });
    assert.equal(r.status, 200, 'served by the other server');
    assert.equal(connectsTo(refusing), 2, 'the refusing server was tried twice');
    assert.equal(
      lb.log.lines.filter((l) => l.includes('retrying')).length,
      1,
      'one retry, to the next server',
    );
  } finally {
    spy.mock.restore();
    await lb.stop();
    await ok!.close();
  }
});
