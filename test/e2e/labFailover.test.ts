/**
 * `fulcrum lab --quick` for real, failover: a backend killed under load fails requests without
 * retries and fewer (none) with them; the health checks mark it down, and up again once restarted.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labFigures, runQuickLab } from '../helpers/lab.js';

test('fulcrum lab --quick: failover shows the expected directions', { timeout: 115_000 }, async (t) => {
  const { report } = await runQuickLab(t, ['failover']);
  const f = labFigures(report, 'failover');
  assert.ok(f['errors.noRetries']! > 0, 'without retries a dead server fails requests');
  assert.ok(f['errors.retries']! < f['errors.noRetries']!, 'retries hide them');
  assert.ok(f.servedAfterRestart! > 0, 'the server serves again once back');
});
