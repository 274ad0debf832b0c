import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest } from '../../src/config/suggest.js';

const SERVER_KEYS = ['address', 'name', 'weight', 'backup'];

test('closest finds typos, transpositions, case and separator slips', () => {
  assert.equal(closest('wieght', SERVER_KEYS), 'weight');
  assert.equal(closest('adress', SERVER_KEYS), 'address');
  assert.equal(closest('Backup', SERVER_KEYS), 'backup');
  assert.equal(closest('path_prefix', ['host', 'pathPrefix', 'method', 'headers']), 'pathPrefix');
  assert.equal(closest('roundrobin', ['round-robin', 'ip-hash']), 'round-robin');
});

test('closest finds a key that was cut short', () => {
  assert.equal(closest('path', ['host', 'pathPrefix', 'method', 'headers']), 'pathPrefix');
});

test('closest suggests nothing when nothing is close', () => {
  assert.equal(closest('colour', SERVER_KEYS), undefined);
  assert.equal(closest('rr', ['round-robin', 'ip-hash']), undefined);
  assert.equal(closest('x', SERVER_KEYS), undefined);
});
