import assert from 'node:assert/strict';
import { test } from 'node:test';
import { newRequestId } from '../../src/proxy/requestId.js';

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

test('request ids are version 4 UUIDs, all different, over several random batches', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const id = newRequestId();
    assert.match(id, UUID_V4);
    seen.add(id);
  }
  assert.equal(seen.size, 2000);
});

test('every hex digit of a request id varies (the random bytes reach every position)', () => {
  const digits = Array.from({ length: 36 }, () => new Set<string>());
  for (let i = 0; i < 500; i++) {
    const id = newRequestId();
    for (let k = 0; k < 36; k++) digits[k]!.add(id[k]!);
  }
  for (let k = 0; k < 36; k++) {
    if ([8, 13, 18, 23].includes(k)) assert.deepEqual([...digits[k]!], ['-']);
    else if (k === 14) assert.deepEqual([...digits[k]!], ['4']);
    else if (k === 19) assert.equal(digits[k]!.size, 4, 'variant digit: 8, 9, a or b');
    else assert.equal(digits[k]!.size, 16, `position ${k}`);
  }
});
