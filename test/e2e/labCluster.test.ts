/**
 * `fulcrum lab --quick` for real, session clustering: all-to-all keeps every session on every node
 * and loses none when two of three die; primary-backup holds fewer per node and loses the sessions
 * whose two copies died.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { labFigures, runQuickLab } from '../helpers/lab.js';

test('fulcrum lab --quick: session clustering shows the expected directions', {
  timeout: 115_000,
}, async (t) => {
  const { report } = await runQuickLab(t, ['session-cluster']);
  const c = labFigures(report, 'session-cluster');
  assert.equal(c['all-to-all.3.lost'], 0, 'all-to-all loses nothing when two of three die');
  assert.ok(c['primary-backup.3.lost']! > 0, 'primary-backup loses sessions whose two copies die');
  assert.ok(
    c['primary-backup.3.valuesPerNode']! < c['all-to-all.3.valuesPerNode']!,
    'primary-backup holds less per node',
  );
});
