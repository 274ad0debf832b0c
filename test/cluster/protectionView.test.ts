import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { ProtectionReport } from '../../src/admin/protectionReport.js';
import { mergeProtection, refusalsOf } from '../../src/cluster/protectionView.js';

function report(over: Partial<ProtectionReport>): ProtectionReport {
  return { listener: 'web', protocol: 'http', rejected: {}, surge: null, blocked: [], top: [], ...over };
}

test('mergeProtection sums refusals, unions blocks (latest until), merges top talkers, ORs surges', () => {
  const surge = { active: false, rate: 5, baseline: 2, threshold: 50, since: 0 };
  const merged = mergeProtection([
    [
      report({
        rejected: { rate: 3, blocked: 1 },
        blocked: [{ ip: '10.0.0.1', until: 1000, reason: 'r' }],
        top: [
          { ip: '10.0.0.1', requests: 5, refused: 3, errors: 0 },
          { ip: '10.0.0.2', requests: 4, refused: 0, errors: 1 },
        ],
        surge,
      }),
      report({ listener: 'api', rejected: { deny: 2 } }),
    ],
    [
      report({
        rejected: { rate: 4, deny: 1 },
        blocked: [
          { ip: '10.0.0.1', until: 2000, reason: 'r2' },
          { ip: '10.0.0.3', until: 500, reason: 'scan' },
        ],
        top: [{ ip: '10.0.0.2', requests: 3, refused: 1, errors: 0 }],
        surge: { active: true, rate: 90, baseline: 2, threshold: 50, since: 1234 },
      }),
    ],
    [],
  ]);
  assert.deepEqual(
    merged.map((r) => r.listener),
    ['api', 'web'],
  );
  const web = merged[1]!;
  assert.deepEqual(web.rejected, { rate: 7, blocked: 1, deny: 1 });
  assert.deepEqual(web.blocked, [
    { ip: '10.0.0.1', until: 2000, reason: 'r2' },
    { ip: '10.0.0.3', until: 500, reason: 'scan' },
  ]);
  assert.deepEqual(web.top, [
    { ip: '10.0.0.2', requests: 7, refused: 1, errors: 1 },
    { ip: '10.0.0.1', requests: 5, refused: 3, errors: 0 },
  ]);
  assert.deepEqual(web.surge, { active: true, rate: 90, baseline: 2, threshold: 50, since: 1234 });
  assert.deepEqual(merged[0]!.rejected, { deny: 2 });
});

test('mergeProtection keeps the 10 busiest talkers', () => {
  const top = Array.from({ length: 12 }, (_, i) => ({
    ip: `10.0.0.${i}`,
    requests: i,
    refused: 0,
    errors: 0,
  }));
  const [web] = mergeProtection([[report({ top: top.slice(0, 6) })], [report({ top: top.slice(6) })]]);
  assert.equal(web!.top.length, 10);
  assert.equal(web!.top[0]!.ip, '10.0.0.11');
  assert.equal(web!.top[9]!.ip, '10.0.0.2');
});

test('mergeProtection adds the refusals of workers gone to the listeners still reported', () => {
  const rejected = { rate: 2, deny: 0 };
  const merged = mergeProtection(
    [[report({ rejected })], [report({ rejected: { rate: 1 } })]],
    [
      ['web', 'rate', 5],
      ['web', 'blocked', 1],
      ['gone', 'rate', 9],
    ],
  );
  assert.deepEqual(
    merged.map((r) => [r.listener, r.rejected]),
    [['web', { rate: 8, deny: 0, blocked: 1 }]],
    'a listener no live worker reports is not shown',
  );
  assert.deepEqual(rejected, { rate: 2, deny: 0 }, 'the workers’ reports are left as they were');
  assert.deepEqual(
    refusalsOf([
      { listener: 'web', rejected: { rate: 3, deny: 0, blocked: 1 } },
      { listener: 'api', rejected: {} },
    ]),
    [
      ['web', 'rate', 3],
      ['web', 'blocked', 1],
    ],
  );
});
