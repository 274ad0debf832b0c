/** The whole lab run as the report files see it. */
import type { ScenarioResult } from '../scenario.js';

/** One run of `fulcrum lab`. */
export interface LabReport {
  generatedAt: string;
  quick: boolean;
  machine: string;
  seconds: number;
  results: ScenarioResult[];
}

/** "3 of 4 checks hold" for a scenario, or its status. */
export function verdict(r: ScenarioResult): string {
  if (r.status !== 'ran') return r.status === 'skipped' ? 'not run' : 'failed';
  const checks = r.checks ?? [];
  const ok = checks.filter((c) => c.ok).length;
  return `${ok} of ${checks.length} checks hold`;
}
