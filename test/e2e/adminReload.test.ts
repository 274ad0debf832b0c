/**
 * The admin endpoint and the access log follow the config file through reloads, driven from the
 * outside: a real `fulcrum start` process, SIGHUP and `POST /api/reload`, loopback sockets only.
 * Every process is stopped by its PID.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { RunningBackend } from '../../src/demo/backend.js';
import { startBackends } from '../helpers/balancer.js';
import {
  type CliProcess,
  canConnect,
  freePort,
  httpGet,
  occupyPort,
  spawnCli,
  tempDir,
} from '../helpers/processes.js';

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
  // The CLI's own lines (`reloaded FILE: ...`), not the admin control's.
  const done = /reloaded \S+: |reload rejected/;
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

test('a reload that adds admin starts the endpoint; one that removes it stops it', TIMEOUT, async () => {
  const [a] = (await startBackends(1)) as [RunningBackend];
  const [listen, adminPort] = [await freePort(), await freePort()];
  const proc = await start('added.yaml', yaml({ listen, server: a }), listen);
  try {
    assert.equal(await canConnect(adminPort), false);
    dir.write('added.yaml', yaml({ listen, server: a, admin: `  listen: 127.0.0.1:${adminPort}` }));
    assert.match(await sighup(proc), /reloaded added\.yaml: /);
    const status = await httpGet(adminPort, '/api/status');
    assert.equal(status.status, 200, status.body);
    assert.deepEqual(
      (JSON.parse(status.body) as { pools: Array<{ name: string }> }).pools.map((p) => p.name),
      ['web'],
    );
    assert.match((await httpGet(adminPort, '/metrics')).body, /fulcrum_config_reloads_total/);
    // The API works: a server drained through it.
    const drained = await httpGet(adminPort, '/api/pools/web/servers/a', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json' },
      body: '{"state": "drain"}',
    });
    assert.equal(drained.status, 200, drained.body);

    // Removed through the API's own reload: the answer still comes, then the port closes.
    dir.write('added.yaml', yaml({ listen, server: a }));
    const removed = await httpGet(adminPort, '/api/reload', { method: 'POST' });
    assert.equal(removed.status, 200, removed.body);
    await waitClosed(adminPort);
    await proc.waitFor('admin: stopped');
    assert.equal(await servedBy(listen).catch(() => 'none'), 'none', 'a stays drained (state file)');
    assert.deepEqual(await proc.stop(), { code: 0, signal: null }, proc.output);
  } finally {
    await proc.stop();
    await a.close();
  }
});

test(
  'a reload that moves admin.listen rebinds at the new address and lets the old one go',
  TIMEOUT,
  async () => {
    const [a] = (await startBackends(1)) as [RunningBackend];
    const [listen, first, second, third] = [
      await freePort(),
      await freePort(),
      await freePort(),
      await freePort(),
    ];
    const at = (port: number) => yaml({ listen, server: a, admin: `  listen: 127.0.0.1:${port}` });
    const proc = await start('moved.yaml', at(first), listen);
    try {
      await proc.waitForPort(first);
      await servedBy(listen);
      dir.write('moved.yaml', at(second));
      assert.match(await sighup(proc), /reloaded moved\.yaml: /);
      assert.equal((await httpGet(second, '/api/status')).status, 200);
      await waitClosed(first);
      // The metrics carried on: the request before the move is still counted.
      assert.match(
        (await httpGet(second, '/metrics')).body,
        /fulcrum_requests_total\{listener="web",pool="web",server="a",code="2xx"\} 1/,
      );
      // Moved again through the API: the answer comes on the old address.
      dir.write('moved.yaml', at(third));
      const api = await httpGet(second, '/api/reload', { method: 'POST' });
      assert.equal(api.status, 200, api.body);
      assert.equal((await httpGet(third, '/api/status')).status, 200);
      await waitClosed(second);
      assert.equal(await servedBy(listen), 'a');
    } finally {
      await proc.stop();
      await a.close();
    }
  },
);

test(
  'a reload to an admin address that cannot be bound is refused with the reason; the old admin serves on and nothing else changes',
  TIMEOUT,
  async () => {
    const [a, b] = (await startBackends(2)) as [RunningBackend, RunningBackend];
    const held = await occupyPort();
    const [listen, adminPort] = [await freePort(), await freePort()];
    const proc = await start(
      'busy.yaml',
      yaml({ listen, server: a, admin: `  listen: 127.0.0.1:${adminPort}` }),
      listen,
    );
    try {
      await proc.waitForPort(adminPort);
      dir.write('busy.yaml', yaml({ listen, server: b, admin: `  listen: 127.0.0.1:${held.port}` }));
      assert.match(await sighup(proc), /reload rejected/);
      await proc.waitFor(`busy.yaml: admin.listen: address 127.0.0.1:${held.port} is already in use`);
      assert.equal(await servedBy(listen), 'a', 'the server change in the same file did not apply');
      assert.equal((await httpGet(adminPort, '/api/status')).status, 200);
      const api = await httpGet(adminPort, '/api/reload', { method: 'POST' });
      assert.equal(api.status, 400, api.body);
      assert.deepEqual(JSON.parse(api.body).problems, [
        { path: 'admin.listen', message: `address 127.0.0.1:${held.port} is already in use` },
      ]);
      assert.match(
        (await httpGet(adminPort, '/metrics')).body,
        /fulcrum_config_reloads_total\{result="failure"\} 2/,
      );
    } finally {
      await proc.stop();
      await held.close();
      await Promise.all([a.close(), b.close()]);
    }
  },
);

test(
  'a reload that changes admin.token applies at once: the old token is refused, the new one accepted',
  TIMEOUT,
  async () => {
    const [a] = (await startBackends(1)) as [RunningBackend];
    const [listen, adminPort] = [await freePort(), await freePort()];
    const withToken = (token?: string) =>
      yaml({
        listen,
        server: a,
        admin: `  listen: 127.0.0.1:${adminPort}${token === undefined ? '' : `\n  token: ${token}`}`,
      });
    const status = async (token?: string) =>
      (
        await httpGet(adminPort, '/api/status', {
          headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
        })
      ).status;
    const proc = await start('token.yaml', withToken('first-token'), listen);
    try {
      await proc.waitForPort(adminPort);
      assert.deepEqual(
        [await status('first-token'), await status('second-token'), await status()],
        [200, 401, 401],
      );
      dir.write('token.yaml', withToken('second-token'));
      assert.match(await sighup(proc), /reloaded token\.yaml: /);
      assert.deepEqual([await status('first-token'), await status('second-token')], [401, 200]);
      // Through the API, authorized by the token it replaces.
      dir.write('token.yaml', withToken('third-token'));
      const api = await httpGet(adminPort, '/api/reload', {
        method: 'POST',
        headers: { authorization: 'Bearer second-token' },
      });
      assert.equal(api.status, 200, api.body);
      assert.deepEqual([await status('second-token'), await status('third-token')], [401, 200]);
      // No token any more (loopback): none needed.
      dir.write('token.yaml', withToken());
      assert.match(await sighup(proc), /reloaded token\.yaml: /);
      assert.equal(await status(), 200);
    } finally {
      await proc.stop();
      await a.close();
    }
  },
);

test(
  'accessLog added, moved and removed by reloads applies at once, with no admin section',
  TIMEOUT,
  async () => {
    const [a] = (await startBackends(1)) as [RunningBackend];
    const listen = await freePort();
    const first = join(dir.path, 'logs', 'first.log');
    const second = join(dir.path, 'logs', 'second.log');
    const lines = (file: string) =>
      existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean).length : 0;
    const proc = await start('logged.yaml', yaml({ listen, server: a }), listen);
    try {
      await servedBy(listen);
      dir.write('logged.yaml', yaml({ listen, server: a, accessLog: first }));
      assert.match(await sighup(proc), /reloaded logged\.yaml: /);
      await proc.waitFor(`access log: ${first}`);
      for (let i = 0; i < 2; i++) await servedBy(listen);
      dir.write('logged.yaml', yaml({ listen, server: a, accessLog: second }));
      assert.match(await sighup(proc), /reloaded logged\.yaml: /);
      for (let i = 0; i < 3; i++) await servedBy(listen);
      dir.write('logged.yaml', yaml({ listen, server: a }));
      assert.match(await sighup(proc), /reloaded logged\.yaml: /);
      await proc.waitFor('access log off');
      await servedBy(listen);
      // A log let go is flushed and closed in the background.
      const deadline = Date.now() + 5000;
      while ((lines(first) !== 2 || lines(second) !== 3) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.deepEqual([lines(first), lines(second)], [2, 3]);
      const line = JSON.parse(readFileSync(second, 'utf8').split('\n')[0]!) as Record<string, unknown>;
      assert.equal(line.path, '/whoami');
      assert.equal(line.server, 'a');
    } finally {
      await proc.stop();
      await a.close();
    }
  },
);

/** Resolves once nothing accepts on the port any more (an endpoint let go closes in the background). */
async function waitClosed(port: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while (await canConnect(port, 200)) {
    if (Date.now() > deadline) throw new Error(`port ${port} still accepts`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test('without an admin section, a SIGHUP reload applies the state file as start does', TIMEOUT, async () => {
  const [a, b] = (await startBackends(2)) as [RunningBackend, RunningBackend];
  const listen = await freePort();
  const text = yaml({ listen, server: a }).replace(
    `servers: [{ address: 127.0.0.1:${a.port}, name: a }]`,
    `servers: [{ address: 127.0.0.1:${a.port}, name: a }, { address: 127.0.0.1:${b.port}, name: b }]`,
  );
  // Runtime changes an admin API made earlier: b taken out of rotation by its weight.
  dir.write('stated.yaml.state.json', '{"version": 1, "pools": {"web": {"weights": {"b": 0}}}}');
  const proc = await start('stated.yaml', text, listen);
  try {
    const four = async () => Promise.all([1, 2, 3, 4].map(() => servedBy(listen)));
    assert.deepEqual(await four(), ['a', 'a', 'a', 'a']);
    assert.match(await sighup(proc), /reloaded stated\.yaml: nothing changed/);
    assert.deepEqual(await four(), ['a', 'a', 'a', 'a'], 'the reload kept the state file applied');
  } finally {
    await proc.stop();
    await Promise.all([a.close(), b.close()]);
  }
});
