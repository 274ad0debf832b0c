/**
 * `fulcrum lab --quick --only redundancy` for real: a keepalived pair with `fulcrum start` in
 * network namespaces, the master's Fulcrum SIGKILLed under cookie-jar traffic to the virtual IP,
 * with the shared store on and off. Checks the directions: with the shared store no session is
 * lost, the virtual IP moved with a takeover measured above 0 and finite; and that nothing the
 * scenario created is left (namespaces). Skips, saying why, without root, namespaces, keepalived
 * or redis-server.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { redundancy } from '../../src/lab/scenarios/redundancy.js';
import { labFigures, runQuickLab } from '../helpers/lab.js';

const skip = redundancy.unavailable?.();

/** The lab's namespaces still present (named `fl<PID>-<host>`). */
const labNamespaces = () =>
  (spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout ?? '')
    .split('\n')
    .filter((l) => /^fl\d+-/.test(l));

test('fulcrum lab --quick: redundancy measures a takeover, and the shared store keeps every session', {
  skip,
  timeout: 115_000,
}, async (t) => {
  const before = labNamespaces().length;
  const { report } = await runQuickLab(t, ['redundancy'], 105_000);
  const f = labFigures(report, 'redundancy');
  for (const key of ['shared', 'local']) {
    assert.ok(
      Number.isFinite(f[`${key}.takeoverS`]) && f[`${key}.takeoverS`]! > 0,
      `${key}: takeover ${f[`${key}.takeoverS`]} s`,
    );
  }
  assert.equal(f['shared.sessionsLost'], 0, 'the shared store keeps every session');
  t.diagnostic(
    `takeover ${f['shared.takeoverS']} s (shared) / ${f['local.takeoverS']} s (local); failed ${f['shared.failedRequests']} / ${f['local.failedRequests']}; sessions lost ${f['shared.sessionsLost']} / ${f['local.sessionsLost']}; server changed ${f['shared.serverChanged']} / ${f['local.serverChanged']}`,
  );
  assert.equal(labNamespaces().length, before, 'every namespace the lab made is removed');
});
