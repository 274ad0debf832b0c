/** The lab report as one self-contained HTML page (`index.html`): inline CSS and SVG, no script. */
import type { ScenarioResult } from '../scenario.js';
import { type LabReport, verdict } from './report.js';
import { chartSvg, esc } from './svg.js';

const STYLE = `
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: .2em; } h2 { border-top: 2px solid #ddd; padding-top: 1em; margin-top: 2em; }
table { border-collapse: collapse; margin: .6em 0 1em; font-size: 14px; }
th, td { border: 1px solid #ccc; padding: 3px 9px; text-align: left; } th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-style: italic; padding-bottom: 3px; }
.claim { font-size: 1.05em; } .meaning { background: #f4f8ff; border-left: 4px solid #4477AA; padding: .5em .8em; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.skipped { background: #fff8e1; border-left: 4px solid #CCBB44; padding: .5em .8em; }
.note { color: #555; font-size: .95em; } figure { margin: 1em 0; } svg { max-width: 100%; height: auto; }
nav ol { columns: 2; }
`;

function tableHtml(caption: string, columns: string[], rows: string[][]): string {
  const numeric = (s: string) => /^[-+]?[\d.,]+/.test(s);
  return (
    `<table><caption>${esc(caption)}</caption><thead><tr>${columns.map((c) => `<th>${esc(c)}</th>`).join('')}</tr></thead><tbody>` +
    rows
      .map(
        (r) => `<tr>${r.map((c) => `<td${numeric(c) ? ' class="num"' : ''}>${esc(c)}</td>`).join('')}</tr>`,
      )
      .join('') +
    '</tbody></table>'
  );
}

function section(r: ScenarioResult, index: number): string {
  const parts = [
    `<section id="${esc(r.name)}"><h2>${index}. ${esc(r.title)}</h2>`,
    `<p class="claim"><strong>Claim.</strong> ${esc(r.claim)}</p>`,
    `<p><strong>Setup.</strong> ${esc(r.setup)}</p>`,
  ];
  if (r.status !== 'ran') {
    parts.push(
      `<p class="skipped"><strong>${r.status === 'skipped' ? 'Not run' : 'Failed'}.</strong> ${esc(r.reason ?? '')}</p></section>`,
    );
    return parts.join('\n');
  }
  for (const t of r.tables ?? []) parts.push(tableHtml(t.caption, t.columns, t.rows));
  for (const c of r.charts ?? []) parts.push(`<figure>${chartSvg(c)}</figure>`);
  parts.push(`<p class="meaning"><strong>What it means.</strong> ${esc(r.meaning ?? '')}</p>`);
  for (const n of r.notes ?? []) parts.push(`<p class="note">${esc(n)}</p>`);
  parts.push(
    `<p><strong>Checks</strong> (${esc(verdict(r))}, ${r.seconds.toFixed(0)} s)</p><ul>` +
      (r.checks ?? [])
        .map(
          (c) =>
            `<li><span class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✔ ok' : '✘ not ok'}</span> ${esc(c.name)}: ${esc(c.detail)}</li>`,
        )
        .join('') +
      '</ul></section>',
  );
  return parts.join('\n');
}

/** The report as one HTML page. */
export function renderHtml(report: LabReport): string {
  const toc = report.results
    .map((r) => `<li><a href="#${esc(r.name)}">${esc(r.title)}</a> — ${esc(verdict(r))}</li>`)
    .join('');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Fulcrum lab report</title><style>${STYLE}</style></head>
<body><h1>Fulcrum lab report</h1>
<p>Generated ${esc(report.generatedAt)}${report.quick ? ' with <code>--quick</code> (fewer and shorter repetitions)' : ''} on ${esc(report.machine)}, in ${report.seconds.toFixed(0)} s.
Figures are medians over repetitions, with the smallest and largest seen in parentheses (whiskers on the charts). Every process ran on this machine, on loopback (redundancy: on a bridge between network namespaces it made): the figures show directions and proportions, not the speed of a production deployment.</p>
<nav><ol>${toc}</ol></nav>
${report.results.map((r, i) => section(r, i + 1)).join('\n')}
</body></html>
`;
}
