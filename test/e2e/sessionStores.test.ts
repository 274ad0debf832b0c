/**
 * The scale-out session problem end to end, through the real CLI: three sample backends behind
 * the balancer with round robin. With `memory` sessions the counter restarts whenever a request
 * lands on another server; with a shared store (Redis, Memcached) it counts 1..N across all
 * servers, and keeps counting after one backend is killed.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { startMemcached } from '../helpers/memcachedServer.js';
import { startRedis } from '../helpers/redisServer.js';
import { freePort, tcpAsk } from '../helpers/serverProcess.js';
import { Browser } from '../session/browser.js';

// Compiled to <out>/test/e2e/, next to <out>/src/cli/main.js (dist/ after `npm run build`).
const CLI = resolve(dirname(fileURLToPath(import.meta.url)), '../../src/cli/main.js');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const children = new Set<ChildProcess>();
const dir = mkdtempSync(join(tmpdir(), 'fulcrum-sessions-'));
const redis = await startRedis();
const memcached = await startMemcached();
after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await redis.stop();
  await memcached.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI; resolves once `port` answers HTTP (GET / gets any status line). */
async function run(args: string[], port: number): Promise<ChildProcess> {
  const child = spawn(process.execPath, [CLI, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  child.once('exit', () => children.delete(child));
  let output = '';
  child.stdout?.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (output += c.toString()));
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`fulcrum ${args.join(' ')} exited: ${output}`);
    if (await tcpAsk(port, 'GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n', 'HTTP/1.1 ', 300))
      return child;
    await sleep(50);
  }
  child.kill('SIGKILL');
  throw new Error(`fulcrum ${args.join(' ')} did not answer on ${port} within 10 s: ${output}`);
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGKILL');
  return exited;
}

interface Lab {
  port: number;
  backends: Map<string, ChildProcess>;
  close(): Promise<void>;
}

/** Three backends a, b, c with `store`, and a balancer doing round robin over them. */
async function startLab(store: string): Promise<Lab> {
  const ports = [await freePort(), await freePort(), await freePort()];
  const names = ['a', 'b', 'c'];
  const backends = new Map<string, ChildProcess>();
  await Promise.all(
    names.map(async (name, i) => {
      const port = String(ports[i]);
      backends.set(
        name,
        await run(['backend', '--port', port, '--id', name, '--session-store', store], ports[i]!),
      );
    }),
  );
  const port = await freePort();
  const config = join(dir, `fulcrum-${port}.yaml`);
  writeFileSync(
    config,
    `listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${port}
    pool: web
pools:
  - name: web
    algorithm: round-robin
    servers:
${names.map((name, i) => `      - { address: "127.0.0.1:${ports[i]}", name: ${name} }`).join('\n')}
    healthCheck: { type: http, path: /health, interval: 200ms, timeout: 500ms, rise: 1, fall: 1 }
    retries: { attempts: 2 }
`,
  );
  const balancer = await run(['start', '-c', config], port);
  return {
    port,
    backends,
    close: async () => {
      await Promise.all([stop(balancer), ...[...backends.values()].map(stop)]);
    },
  };
}

interface Hit {
  server: string;
  count: number;
  sessionId: string;
}

async function hits(browser: Browser, n: number): Promise<Hit[]> {
  const out: Hit[] = [];
  for (let i = 0; i < n; i++) {
    const reply = await browser.get('/session');
    assert.equal(reply.status, 200, reply.body);
    out.push(reply.json<Hit>());
  }
  return out;
}

test('memory sessions: the counter restarts whenever the request lands on another server', async () => {
  const lab = await startLab('memory');
  try {
    const seen = await hits(new Browser(lab.port), 9);
    assert.equal(new Set(seen.map((h) => h.server)).size, 3, 'round robin reached all three');
    for (let i = 1; i < seen.length; i++) {
      if (seen[i]!.server !== seen[i - 1]!.server) {
        assert.equal(seen[i]!.count, 1, `request ${i + 1} on ${seen[i]!.server} started over`);
      }
    }
    assert.ok(Math.max(...seen.map((h) => h.count)) < seen.length);
  } finally {
    await lab.close();
  }
});

for (const [name, store] of [
  ['redis', () => redis.url],
  ['memcached', () => `memcached://${memcached.address}`],
] as const) {
  test(`${name} sessions: one counter 1..N across all servers, surviving a killed backend`, async () => {
    const lab = await startLab(store());
    try {
      const browser = new Browser(lab.port);
      const first = await hits(browser, 9);
      assert.deepEqual(
        first.map((h) => h.count),
        [1, 2, 3, 4, 5, 6, 7, 8, 9],
      );
      assert.equal(new Set(first.map((h) => h.server)).size, 3, 'all three servers took part');
      assert.equal(new Set(first.map((h) => h.sessionId)).size, 1, 'one session throughout');

      await stop(lab.backends.get('b')!);
      const rest = await hits(browser, 9);
      assert.deepEqual(
        rest.map((h) => h.count),
        [10, 11, 12, 13, 14, 15, 16, 17, 18],
      );
      assert.ok(rest.every((h) => h.server !== 'b'));
      assert.deepEqual(new Set(rest.map((h) => h.server)), new Set(['a', 'c']));
    } finally {
      await lab.close();
    }
  });
}
