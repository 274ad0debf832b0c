/**
 * What an operator meets around the balancer (issue 19): the version, the process log's level
 * and format, the sample backend's errors, the default config file, the config schema. Real
 * child processes, as a user runs them.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { freePort, occupyPort, runCli, spawnCli, tempDir } from '../helpers/processes.js';

const TIMEOUT = { timeout: 30_000 };
const dir = tempDir('fulcrum-ops-');
after(() => dir.remove());

const PACKAGE = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

// --- item 2: version ------------------------------------------------------------------------------

test("--version prints Fulcrum's own version, not the calling project's", TIMEOUT, async () => {
  // What `npx fulcrum` inside another project sees: npm sets that project's version.
  const r = await runCli(['--version'], { cwd: dir.path, env: { npm_package_version: '9.9.9' } });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `${PACKAGE.version}\n`);
});

// --- item 8: log level and format -----------------------------------------------------------------

test('--log-level is validated, naming the levels', TIMEOUT, async () => {
  const r = await runCli(['--log-level', 'bogus', 'check', '-c', 'x.yaml'], { cwd: dir.path });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /argument 'bogus' is invalid\. Allowed choices are debug, info, warn, error\./);
  const env = await runCli(['check', '-c', 'x.yaml'], {
    cwd: dir.path,
    env: { FULCRUM_LOG_LEVEL: 'loud' },
  });
  assert.equal(env.code, 1);
  assert.match(env.stderr, /'loud' from env 'FULCRUM_LOG_LEVEL' is invalid/);
});

test("every command's help lists --log-level and --log-format", TIMEOUT, async () => {
  for (const command of [['start'], ['check'], ['backend'], ['status'], ['server', 'add'], ['reload']]) {
    const r = await runCli([...command, '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /--log-level <level>/, `${command.join(' ')} --help:\n${r.stdout}`);
    assert.match(r.stdout, /--log-format <format>/, `${command.join(' ')} --help:\n${r.stdout}`);
  }
});

test('--log-format json writes one JSON object a line', TIMEOUT, async () => {
  const proc = spawnCli(['backend', '--port', '0', '--id', 'j', '--log-format', 'json']);
  try {
    await proc.waitFor(/listening on/);
    const line = proc.stderr.split('\n').find((l) => l.includes('listening on'))!;
    const parsed = JSON.parse(line) as { time: string; level: string; msg: string };
    assert.equal(parsed.level, 'info');
    assert.match(parsed.msg, /^backend j listening on http:\/\/127\.0\.0\.1:\d+$/);
    assert.ok(!Number.isNaN(Date.parse(parsed.time)));
  } finally {
    await proc.stop();
  }
});

// --- item 9: the sample backend on a port in use --------------------------------------------------

test('backend: a port in use exits 2 with one line, like the balancer', TIMEOUT, async () => {
  const busy = await occupyPort();
  try {
    const r = await runCli(['backend', '--port', String(busy.port)]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stderr, `fulcrum backend: address 127.0.0.1:${busy.port} is already in use\n`);
  } finally {
    await busy.close();
  }
});

// --- item 12: -c defaults to ./fulcrum.yaml ---------------------------------------------------------

test('-c defaults to ./fulcrum.yaml for check, start and the admin commands', TIMEOUT, async () => {
  const here = tempDir('fulcrum-default-');
  const empty = tempDir('fulcrum-nofile-');
  const [listen, admin] = [await freePort(), await freePort()];
  here.write(
    'fulcrum.yaml',
    `admin: { listen: "127.0.0.1:${admin}" }
listeners: [{ name: web, listen: "127.0.0.1:${listen}", pool: web }]
pools: [{ name: web, servers: [{ address: "127.0.0.1:1" }] }]
`,
  );
  try {
    const check = await runCli(['check'], { cwd: here.path });
    assert.equal(check.code, 0, check.stderr);
    assert.equal(check.stdout, 'fulcrum.yaml: OK (1 listener(s), 1 pool(s), 1 server(s))\n');
    // The admin address comes from the file: nothing listens there yet.
    const down = await runCli(['status'], { cwd: here.path });
    assert.equal(down.code, 1);
    assert.equal(
      down.stderr,
      `fulcrum: cannot reach the admin API at http://127.0.0.1:${admin}: ECONNREFUSED\n`,
    );
    const proc = spawnCli(['start'], { cwd: here.path });
    try {
      await proc.waitForPort(listen);
      const up = await runCli(['status'], { cwd: here.path });
      assert.equal(up.code, 0, up.stderr);
      assert.match(up.stdout, /^listener web /);
    } finally {
      assert.equal((await proc.stop()).code, 0, proc.output);
    }
    for (const command of [['check'], ['start']]) {
      const none = await runCli(command, { cwd: empty.path });
      assert.equal(none.code, 2);
      assert.equal(none.stderr, 'fulcrum: no config file: give -c FILE, or run where ./fulcrum.yaml is\n');
    }
  } finally {
    here.remove();
    empty.remove();
  }
});

// --- item 10: fulcrum reload in words ---------------------------------------------------------------

test('fulcrum reload says what changed in words, and "nothing changed" when so', TIMEOUT, async () => {
  const here = tempDir('fulcrum-reload-');
  const [listen, admin] = [await freePort(), await freePort()];
  const config = (servers: string, extra = '') =>
    `admin: { listen: "127.0.0.1:${admin}" }
listeners: [{ name: web, listen: "127.0.0.1:${listen}", pool: web }]
pools: [{ name: web, servers: [${servers}] }]
${extra}`;
  here.write('fulcrum.yaml', config('{ address: "127.0.0.1:1", name: a }'));
  const proc = spawnCli(['start'], { cwd: here.path });
  try {
    await proc.waitForPort(listen);
    let r = await runCli(['reload'], { cwd: here.path });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'reloaded: nothing changed\n');
    here.write(
      'fulcrum.yaml',
      config(
        '{ address: "127.0.0.1:1", name: a }, { address: "127.0.0.1:2", name: b }',
        'shutdownTimeout: 5s\n',
      ),
    );
    r = await runCli(['reload'], { cwd: here.path });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(
      r.stdout,
      'reloaded: pools changed: web; servers added: web/b; settings changed: shutdownTimeout\n',
    );
    // --json keeps the API's answer.
    r = await runCli(['reload', '--json'], { cwd: here.path });
    assert.deepEqual(JSON.parse(r.stdout).servers, { added: [], removed: [] });
  } finally {
    await proc.stop();
    here.remove();
  }
});
