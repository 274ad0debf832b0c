/**
 * `fulcrum lab --quick` for real, failover: a backend killed under load fails requests without
 * retries and fewer (none) with them; the health checks mark it down, and up again once restarted.
 * And the sticky hot spot: two heavy clients pinned to one server make it the busiest by far.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labFigures, runQuickLab } from '../helpers/lab.js';

test('fulcrum lab --quick: failover and the sticky hot spot show the expected directions', {
  timeout: 115_000,
}, async (t) => {
  const { report } = await runQuickLab(t, ['failover', 'hot-spot']);
  const f = labFigures(report, 'failover');
  assert.ok(f['errors.noRetries']! > 0, 'without retries a dead server fails requests');
  assert.ok(f['errors.retries']! < f['errors.noRetries']!, 'retries hide them');
  assert.ok(f.servedAfterRestart! > 0, 'the server serves again once back');
  const h = labFigures(report, 'hot-spot');
  assert.ok(h['sticky.maxShare']! > h['plain.maxShare']!, "stickiness makes the heavy clients' server hot");
});
