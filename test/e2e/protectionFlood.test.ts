import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { request, startBalancer } from '../helpers/balancer.js';

const FLOODER = fileURLToPath(new URL('../helpers/flooder.js', import.meta.url));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A server that counts the requests of each client (by X-Forwarded-For) and path. */
async function countingServer(): Promise<{ server: Server; port: number; counts: Map<string, number> }> {
  const counts = new Map<string, number>();
  const server = createServer((req, res) => {
    const key = `${req.headers['x-forwarded-for']} ${req.url}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    res.end('ok');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, counts };
}

/** Ordinary clients, one request every `everyMs` each (a new connection per request), for `ms`. */
async function ordinary(port: number, addresses: string[], everyMs: number, ms: number) {
  const latencies: number[] = [];
  let errors = 0;
  const until = Date.now() + ms;
  await Promise.all(
    addresses.map(async (localAddress, i) => {
      await sleep((i * everyMs) / addresses.length);
      while (Date.now() < until) {
        const t = performance.now();
        const r = await request(port, { path: '/ok', localAddress }).catch(() => null);
        if (r?.status === 200) latencies.push(performance.now() - t);
        else errors++;
        await sleep(everyMs);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  const p99 = latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * 0.99))] ?? 0;
  return { requests: latencies.length + errors, errors, p99 };
}

type Flood = Record<string, { counts: Record<string, number>; first: Record<string, number> }>;

test('flood: 4 attackers at full speed get 429 then 403; 10 ordinary clients see no error; the servers see no more than the allowed rate', async (t) => {
  const backend = await countingServer();
  const lb = await startBalancer(`
listeners:
  - name: web
    protocol: http
    listen: "127.0.0.1:0"
    pool: p
    protection:
      rateLimit: { requests: 20, per: 1s, burst: 20 }
      detect: { blockFor: 1m, window: 1s, sustain: 2 }
pools:
  - name: p
    servers:
      - { address: "127.0.0.1:${backend.port}", name: a }
`);
  const clients = Array.from({ length: 10 }, (_, i) => `127.0.0.${50 + i}`);
  const attackers = ['127.0.0.60', '127.0.0.61', '127.0.0.62', '127.0.0.63'];
  let flooder: ReturnType<typeof spawn> | null = null;
  try {
    // Without the attack: 10 clients at 5 requests a second each.
    const quiet = await ordinary(lb.port, clients, 200, 3000);
    assert.equal(quiet.errors, 0);

    const attackMs = 6000;
    const started = Date.now();
    const child = spawn(process.execPath, [FLOODER, String(lb.port), String(attackMs), '8', ...attackers], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    flooder = child;
    let out = '';
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
    });
    const exited = new Promise<void>((r) => child.on('close', () => r()));
    // The ordinary clients start once the attack is under way, and stop before it does.
    await sleep(500);
    const attacked = await ordinary(lb.port, clients, 200, attackMs - 1500);
    await exited;
    flooder = null;
    const attackS = (Date.now() - started) / 1000;
    const flood = JSON.parse(out) as Flood;

    t.diagnostic(
      `ordinary clients p99 without the attack: ${quiet.p99.toFixed(1)} ms (${quiet.requests} requests)`,
    );
    t.diagnostic(
      `ordinary clients p99 under the attack: ${attacked.p99.toFixed(1)} ms (${attacked.requests} requests)`,
    );
    for (const a of attackers) t.diagnostic(`attacker ${a}: ${JSON.stringify(flood[a])}`);

    assert.equal(attacked.errors, 0, 'ordinary clients get no error');
    assert.ok(attacked.requests >= 50, `${attacked.requests} ordinary requests under attack`);
    // Generous: the machine is shared; the figure to read is the diagnostic above.
    assert.ok(
      attacked.p99 <= Math.max(10 * quiet.p99, quiet.p99 + 1000),
      `p99 ${attacked.p99.toFixed(1)} ms under attack vs ${quiet.p99.toFixed(1)} ms`,
    );
    for (const a of attackers) {
      const { counts, first } = flood[a]!;
      assert.ok((counts['429'] ?? 0) > 0, `${a} was rate limited`);
      assert.ok((counts['403'] ?? 0) > 0, `${a} was blocked`);
      assert.ok(first['429']! < first['403']!, `${a}: 429 first, then 403`);
      // The servers saw no more than the burst plus the steady rate over the attack.
      const served = backend.counts.get(`${a} /attack`) ?? 0;
      assert.ok(served <= 20 + 20 * attackS, `${a}: ${served} requests reached the server in ${attackS}s`);
      assert.equal(served, counts['200'] ?? 0);
    }
    const p = lb.runtime.listeners.get('web')!.protection!;
    assert.ok(p.rejected.rate > 0 && p.rejected.blocked > 0);
    assert.equal(p.detector!.blocks(Date.now()).length, 4, 'the attackers, and only them, are blocked');
  } finally {
    if (flooder?.pid !== undefined) process.kill(flooder.pid, 'SIGKILL');
    await lb.stop();
    await new Promise((r) => backend.server.close(r));
  }
});
