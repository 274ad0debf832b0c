/** `fulcrum status` and `fulcrum server ...` as child processes against an admin endpoint. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBackends } from '../helpers/balancer.js';
import { runCli, tempDir } from '../helpers/processes.js';
import { startLab, traffic } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

test(
  'fulcrum status prints listeners, pools and servers; --json prints the API answer',
  TIMEOUT,
  async () => {
    const lab = await startLab(2);
    const admin = ['--admin', `http://127.0.0.1:${lab.port}`];
    try {
      await traffic(lab.lb.port, 4);
      const r = await runCli(['status', ...admin]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.split('\n');
      assert.match(
        lines[0]!,
        /^listener web {2}http {2}127\.0\.0\.1:0 {2}→ pool web {2}\d+ connection\(s\), 4 request\(s\), 0 4xx, 0 5xx, 0 retries, in \d+ B, out \d+(\.\d)? (B|KiB)$/,
      );
      assert.ok(
        lines.some((l) => /^pool web {2}round-robin {2}[\d.]+ req\/s$/.test(l)),
        r.stdout,
      );
      assert.ok(
        lines.some((l) =>
          /^ {2}SERVER +ADDRESS +STATE +WEIGHT +ACTIVE +REQ\/S +SHARE +P50 +P99 +HEALTH +LAST CHANGE$/.test(
            l,
          ),
        ),
        r.stdout,
      );
      assert.ok(
        lines.some((l) => /^ {2}a +127\.0\.0\.1:\d+ +up +1 +0 /.test(l)),
        r.stdout,
      );
      // Totals per server: requests, errors, retries, bytes, idle upstream connections.
      assert.ok(
        lines.some((l) => /^ {2}SERVER +TOTAL +4XX +5XX +RETRIES +IN +OUT +IDLE CONNS$/.test(l)),
        r.stdout,
      );
      assert.ok(
        lines.some((l) => /^ {2}a +2 +0 +0 +0 +\d+ B +\d+(\.\d)? (B|KiB) +\d+$/.test(l)),
        r.stdout,
      );
      const json = await runCli(['status', '--json', ...admin]);
      assert.equal(json.code, 0);
      assert.deepEqual(
        JSON.parse(json.stdout).pools[0].servers.map((s: { id: string }) => s.id),
        ['a', 'b'],
      );
      // The address can also come from the environment.
      const env = await runCli(['status'], { env: { FULCRUM_ADMIN: `127.0.0.1:${lab.port}` } });
      assert.equal(env.code, 0, env.stderr);
    } finally {
      await lab.stop();
    }
  },
);

test(
  'fulcrum server add|drain|ready|maintenance|weight|remove change the running pool',
  TIMEOUT,
  async () => {
    const lab = await startLab(2);
    const [extra] = await startBackends(1);
    const admin = ['--admin', `http://127.0.0.1:${lab.port}`];
    const pool = () => lab.lb.runtime.pools.get('web')!;
    try {
      let r = await runCli([
        'server',
        'add',
        'web',
        `127.0.0.1:${extra!.port}`,
        '--name',
        'c',
        '--weight',
        '2',
        ...admin,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `pool web: server c (127.0.0.1:${extra!.port}) state up, weight 2: added\n`);
      r = await runCli(['server', 'drain', 'web', 'a', ...admin]);
      assert.equal(
        r.stdout,
        `pool web: server a (127.0.0.1:${lab.backends[0]!.port}) state draining, weight 1\n`,
      );
      assert.equal(pool().find('a')!.state, 'draining');
      r = await runCli(['server', 'maintenance', 'web', 'b', ...admin]);
      assert.equal(pool().find('b')!.state, 'maintenance');
      r = await runCli(['server', 'ready', 'web', 'a', ...admin]);
      assert.equal(r.code, 0);
      assert.equal(pool().find('a')!.state, 'up');
      r = await runCli(['server', 'weight', 'web', 'a', '7', ...admin]);
      assert.equal(r.code, 0);
      assert.equal(pool().find('a')!.weight, 7);
      r = await runCli(['server', 'remove', 'web', 'c', ...admin]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'pool web: server c removed\n');
      assert.equal(pool().find('c'), undefined);
    } finally {
      await lab.stop();
      await extra!.close();
    }
  },
);

test(
  'bad input exits 2 with the API error; an unreachable or refusing endpoint exits 1',
  TIMEOUT,
  async () => {
    const lab = await startLab(1, { admin: { token: 'tok' } });
    const admin = ['--admin', `http://127.0.0.1:${lab.port}`, '--token', 'tok'];
    const dir = tempDir('fulcrum-cli-admin-');
    try {
      let r = await runCli(['server', 'weight', 'web', 'a', '300', ...admin]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr, 'fulcrum: weight: expected an integer from 0 to 256, got 300\n');
      r = await runCli(['server', 'weight', 'web', 'a', 'heavy', ...admin]);
      assert.equal(r.stderr, 'fulcrum: weight: expected an integer from 0 to 256, got "heavy"\n');
      r = await runCli(['server', 'drain', 'wbe', 'a', ...admin]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr, 'fulcrum: no pool named "wbe" (pools: web); did you mean "web"?\n');
      r = await runCli(['server', 'add', 'web', 'localhost', ...admin]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr, 'fulcrum: address: expected host:port, got "localhost"\n');
      r = await runCli(['server', 'remove', 'web', 'a', ...admin]);
      assert.equal(r.code, 2);
      assert.equal(
        r.stderr,
        'fulcrum: cannot remove server a: pool web: servers: expected at least one server, got an empty list\n',
      );

      r = await runCli(['status', '--admin', `http://127.0.0.1:${lab.port}`]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        'fulcrum: missing or wrong bearer token (Authorization: Bearer <admin.token>)\n',
      );

      // The address and the token from a config file.
      const file = dir.write(
        'f.yaml',
        `admin: { listen: "127.0.0.1:${lab.port}", token: tok }
listeners: [{ name: web, listen: 127.0.0.1:1, pool: web }]
pools: [{ name: web, servers: [{ address: 127.0.0.1:2 }] }]
`,
      );
      r = await runCli(['status', '-c', file]);
      assert.equal(r.code, 0, r.stderr);
      const none = dir.write(
        'none.yaml',
        'listeners: [{ name: web, listen: 127.0.0.1:1, pool: web }]\npools: [{ name: web, servers: [{ address: 127.0.0.1:2 }] }]\n',
      );
      r = await runCli(['status', '-c', none]);
      assert.equal(r.code, 2);
      assert.equal(r.stderr, `fulcrum: ${none} has no admin section (add admin.listen)\n`);
    } finally {
      await lab.stop();
      dir.remove();
    }
    const gone = await runCli(['status', '--admin', `http://127.0.0.1:${lab.port}`]);
    assert.equal(gone.code, 1);
    assert.equal(
      gone.stderr,
      `fulcrum: cannot reach the admin API at http://127.0.0.1:${lab.port}: ECONNREFUSED\n`,
    );
  },
);
