/**
 * Who may use the admin endpoint: bearer token, the dashboard's login cookie, loopback only
 * without a token, no cross-origin changes, and nothing reachable through a proxy listener.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startAdmin } from '../../src/admin/index.js';
import { ConfigError, isLoopback } from '../../src/config/index.js';
import { request } from '../helpers/balancer.js';
import { api, startLab } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };
const TOKEN = 'correct horse battery staple';

test('with admin.token, every route needs the bearer token; without it: 401', TIMEOUT, async () => {
  const lab = await startLab(2, { admin: { token: TOKEN } });
  const bearer = { authorization: `Bearer ${TOKEN}` };
  try {
    for (const [method, path] of [
      ['GET', '/api/status'],
      ['GET', '/metrics'],
      ['GET', '/api/events'],
      ['GET', '/'],
      ['GET', '/dashboard/app.js'],
      ['PATCH', '/api/pools/web/servers/a'],
      ['POST', '/api/reload'],
      ['GET', '/no/such/route'],
    ] as const) {
      const none = await api(lab.port, method, path, method === 'PATCH' ? { state: 'drain' } : undefined);
      assert.equal(none.status, 401, `${method} ${path}`);
      assert.equal(none.headers['www-authenticate'], 'Bearer realm="fulcrum admin"');
      const wrong = await api(lab.port, method, path, undefined, { authorization: 'Bearer nope' });
      assert.equal(wrong.status, 401, `${method} ${path} with a wrong token`);
    }
    assert.equal(lab.lb.runtime.pools.get('web')!.find('a')!.state, 'up', 'nothing changed');
    const ok = await api(lab.port, 'GET', '/api/status', undefined, bearer);
    assert.equal(ok.status, 200);
    assert.equal((await api(lab.port, 'GET', '/metrics', undefined, bearer)).status, 200);
    assert.equal(
      (await api(lab.port, 'PATCH', '/api/pools/web/servers/a', { state: 'drain' }, bearer)).status,
      200,
    );
    assert.equal(
      (await api(lab.port, 'GET', '/api/status', undefined, { authorization: `bearer  ${TOKEN}` })).status,
      200,
    );
    const missing = await api(lab.port, 'GET', '/api/status');
    assert.equal(missing.data.error, 'missing or wrong bearer token (Authorization: Bearer <admin.token>)');
  } finally {
    await lab.stop();
  }
});

test('the dashboard asks browsers for the token and keeps a session cookie', TIMEOUT, async () => {
  const lab = await startLab(1, { admin: { token: TOKEN } });
  try {
    const page = await request(lab.port, { path: '/', headers: { accept: 'text/html' } });
    assert.equal(page.status, 401);
    assert.match(page.body, /<form method="post" action="\/login">/);
    const form = { 'content-type': 'application/x-www-form-urlencoded' };
    const wrong = await request(lab.port, {
      method: 'POST',
      path: '/login',
      headers: form,
      body: 'token=nope',
    });
    assert.equal(wrong.status, 401);
    assert.match(wrong.body, /Wrong token/);
    const right = await request(lab.port, {
      method: 'POST',
      path: '/login',
      headers: form,
      body: `token=${encodeURIComponent(TOKEN)}`,
    });
    assert.equal(right.status, 303);
    const cookie = String(right.headers['set-cookie']);
    assert.match(cookie, /^fulcrum_admin=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/);
    assert.ok(!cookie.includes(TOKEN), 'the cookie is not the token');
    const session = cookie.split(';')[0]!;
    const dashboard = await request(lab.port, { path: '/', headers: { cookie: session } });
    assert.equal(dashboard.status, 200);
    assert.match(dashboard.body, /<title>Fulcrum<\/title>/);
    assert.equal((await api(lab.port, 'GET', '/api/status', undefined, { cookie: session })).status, 200);
    assert.equal(
      (await api(lab.port, 'GET', '/api/status', undefined, { cookie: 'fulcrum_admin=00' })).status,
      401,
    );
  } finally {
    await lab.stop();
  }
});

test(
  'an admin address other than loopback requires a token (the config rule, for embedders too)',
  TIMEOUT,
  async () => {
    const lab = await startLab(1);
    try {
      await assert.rejects(
        startAdmin(lab.lb.runtime, { listen: { host: '0.0.0.0', port: 0, text: '0.0.0.0:0' } }, lab.lb.log),
        (err: unknown) => {
          assert.ok(err instanceof ConfigError);
          assert.equal(
            err.message,
            'test.yaml: admin.token: expected a bearer token, required because admin.listen "0.0.0.0:0" is not a loopback address, got nothing',
          );
          return true;
        },
      );
      assert.ok(
        isLoopback('127.0.0.1') && isLoopback('127.8.9.10') && isLoopback('::1') && isLoopback('localhost'),
      );
      assert.ok(isLoopback('::ffff:127.0.0.1'));
      assert.ok(
        !isLoopback('0.0.0.0') && !isLoopback('::') && !isLoopback('10.0.0.1') && !isLoopback('example.com'),
      );
    } finally {
      await lab.stop();
    }
  },
);

test('changes from another origin and Host names other than IPs are refused', TIMEOUT, async () => {
  const lab = await startLab(2);
  try {
    const cross = await api(
      lab.port,
      'PATCH',
      '/api/pools/web/servers/a',
      { state: 'drain' },
      {
        origin: 'https://evil.example',
      },
    );
    assert.equal(cross.status, 403);
    assert.match(cross.data.error!, /^cross-origin request refused/);
    const site = await api(lab.port, 'POST', '/api/reload', undefined, { 'sec-fetch-site': 'cross-site' });
    assert.equal(site.status, 403);
    assert.equal(lab.lb.runtime.pools.get('web')!.find('a')!.state, 'up');
    // Same origin (the dashboard) is fine.
    const same = await api(
      lab.port,
      'PATCH',
      '/api/pools/web/servers/a',
      { state: 'drain' },
      {
        origin: `http://127.0.0.1:${lab.port}`,
      },
    );
    assert.equal(same.status, 200);
    // DNS rebinding: a page of evil.example resolving to 127.0.0.1 sends Host: evil.example.
    const rebound = await api(lab.port, 'GET', '/api/status', undefined, {
      host: `evil.example:${lab.port}`,
    });
    assert.equal(rebound.status, 403);
    assert.equal(
      (await api(lab.port, 'GET', '/api/status', undefined, { host: `localhost:${lab.port}` })).status,
      200,
    );
  } finally {
    await lab.stop();
  }
});

test('no admin route is reachable through a proxy listener', TIMEOUT, async () => {
  const lab = await startLab(1);
  try {
    for (const path of ['/api/status', '/metrics', '/api/events', '/', '/dashboard/app.js']) {
      const r = await request(lab.lb.port, { path });
      assert.equal(r.headers['x-served-by'], 'a', `${path} went to the backend`);
      assert.ok(!r.body.includes('fulcrum_requests_total') && !r.body.includes('"pools"'), path);
    }
    const patch = await request(lab.lb.port, {
      method: 'PATCH',
      path: '/api/pools/web/servers/a',
      headers: { 'content-type': 'application/json' },
      body: '{"state":"drain"}',
    });
    assert.equal(patch.headers['x-served-by'], 'a');
    assert.equal(lab.lb.runtime.pools.get('web')!.find('a')!.state, 'up');
    assert.notEqual(lab.port, lab.lb.port);
  } finally {
    await lab.stop();
  }
});

test('an admin address in use is a config error on admin.listen', TIMEOUT, async () => {
  const lab = await startLab(1);
  try {
    const taken = { host: '127.0.0.1', port: lab.port, text: `127.0.0.1:${lab.port}` };
    await assert.rejects(startAdmin(lab.lb.runtime, { listen: taken }, lab.lb.log), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(err.message, `test.yaml: admin.listen: address 127.0.0.1:${lab.port} is already in use`);
      return true;
    });
    // The failed start gave everything back: the running admin still works.
    assert.equal((await api(lab.port, 'GET', '/api/status')).status, 200);
  } finally {
    await lab.stop();
  }
});
