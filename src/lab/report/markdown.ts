/** The lab report as Markdown (`report.md`): the same figures as the HTML page, charts as tables. */
import type { Chart, ScenarioResult } from '../scenario.js';
import { type LabReport, verdict } from './report.js';

function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function table(columns: string[], rows: string[][]): string {
  return [
    `| ${columns.map(cell).join(' | ')} |`,
    `|${columns.map(() => '---').join('|')}|`,
    ...rows.map((r) => `| ${r.map(cell).join(' | ')} |`),
  ].join('\n');
}

function chartData(chart: Chart): string {
  const num = (v: number | undefined) =>
    v === undefined || !Number.isFinite(v) ? '–' : String(Number(v.toPrecision(4)));
  if (chart.kind === 'bar') {
    const rows = chart.categories.map((cat, i) => [
      cat,
      ...chart.series.map((s) => {
        const lo = s.low?.[i];
        const hi = s.high?.[i];
        const range = lo !== undefined && hi !== undefined && hi > lo ? ` (${num(lo)}–${num(hi)})` : '';
        return `${num(s.values[i])}${range}`;
      }),
    ]);
    return `*Chart: ${chart.title}* (${chart.yLabel})\n\n${table(['', ...chart.series.map((s) => s.name)], rows)}`;
  }
  const xs = [...new Set(chart.series.flatMap((s) => s.points.map((p) => p[0])))].sort((a, b) => a - b);
  if (xs.length > 24) {
    const lines = chart.series.map((s) => `- ${s.name}: ${s.points.length} points`);
    return `*Chart: ${chart.title}* (${chart.xLabel} → ${chart.yLabel}; ${xs.length} points, see index.html)\n\n${lines.join('\n')}`;
  }
  const rows = xs.map((x) => [
    num(x),
    ...chart.series.map((s) => num(s.points.find((p) => p[0] === x)?.[1])),
  ]);
  return `*Chart: ${chart.title}* (${chart.yLabel})\n\n${table([chart.xLabel, ...chart.series.map((s) => s.name)], rows)}`;
}

function section(r: ScenarioResult, index: number): string {
  const out = [`## ${index}. ${r.title}`, '', `**Claim.** ${r.claim}`, '', `**Setup.** ${r.setup}`, ''];
  if (r.status !== 'ran') {
    out.push(`**${r.status === 'skipped' ? 'Not run' : 'Failed'}.** ${r.reason ?? ''}`, '');
    return out.join('\n');
  }
  for (const t of r.tables ?? []) out.push(`*${t.caption}*`, '', table(t.columns, t.rows), '');
  // A bar chart draws a table the section already has; a line chart's points are written out.
  for (const c of r.charts ?? [])
    if (c.kind === 'line' || (r.tables ?? []).length === 0) out.push(chartData(c), '');
  out.push(`**What it means.** ${r.meaning ?? ''}`, '');
  for (const n of r.notes ?? []) out.push(`> ${n}`, '');
  out.push(`**Checks** (${verdict(r)}, ${r.seconds.toFixed(0)} s):`, '');
  for (const c of r.checks ?? []) out.push(`- ${c.ok ? '✅' : '❌'} ${c.name}: ${c.detail}`);
  out.push('');
  return out.join('\n');
}

/** The report as one Markdown document. */
export function renderMarkdown(report: LabReport): string {
  const head = [
    '# Fulcrum lab report',
    '',
    `Generated ${report.generatedAt}${report.quick ? ' with --quick (fewer and shorter repetitions)' : ''} on ${report.machine}, in ${report.seconds.toFixed(0)} s.`,
    'Figures are medians over repetitions with (min–max) after them; every process ran on this machine, on loopback (redundancy: on a bridge between network namespaces it made).',
    '',
    table(
      ['#', 'scenario', 'result'],
      report.results.map((r, i) => [String(i + 1), r.title, verdict(r)]),
    ),
    '',
  ];
  return [...head, ...report.results.map((r, i) => section(r, i + 1))].join('\n');
}
