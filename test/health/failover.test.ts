/** The proofs, end to end through a real balancer: a killed backend, a hanging backend. */
import assert from 'node:assert/strict';
import { Agent } from 'node:http';
import { test } from 'node:test';
import { startBackend } from '../../src/demo/backend.js';
import { request, serverList, startBackends, startBalancer } from '../helpers/balancer.js';
import { startTcp, waitFor } from './fixtures.js';

test('kill one of three backends under a steady stream of GETs: no failed request; down in fall × interval, back in rise × interval', async (t) => {
  const backends = await startBackends(3);
  const interval = 200;
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    algorithm: round-robin
    healthCheck: { type: http, path: /health, interval: ${interval}ms, timeout: 150ms, rise: 2, fall: 3 }
    retries: { attempts: 2 }
    servers:
${serverList(backends)}
`);
  const pool = lb.runtime.pools.get('p')!;
  const b = pool.find('b')!;
  const agent = new Agent({ keepAlive: true, maxSockets: 2 });
  const failures: string[] = [];
  const servedBy: string[] = [];
  let running = true;
  const client = (async () => {
    while (running) {
      try {
        const r = await request(lb.port, { agent, path: '/whoami' });
        if (r.status !== 200) failures.push(`status ${r.status}: ${r.body}`);
        else servedBy.push(r.headers['x-served-by'] as string);
      } catch (err) {
        failures.push((err as Error).message);
      }
    }
  })();
  let restarted: Awaited<ReturnType<typeof startBackend>> | undefined;
  try {
    await waitFor(() => servedBy.includes('b') && servedBy.length >= 30, 'traffic on every server');
    const port = backends[1]!.port;
    const killedAt = Date.now();
    await backends[1]!.close();
    await waitFor(() => b.state === 'down', 'b to be marked down');
    const downAfter = Date.now() - killedAt;
    // fall probes spaced by at most interval + 10%, plus generous room for a loaded machine.
    assert.ok(downAfter <= 3 * interval * 1.1 + 3000, `down after ${downAfter}ms`);
    assert.match(b.lastTransition?.reason ?? '', /^3 failed checks: connect ECONNREFUSED$/);

    restarted = await startBackend({ port, id: 'b' });
    const restartedAt = Date.now();
    await waitFor(() => b.state === 'up', 'b to come back');
    const upAfter = Date.now() - restartedAt;
    assert.ok(upAfter <= 2 * interval * 1.1 + 3000, `up after ${upAfter}ms`);
    const before = servedBy.length;
    await waitFor(() => servedBy.slice(before).includes('b'), 'b to serve again');
    const trafficAfter = Date.now() - restartedAt;
    t.diagnostic(
      `interval ${interval}ms fall 3 rise 2: marked down ${downAfter}ms after the kill, up ${upAfter}ms after the restart, serving again after ${trafficAfter}ms; ${servedBy.length} requests, ${failures.length} failed`,
    );
  } finally {
    running = false;
    await client;
    agent.destroy();
    await lb.stop();
    await Promise.all([backends[0]!.close(), backends[2]!.close(), restarted?.close()]);
  }
  assert.deepEqual(failures, []);
  const lines = lb.log.lines.filter((l) => l.includes('server b'));
  assert.equal(lines.filter((l) => l.includes('server b down')).length, 1);
  assert.equal(lines.filter((l) => l.includes('server b up')).length, 1);
});

test('a backend that accepts connections but never answers: timed out, ejected, traffic moves on', async () => {
  const [a] = await startBackends(1);
  const hang = await startTcp();
  const lb = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: p }]
pools:
  - name: p
    algorithm: round-robin
    timeouts: { response: 200ms }
    outlierDetection: { consecutiveFailures: 2, ejectFor: 30s }
    servers:
      - { address: "127.0.0.1:${a!.port}", name: a }
      - { address: "127.0.0.1:${hang.port}", name: hang }
`);
  const statuses: number[] = [];
  try {
    for (let i = 0; i < 20; i++) statuses.push((await request(lb.port, { path: '/whoami' })).status);
    assert.ok(
      lb.log.lines.some((l) => l.includes('pool p: server hang ejected for 30s: 2 consecutive failures')),
      lb.log.lines.join('\n'),
    );
    // Two timed out (that is what ejected it), every other request was answered by a.
    assert.equal(statuses.filter((s) => s === 504).length, 2, `statuses ${statuses}`);
    assert.equal(statuses.filter((s) => s === 200).length, 18, `statuses ${statuses}`);
    assert.equal(hang.accepted, 2);
    assert.deepEqual(statuses.slice(4), new Array(16).fill(200));
  } finally {
    await lb.stop();
    await a!.close();
    await hang.close();
  }
});
