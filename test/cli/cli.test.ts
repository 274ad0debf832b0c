/**
 * The `fulcrum` CLI driven from the outside, as a user (or an external test suite) would: real
 * child processes (`node <out>/src/cli/main.js ...`), real loopback sockets, exit codes and the
 * exact text of the messages. HTTP requests use `agent: false`: every request is a new TCP
 * connection, so round robin is observed per request, not per connection.
 */
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, test } from 'node:test';
import {
  type CliProcess,
  canConnect,
  freePort,
  httpGet,
  occupyPort,
  runCli,
  spawnBackend,
  spawnCli,
  tempDir,
} from '../helpers/processes.js';

const TIMEOUT = { timeout: 30_000 };

// Config files live in one temp dir; the CLI runs with it as cwd and gets relative names, so the
// messages read `bad.yaml:15: ...` exactly as a user would see them.
const dir = tempDir('fulcrum-cli-');
after(() => dir.remove());

function check(name: string, text?: string) {
  if (text !== undefined) dir.write(name, text);
  return runCli(['check', '-c', name], { cwd: dir.path });
}

function lines(text: string): string[] {
  return text.split('\n').filter((line) => line !== '');
}

const VALID = `listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:18080
    pool: web
pools:
  - name: web
    algorithm: round-robin
    servers:
      - address: 127.0.0.1:3001
        name: a
      - address: 127.0.0.1:3002
        name: b
`;

function roundRobinConfig(
  listenPort: number,
  backendPorts: readonly number[],
  ids: readonly string[],
): string {
  return `listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:${listenPort}
    pool: web
pools:
  - name: web
    algorithm: round-robin
    servers:
${backendPorts.map((p, i) => `      - address: 127.0.0.1:${p}\n        name: ${ids[i]}`).join('\n')}
`;
}

async function whoami(port: number): Promise<string> {
  const res = await httpGet(port, '/whoami');
  assert.equal(res.status, 200, res.body);
  const id = (JSON.parse(res.body) as { id: string }).id;
  assert.equal(res.headers['x-served-by'], id);
  return id;
}

async function stopAll(procs: readonly (CliProcess | undefined)[]): Promise<void> {
  await Promise.all(procs.map((p) => p?.stop()));
}

// --- help ---------------------------------------------------------------------------------------

test('fulcrum --help lists start, check, backend and demo', TIMEOUT, async () => {
  const r = await runCli(['--help']);
  assert.equal(r.code, 0, r.stderr);
  for (const command of ['start', 'check', 'backend', 'demo']) {
    assert.match(r.stdout, new RegExp(`^\\s+${command}\\b`, 'm'), `${command} missing from:\n${r.stdout}`);
  }
});

test('fulcrum start --help documents -c, --config <file>', TIMEOUT, async () => {
  const r = await runCli(['start', '--help']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Usage: fulcrum start/m);
  assert.match(r.stdout, /-c, --config <file>/);
});

// --- check --------------------------------------------------------------------------------------

test('check: a valid file exits 0 with one OK line and nothing on stderr', TIMEOUT, async () => {
  const r = await check('good.yaml', VALID);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, 'good.yaml: OK (1 listener(s), 1 pool(s), 2 server(s))\n');
  assert.equal(r.stderr, '');
});

test('check: a server address without a port', TIMEOUT, async () => {
  const r = await check(
    'address.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: web
pools:
  - name: web
    servers:
      - address: 127.0.0.1:3001
      - address: localhost
`,
  );
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    'address.yaml:9: pools[0].servers[1].address: expected host:port, got "localhost"\n',
  );
});

test('check: an unknown key, with a suggestion', TIMEOUT, async () => {
  const r = await check(
    'unknown.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: web
pools:
  - name: web
    servers:
      - address: 127.0.0.1:3001
        wieght: 2
`,
  );
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    'unknown.yaml:9: pools[0].servers[0]: unknown key "wieght"; did you mean "weight"?\n',
  );
});

test('check: a route to a pool that does not exist', TIMEOUT, async () => {
  const r = await check(
    'route.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: web
    routes:
      - match: { pathPrefix: /api }
        pool: nope
pools:
  - name: web
    servers:
      - address: 127.0.0.1:3001
  - name: api
    servers:
      - address: 127.0.0.1:3002
`,
  );
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    'route.yaml:7: listeners[0].routes[0].pool: expected the name of a pool (web, api), got "nope"\n',
  );
});

test('check: two pools with the same name', TIMEOUT, async () => {
  const r = await check(
    'duplicate.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: web
pools:
  - name: web
    servers:
      - address: 127.0.0.1:3001
  - name: web
    servers:
      - address: 127.0.0.1:3002
`,
  );
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(
    r.stderr,
    'duplicate.yaml:9: pools[1].name: expected a unique pool name, got "web" (already used by pools[0])\n',
  );
});

test('check: YAML syntax errors carry line and column', TIMEOUT, async () => {
  const unclosed = await check('syntax.yaml', 'listeners: [\npools: []\n');
  assert.equal(unclosed.code, 2);
  assert.equal(unclosed.stdout, '');
  assert.equal(
    unclosed.stderr,
    'syntax.yaml:2:1: invalid YAML: Flow sequence in block collection must be sufficiently indented and end with a ]\n',
  );

  const duplicateKey = await check('dupkey.yaml', 'pools:\n  - name: web\n    name: api\n');
  assert.equal(duplicateKey.code, 2);
  assert.equal(duplicateKey.stderr, 'dupkey.yaml:3:5: invalid YAML: Map keys must be unique\n');
});

test('check: a missing file', TIMEOUT, async () => {
  const r = await check('missing.yaml');
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.equal(r.stderr, 'missing.yaml: cannot read the file (no such file)\n');
});

const SEVERAL = `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: web
    routes:
      - match: { pathPrefix: /api }
        pool: nope
    colour: blue
pools:
  - name: web
    algoritm: round-robin
    servers:
      - address: 127.0.0.1:3001
      - address: localhost
  - name: api
    servers:
      - address: 127.0.0.1:3003
`;

const SEVERAL_PROBLEMS = [
  'several.yaml:7: listeners[0].routes[0].pool: expected the name of a pool (web, api), got "nope"',
  'several.yaml:8: listeners[0]: unknown key "colour"',
  'several.yaml:11: pools[0]: unknown key "algoritm"; did you mean "algorithm"?',
  'several.yaml:14: pools[0].servers[1].address: expected host:port, got "localhost"',
];

test('check: every problem of a file is listed, one per line, in file order', TIMEOUT, async () => {
  const r = await check('several.yaml', SEVERAL);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, '');
  assert.deepEqual(lines(r.stderr), SEVERAL_PROBLEMS);
});

test('check: the pool names suggested for a bad reference are listed once each', TIMEOUT, async () => {
  const r = await check(
    'dup-and-ref.yaml',
    `listeners:
  - name: web
    listen: 127.0.0.1:18080
    pool: nope
pools:
  - name: web
    servers:
      - address: 127.0.0.1:3001
  - name: web
    servers:
      - address: 127.0.0.1:3002
`,
  );
  assert.equal(r.code, 2);
  assert.deepEqual(lines(r.stderr), [
    'dup-and-ref.yaml:4: listeners[0].pool: expected the name of a pool (web), got "nope"',
    'dup-and-ref.yaml:9: pools[1].name: expected a unique pool name, got "web" (already used by pools[0])',
  ]);
});

// --- start: failures ----------------------------------------------------------------------------

test(
  'start: an invalid file exits 2 with the same problems as check, and nothing listens',
  TIMEOUT,
  async () => {
    const listenPort = await freePort();
    dir.write('several.yaml', SEVERAL.replace('127.0.0.1:18080', `127.0.0.1:${listenPort}`));
    const proc = spawnCli(['start', '-c', 'several.yaml'], { cwd: dir.path });
    try {
      const exit = await proc.waitForExit(5000);
      assert.deepEqual(exit, { code: 2, signal: null }, proc.output);
      assert.deepEqual(lines(proc.stderr), SEVERAL_PROBLEMS);
      assert.equal(proc.stdout, '');
      assert.equal(await canConnect(listenPort), false, `something listens on ${listenPort}`);
    } finally {
      await proc.stop();
    }
  },
);

test('start: a missing file exits 2', TIMEOUT, async () => {
  const r = await runCli(['start', '-c', 'missing.yaml'], { cwd: dir.path });
  assert.equal(r.code, 2);
  assert.equal(r.stderr, 'missing.yaml: cannot read the file (no such file)\n');
});

test('start: a listen port already in use exits 2 naming listeners[0].listen', TIMEOUT, async () => {
  const busy = await occupyPort();
  try {
    dir.write('busy.yaml', roundRobinConfig(busy.port, [3001], ['a']));
    const r = await runCli(['start', '-c', 'busy.yaml'], { cwd: dir.path });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /listeners\[0\]\.listen/);
    assert.match(r.stderr, /already in use/);
    assert.ok(
      lines(r.stderr).includes(
        `busy.yaml: listeners[0].listen: address 127.0.0.1:${busy.port} is already in use`,
      ),
      r.stderr,
    );
  } finally {
    await busy.close();
  }
});

/**
 * An admin API open to the network without a token, listener 0 on `heldPort` (a port the test
 * holds: a start that tried to bind before validating would fail there, loudly) and listener 1
 * on `freePort`.
 */
function adminOffLoopback(heldPort: number, freePort: number, adminPort: number): string {
  return `admin:
  listen: 0.0.0.0:${adminPort}
listeners:
  - { name: held, listen: 127.0.0.1:${heldPort}, pool: web }
  - { name: free, listen: 127.0.0.1:${freePort}, pool: web }
pools:
  - name: web
    servers: [{ address: 127.0.0.1:3001 }]
`;
}

test(
  'check and start both refuse an admin address off loopback without admin.token; start binds nothing',
  TIMEOUT,
  async () => {
    const held = await occupyPort();
    const [free, adminPort] = [await freePort(), await freePort()];
    try {
      dir.write('open-admin.yaml', adminOffLoopback(held.port, free, adminPort));
      const expected = `open-admin.yaml:2: admin.token: expected a bearer token, required because admin.listen "0.0.0.0:${adminPort}" is not a loopback address, got nothing\n`;
      const checked = await check('open-admin.yaml');
      assert.equal(checked.code, 2, checked.stdout);
      assert.equal(checked.stderr, expected);
      assert.equal(checked.stdout, '');

      const proc = spawnCli(['start', '-c', 'open-admin.yaml'], { cwd: dir.path });
      try {
        // Watch the free port for as long as the process runs: it must never accept.
        let accepted = false;
        while (!proc.exited) {
          if (await canConnect(free, 50)) accepted = true;
          await new Promise((r) => setTimeout(r, 10));
        }
        const exit = await proc.waitForExit(5000);
        assert.deepEqual(exit, { code: 2, signal: null }, proc.output);
        assert.equal(proc.stderr, expected, 'the same error as check, and no bind error on the held port');
        assert.equal(accepted, false, `start listened on ${free} before refusing the file`);
        assert.equal(await canConnect(free), false);
        assert.equal(await canConnect(adminPort), false);
      } finally {
        await proc.stop();
      }
    } finally {
      await held.close();
    }
  },
);

test('check and start both refuse an invalid state file next to the config file', TIMEOUT, async () => {
  const listenPort = await freePort();
  dir.write('stated.yaml', roundRobinConfig(listenPort, [3001], ['a']));
  dir.write('stated.yaml.state.json', '{"version": 1, "pools": {"web": {"weights": {"a": 999}}}}');
  const expected =
    'stated.yaml.state.json: pools.web.weights.a: expected an integer from 0 to 256, got 999\n';
  const checked = await check('stated.yaml');
  assert.equal(checked.code, 2, checked.stdout);
  assert.equal(checked.stderr, expected);
  const started = await runCli(['start', '-c', 'stated.yaml'], { cwd: dir.path });
  assert.equal(started.code, 2, started.stderr);
  assert.equal(started.stderr, expected);
  assert.equal(await canConnect(listenPort), false);
});

test(
  'start: an access log that cannot be opened or an admin address in use exits 2 before any listener binds',
  TIMEOUT,
  async () => {
    // Listener 0 on a port the test holds: a start that bound listeners first would fail there.
    const held = await occupyPort();
    const adminHeld = await occupyPort();
    const config = (extra: string) => `${extra}
listeners:
  - { name: web, listen: 127.0.0.1:${held.port}, pool: web }
pools:
  - name: web
    servers: [{ address: 127.0.0.1:3001 }]
`;
    try {
      dir.write('not-a-dir', '');
      dir.write('bad-log.yaml', config('accessLog: { path: not-a-dir/access.log }'));
      const log = await runCli(['start', '-c', 'bad-log.yaml'], { cwd: dir.path });
      assert.equal(log.code, 2, log.stderr);
      assert.match(
        log.stderr,
        /^bad-log\.yaml: accessLog\.path: cannot open "not-a-dir\/access\.log": E[A-Z]+: [^\n]+\n$/,
      );

      dir.write('busy-admin.yaml', config(`admin: { listen: 127.0.0.1:${adminHeld.port} }`));
      const admin = await runCli(['start', '-c', 'busy-admin.yaml'], { cwd: dir.path });
      assert.equal(admin.code, 2, admin.stderr);
      assert.match(
        admin.stderr,
        new RegExp(
          `^busy-admin\\.yaml: admin\\.listen: address 127\\.0\\.0\\.1:${adminHeld.port} is already in use\\n$`,
        ),
      );
      // Only the admin's line: the listener (on a held port too) was never tried.
      assert.doesNotMatch(admin.stderr, /listeners\[0\]/);
    } finally {
      await held.close();
      await adminHeld.close();
    }
  },
);

// --- start: happy path --------------------------------------------------------------------------

test('start: round robin over two `fulcrum backend` processes, SIGTERM exits 0', TIMEOUT, async (t) => {
  const procs: (CliProcess | undefined)[] = [];
  t.after(() => stopAll(procs));
  const a = await spawnBackend('a');
  procs.push(a.proc);
  const b = await spawnBackend('b');
  procs.push(b.proc);
  const listenPort = await freePort();
  dir.write('rr.yaml', roundRobinConfig(listenPort, [a.port, b.port], ['a', 'b']));
  const balancer = spawnCli(['start', '-c', 'rr.yaml'], { cwd: dir.path });
  procs.push(balancer);
  await balancer.waitForPort(listenPort);

  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(await whoami(listenPort));
  assert.deepEqual(ids, ['a', 'b', 'a', 'b', 'a', 'b']);

  // The echo shows the request went through the balancer (X-Forwarded-For added).
  const echo = await httpGet(listenPort, '/some/path?x=1');
  assert.equal(echo.status, 200);
  const body = JSON.parse(echo.body) as { method: string; path: string; headers: Record<string, string> };
  assert.equal(body.method, 'GET');
  assert.equal(body.path, '/some/path?x=1');
  assert.equal(body.headers['x-forwarded-for'], '127.0.0.1');

  balancer.signal('SIGTERM');
  assert.deepEqual(await balancer.waitForExit(5000), { code: 0, signal: null }, balancer.output);
  assert.equal(await canConnect(listenPort), false);
});

test('start: SIGTERM lets a request in flight finish, then exits 0', TIMEOUT, async (t) => {
  // The upstream is an in-process server, so the test knows the request has reached it (and is
  // therefore in flight through the balancer) before sending SIGTERM, and answers only after.
  let arrived!: () => void;
  const atUpstream = new Promise<void>((resolve) => {
    arrived = resolve;
  });
  let answer!: () => void;
  const released = new Promise<void>((resolve) => {
    answer = resolve;
  });
  const upstream = createServer((req, res) => {
    arrived();
    void released.then(() => {
      res.writeHead(200, { 'content-type': 'application/json', 'x-served-by': 'slow' });
      res.end(JSON.stringify({ id: 'slow', path: req.url }));
    });
  });
  await new Promise<void>((resolve) => upstream.listen({ host: '127.0.0.1', port: 0 }, resolve));
  t.after(() => {
    upstream.closeAllConnections();
    return new Promise<void>((resolve) => upstream.close(() => resolve()));
  });
  const upstreamPort = (upstream.address() as AddressInfo).port;

  const listenPort = await freePort();
  dir.write('drain.yaml', roundRobinConfig(listenPort, [upstreamPort], ['slow']));
  const balancer = spawnCli(['start', '-c', 'drain.yaml'], { cwd: dir.path });
  t.after(() => balancer.stop());
  await balancer.waitForPort(listenPort);

  const inFlight = httpGet(listenPort, '/in-flight', { timeoutMs: 10_000 });
  await atUpstream;
  balancer.signal('SIGTERM');
  await balancer.waitFor('SIGTERM', { stream: 'stderr' });
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(balancer.exited, false, 'exited with a request in flight');
  answer();
  const res = await inFlight;
  assert.equal(res.status, 200);
  assert.deepEqual(JSON.parse(res.body), { id: 'slow', path: '/in-flight' });
  assert.deepEqual(await balancer.waitForExit(5000), { code: 0, signal: null }, balancer.output);
});

test(
  'start: SIGHUP reloads the file in place; an invalid file is rejected and the old config stays',
  TIMEOUT,
  async (t) => {
    const procs: (CliProcess | undefined)[] = [];
    t.after(() => stopAll(procs));
    const a = await spawnBackend('a');
    procs.push(a.proc);
    const b = await spawnBackend('b');
    procs.push(b.proc);
    const listenPort = await freePort();
    dir.write('reload.yaml', roundRobinConfig(listenPort, [a.port], ['a']));
    const balancer = spawnCli(['start', '-c', 'reload.yaml'], { cwd: dir.path });
    procs.push(balancer);
    await balancer.waitForPort(listenPort);
    assert.equal(await whoami(listenPort), 'a');

    // Server a replaced by b.
    dir.write('reload.yaml', roundRobinConfig(listenPort, [b.port], ['b']));
    balancer.signal('SIGHUP');
    await balancer.waitFor(/reloaded reload\.yaml: /, { stream: 'stderr' });
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await whoami(listenPort));
    assert.deepEqual(ids, ['b', 'b', 'b']);

    // A broken file: the problems are logged, the running config stays, the process keeps running.
    dir.write('reload.yaml', SEVERAL.replace('127.0.0.1:18080', `127.0.0.1:${listenPort}`));
    balancer.signal('SIGHUP');
    await balancer.waitFor(/reload rejected/, { stream: 'stderr' });
    await balancer.waitFor(
      'reload.yaml:14: pools[0].servers[1].address: expected host:port, got "localhost"',
      {
        stream: 'stderr',
      },
    );
    assert.equal(balancer.exited, false, balancer.output);
    assert.equal(await whoami(listenPort), 'b');

    balancer.signal('SIGTERM');
    assert.deepEqual(await balancer.waitForExit(5000), { code: 0, signal: null }, balancer.output);
  },
);

test(
  'start: a SIGHUP or SIGTERM that arrives while starting is acted on once started, never fatal',
  TIMEOUT,
  async (t) => {
    const procs: (CliProcess | undefined)[] = [];
    t.after(() => stopAll(procs));
    const a = await spawnBackend('a');
    procs.push(a.proc);
    const listenPort = await freePort();
    dir.write('early.yaml', roundRobinConfig(listenPort, [a.port], ['a']));

    // "starting" is logged (debug) once the signal handlers are in place, before the config loads.
    const start = ['--log-level', 'debug', 'start', '-c', 'early.yaml'];
    const reloaded = spawnCli(start, { cwd: dir.path });
    procs.push(reloaded);
    await reloaded.waitFor(/starting \(pid \d+\) with early\.yaml/, { stream: 'stderr' });
    reloaded.signal('SIGHUP');
    await reloaded.waitFor(/reloaded early\.yaml: /, { stream: 'stderr' });
    assert.equal(reloaded.exited, false, reloaded.output);
    assert.equal(await whoami(listenPort), 'a');
    reloaded.signal('SIGTERM');
    assert.deepEqual(await reloaded.waitForExit(5000), { code: 0, signal: null }, reloaded.output);

    const stopped = spawnCli(start, { cwd: dir.path });
    procs.push(stopped);
    await stopped.waitFor(/starting \(pid/, { stream: 'stderr' });
    stopped.signal('SIGTERM');
    assert.deepEqual(await stopped.waitForExit(5000), { code: 0, signal: null }, stopped.output);
    assert.match(stopped.output, /SIGTERM: finishing requests in flight/);
  },
);

// --- backend ------------------------------------------------------------------------------------

test('backend: the sample backend contract', TIMEOUT, async (t) => {
  const { proc, port } = await spawnBackend('bk1');
  t.after(() => proc.stop());

  await t.test('GET /health is 200', async () => {
    const res = await httpGet(port, '/health');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-served-by'], 'bk1');
  });

  await t.test('GET /whoami returns the id', async () => {
    const res = await httpGet(port, '/whoami');
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-served-by'], 'bk1');
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(JSON.parse(res.body), { id: 'bk1' });
  });

  await t.test('GET /session counts per session cookie', async () => {
    const first = await httpGet(port, '/session');
    assert.equal(first.status, 200);
    assert.equal(first.headers['x-served-by'], 'bk1');
    const setCookie = first.headers['set-cookie'];
    assert.ok(
      setCookie && setCookie.length === 1,
      `one set-cookie expected, got ${JSON.stringify(setCookie)}`,
    );
    const cookie = setCookie[0]!.split(';')[0]!;
    const one = JSON.parse(first.body) as { server: string; count: number; sessionId: string };
    assert.equal(one.server, 'bk1');
    assert.equal(one.count, 1);
    assert.equal(typeof one.sessionId, 'string');
    assert.ok(one.sessionId.length > 0);

    for (const expected of [2, 3]) {
      const res = await httpGet(port, '/session', { headers: { cookie } });
      assert.equal(res.status, 200);
      assert.equal(res.headers['x-served-by'], 'bk1');
      assert.deepEqual(JSON.parse(res.body), { server: 'bk1', count: expected, sessionId: one.sessionId });
    }

    const fresh = await httpGet(port, '/session');
    const again = JSON.parse(fresh.body) as { server: string; count: number; sessionId: string };
    assert.equal(again.count, 1);
    assert.notEqual(again.sessionId, one.sessionId);
    assert.ok(fresh.headers['set-cookie'], 'a new session sets a cookie');
  });

  await t.test('any other request gets a JSON echo', async () => {
    const body = 'hello, fulcrum!';
    const res = await httpGet(port, '/echo/me?q=1', {
      method: 'POST',
      headers: { 'content-type': 'text/plain', 'x-test': 'yes' },
      body,
    });
    assert.equal(res.status, 200);
    assert.equal(res.headers['x-served-by'], 'bk1');
    const echo = JSON.parse(res.body) as {
      id: string;
      method: string;
      path: string;
      headers: Record<string, string>;
      bodyLength: number;
    };
    assert.equal(echo.id, 'bk1');
    assert.equal(echo.method, 'POST');
    assert.equal(echo.path, '/echo/me?q=1');
    assert.equal(echo.bodyLength, Buffer.byteLength(body));
    assert.equal(echo.headers['x-test'], 'yes');
    assert.equal(echo.headers['content-length'], String(Buffer.byteLength(body)));

    // Non-GET on a known path is an echo too, and carries x-served-by.
    const del = await httpGet(port, '/whoami', { method: 'DELETE' });
    assert.equal(del.headers['x-served-by'], 'bk1');
    assert.equal((JSON.parse(del.body) as { method: string }).method, 'DELETE');
  });

  await t.test('SIGTERM exits 0', async () => {
    assert.deepEqual(await proc.stop('SIGTERM', 3000), { code: 0, signal: null }, proc.output);
  });
});

test('backend: --delay 200ms makes every answer take at least 200 ms', TIMEOUT, async (t) => {
  const { proc, port } = await spawnBackend('slow', ['--delay', '200ms']);
  t.after(() => proc.stop());
  for (const path of ['/whoami', '/health']) {
    const res = await httpGet(port, path);
    assert.equal(res.status, 200);
    assert.ok(res.ms >= 200, `${path} took ${res.ms.toFixed(1)} ms`);
  }
});

test('backend: a bad --delay is refused', TIMEOUT, async () => {
  const port = await freePort();
  const r = await runCli(['backend', '--port', String(port), '--delay', 'soon']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /--delay/);
  assert.equal(await canConnect(port), false);
});

// --- demo ---------------------------------------------------------------------------------------

test('demo: three backends behind a round-robin balancer; SIGINT exits 0', TIMEOUT, async (t) => {
  const port = await freePort();
  const demo = spawnCli(['demo', '--port', String(port)]);
  t.after(() => demo.stop());
  const match = await demo.waitFor(/balancer \(round robin\)\s+(http:\/\/\S+)/, { stream: 'stdout' });
  assert.equal(match[1], `http://127.0.0.1:${port}`);
  await demo.waitFor('Ctrl-C stops the lab.', { stream: 'stdout' });

  // Each backend's own URL is printed and answers with its id.
  const backendLines = [...demo.stdout.matchAll(/^\s+backend (\S+)\s+http:\/\/127\.0\.0\.1:(\d+)$/gm)];
  assert.deepEqual(
    backendLines.map((m) => m[1]),
    ['backend-a', 'backend-b', 'backend-c'],
  );
  for (const m of backendLines) assert.equal(await whoami(Number(m[2])), m[1]);

  const ids: string[] = [];
  for (let i = 0; i < 6; i++) ids.push(await whoami(port));
  assert.deepEqual(ids, ['backend-a', 'backend-b', 'backend-c', 'backend-a', 'backend-b', 'backend-c']);

  demo.signal('SIGINT');
  assert.deepEqual(await demo.waitForExit(5000), { code: 0, signal: null }, demo.output);
  assert.equal(await canConnect(port), false);
});

test('demo: a port in use exits 2 and says so', TIMEOUT, async () => {
  const busy = await occupyPort();
  try {
    const r = await runCli(['demo', '--port', String(busy.port)]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`127\\.0\\.0\\.1:${busy.port} is already in use`));
  } finally {
    await busy.close();
  }
});
