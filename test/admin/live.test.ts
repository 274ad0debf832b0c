/** Live per-server figures: request rate over the last second, percentiles over ten seconds. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LiveStats } from '../../src/admin/live.js';

test('percentiles are within the bucket width (~5%) of the exact ones', () => {
  const s = new LiveStats();
  // 1..1000 ms, once each: p50 = 500, p90 = 900, p99 = 990.
  for (let ms = 1; ms <= 1000; ms++) s.record(ms);
  s.tick(1000);
  const p = s.percentiles()!;
  for (const [got, exact] of [
    [p.p50, 500],
    [p.p90, 900],
    [p.p99, 990],
  ] as const) {
    assert.ok(Math.abs(got - exact) / exact < 0.05, `${got} vs ${exact}`);
  }
  assert.equal(s.rate, 1000);
});

test('the rate covers the last tick, the percentiles the last ten', () => {
  const s = new LiveStats();
  assert.equal(s.percentiles(), null);
  for (let i = 0; i < 50; i++) s.record(0); // below the first bucket: reported as 0
  s.tick(500);
  assert.equal(s.rate, 100);
  assert.deepEqual(s.percentiles(), { p50: 0, p90: 0, p99: 0 });
  for (let i = 0; i < 9; i++) s.tick(1000);
  assert.equal(s.rate, 0);
  assert.equal(s.windowCount, 50, 'still in the window');
  s.tick(1000);
  assert.equal(s.windowCount, 0);
  assert.equal(s.percentiles(), null);
});
