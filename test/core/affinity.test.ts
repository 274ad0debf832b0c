import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type Affinity, resolvePinned } from '../../src/core/affinity.js';
import { Server } from '../../src/core/server.js';

const a = new Server({
  id: 'a',
  host: '127.0.0.1',
  port: 1,
  address: '127.0.0.1:1',
  weight: 1,
  backup: false,
});

function affinity(pinned: Affinity['pinned']): Affinity {
  return { pinned, onResponse: () => '' };
}

test('resolvePinned: no affinity, or an answer at once, is passed through', () => {
  assert.equal(resolvePinned(null, '10.0.0.1', null), undefined);
  assert.equal(
    resolvePinned(
      affinity(() => a),
      '10.0.0.1',
      null,
    ),
    a,
  );
  assert.equal(
    resolvePinned(
      affinity(() => undefined),
      '10.0.0.1',
      null,
    ),
    undefined,
  );
  const seen: Array<[string, string | null]> = [];
  resolvePinned(
    affinity((ip, cookies) => {
      seen.push([ip, cookies]);
      return undefined;
    }),
    '10.0.0.2',
    'x=1',
  );
  assert.deepEqual(seen, [['10.0.0.2', 'x=1']]);
});

test('resolvePinned: a failing lookup means no pin, and its promise never rejects', async () => {
  const throwing = affinity(() => {
    throw new Error('broken');
  });
  assert.equal(resolvePinned(throwing, '10.0.0.1', null), undefined);
  const later = resolvePinned(
    affinity(async () => a),
    '10.0.0.1',
    null,
  );
  assert.ok(later instanceof Promise);
  assert.equal(await later, a);
  const failed = resolvePinned(
    affinity(() => Promise.reject(new Error('store down'))),
    '10.0.0.1',
    null,
  );
  assert.ok(failed instanceof Promise);
  assert.equal(await failed, undefined);
});
