/** The state file and the config round trip that validates runtime changes. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { overlay, readState, type StateFile, toRaw, validate, writeState } from '../../src/admin/state.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';
import { tempDir } from '../helpers/processes.js';

function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

const L4 = `
admin: { listen: "[::1]:0", token: s3cret }
accessLog: { path: stdout }
shutdownTimeout: 5s
listeners:
  - { name: pg, protocol: tcp, listen: 127.0.0.1:0, pool: db, acceptProxyProtocol: true, trustedProxies: [10.0.0.0/8], queue: { size: 10, timeout: 2s }, maxConnections: 100 }
  - { name: dns, protocol: udp, listen: 127.0.0.1:0, pool: dns, maxFlows: 50, timeouts: { idle: 30s } }
pools:
  - name: db
    algorithm: least-connections
    sendProxyProtocol: v2
    drainTimeout: 1m
    servers:
      - { address: 10.0.0.1:5432, maxConnections: 20, sendProxyProtocol: none }
      - { address: "[fd00::1]:5432", name: replica, weight: 0, backup: true }
    healthCheck: { type: tcp, interval: 1s }
  - name: dns
    servers: [{ address: 10.0.0.53:53 }]
    healthCheck: { type: http, expectStatus: 200, expectBody: ok, host: dns.local }
    outlierDetection: { consecutiveFailures: 2, on5xx: true }
`;

const PROTECTED = `
listeners:
  - name: web
    listen: 127.0.0.1:0
    pool: p
    protection:
      rateLimit: { requests: 10, per: 1s, key: "header:X-Api-Key" }
      connections: { perClient: 5, rate: 10 }
      surge: { sessionCookies: [sid] }
      shared: redis://127.0.0.1:6379
      failClosed: true
      detect: { blockFor: 1m }
    routes:
      - { match: { pathPrefix: /login }, pool: p, rateLimit: { requests: 1, per: 10s, key: "cookie:sid" } }
  - { name: t, protocol: tcp, listen: 127.0.0.1:0, pool: p, protection: { connections: { rate: 5 }, deny: [10.0.0.0/8] } }
  - { name: u, protocol: udp, listen: 127.0.0.1:0, pool: p, protection: { packets: { rate: 100 } } }
pools:
  - { name: p, servers: [{ address: 10.0.0.1:80 }] }
`;

test('toRaw turns every example config back into data that parses to the same config', () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'configuration.md'), 'utf8');
  const examples = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).slice(0, 2);
  for (const text of [...examples, L4, PROTECTED]) {
    const config = parseConfig(text, 'example.yaml');
    const again = validate(toRaw(config), 'again');
    // The same content (key order may differ: the admin keeps unchanged pools' objects).
    assert.deepStrictEqual(again, config);
  }
});

test('toRaw gives rate-limit keys back as text (a listener with protection starts)', () => {
  for (const key of ['ip', 'header:x-api-key', 'cookie:sid']) {
    const config = parseConfig(
      `listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:0
    pool: web
    protection: { rateLimit: { requests: 100, per: 10s, key: "${key}" } }
pools: [{ name: web, servers: [{ address: 127.0.0.1:1 }] }]
`,
      'example.yaml',
    );
    assert.deepStrictEqual(validate(toRaw(config), 'again'), config);
  }
});

test('validate reports problems with key paths and without line numbers', () => {
  const raw = toRaw(parseConfig(L4, 'x.yaml'));
  ((raw.pools as Array<Record<string, unknown>>)[0]!.servers as Array<Record<string, unknown>>)[0]!.weight =
    'x';
  assert.throws(
    () => validate(raw, 'request'),
    (err: unknown) =>
      err instanceof ConfigError &&
      err.message === 'request: pools[0].servers[0].weight: expected an integer from 0 to 256, got "x"' &&
      err.problems[0]!.line === undefined,
  );
});

const BASE = parseConfig(
  `
listeners: [{ name: web, listen: 127.0.0.1:0, pool: web }]
pools:
  - name: web
    servers:
      - { address: 127.0.0.1:3001, name: a }
      - { address: 127.0.0.1:3002, name: b, weight: 2 }
      - { address: 127.0.0.1:3003, name: c }
`,
  'fulcrum.yaml',
);

test('overlay: removals, then additions, then weights, then states', () => {
  const state: StateFile = {
    version: 1,
    pools: {
      web: {
        removed: ['a', 'c'],
        added: [
          { address: '127.0.0.1:3004', name: 'd', weight: 3, backup: false },
          { address: '127.0.0.1:3005', name: 'a', weight: 1, backup: false }, // re-added elsewhere
        ],
        weights: { b: 5 },
        states: { d: 'drain' },
      },
    },
  };
  const { config, states, ignored } = overlay(BASE, state, 'state.json');
  assert.deepEqual(
    config.pools[0]!.servers.map((s) => `${s.name}@${s.address.port}/${s.weight}`),
    ['b@3002/5', 'd@3004/3', 'a@3005/1'],
  );
  assert.deepEqual(states, [{ pool: 'web', server: 'd', state: 'drain' }]);
  assert.deepEqual(ignored, []);
});

test('overlay: the file wins over an addition it now has; stale entries are ignored, in words', () => {
  const state: StateFile = {
    version: 1,
    pools: {
      web: {
        added: [{ address: '127.0.0.1:3099', name: 'c' }],
        removed: ['zz'],
        weights: { yy: 3 },
        states: { xx: 'maintenance' },
      },
      api: { weights: { a: 1 } },
    },
  };
  const { config, ignored } = overlay(BASE, state, 'state.json');
  assert.equal(config.pools[0]!.servers.find((s) => s.name === 'c')!.address.port, 3003);
  assert.deepEqual(ignored, [
    'pool web: removed server zz is not in the file',
    'pool web: server c added at run time is now in the file, which wins',
    'pool web: weight of unknown server yy',
    'pool web: state of unknown server xx',
    'pool api: not in the config file; its runtime changes are ignored',
  ]);
});

test('overlay: a combination the loader rejects is an error under the state file name', () => {
  const state: StateFile = { version: 1, pools: { web: { removed: ['a', 'b', 'c'] } } };
  assert.throws(
    () => overlay(BASE, state, 'fulcrum.yaml.state.json'),
    /^ConfigError: fulcrum\.yaml\.state\.json: pools\[0\]\.servers: expected at least one server, got an empty list$/,
  );
});

test('state files: missing is empty, written atomically, read back, checked', async () => {
  const dir = tempDir('fulcrum-state-');
  try {
    const file = join(dir.path, 'x.state.json');
    assert.deepEqual(await readState(file), { version: 1, pools: {} });
    await writeState(file, {
      version: 1,
      pools: { web: { weights: { a: 2 }, added: [], states: {} }, empty: {} },
    });
    const text = readFileSync(file, 'utf8');
    assert.deepEqual(JSON.parse(text).pools, { web: { weights: { a: 2 } } }, 'empty entries are left out');
    assert.deepEqual(await readState(file), { version: 1, pools: { web: { weights: { a: 2 } } } });
    writeFileSync(
      file,
      '{"version": 2, "pools": {"web": {"states": {"a": "down"}, "extra": 1, "added": [{"weight": 1}]}}}',
    );
    await assert.rejects(readState(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.deepEqual(
        err.message.split('\n').map((l) => l.slice(file.length + 2)),
        [
          'version: expected 1, got 2',
          'pools.web: unknown key "extra"',
          'pools.web.added: expected a list of server mappings, got a list',
          'pools.web.states.a: expected one of drain, maintenance, got "down"',
        ],
      );
      return true;
    });
    writeFileSync(file, '{not json');
    await assert.rejects(readState(file), /x\.state\.json: invalid JSON: /);
  } finally {
    dir.remove();
  }
});
