/**
 * Running `fulcrum lab --quick --only NAMES` from a test: its results.json, every scenario ran,
 * every direction check held, exit 0, progress printed. The lab is stopped on failure (SIGINT,
 * which stops every process it started).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LabReport } from '../../src/lab/report/report.js';
import { spawnCli } from './processes.js';

/** False when redis-server and memcached are installed, else why the lab's store scenarios are skipped. */
export const LAB_STORES_MISSING: false | string = ['redis-server', 'memcached'].every((b) =>
  ['/usr/bin', '/usr/sbin', '/usr/local/bin'].some((d) => existsSync(join(d, b))),
)
  ? false
  : 'redis-server and memcached are needed (npm test installs them: scripts/test-deps.sh)';

/** Runs the lab on `only` and returns its report and output folder (removed after the test). */
export async function runQuickLab(
  t: { after(fn: () => unknown): void },
  only: string[],
  timeoutMs = 110_000,
): Promise<{ report: LabReport; out: string }> {
  const out = mkdtempSync(join(tmpdir(), 'fulcrum-lab-test-'));
  t.after(() => rmSync(out, { recursive: true, force: true }));
  const lab = spawnCli(['lab', '--quick', '--only', only.join(','), '--out', out]);
  t.after(() => lab.stop('SIGINT'));
  const exit = await lab.waitForExit(timeoutMs);
  const report = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as LabReport;
  for (const r of report.results) assert.equal(r.status, 'ran', `${r.name}: ${r.reason}\n${lab.output}`);
  const bad = report.results.flatMap((r) =>
    (r.checks ?? []).filter((c) => !c.ok).map((c) => `${r.name}: ${c.name}: ${c.detail}`),
  );
  assert.deepEqual(bad, [], lab.output);
  assert.equal(exit.code, 0, lab.output);
  assert.match(lab.stderr, /\[1\/\d+\] /, 'progress lines as it goes');
  return { report, out };
}

/** The named figures of one scenario of the report. */
export function labFigures(report: LabReport, name: string): Record<string, number> {
  const r = report.results.find((x) => x.name === name);
  assert.ok(r?.figures, `${name} has figures`);
  return r.figures;
}
