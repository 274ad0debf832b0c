import assert from 'node:assert/strict';
import { test } from 'node:test';
import { toRaw } from '../../src/admin/state.js';
import { diffConfig, parseConfig } from '../../src/config/index.js';

const BASE = `
listeners:
  - { name: web, listen: 127.0.0.1:8080, pool: web }
  - { name: db, protocol: tcp, listen: 127.0.0.1:5432, pool: db }
pools:
  - name: web
    servers: [{ address: 127.0.0.1:3001, name: a }, { address: 127.0.0.1:3002, name: b }]
  - name: db
    servers: [{ address: 127.0.0.1:5433 }]
`;

const parse = (text: string) => parseConfig(text, 'fulcrum.yaml');
const NONE = { added: [], removed: [], changed: [] };

test('identical configs are unchanged', () => {
  const diff = diffConfig(parse(BASE), parse(BASE));
  assert.equal(diff.unchanged, true);
  assert.deepEqual(diff.listeners, NONE);
  assert.deepEqual(diff.pools, { ...NONE, servers: {} });
  assert.deepEqual(diff.admin, { listen: false, token: false });
  assert.equal(diff.accessLog, false);
});

test('a config through the state round trip (keys in another order) is unchanged', () => {
  const config = parse(BASE);
  const again = parseConfig(JSON.stringify(toRaw(config)), 'request');
  assert.equal(diffConfig(config, again).unchanged, true);
});

test('servers are compared by identity within each changed pool', () => {
  const after = parse(
    BASE.replace(
      '{ address: 127.0.0.1:3002, name: b }',
      '{ address: 127.0.0.1:3003, name: b }, { address: 127.0.0.1:3004 }',
    ).replace('- name: db\n', '- name: db\n    algorithm: least-connections\n'),
  );
  const diff = diffConfig(parse(BASE), after);
  assert.equal(diff.unchanged, false);
  assert.deepEqual(diff.pools.changed, ['web', 'db']);
  assert.deepEqual(diff.pools.servers.web, { added: ['127.0.0.1:3004'], removed: [], changed: ['b'] });
  assert.deepEqual(diff.pools.servers.db, NONE);
});

test('listeners and pools added and removed are named', () => {
  const after = parse(`
listeners:
  - { name: web, listen: 127.0.0.1:8081, pool: web }
  - { name: admin2, listen: 127.0.0.1:9001, pool: web }
admin: { listen: 127.0.0.1:9000 }
pools:
  - name: web
    servers: [{ address: 127.0.0.1:3001, name: a }, { address: 127.0.0.1:3002, name: b }]
`);
  const diff = diffConfig(parse(BASE), after);
  assert.deepEqual(diff.listeners, { added: ['admin2'], removed: ['db'], changed: ['web'] });
  assert.deepEqual(diff.pools.removed, ['db']);
  assert.deepEqual(diff.pools.servers, {}, 'no server lists for pools that were not changed');
  assert.deepEqual(diff.admin, { listen: true, token: false });
  assert.equal(diff.shutdownTimeout, false);
});

test('the admin endpoint: address and token apart; the access log by path', () => {
  const withAdmin = (admin: string, accessLog = '') => parse(`${admin}\n${accessLog}\n${BASE}`);
  const plain = withAdmin('admin: { listen: 127.0.0.1:9000 }');
  const token = withAdmin('admin: { listen: 127.0.0.1:9000, token: s3cret }');
  const moved = withAdmin('admin: { listen: 127.0.0.1:9001, token: s3cret }');
  assert.deepEqual(diffConfig(plain, token).admin, { listen: false, token: true });
  assert.deepEqual(diffConfig(token, moved).admin, { listen: true, token: false });
  assert.deepEqual(diffConfig(token, parse(BASE)).admin, { listen: true, token: true });
  assert.equal(diffConfig(token, moved).listeners.changed.length, 0);
  const logged = withAdmin('admin: { listen: 127.0.0.1:9000 }', 'accessLog: { path: stdout }');
  assert.equal(diffConfig(plain, logged).accessLog, true);
  assert.equal(diffConfig(logged, logged).accessLog, false);
  assert.equal(diffConfig(logged, plain).unchanged, false);
});
