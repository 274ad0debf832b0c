/**
 * The admin REST API, call by call, with valid and invalid input. Errors carry the config
 * loader's own key paths and wording, under the "file" name `request`.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startBackends } from '../helpers/balancer.js';
import { api, sleep, startLab, traffic, until } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };

interface ServerJson {
  id: string;
  address: string;
  state: string;
  weight: number;
  active: number;
  total: number;
  requestRate: number;
  share: number;
  latencyMs: { p50: number; p90: number; p99: number } | null;
  health: unknown;
  lastTransition: { from: string; to: string; reason: string } | null;
}

test(
  'GET /api/status lists listeners, pools and servers with state, weight, traffic and latency',
  TIMEOUT,
  async () => {
    const lab = await startLab(3);
    try {
      await traffic(lab.lb.port, 30);
      await sleep(450); // two ticks of 200ms: the rate covers a full tick with traffic
      const r = await api(lab.port, 'GET', '/api/status');
      assert.equal(r.status, 200);
      assert.match(String(r.headers['content-type']), /application\/json/);
      const status = r.data as unknown as {
        listeners: Array<{
          name: string;
          protocol: string;
          pool: string;
          requests: number;
          address: { port: number };
        }>;
        pools: Array<{ name: string; algorithm: string; servers: ServerJson[] }>;
      };
      assert.equal(status.listeners.length, 1);
      assert.equal(status.listeners[0]!.name, 'web');
      assert.equal(status.listeners[0]!.protocol, 'http');
      assert.equal(status.listeners[0]!.pool, 'web');
      assert.equal(status.listeners[0]!.address.port, lab.lb.port);
      assert.equal(status.listeners[0]!.requests, 30);
      const pool = status.pools[0]!;
      assert.equal(pool.name, 'web');
      assert.equal(pool.algorithm, 'round-robin');
      assert.deepEqual(
        pool.servers.map((s) => [s.id, s.state, s.weight, s.total]),
        [
          ['a', 'up', 1, 10],
          ['b', 'up', 1, 10],
          ['c', 'up', 1, 10],
        ],
      );
      for (const s of pool.servers) {
        assert.ok(
          s.latencyMs !== null && s.latencyMs.p50 >= 0 && s.latencyMs.p99 >= s.latencyMs.p50,
          JSON.stringify(s),
        );
        assert.equal(s.active, 0);
        assert.equal(s.health, null); // no active checks configured
      }
      // GET of one pool, its servers, one server; a trailing slash is fine.
      assert.equal((await api(lab.port, 'GET', '/api/pools/web')).data.name, 'web');
      assert.equal(((await api(lab.port, 'GET', '/api/pools')).data.pools as unknown[]).length, 1);
      assert.equal(
        ((await api(lab.port, 'GET', '/api/pools/web/servers/')).data.servers as unknown[]).length,
        3,
      );
      assert.equal(
        (await api(lab.port, 'GET', '/api/pools/web/servers/b')).data.address,
        `127.0.0.1:${lab.backends[1]!.port}`,
      );
      assert.equal(((await api(lab.port, 'GET', '/api/listeners')).data.listeners as unknown[]).length, 1);
      assert.ok(((await api(lab.port, 'GET', '/api')).data.routes as unknown[]).length > 5);
    } finally {
      await lab.stop();
    }
  },
);

test(
  'unknown routes, pools and servers are 404 with the names that exist; wrong methods 405',
  TIMEOUT,
  async () => {
    const lab = await startLab(2);
    try {
      const noRoute = await api(lab.port, 'GET', '/api/nope');
      assert.equal(noRoute.status, 404);
      assert.equal(noRoute.data.error, 'no admin route /api/nope (GET /api lists them)');
      const noPool = await api(lab.port, 'GET', '/api/pools/wbe');
      assert.equal(noPool.status, 404);
      assert.equal(noPool.data.error, 'no pool named "wbe" (pools: web); did you mean "web"?');
      const noServer = await api(lab.port, 'PATCH', '/api/pools/web/servers/z', { state: 'drain' });
      assert.equal(noServer.status, 404);
      assert.equal(noServer.data.error, 'no server "z" in pool web (servers: a, b)');
      const wrong = await api(lab.port, 'PUT', '/api/pools/web/servers/a', { weight: 2 });
      assert.equal(wrong.status, 405);
      assert.equal(wrong.headers.allow, 'GET, PATCH, DELETE');
    } finally {
      await lab.stop();
    }
  },
);

test('POST /api/pools/:pool/servers adds a server that takes traffic at once', TIMEOUT, async () => {
  const lab = await startLab(2);
  const [extra] = await startBackends(1);
  try {
    const r = await api(lab.port, 'POST', '/api/pools/web/servers', {
      address: `127.0.0.1:${extra!.port}`,
      name: 'd',
      weight: 2,
    });
    assert.equal(r.status, 201, r.body);
    assert.equal(r.data.id, 'd');
    assert.equal(r.data.state, 'up');
    assert.equal(r.data.weight, 2);
    assert.deepEqual(
      lab.lb.runtime.pools.get('web')!.servers.map((s) => s.id),
      ['a', 'b', 'd'],
    );
    assert.ok(
      lab.lb.runtime.config.pools[0]!.servers.some((s) => s.name === 'd'),
      'the running config has it',
    );
    const seen = await traffic(lab.lb.port, 9);
    assert.ok(seen.includes('a') && seen.includes('b'));
    // The sample backend calls itself "a": what matters is that the new address gets requests.
    assert.ok(lab.lb.runtime.pools.get('web')!.find('d')!.total >= 3, 'd takes its share');
    // An unnamed server is known by its address.
    const [other] = await startBackends(1);
    const unnamed = await api(lab.port, 'POST', '/api/pools/web/servers', {
      address: `LOCALHOST:${other!.port}`,
    });
    assert.equal(unnamed.status, 201);
    assert.equal(unnamed.data.id, `localhost:${other!.port}`);
    await other!.close();
  } finally {
    await lab.stop();
    await extra!.close();
  }
});

test(
  'POST /api/pools/:pool/servers rejects invalid servers with the config file errors',
  TIMEOUT,
  async () => {
    const lab = await startLab(2);
    const add = (body: unknown) => api(lab.port, 'POST', '/api/pools/web/servers', body);
    try {
      const cases: Array<[unknown, number, string[]]> = [
        [
          { address: '127.0.0.1:9', name: 'x', weight: 300 },
          400,
          ['weight: expected an integer from 0 to 256, got 300'],
        ],
        [{ name: 'x' }, 400, ['missing required key "address"']],
        [{ address: '127.0.0.1:9', wieght: 2 }, 400, ['unknown key "wieght"; did you mean "weight"?']],
        [{ address: 'localhost' }, 400, ['address: expected host:port, got "localhost"']],
        [
          { address: '127.0.0.1:9', name: 'a' },
          400,
          ['name: expected a server not already in the pool, got "a" (already used by pool web, server a)'],
        ],
        [
          { address: '127.0.0.1:9', backup: 'yes', weight: -1 },
          400,
          ['weight: expected an integer from 0 to 256, got -1', 'backup: expected true or false, got "yes"'],
        ],
        [
          { address: '127.0.0.1:9', maxConnections: 5 },
          400,
          [
            'maxConnections: only allowed in pools that only tcp or udp listeners use, got pool "web" used by http listener "web"',
          ],
        ],
      ];
      for (const [body, status, problems] of cases) {
        const r = await add(body);
        assert.equal(r.status, status, JSON.stringify(body));
        assert.deepEqual(
          r.data.problems?.map((p) => (p.path ? `${p.path}: ${p.message}` : p.message)).sort(),
          [...problems].sort(),
          JSON.stringify(body),
        );
        for (const p of problems) assert.ok(r.data.error!.includes(p), r.data.error);
      }
      const notObject = await add(['127.0.0.1:9']);
      assert.equal(notObject.status, 400);
      assert.equal(
        notObject.data.error,
        'expected a server mapping like {"address": "127.0.0.1:3004", "name": "d"}, got a list',
      );
      const badJson = await add('{"address": ');
      assert.equal(badJson.status, 400);
      assert.match(badJson.data.error!, /^expected a JSON body: /);
      const empty = await add(undefined);
      assert.equal(empty.status, 400);
      const noPool = await api(lab.port, 'POST', '/api/pools/nope/servers', { address: '127.0.0.1:9' });
      assert.equal(noPool.status, 404);
      // Nothing changed.
      assert.deepEqual(
        lab.lb.runtime.pools.get('web')!.servers.map((s) => s.id),
        ['a', 'b'],
      );
    } finally {
      await lab.stop();
    }
  },
);

test('PATCH sets the weight; invalid weights get the config errors', TIMEOUT, async () => {
  const lab = await startLab(2, { poolExtra: '    algorithm: weighted-round-robin' });
  try {
    const r = await api(lab.port, 'PATCH', '/api/pools/web/servers/a', { weight: 3 });
    assert.equal(r.status, 200, r.body);
    assert.equal(r.data.weight, 3);
    assert.equal(lab.lb.runtime.pools.get('web')!.find('a')!.weight, 3);
    const seen = await traffic(lab.lb.port, 8);
    assert.equal(seen.filter((s) => s === 'a').length, 6, seen.join(','));

    const bad = await api(lab.port, 'PATCH', '/api/pools/web/servers/b', { weight: 'heavy' });
    assert.equal(bad.status, 400);
    assert.deepEqual(bad.data.problems, [
      { path: 'weight', message: 'expected an integer from 0 to 256, got "heavy"' },
    ]);
    assert.equal(bad.data.error, 'weight: expected an integer from 0 to 256, got "heavy"');
    const big = await api(lab.port, 'PATCH', '/api/pools/web/servers/b', { weight: 1.5 });
    assert.equal(big.data.error, 'weight: expected an integer from 0 to 256, got 1.5');
    assert.equal(lab.lb.runtime.pools.get('web')!.find('b')!.weight, 1);
  } finally {
    await lab.stop();
  }
});

test(
  'PATCH sets the state: drain and maintenance take a server out, ready puts it back',
  TIMEOUT,
  async () => {
    const lab = await startLab(3);
    const pool = () => lab.lb.runtime.pools.get('web')!;
    try {
      const drained = await api(lab.port, 'PATCH', '/api/pools/web/servers/b', { state: 'drain' });
      assert.equal(drained.status, 200);
      assert.equal(drained.data.state, 'draining');
      assert.deepEqual((drained.data.lastTransition as ServerJson['lastTransition'])!.reason, 'admin: drain');
      assert.ok(!(await traffic(lab.lb.port, 6)).includes('b'));

      const maint = await api(lab.port, 'PATCH', '/api/pools/web/servers/c', { state: 'maintenance' });
      assert.equal(maint.data.state, 'maintenance');
      assert.deepEqual(await traffic(lab.lb.port, 3), ['a', 'a', 'a']);

      const ready = await api(lab.port, 'PATCH', '/api/pools/web/servers/b', { state: 'ready' });
      assert.equal(ready.data.state, 'up');
      assert.ok((await traffic(lab.lb.port, 4)).includes('b'));

      // Weight and state together.
      const both = await api(lab.port, 'PATCH', '/api/pools/web/servers/c', { state: 'ready', weight: 2 });
      assert.equal(both.status, 200);
      assert.equal(pool().find('c')!.state, 'up');
      assert.equal(pool().find('c')!.weight, 2);

      // A server that health checks hold down stays down.
      pool().setState(pool().find('a')!, 'down', 'test');
      const down = await api(lab.port, 'PATCH', '/api/pools/web/servers/a', { state: 'ready' });
      assert.equal(down.data.state, 'down');
      assert.match(String(down.data.note), /down by its health checks/);
    } finally {
      await lab.stop();
    }
  },
);

test('PATCH rejects unknown states, unknown keys and empty bodies', TIMEOUT, async () => {
  const lab = await startLab(2);
  const patch = (body: unknown) => api(lab.port, 'PATCH', '/api/pools/web/servers/a', body);
  try {
    const state = await patch({ state: 'drian' });
    assert.equal(state.status, 400);
    assert.equal(
      state.data.error,
      'state: expected one of ready, drain, maintenance, got "drian"; did you mean "drain"?',
    );
    const key = await patch({ wieght: 2 });
    assert.equal(key.data.error, 'unknown key "wieght"; did you mean "weight"?');
    const empty = await patch({});
    assert.equal(empty.data.error, 'expected at least one of weight, state, got an empty mapping');
    const list = await patch([1]);
    assert.equal(list.data.error, 'expected a mapping with weight and/or state, got a list');
    const num = await patch({ state: 3 });
    assert.equal(num.data.error, 'state: expected one of ready, drain, maintenance, got 3');
    assert.equal(lab.lb.runtime.pools.get('web')!.find('a')!.state, 'up');
  } finally {
    await lab.stop();
  }
});

test('DELETE drains a server first, then removes it; the last server cannot go', TIMEOUT, async () => {
  const lab = await startLab(2, { delayMs: 300 });
  const pool = () => lab.lb.runtime.pools.get('web')!;
  try {
    // A slow request in flight on a: the removal waits for it, and it succeeds.
    const inflight = traffic(lab.lb.port, 1);
    await until(() => pool().find('a')!.active === 1, 2000, 'a request in flight on a');
    const removed = await api(lab.port, 'DELETE', '/api/pools/web/servers/a?wait=true');
    assert.equal(removed.status, 200, removed.body);
    assert.deepEqual(removed.data, { pool: 'web', server: 'a', removed: true });
    assert.deepEqual(await inflight, ['a'], 'the request in flight finished normally');
    assert.ok(lab.lb.log.lines.some((l) => l.includes('removing server a (draining 1 in flight)')));
    assert.deepEqual(
      pool().servers.map((s) => s.id),
      ['b'],
    );
    assert.ok(!lab.lb.runtime.config.pools[0]!.servers.some((s) => s.name === 'a'));

    const last = await api(lab.port, 'DELETE', '/api/pools/web/servers/b');
    assert.equal(last.status, 400);
    assert.equal(
      last.data.error,
      'cannot remove server b: pool web: servers: expected at least one server, got an empty list',
    );
    assert.equal(pool().find('b')!.state, 'up', 'a refused removal does not drain');

    const unknown = await api(lab.port, 'DELETE', '/api/pools/web/servers/a');
    assert.equal(unknown.status, 404);
    const badTimeout = await api(lab.port, 'DELETE', '/api/pools/web/servers/b?timeout=soon');
    assert.equal(badTimeout.status, 400);
    assert.match(badTimeout.data.error!, /^timeout: expected a duration/);
  } finally {
    await lab.stop();
  }
});

test(
  'DELETE without wait answers 202 while the server drains; a state change then is refused',
  TIMEOUT,
  async () => {
    const lab = await startLab(2, { delayMs: 400 });
    const pool = () => lab.lb.runtime.pools.get('web')!;
    try {
      const inflight = traffic(lab.lb.port, 1);
      await until(() => pool().find('a')!.active === 1, 2000, 'a request in flight on a');
      const r = await api(lab.port, 'DELETE', '/api/pools/web/servers/a');
      assert.equal(r.status, 202);
      assert.equal(r.data.state, 'draining');
      assert.equal(r.data.active, 1);
      const view = await api(lab.port, 'GET', '/api/pools/web/servers/a');
      assert.equal(view.data.removing, true);
      const ready = await api(lab.port, 'PATCH', '/api/pools/web/servers/a', { state: 'ready' });
      assert.equal(ready.status, 409);
      assert.equal(ready.data.error, 'server a of pool web is being removed');
      await inflight;
      await until(() => pool().find('a') === undefined, 3000, 'a removed');
    } finally {
      await lab.stop();
    }
  },
);

test('POST /api/reload without a config file is an error and changes nothing', TIMEOUT, async () => {
  const lab = await startLab(1);
  try {
    const r = await api(lab.port, 'POST', '/api/reload');
    assert.equal(r.status, 400);
    assert.match(r.data.error!, /^test\.yaml: cannot read the file/);
  } finally {
    await lab.stop();
  }
});
