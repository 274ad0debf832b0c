/**
 * The admin endpoint and the access log follow the config file through reloads, driven from the
 * outside: a real `fulcrum start` process, SIGHUP and `POST /api/reload`, loopback sockets only.
 * Every process is stopped by its PID.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { RunningBackend } from '../../src/demo/backend.js';
import { startBackends } from '../helpers/balancer.js';
import { type CliProcess, canConnect, freePort, httpGet, spawnCli, tempDir } from '../helpers/processes.js';

const TIMEOUT = { timeout: 60_000 };

const dir = tempDir('fulcrum-admin-reload-');
after(() => dir.remove());

interface Shape {
  listen: number;
  server: RunningBackend;
  /** The admin section's lines (indented by two), or nothing. */
  admin?: string;
  accessLog?: string;
}

function yaml(s: Shape): string {
  return `${s.admin === undefined ? '' : `admin:\n${s.admin}\n`}${
    s.accessLog === undefined ? '' : `accessLog: { path: ${JSON.stringify(s.accessLog)} }\n`
  }listeners:
  - { name: web, listen: 127.0.0.1:${s.listen}, pool: web }
pools:
  - name: web
    servers: [{ address: 127.0.0.1:${s.server.port}, name: ${s.server.id} }]
`;
}

async function servedBy(port: number): Promise<string> {
  const r = await httpGet(port, '/whoami');
  assert.equal(r.status, 200, r.body);
  return String(r.headers['x-served-by']);
}

/** `fulcrum start -c NAME` on `text`, once its listener accepts. */
async function start(name: string, text: string, listen: number): Promise<CliProcess> {
  dir.write(name, text);
  const proc = spawnCli(['start', '-c', name], { cwd: dir.path });
  try {
    await proc.waitForPort(listen);
  } catch (err) {
    await proc.stop();
    throw err;
  }
  return proc;
}

/** Counts the lines `pattern` matches in the process's stderr. */
function count(proc: CliProcess, pattern: RegExp): number {
  return proc.stderr.split('\n').filter((line) => pattern.test(line)).length;
}

/** SIGHUP, then waits for the outcome's log line (the n-th of its kind); returns it. */
async function sighup(proc: CliProcess): Promise<string> {
  const done = /reloaded |reload rejected/;
  const before = count(proc, done);
  proc.signal('SIGHUP');
  const deadline = Date.now() + 10_000;
  while (count(proc, done) === before) {
    if (proc.exited || Date.now() > deadline) throw new Error(`no reload outcome\n${proc.output}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return proc.stderr.split('\n').filter((line) => done.test(line))[before]!;
}

test(
  'a reload to an admin address off loopback without a token is refused, by SIGHUP and by the API; the old config keeps running',
  TIMEOUT,
  async () => {
    const [a, b] = (await startBackends(2)) as [RunningBackend, RunningBackend];
    const [listen, adminPort, openPort] = [await freePort(), await freePort(), await freePort()];
    const proc = await start(
      'refused.yaml',
      yaml({ listen, server: a, admin: `  listen: 127.0.0.1:${adminPort}` }),
      listen,
    );
    try {
      await proc.waitForPort(adminPort);
      dir.write('refused.yaml', yaml({ listen, server: b, admin: `  listen: 0.0.0.0:${openPort}` }));
      assert.match(await sighup(proc), /reload rejected/);
      await proc.waitFor(
        `refused.yaml:2: admin.token: expected a bearer token, required because admin.listen "0.0.0.0:${openPort}" is not a loopback address, got nothing`,
      );
      assert.equal(await servedBy(listen), 'a', 'the running config stays');
      assert.equal((await httpGet(adminPort, '/api/status')).status, 200, 'the admin stays where it was');
      assert.equal(await canConnect(openPort), false);

      const api = await httpGet(adminPort, '/api/reload', { method: 'POST' });
      assert.equal(api.status, 400, api.body);
      assert.deepEqual(
        (JSON.parse(api.body) as { problems: Array<{ path: string }> }).problems.map((p) => p.path),
        ['admin.token'],
      );
      assert.equal(await servedBy(listen), 'a');
      assert.deepEqual(await proc.stop(), { code: 0, signal: null }, proc.output);
    } finally {
      await proc.stop();
      await Promise.all([a.close(), b.close()]);
    }
  },
);
