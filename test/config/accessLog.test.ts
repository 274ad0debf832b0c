/** The `accessLog` key: optional, one `path` ("stdout" or a file), the loader's usual errors. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, parseConfig } from '../../src/config/index.js';

const BASE = `listeners:
  - { name: web, listen: 127.0.0.1:8080, pool: web }
pools:
  - { name: web, servers: [{ address: 127.0.0.1:3001 }] }
`;

function errorOf(text: string): string {
  try {
    parseConfig(text, 'fulcrum.yaml');
  } catch (error) {
    assert.ok(error instanceof ConfigError, String(error));
    return error.message;
  }
  return assert.fail('expected the config to be rejected');
}

test('accessLog is off when absent', () => {
  assert.equal(parseConfig(BASE, 'fulcrum.yaml').accessLog, undefined);
});

test('accessLog.path is "stdout" or a file', () => {
  assert.deepEqual(parseConfig(`accessLog: { path: stdout }\n${BASE}`, 'fulcrum.yaml').accessLog, {
    path: 'stdout',
  });
  assert.deepEqual(
    parseConfig(`accessLog:\n  path: /var/log/fulcrum/access.log\n${BASE}`, 'fulcrum.yaml').accessLog,
    { path: '/var/log/fulcrum/access.log' },
  );
});

test('accessLog errors name the key, what was expected and what was found', () => {
  assert.equal(errorOf(`accessLog: {}\n${BASE}`), 'fulcrum.yaml:1: accessLog: missing required key "path"');
  assert.equal(
    errorOf(`accessLog: { path: "" }\n${BASE}`),
    'fulcrum.yaml:1: accessLog.path: expected a non-empty string, got ""',
  );
  assert.equal(
    errorOf(`accessLog: { path: 3 }\n${BASE}`),
    'fulcrum.yaml:1: accessLog.path: expected a non-empty string, got 3',
  );
  assert.equal(
    errorOf(`accessLog: { path: stdout, fromat: json }\n${BASE}`),
    'fulcrum.yaml:1: accessLog: unknown key "fromat"',
  );
  assert.equal(
    errorOf(`accessLog: stdout\n${BASE}`),
    'fulcrum.yaml:1: accessLog: expected a mapping, got "stdout"',
  );
  assert.equal(
    errorOf(`acessLog: { path: stdout }\n${BASE}`),
    'fulcrum.yaml:1: unknown key "acessLog"; did you mean "accessLog"?',
  );
});
