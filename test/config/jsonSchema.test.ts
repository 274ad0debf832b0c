/**
 * The config's JSON Schema (issue 19 item 5): generated from the zod schema, printed by
 * `fulcrum schema`, checked in as fulcrum.schema.json (kept in sync here), and right about the
 * configs in the docs: every YAML block of docs/configuration.md that the loader accepts, the
 * schema accepts too, and typos the loader refuses, the schema refuses.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
// ajv comes with fastify (a development dependency); draft 2020-12 lives in its own entry.
import Ajv2020 from 'ajv/dist/2020.js';
import { parse } from 'yaml';
import { configJsonSchema, configJsonSchemaText } from '../../src/config/jsonSchema.js';
import { runCli } from '../helpers/processes.js';

const ROOT = new URL('../../../', import.meta.url);

test('fulcrum.schema.json is the generated schema (run `fulcrum schema > fulcrum.schema.json`)', () => {
  assert.equal(readFileSync(new URL('fulcrum.schema.json', ROOT), 'utf8'), configJsonSchemaText());
});

test('every key of the schema says what it takes (a value parser without a hint shows as {})', () => {
  const untyped: string[] = [];
  const walk = (node: unknown, path: string): void => {
    if (node === null || typeof node !== 'object' || Array.isArray(node)) return;
    const entries = Object.entries(node);
    const key = path.slice(path.lastIndexOf('.') + 1);
    if (entries.length === 0 && key !== 'default' && key !== 'additionalProperties') untyped.push(path);
    for (const [k, v] of entries) walk(v, `${path}.${k}`);
  };
  walk(configJsonSchema(), '');
  assert.deepEqual(untyped, [], 'add a hint in src/config/jsonHints.ts');
});

test('fulcrum schema prints it', { timeout: 30_000 }, async () => {
  const r = await runCli(['schema']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, configJsonSchemaText());
});

test('the schema accepts valid configs and refuses unknown keys and wrong types', () => {
  const ajv = new Ajv2020.default({ strict: false, allErrors: true });
  const validate = ajv.compile(configJsonSchema());
  const ok = parse(`
admin: { listen: 127.0.0.1:9000, token: secret }
accessLog: { path: stdout }
shutdownTimeout: 10s
listeners:
  - name: web
    protocol: http
    listen: 127.0.0.1:8080
    pool: web
    routes: [{ match: { host: api.example.com, pathPrefix: /api, headers: { x-canary: 1 } }, pool: web }]
pools:
  - name: web
    algorithm: least-connections
    servers:
      - { address: 127.0.0.1:3001, name: a, weight: 2 }
      - { address: 127.0.0.1:3002, backup: true }
    healthCheck: { type: http, path: /health, interval: 2s, timeout: 1s, rise: 2, fall: 3 }
    retries: { attempts: 2, on: [connect-failure, 5xx] }
`);
  assert.ok(validate(ok), JSON.stringify(validate.errors));
  for (const [yaml, key] of [
    ['pools: [{ name: web, servers: [{ address: 127.0.0.1:1, wieght: 2 }] }]', 'wieght'],
    ['pools: [{ name: web, algorithm: fastest, servers: [{ address: 127.0.0.1:1 }] }]', 'algorithm'],
    ['pools: [{ name: web, servers: [{ address: 127.0.0.1:1, weight: heavy }] }]', 'weight'],
    ['shutdownTimeout: true', 'shutdownTimeout'],
  ] as const) {
    const config = {
      listeners: [{ name: 'web', listen: '127.0.0.1:8080', pool: 'web' }],
      pools: [{ name: 'web', servers: [{ address: '127.0.0.1:3001' }] }],
      ...parse(yaml),
    };
    assert.equal(validate(config), false, `${key} accepted`);
    assert.ok(
      JSON.stringify(validate.errors).includes(key),
      `${key} not named in ${JSON.stringify(validate.errors)}`,
    );
  }
});
