/**
 * What a balancer in a redundant pair is run with (docs/redundancy.md): `fulcrum health -c FILE`
 * against a real `fulcrum start -c FILE`, and SIGUSR1 reopening the access log after logrotate
 * moved it. Real child processes, as systemd and logrotate run them.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { request } from '../helpers/balancer.js';
import { freePort, runCli, spawnBackend, spawnCli, tempDir } from '../helpers/processes.js';

const TIMEOUT = { timeout: 60_000 };
const dir = tempDir('fulcrum-health-');
after(() => dir.remove());

/** Polls `check` every 50 ms until it holds; throws after `timeoutMs` naming `what`. */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const lines = (file: string) =>
  existsSync(file)
    ? readFileSync(file, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as { path: string })
    : [];

test(
  'fulcrum health -c FILE follows the running balancer; SIGUSR1 reopens the access log',
  TIMEOUT,
  async () => {
    const backend = await spawnBackend('a');
    const [port, adminPort] = [await freePort(), await freePort()];
    const log = join(dir.path, 'access.log');
    const file = dir.write(
      'fulcrum.yaml',
      `admin: { listen: "127.0.0.1:${adminPort}" }
accessLog: { path: ${JSON.stringify(log)} }
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:${port}", pool: web }]
pools:
  - name: web
    servers: [{ address: "127.0.0.1:${backend.port}", name: a }]
    healthCheck: { type: http, path: /health, interval: 200ms, timeout: 1s, rise: 1, fall: 1 }
`,
    );
    const lb = spawnCli(['start', '-c', file]);
    try {
      await lb.waitForPort(port);
      let r = await runCli(['health', '-c', file]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'ready: 1 listener(s) bound, web → web 1/1 usable\n');

      // logrotate: move the file, then SIGUSR1; lines after it go to a new file of the same name.
      assert.equal((await request(port, { path: '/before' })).status, 200);
      await until(() => lines(log).some((l) => l.path === '/before'), 'the first line in the log');
      renameSync(log, `${log}.1`);
      lb.signal('SIGUSR1');
      await until(() => existsSync(log), 'the access log reopened');
      assert.equal((await request(port, { path: '/after' })).status, 200);
      await until(() => lines(log).some((l) => l.path === '/after'), 'the second line in the new log');
      assert.deepEqual(
        lines(`${log}.1`).map((l) => l.path),
        ['/before'],
      );
      assert.deepEqual(
        lines(log).map((l) => l.path),
        ['/after'],
      );

      // The only server gone: not ready, saying why; back: ready again.
      await backend.proc.stop();
      await until(async () => (await runCli(['health', '-c', file])).code === 1, 'health to fail');
      r = await runCli(['health', '-c', file]);
      assert.equal(r.stderr, 'not ready: listener web: pool web has 0 usable server(s) of 1, needs 1\n');

      // The balancer gone: not ready, and the line says it cannot reach it.
      await lb.stop('SIGKILL');
      r = await runCli(['health', '-c', file]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `not ready: cannot reach the admin API at http://127.0.0.1:${adminPort}: ECONNREFUSED\n`,
      );
    } finally {
      await lb.stop('SIGKILL');
      await backend.proc.stop('SIGKILL');
    }
  },
);
