/**
 * `fulcrum lab --quick` for real, scenarios 8 to 10. L4 vs L7: only the http listener routes by
 * path, retries a server that closes without answering, pins by cookie and adds forwarding
 * headers; the balancer's CPU per request is measured for both. DNS: clients caching the answer
 * keep failing on a dead server after it left the answers, until the TTL, while the http listener
 * of the same pool fails far fewer. Protection: the flood gets 429 and 403, the backends receive
 * far fewer requests, ordinary clients get no errors.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labFigures, runQuickLab } from '../helpers/lab.js';

test('fulcrum lab --quick: L4 vs L7, DNS and protection show the expected directions', {
  timeout: 115_000,
}, async (t) => {
  const { report } = await runQuickLab(t, ['l4-l7', 'dns', 'protection']);

  const l = labFigures(report, 'l4-l7');
  assert.equal(l['l4.pathRouted'], 0, 'L4 cannot route by path');
  assert.ok(l['l7.pathRouted']! > 0, 'L7 routes by path');
  assert.equal(l['l7.failedWithBrokenServer'], 0, 'L7 retries on another server');
  assert.ok(l['l4.failedWithBrokenServer']! > 0, 'L4 cannot replay what it forwarded');
  assert.equal(l['l7.stickyServers'], 1, 'L7 pins a client by cookie');
  assert.ok(l['l7.forwardingHeaders']! > 0 && l['l4.forwardingHeaders'] === 0, 'only L7 adds headers');
  for (const k of ['l4', 'l7']) {
    assert.ok(l[`${k}.cpuUsPerRequest`]! > 0, `${k}: CPU per request measured`);
    assert.ok(l[`${k}.requestsPerSecond`]! > 0, `${k}: requests per second measured`);
  }

  const d = labFigures(report, 'dns');
  assert.ok(d['dns.failed']! > 0, 'through DNS, requests fail after the kill');
  assert.ok(d['dns.failedAfterRemoval']! > 0, 'and go on after the dead server left the answers');
  assert.ok(d['l7.failed']! * 10 <= d['dns.failed']!, 'the http listener fails far fewer');

  const p = labFigures(report, 'protection');
  assert.ok(p['on.attacker429']! + p['on.attacker403']! > 0, 'attackers are refused');
  assert.ok(p['on.backendRequests']! * 2 <= p['off.backendRequests']!, 'backends receive far fewer');
  assert.equal(p['on.ordinaryErrors'], 0, 'ordinary clients get no errors');
});
