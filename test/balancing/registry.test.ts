/**
 * The registry is the one list of algorithms: the config accepts exactly its names, and the docs
 * tables list exactly its entries (the docs are written by hand; this keeps them in step).
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ALGORITHM_REGISTRY, ALGORITHMS, algorithmInfo, createPolicy } from '../../src/balancing/registry.js';
import { ConfigError, parseConfig } from '../../src/config/index.js';

/** The repository root, found from this file wherever the build put it. */
function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
}

/** The rows of the markdown table whose header row is `header`, as trimmed cells. */
function table(doc: string, header: string): string[][] {
  const lines = doc.split('\n');
  const at = lines.indexOf(header);
  assert.ok(at >= 0, `no table headed ${header}`);
  const rows: string[][] = [];
  for (let i = at + 2; i < lines.length && lines[i]!.startsWith('|'); i++) {
    rows.push(
      lines[i]!.split('|')
        .slice(1, -1)
        .map((c) => c.trim()),
    );
  }
  return rows;
}

const code = (cell: string): string => cell.replace(/^`(.*)`$/, '$1');

test('the registry: names in order, a policy of that name for each, round-robin first (the default)', () => {
  assert.deepEqual(ALGORITHMS, Object.keys(ALGORITHM_REGISTRY));
  assert.equal(ALGORITHMS[0], 'round-robin');
  for (const name of ALGORITHMS) {
    assert.equal(createPolicy(name).name, name);
    assert.equal(algorithmInfo(name), ALGORITHM_REGISTRY[name]);
  }
  assert.throws(() => createPolicy('toString' as never), /unknown balancing algorithm/);
  // Slow start stays off only where a weight change would move clients.
  assert.deepEqual(
    ALGORITHMS.filter((n) => !algorithmInfo(n).rampsWeight),
    ['ip-hash'],
  );
});

test('the config accepts exactly the registry names', () => {
  const config = (algorithm: string) => `
listeners: [{ name: web, protocol: http, listen: "127.0.0.1:8080", pool: web }]
pools:
  - name: web
    algorithm: ${algorithm}
    servers: [{ address: "127.0.0.1:3001" }]
`;
  for (const name of ALGORITHMS) assert.equal(parseConfig(config(name), 'f.yaml').pools[0]!.algorithm, name);
  assert.throws(
    () => parseConfig(config('random'), 'f.yaml'),
    (error: unknown) =>
      error instanceof ConfigError && error.message.includes(`expected one of ${ALGORITHMS.join(', ')}`),
  );
});

test('docs/algorithms.md lists exactly the registry, with its weights column and a section each', () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'algorithms.md'), 'utf8');
  const rows = table(doc, '| algorithm | chooses | uses weights | best for |');
  assert.deepEqual(
    rows.map((r) => code(r[0]!)),
    ALGORITHMS,
  );
  for (const row of rows) {
    const name = code(row[0]!) as (typeof ALGORITHMS)[number];
    assert.equal(row[2], algorithmInfo(name).usesWeights ? 'yes' : 'no', `${name}: uses weights`);
    assert.ok(doc.includes(`\n## ${name}\n`), `a section for ${name}`);
  }
});

test('docs/configuration.md lists exactly the registry, with its descriptions', () => {
  const doc = readFileSync(join(repoRoot(), 'docs', 'configuration.md'), 'utf8');
  const rows = table(doc, '| value | chooses |');
  assert.deepEqual(
    rows.map((r) => code(r[0]!)),
    ALGORITHMS,
  );
  for (const row of rows) {
    const name = code(row[0]!) as (typeof ALGORITHMS)[number];
    assert.equal(row[1], algorithmInfo(name).description, `${name}: description`);
  }
});
