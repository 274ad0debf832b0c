import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TopTalkers } from '../../src/protection/topTalkers.js';

test('top talkers: most first over the current and the last window, forgotten after; bounded', () => {
  const t = new TopTalkers(10_000, 3);
  const t0 = 1_000_000_000_000; // a window boundary
  for (let i = 0; i < 5; i++) t.hit('a', false, t0 + 9_000);
  for (let i = 0; i < 3; i++) t.hit('b', i === 0, t0 + 10_500);
  t.hit('a', true, t0 + 10_600);
  assert.deepEqual(t.top(10, t0 + 11_000), [
    { ip: 'a', requests: 6, refused: 1, errors: 0 },
    { ip: 'b', requests: 3, refused: 1, errors: 0 },
  ]);
  assert.deepEqual(t.top(1, t0 + 21_000), [{ ip: 'b', requests: 3, refused: 1, errors: 0 }]);
  assert.deepEqual(t.top(10, t0 + 40_000), []);
  // At most 3 clients tracked per window.
  for (const ip of ['c', 'd', 'e', 'f']) t.hit(ip, false, t0 + 50_000);
  assert.equal(t.top(10, t0 + 50_000).length, 3);
});
