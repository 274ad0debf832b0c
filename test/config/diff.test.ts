import assert from 'node:assert/strict';
import { test } from 'node:test';
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

test('identical configs are unchanged', () => {
  const diff = diffConfig(parse(BASE), parse(BASE));
  assert.equal(diff.unchanged, true);
  assert.deepEqual(diff.listeners, { added: [], removed: [], changed: [] });
});

test('servers are compared by identity, pool settings separately', () => {
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
  assert.deepEqual(diff.pools.servers.db, { added: [], removed: [], changed: [] });
  assert.deepEqual(diff.pools.settingsChanged, ['db']);
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
  assert.equal(diff.admin, true);
  assert.equal(diff.shutdownTimeout, false);
});
