import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SurgeDetector, type SurgeState } from '../../src/protection/surge.js';

/** `perSecond` requests in each of `seconds` seconds from `start` (ms); the shedding answers. */
function feed(d: SurgeDetector, start: number, seconds: number, perSecond: number): boolean[] {
  const out: boolean[] = [];
  for (let s = 0; s < seconds; s++) {
    for (let i = 0; i < perSecond; i++)
      out.push(d.hit(start + s * 1000 + Math.floor((i * 1000) / perSecond)));
  }
  return out;
}

test('surge: a rate far above the baseline sheds, the end is told once, the baseline does not learn the surge', () => {
  const d = new SurgeDetector({ window: 2000, baseline: 5000, factor: 4, floor: 30 });
  const changes: SurgeState[] = [];
  d.onChange = (s) => changes.push(s);
  const t0 = 1_000_000_000_000;
  // Ten quiet seconds at 20/s: never a surge (under the floor and the factor).
  assert.ok(feed(d, t0, 10, 20).every((x) => !x));
  assert.equal(changes.length, 0);
  const base = d.state(t0 + 10_000).baseline;
  assert.ok(base > 15 && base < 25, `baseline ${base}`);
  // A flood of 1000/s: shedding within about a second, said once.
  const flood = feed(d, t0 + 10_000, 5, 1000);
  assert.ok(
    flood.slice(-1000).every((x) => x),
    'shedding by the end of the flood',
  );
  assert.equal(changes.length, 1);
  assert.equal(changes[0]!.active, true);
  assert.ok(changes[0]!.rate > 400, `rate ${changes[0]!.rate}`);
  // The baseline did not learn the flood.
  assert.ok(d.state(t0 + 14_500).baseline < 25 * 4);
  // Back to 20/s: the surge ends once the window has passed, said once.
  feed(d, t0 + 15_000, 4, 20);
  assert.equal(changes.length, 2);
  assert.equal(changes[1]!.active, false);
  assert.equal(d.state(t0 + 19_000).active, false);
});

test('surge: a quiet listener warming up is never shed under the floor', () => {
  const d = new SurgeDetector({ window: 2000, baseline: 60_000, factor: 5, floor: 50 });
  const t0 = 2_000_000_000_000;
  assert.ok(feed(d, t0, 3, 1).every((x) => !x));
  // 40/s after 1/s: forty times the baseline, but under the floor.
  assert.ok(feed(d, t0 + 3000, 5, 40).every((x) => !x));
  // Idle for minutes, then the floor still holds.
  assert.ok(feed(d, t0 + 600_000, 3, 45).every((x) => !x));
});
