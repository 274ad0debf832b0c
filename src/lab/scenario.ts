/** What a lab scenario is, what it hands back, and what it is given to run. */
import type { ProcessGroup } from './processes.js';

/** A direction the figures must show for the mechanism to be working ("sticky loses about 1/N"). */
export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

/** A table of figures, as the report shows it. */
export interface Table {
  caption: string;
  columns: string[];
  rows: string[][];
}

/** One series of a bar chart: a value per category, with an optional min–max whisker. */
export interface BarSeries {
  name: string;
  values: number[];
  low?: number[];
  high?: number[];
}

/** Bars by category, one colour per series. */
export interface BarChart {
  kind: 'bar';
  title: string;
  yLabel: string;
  categories: string[];
  series: BarSeries[];
}

/** One line of a line chart. */
export interface LineSeries {
  name: string;
  points: [number, number][];
  dashed?: boolean;
}

/** Lines over a numeric x axis, with optional labelled vertical markers (a kill, a restart). */
export interface LineChart {
  kind: 'line';
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  markers?: { x: number; label: string }[];
}

/** A chart of the report. */
export type Chart = BarChart | LineChart;

/** What a scenario measured. */
export interface Findings {
  tables: Table[];
  charts: Chart[];
  /** One sentence: what the figures mean. */
  meaning: string;
  checks: Check[];
  /** Named figures (medians) for machines: results.json, the lab's own test. */
  figures: Record<string, number>;
  /** Anything the reader should know about this run (a part skipped, and why). */
  notes?: string[];
}

/** A scenario's result in the report. */
export interface ScenarioResult extends Partial<Findings> {
  name: string;
  title: string;
  claim: string;
  setup: string;
  /** ran: figures follow; skipped: cannot run here (reason); failed: an error stopped it (reason). */
  status: 'ran' | 'skipped' | 'failed';
  reason?: string;
  seconds: number;
}

/** What a scenario is given. */
export interface LabContext {
  quick: boolean;
  procs: ProcessGroup;
  /** A scratch folder of this run (configs, data of redis-server...). */
  workDir: string;
  /** One progress line. */
  progress(message: string): void;
}

/** One scenario of the lab. */
export interface Scenario {
  /** Short name for --only. */
  name: string;
  /** Its number in issue 21's list. */
  number: number;
  title: string;
  claim: string;
  /** How it is set up (quick or full). */
  setup(quick: boolean): string;
  /** A reason this scenario cannot run here, or undefined. */
  unavailable?(): string | undefined;
  run(ctx: LabContext): Promise<Findings>;
}

/** A check from a condition, with the detail that shows why. */
export function check(name: string, ok: boolean, detail: string): Check {
  return { name, ok, detail };
}
