/** Readiness: `GET /ready` and `fulcrum health`, one verdict (src/admin/readiness.ts). */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { readiness } from '../../src/admin/readiness.js';
import { request } from '../helpers/balancer.js';
import { runCli } from '../helpers/processes.js';
import { api, startLab } from './helpers.js';

const TIMEOUT = { timeout: 60_000 };

test('readiness: ready with usable servers, not with none, minServers counts them', TIMEOUT, async () => {
  const lab = await startLab(2);
  try {
    const pool = lab.lb.runtime.pools.get('web')!;
    let v = readiness(lab.lb.runtime);
    assert.equal(v.ready, true, v.reason);
    assert.equal(v.reason, 'ready: 1 listener(s) bound, web → web 2/2 usable');
    assert.deepEqual(v.listeners, [
      { listener: 'web', pool: 'web', bound: true, usable: 2, servers: 2, ready: true },
    ]);
    v = readiness(lab.lb.runtime, { minServers: 3 });
    assert.equal(v.ready, false);
    assert.equal(v.reason, 'listener web: pool web has 2 usable server(s) of 2, needs 3');
    for (const s of pool.servers) pool.setState(s, 'draining', 'test');
    v = readiness(lab.lb.runtime);
    assert.equal(v.ready, false);
    assert.equal(v.reason, 'listener web: pool web has 0 usable server(s) of 2, needs 1');
    // 0: only the listeners count.
    assert.equal(readiness(lab.lb.runtime, { minServers: 0 }).ready, true);
    for (const s of pool.servers) pool.setState(s, 'up', 'test');
    await lab.lb.runtime.shutdown(0);
    v = readiness(lab.lb.runtime);
    assert.equal(v.ready, false);
    assert.match(v.reason, /^the balancer is not running \(starting or stopping\)/);
  } finally {
    await lab.stop();
  }
});

test('GET /ready: 200 or 503 with the reason, no token needed, minServers checked', TIMEOUT, async () => {
  const lab = await startLab(2, { admin: { token: 'a-long-enough-admin-token-1234' } });
  try {
    let r = await api(lab.port, 'GET', '/ready');
    assert.equal(r.status, 200, r.body);
    assert.equal(r.data.ready, true);
    assert.equal(r.headers['cache-control'], 'no-store');
    // The rest of the API still wants the token.
    assert.equal((await api(lab.port, 'GET', '/api/status')).status, 401);
    r = await api(lab.port, 'GET', '/ready?minServers=3');
    assert.equal(r.status, 503);
    assert.equal(r.data.reason, 'listener web: pool web has 2 usable server(s) of 2, needs 3');
    r = await api(lab.port, 'GET', '/ready?minServers=-1');
    assert.equal(r.status, 400);
    assert.equal(r.data.error, 'minServers: expected an integer >= 0, got "-1"');
    assert.equal((await request(lab.port, { method: 'HEAD', path: '/ready' })).status, 200);
    assert.equal((await api(lab.port, 'POST', '/ready')).status, 401);
  } finally {
    await lab.stop();
  }
});

test(
  'fulcrum health: exit 0 ready, 1 with one line saying why, 2 for a bad config file',
  TIMEOUT,
  async () => {
    const lab = await startLab(2);
    const admin = ['--admin', `http://127.0.0.1:${lab.port}`];
    let stopped = false;
    try {
      let r = await runCli(['health', ...admin]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, 'ready: 1 listener(s) bound, web → web 2/2 usable\n');
      r = await runCli(['health', ...admin, '--min-servers', '3']);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'not ready: listener web: pool web has 2 usable server(s) of 2, needs 3\n');
      r = await runCli(['health', ...admin, '--min-servers', 'two']);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /--min-servers.*expected an integer >= 0/);
      r = await runCli(['health', '-c', '/nonexistent/fulcrum.yaml']);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^fulcrum health: .*\/nonexistent\/fulcrum\.yaml/);
      const pool = lab.lb.runtime.pools.get('web')!;
      for (const s of pool.servers) pool.setState(s, 'maintenance', 'test');
      r = await runCli(['health', ...admin]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, 'not ready: listener web: pool web has 0 usable server(s) of 2, needs 1\n');
      await lab.stop();
      stopped = true;
      r = await runCli(['health', ...admin]);
      assert.equal(r.code, 1);
      assert.equal(
        r.stderr,
        `not ready: cannot reach the admin API at http://127.0.0.1:${lab.port}: ECONNREFUSED\n`,
      );
    } finally {
      if (!stopped) await lab.stop();
    }
  },
);
