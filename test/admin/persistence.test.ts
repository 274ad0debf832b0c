/**
 * Runtime changes survive reloads (SIGHUP goes through runtime.reload(), which the admin takes
 * over, and POST /api/reload) and restarts: they live in `<config>.state.json`, applied on top of
 * the untouched YAML file.
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { test } from 'node:test';
import { loadWithState, restoreStates, startAdmin, stateFileOf } from '../../src/admin/index.js';
import { Runtime } from '../../src/runtime/runtime.js';
import { memoryLogger, startBackends } from '../helpers/balancer.js';
import { api, LOOPBACK, startFromFile, traffic } from './helpers.js';

const TIMEOUT = { timeout: 30_000 };

function yaml(ports: number[], extra = ''): string {
  return `# Fulcrum test config: comments must survive runtime changes.
listeners:
  - name: web          # the only listener
    protocol: http
    listen: 127.0.0.1:0
    pool: web
pools:
  - name: web
    algorithm: weighted-round-robin
    servers:
${ports.map((p, i) => `      - { address: "127.0.0.1:${p}", name: ${String.fromCharCode(97 + i)} }   # backend ${i}`).join('\n')}
${extra}`;
}

test(
  'runtime changes are kept in <config>.state.json, the YAML file is untouched, and a reload keeps them',
  TIMEOUT,
  async () => {
    const backends = await startBackends(4);
    const ports = backends.map((b) => b.port);
    const text = yaml(ports.slice(0, 3));
    const { dir, file, log, runtime } = await startFromFile(text);
    const admin = await startAdmin(runtime, LOOPBACK, log);
    const port = admin.address.port;
    const ids = () => runtime.pools.get('web')!.servers.map((s) => `${s.id}:${s.weight}:${s.state}`);
    try {
      assert.equal(
        (await api(port, 'POST', '/api/pools/web/servers', { address: `127.0.0.1:${ports[3]}`, name: 'd' }))
          .status,
        201,
      );
      assert.equal((await api(port, 'PATCH', '/api/pools/web/servers/a', { weight: 5 })).status, 200);
      assert.equal((await api(port, 'PATCH', '/api/pools/web/servers/d', { weight: 3 })).status, 200);
      assert.equal((await api(port, 'PATCH', '/api/pools/web/servers/b', { state: 'drain' })).status, 200);
      assert.equal((await api(port, 'DELETE', '/api/pools/web/servers/c?wait=true')).status, 200);
      assert.deepEqual(ids(), ['a:5:up', 'b:1:draining', 'd:3:up']);

      assert.equal(readFileSync(file, 'utf8'), text, 'the YAML file with its comments is untouched');
      const state = JSON.parse(readFileSync(stateFileOf(file), 'utf8'));
      assert.deepEqual(state.pools, {
        web: {
          added: [{ address: `127.0.0.1:${ports[3]}`, name: 'd', weight: 3, backup: false }],
          removed: ['c'],
          weights: { a: 5 },
          states: { b: 'drain' },
        },
      });
      assert.equal(state.version, 1);

      // SIGHUP path: the CLI calls runtime.reload().
      const summary = await runtime.reload();
      assert.deepEqual(summary.servers, { added: [], removed: [] });
      assert.deepEqual(ids(), ['a:5:up', 'b:1:draining', 'd:3:up']);
      // The API path, after the file changed: the change in the file applies, the runtime ones stay.
      writeFileSync(file, text.replace('algorithm: weighted-round-robin', 'algorithm: least-connections'));
      const reloaded = await api(port, 'POST', '/api/reload');
      assert.equal(reloaded.status, 200, reloaded.body);
      assert.deepEqual(reloaded.data.pools, { added: [], removed: [], updated: ['web'] });
      assert.equal(runtime.pools.get('web')!.policy.name, 'least-connections');
      assert.deepEqual(ids(), ['a:5:up', 'b:1:draining', 'd:3:up']);
      // Traffic goes where the state says: never to the drained b or the removed c.
      const seen = await traffic((runtime.address('web') as { port: number }).port, 12);
      assert.ok(!seen.includes('b') && !seen.includes('c'), seen.join(','));

      // Ready again: the state entry goes away.
      await api(port, 'PATCH', '/api/pools/web/servers/b', { state: 'ready' });
      assert.equal(JSON.parse(readFileSync(stateFileOf(file), 'utf8')).pools.web.states, undefined);
      // Setting a file server back to its file weight drops the override.
      await api(port, 'PATCH', '/api/pools/web/servers/a', { weight: 1 });
      assert.equal(JSON.parse(readFileSync(stateFileOf(file), 'utf8')).pools.web.weights, undefined);
    } finally {
      await admin.close();
      await runtime.shutdown(200);
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

test(
  'a restart applies the state file: loadWithState before start, or startAdmin on its own',
  TIMEOUT,
  async () => {
    const backends = await startBackends(3);
    const ports = backends.map((b) => b.port);
    const { dir, file, log, runtime } = await startFromFile(yaml(ports.slice(0, 2)));
    const admin = await startAdmin(runtime, LOOPBACK, log);
    try {
      await api(admin.address.port, 'POST', '/api/pools/web/servers', {
        address: `127.0.0.1:${ports[2]}`,
        name: 'c',
      });
      await api(admin.address.port, 'PATCH', '/api/pools/web/servers/a', { state: 'maintenance' });
    } finally {
      await admin.close();
      await runtime.shutdown(200);
    }
    try {
      // Restart 1: the CLI's way (no moment without the changes).
      const applied = await loadWithState(file, log);
      const second = new Runtime(applied.config, { file, log });
      await second.start();
      restoreStates(second, applied.states);
      assert.deepEqual(
        second.pools.get('web')!.servers.map((s) => `${s.id}:${s.state}`),
        ['a:maintenance', 'b:up', 'c:up'],
      );
      assert.equal(
        second.pools.get('web')!.find('a')!.lastTransition!.reason,
        'admin: maintenance (state file)',
      );
      await second.shutdown(200);

      // Restart 2: a runtime started from the bare file; startAdmin applies the state.
      const log3 = memoryLogger();
      const { loadConfig } = await import('../../src/config/index.js');
      const third = new Runtime(await loadConfig(file), { file, log: log3 });
      await third.start();
      const admin3 = await startAdmin(third, LOOPBACK, log3);
      assert.deepEqual(
        third.pools.get('web')!.servers.map((s) => `${s.id}:${s.state}`),
        ['a:maintenance', 'b:up', 'c:up'],
      );
      await admin3.close();
      await third.shutdown(200);
    } finally {
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

test(
  'conflicts: the file wins for servers it now defines; entries of missing pools and servers are ignored',
  TIMEOUT,
  async () => {
    const backends = await startBackends(3);
    const ports = backends.map((b) => b.port);
    const { dir, file, log, runtime } = await startFromFile(yaml(ports.slice(0, 2)));
    const admin = await startAdmin(runtime, LOOPBACK, log);
    try {
      await api(admin.address.port, 'POST', '/api/pools/web/servers', {
        address: `127.0.0.1:${ports[2]}`,
        name: 'c',
        weight: 7,
      });
      // The operator makes c permanent in the file (weight 2), and adds a stale entry by hand.
      writeFileSync(file, yaml(ports).replace(`name: c }`, 'name: c, weight: 2 }'));
      const state = JSON.parse(readFileSync(stateFileOf(file), 'utf8'));
      state.pools.gone = { weights: { x: 2 } };
      state.pools.web.states = { zz: 'drain' };
      writeFileSync(stateFileOf(file), JSON.stringify(state));
      const r = await api(admin.address.port, 'POST', '/api/reload');
      assert.equal(r.status, 200, r.body);
      assert.deepEqual(r.data.ignored, [
        'pool web: server c added at run time is now in the file, which wins',
        'pool web: state of unknown server zz',
        'pool gone: not in the config file; its runtime changes are ignored',
      ]);
      assert.equal(runtime.pools.get('web')!.find('c')!.weight, 2, 'the file wins');
      assert.ok(log.lines.some((l) => l.includes('server c added at run time is now in the file')));
    } finally {
      await admin.close();
      await runtime.shutdown(200);
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

test(
  'an invalid state file or config file rejects the reload and the running config stays',
  TIMEOUT,
  async () => {
    const backends = await startBackends(2);
    const ports = backends.map((b) => b.port);
    const text = yaml(ports);
    const { dir, file, log, runtime } = await startFromFile(text);
    const admin = await startAdmin(runtime, LOOPBACK, log);
    try {
      writeFileSync(stateFileOf(file), '{"version": 1, "pools": {"web": {"weights": {"a": 999}}}}');
      const bad = await api(admin.address.port, 'POST', '/api/reload');
      assert.equal(bad.status, 400);
      assert.equal(
        bad.data.error,
        `${stateFileOf(file)}: pools.web.weights.a: expected an integer from 0 to 256, got 999`,
      );
      await assert.rejects(runtime.reload(), /pools\.web\.weights\.a/);

      writeFileSync(stateFileOf(file), '{"version": 1, "pools": {}}');
      writeFileSync(file, text.replace('algorithm: weighted-round-robin', 'algorithm: fastest'));
      const badFile = await api(admin.address.port, 'POST', '/api/reload');
      assert.equal(badFile.status, 400);
      assert.match(
        badFile.data.error!,
        /fulcrum\.yaml:9: pools\[0\]\.algorithm: expected one of round-robin/,
      );
      assert.equal(runtime.pools.get('web')!.policy.name, 'weighted-round-robin');

      // Reloads are counted in the metrics.
      const metrics = (await api(admin.address.port, 'GET', '/metrics')).body;
      assert.match(metrics, /fulcrum_config_reloads_total\{result="failure"\} 3/);
    } finally {
      await admin.close();
      await runtime.shutdown(200);
      await Promise.all(backends.map((b) => b.close()));
      dir.remove();
    }
  },
);

test('closing the admin endpoint gives runtime.reload() back', TIMEOUT, async () => {
  const backends = await startBackends(1);
  const { dir, log, runtime } = await startFromFile(yaml([backends[0]!.port]));
  const original = runtime.reload;
  const admin = await startAdmin(runtime, LOOPBACK, log);
  assert.notEqual(runtime.reload, original);
  await admin.close();
  assert.equal(runtime.reload, original);
  await runtime.shutdown(200);
  await backends[0]!.close();
  dir.remove();
});
