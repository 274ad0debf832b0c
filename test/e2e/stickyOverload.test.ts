/**
 * The trade-off of sticky sessions, measured: a burst of new clients that lands on one server
 * stays there, even once other servers could take it. Figures go to docs/sessions.md.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { test } from 'node:test';
import type { TestBalancer } from '../helpers/balancer.js';
import { startBalancer } from '../helpers/balancer.js';
import { Browser, installAffinity, tally } from '../sticky/browser.js';

const WORK_MS = 5;
const CLIENTS = 30;
const REQUESTS = 20;

/** A server that does one request at a time, WORK_MS each (a CPU-bound app): queues build up. */
async function busyServer(id: string): Promise<{ server: Server; port: number }> {
  let queue = Promise.resolve();
  const server = createServer((req, res) => {
    req.resume();
    queue = queue
      .then(() => new Promise((r) => setTimeout(r, WORK_MS)))
      .then(() => {
        res.writeHead(200, { 'x-served-by': id, 'content-length': '2' });
        res.end('ok');
      });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((r) => server.listen({ host: '127.0.0.1', port: 0 }, () => r()));
  return { server, port: (server.address() as { port: number }).port };
}

interface Figures {
  share: Record<string, number>;
  p50: number;
  p95: number;
  seconds: number;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
}

/**
 * b and c are restarting (a rolling deploy) when CLIENTS new clients arrive: all land on a. Then
 * b and c are back, and every client makes REQUESTS more requests.
 */
async function burst(sticky: boolean): Promise<Figures> {
  const servers = await Promise.all(['a', 'b', 'c'].map(busyServer));
  const lb: TestBalancer = await startBalancer(`
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:0", pool: web }]
pools:
  - name: web
    algorithm: least-connections
    servers:
${servers.map((s, i) => `      - { address: "127.0.0.1:${s.port}", name: ${'abc'[i]} }`).join('\n')}
${sticky ? '    sticky: { type: cookie, secret: overload-secret-0123 }' : ''}
`);
  const pool = lb.runtime.pools.get('web')!;
  if (sticky) installAffinity(lb, 'web');
  const browsers = Array.from({ length: CLIENTS }, () => new Browser(lb.port));
  try {
    pool.setState(pool.find('b')!, 'maintenance', 'deploy');
    pool.setState(pool.find('c')!, 'maintenance', 'deploy');
    await Promise.all(browsers.map((b) => b.get()));
    pool.setState(pool.find('b')!, 'up', 'deployed');
    pool.setState(pool.find('c')!, 'up', 'deployed');
    const latencies: number[] = [];
    const served: string[] = [];
    const started = Date.now();
    await Promise.all(
      browsers.map(async (b) => {
        for (let i = 0; i < REQUESTS; i++) {
          const t0 = performance.now();
          const r = await b.get();
          latencies.push(performance.now() - t0);
          assert.equal(r.status, 200);
          served.push(String(r.headers['x-served-by']));
        }
      }),
    );
    const seconds = (Date.now() - started) / 1000;
    latencies.sort((x, y) => x - y);
    const counts = tally(served);
    const share: Record<string, number> = {};
    for (const id of ['a', 'b', 'c']) share[id] = Math.round(((counts[id] ?? 0) / served.length) * 100);
    return { share, p50: percentile(latencies, 0.5), p95: percentile(latencies, 0.95), seconds };
  } finally {
    for (const b of browsers) b.close();
    await lb.stop();
    for (const s of servers) s.server.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((r) => s.server.close(r))));
  }
}

test('a burst of new clients on one server stays there with sticky cookies (measured)', async (t) => {
  const stickyRun = await burst(true);
  const freeRun = await burst(false);
  const line = (name: string, f: Figures) =>
    `${name}: a/b/c ${f.share.a}%/${f.share.b}%/${f.share.c}% of requests, p50 ${f.p50.toFixed(1)} ms, p95 ${f.p95.toFixed(1)} ms, ${f.seconds.toFixed(2)} s for ${CLIENTS * REQUESTS} requests`;
  t.diagnostic(line('sticky cookies', stickyRun));
  t.diagnostic(line('no stickiness ', freeRun));
  assert.deepEqual(stickyRun.share, { a: 100, b: 0, c: 0 }, 'the whole burst stays on a');
  assert.ok(freeRun.share.a! <= 50, `without stickiness a takes ${freeRun.share.a}%`);
  assert.ok(freeRun.share.b! >= 20 && freeRun.share.c! >= 20);
  assert.ok(stickyRun.p50 > freeRun.p50, 'queues on the one server');
  assert.ok(stickyRun.seconds > freeRun.seconds * 1.5, `${stickyRun.seconds} s vs ${freeRun.seconds} s`);
});
