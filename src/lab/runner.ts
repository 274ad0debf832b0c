/**
 * `fulcrum lab`: runs the chosen scenarios one after the other with real processes on loopback,
 * prints a progress line as it goes, and writes `index.html`, `report.md` and `results.json` to
 * the output folder. Every process a scenario starts is stopped by PID when it ends, fails, or the
 * run is interrupted (SIGINT, SIGTERM).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ProcessGroup } from './processes.js';
import { renderHtml } from './report/html.js';
import { renderMarkdown } from './report/markdown.js';
import type { LabReport } from './report/report.js';
import type { LabContext, Scenario, ScenarioResult } from './scenario.js';
import { SCENARIOS } from './scenarios/index.js';

/** The options of `fulcrum lab`. */
export interface LabOptions {
  quick: boolean;
  /** Scenario names to run (all when empty). */
  only: string[];
  out: string;
  /** Keep the processes' logs and configs (in `<out>/work`). */
  keepWork?: boolean;
  /** Where progress lines go (default stderr). */
  progress?: (line: string) => void;
}

/** The names `--only` takes. */
export function scenarioNames(): string[] {
  return SCENARIOS.map((s) => s.name);
}

/** Checks `--only` against the scenario list; the unknown names, if any. */
export function unknownScenarios(only: readonly string[]): string[] {
  const names = new Set(scenarioNames());
  return only.filter((n) => !names.has(n));
}

async function runOne(s: Scenario, ctx: LabContext): Promise<ScenarioResult> {
  const started = Date.now();
  const base = { name: s.name, title: s.title, claim: s.claim, setup: s.setup(ctx.quick) };
  const reason = s.unavailable?.();
  if (reason !== undefined) return { ...base, status: 'skipped', reason, seconds: 0 };
  try {
    const findings = await s.run(ctx);
    return { ...base, ...findings, status: 'ran', seconds: (Date.now() - started) / 1000 };
  } catch (err) {
    return {
      ...base,
      status: 'failed',
      reason: (err as Error).message,
      seconds: (Date.now() - started) / 1000,
    };
  } finally {
    await ctx.procs.stopAll();
  }
}

/** Runs the lab and writes the report; resolves with it. */
export async function runLab(options: LabOptions): Promise<LabReport> {
  const say = options.progress ?? ((line: string) => process.stderr.write(`${line}\n`));
  const chosen =
    options.only.length === 0 ? SCENARIOS : SCENARIOS.filter((s) => options.only.includes(s.name));
  fs.mkdirSync(options.out, { recursive: true });
  const workDir = fs.mkdtempSync(path.join(os.tmpdir(), 'fulcrum-lab-'));
  const procs = new ProcessGroup(path.join(workDir, 'logs'));
  const onSignal = (signal: NodeJS.Signals) => {
    say(`lab: ${signal}, stopping ${procs.running.size} process(es)`);
    procs.killAllNow();
    fs.rmSync(workDir, { recursive: true, force: true });
    process.exit(130);
  };
  const onExit = () => procs.killAllNow();
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', onExit);
  const started = Date.now();
  const results: ScenarioResult[] = [];
  try {
    for (const [i, s] of chosen.entries()) {
      const label = `[${i + 1}/${chosen.length}] ${s.name}`;
      say(`${label}: ${s.title}`);
      const ctx: LabContext = {
        quick: options.quick,
        procs,
        workDir,
        progress: (m) => say(`${label}: ${m}`),
      };
      const r = await runOne(s, ctx);
      results.push(r);
      if (r.status === 'ran') {
        const bad = (r.checks ?? []).filter((c) => !c.ok);
        say(
          `${label}: done in ${r.seconds.toFixed(0)} s, ${(r.checks ?? []).length - bad.length}/${(r.checks ?? []).length} checks hold${bad.length > 0 ? ` (not: ${bad.map((c) => c.name).join('; ')})` : ''}`,
        );
      } else say(`${label}: ${r.status}: ${r.reason}`);
    }
  } finally {
    await procs.stopAll();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    process.off('exit', onExit);
    if (options.keepWork) {
      fs.cpSync(workDir, path.join(options.out, 'work'), { recursive: true });
    }
    fs.rmSync(workDir, { recursive: true, force: true });
  }
  const cpus = os.cpus();
  const report: LabReport = {
    generatedAt: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    quick: options.quick,
    machine: `${cpus.length} × ${cpus[0]?.model.trim() ?? 'CPU'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}, ${os.platform()} ${os.release()}`,
    seconds: (Date.now() - started) / 1000,
    results,
  };
  fs.writeFileSync(path.join(options.out, 'index.html'), renderHtml(report));
  fs.writeFileSync(path.join(options.out, 'report.md'), renderMarkdown(report));
  fs.writeFileSync(path.join(options.out, 'results.json'), `${JSON.stringify(report, null, 2)}\n`);
  return report;
}
